// The daemon's state and one turn of its loop, without sockets: frames in, replies and
// announcements out. `Daemon` runs it on real sockets; tests can drive it directly with
// `tick`, moving time with an injected clock (in the manner of swift-nio's
// EmbeddedEventLoop), so the daemon's behaviour is tested without TCP.
//
// A turn, as Redis' aeProcessEvents + beforeSleep:
//   1. `receive` each call: decode, check, serve through CaseService/AdminService, journal
//      the change it made into the journal's buffer;
//   2. `fireDueDeadlines`, exactly like calls from SYSTEM;
//   3. `commit`: the batch durable once (group commit: one write, one fdatasync under
//      --fsync always);
//   4. `takeOutput`: the replies, and the announcements that are on disk (under everysec
//      and never those wait for the sync that covers them).
import AfterSalesProto
import AfterSalesRPC
import CaseEngine
import CSodium
import Foundation
import Logging
import SwiftProtobuf
import ZeroMQ

/// What a turn sends: replies to callers, announcements to subscribers.
struct TurnOutput {
    var replies: [Batch.Reply] = []
    var events: [PublishedEvent] = []
}

/// The store, the journal, the announcement stream and the turn that changes them. Used
/// from one thread at a time (the loop's).
final class DaemonCore {
    let config: DaemonConfig
    let clock: any DaemonClock
    let logger: Logger
    /// Wakes the loop: stop, a finished snapshot, a finished background sync.
    let wakeUp: WakeUpPipe
    /// The data directory's lock (a daemon on its own; nil for a cluster shard).
    private let lock: DataDirectoryLock?
    /// Where snapshots go: the data directory, or the shard's rows in PostgreSQL.
    let snapshotTarget: SnapshotTarget

    var store: CaseStore
    var announcements: AnnouncementLog
    var idempotency: IdempotencyTable
    var journal: any ChangeLog
    var stats = MethodStatistics()
    var droppedFrames: UInt64 = 0
    /// Connections to the RPC socket that closed (libzmq's monitor cannot tell a caller
    /// that left from one it cut off for an oversized message).
    var peerDisconnects: UInt64 = 0
    let startedAt: Millis
    var snapshots: SnapshotSchedule
    /// List bounds checked on the wire before a request is decoded.
    let requestShape: RequestShape
    /// What the turn in hand will send once it is durable.
    var batch = Batch()
    /// Cases lately written or read, encoded: what GetCase answers with.
    var encodedCases = EncodedCaseCache()
    /// Durable announcements left for the next turn (over `maxPublishedPerTurn`): the loop does not sleep.
    private(set) var publishBacklog = false
    /// Deadlines that may still fire before the rate limit rests them, in millionths.
    private var deadlineCredit: Int64 = 0
    /// When the credit was last filled (monotonic ns).
    private var deadlineCreditAt: UInt64 = 0
    /// When the last call was received (monotonic ns): deadlines yield to calls.
    var lastCallAt: UInt64 = 0
    /// The last sequence number made when announcements were last released.
    private var seqAtLastRelease: UInt64 = 0
    /// The clients file as last read well; nil when the daemon authenticates no one.
    var access: AccessList?
    /// CURVE handshakes refused (key not in the clients file).
    var zapRefusals: UInt64 = 0
    /// When each refused key was last logged (once a minute per key).
    private var refusalLoggedAt: [String: Millis] = [:]
    /// Calls over --slow-call-threshold.
    var slowCalls: SlowCallLog
    /// What the loop counted for the metrics since their last publication; nil when metrics are off.
    var tally: LoopTally?
    /// Whether answered calls are counted here (a cluster member counts them for all its shards).
    var recordsCalls = true
    /// The endpoints as bound, for GetClusterMap's answer (a daemon on its own owns its one shard).
    var boundEndpoints = (rpc: "", pub: "")

