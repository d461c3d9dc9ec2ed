// The daemon on real sockets: one thread owns the ROUTER and PUB sockets and the
// `DaemonCore`. Each turn polls the ROUTER socket (and the wake-up pipe) with a timeout
// that ends at the next deadline, hands the ready calls to the
// core, lets it fire the due deadlines and commit, then sends what the core releases:
// the replies, and the announcements whose journal records are on disk.
//
// No locks on this path: the hand-over of a finished background snapshot and the
// everysec sync's progress sit behind locks, taken once a turn at most.
import AfterSalesProto
import AfterSalesRPC
import CaseEngine
import Foundation
import Logging
import ZeroMQ

/// The after-sales daemon: recover, bind, serve until stopped.
public final class Daemon: @unchecked Sendable {
    /// The daemon's version, reported by Ping and GetStats.
    public static let version = "aftersalesd 0.1.0"

    public let config: DaemonConfig
    /// The state and its turn; touched by the loop thread only once `run()` starts.
    let core: DaemonCore
    private let readiness = ReadyEndpoints()
    /// systemd's readiness and watchdog (NOTIFY_SOCKET); inert elsewhere.
    private let systemd = SystemdNotifier()

    /// Opens the data directory (refusing one another daemon holds), and rebuilds the
    /// state from its snapshot and journal. Throws with the file and offset on damage.
    public init(config: DaemonConfig, clock: any DaemonClock = SystemClock(), logger: Logger = Logger(label: "aftersalesd")) throws {
        self.config = config
        core = try DaemonCore(config: config, clock: clock, logger: logger)
    }

    /// The endpoints actually bound (wildcard ports resolved); waits until `run()` has bound them.
    public func waitUntilReady(timeout: Duration = .seconds(10)) -> (rpc: String, pub: String)? {
        readiness.wait(timeout: timeout)
    }

    /// Asks the loop to finish the batch in hand, write a final snapshot and return.
    /// Safe from any thread and from a signal handler's helper thread.
    public func stop() { core.wakeUp.signal(.stop) }

    /// Asks the loop to read the clients file again (SIGHUP); safe from any thread.
    public func reloadClients() { core.wakeUp.signal(.reloadClients) }

