// The daemon: one thread owns the case store and both sockets. Its loop, in the manner
// of Redis' aeProcessEvents + beforeSleep:
//
//   1. poll the ROUTER socket (and the wake-up pipe) with a timeout that ends at the
//      next deadline;
//   2. drain every ready call (up to maxBatch), applying each through CaseEngine and
//      appending its change to the journal buffer;
//   3. fire the deadlines that are due, exactly like calls from SYSTEM;
//   4. make the batch durable once (group commit: one write, one fdatasync under
//      --fsync always);
//   5. only then send the replies, and publish the announcements that are on disk
//      (under everysec and never those wait for the sync that covers them).
//
// No locks on this path: the hand-over of a finished background snapshot and the
// everysec sync's progress sit behind locks, taken once a turn at most.
import AfterSalesProto
import AfterSalesRPC
import CaseEngine
import CSodium
import Foundation
import Logging
import SwiftProtobuf
import ZeroMQ

/// The after-sales daemon: recover, bind, serve until stopped.
public final class Daemon: @unchecked Sendable {
    /// The daemon's version, reported by Ping and GetStats.
    public static let version = "aftersalesd 0.1.0"

    public let config: DaemonConfig
    let clock: any DaemonClock
    let logger: Logger
    let wakeUp: WakeUpPipe
    private let lock: DataDirectoryLock

    // Everything below belongs to the loop thread once `run()` starts.
    var store: CaseStore
    var announcements: AnnouncementLog
    var idempotency: IdempotencyTable
    var journal: Journal
    var stats = MethodStatistics()
    var droppedFrames: UInt64 = 0
    /// Connections to the RPC socket that closed (libzmq's monitor cannot tell a caller
    /// that left from one it cut off for an oversized message).
    var peerDisconnects: UInt64 = 0
    let startedAt: Millis
    var snapshots: SnapshotSchedule
    /// List bounds checked on the wire before a request is decoded.
    let requestShape: RequestShape

    private let readiness = ReadyEndpoints()

    /// Opens the data directory (refusing one another daemon holds), and rebuilds the
    /// state from its snapshot and journal. Throws with the file and offset on damage.
    public init(config: DaemonConfig, clock: any DaemonClock = SystemClock(), logger: Logger = Logger(label: "aftersalesd")) throws {
        self.config = config
        self.clock = clock
        self.logger = logger
        lock = try DataDirectoryLock(directory: config.dataDirectory)
        // Lets libsodium pick its fastest BLAKE2b for request fingerprints.
        _ = sodium_init()
        let began = monotonicNanoseconds()
        let recovered = try Recovery.recover(directory: config.dataDirectory, config: config, logger: logger)
        store = recovered.store
        announcements = recovered.announcements
        announcements.beginIncarnation(UInt64.random(in: 1...UInt64.max))
        idempotency = recovered.idempotency
        let wakeUp = try WakeUpPipe()
        self.wakeUp = wakeUp
        journal = try Journal(directory: config.dataDirectory, fsync: config.fsync, nextSequence: recovered.journalPosition,
                              onBackgroundSync: { wakeUp.signal(.synced) }, backgroundSync: config.backgroundSyncOverride)
        requestShape = RequestShape(limits: config.engine.limits)
        startedAt = clock.now()
        snapshots = SnapshotSchedule(lastSeq: recovered.snapshotSeq, lastAt: startedAt)
        logger.info("recovered", metadata: [
            "cases": "\(store.count)", "journal_records": "\(recovered.journalRecords)",
            "last_seq": "\(announcements.lastSeq)", "replayable_from": "\(announcements.oldestKept)",
            "incarnation": "\(announcements.incarnation)",
            "ms": "\((monotonicNanoseconds() - began) / 1_000_000)"])
    }

    /// The endpoints actually bound (wildcard ports resolved); waits until `run()` has bound them.
    public func waitUntilReady(timeout: Duration = .seconds(10)) -> (rpc: String, pub: String)? {
        readiness.wait(timeout: timeout)
    }

    /// Asks the loop to finish the batch in hand, write a final snapshot and return.
    /// Safe from any thread and from a signal handler's helper thread.
    public func stop() { wakeUp.signal(.stop) }

