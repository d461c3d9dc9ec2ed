import AfterSalesDaemon
import AfterSalesProto
import AfterSalesRPC
import CaseEngine
import Foundation
import Synchronization
import Testing

/// A clock that moves a fixed step every time it is read: a call is received at one
/// reading and applied at a later one, so a short deadline passes in between — without
/// the test sleeping.
final class SteppingClock: DaemonClock {
    private let current: Mutex<Millis>
    private let step: Millis
    init(start: Millis, step: Millis) {
        current = Mutex(start)
        self.step = step
    }
    func now() -> Millis {
        current.withLock { value in
            value += step
            return value
        }
    }
}

@Suite struct InProcessTests {
    @Test func aCallWhoseDeadlinePassesIsRefusedAndChangesNothing() throws {
        var config = DaemonConfig()
        config.rpcEndpoint = "tcp://127.0.0.1:*"
        config.pubEndpoint = "tcp://127.0.0.1:*"
        config.dataDirectory = temporaryDataDirectory()
        config.fsync = .never
        let daemon = try Daemon(config: config, clock: SteppingClock(start: 1_800_000_000_000, step: 1_000))
        let thread = Thread { try? daemon.run() }
        thread.start()
        let endpoints = try #require(daemon.waitUntilReady())
        defer { daemon.stop() }

        let caller = try TestCaller(endpoints.rpc)
        let refused = try caller.callRaw(.createCase, plainCase(order: "late"), deadlineMs: 500)
        #expect(refused.code == .deadlineExceeded)
        #expect(try caller.call(RPCs.getStats, .init()).casesTotal == 0)
        let accepted = try caller.callRaw(.createCase, plainCase(order: "late"), deadlineMs: 60_000)
        #expect(accepted.code == .ok)
        #expect(try caller.ping())
    }
}