    /// Opens the data directory (refusing one another daemon holds, unless `lock` is its
    /// lock already taken), and rebuilds the state from its snapshot and journal. Throws
    /// with the file and offset on damage. `access` is the clients file already read.
    convenience init(config: DaemonConfig, clock: any DaemonClock, logger: Logger, lock: DataDirectoryLock? = nil,
                     access preloaded: AccessList? = nil, wakeUp: WakeUpPipe? = nil, journalTimings: JournalTimings? = nil) throws {
        let lock = try lock ?? DataDirectoryLock(directory: config.dataDirectory)
        let began = monotonicNanoseconds()
        let recovered = try Recovery.recover(directory: config.dataDirectory, config: config, logger: logger)
        let wakeUp = try wakeUp ?? WakeUpPipe()
        let journal = try Journal(directory: config.dataDirectory, fsync: config.fsync, nextSequence: recovered.journalPosition,
                                  onBackgroundSync: { wakeUp.signal(.synced) }, backgroundSync: config.backgroundSyncOverride,
                                  timings: journalTimings)
        let access = try config.clientsFile.map { try preloaded ?? AccessList(path: $0) }
        if let path = config.clientsFile, let access {
            logger.info("clients file read", metadata: ["path": "\(path)", "clients": "\(access.count)"])
        }
        try self.init(config: config, clock: clock, logger: logger, recovered: recovered, journal: journal, wakeUp: wakeUp,
                      access: access, snapshotTarget: .directory(config.dataDirectory), lock: lock)
        logger.info("recovered", metadata: [
            "cases": "\(store.count)", "journal_records": "\(recovered.journalRecords)",
            "last_seq": "\(announcements.lastSeq)", "replayable_from": "\(announcements.oldestKept)",
            "incarnation": "\(announcements.incarnation)",
            "ms": "\((monotonicNanoseconds() - began) / 1_000_000)"])
    }

    /// A core over state already rebuilt: a daemon's data directory, or a cluster shard
    /// loaded from PostgreSQL (then `journal` is the shard's `ShardLog`).
    init(config: DaemonConfig, clock: any DaemonClock, logger: Logger, recovered: RecoveredState, journal: any ChangeLog,
         wakeUp: WakeUpPipe, access: AccessList?, snapshotTarget: SnapshotTarget, lock: DataDirectoryLock? = nil) throws {
        self.config = config
        self.clock = clock
        self.logger = logger
        self.lock = lock
        // Lets libsodium pick its fastest BLAKE2b for request fingerprints.
        _ = sodium_init()
        store = recovered.store
        announcements = recovered.announcements
        announcements.beginIncarnation(UInt64.random(in: 1...UInt64.max))
        idempotency = recovered.idempotency
        self.wakeUp = wakeUp
        self.journal = journal
        self.snapshotTarget = snapshotTarget
        requestShape = RequestShape(limits: config.engine.limits)
        slowCalls = SlowCallLog(thresholdMicroseconds: config.slowCallThresholdMicroseconds, capacity: config.slowCallLogSize)
        self.access = access
        startedAt = clock.now()
        snapshots = SnapshotSchedule(lastSeq: recovered.snapshotSeq, lastAt: startedAt)
    }

    /// One whole turn: `calls` (each a ROUTER message: routing id, delimiter, envelope),
    /// the deadlines due now, the commit; returns what to send.
    func tick(_ calls: [[Frame]] = []) throws -> TurnOutput {
        for frames in calls { receive(frames) }
        fireDueDeadlines()
        try commit()
        return takeOutput()
    }

    /// The first turn after start-up: deadlines that passed while the daemon was down fire
    /// before any call, announced as late.
    func startUp() throws -> TurnOutput {
        fireDueDeadlines(missedWhileDown: true)
        try commit()
        return takeOutput()
    }

