import AfterSalesProto
import AfterSalesRPC
import Foundation
import Synchronization
import ZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The calling thread's pthread id, as a number.
private func currentThreadID() -> UInt {
    #if canImport(Darwin)
    UInt(bitPattern: pthread_self())
    #else
    UInt(pthread_self())
    #endif
}

/// What a finished call hands back: the response payload, or why it failed.
typealias CallResult = Result<[UInt8], RPCError>

/// One call as a caller hands it to the engine.
struct CallSubmission: Sendable {
    let token: UInt64
    let method: Method
    let payload: [UInt8]
    let idempotencyKey: String
    let metadata: [String: String]
    /// Whether a timed-out attempt may be sent again (read-only, or mutating with a key).
    let retriable: Bool
    let attemptTimeout: UInt64
    /// Absolute monotonic nanoseconds; nil = none.
    let deadline: UInt64?
    let maxAttempts: Int
    let completion: @Sendable (CallResult) -> Void
}

/// The Lazy Pirate client of the ZeroMQ guide (`lpclient.c`), for many calls at once.
///
/// One DEALER socket carries every call. It lives under a lock, and whoever holds the lock
/// may use it: libzmq lets a socket move between threads when a full memory barrier
/// separates the uses, which the lock's acquire and release give. Calls are handed over
/// in an inbox; whoever next holds the socket sends everything in it:
/// - when the I/O thread is asleep, the caller takes the socket itself (if it is free) and
///   sends at once, on its own thread — no thread hand-off on the way out;
/// - when the I/O thread is awake (busy with answers), or another thread holds the socket,
///   the call just waits in the inbox: the holder sends it before it lets go, so calls
///   made together go out together and nobody waits for the lock.
/// After every use of the socket the user takes every answer waiting on it (the contract
/// of the edge-triggered `ZMQ_FD`: a send may consume the notification of an answer that
/// arrived meanwhile, so the answer must be read now or no poller would wake for it).
///
/// On the way back one thread at a time watches the socket's `ZMQ_FD` and completes the
/// calls whose answers arrive (matched by request id):
/// - the I/O thread, while async calls are in flight or were made recently; it stays
///   watching between calls, so a caller making async calls one after another never has
///   to wake it (its pipe is written only when it sleeps without watching, or until a time
///   later than the new call's deadline);
/// - otherwise a blocking caller itself (the "leader"): it waits in `poll` on the socket
///   like a bare socket would, with no thread between it and its answer. Answers for
///   other calls that it reads on the way are completed too.
/// The I/O thread also keeps the clock (Redis's `aeProcessEvents` idea: poll timeout =
/// next timer) for every call but the leader's, which the leader keeps itself.
///
/// Why not simply hand every call to the I/O thread (as this engine first did): on these
/// machines a thread woken from sleep costs tens of microseconds, and that design woke two
/// per call (the I/O thread through its pipe, then the caller) on top of the one a bare
/// socket pays — a GetCase took ~1.7× a bare REQ socket's round trip. Now a blocking call
/// wakes no thread a bare socket would not, and an async call only one more: the task's
/// executor, which whoever receives the answer must wake to resume it. `make bench` rows 9
/// measure both.
///
/// When an attempt gets no answer in time, the engine does what `lpclient.c` does: it
/// closes the socket, opens a new one, and resends — under a new request id but the same
/// idempotency key, so a call the daemon had already applied is answered again, not
/// applied twice. Reopening abandons every answer still on the way, so the other calls in
/// flight are resent too (read-only ones and those with a key; a mutating call without a
/// key fails, as its outcome is unknown). After `maxAttempts` attempts the caller gets
/// UNAVAILABLE ("no answer from ENDPOINT within T after N attempts"), or
/// DEADLINE_EXCEEDED once its overall deadline has passed.
final class CallEngine: Sendable {
    let endpoint: String
    /// CURVE credentials for every socket this engine opens; nil = plaintext.
    let curve: AfterSalesClient.CurveCredentials?
    private let context: ZMQContext
    private let state: Mutex<State>
    /// Calls not sent yet, and whether the I/O thread is awake (lock order: `state`, then `inbox`).
    private let inbox = Mutex(Inbox())
    private let tokens = Atomic<UInt64>(1)
    /// The I/O thread's pthread id (0 until it runs).
    private let ioThreadID = Atomic<UInt>(0)
    /// Wakes the I/O thread (to plan again: a nearer deadline, a socket to watch, close).
    private let ioWake: WakeUpPipe
    /// Wakes the leader (its call was completed by another thread, the socket was reopened, close).
    private let leaderWake: WakeUpPipe
    private let finished = DispatchSemaphore(value: 0)
    /// How long the I/O thread keeps watching the socket after the last async call, before
    /// it sleeps until the next call wakes it.
    private let watchLinger: UInt64

