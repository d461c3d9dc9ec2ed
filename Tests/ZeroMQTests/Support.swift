#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ZeroMQ

// Helpers for the ZeroMQ tests: plain threads (sockets belong to one thread, and a
// blocked socket must not sit on Swift's small cooperative pool), and short sleeps.

/// A running thread started by `spawn`; `join()` waits for it and returns what its
/// body returned or threw.
final class TestThread<T: Sendable>: @unchecked Sendable {
    // @unchecked: `result` is written once by the thread before it exits and read only
    // after pthread_join, which orders the two.
    private var result: Result<T, any Error>?
    #if canImport(Glibc)
    fileprivate(set) var thread = pthread_t()
    #else
    fileprivate(set) var thread: pthread_t? = nil
    #endif

    fileprivate func run(_ body: () throws -> T) {
        result = Result { try body() }
    }

    /// Waits for the thread and returns its outcome.
    func join() -> Result<T, any Error> {
        #if canImport(Glibc)
        pthread_join(thread, nil)
        #else
        pthread_join(thread!, nil)
        #endif
        return result!
    }

    /// Waits for the thread and returns its value, rethrowing what it threw.
    func value() throws -> T { try join().get() }

    /// Sends `signal` to the thread (to interrupt a blocking call).
    func kill(_ signal: Int32) {
        #if canImport(Glibc)
        pthread_kill(thread, signal)
        #else
        pthread_kill(thread!, signal)
        #endif
    }
}

private final class ThreadStart {
    let main: () -> Void
    init(_ main: @escaping () -> Void) { self.main = main }
}

/// Runs `body` on a new OS thread.
func spawn<T: Sendable>(_ body: @escaping @Sendable () throws -> T) -> TestThread<T> {
    let handle = TestThread<T>()
    let start = Unmanaged.passRetained(ThreadStart { handle.run(body) })
    let rc = pthread_create(&handle.thread, nil, { raw in
        let start = Unmanaged<ThreadStart>.fromOpaque(raw!).takeRetainedValue()
        start.main()
        return nil
    }, start.toOpaque())
    precondition(rc == 0, "pthread_create failed: \(rc)")
    return handle
}

/// Sleeps the calling thread.
func sleep(milliseconds: Int) {
    usleep(useconds_t(milliseconds * 1000))
}

/// Milliseconds elapsed since `start`.
func milliseconds(since start: ContinuousClock.Instant) -> Int {
    let elapsed = ContinuousClock.now - start
    return Int(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000)
}

extension Frame {
    /// The UTF-8 bytes of `text`.
    init(_ text: String) { self.init(text.utf8) }
}

/// A frame as text, for assertions on textual frames.
func text(_ frame: Frame) -> String { String(decoding: frame, as: UTF8.self) }

/// A socket with a receive timeout, so that no test can wait forever.
func makeSocket(
    _ context: ZMQContext, _ type: SocketType, receiveTimeout: Int32 = 5000
) throws -> ZMQSocket {
    let socket = try ZMQSocket(context, type)
    try socket.setReceiveTimeout(receiveTimeout)
    try socket.setSendTimeout(5000)
    return socket
}

/// Binds `socket` to a free loopback TCP port and returns the resolved endpoint.
func bindAnyPort(_ socket: ZMQSocket) throws -> String {
    try socket.bind("tcp://127.0.0.1:*")
    return try socket.lastEndpoint
}

/// Runs `body` on its own thread and reports whether it finished within
/// `limit` milliseconds. If it did not (a teardown that hangs), the thread is abandoned
/// so that the test fails instead of hanging the whole run.
func finishes(within limit: Int, _ body: @escaping @Sendable () throws -> Void) throws -> Bool {
    var fds: [Int32] = [0, 0]
    guard pipe(&fds) == 0 else { throw ZMQError(errno: errno, operation: "pipe") }
    let (readEnd, writeEnd) = (fds[0], fds[1])
    let worker = spawn { () throws -> Void in
        defer {
            var done: UInt8 = 1
            _ = write(writeEnd, &done, 1)
        }
        try body()
    }
    var poller = ZMQPoller()
    poller.add(fileDescriptor: readEnd)
    let start = ContinuousClock.now
    var finished = false
    while !finished, case let left = limit - milliseconds(since: start), left > 0 {
        finished = try poller.poll(timeoutMilliseconds: left) > 0
    }
    guard finished else { return false }  // leaks the pipe and the thread on purpose
    close(readEnd)
    close(writeEnd)
    try worker.value()
    return true
}