    /// Until when the loop may sleep: the next deadline, the next periodic snapshot, or a
    /// second (the everysec sync's period) — whichever comes first. A finished background
    /// sync or snapshot wakes the loop through the wake-up pipe.
    func pollTimeout(now: Millis) -> Int {
        if publishBacklog { return 0 }
        var wakeAt = now + 1_000
        if let due = nextDeadline {
            if due <= now, deadlineCredit < Self.oneDeadline, deadlinesYieldToCalls(at: monotonicNanoseconds()) {
                // Overdue deadlines out of credit rest until one more may fire (whole ms, rounded up).
                let restingMs = (Self.oneDeadline - deadlineCredit) * 1_000 / Self.oneDeadline / Int64(config.deadlineRatePerSecond)
                wakeAt = min(wakeAt, now + restingMs + 1)
            } else {
                wakeAt = min(wakeAt, due)
            }
        }
        if config.snapshotIntervalMs > 0 { wakeAt = min(wakeAt, snapshots.lastAt + config.snapshotIntervalMs) }
        return Int(max(0, wakeAt - now))
    }

    /// The replies of the batch and the announcements now on disk; empties the batch and
    /// counts each answered call in the method statistics.
    func takeOutput() -> TurnOutput {
        releaseDurableAnnouncements()
        if recordsCalls { account(for: batch.replies, stats: &stats, tally: &tally, slowCalls: &slowCalls, clock: clock) }
        let output = TurnOutput(replies: batch.replies, events: batch.events)
        batch.clear()
        return output
    }

    /// Whether a turn left anything to send (e.g. a snapshot's rotation released announcements).
    var hasOutput: Bool { !batch.replies.isEmpty || !batch.events.isEmpty }

    /// The loop side of a wake-up from another thread.
    func woken(_ reasons: WakeUpReason) {
        if reasons.contains(.snapshotDone) { finishBackgroundSnapshot() }
        if reasons.contains(.reloadClients) { reloadClients() }
        // `.synced` needs nothing here: `takeOutput` publishes what the sync covered.
    }

    /// Stopping: the final snapshot, then a closed journal; `send` is called with what each
    /// stage releases.
    func shutdown(send sendOne: (TurnOutput) -> Void) throws {
        logger.info("stopping: writing the final snapshot")
        waitForBackgroundSnapshot()
        // Everything durable goes out before the daemon stops, whatever the per-turn slice.
        func send(_ output: TurnOutput) {
            sendOne(output)
            while publishBacklog { sendOne(takeOutput()) }
        }
        send(takeOutput())
        if snapshots.lastSeq != announcements.lastSeq || snapshots.lastSeq == 0 && store.count > 0 {
            let job = prepareSnapshot()
            let result = job.run()
            complete(job, result)
            send(takeOutput())
        }
        try journal.close()
        // The close synced the journal: what still waited for the disk goes out now.
        send(takeOutput())
        logger.info("stopped", metadata: ["cases": "\(store.count)", "last_seq": "\(announcements.lastSeq)"])
    }

    // MARK: - who is calling

    /// Reads the clients file again; a file with a mistake keeps the list in force.
    /// Connections of keys that were removed are refused from their next call on.
    func reloadClients() {
        guard let path = config.clientsFile else { return }
        do {
            let list = try AccessList(path: path)
            access = list
            logger.info("clients file reloaded", metadata: ["path": "\(path)", "clients": "\(list.count)"])
        } catch {
            logger.error("clients file not reloaded; the previous list stays in force", metadata: ["error": "\(error)"])
        }
    }

    /// Answers one ZAP request (the CURVE handshake of a new connection).
    func answerZAP(_ request: [Frame]) -> [Frame] {
        let (reply, refused) = ZAP.reply(to: request, access: access)
        if let refused {
            zapRefusals += 1
            let now = clock.now()
            if now - (refusalLoggedAt[refused.key] ?? Millis.min / 2) >= 60_000 {
                // Random keys must not grow this without bound: forget what is past its minute.
                if refusalLoggedAt.count >= 10_000 { refusalLoggedAt = refusalLoggedAt.filter { now - $0.value < 60_000 } }
                refusalLoggedAt[refused.key] = now
                logger.warning("refused a connection: key not in the clients file",
                               metadata: ["key": "\(refused.key)…", "peer": "\(refused.address)"])
            }
        }
        return reply
    }

    // MARK: - calls