    /// Runs tasks on the I/O thread (see `AfterSalesClient.taskExecutor`); once the
    /// engine is gone, on the global executor.
    final class IOExecutor: TaskExecutor, @unchecked Sendable {
        // @unchecked: `engine` is set once, in the engine's init, before the executor is shared.
        fileprivate weak var engine: CallEngine?
        func enqueue(_ job: consuming ExecutorJob) {
            let job = UnownedJob(job)
            if let engine { engine.enqueueJob(job) } else { globalConcurrentExecutor.enqueue(ExecutorJob(job)) }
        }
    }
    /// The client's task executor: the I/O thread.
    let taskExecutor = IOExecutor()

    /// Starts the I/O thread; it connects to `endpoint` at once (libzmq connects in the
    /// background, so a daemon that is not up yet is not an error).
    init(endpoint: String, context: ZMQContext, curve: AfterSalesClient.CurveCredentials?, watchLinger: Duration = .milliseconds(500)) throws {
        self.endpoint = endpoint
        self.context = context
        self.curve = curve
        self.watchLinger = max(1_000_000, watchLinger.nanoseconds)
        self.ioWake = try WakeUpPipe()
        self.leaderWake = try WakeUpPipe()
        self.state = Mutex(State())
        taskExecutor.engine = self
        let started = DispatchSemaphore(value: 0)
        let startError = Mutex<(any Error)?>(nil)
        let thread = Thread { [self] in
            self.run { error in
                startError.withLock { $0 = error }
                started.signal()
            }
            self.finished.signal()
        }
        thread.name = "AfterSalesClient I/O"
        thread.start()
        // Fail early and clearly (e.g. a malformed endpoint), on the caller's thread.
        started.wait()
        if let error = startError.withLock({ $0 }) { throw error }
    }

    /// A token naming a call not yet submitted (so that a cancellation can name it).
    func makeToken() -> UInt64 {
        tokens.wrappingAdd(1, ordering: .relaxed).oldValue
    }

    /// Sends an async call. Its completion runs once, on whichever thread sees its end
    /// (its answer, its timeout, its cancellation, or `close`).
    func submit(_ call: CallSubmission) {
        let ioAwake = inbox.withLock { inbox -> Bool in
            inbox.calls.append((call, false))
            return inbox.ioAwake
        }
        // An awake I/O thread sends it before it sleeps; else send it now, unless another
        // thread holds the socket (then that thread sends it before it lets go).
        if !ioAwake { flushQueued() }
    }

    /// Makes a call and blocks until it ends; the caller's thread waits on the socket
    /// itself when no other thread watches it. Its completion runs before this returns.
    func callBlocking(_ call: CallSubmission) {
        if onIOThread {
            // A task on the client's executor: this thread would wait for itself.
            call.completion(.failure(RPCError(
                .failedPrecondition, "a blocking call on the client's own executor would wait for the thread it runs on; use the async form there")))
            return
        }
        let ioAwake = inbox.withLock { inbox -> Bool in
            inbox.calls.append((call, true))
            return inbox.ioAwake
        }
        if ioAwake { return }  // the I/O thread sends it and sees to its answer
        var after = After()
        let lead = state.withLock { state -> (fd: Int32, until: UInt64)? in
            sendQueued(&state, &after)
            guard let entry = state.pending[call.token] else { return nil }  // already ended
            if state.leader == nil && !state.ioWatches && !state.closing {
                state.leader = call.token
                return (state.socketFD, entry.wakeAt)
            }
            // Someone else watches the socket; the I/O thread's clock must ring by this deadline.
            if entry.wakeAt < state.ioSleepsUntil || (state.leader == nil && !state.ioWatches) { after.wakeIO = true }
            return nil
        }
        finish(&after)
        flushQueued()
        if let lead { self.lead(call.token, fd: lead.fd, until: lead.until) }
    }

