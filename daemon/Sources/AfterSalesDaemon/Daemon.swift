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
import Synchronization
import ZeroMQ

/// The after-sales daemon: bind, recover (answering NOT_SERVING meanwhile), serve until stopped.
public final class Daemon: @unchecked Sendable {
    /// The daemon's version, reported by Ping and GetStats.
    public static let version = "aftersalesd \(aftersalesRelease)"

    public let config: DaemonConfig
    private let clock: any DaemonClock
    private let logger: Logger
    /// The data directory's lock; nil for a cluster member (its state is in PostgreSQL).
    private let lock: DataDirectoryLock?
    private let access: AccessList?
    /// Wakes the loop from other threads (stop, SIGHUP, background work done).
    private let wakeUp: WakeUpPipe
    private let readiness = ReadyEndpoints()
    private let listening = ReadyEndpoints()
    /// systemd's readiness and watchdog (NOTIFY_SOCKET); inert elsewhere.
    private let systemd = SystemdNotifier()
    /// Serving or not, and the loop's heartbeat: what /readyz and /healthz report.
    let health = HealthBoard()
    /// The Prometheus registry, when --metrics-listen is set.
    private let metrics: DaemonMetrics?
    /// The metrics port's bound address, once `run()` has bound it.
    private let metricsAddress = Mutex<String?>(nil)

    /// Takes the data directory (refusing one another daemon holds) and reads the clients
    /// file; the data directory itself is read by `run()`, after the sockets are bound.
    public init(config: DaemonConfig, clock: any DaemonClock = SystemClock(), logger: Logger = Logger(label: "aftersalesd")) throws {
        self.config = config
        self.clock = clock
        self.logger = logger
        lock = config.cluster == nil ? try DataDirectoryLock(directory: config.dataDirectory) : nil
        access = try config.clientsFile.map { try AccessList(path: $0) }
        wakeUp = try WakeUpPipe()
        metrics = config.metricsListen == nil ? nil : DaemonMetrics()
    }

    /// The endpoints actually bound (wildcard ports resolved); waits until `run()` has
    /// bound them and recovered the data directory.
    public func waitUntilReady(timeout: Duration = .seconds(10)) -> (rpc: String, pub: String)? {
        readiness.wait(timeout: timeout)
    }

    /// The endpoints bound, as soon as they are (before the data directory is recovered):
    /// for watching a daemon answer while it recovers.
    public func waitUntilListening(timeout: Duration = .seconds(10)) -> (rpc: String, pub: String)? {
        listening.wait(timeout: timeout)
    }

    /// The metrics endpoint's address ("127.0.0.1:PORT"), once bound; nil without --metrics-listen.
    public var metricsEndpoint: String? { metricsAddress.withLock { $0 } }

    /// Asks the loop to finish the batch in hand, write a final snapshot and return.
    /// Safe from any thread and from a signal handler's helper thread.
    public func stop() { wakeUp.signal(.stop) }

    /// Asks the loop to read the clients file again (SIGHUP); safe from any thread.
    public func reloadClients() { wakeUp.signal(.reloadClients) }

