import AfterSalesProto
import AfterSalesRPC
import Dispatch
import Foundation
import Synchronization
import SwiftProtobuf
import ZeroMQ

/// A client of `aftersalesd`: one typed method per RPC, in async and blocking forms.
///
/// One DEALER socket carries every call; any number of tasks and threads may call at once
/// and each gets its own answer (matched by request id). A call costs about what a bare
/// socket does: the caller sends it on its own thread, a blocking caller alone waits on
/// the socket itself, and the client's I/O thread (which watches the socket for async
/// calls and keeps their clocks) is never woken just to pass a call along.
/// Each call has a deadline, sent to the daemon in the envelope and enforced here too.
/// A call that gets no answer is resent after the socket is closed and reopened (the ZeroMQ
/// guide's Lazy Pirate) with the same idempotency key, so the daemon never applies it
/// twice; after `maxAttempts` the caller gets UNAVAILABLE or DEADLINE_EXCEEDED.
/// Every failure is an `RPCError` carrying a gRPC status code and a message.
///
/// ```swift
/// let client = try AfterSalesClient(endpoint: "tcp://127.0.0.1:7700")
/// let created = try await client.createCase(request, deadline: .seconds(2))
/// let same = try client.blocking.getCase(.with { $0.caseID = created.case.caseID })
/// ```
public final class AfterSalesClient: Sendable {
    /// Defaults for every call of a client.
    public struct Configuration: Sendable, Hashable {
        /// How long one attempt waits for its answer (default 2 s).
        public var attemptTimeout: Duration
        /// How many attempts a call gets at most (default 3; 1 = never resend).
        public var maxAttempts: Int
        /// A deadline for every call that does not pass its own; nil (the default) = none,
        /// calls are bounded by `maxAttempts × attemptTimeout`.
        public var deadline: Duration?
        /// Metadata added to every call's envelope (a call's own entries win).
        public var metadata: [String: String]
        /// CURVE: the daemon's public key and this client's key pair (the daemon admits the
        /// keys in its clients file and knows the caller by its key); nil = plaintext.
        public var curve: CurveCredentials?

        /// The defaults: 2 s per attempt, 3 attempts, no overall deadline, plaintext.
        public init(attemptTimeout: Duration = .seconds(2), maxAttempts: Int = 3, deadline: Duration? = nil, metadata: [String: String] = [:],
                    curve: CurveCredentials? = nil) {
            self.attemptTimeout = attemptTimeout
            self.maxAttempts = maxAttempts
            self.deadline = deadline
            self.metadata = metadata
            self.curve = curve
        }
    }

    /// What a client needs to speak CURVE to the daemon.
    public struct CurveCredentials: Sendable, Hashable {
        /// The daemon's public key (its NAME.pub from `aftersalesd keygen`).
        public var serverPublicKey: String
        /// This client's key pair (the public half is in the daemon's clients file).
        public var keys: CurveKeyPair

        /// Credentials from the two keys.
        public init(serverPublicKey: String, keys: CurveKeyPair) {
            self.serverPublicKey = serverPublicKey
            self.keys = keys
        }

        /// Credentials from key files: the server's public key file and this client's secret key file.
        public init(serverKeyFile: String, secretKeyFile: String) throws(RPCError) {
            func read(_ path: String) throws(RPCError) -> String {
                do {
                    return try String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
                } catch {
                    throw RPCError(.invalidArgument, "cannot read key file \(path): \(error.localizedDescription)")
                }
            }
            let server = try read(serverKeyFile)
            guard Z85.decode(server) != nil else { throw RPCError(.invalidArgument, "\(serverKeyFile) holds no CURVE public key (40 Z85 characters)") }
            do {
                self.init(serverPublicKey: server, keys: try CurveKeyPair(secretKey: try read(secretKeyFile)))
            } catch let error as RPCError {
                throw error
            } catch {
                throw RPCError(.invalidArgument, "\(secretKeyFile) holds no CURVE secret key (40 Z85 characters): \(error)")
            }
        }

