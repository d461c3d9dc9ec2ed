import AfterSalesDaemon
import AfterSalesProto
import AfterSalesRPC
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// everysec's background sync, held until the test opens it: the storage layer's
/// fault-injecting hook (`DaemonConfig.backgroundSyncOverride`).
final class SyncGate: @unchecked Sendable {
    private let condition = NSCondition()
    private var isOpen = false
    private var started = 0

    func sync(_ fd: Int32, _ path: String) throws {
        condition.lock()
        started += 1
        condition.broadcast()
        while !isOpen { condition.wait() }
        condition.unlock()
        _ = fdatasync(fd)
    }

    /// Waits (at most 5 s) until a sync has started and is being held.
    func waitForHeldSync() -> Bool {
        let limit = Date().addingTimeInterval(5)
        condition.lock()
        defer { condition.unlock() }
        while started == 0 { if !condition.wait(until: limit) { return false } }
        return true
    }

    func open() {
        condition.lock()
        isOpen = true
        condition.broadcast()
        condition.unlock()
    }
}

@Suite(.serialized) struct DurableAnnouncementTests {
    /// Under everysec the reply goes before the disk has the change; the announcement must
    /// not: a subscriber that heard of it could see it un-happen in a power loss.
    @Test func everysecPublishesOnlyWhatTheSyncCovered() throws {
        let gate = SyncGate()
        var config = DaemonConfig()
        config.rpcEndpoint = "tcp://127.0.0.1:*"
        config.pubEndpoint = "tcp://127.0.0.1:*"
        config.dataDirectory = temporaryDataDirectory()
        config.fsync = .everysec
        config.snapshotIntervalMs = 0
        config.backgroundSyncOverride = { try gate.sync($0, $1) }
        let daemon = try Daemon(config: config)
        let thread = Thread { try? daemon.run() }
        thread.start()
        let endpoints = try #require(daemon.waitUntilReady())
        defer {
            gate.open()
            daemon.stop()
        }
        let subscriber = try TestSubscriber(endpoints.pub)
        let caller = try TestCaller(endpoints.rpc)

        let created = try caller.call(RPCs.createCase, interventionCase(order: "HELD"))
        #expect(created.case.status == .proposalPending, "the reply does not wait for the sync")
        #expect(gate.waitForHeldSync())
        #expect(try subscriber.next(timeoutMs: 300) == nil, "nothing is published before its record is synced")
        let held = try caller.call(RPCs.getStats, .init())
        #expect(held.unpublishedEvents == 2 && held.lastEventSeq == 0)
        #expect(try caller.call(RPCs.replayEvents, .with { $0.fromSeq = 1 }).events.isEmpty, "nor served for replay")

        gate.open()
        let first = try #require(try subscriber.next())
        let second = try #require(try subscriber.next())
        #expect([first.event.seq, second.event.seq] == [1, 2])
        #expect([first.topic, second.topic] == ["case.created", "proposal.issued"])
        let released = try caller.call(RPCs.getStats, .init())
        #expect(released.unpublishedEvents == 0 && released.lastEventSeq == 2)
        #expect(first.event.incarnation == released.incarnation && first.event.incarnationStartSeq == 1)
    }

    /// Under never the daemon syncs only when it rotates the journal for a snapshot (or
    /// stops): that sync releases what waited.
    @Test func neverPublishesAtTheNextSnapshot() throws {
        let daemon = try DaemonProcess(arguments: ["--snapshot-interval", "0"], fsync: "never")
        defer { daemon.stop() }
        let subscriber = try TestSubscriber(daemon.pub)
        let caller = try TestCaller(daemon.rpc)
        _ = try caller.call(RPCs.createCase, plainCase(order: "NEVER"))
        #expect(try subscriber.next(timeoutMs: 300) == nil)
        #expect(try caller.call(RPCs.getStats, .init()).unpublishedEvents == 1)
        _ = try caller.call(RPCs.takeSnapshot, .init())
        #expect(try subscriber.next()?.event.seq == 1)
    }

    /// Every start is a new incarnation of the stream, beginning after what is on disk;
    /// announcements kept across the restart keep the incarnation they were made in.
    @Test func eachStartIsANewIncarnation() throws {
        let directory = temporaryDataDirectory()
        let before: Aftersales_V1_GetStatsResponse
        do {
            let daemon = try DaemonProcess(dataDirectory: directory)
            let caller = try TestCaller(daemon.rpc)
            _ = try caller.call(RPCs.createCase, plainCase(order: "INC1"))
            before = try caller.call(RPCs.getStats, .init())
            #expect(before.incarnation != 0 && before.incarnationStartSeq == 1)
            daemon.kill()
        }
        let daemon = try DaemonProcess(dataDirectory: directory)
        defer { daemon.stop() }
        let caller = try TestCaller(daemon.rpc)
        _ = try caller.call(RPCs.createCase, plainCase(order: "INC2"))
        let after = try caller.call(RPCs.getStats, .init())
        #expect(after.incarnation != before.incarnation && after.incarnationStartSeq == before.lastEventSeq + 1)
        let replay = try caller.call(RPCs.replayEvents, .with { $0.fromSeq = 1 })
        #expect(replay.incarnation == after.incarnation && replay.incarnationStartSeq == after.incarnationStartSeq)
        #expect(replay.events.map(\.incarnation) == [before.incarnation, after.incarnation])
    }
}
