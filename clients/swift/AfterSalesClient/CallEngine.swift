import AfterSalesProto
import AfterSalesRPC
import Foundation
import Synchronization
import ZeroMQ

/// What a finished call hands back: the response payload, or why it failed.
typealias CallResult = Result<[UInt8], RPCError>

/// One call as a caller hands it to the I/O thread.
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
/// One DEALER socket, owned by one I/O thread. Callers on any thread `submit` calls into a
/// lock-protected inbox and wake the thread through a pipe in its poller. The thread sends
/// each call with a fresh request id, matches answers by request id, and sleeps in the
/// poller until the nearest attempt deadline (Redis's `aeProcessEvents` idea: poll
/// timeout = next timer).
///
/// When an attempt gets no answer in time, the thread does what `lpclient.c` does: it
/// closes the socket, opens a new one, and resends — under a new request id but the same
/// idempotency key, so a call the daemon had already applied is answered again, not
/// applied twice. Reopening abandons every answer still on the way, so the other calls in
/// flight are resent too (read-only ones and those with a key; a mutating call without a
/// key fails, as its outcome is unknown). After `maxAttempts` attempts the caller gets
/// UNAVAILABLE ("no answer from ENDPOINT within T after N attempts"), or
/// DEADLINE_EXCEEDED once its overall deadline has passed.
final class CallEngine: Sendable {
    private struct Inbox: ~Copyable {
        var submissions: [CallSubmission] = []
        var cancellations: [UInt64] = []
        var nextToken: UInt64 = 1
        var closing = false
    }

    let endpoint: String
    /// CURVE credentials for every socket this engine opens; nil = plaintext.
    let curve: AfterSalesClient.CurveCredentials?
    private let inbox = Mutex(Inbox())
    private let wake: WakeUpPipe
    private let finished = DispatchSemaphore(value: 0)
    private let context: ZMQContext

    /// Starts the I/O thread; it connects to `endpoint` at once (libzmq connects in the
    /// background, so a daemon that is not up yet is not an error).
    init(endpoint: String, context: ZMQContext, curve: AfterSalesClient.CurveCredentials?) throws {
        self.endpoint = endpoint
        self.context = context
        self.curve = curve
        self.wake = try WakeUpPipe()
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
        inbox.withLock { inbox in
            defer { inbox.nextToken += 1 }
            return inbox.nextToken
        }
    }

    /// Hands a call to the I/O thread. Its completion runs once, on the I/O thread.
    func submit(_ call: CallSubmission) {
        let accepted = inbox.withLock { inbox -> Bool in
            guard !inbox.closing else { return false }
            inbox.submissions.append(call)
            return true
        }
        if accepted {
            wake.signal()
        } else {
            call.completion(.failure(RPCError(.cancelled, "the client was closed")))
        }
    }

    /// Gives up on a call: it completes with CANCELLED (unless it already completed).
    func cancel(_ token: UInt64) {
        inbox.withLock { $0.cancellations.append(token) }
        wake.signal()
    }

    /// Stops the I/O thread: calls still in flight complete with CANCELLED. Waits (at most
    /// `wait`) for the thread to close its socket. Idempotent. Never call it from a
    /// completion handler.
    func close(wait: Duration = .seconds(2)) {
        let first = inbox.withLock { inbox -> Bool in
            defer { inbox.closing = true }
            return !inbox.closing
        }
        guard first else { return }
        wake.signal()
        _ = finished.wait(timeout: .now() + .nanoseconds(Int(min(wait.nanoseconds, UInt64(Int.max)))))
    }

    // MARK: the I/O thread

    /// A call the I/O thread is working on.
    private struct Pending {
        let call: CallSubmission
        var attempts = 0
        var requestID: UInt64 = 0
        var attemptDeadline: UInt64 = 0

        /// When this call next needs attention: its attempt's end or its overall deadline.
        var wakeAt: UInt64 { min(attemptDeadline, call.deadline ?? .max) }
    }