        /// Makes `socket` a CURVE client with these credentials.
        func apply(to socket: ZMQSocket) throws {
            try socket.makeCurveClient(serverKey: serverPublicKey, keys: keys)
        }
    }

    /// The daemon's default RPC endpoint.
    public static let defaultEndpoint = "tcp://127.0.0.1:7700"

    /// Where the calls go, e.g. "tcp://127.0.0.1:7700".
    public let endpoint: String
    /// The defaults for calls.
    public let configuration: Configuration
    private let engine: CallEngine

    /// Connects to the daemon at `endpoint`. The connection is made in the background, so
    /// a daemon that is not up yet is not an error here (calls then time out). Throws for
    /// a malformed endpoint.
    public init(endpoint: String = AfterSalesClient.defaultEndpoint, configuration: Configuration = Configuration(), context: ZMQContext? = nil) throws {
        guard let context = context ?? ZMQContext.shared else {
            throw RPCError(.unavailable, "libzmq could not create a context")
        }
        self.endpoint = endpoint
        self.configuration = configuration
        do {
            self.engine = try CallEngine(endpoint: endpoint, context: context, curve: configuration.curve)
        } catch {
            throw RPCError(.invalidArgument, "cannot use endpoint \(endpoint): \(error)")
        }
    }

    /// A task executor that runs tasks on the client's own I/O thread — the thread that
    /// receives the answers of async calls. An async call made from a task that prefers it
    /// (`withTaskExecutorPreference(client.taskExecutor) { … }`,
    /// `Task(executorPreference: client.taskExecutor) { … }`) is resumed on the thread that
    /// read its answer, without waking another: it costs what a blocking call (or a bare
    /// socket) does, where a task on the global executor pays one thread wake-up more.
    ///
    /// It is an event loop: while code runs on it, no answer of this client is read and no
    /// deadline fires. Keep that code short and never block in it (blocking calls of this
    /// client made there fail at once with FAILED_PRECONDITION: they would wait for the
    /// thread they run on). Once the client is closed, such tasks run on the global executor.
    public var taskExecutor: any TaskExecutor { engine.taskExecutor }

    /// Stops the I/O thread and closes the socket; calls in flight fail with CANCELLED and
    /// later calls fail at once. Idempotent; also done when the client is released.
    public func close() { engine.close() }

    deinit { engine.close(wait: .zero) }

    // MARK: the generic calls

