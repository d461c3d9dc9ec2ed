@testable import AfterSalesDaemon
import AfterSalesProto
import AfterSalesRPC
import AfterSalesTestSupport
import Foundation
import Postgres
import SwiftProtobuf
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// An intervention case (the judgement proposes at once) on its own order line.
private func proposalCase(_ order: String) -> Aftersales_V1_CreateCaseRequest { interventionCase(order: order) }

/// The shard a new case of this request lands in (8 shards unless said).
private func shardOfNewCase(_ request: Aftersales_V1_CreateCaseRequest, shardCount: UInt64) -> UInt64 {
    ShardKey.shard(orderID: request.orderID, orderLineID: request.orderLineID, shardCount: shardCount)
}

/// The shards a member served when `servedBy` was taken.
private func shards(of member: DaemonProcess, in servedBy: [UInt64: DaemonProcess]) -> [UInt64] {
    servedBy.filter { $0.value === member }.map(\.key).sorted()
}

/// Milliseconds since `start`.
private func elapsedMs(since start: ContinuousClock.Instant) -> Int64 {
    let d = ContinuousClock.now - start
    return d.components.seconds * 1_000 + d.components.attoseconds / 1_000_000_000_000_000
}

/// Cluster mode against a real PostgreSQL: members as processes, killed, stopped and
/// resumed; PostgreSQL restarted under them.
@Suite(.serialized) struct ClusterTests {
    @Test func initRefusesASecondClusterAndMembersSpreadTheShards() throws {
        let cluster = try ClusterFixture(shards: 8, members: 2)
        let again = try runDaemon(["cluster", "init", "--shards", "16", cluster.postgres.url])
        #expect(again.status == 78)
        #expect(again.stderr.contains("already holds an aftersales cluster of 8 shards"), "\(again.stderr)")

        let servedBy = try cluster.waitUntilServed()
        let counts = cluster.members.map { shards(of: $0, in: servedBy).count }
        #expect(counts.sorted() == [4, 4], "an even spread over two members: \(counts)")
        let map = try cluster.map()
        #expect(map.shardCount == 8 && map.members.count == 2)
        #expect(Set(map.shards.map(\.rpcEndpoint)) == Set(cluster.members.map(\.rpc)))
        #expect(map.shards.allSatisfy { $0.epoch >= 1 && $0.leaseExpiresMs > 0 })
    }