    /// Serves until `stop()`; returns after the final snapshot, with the sockets closed.
    /// Throws `BindFailure` when a socket cannot be bound, a storage error when the
    /// journal cannot be written.
    public func run() throws {
        let context = try ZMQContext()
        // With CURVE, the ZAP handler must be bound before any CURVE socket takes a peer.
        let curve = config.curveSecretKey
        let zap = curve == nil ? nil : try ZMQSocket(context, .rep)
        try zap?.bind("inproc://zeromq.zap.01")
        let router = try ZMQSocket(context, .router)
        let publisher = try ZMQSocket(context, .pub)
        defer {
            router.close()
            publisher.close(linger: 100)
            zap?.close()
        }
        if let curve {
            try router.makeCurveServer(secretKey: curve)
            try publisher.makeCurveServer(secretKey: curve)
        }
        // libzmq drops oversized messages without telling anyone (and disconnects the
        // peer), so its own limit sits well above ours: calls between the two limits get
        // a RESOURCE_EXHAUSTED answer instead of silence. What libzmq does drop shows only
        // as a disconnect on the socket's monitor, which is counted.
        try router.setMaxMessageSize(Int64(config.maxMessageBytes) * 16 + 65_536)
        try router.setRouterMandatory(true)
        try router.setSendHighWaterMark(0)
        try router.setReceiveHighWaterMark(0)
        try publisher.setSendHighWaterMark(config.pubHighWaterMark)
        for (socket, endpoint) in [(router, config.rpcEndpoint), (publisher, config.pubEndpoint)] {
            do {
                try socket.bind(endpoint)
            } catch let error as ZMQError {
                throw BindFailure(endpoint: endpoint, underlying: error)
            }
        }
        let endpoints = (rpc: try router.lastEndpoint, pub: try publisher.lastEndpoint)
        core.logger.info("serving", metadata: ["rpc": "\(endpoints.rpc)", "pub": "\(endpoints.pub)",
                                               "fsync": "\(config.fsync.rawValue)", "data_dir": "\(config.dataDirectory)"])
        readiness.set(endpoints)
        systemd.ready(status: "serving rpc=\(endpoints.rpc) pub=\(endpoints.pub)")

        let monitor = try router.monitor(.disconnected, at: "inproc://aftersalesd.rpc-monitor")
        defer { monitor.close() }
        try monitor.setReceiveHighWaterMark(0)  // read now and then: keep every event until then
        // The monitor is read at most every 100 ms rather than polled: a disconnect count need
        // not be exact to the turn, and one more poll item costs every call.
        var monitorReadAt: Millis = 0
        var poller = ZMQPoller()
        let routerItem = poller.add(router)
        let wakeItem = poller.add(fileDescriptor: core.wakeUp.readDescriptor)
        let zapItem = zap.map { poller.add($0) }
        func send(_ output: TurnOutput) { self.send(output, router: router, publisher: publisher) }
        // Only a CURVE server has callers to name (the ZAP User-Id); without one, not looking
        // it up saves a metadata query per frame.
        let receiveCall: () throws -> (frames: [Frame], userID: String?)? = curve == nil
            ? { try router.receive(dontWait: true).map { ($0, nil) } }
            : { try router.receiveWithUserID(dontWait: true) }

        send(try core.startUp())
        var stopping = false
        while !stopping {
            var timeout = core.pollTimeout(now: core.clock.now())
            if let watchdog = systemd.watchdogIntervalMilliseconds { timeout = min(timeout, Int(watchdog)) }
            _ = try poller.poll(timeoutMilliseconds: timeout)
            systemd.watchdogIfDue(nowMs: Int64(monotonicNanoseconds() / 1_000_000))
            if poller.isReadable(wakeItem) {
                let reasons = core.wakeUp.drainReasons()
                if reasons.contains(.stop) { stopping = true }
                core.woken(reasons)
            }
            let now = core.clock.now()
            if now >= monitorReadAt + 100 {
                monitorReadAt = now
                while let frames = try monitor.receive(dontWait: true) {
                    if ZMQMonitorEvent(frames)?.event.contains(.disconnected) == true { core.peerDisconnects += 1 }
                }
            }
            if let zap, let zapItem, poller.isReadable(zapItem) {
                while let request = try zap.receive(dontWait: true) { _ = try zap.send(core.answerZAP(request)) }
            }
            if poller.isReadable(routerItem) {
                var taken = 0
                while taken < config.maxBatch, let (frames, caller) = try receiveCall() {
                    taken += 1
                    core.receive(frames, caller: caller)
                }
            }
            core.fireDueDeadlines()
            try core.commit()
            send(core.takeOutput())
            if !stopping {
                core.maybeStartSnapshot(now: core.clock.now())
                // A snapshot's rotation synced the journal: publish what it released now.
                if core.hasOutput { send(core.takeOutput()) }
            }
        }
        systemd.stopping()
        try core.shutdown(send: send)
    }

    /// Sends the replies (a caller that went away is counted, not answered) and publishes
    /// the announcements.
    private func send(_ output: TurnOutput, router: ZMQSocket, publisher: ZMQSocket) {
        for reply in output.replies {
            do {
                if try !router.send(WireFrames.routedReply(routing: reply.routing, body: reply.body), dontWait: true) {
                    core.droppedFrames += 1
                }
            } catch {
                // The caller went away (EHOSTUNREACH under router-mandatory): nothing to answer.
                core.droppedFrames += 1
            }
        }
        for event in output.events {
            _ = try? publisher.send(WireFrames.announcement(topic: event.topic, body: event.bytes), dontWait: true)
        }
    }
}

/// Hands the bound endpoints from the loop thread to whoever waits for them.
private final class ReadyEndpoints: @unchecked Sendable {
    private let condition = NSCondition()
    private var endpoints: (rpc: String, pub: String)?

    func set(_ value: (rpc: String, pub: String)) {
        condition.lock()
        endpoints = value
        condition.broadcast()
        condition.unlock()
    }

    func wait(timeout: Duration) -> (rpc: String, pub: String)? {
        let limit = Date().addingTimeInterval(Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18)
        condition.lock()
        defer { condition.unlock() }
        while endpoints == nil, condition.wait(until: limit) {}
        return endpoints
    }
}
