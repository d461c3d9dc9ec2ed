#if canImport(Glibc)
import Glibc
#endif

/// Why the loop was woken from another thread.
struct WakeUpReason: OptionSet, Sendable {
    let rawValue: UInt8
    static let stop = WakeUpReason(rawValue: 1)
    static let snapshotDone = WakeUpReason(rawValue: 2)
    /// A background fdatasync finished: announcements it covered may be published.
    static let synced = WakeUpReason(rawValue: 4)
}

/// A self-pipe the loop polls beside its socket, so other threads (the signal watcher,
/// the snapshot writer) can wake it without sharing the ZeroMQ sockets. write(2) is
/// async-signal-safe and never blocks here (non-blocking; a full pipe already means
/// "wake up").
final class WakeUpPipe: @unchecked Sendable {
    let readDescriptor: Int32
    private let writeDescriptor: Int32

    init() throws {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else {
            throw StorageError(.io, errno: errno, "could not create the wake-up pipe: \(String(cString: strerror(errno)))")
        }
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

    func signal(_ reason: WakeUpReason) {
        var byte = reason.rawValue
        _ = write(writeDescriptor, &byte, 1)
    }

    /// Everything signalled since the last drain.
    func drain() -> WakeUpReason {
        var reasons = WakeUpReason()
        var buffer = [UInt8](repeating: 0, count: 64)
        while true {
            let n = read(readDescriptor, &buffer, buffer.count)
            if n <= 0 { break }
            for byte in buffer[0..<n] { reasons.insert(WakeUpReason(rawValue: byte)) }
        }
        return reasons
    }
}
