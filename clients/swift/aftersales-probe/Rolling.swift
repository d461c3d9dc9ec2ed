import AfterSalesClient
import AfterSalesProto
import Foundation

// The rolling views, redis-cli's --latency and --stat: they run until Ctrl-C (or --count),
// and Ctrl-C ends them normally: the last figures are printed and the exit code is 0.

/// Runs `body` in a task that Ctrl-C (SIGINT) cancels; `body` sees the cancellation, prints
/// where it stands and returns. A second Ctrl-C exits at once (130), in case it hangs.
func cancellableByInterrupt<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
    let interrupts = Interrupts()
    // Ignored by the process, so that only the dispatch source sees it; listening before
    // the task starts, so that no Ctrl-C falls between the two.
    signal(SIGINT, SIG_IGN)
    let source = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
    source.setEventHandler { interrupts.received() }
    source.resume()
    defer {
        source.cancel()
        signal(SIGINT, SIG_DFL)
    }
    let task = Task { try await body() }
    interrupts.attach { task.cancel() }
    return try await task.value
}

/// Hands Ctrl-C from the signal queue to the task it cancels, which may not exist yet.
private final class Interrupts: @unchecked Sendable {
    // @unchecked: both fields are read and written under `lock` only.
    private let lock = NSLock()
    private var cancel: (@Sendable () -> Void)?
    private var count = 0

    /// One Ctrl-C: cancels the task (now, or once attached); the second exits.
    func received() {
        let (count, cancel) = lock.withLock { () -> (Int, (@Sendable () -> Void)?) in
            self.count += 1
            return (self.count, self.cancel)
        }
        if count > 1 { exit(130) }
        cancel?()
    }

    /// The task's cancellation, run at once if Ctrl-C came first.
    func attach(_ cancel: @escaping @Sendable () -> Void) {
        let alreadyInterrupted = lock.withLock {
            self.cancel = cancel
            return count > 0
        }
        if alreadyInterrupted { cancel() }
    }
}

/// A status line: rewritten in place on a terminal (like redis-cli --latency), otherwise
/// printed as a new line at most once a second, so that a log or a pipe stays readable.
struct RollingLine {
    private let inPlace: Bool
    private var lastPrinted: ContinuousClock.Instant?

    /// In place only when standard output is a terminal and `allowed` (JSON is always lines).
    init(inPlace allowed: Bool) {
        inPlace = allowed && isatty(STDOUT_FILENO) != 0
    }

    /// Shows `text` now on a terminal; elsewhere, if a second has passed since the last line.
    mutating func update(_ text: String) {
        let now = ContinuousClock.now
        if inPlace {
            // Carriage return, then erase the line: the new text may be shorter.
            print("\r\u{1B}[2K" + text, terminator: "")
        } else if let last = lastPrinted, now - last < .seconds(1) {
            return
        } else {
            print(text)
        }
        lastPrinted = now
        fflush(nil)
    }

    /// Leaves `text` as the last line, always: a script can take the result from `tail -1`.
    func finish(_ text: String) {
        print(inPlace ? "\r\u{1B}[2K" + text : text)
        fflush(nil)
    }
}

// MARK: ping --latency

/// Round-trip figures as redis-cli --latency shows them: min, max and mean, in milliseconds.
struct LatencySummary: Sendable {
    private(set) var samples = 0
    private var minMs = Double.infinity
    private var maxMs = 0.0
    private var totalMs = 0.0

    /// Adds one round trip.
    mutating func record(_ elapsed: Duration) {
        let (seconds, attoseconds) = elapsed.components
        let ms = Double(seconds) * 1000 + Double(attoseconds) / 1e15
        samples += 1
        minMs = min(minMs, ms)
        maxMs = max(maxMs, ms)
        totalMs += ms
    }

    private var figures: (min: Double, max: Double, avg: Double) {
        samples == 0 ? (0, 0, 0) : (minMs, maxMs, totalMs / Double(samples))
    }

    /// "min: 0.08, max: 0.31, avg: 0.12 (20 samples)".
    var line: String {
        let (low, high, mean) = figures
        return String(format: "min: %.2f, max: %.2f, avg: %.2f (%d samples)", low, high, mean, samples)
    }

    /// The same figures as one JSON object.
    var json: String {
        let (low, high, mean) = figures
        return JSONValue.object([
            ("minMs", .number(String(format: "%.2f", low))), ("maxMs", .number(String(format: "%.2f", high))),
            ("avgMs", .number(String(format: "%.2f", mean))), ("samples", .number("\(samples)")),
        ]).text()
    }
}

/// Pings `count` times (nil: until Ctrl-C), `interval` apart, showing the running figures.
func monitorLatency(_ client: AfterSalesClient, count: Int?, interval: Duration, json: Bool) async throws {
    try await cancellableByInterrupt {
        var summary = LatencySummary()
        var output = RollingLine(inPlace: !json)
        do {
            while count.map({ summary.samples < $0 }) ?? true {
                if summary.samples > 0 { try await Task.sleep(for: interval) }
                let start = ContinuousClock.now
                _ = try await client.ping()
                summary.record(ContinuousClock.now - start)
                output.update(json ? summary.json : summary.line)
            }
        } catch where Task.isCancelled {
            // Ctrl-C: the figures so far are the answer.
        }
        output.finish(json ? summary.json : summary.line)
    }
}