    /// One call from the ROUTER socket: answer it, or count it when no answer can be addressed.
    func receive(_ frames: [Frame], caller: String? = nil) {
        let started = monotonicNanoseconds()
        switch IncomingCall.parse(frames, maxMessageBytes: config.maxMessageBytes, shape: requestShape) {
        case .unaddressable:
            droppedFrames += 1
            logger.debug("dropped a message without routing id and delimiter", metadata: ["frames": "\(frames.count)"])
        case .refused(let routing, let requestID, let error):
            batch.reply(to: routing, requestID: requestID, method: nil, started: started, .failure(error))
        case .call(let routing, let envelope, let method):
            // Who may: the clients file in force now (nil identity when no one is authenticated).
            do throws(RPCError) {
                let identity = try access?.authorize(method, caller: caller)
                receive(method, envelope, routing: routing, client: caller, identity: identity, started: started)
            } catch {
                batch.reply(to: routing, requestID: envelope.requestID, method: method, started: started, .failure(error),
                            request: envelope, client: caller)
            }
        }
    }

    /// One call already taken apart and authorized (`identity`: what the calling service
    /// `client` may do; a cluster member authorizes before it routes to the shard).
    func receive(_ method: Method, _ envelope: RequestEnvelope, routing: ArraySlice<Frame>, client: String?, identity: Caller?,
                 started: UInt64) {
        lastCallAt = started
        let receivedAt = clock.now()
        if let result = serve(method, envelope, receivedAt: receivedAt, routing: routing, caller: identity) {
            batch.reply(to: routing, requestID: envelope.requestID, method: method, started: started, result,
                        request: envelope, client: client)
        }
    }

    /// Serves one decoded, authorized call (`caller`: its identity and scope, nil when the
    /// daemon authenticates no one): the payload's shape, the deadline, then the handler.
    /// nil when the answer is deferred (TakeSnapshot).
    private func serve(_ method: Method, _ envelope: RequestEnvelope, receivedAt: Millis, routing: ArraySlice<Frame>,
                       caller: Caller?) -> CallAnswer? {
        do throws(RPCError) {
            if let refused = requestShape.checkPayload(envelope.payload, for: method) { throw refused }
            if envelope.deadlineMs > 0, clock.now() - receivedAt >= Int64(clamping: envelope.deadlineMs) {
                throw RPCError(.deadlineExceeded, "the call's deadline of \(envelope.deadlineMs) ms passed before it was applied; nothing was changed")
            }
            if let due = nextDeadline, due <= clock.now() { fireDeadlineOfTouchedCase(method, envelope.payload) }
            if method.isMutating {
                let (answer, change) = try CaseService.mutate(method, envelope, store: &store, idempotency: idempotency,
                                                              caller: caller, now: clock.now())
                if let change { record(change) }
                return answer
            }
            switch method {
            case .takeSnapshot:
                requestSnapshot(replyTo: routing, requestID: envelope.requestID)
                return nil
            case .ping:
                return .success(try AdminService.ping(envelope.payload, now: clock.now()))
            case .check:
                return .success(try AdminService.check(envelope.payload))
            case .getStats:
                _ = try CaseService.decode(Aftersales_V1_GetStatsRequest.self, envelope.payload)
                return .success(try! statistics().serializedBytes())
            case .replayEvents:
                return .success(try AdminService.replay(envelope.payload, from: announcements))
            case .slowCalls:
                let request = try CaseService.decode(Aftersales_V1_SlowCallsRequest.self, envelope.payload)
                return .success(try! slowCalls.answer(request).serializedBytes())
            case .listServices:
                return .success(try AdminService.listServices(envelope.payload))
            case .getClusterMap:
                return .success(try AdminService.standaloneClusterMap(envelope.payload, endpoints: boundEndpoints, startedAt: startedAt))
            case .getDescriptors:
                return .success(try AdminService.descriptors(envelope.payload))
            default:
                return try CaseService.query(method, envelope.payload, store: &store, encoded: &encodedCases, scope: caller?.scope)
            }
        } catch {
            return .failure(error)
        }
    }

