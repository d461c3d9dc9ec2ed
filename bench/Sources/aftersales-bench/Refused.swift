// How much loop time a call the daemon refuses can cost. Every caller waits while the
// loop works on one call, so a call that is refused anyway must be refused cheaply:
// the round trip of each hostile call, less the round trip of a Ping, is the loop time
// it took (the client and libzmq costs are the same for both).
import AfterSalesProto
import AfterSalesRPC
import AfterSalesTestSupport
import ArgumentParser
import Foundation
import Histogram
import ZeroMQ

struct Refused: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Round trips of calls the daemon refuses (oversized lists, maps, payloads) against a Ping; prints one line per kind.")
    @Option(help: "The daemon's ROUTER endpoint.") var endpoint: String
    @Option(help: "Measured calls of each kind.") var count: Int = 20

    /// The hostile calls, each a whole RequestEnvelope.
    static func kinds() -> [(name: String, bytes: [UInt8])] {
        var manyEvidence = Cases.plain(order: "refused-evidence")
        manyEvidence.signals.evidence = Array(repeating: .with { $0.kind = .photo }, count: 100_001)
        var manyAnomalies = Aftersales_V1_UpdateLogisticsRequest()
        manyAnomalies.caseID = "AS0000000001"
        manyAnomalies.anomalies = Array(repeating: .lateDelivery, count: 400_000)
        var manyTags = Aftersales_V1_AddEvidenceRequest()
        manyTags.caseID = "AS0000000001"
        manyTags.consumerID = "C-bench"
        manyTags.evidence = .with { $0.kind = .photo; $0.tags = Array(repeating: .defect, count: 400_000) }
        var metadata = RequestEnvelope(requestID: 7, method: .ping, payload: try! Aftersales_V1_PingRequest().serializedBytes())
        metadata.metadata = Dictionary(uniqueKeysWithValues: (0..<50_000).map { ("k\($0)", "v") })
        var emptyItems = Cases.plain(order: "refused-empty")
        emptyItems.signals.evidence = Array(repeating: Aftersales_V1_Evidence(), count: 200_000)
        return [
            ("create_100001_evidence", Cases.envelope(1, .createCase, manyEvidence)),
            ("create_200000_empty_evidence", Cases.envelope(2, .createCase, emptyItems)),
            ("logistics_400000_anomalies", Cases.envelope(3, .updateLogistics, manyAnomalies)),
            ("evidence_400000_tags", Cases.envelope(4, .addEvidence, manyTags)),
            ("envelope_50000_metadata", try! metadata.serializedBytes()),
        ]
    }

    func run() throws {
        let context = try ZMQContext()
        let req = try ZMQSocket(context, .req)
        try req.setReceiveTimeout(30_000)
        try req.connect(endpoint)
        func roundTrip(_ bytes: [UInt8]) throws -> (UInt64, ResponseEnvelope) {
            let t0 = monoNanos()
            try req.send(bytes)
            guard let reply = try req.receive() else { throw BenchError("no answer within 30 s") }
            return (monoNanos() - t0, try ResponseEnvelope(serializedBytes: reply[0]))
        }
        let ping = Cases.envelope(9, .ping, Aftersales_V1_PingRequest())
        for _ in 0..<200 { _ = try roundTrip(ping) }
        var pings: [UInt64] = []
        for _ in 0..<max(200, count) { pings.append(try roundTrip(ping).0) }
        let pingMedian = median(pings)
        for kind in Self.kinds() {
            var times: [UInt64] = []
            var code = Aftersales_V1_StatusCode.ok
            var message = ""
            for _ in 0..<count {
                let (t, reply) = try roundTrip(kind.bytes)
                times.append(t)
                code = reply.code
                message = reply.message
            }
            let loop = median(times) > pingMedian ? median(times) - pingMedian : 0
            emit(["bench": "refused", "kind": kind.name, "request_bytes": kind.bytes.count, "code": "\(code)",
                  "message": String(message.prefix(120)), "rtt_p50_us": Double(median(times)) / 1_000,
                  "ping_p50_us": Double(pingMedian) / 1_000, "loop_ms": (Double(loop) / 1e6 * 1_000).rounded() / 1_000,
                  "max_rtt_us": Double(times.max() ?? 0) / 1_000])
        }
    }

    private func median(_ values: [UInt64]) -> UInt64 { values.sorted()[values.count / 2] }
}
