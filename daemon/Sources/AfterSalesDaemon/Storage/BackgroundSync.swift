// `--fsync everysec` syncs on a thread of its own, as Redis does for `appendfsync
// everysec`: an fdatasync of a second's writes takes tens of milliseconds at times
// (hundreds on a busy disk), and on the loop thread it would hold up every call and
// every deadline behind it. The loop keeps writing to the file while it syncs; the sync
// covers at least what was written when it was asked for.
import Foundation

/// One fdatasync at a time, off the loop. The journal asks (`begin`), and waits for it
/// before it closes the file it named (`waitUntilIdle`).
final class BackgroundSync: @unchecked Sendable {
    private let condition = NSCondition()
    // Guarded by `condition`:
    private var requested: (fd: Int32, path: String, through: UInt64)?
    private var running = false
    private var stopping = false
    private var failureText: String?
    private var syncedThrough: UInt64 = 0
    private let sync: @Sendable (Int32, String) throws -> Void
    private let onDone: (@Sendable () -> Void)?

    /// Starts the thread; `sync` is fdatasync except in tests. `onDone` is called on the
    /// sync thread after each sync (the daemon wakes its loop to publish what it covered).
    init(sync: (@Sendable (Int32, String) throws -> Void)? = nil, onDone: (@Sendable () -> Void)? = nil) {
        self.sync = sync ?? { try StorageIO.dataSync($0, path: $1) }
        self.onDone = onDone
        let thread = Thread { [self] in serve() }
        thread.name = "aftersalesd-fsync"
        thread.start()
    }

    /// Starts an fdatasync of `fd` unless one is still running (then returns false and
    /// the caller tries again later, as Redis postpones an overdue everysec fsync).
    /// `through` is the journal position the sync covers: every record below it had been
    /// written when the sync was asked for.
    func begin(fd: Int32, path: String, through: UInt64 = 0) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard requested == nil, !running else { return false }
        requested = (fd, path, through)
        condition.broadcast()
        return true
    }

    /// Waits until no sync is asked for or running: call it before closing the file.
    func waitUntilIdle() {
        condition.lock()
        while requested != nil || running { condition.wait() }
        condition.unlock()
    }

    /// Why a background fdatasync failed, if one did (after that the file is suspect).
    var failure: String? {
        condition.lock()
        defer { condition.unlock() }
        return failureText
    }

    /// The journal position below which a finished background sync made every record
    /// durable (0 before the first).
    var durableThrough: UInt64 {
        condition.lock()
        defer { condition.unlock() }
        return syncedThrough
    }

    /// Ends the thread once the sync in hand is done.
    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        condition.unlock()
    }

    private func serve() {
        condition.lock()
        while true {
            while requested == nil && !stopping { condition.wait() }
            guard let job = requested else { break }
            requested = nil
            running = true
            condition.unlock()
            var failed: String?
            do { try sync(job.fd, job.path) } catch { failed = "\(error)" }
            condition.lock()
            running = false
            if let failed {
                if failureText == nil { failureText = failed }
            } else {
                syncedThrough = max(syncedThrough, job.through)
            }
            condition.broadcast()
            if let onDone {
                condition.unlock()
                onDone()
                condition.lock()
            }
        }
        condition.unlock()
    }
}