    /// Serves until `stop()`; returns after the final snapshot, with the sockets closed.
    /// Throws `BindFailure` when a socket cannot be bound, `RecoveryFailure` when the data
    /// directory cannot be read, a storage error when the journal cannot be written.
    public func run() throws {
        // Two I/O threads: calls on one, announcements on the other, so a burst of
        // announcements (100 000 expiries) never queues a reply behind its TCP writes.
        let context = try ZMQContext(ioThreads: 2)
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
        try router.setAffinity(0b01)
        try publisher.setAffinity(0b10)
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
        // Watched from the bind on, so no disconnect is missed before the first turn.
        let monitor = try router.monitor(.disconnected, at: "inproc://aftersalesd.rpc-monitor")
        defer { monitor.close() }
        try monitor.setReceiveHighWaterMark(0)  // read now and then: keep every event until then
        let metricsServer = try startMetricsEndpoint()
        defer { metricsServer?.stop() }
        listening.set(endpoints)

        var poller = ZMQPoller()
        let routerItem = poller.add(router)
        let wakeItem = poller.add(fileDescriptor: wakeUp.readDescriptor)
        let zapItem = zap.map { poller.add($0) }
        // Only a CURVE server has callers to name (the ZAP User-Id); without one, not looking
        // it up saves a metadata query per frame.
        let receiveCall: () throws -> (frames: [Frame], userID: String?)? = curve == nil
            ? { try router.receive(dontWait: true).map { ($0, nil) } }
            : { try router.receiveWithUserID(dontWait: true) }

        let core: any LoopDriver
        var stopping: Bool
        if let cluster = config.cluster {
            logger.info("listening; joining the cluster", metadata: ["rpc": "\(endpoints.rpc)", "pub": "\(endpoints.pub)",
                                                                     "database": "\(ClusterSettings.redacted(cluster.url))"])
            core = try ClusterCore(config: config, settings: cluster, clock: clock, logger: logger, wakeUp: wakeUp, access: access,
                                   advertised: (cluster.advertiseRPC ?? endpoints.rpc, cluster.advertisePub ?? endpoints.pub),
                                   health: health)
            stopping = false
        } else {
            logger.info("listening; recovering the data directory", metadata: ["rpc": "\(endpoints.rpc)", "pub": "\(endpoints.pub)",
                                                                              "data_dir": "\(config.dataDirectory)"])
            if config.fsync == .never {
                // Announcements wait for the disk, and under never only a snapshot's rotation
                // or a clean stop syncs it: say so once, or a subscriber looks broken.
                logger.warning("--fsync never: announcements are published only when a snapshot rotates the journal or the daemon stops cleanly",
                               metadata: ["snapshot_interval_ms": "\(config.snapshotIntervalMs)"])
            }
            let recovery = try recover(poller: &poller, routerItem: routerItem, wakeItem: wakeItem, zap: zap, zapItem: zapItem,
                                       router: router, receiveCall: receiveCall)
            recovery.core.boundEndpoints = endpoints
            core = recovery.core
            stopping = recovery.stopAsked
        }
        health.set(.serving)
        metrics?.serving(true)
        core.tally = metrics == nil ? nil : LoopTally()
        core.logger.info("serving", metadata: ["rpc": "\(endpoints.rpc)", "pub": "\(endpoints.pub)",
                                               "fsync": "\(config.cluster == nil ? config.fsync.rawValue : "postgresql")",
                                               "data_dir": "\(config.cluster == nil ? config.dataDirectory : "-")"])
        readiness.set(endpoints)
        systemd.ready(status: "serving rpc=\(endpoints.rpc) pub=\(endpoints.pub)")

        // The monitor is read at most every 100 ms rather than polled: a disconnect count need
        // not be exact to the turn, and one more poll item costs every call.
        var monitorReadAt: Millis = 0
        var turnSize = TurnSize(ceiling: config.maxBatch)
        var metricsPublishedAt: Millis = 0
        func send(_ output: TurnOutput) { self.send(output, core: core, router: router, publisher: publisher) }

        do {
            send(try core.startUp())
            while !stopping {
                var timeout = core.pollTimeout(now: core.clock.now())
                if let watchdog = systemd.watchdogIntervalMilliseconds { timeout = min(timeout, Int(watchdog)) }
                _ = try poller.poll(timeoutMilliseconds: timeout)
                let beat = Int64(monotonicNanoseconds() / 1_000_000)
                systemd.watchdogIfDue(nowMs: beat)
                health.beat(monotonicMs: beat)
                if poller.isReadable(wakeItem) {
                    let reasons = wakeUp.drainReasons()
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
                    var taken = 0, drained = false
                    while taken < turnSize.limit {
                        guard let (frames, caller) = try receiveCall() else { drained = true; break }
                        taken += 1
                        core.receive(frames, caller: caller)
                    }
                    turnSize.turnEnded(taken: taken, drained: drained)
                }
                try core.finishTurn(send: send)
                if !stopping, let more = core.housekeeping(now: core.clock.now()) { send(more) }
                if let metrics, now >= metricsPublishedAt + config.metricsPublishIntervalMs {
                    metricsPublishedAt = now
                    core.publish(to: metrics, now: now)
                }
            }
        } catch {
            health.set(.storageFailed, detail: "\(error)")
            metrics?.serving(false)
            throw error
        }
        health.set(.shuttingDown)
        metrics?.serving(false)
        systemd.stopping()
        try core.shutdown(send: send)
    }

