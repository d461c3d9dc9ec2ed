// One daemon per data directory. Two daemons appending to the same journal would
// interleave records and each would believe it owns the state; `LOCK` held with
// flock(LOCK_EX|LOCK_NB) for the life of the process makes the second one stop at
// start-up with a clear message. The kernel drops the lock when the process dies, so
// a crash never leaves a stale lock behind.

import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Exclusive ownership of a data directory, held until `release()` or deinit.
public final class DataDirectoryLock {
    /// The data directory.
    public let directory: String
    /// The lock file, `<directory>/LOCK`.
    public let path: String
    private var fd: Int32

    /// Creates `directory` (with intermediate directories) if missing and takes its lock;
    /// writes this process' pid into `LOCK`. Throws `.dataDirectoryInUse` ("data dir X is
    /// in use by another aftersalesd (pid N)") when another process (or another open of
    /// the lock in this one) holds it.
    public init(directory: String) throws {
        self.directory = directory
        let path = StorageIO.join(directory, "LOCK")
        self.path = path
        try StorageIO.makeDirectories(directory)
        let fd = try StorageIO.open(path, O_RDWR | O_CREAT)
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let e = errno
            if e == EINTR { continue }
            defer { StorageIO.close(fd) }
            if e == EWOULDBLOCK || e == EAGAIN {
                var bytes = [UInt8](repeating: 0, count: 32)
                let n = (try? bytes.withUnsafeMutableBytes { try StorageIO.preadFully(fd, $0, at: 0, path: path) }) ?? 0
                let pid = String(decoding: bytes.prefix(n), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                throw StorageError(.dataDirectoryInUse, path: directory,
                    "data dir \(directory) is in use by another aftersalesd (pid \(pid.isEmpty ? "unknown" : pid))")
            }
            throw StorageIO.ioError("flock of", path, e)
        }
        self.fd = fd
        let pid = Array("\(getpid())\n".utf8)
        do {
            try StorageIO.truncate(fd, to: 0, path: path)
            let written = pid.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
            if written != pid.count { throw StorageIO.ioError("write to", path) }
        } catch {
            StorageIO.close(fd)
            self.fd = -1
            throw error
        }
    }

    /// Gives up the lock (idempotent).
    public func release() {
        if fd >= 0 {
            StorageIO.close(fd)
            fd = -1
        }
    }

    deinit { release() }
}
