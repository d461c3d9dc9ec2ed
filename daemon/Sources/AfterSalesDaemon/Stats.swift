import AfterSalesProto
import AfterSalesRPC
import Histogram

/// Calls, errors and service time per method since start-up: what GetStats reports.
struct MethodStatistics {
    private var calls = [UInt64](repeating: 0, count: Method.allCases.count)
    private var errors = [UInt64](repeating: 0, count: Method.allCases.count)
    private var serviceTimes: [Histogram<UInt64>] = Method.allCases.map { _ in
        Histogram(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
    }
    /// Indexes of methods, so the hot path does array lookups, not string hashing.
    private static let index: [Method: Int] = Dictionary(uniqueKeysWithValues: Method.allCases.enumerated().map { ($1, $0) })

    /// Counts one answered call; returns the method's index (for the metrics' tally).
    @discardableResult
    mutating func record(_ method: Method, failed: Bool, microseconds: UInt64) -> Int {
        let i = Self.index[method]!
        calls[i] += 1
        if failed { errors[i] += 1 }
        _ = serviceTimes[i].record(min(microseconds, 60_000_000))
        return i
    }

    var report: [Aftersales_V1_MethodStats] {
        Method.allCases.enumerated().compactMap { i, method in
            guard calls[i] > 0 else { return nil }
            return .with {
                $0.method = method.fullName
                $0.calls = calls[i]
                $0.errors = errors[i]
                $0.p50Us = serviceTimes[i].valueAtPercentile(50)
                $0.p99Us = serviceTimes[i].valueAtPercentile(99)
            }
        }
    }
}