    /// Serves until `stop()`; returns after the final snapshot, with the sockets closed.
    /// Throws `BindFailure` when a socket cannot be bound, a storage error when the
    /// journal cannot be written.
    public func run() throws {
        let context = try ZMQContext()
        let router = try ZMQSocket(context, .router)
        let publisher = try ZMQSocket(context, .pub)
        defer {
            router.close()
            publisher.close(linger: 100)
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
        logger.info("serving", metadata: ["rpc": "\(endpoints.rpc)", "pub": "\(endpoints.pub)",
                                          "fsync": "\(config.fsync.rawValue)", "data_dir": "\(config.dataDirectory)"])
        readiness.set(endpoints)

        let monitor = try router.monitor(.disconnected, at: "inproc://aftersalesd.rpc-monitor")
        defer { monitor.close() }
        var poller = ZMQPoller()
        let routerItem = poller.add(router)
        let monitorItem = poller.add(monitor)
        let wakeItem = poller.add(fileDescriptor: wakeUp.readDescriptor)
        var batch = Batch()
        var stopping = false

        // Deadlines that passed while the daemon was down fire first, announced as late.
        fireDueDeadlines(into: &batch, missedWhileDown: true)
        try commit(&batch)
        answer(&batch, router: router, publisher: publisher)

        while !stopping {
            let timeout = pollTimeout(now: clock.now())
            _ = try poller.poll(timeoutMilliseconds: timeout)
            if poller.isReadable(wakeItem) {
                let reasons = wakeUp.drainReasons()
                if reasons.contains(.stop) { stopping = true }
                if reasons.contains(.snapshotDone) { finishBackgroundSnapshot(&batch) }
                // `.synced` needs nothing here: `answer` publishes what the sync covered.
            }
            if poller.isReadable(monitorItem) {
                while let frames = try monitor.receive(dontWait: true) {
                    if ZMQMonitorEvent(frames)?.event.contains(.disconnected) == true { peerDisconnects += 1 }
                }
            }
            if poller.isReadable(routerItem) {
                var taken = 0
                while taken < config.maxBatch, let frames = try router.receive(dontWait: true) {
                    taken += 1
                    handle(frames, into: &batch)
                }
            }
            fireDueDeadlines(into: &batch)
            try commit(&batch)
            answer(&batch, router: router, publisher: publisher)
            if !stopping {
                maybeStartSnapshot(&batch, now: clock.now())
                // A snapshot's rotation synced the journal: publish what it released now.
                if !batch.events.isEmpty { answer(&batch, router: router, publisher: publisher) }
            }
        }
        try shutdown(&batch, router: router, publisher: publisher)
    }

    /// Until when the loop may sleep: the next deadline, the next periodic snapshot, or a
    /// second (the everysec sync's period) — whichever comes first. A finished background
    /// sync or snapshot wakes the loop through the wake-up pipe.
    private func pollTimeout(now: Millis) -> Int {
        var wakeAt = now + 1_000
        if let due = store.nextDeadline { wakeAt = min(wakeAt, due) }
        if config.snapshotIntervalMs > 0 { wakeAt = min(wakeAt, snapshots.lastAt + config.snapshotIntervalMs) }
        return Int(max(0, wakeAt - now))
    }

    // MARK: - calls

    /// One call from the ROUTER socket: answer it, or count it when no answer can be addressed.
    private func handle(_ frames: [Frame], into batch: inout Batch) {
        let started = monotonicNanoseconds()
        guard let call = WireFrames.splitRouted(frames) else {
            droppedFrames += 1
            logger.debug("dropped a message without routing id and delimiter", metadata: ["frames": "\(frames.count)"])
            return
        }
        guard call.body.count == 1, let body = call.body.first else {
            batch.reply(to: call.routing, requestID: 0, method: nil, started: started,
                        .failure(RPCError(.invalidArgument, "expected exactly one RequestEnvelope frame after the empty delimiter, got \(call.body.count)")))
            return
        }
        if body.count > config.maxMessageBytes {
            batch.reply(to: call.routing, requestID: Self.leadingRequestID(body), method: nil, started: started,
                        .failure(RPCError(.resourceExhausted, "request is \(body.count) bytes; this daemon accepts at most \(config.maxMessageBytes) (--max-message-bytes)")))
            return
        }
        if let refused = requestShape.checkEnvelope(body) {
            batch.reply(to: call.routing, requestID: Self.leadingRequestID(body), method: nil, started: started, .failure(refused))
            return
        }
        let envelope: RequestEnvelope
        do {
            envelope = try RequestEnvelope(serializedBytes: body)
        } catch {
            batch.reply(to: call.routing, requestID: Self.leadingRequestID(body), method: nil, started: started,
                        .failure(RPCError(.invalidArgument, "frame does not parse as aftersales.v1.RequestEnvelope: \(error)")))
            return
        }
        guard let method = Method(fullName: envelope.method) else {
            batch.reply(to: call.routing, requestID: envelope.requestID, method: nil, started: started,
                        .failure(RPCError(.unimplemented, "unknown method '\(envelope.method)'; methods are named like 'aftersales.v1.CaseService/CreateCase' (aftersales-probe methods lists them)")))
            return
        }
        if let refused = requestShape.checkPayload(envelope.payload, for: method) {
            batch.reply(to: call.routing, requestID: envelope.requestID, method: method, started: started, .failure(refused))
            return
        }
        let receivedAt = clock.now()
        let result = serve(method, envelope, receivedAt: receivedAt, call: call, batch: &batch)
        if let result {
            batch.reply(to: call.routing, requestID: envelope.requestID, method: method, started: started, result)
        }
    }

    /// The request id of an envelope too big or too broken to decode, read from its first
    /// field so a DEALER with many calls in flight can still match the error to its call.
    static func leadingRequestID(_ body: [UInt8]) -> UInt64 {
        body.withUnsafeBytes { bytes in
            var reader = WireReader(bytes)
            guard let (field, wireType) = try? reader.tag(), field == 1, wireType == 0 else { return 0 }
            return (try? reader.varint()) ?? 0
        }
    }

    /// Serves one decoded call; nil when the answer is deferred (TakeSnapshot).
    private func serve(_ method: Method, _ envelope: RequestEnvelope, receivedAt: Millis, call: WireFrames.RoutedCall, batch: inout Batch) -> CallAnswer? {
        if envelope.deadlineMs > 0, clock.now() - receivedAt >= Int64(clamping: envelope.deadlineMs) {
            return .failure(RPCError(.deadlineExceeded, "the call's deadline of \(envelope.deadlineMs) ms passed before it was applied; nothing was changed"))
        }
        do {
            if method.isMutating {
                return try mutate(method, envelope, batch: &batch)
            }
            switch method {
            case .takeSnapshot:
                requestSnapshot(replyTo: call.routing, requestID: envelope.requestID, batch: &batch)
                return nil
            default:
                return .success(try query(method, envelope.payload))
            }
        } catch {
            return .failure(error)
        }
    }

    /// A state-changing call: idempotency, the engine, the journal, the announcements.
    private func mutate(_ method: Method, _ envelope: RequestEnvelope, batch: inout Batch) throws(RPCError) -> CallAnswer {
        let key = envelope.idempotencyKey
        if key.utf8.count > maxIdempotencyKeyBytes {
            throw RPCError(.invalidArgument, "idempotency_key: \(key.utf8.count) bytes; at most \(maxIdempotencyKeyBytes)")
        }
        var fingerprint = Data()
        if !key.isEmpty {
            fingerprint = RequestFingerprint.of(payload: envelope.payload)
            if let earlier = idempotency[key] {
                return try answerAgain(earlier, key: key, method: method, fingerprint: fingerprint)
            }
        }
        let call = try CaseCalls.mutation(method, envelope.payload)
        let now = clock.now()
        let outcome: Outcome
        do {
            outcome = try store.apply(call.request, now: now)
        } catch {
            throw RPCError(error)
        }
        let encoded = EncodedCase(outcome.case)
        let judgement = call.reportsJudgement ? outcome.judgement.map(WireAssembly.judgement) : nil
        let payload = WireAssembly.mutationResponse(encoded, judgementBytes: judgement)
        var answer: Aftersales_Storage_V1_IdempotentAnswer?
        if !key.isEmpty {
            let remembered = Aftersales_Storage_V1_IdempotentAnswer.with {
                $0.key = key
                $0.method = method.fullName
                $0.code = .ok
                $0.answeredAtMs = now
                $0.fingerprint = fingerprint
                $0.caseID = outcome.case.caseID
                $0.caseVersion = outcome.case.version
                if let judgement { $0.judgement = Data(judgement) }
            }
            idempotency.remember(remembered)
            answer = remembered
        }
        record(outcome, encoded, now: now, answer: answer, batch: &batch)
        return .success(payload)
    }

    /// The answer to a retry: the same method and request get the first answer again,
    /// rebuilt from the case in the store; anything else reusing the key is refused.
    private func answerAgain(_ earlier: IdempotencyTable.Answer, key: String, method: Method, fingerprint: Data) throws(RPCError) -> CallAnswer {
        // Answers remembered by older daemons have no fingerprint: the method must match.
        guard earlier.method == method.fullName, earlier.fingerprint.isEmpty || earlier.fingerprint == fingerprint else {
            let what = earlier.method == method.fullName ? "with a different request" : "for \(earlier.method)"
            throw RPCError(.invalidArgument, "idempotency_key '\(key)' was already used at \(ISO8601.format(earlier.answeredAtMs)) \(what); "
                           + "a retry must repeat its request exactly — use a new key for this \(method.fullName) call")
        }
        if !earlier.payload.isEmpty { return .replayed(Array(earlier.payload), message: earlier.message) }
        guard let current = store[earlier.caseID] else {
            throw RPCError(.internal, "idempotency_key '\(key)' answered case \(earlier.caseID), which this daemon no longer holds")
        }
        let payload = WireAssembly.mutationResponse(EncodedCase(current), judgementBytes: earlier.judgement.isEmpty ? nil : Array(earlier.judgement))
        if current.version == earlier.caseVersion { return .success(payload) }
        return .replayed(payload, message: "idempotency_key '\(key)' was answered at \(ISO8601.format(earlier.answeredAtMs)) with case \(earlier.caseID) "
                         + "at version \(earlier.caseVersion); the case has changed since and is shown as it stands now, at version \(current.version)")
    }

    /// Journals one change and queues its announcements for after the commit.
    private func record(_ outcome: Outcome, _ encoded: EncodedCase, now: Millis,
                        answer: Aftersales_Storage_V1_IdempotentAnswer?, batch: inout Batch) {
        var entry = Aftersales_Storage_V1_JournalEntry()
        entry.timeMs = now
        entry.events = announcements.announce(outcome, at: now, caseBytes: encoded.summary, record: journal.nextSequence)
        entry.nextCaseNumber = store.nextCaseNumber
        if let answer { entry.answer = answer }
        do {
            try journal.append(WireAssembly.journalEntry(entry, case: encoded))
        } catch {
            // Only a record over the journal's 64 MiB cap can fail here; the call's own
            // size limit keeps cases far below it, so this is a bug worth stopping for.
            fatalError("journal refused a record: \(error)")
        }
        batch.changed = true
    }

    /// Deadlines that came due fire as SYSTEM commands, in due order. A backlog (a burst
    /// of expiries due together) is worked off a slice per turn, so calls keep being
    /// answered between slices; the poll timeout is zero while any is still due. At
    /// start-up every due deadline was missed while the daemon was down: all fire at
    /// once, before any call, and say so (`late`); later the engine marks late only those
    /// fired past its tolerance.
    private func fireDueDeadlines(into batch: inout Batch, missedWhileDown: Bool = false) {
        let started = monotonicNanoseconds()
        let budget = missedWhileDown ? UInt64.max : config.deadlineBudgetMicroseconds * 1_000
        while let due = store.nextDeadline, due <= clock.now(), monotonicNanoseconds() - started < budget {
            let now = clock.now()
            for var outcome in store.fireDueDeadlines(now: now, limit: 16) {
                if missedWhileDown {
                    for i in outcome.announcements.indices { outcome.announcements[i].late = true }
                }
                record(outcome, EncodedCase(outcome.case), now: now, answer: nil, batch: &batch)
            }
        }
    }

    /// Group commit: the whole batch reaches the journal (and, by policy, the disk) before
    /// any of its replies. A journal that cannot be written ends the daemon: nothing may
    /// be acknowledged that a restart would not find, so the batch is refused and the
    /// supervisor restarts from what is durable (as Redis does under appendfsync always).
    private func commit(_ batch: inout Batch) throws {
        do {
            // Announcements waiting for the disk make everysec start its sync now.
            let urgent = announcements.unpublishedCount > 0
            if batch.changed {
                try journal.commit(urgent: urgent)
            } else {
                try journal.syncIfDue(urgent: urgent)
            }
        } catch {
            logger.critical("journal write failed; refusing the batch and stopping", metadata: ["error": "\(error)"])
            batch.refuseAll(RPCError(.unavailable, "the daemon could not write its journal (\(error)); nothing was applied, retry against a restarted daemon"))
            throw error
        }
    }

    /// Sends the batch's replies and publishes the announcements now on disk, then
    /// empties the batch.
    private func answer(_ batch: inout Batch, router: ZMQSocket, publisher: ZMQSocket) {
        releaseDurableAnnouncements(into: &batch)
        for reply in batch.replies {
            let frames = WireFrames.routedReply(routing: reply.routing, body: reply.body)
            do {
                if try !router.send(frames, dontWait: true) { droppedFrames += 1 }
            } catch {
                // The caller went away (EHOSTUNREACH under router-mandatory): nothing to answer.
                droppedFrames += 1
            }
            if let method = reply.method {
                stats.record(method, failed: reply.failed, microseconds: (monotonicNanoseconds() - reply.started) / 1_000)
            }
        }
        for event in batch.events {
            _ = try? publisher.send(WireFrames.announcement(topic: event.topic, body: event.bytes), dontWait: true)
        }
        batch.clear()
    }

    /// Moves the announcements whose journal records are on disk into the batch.
    func releaseDurableAnnouncements(into batch: inout Batch) {
        guard announcements.unpublishedCount > 0 else { return }
        journal.refreshDurable()
        announcements.release(durableBefore: journal.durableNextSequence, into: &batch.events)
    }

    private func shutdown(_ batch: inout Batch, router: ZMQSocket, publisher: ZMQSocket) throws {
        logger.info("stopping: writing the final snapshot")
        waitForBackgroundSnapshot(&batch)
        answer(&batch, router: router, publisher: publisher)
        if snapshots.lastSeq != announcements.lastSeq || snapshots.lastSeq == 0 && store.count > 0 {
            let job = prepareSnapshot(&batch)
            let result = job.run()
            complete(job, result, batch: &batch)
            answer(&batch, router: router, publisher: publisher)
        }
        try journal.close()
        // The close synced the journal: what still waited for the disk goes out now.
        answer(&batch, router: router, publisher: publisher)
        logger.info("stopped", metadata: ["cases": "\(store.count)", "last_seq": "\(announcements.lastSeq)"])
    }
}

/// What serving one call produced (the client's `CallResult` is what it received).
enum CallAnswer {
    case success([UInt8])
    case failure(RPCError)
    /// A remembered answer given again: OK, with a message when the case has moved on.
    case replayed([UInt8], message: String)
}

/// The replies and announcements of one turn of the loop, held until the batch is durable.
struct Batch {
    struct Reply {
        var routing: ArraySlice<Frame>
        var body: [UInt8]
        var method: Method?
        var failed: Bool
        var started: UInt64
    }

