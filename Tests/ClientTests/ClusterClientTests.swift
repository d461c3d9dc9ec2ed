import AfterSalesClient
import AfterSalesProto
import AfterSalesRPC
import AfterSalesTestSupport
import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Clients and subscribers that see the whole cluster: members killed, stopped and resumed
/// under them.
@Suite(.serialized) struct ClusterClientTests {
    /// Every call of a client succeeds across a kill -9 of the member it was talking to.
    @Test func callsSucceedAcrossAKillOfTheirMember() async throws {
        let cluster = try ClusterFixture(shards: 8, members: 2)
        let servedBy = try await onThread { try cluster.waitUntilServed() }
        let (victim, survivor) = (cluster.members[0], cluster.members[1])
        let client = try ClusterClient(seeds: [victim.rpc, survivor.rpc], failoverDeadline: .seconds(20))
        defer { client.close() }
        var created: [String] = []
        for n in 0..<60 {
            if n == 20 { victim.kill() }
            let request = interventionCase(order: "F\(n)")
            let answer = try await client.call(RPCs.createCase, request)
            created.append(answer.case.caseID)
            let read = try await client.call(RPCs.getCase, .with { $0.caseID = answer.case.caseID })
            #expect(read.case.orderID == "F\(n)")
        }
        #expect(Set(created).count == 60)
        #expect(servedBy.values.contains { $0 === victim }, "the killed member served shards")
        #expect(client.shardCount == 8)
    }

    /// ListCases pages over three members return each matching case once, in id order.
    @Test func listCasesPagesOverThreeMembersReturnEachCaseOnce() async throws {
        let cluster = try ClusterFixture(shards: 6, members: 3)
        try await onThread { _ = try cluster.waitUntilServed() }
        let client = try ClusterClient(seeds: [cluster.members[0].rpc])
        defer { client.close() }
        var mine: Set<String> = []
        for n in 0..<25 {
            let answer = try await client.call(RPCs.createCase, interventionCase(order: "L\(n)", merchant: n % 5 == 0 ? "M-other" : "M-list"))
            if n % 5 != 0 { mine.insert(answer.case.caseID) }
        }
        var listed: [String] = []
        var token = ""
        var pages = 0
        repeat {
            let page = try await client.listCases(.with {
                $0.merchantID = "M-list"
                $0.pageSize = 7
                $0.pageToken = token
            })
            listed += page.cases.map(\.caseID)
            token = page.nextPageToken
            pages += 1
        } while !token.isEmpty && pages < 20
        #expect(listed.count == mine.count && Set(listed) == mine, "\(listed.count) listed, \(mine.count) made")
        #expect(listed == listed.sorted())
        #expect(pages == 3)
    }

    /// A subscriber counts every proposal.expired while a member is killed and another is
    /// stopped and resumed: each case's notice arrives exactly once.
    @Test func everyExpiryIsHeardExactlyOnceThroughAKillAndAPause() async throws {
        let cluster = try ClusterFixture(shards: 8, members: 3, arguments: ["--proposal-ttl", "3s"])
        try await onThread { _ = try cluster.waitUntilServed() }
        let seeds = cluster.members.map(\.rpc)
        let subscriber = ClusterSubscriber(seeds: seeds, topics: ["proposal.expired"])
        defer { subscriber.close() }
        let heard = Mutex<[String: Int]>([:])
        let listener = Task {
            for await event in subscriber {
                if case .announcement(let envelope) = event { heard.withLock { $0[envelope.caseID, default: 0] += 1 } }
            }
        }
        try await Task.sleep(for: .milliseconds(500))  // the subscriber knows each shard's position
        let client = try ClusterClient(seeds: seeds, failoverDeadline: .seconds(20))
        defer { client.close() }
        var cases: Set<String> = []
        for n in 0..<40 { cases.insert(try await client.call(RPCs.createCase, interventionCase(order: "X\(n)")).case.caseID) }
        let (killed, paused) = (cluster.members[0], cluster.members[1])
        killed.kill()
        Glibc.kill(paused.process.processIdentifier, SIGSTOP)
        try await Task.sleep(for: .seconds(4))
        Glibc.kill(paused.process.processIdentifier, SIGCONT)
        let deadline = ContinuousClock.now + .seconds(25)
        while heard.withLock({ $0.count }) < cases.count, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(100)) }
        try await Task.sleep(for: .seconds(2))  // anything heard twice would have arrived by now
        listener.cancel()
        let counts = heard.withLock { $0 }
        #expect(Set(counts.keys) == cases, "missing: \(cases.subtracting(counts.keys).sorted())")
        #expect(counts.values.allSatisfy { $0 == 1 }, "heard twice: \(counts.filter { $0.value > 1 })")
    }

    /// The probe follows a member's redirect, and `watch` on a member hears every member.
    @Test func theProbeFollowsRedirectsAndWatchesTheWholeCluster() async throws {
        let cluster = try ClusterFixture(shards: 4, members: 2, arguments: ["--proposal-ttl", "2s"])
        let servedBy = try await onThread { try cluster.waitUntilServed() }
        let (a, b) = (cluster.members[0], cluster.members[1])
        // An order whose shard b serves, created through a.
        let order = try #require((0..<500).map { "PR\($0)" }.first {
            servedBy[ShardKey.shard(orderID: $0, orderLineID: "", shardCount: 4)] === b
        })
        let watch = Task { try await onThread { try runProbe(["--endpoint", a.rpc, "watch", "proposal.expired", "--count", "2"], within: .seconds(30)) } }
        try await Task.sleep(for: .seconds(1))
        let created = try await onThread {
            try runProbe(["--endpoint", a.rpc, "create", "--order", order, "--line", "", "--consumer", "C1", "--merchant", "M1", "--category", "apparel",
                          "--paid", "100", "--refund", "100", "--delivery", "signed", "--evidence", "photo:defect"])
        }
        #expect(created.status == 0, "\(created.stderr)")
        #expect(created.stderr.contains("redirected to \(b.rpc)"), "\(created.stderr)")
        let caseID = try #require(created.stdout.split(separator: " ").first.map(String.init))
        let otherOrder = try #require((0..<500).map { "PA\($0)" }.first {
            servedBy[ShardKey.shard(orderID: $0, orderLineID: "", shardCount: 4)] === a
        })
        _ = try await onThread {
            try runProbe(["--endpoint", b.rpc, "create", "--order", otherOrder, "--line", "", "--consumer", "C1", "--merchant", "M1", "--category", "apparel",
                          "--paid", "100", "--refund", "100", "--delivery", "signed", "--evidence", "photo:defect"])
        }
        let watched = try await watch.value
        #expect(watched.status == 0, "\(watched.stderr)")
        let lines = watched.stdout.split(separator: "\n")
        #expect(lines.count == 2 && lines.allSatisfy { $0.contains("proposal.expired") && $0.hasPrefix("[shard ") }, "\(watched.stdout)")
        #expect(lines.contains { $0.contains(caseID) }, "the expiry on b's shard was heard through a: \(watched.stdout)")
    }
}
