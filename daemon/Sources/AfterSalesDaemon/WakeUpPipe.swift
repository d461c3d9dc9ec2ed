import ZeroMQ

/// Why the loop was woken from another thread (the bits of a `WakeUpPipe` byte).
struct WakeUpReason: OptionSet, Sendable {
    let rawValue: UInt8
    static let stop = WakeUpReason(rawValue: 1)
    static let snapshotDone = WakeUpReason(rawValue: 2)
    /// A background fdatasync finished: announcements it covered may be published.
    static let synced = WakeUpReason(rawValue: 4)
    /// SIGHUP: read the clients file again.
    static let reloadClients = WakeUpReason(rawValue: 8)
    /// The recovery thread has read the data directory (or failed to).
    static let recovered = WakeUpReason(rawValue: 16)
    /// The shard loader has rebuilt a shard (cluster mode).
    static let shardLoaded = WakeUpReason(rawValue: 32)
}

extension WakeUpPipe {
    /// Wakes the loop for `reason` (the signal watcher, the snapshot and fsync threads).
    func signal(_ reason: WakeUpReason) { signal(reason.rawValue) }

    /// Every reason signalled since the last drain.
    func drainReasons() -> WakeUpReason { WakeUpReason(rawValue: drain()) }
}