    /// Gives up on a call: it completes with CANCELLED (unless it already completed).
    func cancel(_ token: UInt64) {
        var after = After()
        let error = RPCError(.cancelled, "the call was cancelled by the caller")
        state.withLock { state in
            if let entry = state.pending.removeValue(forKey: token) {
                state.byRequest[entry.requestID] = nil
                after.completions.append((entry.call.completion, .failure(error)))
                return
            }
            // Not sent yet (sending takes calls from the inbox under this lock, so the call
            // is in one place or the other).
            let waiting = inbox.withLock { inbox -> CallSubmission? in
                guard let index = inbox.calls.firstIndex(where: { $0.call.token == token }) else { return nil }
                return inbox.calls.remove(at: index).call
            }
            if let waiting { after.completions.append((waiting.completion, .failure(error))) }
        }
        finish(&after)
        flushQueued()  // calls handed over while this thread held the socket
    }

    /// Whether the calling thread is the I/O thread.
    var onIOThread: Bool { ioThreadID.load(ordering: .relaxed) == currentThreadID() }

    /// Runs `job` on the I/O thread (the client's task executor): at once after what it is
    /// doing when it is awake, else it is woken for it. Once the I/O thread has ended, on
    /// the global executor, so no task is ever stranded.
    func enqueueJob(_ job: UnownedJob) {
        let (awake, ended) = inbox.withLock { inbox -> (Bool, Bool) in
            if !inbox.ioEnded { inbox.jobs.append(job) }
            return (inbox.ioAwake, inbox.ioEnded)
        }
        if ended {
            globalConcurrentExecutor.enqueue(ExecutorJob(job))
        } else if !awake {
            ioWake.signal()
        }
    }

    /// Stops the I/O thread: calls still in flight (and those handed over meanwhile)
    /// complete with CANCELLED. Waits (at most `wait`; not at all on the I/O thread) for
    /// the thread to close its socket. Idempotent. Never call it from a completion handler.
    func close(wait: Duration = .seconds(2)) {
        let first = state.withLock { state -> Bool in
            defer { state.closing = true }
            return !state.closing
        }
        guard first else { return }
        ioWake.signal()
        leaderWake.signal()
        if onIOThread { return }  // a task on the client's executor: the thread ends after it
        _ = finished.wait(timeout: .now() + .nanoseconds(Int(min(wait.nanoseconds, UInt64(Int.max)))))
    }

    // MARK: state

    /// A call in flight.
    private struct Pending {
        let call: CallSubmission
        var attempts = 0
        var requestID: UInt64 = 0
        var attemptDeadline: UInt64 = 0

        /// When this call next needs attention: its attempt's end or its overall deadline.
        var wakeAt: UInt64 { min(attemptDeadline, call.deadline ?? .max) }
    }

    /// Everything the lock guards: the socket and the calls in flight.
    private struct State: ~Copyable {
        var socket: ZMQSocket?
        /// The socket's `ZMQ_FD` (-1 when there is none).
        var socketFD: Int32 = -1
        var pending: [UInt64: Pending] = [:]  // by token
        var byRequest: [UInt64: UInt64] = [:]  // request id → token
        var nextRequestID: UInt64 = 1
        var closing = false
        /// The blocking call whose thread watches the socket now, if any.
        var leader: UInt64?
        /// The I/O thread's plan for its current sleep: whether it watches the socket, and
        /// until when it sleeps (.max = until woken).
        var ioWatches = false
        var ioSleepsUntil: UInt64 = 0
        /// Async calls made since the I/O thread last planned (keeps it watching).
        var asyncSincePlan = 0
    }