    /// While deadlines are overdue (a burst worked off a slice at a time), the case a call
    /// names has its own due deadline fired first, journaled and announced like any other
    /// firing: the call then sees the case as it is after its deadline, never a proposal
    /// still pending past `expires_at`. The case id is read as routing reads it (only the
    /// `case_id` field), and only in a backlog.
    private func fireDeadlineOfTouchedCase(_ method: Method, _ payload: Data) {
        guard let caseID = RequestRouting.caseID(of: method, payload: payload), !caseID.isEmpty else { return }
        let now = clock.now()
        guard let outcome = store.fireDeadlineIfDue(caseID: caseID, now: now) else { return }
        if let due = outcome.firedDeadlineDueAt { tally?.deadlineFired(lateByMs: now - due) }
        record(Change(outcome: outcome, encoded: EncodedCase(outcome.case), answer: nil, at: now))
    }

    /// The earliest deadline. Read through `inout` because reading a struct stored in a
    /// class copies it whole (a retain and a release of each of the store's fields, three
    /// times a turn in callgrind); an inout access reads it in place.
    var nextDeadline: Millis? { Self.nextDeadline(&store) }

    private static func nextDeadline(_ store: inout CaseStore) -> Millis? { store.nextDeadline }

    /// Whether deadlines are held to --deadline-rate at monotonic time `now`: a rate is set
    /// and a call arrived in the last 100 ms.
    private func deadlinesYieldToCalls(at now: UInt64) -> Bool {
        config.deadlineRatePerSecond > 0 && now &- lastCallAt < 100_000_000
    }

    /// One deadline's worth of credit (the credit counts millionths, so the refill of a
    /// short turn is not lost to rounding).
    private static let oneDeadline: Int64 = 1_000_000

    /// Journals one change and numbers its announcements, which wait for the disk.
    private func record(_ change: Change) {
        encodedCases.keep(change.outcome.case, change.encoded)
        let events = announcements.announce(change.outcome, at: change.at, caseBytes: change.encoded.summaryBytes, record: journal.nextSequence)
        if let answer = change.answer { idempotency.remember(answer) }
        do {
            try journal.append(WireAssembly.journalEntry(timeMs: change.at, case: change.encoded, events: events,
                                                         nextCaseNumber: store.nextCaseNumber, answer: change.answer))
        } catch {
            // Only a record over the journal's 64 MiB cap can fail here; the call's own
            // size limit keeps cases far below it, so this is a bug worth stopping for.
            fatalError("journal refused a record: \(error)")
        }
        batch.changed = true
    }

    /// Deadlines that came due fire as SYSTEM commands, in due order. A backlog (a burst
    /// of expiries due together) is worked off a slice per turn, and while calls arrive at
    /// most --deadline-rate a second, so calls keep being answered between slices. At
    /// start-up every due deadline was missed while the daemon was down: all fire at
    /// once, before any call, and say so (`late`); later the engine marks late only those
    /// fired past its tolerance.
    func fireDueDeadlines(missedWhileDown: Bool = false) {
        let started = monotonicNanoseconds()
        let budget = missedWhileDown ? UInt64.max : config.deadlineBudgetMicroseconds * 1_000
        let rate = Int64(config.deadlineRatePerSecond)
        // Deadlines yield to calls. While calls arrive, a token bucket holds deadlines to
        // --deadline-rate a second: it fills at that rate, up to 10 ms worth, and each
        // firing spends one. (100 ms worth let the first calls after a pause meet 1 500
        // deadlines fired at full speed: GetCase p99 1.7–3×.) What comes due more slowly
        // fires on time; a burst (a sale's proposals expiring together, a daemon that was
        // paused) is worked off at that rate. Each firing costs the loop, libzmq's I/O thread and every
        // subscriber: at full speed a burst holds every thread of a 2-core machine, and
        // calls wait in the run queue (Redis' active expiry keeps to 25% of its CPU for
        // the same reason). A call that touches an overdue case fires its deadline first
        // (fireDeadlineOfTouchedCase). With no calls, deadlines fire as fast as they can.
        let rationed = !missedWhileDown && deadlinesYieldToCalls(at: started)
        if rate > 0 {
            let elapsed = Int64(clamping: min(started &- deadlineCreditAt, 1_000_000_000))
            deadlineCredit = min(max(Self.oneDeadline, rate * Self.oneDeadline / 100), deadlineCredit + elapsed * rate / 1_000)
            deadlineCreditAt = started
        }
        if rationed && deadlineCredit < Self.oneDeadline { return }
        while let due = nextDeadline, due <= clock.now(), monotonicNanoseconds() - started < budget {
            let now = clock.now()
            let limit = rationed ? Int(min(16, deadlineCredit / Self.oneDeadline)) : 16
            if limit == 0 { break }
            let outcomes = store.fireDueDeadlines(now: now, limit: limit)
            if rationed { deadlineCredit -= Int64(outcomes.count) * Self.oneDeadline }
            for var outcome in outcomes {
                if let due = outcome.firedDeadlineDueAt { tally?.deadlineFired(lateByMs: now - due) }
                if missedWhileDown {
                    for i in outcome.announcements.indices { outcome.announcements[i].late = true }
                }
                record(Change(outcome: outcome, encoded: EncodedCase(outcome.case), answer: nil, at: now))
            }
        }
    }