    var replies: [Reply] = []
    var events: [PublishedEvent] = []
    var changed = false

    mutating func reply(to routing: ArraySlice<Frame>, requestID: UInt64, method: Method?, started: UInt64, _ result: CallAnswer) {
        let body: [UInt8]
        let failed: Bool
        switch result {
        case .success(let payload):
            body = WireAssembly.responseEnvelope(requestID: requestID, code: .ok, message: "", payload: payload)
            failed = false
        case .failure(let error):
            body = WireAssembly.responseEnvelope(requestID: requestID, code: error.code, message: error.message, payload: [UInt8]())
            failed = true
        case .replayed(let payload, let message):
            body = WireAssembly.responseEnvelope(requestID: requestID, code: .ok, message: message, payload: payload)
            failed = false
        }
        replies.append(Reply(routing: routing, body: body, method: method, failed: failed, started: started))
    }

    /// Replaces every answer with `error` (the batch could not be made durable).
    mutating func refuseAll(_ error: RPCError) {
        for i in replies.indices {
            let requestID = (try? ResponseEnvelope(serializedBytes: replies[i].body))?.requestID ?? 0
            replies[i].body = try! ResponseEnvelope.failure(requestID: requestID, error).serializedBytes()
            replies[i].failed = true
        }
    }

    mutating func clear() {
        replies.removeAll(keepingCapacity: true)
        events.removeAll(keepingCapacity: true)
        changed = false
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