    /// Binds --metrics-listen and starts answering /metrics, /healthz and /readyz.
    private func startMetricsEndpoint() throws -> MetricsEndpoint? {
        guard let listen = config.metricsListen, let metrics else { return nil }
        let health = self.health
        let server = try MetricsEndpoint(listen: listen) { path in
            switch path {
            case "/metrics":
                return (200, "text/plain; version=0.0.4; charset=utf-8", metrics.exposition())
            case "/healthz":
                // The loop turns at least once a second (its longest poll); ten seconds
                // without a turn means it is stuck.
                let silent = health.sinceLastBeat(monotonicMs: Int64(monotonicNanoseconds() / 1_000_000))
                let (state, _) = health.current
                if state == .serving && silent > 10_000 { return (503, "text/plain", Array("loop stalled: no turn for \(silent) ms\n".utf8)) }
                return (200, "text/plain", Array("alive: \(state.reason)\n".utf8))
            case "/readyz":
                let (state, detail) = health.current
                let text = state.reason + (detail.isEmpty ? "" : ": " + detail) + "\n"
                return (state.isServing ? 200 : 503, "text/plain", Array(text.utf8))
            default:
                return (404, "text/plain", Array("not found; try /metrics, /healthz or /readyz\n".utf8))
            }
        }
        server.start()
        metricsAddress.withLock { $0 = server.boundAddress }
        logger.info("metrics", metadata: ["listen": "\(server.boundAddress)", "paths": "/metrics /healthz /readyz"])
        return server
    }

    /// Reads the data directory on a thread of its own while the loop answers: Ping and
    /// the reflection calls as usual, Check with NOT_SERVING "recovering", every other call
    /// UNAVAILABLE. Returns the recovered core and whether a stop was asked meanwhile.
    private func recover(poller: inout ZMQPoller, routerItem: Int, wakeItem: Int, zap: ZMQSocket?, zapItem: Int?,
                         router: ZMQSocket, receiveCall: () throws -> (frames: [Frame], userID: String?)?) throws -> (core: DaemonCore, stopAsked: Bool) {
        health.set(.recovering)
        metrics?.serving(false)
        let outcome = RecoveryOutcome()
        let began = clock.now()
        let timings = metrics.map { m in
            JournalTimings(write: { m.journalWriteSeconds.record(Double($0) / 1e9) }, sync: { m.journalSyncSeconds.record(Double($0) / 1e9) })
        }
        let thread = Thread { [self] in
            config.beforeRecovery?()
            outcome.set(Result {
                try DaemonCore(config: config, clock: clock, logger: logger, lock: lock, access: access, wakeUp: wakeUp, journalTimings: timings)
            })
            wakeUp.signal(.recovered)
        }
        thread.name = "aftersalesd-recovery"
        thread.start()

        let shape = RequestShape(limits: config.engine.limits)
        var stopAsked = false, zapRefusals: UInt64 = 0
        while true {
            _ = try poller.poll(timeoutMilliseconds: 1_000)
            health.beat(monotonicMs: Int64(monotonicNanoseconds() / 1_000_000))
            if poller.isReadable(wakeItem) {
                let reasons = wakeUp.drainReasons()
                if reasons.contains(.stop) { stopAsked = true }
            }
            if let result = outcome.take() {
                switch result {
                case .success(let core):
                    core.zapRefusals += zapRefusals
                    return (core, stopAsked)
                case .failure(let error):
                    health.set(.storageFailed, detail: "\(error)")
                    throw RecoveryFailure(directory: config.dataDirectory, underlying: error)
                }
            }
            if let zap, let zapItem, poller.isReadable(zapItem) {
                while let request = try zap.receive(dontWait: true) {
                    let (reply, refused) = ZAP.reply(to: request, access: access)
                    if refused != nil { zapRefusals += 1 }
                    _ = try zap.send(reply)
                }
            }
            guard poller.isReadable(routerItem) else { continue }
            while let (frames, _) = try receiveCall() {
                let answer: (routing: ArraySlice<Frame>, body: [UInt8])
                switch IncomingCall.parse(frames, maxMessageBytes: config.maxMessageBytes, shape: shape) {
                case .unaddressable:
                    continue
                case .refused(let routing, let requestID, let error):
                    answer = (routing, WireAssembly.responseEnvelope(requestID: requestID, code: error.code, message: error.message, payload: [UInt8]()))
                case .call(let routing, let envelope, let method):
                    let result = Self.answerWhileRecovering(method, envelope.payload, now: clock.now(), recoveringForMs: clock.now() - began)
                    switch result {
                    case .success(let payload):
                        answer = (routing, WireAssembly.responseEnvelope(requestID: envelope.requestID, code: .ok, message: "", payload: payload))
                    case .failure(let error):
                        answer = (routing, WireAssembly.responseEnvelope(requestID: envelope.requestID, code: error.code, message: error.message, payload: [UInt8]()))
                    }
                }
                _ = try? router.send(WireFrames.routedReply(routing: answer.routing, body: answer.body), dontWait: true)
            }
        }
    }

