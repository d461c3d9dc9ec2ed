import CZeroMQ

/// A libzmq context: the I/O threads and the namespace for `inproc://` endpoints.
///
/// Thread-safe (libzmq contexts are), so one context may serve every thread of the
/// process. Usually one per process is enough: use `ZMQContext.shared`, or make your
/// own when you want a separate `inproc://` namespace (tests) or an orderly shutdown.
///
/// Lifetime: every `ZMQSocket` holds a strong reference to its context, so a context
/// is only terminated (`zmq_ctx_term`, in `deinit`) after its last socket is gone.
/// `zmq_ctx_term` waits for each socket's linger period; sockets made by this library
/// default to linger 0, so that wait is nil unless you raised it.
public final class ZMQContext: @unchecked Sendable {
    // @unchecked: the only state is libzmq's context handle, which libzmq documents
    // as thread-safe; it is set once in init and released once in deinit.
    let handle: UnsafeMutableRawPointer

    /// Creates a context with `ioThreads` background I/O threads (libzmq's default is
    /// 1, enough for well over a hundred thousand messages a second).
    public init(ioThreads: Int32 = 1) throws {
        guard let handle = zmq_ctx_new() else { throw ZMQError.last("zmq_ctx_new") }
        if ioThreads != 1, zmq_ctx_set(handle, ZMQ_IO_THREADS, ioThreads) != 0 {
            let error = ZMQError.last("zmq_ctx_set(ZMQ_IO_THREADS, \(ioThreads))")
            zmq_ctx_term(handle)
            throw error
        }
        self.handle = handle
    }

    /// One process-wide context, created on first use and never terminated; `nil`
    /// only if libzmq could not create a context at all (e.g. out of file descriptors).
    public static let shared: ZMQContext? = try? ZMQContext()

    /// Makes every blocking call on this context's sockets, in any thread, return
    /// with `ETERM` (thrown as a `ZMQError` whose `isContextTerminated` is true), and
    /// every later call on them fail the same way. Use it to stop a loop that is
    /// blocked in `receive` or `poll` from another thread. The sockets must still be
    /// closed (dropped) by their owning threads. Idempotent.
    public func shutdown() {
        _ = zmq_ctx_shutdown(handle)
    }

    deinit {
        // No socket can be open here (each holds a strong reference to us), so this
        // returns as soon as libzmq has reaped them. Retry on EINTR as libzmq asks.
        while zmq_ctx_term(handle) != 0, zmq_errno() == CZeroMQ_EINTR() {}
    }
}
