#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A self-pipe that lets any thread wake a thread sleeping in `ZMQPoller.poll`, without
/// touching its ZeroMQ sockets: the poller watches `readDescriptor`; `signal` writes one
/// byte (async-signal-safe, never blocks: both ends are non-blocking, and a full pipe
/// already means "awake"); the woken thread calls `drain`, which returns the OR of every
/// byte signalled since, so a byte can carry the reason as bit flags.
public final class WakeUpPipe: Sendable {
    /// The end the poller watches.
    public let readDescriptor: Int32
    private let writeDescriptor: Int32

    /// Makes the pipe; throws when the process is out of file descriptors.
    public init() throws(ZMQError) {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw ZMQError(errno: errno, operation: "pipe (wake-up)") }
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        readDescriptor = fds[0]
        writeDescriptor = fds[1]
    }

    deinit {
        close(readDescriptor)
        close(writeDescriptor)
    }

    /// Makes the next (or current) poll return; `bits` are what `drain` will report.
    public func signal(_ bits: UInt8 = 1) {
        var byte = bits
        _ = write(writeDescriptor, &byte, 1)
    }

    /// Empties the pipe after a wake-up; the OR of the bytes signalled since the last drain.
    @discardableResult
    public func drain() -> UInt8 {
        var bits: UInt8 = 0
        var buffer = [UInt8](repeating: 0, count: 64)
        while true {
            let n = read(readDescriptor, &buffer, buffer.count)
            if n <= 0 { break }
            for byte in buffer[0..<n] { bits |= byte }
        }
        return bits
    }
}

/// Monotonic time in nanoseconds (CLOCK_MONOTONIC): for poll timeouts, deadlines of calls
/// in flight and service times — never for the wall-clock times stored in records.
@inline(__always)
public func monotonicNanoseconds() -> UInt64 {
    var spec = timespec()
    clock_gettime(CLOCK_MONOTONIC, &spec)
    return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
}
