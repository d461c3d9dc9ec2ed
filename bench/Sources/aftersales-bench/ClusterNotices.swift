// Notice delivery across a failover (make bench, rows 8): a ClusterSubscriber counts every
// proposal.expired while the member owning half of the proposals is killed before they
// are due; how late the notices of its shards arrive, and that none is missing or doubled.
import AfterSalesClient
import AfterSalesProto
import AfterSalesRPC
import AfterSalesTestSupport
import ArgumentParser
import Foundation
import Synchronization

struct FailoverNotices: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "failover-notices",
        abstract: "A throwaway PostgreSQL and two members; N proposals, then kill -9 of the member owning most of them before they are due; a ClusterSubscriber's lateness per notice (arrival − due), missing and duplicated.")
    @Option(help: "Proposals.") var cases: Int = 400
    @Option(help: "Shards of the cluster.") var shards: UInt64 = 16
    @Option(help: "Proposal validity: the kill comes right after the last proposal is made.") var proposalTtl: String = "3s"
    @Option(help: "Members' lease TTL.") var leaseTtl: String = "5s"

    func run() throws {
        let cluster = try ClusterFixture(shards: shards, members: 2, leaseTTL: leaseTtl, arguments: ["--proposal-ttl", proposalTtl])
        let servedBy = try cluster.waitUntilServed(within: .seconds(60))
        let seeds = cluster.members.map(\.rpc)
        let subscriber = ClusterSubscriber(seeds: seeds, topics: ["proposal.expired"])
        defer { subscriber.close() }
        let arrivals = Mutex<[(caseID: String, atMs: Int64)]>([])
        let listener = Task {
            for await event in subscriber {
                if case .announcement(let envelope) = event {
                    let now = Int64(Date().timeIntervalSince1970 * 1_000)
                    arrivals.withLock { $0.append((envelope.caseID, now)) }
                }
            }
        }
        defer { listener.cancel() }
        Thread.sleep(forTimeInterval: 1.0)  // the subscriber knows every shard's position

        let victim = cluster.members.max { a, b in servedBy.values.filter { $0 === a }.count < servedBy.values.filter { $0 === b }.count }!
        let moved = Set(servedBy.filter { $0.value === victim }.map(\.key))
        let caller = ClusterCaller(seeds)
        var due: [String: Int64] = [:]
        var onMovedShard: Set<String> = []
        let prefix = runPrefix("fn")
        for n in 0..<cases {
            let (answer, _) = try caller.call(.createCase, Cases.proposal(order: "\(prefix)-\(n)"), key: "\(prefix)-\(n)")
            let created = try answer.decodedPayload(as: Aftersales_V1_CreateCaseResponse.self).case
            due[created.caseID] = created.proposal.expiresAtMs
            if let shard = ShardKey.shard(caseID: created.caseID, shardCount: shards), moved.contains(shard) { onMovedShard.insert(created.caseID) }
        }
        victim.kill()
        log("failover-notices: \(cases) proposals, \(onMovedShard.count) on the killed member's \(moved.count) shards")
        let deadline = Date().addingTimeInterval(60)
        while Set(arrivals.withLock { $0.map(\.caseID) }).count < due.count, Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
        Thread.sleep(forTimeInterval: 2)  // a duplicate would have arrived by now
        let heard = arrivals.withLock { $0 }
        var firstArrival: [String: Int64] = [:]
        var duplicates = 0
        for item in heard {
            if firstArrival[item.caseID] != nil { duplicates += 1 } else { firstArrival[item.caseID] = item.atMs }
        }
        func lateness(_ ids: Set<String>) -> [Int64] {
            ids.compactMap { id in firstArrival[id].map { $0 - due[id]! } }.sorted()
        }
        let movedLate = lateness(onMovedShard), otherLate = lateness(Set(due.keys).subtracting(onMovedShard))
        func percentile(_ values: [Int64], _ p: Double) -> Int64 { values.isEmpty ? 0 : values[min(values.count - 1, Int(Double(values.count) * p))] }
        emit(["bench": "failover-notices", "cases": cases, "lease_ttl": leaseTtl, "proposal_ttl": proposalTtl,
              "missing": due.count - firstArrival.count, "duplicates": duplicates, "moved_cases": onMovedShard.count,
              "moved_p99_ms": percentile(movedLate, 0.99), "moved_max_ms": movedLate.last ?? 0,
              "other_p99_ms": percentile(otherLate, 0.99), "other_max_ms": otherLate.last ?? 0])
    }
}
