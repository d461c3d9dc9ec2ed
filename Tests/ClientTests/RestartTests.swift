import AfterSalesClient
import AfterSalesProto
import AfterSalesRPC
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A daemon that can be killed and started again on the same endpoints and data, with a
/// client and a subscriber tuned to notice a dead daemon within a second or so.
final class RestartableDaemon: @unchecked Sendable {
    let first: DaemonProcess
    let client: AfterSalesClient
    let subscriber: EventSubscriber
    private var second: DaemonProcess?

    init() throws {
        first = try DaemonProcess(arguments: ["--snapshot-interval", "0"])
        client = try first.client(attemptTimeout: .milliseconds(400), maxAttempts: 1)
        subscriber = EventSubscriber(client: client, endpoint: first.pub,
                                     options: .init(tailCheckInterval: .milliseconds(200), callDeadline: .milliseconds(500),
                                                    maxRetryInterval: .milliseconds(300)))
    }

    var endpoints: (rpc: String, pub: String) { (first.rpc, first.pub) }

    /// The newest journal segment.
    func journalSegment() throws -> String? {
        try FileManager.default.contentsOfDirectory(atPath: first.dataDirectory)
            .filter { $0.hasPrefix("journal-") }.sorted().last.map { first.dataDirectory + "/" + $0 }
    }

    /// SIGKILL: no final snapshot, only the journal remains.
    func kill() { first.kill() }

    /// Starts the daemon again on the same endpoints and data.
    func restart() throws { second = try DaemonProcess(dataDirectory: first.dataDirectory, endpoints: endpoints) }

    func stop() {
        subscriber.close()
        client.close()
        second?.stop(removeData: true)
        first.stop(removeData: true)
    }
}

@Suite("Subscribers across daemon restarts", .serialized, .timeLimit(.minutes(2)))
struct RestartTests {
    @Test("a subscriber outlives a restart: disconnected, reconnected, every announcement exactly once")
    func subscriberOutlivesRestart() async throws {
        let daemon = try RestartableDaemon()
        defer { daemon.stop() }
        let (client, subscriber) = (daemon.client, daemon.subscriber)
        try await Task.sleep(for: .milliseconds(200))
        for index in 0..<3 { _ = try await client.createCase(createRequest("o-restart-\(index)")) }
        let before = try await client.getStats().lastEventSeq
        var events = try await collect(subscriber) { $0.compactMap(\.announcement).last?.seq == before }

        // The consumer keeps waiting while the daemon is down, as a real one would.
        let rest = Task {
            try await collect(subscriber) { $0.compactMap(\.announcement).contains { $0.case.orderID == "o-restart-5" } }
        }
        daemon.kill()
        // Down until the subscriber has noticed (bounded), however loaded the machine is.
        let noticeBy = ContinuousClock.now + .seconds(15)
        while subscriber.counters.disconnects == 0, ContinuousClock.now < noticeBy { try await Task.sleep(for: .milliseconds(100)) }
        try daemon.restart()
        for index in 3..<6 { _ = try await client.createCase(createRequest("o-restart-\(index)")) }
        let after = try await client.getStats().lastEventSeq
        events += try await rest.value

        let seqs = events.compactMap(\.announcement).map(\.seq)
        #expect(seqs == Array(1...after), "every announcement exactly once, in order")
        #expect(events.contains { if case .disconnected = $0 { true } else { false } })
        #expect(events.contains { if case .reconnected(_, true) = $0 { true } else { false } })
        #expect(!events.contains { if case .rewound = $0 { true } else { false } })
        let incarnations = Set(events.compactMap(\.announcement).map(\.incarnation))
        #expect(incarnations.count == 2, "the restart is a new incarnation")
    }

    @Test("a rewind of the stream is reported, and the reused numbers are delivered, not dropped")
    func rewindIsReported() async throws {
        let daemon = try RestartableDaemon()
        defer { daemon.stop() }
        let (client, subscriber) = (daemon.client, daemon.subscriber)
        try await Task.sleep(for: .milliseconds(200))

        _ = try await client.createCase(createRequest("o-kept"))
        let kept = try await client.getStats().lastEventSeq
        let segment = try #require(try daemon.journalSegment())
        let keptBytes = try #require(FileManager.default.attributesOfItem(atPath: segment)[.size] as? Int)
        _ = try await client.createCase(createRequest("o-vanishes"))
        let seen = try await client.getStats().lastEventSeq
        var events = try await collect(subscriber) { $0.compactMap(\.announcement).last?.seq == seen }
        #expect(events.compactMap(\.announcement).last?.case.orderID == "o-vanishes")

        // Power loss on a disk that lied about its sync: the last record is gone.
        daemon.kill()
        #expect(truncate(segment, off_t(keptBytes)) == 0)
        try daemon.restart()
        _ = try await client.createCase(createRequest("o-new"))
        events += try await collect(subscriber) { events in
            events.compactMap(\.announcement).contains { $0.case.orderID == "o-new" }
        }

        let rewinds = events.compactMap { event -> (UInt64, UInt64, UInt64, UInt64)? in
            if case .rewound(let from, let through, let old, let new) = event { return (from, through, old, new) }
            return nil
        }
        let rewind = try #require(rewinds.first)
        #expect(rewinds.count == 1)
        #expect(rewind.0 == kept + 1 && rewind.1 == seen && rewind.2 != rewind.3)
        let reused = events.compactMap(\.announcement).filter { $0.seq > kept && $0.case.orderID == "o-new" }
        #expect(reused.first?.seq == kept + 1, "the reused number is delivered with its new announcement")
    }

    @Test("probe watch keeps going across a restart and says so")
    func watchAcrossRestart() async throws {
        let daemon = try RestartableDaemon()
        defer { daemon.stop() }
        let (client, endpoints) = (daemon.client, daemon.endpoints)
        // The probe runs on a thread of its own: blocking one of Swift concurrency's few
        // cooperative threads for seconds would stall every other test meanwhile.
        let watch = Task {
            try await onThread { try runProbe(["watch", "case.created", "--from", "1", "--count", "2", "--endpoint", endpoints.rpc,
                          "--events-endpoint", endpoints.pub, "--timeout", "500ms"], within: .seconds(40)) }
        }
        _ = try await client.createCase(createRequest("o-watch-1"))
        try await Task.sleep(for: .milliseconds(500))
        daemon.kill()
        try await Task.sleep(for: .milliseconds(2_500))
        try daemon.restart()
        _ = try await client.createCase(createRequest("o-watch-2"))
        let run = try await watch.value
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.lines.count == 2 && run.lines.allSatisfy { $0.contains("case.created") }, "\(run.stdout)")
        #expect(run.stderr.contains("no answer from the daemon") && run.stderr.contains("daemon restarted"), "\(run.stderr)")
    }

    @Test("probe --timeout 0 is a usage error")
    func zeroTimeoutIsUsage() throws {
        let run = try runProbe(["ping", "--timeout", "0"])
        #expect(run.status == 64 && run.stderr.contains("--timeout"), "\(run.stderr)")
    }
}
