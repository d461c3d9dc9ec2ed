#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A pipe that lets any thread wake a thread sleeping in `ZMQPoller.poll`: the poller
/// watches `readEnd`; `wake()` writes one byte (never blocks: both ends are non-blocking,
/// and a full pipe already means "awake"); the woken thread calls `drain()`.
final class WakePipe: Sendable {
    /// The end the poller watches.
    let readEnd: Int32
    private let writeEnd: Int32

    init() throws(WakePipeError) {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw WakePipeError(errno: errno) }
        for fd in fds {
            let flags = fcntl(fd, F_GETFL)
            _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        readEnd = fds[0]
        writeEnd = fds[1]
    }

    /// Makes the next (or current) poll return.
    func wake() {
        var byte: UInt8 = 1
        _ = write(writeEnd, &byte, 1)
    }

    /// Empties the pipe after a wake-up.
    func drain() {
        var buffer = [UInt8](repeating: 0, count: 256)
        while read(readEnd, &buffer, buffer.count) > 0 {}
    }

    deinit {
        close(readEnd)
        close(writeEnd)
    }
}

/// The pipe could not be made (out of file descriptors).
struct WakePipeError: Error, CustomStringConvertible {
    let errno: Int32
    var description: String { "pipe: \(String(cString: strerror(errno)))" }
}

/// Monotonic time in nanoseconds, for deadlines in the I/O loops.
@inline(__always)
func monotonicNanos() -> UInt64 {
    var spec = timespec()
    clock_gettime(CLOCK_MONOTONIC, &spec)
    return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
}

/// Milliseconds to wait until `deadline` (rounded up so a poll never wakes just before it),
/// or -1 when there is none.
func pollTimeout(until deadline: UInt64?, now: UInt64) -> Int {
    guard let deadline else { return -1 }
    if deadline <= now { return 0 }
    let ms = (deadline - now + 999_999) / 1_000_000
    return Int(min(ms, UInt64(Int32.max)))
}