    private final class Loop {
        let endpoint: String
        let context: ZMQContext
        var socket: ZMQSocket?
        var poller = ZMQPoller()
        var pending: [UInt64: Pending] = [:]  // by token
        var byRequest: [UInt64: UInt64] = [:]  // request id → token
        var nextRequestID: UInt64 = 1

        init(endpoint: String, context: ZMQContext) {
            self.endpoint = endpoint
            self.context = context
        }
    }

    private func run(started: (_ error: (any Error)?) -> Void) {
        let loop = Loop(endpoint: endpoint, context: context)
        var failure: RPCError? = nil
        do {
            try openSocket(loop)
            started(nil)
        } catch {
            started(error)
            inbox.withLock { $0.closing = true }
            return
        }
        while failure == nil {
            let now = monotonicNanoseconds()
            let nearest = loop.pending.values.lazy.map(\.wakeAt).min()
            do {
                _ = try loop.poller.poll(timeoutMilliseconds: pollTimeout(until: nearest, now: now))
            } catch {
                failure = RPCError(.unavailable, "polling the socket to \(endpoint) failed: \(error)")
                break
            }
            wake.drain()
            let (submissions, cancellations, closing) = inbox.withLock { inbox in
                defer {
                    inbox.submissions.removeAll(keepingCapacity: true)
                    inbox.cancellations.removeAll(keepingCapacity: true)
                }
                return (inbox.submissions, inbox.cancellations, inbox.closing)
            }
            if closing {
                failure = RPCError(.cancelled, "the client was closed")
                break
            }
            for call in submissions {
                var entry = Pending(call: call)
                send(&entry, loop, now: monotonicNanoseconds(), newAttempt: true)
                loop.pending[call.token] = entry
            }
            for token in cancellations {
                if let entry = loop.pending.removeValue(forKey: token) {
                    loop.byRequest[entry.requestID] = nil
                    entry.call.completion(.failure(RPCError(.cancelled, "the call was cancelled by the caller")))
                }
            }
            receiveAnswers(loop)
            handleTimeouts(loop)
        }
        // Shutting down (or the socket could not be used): everything left fails.
        let error = failure ?? RPCError(.cancelled, "the client was closed")
        for entry in loop.pending.values { entry.call.completion(.failure(error)) }
        loop.pending.removeAll()
        loop.socket?.close()
        loop.socket = nil
        loop.poller = ZMQPoller()
        // Calls that arrived after the last look at the inbox.
        let late = inbox.withLock { inbox in
            inbox.closing = true
            defer { inbox.submissions.removeAll() }
            return inbox.submissions
        }
        for call in late { call.completion(.failure(error)) }
    }

    /// Opens (or reopens) the DEALER socket and rebuilds the poller around it.
    private func openSocket(_ loop: Loop) throws {
        loop.socket?.close()
        let socket = try ZMQSocket(loop.context, .dealer)
        try socket.setSendHighWaterMark(0)  // bounded by the calls in flight
        try socket.setReceiveHighWaterMark(0)
        try curve?.apply(to: socket)
        try socket.connect(loop.endpoint)
        loop.socket = socket
        var poller = ZMQPoller()
        poller.add(socket)
        poller.add(fileDescriptor: wake.readDescriptor)
        loop.poller = poller
    }