    /// The answer to a call that arrives before the data directory is read.
    static func answerWhileRecovering(_ method: Method, _ payload: Data, now: Millis, recoveringForMs: Int64) -> Result<[UInt8], RPCError> {
        do throws(RPCError) {
            switch method {
            case .ping: return .success(try AdminService.ping(payload, now: now))
            case .check: return .success(try AdminService.check(payload, state: .recovering, detail: "for \(recoveringForMs) ms so far"))
            case .listServices: return .success(try AdminService.listServices(payload))
            case .getDescriptors: return .success(try AdminService.descriptors(payload))
            default:
                throw RPCError(.unavailable, "the daemon is recovering its data directory (for \(recoveringForMs) ms so far) and serves no calls until it is done; "
                               + "retry shortly (Check reports SERVING once it serves)")
            }
        } catch {
            return .failure(error)
        }
    }

    /// Sends the replies (a caller that went away is counted, not answered) and publishes
    /// the announcements.
    private func send(_ output: TurnOutput, core: any LoopDriver, router: ZMQSocket, publisher: ZMQSocket) {
        for reply in output.replies {
            do {
                // WireFrames.routedReply's layout, sent without building the frame list.
                if try !reply.body.withUnsafeBytes({ try router.sendRouted(reply.routing, body: $0, dontWait: true) }) {
                    core.droppedFrames += 1
                }
            } catch {
                // The caller went away (EHOSTUNREACH under router-mandatory): nothing to answer.
                core.droppedFrames += 1
            }
        }
        for event in output.events {
            // WireFrames.announcement's layout, sent without building the frame list.
            _ = try? event.bytes.withUnsafeBytes { try publisher.send(topic: event.topic, body: $0, dontWait: true) }
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

/// The recovery thread's result, handed to the loop.
private final class RecoveryOutcome: @unchecked Sendable {
    private let lock = NSLock()
    private var result: Result<DaemonCore, any Error>?

    func set(_ value: Result<DaemonCore, any Error>) {
        lock.lock()
        result = value
        lock.unlock()
    }

    func take() -> Result<DaemonCore, any Error>? {
        lock.lock()
        defer { lock.unlock() }
        defer { result = nil }
        return result
    }
}

/// The data directory could not be read: damaged, or not readable.
public struct RecoveryFailure: Error, CustomStringConvertible {
    /// The data directory.
    public let directory: String
    /// What went wrong, with the file and offset for damage.
    public let underlying: any Error

    public var description: String { "cannot recover \(directory): \(underlying)" }
}