    @Test func aCallSentToTheWrongMemberCarriesTheOwnersEndpoint() throws {
        let cluster = try ClusterFixture(shards: 8, members: 2)
        let servedBy = try cluster.waitUntilServed()
        let (a, b) = (cluster.members[0], cluster.members[1])
        let shard = try #require(shards(of: b, in: servedBy).first)
        let wrong = try TestCaller(a.rpc)
        // Right after a move, a member may not have read the new owner yet: it says the
        // shard is between owners (an empty redirect) and reads the table again shortly.
        func misroutedCall(_ method: Method, _ request: some SwiftProtobuf.Message) throws -> ResponseEnvelope {
            var answer = try wrong.callRaw(method, request)
            for _ in 0..<40 where answer.code == .unavailable && answer.redirect.rpcEndpoint.isEmpty {
                usleep(50_000)
                answer = try wrong.callRaw(method, request)
            }
            return answer
        }
        let answer = try misroutedCall(.getCase, Aftersales_V1_GetCaseRequest.with { $0.caseID = cluster.probeCaseID(shard: shard) })
        #expect(answer.code == .unavailable)
        #expect(answer.hasRedirect)
        #expect(answer.redirect.shard == UInt32(shard))
        #expect(answer.redirect.rpcEndpoint == b.rpc, "\(answer.message)")
        #expect(answer.redirect.pubEndpoint == b.pub)
        #expect(answer.redirect.shardCount == 8)

        // CreateCase is routed by its order line: find one that belongs to b, send it to a.
        let order = try #require((0..<1_000).map { "R\($0)" }.first { servedBy[shardOfNewCase(proposalCase($0), shardCount: 8)] === b })
        let misrouted = try misroutedCall(.createCase, proposalCase(order))
        #expect(misrouted.code == .unavailable && misrouted.redirect.rpcEndpoint == b.rpc)
        let followed = try ClusterCaller([a.rpc]).call(.createCase, proposalCase(order))
        #expect(followed.answer.code == .ok && followed.endpoint == b.rpc)
        let created = try followed.answer.decodedPayload(as: Aftersales_V1_CreateCaseResponse.self).case
        #expect(ShardKey.shard(caseID: created.caseID, shardCount: 8) == shardOfNewCase(proposalCase(order), shardCount: 8),
                "the case id names the shard its order line hashes to")
    }

    /// kill -9 of a member under load from several callers: its shards are served again
    /// within the lease + 2 s, nothing acknowledged is lost, each shard's announcements
    /// are numbered without gaps or repeats, and proposals that expired while the shard
    /// had no owner expire exactly once, announced late.
    @Test func aKilledMembersShardsMoveAndNothingAcknowledgedIsLost() throws {
        let cluster = try ClusterFixture(shards: 8, members: 2, arguments: ["--proposal-ttl", "2s", "--snapshot-interval", "1s"])
        var servedBy = try cluster.waitUntilServed()
        let (survivor, victim) = (cluster.members[0], cluster.members[1])
        let moved = shards(of: victim, in: servedBy)
        #expect(!moved.isEmpty)

        let acknowledged = Mutex<[String: String]>([:])  // case id → order
        let stop = Atomic<Bool>(false)
        let failures = Atomic<Int>(0)
        let callers = (0..<4).map { worker in
            Thread {
                let caller = ClusterCaller([survivor.rpc, victim.rpc])
                var n = 0
                while !stop.load(ordering: .relaxed) {
                    n += 1
                    let order = "K\(worker)-\(n)"
                    guard let (answer, _) = try? caller.call(.createCase, proposalCase(order), key: "k-\(order)", within: .seconds(20)) else {
                        failures.add(1, ordering: .relaxed)
                        continue
                    }
                    if answer.code == .ok, let created = try? answer.decodedPayload(as: Aftersales_V1_CreateCaseResponse.self) {
                        acknowledged.withLock { $0[created.case.caseID] = order }
                    }
                }
            }
        }
        for thread in callers { thread.start() }
        usleep(1_500_000)
        let killedAt = ContinuousClock.now
        victim.kill()
        // The first call answered for each moved shard, by the survivor.
        var back: [UInt64: Int64] = [:]
        while back.count < moved.count, elapsedMs(since: killedAt) < 15_000 {
            for shard in moved where back[shard] == nil && cluster.serves(survivor, shard: shard) { back[shard] = elapsedMs(since: killedAt) }
            usleep(20_000)
        }
        usleep(2_500_000)  // keep the load on the survivor a little longer, and let the proposals expire
        stop.store(true, ordering: .relaxed)
        for thread in callers { while !thread.isFinished { usleep(10_000) } }

        let worst = try #require(back.values.max(), "no moved shard was served again: \(survivor.stderr.suffix(2000))")
        #expect(back.count == moved.count)
        #expect(worst <= 2_000 + 2_000, "moved shards answered again after \(back.sorted { $0.key < $1.key }) ms (lease 2 s)")
        servedBy = try cluster.waitUntilServed()
        #expect(servedBy.values.allSatisfy { $0 === survivor })

        let cases = acknowledged.withLock { $0 }
        #expect(cases.count > 20, "the load made \(cases.count) cases (\(failures.load(ordering: .relaxed)) calls gave up)")
        let reader = ClusterCaller([survivor.rpc])
        usleep(2_500_000)  // every proposal's 2 s validity has run out by now
        for (caseID, order) in cases {
            let got = try reader.call(.getCase, Aftersales_V1_GetCaseRequest.with { $0.caseID = caseID })
            #expect(got.answer.code == .ok, "acknowledged case \(caseID) (\(order)) is gone: \(got.answer.message)")
            guard got.answer.code == .ok else { continue }
            let stored = try got.answer.decodedPayload(as: Aftersales_V1_GetCaseResponse.self).case
            #expect(stored.orderID == order)
            #expect(stored.history.filter { $0.action == "proposal.expire" }.count == 1, "\(caseID): \(stored.history.map(\.action))")
        }

        // Each shard's announcements: 1, 2, 3, … with no gap and no repeat; one expiry per case.
        var expiredLate = 0
        for shard in 0..<cluster.shardCount {
            let replay = try reader.call(.replayEvents, Aftersales_V1_ReplayEventsRequest.with {
                $0.shard = UInt32(shard)
                $0.fromSeq = 1
                $0.maxEvents = 10_000
            })
            #expect(replay.answer.code == .ok, "\(replay.answer.message)")
            let events = try replay.answer.decodedPayload(as: Aftersales_V1_ReplayEventsResponse.self).events
            #expect(events.map(\.seq) == Array(1...UInt64(max(1, events.count))).prefix(events.count).map { $0 }, "shard \(shard)")
            #expect(events.allSatisfy { $0.shard == UInt32(shard) })
            let expiries = events.filter { $0.topic == "proposal.expired" }
            #expect(Set(expiries.map(\.caseID)).count == expiries.count, "shard \(shard) announced an expiry twice")
            if moved.contains(shard) { expiredLate += expiries.filter(\.late).count }
        }
        #expect(expiredLate > 0, "proposals of the killed member's shards that expired while unowned are announced late")
    }

    /// SIGSTOP an owner past its lease, let the other member take its shards, SIGCONT it:
    /// it serves them no more, and none of its writes lands after the new owner's first.
    @Test func aStoppedMemberIsFencedWhenItWakes() throws {
        let cluster = try ClusterFixture(shards: 4, members: 2)
        let servedBy = try cluster.waitUntilServed()
        let (active, sleeper) = (cluster.members[0], cluster.members[1])
        let taken = shards(of: sleeper, in: servedBy)
        let caller = ClusterCaller([sleeper.rpc])
        // Some writes by the sleeper first.
        var orders: [String] = []
        for n in 0..<40 {
            let order = "S\(n)"
            if taken.contains(shardOfNewCase(proposalCase(order), shardCount: 4)) {
                #expect(try caller.call(.createCase, proposalCase(order)).answer.code == .ok)
                orders.append(order)
            }
        }
        Glibc.kill(sleeper.process.processIdentifier, SIGSTOP)
        defer { Glibc.kill(sleeper.process.processIdentifier, SIGCONT) }
        let deadline = ContinuousClock.now + .seconds(15)
        while !taken.allSatisfy({ cluster.serves(active, shard: $0) }), ContinuousClock.now < deadline { usleep(50_000) }
        #expect(taken.allSatisfy { cluster.serves(active, shard: $0) }, "the active member took the sleeper's shards")
        // The new owner writes to a taken shard.
        let newOrder = try #require((100..<500).map { "N\($0)" }.first { shardOfNewCase(proposalCase($0), shardCount: 4) == taken[0] })
        #expect(try ClusterCaller([active.rpc]).call(.createCase, proposalCase(newOrder)).answer.code == .ok)

        // A call waiting at the sleeper when it wakes.
        let stale = try TestCaller(sleeper.rpc, receiveTimeoutMs: 10_000)
        let waiting = try stale.send(.createCase, proposalCase(try #require((500..<900).map { "W\($0)" }.first {
            shardOfNewCase(proposalCase($0), shardCount: 4) == taken[0] })))
        Glibc.kill(sleeper.process.processIdentifier, SIGCONT)
        let answer = try stale.receive()
        #expect(answer.requestID == waiting)
        #expect(answer.code == .unavailable, "the woken member must not serve a shard it no longer owns: \(answer.message)")
        #expect(answer.redirect.rpcEndpoint == active.rpc || answer.redirect.rpcEndpoint.isEmpty || answer.redirect.rpcEndpoint == sleeper.rpc)
        // It learns it was fenced and drops the shards (it may later be given some back,
        // at a new epoch, when the two rebalance).
        let dropDeadline = ContinuousClock.now + .seconds(10)
        while !sleeper.stderr.contains("has been taken over by another member"), ContinuousClock.now < dropDeadline { usleep(50_000) }
        #expect(sleeper.stderr.contains("has been taken over by another member"), "\(sleeper.stderr.suffix(2000))")

        // In PostgreSQL: per shard, every record of the old epoch precedes every record of the new.
        let db = try PostgresConnection(url: cluster.postgres.url)
        let rows = try db.execute("""
            SELECT shard, epoch, min(seq), max(seq) FROM aftersales_journal GROUP BY shard, epoch ORDER BY shard, epoch
            """)
        var spans: [Int64: [(epoch: Int64, first: Int64, last: Int64)]] = [:]
        for row in 0..<rows.rowCount {
            spans[try rows.int64(row: row, column: 0), default: []].append(
                (try rows.int64(row: row, column: 1), try rows.int64(row: row, column: 2), try rows.int64(row: row, column: 3)))
        }
        for (shard, byEpoch) in spans {
            for (older, newer) in zip(byEpoch, byEpoch.dropFirst()) {
                #expect(older.last < newer.first, "shard \(shard): epoch \(older.epoch) wrote seq \(older.last) after epoch \(newer.epoch)'s first \(newer.first)")
            }
        }
        #expect(spans[Int64(taken[0])].map { $0.count >= 2 } == true, "the taken shard has records of two owners")
    }

    /// ReplayEvents in a cluster is served from PostgreSQL by any member, for any shard,
    /// and only as far back as --event-retention.
    @Test func anyMemberReplaysAnyShardWithinTheRetention() throws {
        let cluster = try ClusterFixture(shards: 2, members: 2, arguments: ["--event-retention", "1s"])
        let servedBy = try cluster.waitUntilServed()
        let caller = ClusterCaller(cluster.members.map(\.rpc))
        let order = try #require((0..<100).map { "E\($0)" }.first { shardOfNewCase(proposalCase($0), shardCount: 2) == 0 })
        #expect(try caller.call(.createCase, proposalCase(order)).answer.code == .ok)
        let owner = try #require(servedBy[0])
        let other = try #require(cluster.members.first { $0 !== owner })
        let fromOther = try TestCaller(other.rpc).callRaw(.replayEvents, Aftersales_V1_ReplayEventsRequest.with { $0.shard = 0; $0.fromSeq = 1 })
        #expect(fromOther.code == .ok, "a member that does not own the shard answers from PostgreSQL: \(fromOther.message)")
        let first = try fromOther.decodedPayload(as: Aftersales_V1_ReplayEventsResponse.self)
        #expect(first.events.map(\.topic) == ["case.created", "proposal.issued"])
        #expect(first.events.map(\.seq) == [1, 2] && first.events.allSatisfy { $0.shard == 0 && $0.caseID.hasPrefix("AS") })

        usleep(2_500_000)  // past the 1 s retention; members sweep every second
        let later = try #require((100..<300).map { "E\($0)" }.first { shardOfNewCase(proposalCase($0), shardCount: 2) == 0 })
        #expect(try caller.call(.createCase, proposalCase(later)).answer.code == .ok)
        var gone = try TestCaller(other.rpc).callRaw(.replayEvents, Aftersales_V1_ReplayEventsRequest.with { $0.shard = 0; $0.fromSeq = 1 })
        for _ in 0..<30 where gone.code == .ok {
            usleep(200_000)
            gone = try TestCaller(other.rpc).callRaw(.replayEvents, Aftersales_V1_ReplayEventsRequest.with { $0.shard = 0; $0.fromSeq = 1 })
        }
        #expect(gone.code == .outOfRange, "\(gone.message)")
        #expect(gone.message.contains("the oldest available is"))
        let bad = try TestCaller(other.rpc).callRaw(.replayEvents, Aftersales_V1_ReplayEventsRequest.with { $0.shard = 7; $0.fromSeq = 1 })
        #expect(bad.code == .invalidArgument)
    }

    /// The fence itself, without processes: a commit at a superseded epoch changes nothing.
    @Test func aCommitAtAnOldEpochIsFencedAndWritesNothing() throws {
        let postgres = try PostgresServer()
        _ = try ClusterSetup.initialize(url: postgres.url, shards: 2)
        let first = try ClusterDatabase(url: postgres.url)
        let second = try ClusterDatabase(url: postgres.url)
        let claimed = try first.claimShards(member: "one", rpc: "tcp://one", pub: "tcp://one-pub", count: 1, ttlMs: 100)
        let (shard, epoch) = try #require(claimed.first)
        #expect(try first.commit(member: "one", batches: [ShardBatch(shard: shard, epoch: epoch, records: [(1, [1, 2, 3])])]).isEmpty)
        usleep(200_000)  // the lease of 100 ms runs out
        let stolen = try second.claimShards(member: "two", rpc: "tcp://two", pub: "tcp://two-pub", count: 2, ttlMs: 10_000)
        #expect(stolen.contains { $0.shard == shard && $0.epoch == epoch + 1 })
        #expect(throws: FencedShards.self) {
            try first.commit(member: "one", batches: [ShardBatch(shard: shard, epoch: epoch, records: [(2, [4, 5, 6])])])
        }
        let loaded = try second.loadShard(shard)
        #expect(loaded.records.map(\.sequence) == [1], "the fenced record was not written")
        #expect(try second.renewShards(member: "one", owned: [shard: epoch], ttlMs: 1_000).isEmpty)
    }

    /// PostgreSQL restarted under load: calls get UNAVAILABLE meanwhile, the members carry
    /// on without being restarted, and every acknowledged case is there afterwards.
    @Test func postgresRestartedUnderLoad() throws {
        let cluster = try ClusterFixture(shards: 4, members: 2)
        try cluster.waitUntilServed()
        let acknowledged = Mutex<[String]>([])
        let unavailable = Atomic<Int>(0)
        let stop = Atomic<Bool>(false)
        let endpoints = cluster.members.map(\.rpc)
        let workers = (0..<3).map { worker in
            Thread {
                let caller = ClusterCaller(endpoints)
                var n = 0
                while !stop.load(ordering: .relaxed) {
                    n += 1
                    guard let (answer, _) = try? caller.call(.createCase, proposalCase("P\(worker)-\(n)"), key: "p-\(worker)-\(n)",
                                                               within: .milliseconds(300)) else { continue }
                    if answer.code == .ok, let created = try? answer.decodedPayload(as: Aftersales_V1_CreateCaseResponse.self) {
                        acknowledged.withLock { $0.append(created.case.caseID) }
                    } else if answer.code == .unavailable {
                        unavailable.add(1, ordering: .relaxed)
                    }
                }
            }
        }
        for thread in workers { thread.start() }
        usleep(1_000_000)
        let before = acknowledged.withLock { $0.count }
        try cluster.postgres.restart()
        usleep(4_000_000)
        stop.store(true, ordering: .relaxed)
        for thread in workers { while !thread.isFinished { usleep(10_000) } }
        let cases = acknowledged.withLock { $0 }
        #expect(cases.count > before, "calls succeed again after the restart (\(before) before, \(cases.count) in all)")
        #expect(unavailable.load(ordering: .relaxed) > 0, "calls during the outage were answered UNAVAILABLE")
        #expect(cluster.members.allSatisfy { $0.process.isRunning }, "no member had to be restarted")
        try cluster.waitUntilServed()
        let reader = ClusterCaller(endpoints)
        for caseID in cases {
            let got = try reader.call(.getCase, Aftersales_V1_GetCaseRequest.with { $0.caseID = caseID })
            #expect(got.answer.code == .ok, "acknowledged case \(caseID) is gone: \(got.answer.message)")
        }
    }
}