    /// Sends `entry` under a new request id. A new attempt gets a fresh attempt deadline;
    /// a resend after a reconnect keeps the one it had.
    private func send(_ entry: inout Pending, _ loop: Loop, now: UInt64, newAttempt: Bool) {
        if newAttempt {
            entry.attempts += 1
            let (end, overflow) = now.addingReportingOverflow(entry.call.attemptTimeout)
            entry.attemptDeadline = overflow ? .max : end
        }
        loop.byRequest[entry.requestID] = nil
        entry.requestID = loop.nextRequestID
        loop.nextRequestID &+= 1
        loop.byRequest[entry.requestID] = entry.call.token

        let remaining = entry.wakeAt > now ? entry.wakeAt - now : 1
        var envelope = RequestEnvelope(
            requestID: entry.requestID, method: entry.call.method, payload: entry.call.payload,
            deadlineMilliseconds: max(1, (remaining + 999_999) / 1_000_000),
            idempotencyKey: entry.call.idempotencyKey)
        envelope.metadata = entry.call.metadata
        do {
            let body: [UInt8] = try envelope.serializedBytes()
            // false = could not be queued now; the attempt then times out and is resent.
            _ = try loop.socket?.send(WireFrames.dealerCall(body: body), dontWait: true)
        } catch {
            // A send error on a live socket is not expected; the attempt's timeout handles it.
        }
    }

    /// Takes every answer waiting on the socket and completes the calls they belong to.
    private func receiveAnswers(_ loop: Loop) {
        guard let socket = loop.socket else { return }
        while true {
            let frames: [Frame]?
            do { frames = try socket.receive(dontWait: true) } catch { return }
            guard let frames else { return }
            guard let body = WireFrames.dealerReply(frames),
                  let answer = try? ResponseEnvelope(serializedBytes: body),
                  let token = loop.byRequest.removeValue(forKey: answer.requestID),
                  let entry = loop.pending.removeValue(forKey: token)
            else { continue }  // malformed, or the answer to an abandoned attempt
            if answer.code == .ok {
                entry.call.completion(.success(Array(answer.payload)))
            } else {
                entry.call.completion(.failure(RPCError(answer.code, answer.message, redirect: answer.hasRedirect ? answer.redirect : nil)))
            }
        }
    }

    /// Fails or resends the calls whose attempt (or deadline) ran out; one Lazy Pirate
    /// reconnect serves every call resent in this round.
    private func handleTimeouts(_ loop: Loop) {
        let now = monotonicNanoseconds()
        var retry: [UInt64] = []
        for (token, entry) in loop.pending where entry.wakeAt <= now {
            let call = entry.call
            if let deadline = call.deadline, deadline <= now {
                finish(token, loop, RPCError(
                    .deadlineExceeded,
                    "no answer from \(endpoint) before the call's deadline (\(entry.attempts) attempt\(entry.attempts == 1 ? "" : "s"))"))
            } else if entry.attempts >= call.maxAttempts || !call.retriable {
                let timeout = Duration.nanoseconds(Int64(clamping: call.attemptTimeout)).shortText
                let tries = entry.attempts > 1 ? " after \(entry.attempts) attempts" : ""
                finish(token, loop, RPCError(.unavailable, "\(RPCError.noAnswerPrefix)\(endpoint) within \(timeout)\(tries)"))
            } else {
                retry.append(token)
            }
        }
        guard !retry.isEmpty else { return }
        do {
            try openSocket(loop)
        } catch {
            // Could not reopen: every call fails, as nothing can be sent any more.
            for token in Array(loop.pending.keys) {
                finish(token, loop, RPCError(.unavailable, "cannot reopen the socket to \(endpoint): \(error)"))
            }
            return
        }
        let retrySet = Set(retry)
        for token in Array(loop.pending.keys) {
            guard var entry = loop.pending[token] else { continue }
            if retrySet.contains(token) {
                send(&entry, loop, now: now, newAttempt: true)
            } else if entry.call.retriable {
                send(&entry, loop, now: now, newAttempt: false)
            } else {
                finish(token, loop, RPCError(
                    .unavailable,
                    "the connection to \(endpoint) was reset while the call was in flight; its outcome is unknown (pass an idempotency key to make it safe to resend)"))
                continue
            }
            loop.pending[token] = entry
        }
    }

    private func finish(_ token: UInt64, _ loop: Loop, _ error: RPCError) {
        guard let entry = loop.pending.removeValue(forKey: token) else { return }
        loop.byRequest[entry.requestID] = nil
        entry.call.completion(.failure(error))
    }
}