    /// Calls handed over but not sent yet, and jobs of tasks that run on the I/O thread.
    private struct Inbox {
        var calls: [(call: CallSubmission, blocking: Bool)] = []
        var jobs: [UnownedJob] = []
        /// The I/O thread is between polls: it looks at the inbox before it sleeps again.
        var ioAwake = true
        /// The I/O thread has ended: jobs go to the global executor.
        var ioEnded = false
    }

    /// What to do once the lock is released: completions of calls that failed (answers
    /// complete theirs at once, see `receiveAnswers`), threads to wake.
    private struct After {
        var completions: [(@Sendable (CallResult) -> Void, CallResult)] = []
        var wakeIO = false
        var wakeLeader = false
    }

    /// Who is running engine code (what it need not wake).
    private enum Role { case caller, leader, io }

    private func finish(_ after: inout After) {
        if after.wakeIO { ioWake.signal() }
        if after.wakeLeader { leaderWake.signal() }
        for (completion, result) in after.completions { completion(result) }
        after = After()
    }

    // MARK: the caller's side

    /// Sends every call waiting in the inbox (the caller holds the socket), then takes the
    /// answers waiting on the socket; decides whether the I/O thread must be woken. True
    /// when it used the socket (and so took the answers).
    @discardableResult
    private func sendQueued(_ state: inout State, _ after: inout After, role: Role = .caller) -> Bool {
        let (calls, ioAwake) = inbox.withLock { inbox in
            defer { inbox.calls.removeAll(keepingCapacity: true) }
            return (inbox.calls, inbox.ioAwake)
        }
        guard !calls.isEmpty else { return false }
        guard !state.closing, state.socket != nil else {
            for (call, _) in calls { after.completions.append((call.completion, .failure(RPCError(.cancelled, "the client was closed")))) }
            return false
        }
        let now = monotonicNanoseconds()
        var nearestAsync: UInt64?
        for (call, blocking) in calls {
            var entry = Pending(call: call)
            send(&entry, &state, now: now, newAttempt: true)
            state.pending[call.token] = entry
            if !blocking {
                state.asyncSincePlan += 1
                nearestAsync = min(nearestAsync ?? .max, entry.wakeAt)
            }
        }
        receiveAnswers(&state, &after, role: role)
        // For async calls a sleeping I/O thread must watch the socket when no one does, and
        // its clock must ring by their deadlines. (A blocking caller sees to its own call:
        // it leads, or wakes the I/O thread itself; an awake I/O thread plans anew anyway.)
        if let nearestAsync, !ioAwake, (state.leader == nil && !state.ioWatches) || nearestAsync < state.ioSleepsUntil {
            after.wakeIO = true
        }
        return true
    }

    /// Sends what waits in the inbox if the socket is free and the I/O thread asleep. Every
    /// thread but the I/O thread calls it after it lets go of the socket: a caller that
    /// found the socket taken left its call in the inbox for the holder, so nothing is left
    /// behind. (The I/O thread looks at the inbox before it sleeps.)
    private func flushQueued() {
        while inbox.withLock({ !$0.calls.isEmpty && !$0.ioAwake }) {
            var after = After()
            guard state.withLockIfAvailable({ state in sendQueued(&state, &after) }) != nil else { return }
            finish(&after)
        }
    }