    /// Calls `method` with an already-serialized request and returns the serialized
    /// response (for tools such as the probe's `call`, which work on any method).
    public func call(method: Method, payload: [UInt8], options: CallOptions = CallOptions()) async throws(RPCError) -> [UInt8] {
        let box = CancelBox()
        let result: CallResult = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<CallResult, Never>) in
                let token = engine.makeToken()
                let call = submission(token: token, method: method, payload: payload, options: options) {
                    continuation.resume(returning: $0)
                }
                // Under the box's lock, so a cancellation can only come before (the call is
                // never sent) or after (the engine has it and can cancel it).
                let submitted = box.submitUnlessCancelled(token) { engine.submit(call) }
                if !submitted {
                    continuation.resume(returning: .failure(RPCError(.cancelled, "the call was cancelled by the caller")))
                }
            }
        } onCancel: {
            if let token = box.cancel() { engine.cancel(token) }
        }
        return try result.get()
    }

    /// Calls one RPC of the contract with a typed request and returns its typed response.
    public func call<Request, Response>(_ rpc: RPC<Request, Response>, _ request: Request, options: CallOptions = CallOptions()) async throws(RPCError) -> Response {
        let payload = try serialize(request)
        let bytes = try await call(method: rpc.method, payload: payload, options: options)
        return try deserialize(bytes, as: Response.self)
    }

    /// The blocking form of `call(method:payload:options:)`; do not use it on Swift
    /// concurrency's cooperative threads (it blocks the thread until the answer).
    public func callSync(method: Method, payload: [UInt8], options: CallOptions = CallOptions()) throws(RPCError) -> [UInt8] {
        let waiter = SyncWaiter()
        engine.callBlocking(submission(token: engine.makeToken(), method: method, payload: payload, options: options) {
            waiter.finish($0)
        })
        return try waiter.wait().get()
    }

    /// The blocking form of `call(_:_:options:)`.
    public func callSync<Request, Response>(_ rpc: RPC<Request, Response>, _ request: Request, options: CallOptions = CallOptions()) throws(RPCError) -> Response {
        let bytes = try callSync(method: rpc.method, payload: try serialize(request), options: options)
        return try deserialize(bytes, as: Response.self)
    }

    /// The blocking forms of every RPC: `try client.blocking.getCase(request)`.
    public var blocking: Blocking { Blocking(client: self) }

    /// The blocking forms of the typed calls, for scripts and tools (see `AfterSalesClient.blocking`).
    public struct Blocking: Sendable {
        /// The client the calls go through.
        public let client: AfterSalesClient
    }

    // MARK: helpers

    private func submission(token: UInt64, method: Method, payload: [UInt8], options: CallOptions, completion: @escaping @Sendable (CallResult) -> Void) -> CallSubmission {
        let now = monotonicNanoseconds()
        let key = options.idempotencyKey ?? (method.isMutating ? makeIdempotencyKey() : "")
        let deadline = (options.deadline ?? configuration.deadline).map { duration -> UInt64 in
            let (end, overflow) = now.addingReportingOverflow(duration.nanoseconds)
            return overflow ? .max : end
        }
        var metadata = configuration.metadata
        metadata.merge(options.metadata) { _, new in new }
        return CallSubmission(
            token: token, method: method, payload: payload, idempotencyKey: key, metadata: metadata,
            retriable: !method.isMutating || !key.isEmpty,
            attemptTimeout: max(1_000_000, (options.attemptTimeout ?? configuration.attemptTimeout).nanoseconds),
            deadline: deadline, maxAttempts: max(1, options.maxAttempts ?? configuration.maxAttempts),
            completion: completion)
    }
}

private func serialize(_ message: some SwiftProtobuf.Message) throws(RPCError) -> [UInt8] {
    do { return try message.serializedBytes() } catch {
        throw RPCError(.invalidArgument, "the \(type(of: message).protoMessageName) request does not serialize: \(error)")
    }
}

private func deserialize<Response: SwiftProtobuf.Message>(_ bytes: [UInt8], as type: Response.Type) throws(RPCError) -> Response {
    do { return try Response(serializedBytes: bytes) } catch {
        throw RPCError(.internal, "the daemon's \(Response.protoMessageName) answer does not parse: \(error)")
    }
}

/// Lets a task's cancellation handler name a call that may not have been submitted yet.
private final class CancelBox: Sendable {
    private let state = Mutex<(token: UInt64?, cancelled: Bool)>((nil, false))

    /// Records the call's token and runs `submit`; false (and nothing run) when the task was
    /// already cancelled.
    func submitUnlessCancelled(_ token: UInt64, _ submit: () -> Void) -> Bool {
        state.withLock { state in
            guard !state.cancelled else { return false }
            state.token = token
            submit()
            return true
        }
    }

    /// Marks the task cancelled; returns the token to cancel, if the call was submitted.
    func cancel() -> UInt64? {
        state.withLock { state in
            state.cancelled = true
            return state.token
        }
    }
}

/// A blocking caller's wait for its completion.
private final class SyncWaiter: Sendable {
    private let semaphore = DispatchSemaphore(value: 0)
    private let result = Mutex<CallResult?>(nil)

    func finish(_ value: CallResult) {
        result.withLock { $0 = value }
        semaphore.signal()
    }

    func wait() -> CallResult {
        semaphore.wait()
        return result.withLock { $0! }
    }
}