    /// Group commit: the whole batch reaches the journal (and, by policy, the disk) before
    /// any of its replies. A journal that cannot be written ends the daemon: nothing may
    /// be acknowledged that a restart would not find, so the batch is refused and the
    /// supervisor restarts from what is durable (as Redis does under appendfsync always).
    func commit() throws {
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

    /// Moves the announcements whose journal records are on disk into the batch.
    func releaseDurableAnnouncements() {
        publishBacklog = false
        // Twice what was announced since the last release, at least the configured slice:
        // under a steady load every turn's announcements go out with it (a fixed slice
        // below what a full batch makes grew a backlog that outlived the load), while a
        // sync that releases a second's worth at once is spread over turns.
        let made = Int(clamping: announcements.lastSeq &- seqAtLastRelease)
        seqAtLastRelease = announcements.lastSeq
        guard announcements.unpublishedCount > 0 else { return }
        journal.refreshDurable()
        publishBacklog = announcements.release(durableBefore: journal.durableNextSequence, into: &batch.events,
                                               limit: max(config.maxPublishedPerTurn, 2 * made))
    }
}

/// What serving one call produced (the client's `CallResult` is what it received).
enum CallAnswer {
    case success([UInt8])
    /// GetCase's answer: the case as encoded (`EncodedCase.full`), spliced into the reply.
    case found([UInt8])
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
        var code: StatusCode
        var started: UInt64
        /// The call as received, for the slow-call log (nil when it did not decode).
        var request: RequestEnvelope?
        /// The CURVE client's name, when the daemon authenticates.
        var client: String?
    }

    var replies: [Reply] = []
    var events: [PublishedEvent] = []
    var changed = false

    mutating func reply(to routing: ArraySlice<Frame>, requestID: UInt64, method: Method?, started: UInt64, _ result: CallAnswer,
                        request: RequestEnvelope? = nil, client: String? = nil) {
        let body: [UInt8]
        let code: StatusCode
        switch result {
        case .success(let payload):
            body = WireAssembly.responseEnvelope(requestID: requestID, code: .ok, message: "", payload: payload)
            code = .ok
        case .found(let caseBytes):
            body = WireAssembly.getCaseReply(requestID: requestID, caseBytes: caseBytes)
            code = .ok
        case .failure(let error):
            body = WireAssembly.responseEnvelope(requestID: requestID, code: error.code, message: error.message, payload: [UInt8]())
            code = error.code
        case .replayed(let payload, let message):
            body = WireAssembly.responseEnvelope(requestID: requestID, code: .ok, message: message, payload: payload)
            code = .ok
        }
        replies.append(Reply(routing: routing, body: body, method: method, code: code, started: started, request: request, client: client))
    }