    /// The leader's loop: wait on the socket until `token`'s call has ended, completing
    /// every answer read on the way; then hand the watch back to the I/O thread if calls
    /// are still in flight.
    private func lead(_ token: UInt64, fd initialFD: Int32, until initialUntil: UInt64) {
        var (fd, until) = (initialFD, initialUntil)
        var after = After()
        while true {
            if waitReadable(fd, leaderWake.readDescriptor, until: until) { leaderWake.drain() }
            let next = state.withLock { state -> (fd: Int32, until: UInt64)? in
                if !sendQueued(&state, &after, role: .leader) { receiveAnswers(&state, &after, role: .leader, leading: token) }
                let now = monotonicNanoseconds()
                if let own = state.pending[token], own.wakeAt <= now { handleTimeouts(&state, now: now, &after, role: .leader) }
                if let own = state.pending[token], !state.closing, state.leader == token {
                    return (state.socketFD, own.wakeAt)
                }
                if state.leader == token {
                    state.leader = nil
                    if !state.pending.isEmpty && !state.ioWatches && !state.closing { after.wakeIO = true }
                }
                return nil
            }
            finish(&after)
            flushQueued()
            guard let next else { return }
            (fd, until) = next
        }
    }

    // MARK: the I/O thread

    private func run(started: (_ error: (any Error)?) -> Void) {
        ioThreadID.store(currentThreadID(), ordering: .relaxed)
        do {
            try state.withLock { state in try openSocket(&state) }
            started(nil)
        } catch {
            started(error)
            state.withLock { $0.closing = true }
            inbox.withLock { $0.ioAwake = false }
            return
        }
        var after = After()
        while true {
            // Awake (the inbox says so, so callers leave their calls to this thread): send
            // what was handed over, take the answers, do what is due, plan the next sleep.
            inbox.withLock { $0.ioAwake = true }
            let plan = state.withLock { state -> (fd: Int32, until: UInt64)? in
                guard !state.closing else { return nil }
                if !sendQueued(&state, &after, role: .io) { receiveAnswers(&state, &after, role: .io) }
                let now = monotonicNanoseconds()
                handleTimeouts(&state, now: now, &after, role: .io)
                var nearest = UInt64.max
                var others = false
                for (token, entry) in state.pending where token != state.leader {
                    nearest = min(nearest, entry.wakeAt)
                    others = true
                }
                let watch = state.leader == nil && (others || state.asyncSincePlan > 0)
                if watch && !others { nearest = now + watchLinger }
                state.asyncSincePlan = 0
                state.ioWatches = watch
                state.ioSleepsUntil = nearest
                return (watch ? state.socketFD : -1, nearest)
            }
            finish(&after)
            guard let plan else { break }
            // Tasks that run here (the client's task executor), resumed by the answers just
            // taken, run now, on the thread that read their answers; then plan again.
            if runJobs() { continue }
            // Asleep from here on, unless calls or jobs were handed over meanwhile: then
            // round again.
            let sleep = inbox.withLock { inbox -> Bool in
                guard inbox.calls.isEmpty && inbox.jobs.isEmpty else { return false }
                inbox.ioAwake = false
                return true
            }
            if sleep, waitReadable(plan.fd, ioWake.readDescriptor, until: plan.until) { ioWake.drain() }
        }
        // Shutting down: everything left fails; the socket is closed. Later calls find the
        // I/O thread asleep, take the socket themselves and see that the client is closed.
        state.withLock { state in
            let error = RPCError(.cancelled, "the client was closed")
            let queued = inbox.withLock { inbox in
                defer { inbox.calls.removeAll(); inbox.ioAwake = false }
                return inbox.calls
            }
            for (call, _) in queued { after.completions.append((call.completion, .failure(error))) }
            for entry in state.pending.values { after.completions.append((entry.call.completion, .failure(error))) }
            state.pending.removeAll()
            state.byRequest.removeAll()
            state.socket?.close()
            state.socket = nil
            state.socketFD = -1
            state.ioWatches = false
            if state.leader != nil { after.wakeLeader = true }
        }
        finish(&after)
        // The tasks resumed by those failures (and any still waiting to run) run here; from
        // now on jobs go to the global executor.
        runJobs()
        let left = inbox.withLock { inbox in
            defer { inbox.jobs.removeAll(); inbox.ioEnded = true }
            return inbox.jobs
        }
        for job in left { globalConcurrentExecutor.enqueue(ExecutorJob(job)) }
    }

