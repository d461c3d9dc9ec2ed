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

    func core(_ clock: ManualClock) throws -> DaemonCore {
        var config = DaemonConfig()
        config.dataDirectory = temporaryDataDirectory()
        config.snapshotIntervalMs = 0
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
        var config = DaemonConfig()
        config.dataDirectory = temporaryDataDirectory()
        config.snapshotIntervalMs = 0
        config.fsync = .never
        config.maxPublishedPerTurn = 4
        let core = try DaemonCore(config: config, clock: clock, logger: Logger(label: "tick-test"))
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
        var config = DaemonConfig()
        config.dataDirectory = temporaryDataDirectory()
        config.snapshotIntervalMs = 0
        config.maxPublishedPerTurn = 4
        let core = try DaemonCore(config: config, clock: clock, logger: Logger(label: "tick-test"))
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
