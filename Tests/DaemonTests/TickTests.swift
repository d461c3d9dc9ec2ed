@testable import AfterSalesDaemon
import AfterSalesProto
import AfterSalesRPC
import CaseEngine
import Foundation
import Logging
import SwiftProtobuf
import Synchronization
import Testing
import ZeroMQ

/// A clock that moves only when the test says so.
final class ManualClock: DaemonClock {
    private let current: Mutex<Millis>
    init(_ start: Millis) { current = Mutex(start) }
    func now() -> Millis { current.withLock { $0 } }
    func advance(by milliseconds: Millis) { current.withLock { $0 += milliseconds } }
}

/// The daemon's turn without sockets: frames in, replies and announcements out, time moved
/// by the test (swift-nio's EmbeddedEventLoop, for the daemon).
@Suite struct TickTests {
    static let start: Millis = 1_800_000_000_000

    /// A core on a fresh data directory, without periodic snapshots; `adjust` changes the rest.
    func core(_ clock: ManualClock, _ adjust: (inout DaemonConfig) -> Void = { _ in }) throws -> DaemonCore {
        var config = DaemonConfig()
        config.dataDirectory = temporaryDataDirectory()
        config.snapshotIntervalMs = 0
        adjust(&config)
        return try DaemonCore(config: config, clock: clock, logger: Logger(label: "tick-test"))
    }

    /// A ROUTER message as a DEALER's call arrives: routing id, empty delimiter, envelope.
    func call(_ method: Method, _ request: some SwiftProtobuf.Message, id: UInt64, from peer: Frame = [0, 1, 2, 3]) throws -> [Frame] {
        [peer, [], try RequestEnvelope(requestID: id, method: method, payload: try request.serializedBytes()).serializedBytes()]
    }