    /// Runs the jobs handed to the client's task executor, until none are left; true when
    /// it ran any. Meanwhile the I/O thread counts as asleep (it planned before, and does
    /// not hold the socket): callers, these tasks among them, send their own calls and wake
    /// it as they would a sleeping one.
    @discardableResult
    private func runJobs() -> Bool {
        var ran = false
        while true {
            let jobs = inbox.withLock { inbox in
                defer { inbox.jobs.removeAll(keepingCapacity: true) }
                if !inbox.jobs.isEmpty { inbox.ioAwake = false }
                return inbox.jobs
            }
            if jobs.isEmpty { return ran }
            ran = true
            for job in jobs { job.runSynchronously(on: taskExecutor.asUnownedTaskExecutor()) }
        }
    }

    /// Waits until `fd` (skipped when -1) is readable, `wakeFD` is readable or `until`
    /// (monotonic ns; .max = no limit) passes; true when `wakeFD` was readable.
    private func waitReadable(_ fd: Int32, _ wakeFD: Int32, until: UInt64) -> Bool {
        var fds = (pollfd(fd: fd, events: Int16(POLLIN), revents: 0), pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0))
        let timeout = pollTimeout(until: until == .max ? nil : until, now: monotonicNanoseconds())
        let ready = withUnsafeMutableBytes(of: &fds) { bytes in
            poll(bytes.baseAddress!.assumingMemoryBound(to: pollfd.self), 2, Int32(timeout))
        }
        return ready > 0 && fds.1.revents != 0
    }

    // MARK: the socket (all under the lock)

    /// Opens (or reopens) the DEALER socket.
    private func openSocket(_ state: inout State) throws {
        state.socket?.close()
        state.socket = nil
        state.socketFD = -1
        let socket = try ZMQSocket(context, .dealer)
        try socket.setSendHighWaterMark(0)  // bounded by the calls in flight
        try socket.setReceiveHighWaterMark(0)
        try curve?.apply(to: socket)
        try socket.connect(endpoint)
        state.socketFD = try socket.fileDescriptor
        state.socket = socket
    }

    /// Sends `entry` under a new request id. A new attempt gets a fresh attempt deadline;
    /// a resend after a reconnect keeps the one it had.
    private func send(_ entry: inout Pending, _ state: inout State, now: UInt64, newAttempt: Bool) {
        if newAttempt {
            entry.attempts += 1
            let (end, overflow) = now.addingReportingOverflow(entry.call.attemptTimeout)
            entry.attemptDeadline = overflow ? .max : end
        }
        state.byRequest[entry.requestID] = nil
        entry.requestID = state.nextRequestID
        state.nextRequestID &+= 1
        state.byRequest[entry.requestID] = entry.call.token

        let remaining = entry.wakeAt > now ? entry.wakeAt - now : 1
        var envelope = RequestEnvelope(
            requestID: entry.requestID, method: entry.call.method, payload: entry.call.payload,
            deadlineMilliseconds: max(1, (remaining + 999_999) / 1_000_000),
            idempotencyKey: entry.call.idempotencyKey)
        envelope.metadata = entry.call.metadata
        do {
            let body: [UInt8] = try envelope.serializedBytes()
            // false = could not be queued now; the attempt then times out and is resent.
            _ = try state.socket?.send(WireFrames.dealerCall(body: body), dontWait: true)
        } catch {
            // A send error on a live socket is not expected; the attempt's timeout handles it.
        }
    }

    /// Takes every answer waiting on the socket and completes the calls they belong to.
    /// Called after every use of the socket (see the type's comment on `ZMQ_FD`) — except
    /// that a leader whose own answer came while no other call is in flight stops there:
    /// nothing else is on the way, and whoever uses the socket next takes what is waiting
    /// (every send is followed by this) before anyone watches it again.
    ///
    /// A completion runs here, at once, under the lock: it only resumes a task or signals a
    /// waiting thread, and running it before the last look at the socket (a syscall) lets
    /// the caller go that much sooner.
    private func receiveAnswers(_ state: inout State, _ after: inout After, role: Role, leading: UInt64? = nil) {
        guard let socket = state.socket else { return }
        while true {
            let frames: [Frame]?
            do { frames = try socket.receive(dontWait: true) } catch { return }
            guard let frames else { return }
            guard let body = WireFrames.dealerReply(frames),
                  let answer = try? ResponseEnvelope(serializedBytes: body),
                  let token = state.byRequest.removeValue(forKey: answer.requestID),
                  let entry = state.pending.removeValue(forKey: token)
            else { continue }  // malformed, or the answer to an abandoned attempt
            if token == state.leader && role != .leader { after.wakeLeader = true }
            if answer.code == .ok {
                entry.call.completion(.success(Array(answer.payload)))
            } else {
                entry.call.completion(.failure(RPCError(answer.code, answer.message, redirect: answer.hasRedirect ? answer.redirect : nil)))
            }
            if let leading, token == leading, state.pending.isEmpty { return }
        }
    }

    /// Fails or resends the calls whose attempt (or deadline) ran out; one Lazy Pirate
    /// reconnect serves every call resent in this round.
    private func handleTimeouts(_ state: inout State, now: UInt64, _ after: inout After, role: Role) {
        var retry: [UInt64] = []
        var expired: [(UInt64, RPCError)] = []
        for (token, entry) in state.pending where entry.wakeAt <= now {
            // The leader keeps its own call's clock; the I/O thread leaves it alone.
            if role == .io && token == state.leader { continue }
            let call = entry.call
            if let deadline = call.deadline, deadline <= now {
                expired.append((token, RPCError(
                    .deadlineExceeded,
                    "no answer from \(endpoint) before the call's deadline (\(entry.attempts) attempt\(entry.attempts == 1 ? "" : "s"))")))
            } else if entry.attempts >= call.maxAttempts || !call.retriable {
                let timeout = Duration.nanoseconds(Int64(clamping: call.attemptTimeout)).shortText
                let tries = entry.attempts > 1 ? " after \(entry.attempts) attempts" : ""
                expired.append((token, RPCError(.unavailable, "\(RPCError.noAnswerPrefix)\(endpoint) within \(timeout)\(tries)")))
            } else {
                retry.append(token)
            }
        }
        for (token, error) in expired { fail(token, &state, &after, error, role: role) }
        guard !retry.isEmpty else { return }
        // The socket is replaced: whoever watches the old one must look at the new one.
        if role != .io && state.ioWatches { after.wakeIO = true }
        if role != .leader && state.leader != nil { after.wakeLeader = true }
        do {
            try openSocket(&state)
        } catch {
            // Could not reopen: every call fails, as nothing can be sent any more.
            for token in Array(state.pending.keys) {
                fail(token, &state, &after, RPCError(.unavailable, "cannot reopen the socket to \(endpoint): \(error)"), role: role)
            }
            return
        }
        let retrySet = Set(retry)
        for token in Array(state.pending.keys) {
            guard var entry = state.pending[token] else { continue }
            if retrySet.contains(token) {
                send(&entry, &state, now: now, newAttempt: true)
            } else if entry.call.retriable {
                send(&entry, &state, now: now, newAttempt: false)
            } else {
                fail(token, &state, &after, RPCError(
                    .unavailable,
                    "the connection to \(endpoint) was reset while the call was in flight; its outcome is unknown (pass an idempotency key to make it safe to resend)"),
                     role: role)
                continue
            }
            state.pending[token] = entry
        }
        receiveAnswers(&state, &after, role: role)
    }

    private func fail(_ token: UInt64, _ state: inout State, _ after: inout After, _ error: RPCError, role: Role) {
        guard let entry = state.pending.removeValue(forKey: token) else { return }
        state.byRequest[entry.requestID] = nil
        if token == state.leader && role != .leader { after.wakeLeader = true }
        after.completions.append((entry.call.completion, .failure(error)))
    }
}