// MARK: stats --interval

/// One row of the rolling figures, like redis-cli --stat: the daemon's levels, and its call
/// rates from the change since the previous row.
struct StatsRow {
    private static let columns = ["cases", "pending", "calls/s", "errors/s", "last seq", "journal", "idem keys"]

    /// The column names, repeated every `headerEvery` rows.
    static let header = aligned(columns)
    /// How many rows between headers, as redis-cli repeats its own.
    static let headerEvery = 20

    /// The sample this row shows.
    let stats: Aftersales_V1_GetStatsResponse
    /// nil for the first row and after a daemon restart (the counters started again).
    let rates: (calls: Double, errors: Double)?

    /// The row for `stats`, with rates from the change since `previous`.
    init(_ stats: Aftersales_V1_GetStatsResponse, after previous: Aftersales_V1_GetStatsResponse?) {
        self.stats = stats
        rates = previous.flatMap { previous in
            let (now, before) = (stats.callTotals, previous.callTotals)
            // The daemon's own clock between the two samples: no network delay in it.
            let elapsedMs = stats.uptimeMs - previous.uptimeMs
            guard stats.startedAtMs == previous.startedAtMs, elapsedMs > 0,
                  now.calls >= before.calls, now.errors >= before.errors else { return nil }
            let seconds = Double(elapsedMs) / 1000
            return (Double(now.calls - before.calls) / seconds, Double(now.errors - before.errors) / seconds)
        }
    }

    private var values: [String] {
        [
            "\(stats.casesTotal)", "\(stats.pendingProposals)",
            rates.map { String(format: "%.1f", $0.calls) } ?? "-", rates.map { String(format: "%.1f", $0.errors) } ?? "-",
            "\(stats.lastEventSeq)", byteCount(stats.journalBytes), "\(stats.idempotencyKeys)",
        ]
    }

    /// The row, aligned under `header`.
    var line: String { Self.aligned(values) }

    /// The row as one JSON object (rates null where `line` shows "-").
    var json: String {
        func number(_ value: some Numeric) -> JSONValue { .number("\(value)") }
        func rate(_ value: Double?) -> JSONValue { value.map { .number(String(format: "%.1f", $0)) } ?? .null }
        return JSONValue.object([
            ("cases", number(stats.casesTotal)), ("pendingProposals", number(stats.pendingProposals)),
            ("callsPerSecond", rate(rates?.calls)), ("errorsPerSecond", rate(rates?.errors)),
            ("lastEventSeq", number(stats.lastEventSeq)), ("journalBytes", number(stats.journalBytes)),
            ("idempotencyKeys", number(stats.idempotencyKeys)),
        ]).text()
    }

    /// Cells ten characters wide (wider ones pushed right by a space), the last unpadded.
    private static func aligned(_ cells: [String]) -> String {
        cells.dropLast().map { $0.padding(toLength: max(10, $0.count + 1), withPad: " ", startingAt: 0) }.joined() + (cells.last ?? "")
    }
}

extension Aftersales_V1_GetStatsResponse {
    /// Calls and errors over every method since start-up.
    fileprivate var callTotals: (calls: UInt64, errors: UInt64) {
        methods.reduce((0, 0)) { ($0.0 + $1.calls, $0.1 + $1.errors) }
    }
}

/// "812B", "12.3K", "1.21M", "3.40G", as redis-cli shows memory.
func byteCount(_ bytes: UInt64) -> String {
    let units: [(String, Double)] = [("G", Double(1 << 30)), ("M", Double(1 << 20)), ("K", Double(1 << 10))]
    for (unit, size) in units where Double(bytes) >= size {
        return String(format: Double(bytes) / size < 10 ? "%.2f" : "%.1f", Double(bytes) / size) + unit
    }
    return "\(bytes)B"
}

/// Samples GetStats every `interval` and prints a row each time, `count` rows (nil: until Ctrl-C).
func monitorStats(_ client: AfterSalesClient, count: Int?, interval: Duration, json: Bool) async throws {
    try await cancellableByInterrupt {
        var previous: Aftersales_V1_GetStatsResponse?
        var rows = 0
        let start = ContinuousClock.now
        do {
            while count.map({ rows < $0 }) ?? true {
                // On a fixed schedule, so that the time a call takes does not stretch it.
                if rows > 0 { try await Task.sleep(until: start + interval * rows, clock: .continuous) }
                let stats = try await client.getStats()
                let row = StatsRow(stats, after: previous)
                if !json, rows % StatsRow.headerEvery == 0 { print(StatsRow.header) }
                print(json ? row.json : row.line)
                fflush(nil)
                previous = stats
                rows += 1
            }
        } catch where Task.isCancelled {
            // Ctrl-C: every row is already out.
        }
    }
}