    @Test func aProposalIsIssuedAndExpiresTwelveHoursLaterWithoutASocket() throws {
        let clock = ManualClock(Self.start)
        let core = try core(clock)

        let created = try core.tick([try call(.createCase, interventionCase(order: "TICK"), id: 7)])
        let reply = try ResponseEnvelope(serializedBytes: try #require(created.replies.first).body)
        #expect(reply.requestID == 7 && reply.code == .ok)
        #expect(Array(try #require(created.replies.first).routing) == [[0, 1, 2, 3]])
        let caseID = try reply.decodedPayload(as: Aftersales_V1_CreateCaseResponse.self).case.caseID
        #expect(created.events.map(\.topic) == ["case.created", "proposal.issued"])

        clock.advance(by: 12 * 3_600_000 - 1)
        #expect(try core.tick().events.isEmpty, "nothing before the deadline")
        clock.advance(by: 1)
        let expired = try core.tick()
        #expect(expired.events.map(\.topic) == ["proposal.expired"])
        let notice = try EventEnvelope(serializedBytes: try #require(expired.events.first).bytes)
        #expect(notice.caseID == caseID && !notice.late && notice.timeMs == Self.start + 12 * 3_600_000)
        #expect(notice.seq == 3 && notice.case.status == .awaitingMerchantReview)
    }

    /// While calls arrive, a burst of due deadlines is worked off at --deadline-rate (here
    /// one), and the loop rests between; a call on an overdue case fires that case's
    /// deadline first, so it never acts on a proposal past its time; with no calls the
    /// rest fire at once, none twice.
    @Test func aBurstOfDeadlinesYieldsToCallsWhichSeeTheirCaseExpired() throws {
        let clock = ManualClock(Self.start)
        let core = try core(clock) { $0.deadlineRatePerSecond = 1 }
        let created = try core.tick(try (0..<20).map { try call(.createCase, interventionCase(order: "RATE-\($0)"), id: UInt64($0)) })
        let ids = try created.replies.map {
            try ResponseEnvelope(serializedBytes: $0.body).decodedPayload(as: Aftersales_V1_CreateCaseResponse.self).case.caseID
        }
        #expect(ids.count == 20)
        clock.advance(by: 12 * 3_600_000)
        func expired(_ output: TurnOutput) throws -> [String] {
            try output.events.filter { $0.topic == "proposal.expired" }.map { try EventEnvelope(serializedBytes: $0.bytes).caseID }
        }

        let read = try core.tick([try call(.getCase, Aftersales_V1_GetCaseRequest.with { $0.caseID = ids[9] }, id: 100)])
        let seen = try ResponseEnvelope(serializedBytes: try #require(read.replies.first).body).decodedPayload(as: Aftersales_V1_GetCaseResponse.self).case
        #expect(seen.status == .awaitingMerchantReview && seen.proposal.state == .expired, "the read fired its case's deadline first")
        var fired = try expired(read)
        #expect(fired.first == ids[9] && fired.count == 2, "its own, then one from the queue (the bucket holds one)")
        #expect(core.pollTimeout(now: clock.now()) >= 1, "the loop rests instead of spinning on the backlog")

        let accept = Aftersales_V1_RespondToProposalRequest.with { $0.caseID = ids[15]; $0.consumerID = "C1"; $0.decision = .accept }
        let late = try core.tick([try call(.respondToProposal, accept, id: 101)])
        let refused = try ResponseEnvelope(serializedBytes: try #require(late.replies.first).body)
        #expect(refused.code == .failedPrecondition, "accepting after expires_at is refused, backlog or not: \(refused.message)")
        fired += try expired(late)
        #expect(fired.contains(ids[15]) && fired.count <= 4)

        core.lastCallAt = 0  // no call for a long while: deadlines fire as fast as they can (a slice a turn)
        for _ in 0..<100 where (core.nextDeadline ?? .max) <= clock.now() {
            #expect(core.pollTimeout(now: clock.now()) == 0, "no rest without calls")
            fired += try expired(core.tick())
        }
        #expect(fired.sorted() == ids.sorted(), "every proposal expired exactly once")
    }

    /// A turn that has calls and a deadline backlog answers the calls before the slice.
    @Test func callsAreAnsweredBeforeADeadlineSlice() throws {
        let clock = ManualClock(Self.start)
        let core = try core(clock)
        _ = try core.tick(try (0..<3).map { try call(.createCase, interventionCase(order: "FIRST-\($0)"), id: UInt64($0)) })
        clock.advance(by: 12 * 3_600_000)
        core.receive(try call(.ping, Aftersales_V1_PingRequest(), id: 50))
        var sent: [TurnOutput] = []
        try core.finishTurn { sent.append($0) }
        #expect(sent.count == 2)
        #expect(sent.first?.replies.count == 1 && sent.first?.events.isEmpty == true, "the reply leaves before any firing")
        #expect(sent.last?.replies.isEmpty == true && sent.last?.events.map(\.topic) == Array(repeating: "proposal.expired", count: 3))
    }

    @Test func refusalsAndRepliesKeepTheCallersOrder() throws {
        let core = try core(ManualClock(Self.start))
        let output = try core.tick([
            try call(.getCase, Aftersales_V1_GetCaseRequest.with { $0.caseID = "AS0000000099" }, id: 1, from: [9]),
            [[8], [], [0xff, 0xff]],
            try call(.createCase, plainCase(order: "T2"), id: 3, from: [7]),
        ])
        let replies = try output.replies.map { try ResponseEnvelope(serializedBytes: $0.body) }
        #expect(replies.map(\.code) == [.notFound, .invalidArgument, .ok])
        #expect(output.replies.map { Array($0.routing) } == [[[9]], [[8]], [[7]]])
        #expect(output.events.map(\.topic) == ["case.created"])
    }

    /// Announcements made durable together (here by the final snapshot's sync under
    /// --fsync never) go out a slice per turn, in order, none lost; a stop drains them all.
    @Test func durableAnnouncementsGoOutASlicePerTurn() throws {
        let clock = ManualClock(Self.start)
        let core = try core(clock) {
            $0.fsync = .never
            $0.maxPublishedPerTurn = 4
        }
        let calls = try (0..<5).map { try call(.createCase, interventionCase(order: "BURST-\($0)"), id: UInt64($0)) }
        let created = try core.tick(calls)
        #expect(created.replies.count == 5 && created.events.isEmpty, "under never they wait for a sync")
        var slices: [[UInt64]] = []
        try core.shutdown { output in slices.append(output.events.map(\.seq)) }
        #expect(slices.flatMap { $0 } == Array(1...10), "5 cases created and 5 proposals issued, in order")
        // Sliced: the snapshot's completion and the turn each release at most 4.
        #expect(slices.allSatisfy { $0.count <= 8 } && slices.filter { !$0.isEmpty }.count >= 2)
    }

    @Test func theAnnouncementLogReleasesAtMostItsLimit() throws {
        var log = AnnouncementLog(window: 100)
        let (c, _) = try WireEncodingTests().sampleCase()
        let outcome = Outcome(case: c, announcements: (0..<10).map { _ in
            Announcement(topic: .caseUpdated, caseID: c.caseID, previousStatus: nil, status: c.status) })
        _ = log.announce(outcome, at: 1, caseBytes: [], record: 1)
        var published: [PublishedEvent] = []
        #expect(log.release(durableBefore: 2, into: &published, limit: 4) && published.map(\.seq) == [1, 2, 3, 4])
        #expect(log.release(durableBefore: 2, into: &published, limit: 4) && published.count == 8)
        #expect(!log.release(durableBefore: 2, into: &published, limit: 4) && published.map(\.seq) == Array(1...10))
        #expect(log.unpublishedCount == 0)
    }

    /// A steady load that announces more per turn than the slice does not build a backlog:
    /// each turn's announcements go out with it (a fixed slice once left a backlog that
    /// kept the loop publishing long after the load).
    @Test func aSteadyLoadAboveTheSliceLeavesNoBacklog() throws {
        let clock = ManualClock(Self.start)
        let core = try core(clock) { $0.maxPublishedPerTurn = 4 }
        var published = 0
        for turn in 0..<20 {
            let calls = try (0..<5).map { try call(.createCase, interventionCase(order: "STEADY-\(turn)-\($0)"), id: UInt64($0)) }
            let output = try core.tick(calls)
            published += output.events.count
            #expect(output.events.count == 10, "5 cases created and 5 proposals issued this turn, all published with it")
        }
        #expect(published == 200 && core.pollTimeout(now: clock.now()) > 0)
    }
}

/// The snapshot thread runs under SCHED_IDLE and is lifted to nice 19 once starved.
@Suite struct SnapshotSchedulingTests {
    @Test func theSnapshotThreadIdlesUntilStarvedThenRunsAtNice19() throws {
        let scheduling = SnapshotScheduling()
        let policies = Mutex<[Int32]>([])
        let lifted = DispatchSemaphore(value: 0), checked = DispatchSemaphore(value: 0), started = DispatchSemaphore(value: 0)
        let thread = Thread {
            scheduling.yieldToEveryOtherThread()
            policies.withLock { $0.append(sched_getscheduler(0)) }
            started.signal()
            lifted.wait()
            let policy = sched_getscheduler(0), nice = Int32(getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0))
            policies.withLock { $0 += [policy, nice] }
            checked.signal()
        }
        thread.start()
        started.wait()
        let now = monotonicNanoseconds()
        scheduling.liftIfStarved(nowNanoseconds: now)  // not starved yet: stays idle
        scheduling.liftIfStarved(nowNanoseconds: now + SnapshotScheduling.starvedAfterNanoseconds + 1_000_000_000)
        lifted.signal()
        checked.wait()
        #expect(policies.withLock { $0 } == [5 /* SCHED_IDLE */, Int32(SCHED_OTHER), 19])
    }
}