    /// Replaces every answer with `error` (the batch could not be made durable), with a
    /// redirect when another member now serves the shard.
    mutating func refuseAll(_ error: RPCError, redirect: Aftersales_V1_Redirect? = nil) {
        for i in replies.indices {
            let requestID = (try? ResponseEnvelope(serializedBytes: replies[i].body))?.requestID ?? 0
            var envelope = ResponseEnvelope.failure(requestID: requestID, error)
            if let redirect { envelope.redirect = redirect }
            replies[i].body = try! envelope.serializedBytes()
            replies[i].code = error.code
        }
    }

    mutating func clear() {
        replies.removeAll(keepingCapacity: true)
        events.removeAll(keepingCapacity: true)
        changed = false
    }
}

/// A ROUTER message taken apart: the routing frames, the envelope and the method, or the
/// answer it gets without being served. Shared by the loop and the recovery phase.
enum IncomingCall {
    /// No routing id and delimiter: nothing can be answered.
    case unaddressable
    /// Answered with `error` without being served.
    case refused(routing: ArraySlice<Frame>, requestID: UInt64, RPCError)
    /// A call to serve.
    case call(routing: ArraySlice<Frame>, envelope: RequestEnvelope, method: Method)

    /// Checks the frame layout, the size and the envelope's shape, then decodes it.
    static func parse(_ frames: [Frame], maxMessageBytes: Int, shape: RequestShape) -> IncomingCall {
        guard let call = WireFrames.splitRouted(frames) else { return .unaddressable }
        guard call.body.count == 1, let body = call.body.first else {
            return .refused(routing: call.routing, requestID: 0,
                            RPCError(.invalidArgument, "expected exactly one RequestEnvelope frame after the empty delimiter, got \(call.body.count)"))
        }
        if body.count > maxMessageBytes {
            return .refused(routing: call.routing, requestID: leadingRequestID(body),
                            RPCError(.resourceExhausted, "request is \(body.count) bytes; this daemon accepts at most \(maxMessageBytes) (--max-message-bytes)"))
        }
        if let (envelope, method) = QuickEnvelope.read(body) {
            return .call(routing: call.routing, envelope: envelope, method: method)
        }
        if let refused = shape.checkEnvelope(body) {
            return .refused(routing: call.routing, requestID: leadingRequestID(body), refused)
        }
        let envelope: RequestEnvelope
        do {
            envelope = try RequestEnvelope(serializedBytes: body)
        } catch {
            return .refused(routing: call.routing, requestID: leadingRequestID(body),
                            RPCError(.invalidArgument, "frame does not parse as aftersales.v1.RequestEnvelope: \(error)"))
        }
        guard let method = Method(fullName: envelope.method) else {
            return .refused(routing: call.routing, requestID: envelope.requestID,
                            RPCError(.unimplemented, "unknown method '\(envelope.method)'; methods are named like 'aftersales.v1.CaseService/CreateCase' (aftersales-probe methods lists them)"))
        }
        return .call(routing: call.routing, envelope: envelope, method: method)
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

}

/// Counts answered calls: the method statistics (GetStats), the metrics' tally, the
/// slow-call log. Once per reply, when the reply is handed to the socket.
func account(for replies: [Batch.Reply], stats: inout MethodStatistics, tally: inout LoopTally?, slowCalls: inout SlowCallLog,
             clock: any DaemonClock) {
    let now = monotonicNanoseconds()
    var wallNow: Millis?
    if !replies.isEmpty { tally?.batch(size: replies.count) }
    for reply in replies {
        guard let method = reply.method else { continue }
        let microseconds = (now - reply.started) / 1_000
        let index = stats.record(method, failed: reply.code != .ok, microseconds: microseconds)
        tally?.call(method: index, code: reply.code, microseconds: microseconds)
        if slowCalls.thresholdMicroseconds > 0, microseconds >= slowCalls.thresholdMicroseconds {
            if wallNow == nil { wallNow = clock.now() }
            slowCalls.consider(reply, microseconds: microseconds, now: wallNow!)
        }
    }
}
