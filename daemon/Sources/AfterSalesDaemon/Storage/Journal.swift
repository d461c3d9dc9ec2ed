// The journal: the write-ahead log of the daemon, modelled on Redis' AOF.
//
// Requests append their records to an in-memory buffer (`append`); once per loop
// iteration, before any reply of the batch goes out, the loop calls `commit`, which
// writes the whole buffer with one write(2) and syncs it as the policy says. That is
// group commit: one fdatasync covers every request of the batch.
//
// On disk the journal is a series of segments in the data directory, each named for the
// sequence number of its first record: `journal-<20 digits>.log`. Records are numbered
// by position: the k-th record (from 0) of segment `journal-N.log` has sequence N + k.
// A snapshot taken at sequence S holds every record below S; `rotate(startingAt: S)`
// starts segment S at the same moment so whole older segments can later be deleted.

import ZeroMQ  // monotonicNanoseconds
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// When the journal forces committed bytes to stable storage (Redis' `appendfsync`).
public enum FsyncPolicy: String, Sendable, CaseIterable {
    /// fdatasync in every `commit`: a reply leaves only after its batch is durable.
    case always
    /// fdatasync at most once a second, started by `commit` or `syncIfDue(now:)` and run
    /// on a background thread, so the loop never waits for the disk.
    case everysec
    /// Never sync; the kernel writes back when it likes.
    case never
}

/// One journal record read back at recovery.
public struct JournalEntry: Sendable, Equatable {
    /// Position-derived sequence number (segment's first sequence + index in segment).
    public let sequence: UInt64
    /// The bytes given to `append`.
    public let payload: [UInt8]
}

/// One segment file as found at recovery.
public struct JournalSegmentInfo: Sendable, Equatable {
    public let path: String
    /// Sequence number of the segment's first record (from its name).
    public let firstSequence: UInt64
    /// Valid records in it (after cutting a torn tail).
    public let recordCount: Int
    /// Size in bytes (after cutting a torn tail).
    public let bytes: UInt64
}

/// A partly written final record that recovery cut off.
public struct TornTail: Sendable, Equatable {
    public let path: String
    /// Where the cut record started; the file now ends here.
    public let offset: UInt64
    public let bytesDropped: UInt64
    /// e.g. "short payload (10 of 300 bytes)".
    public let reason: String
}

/// Everything the journal holds, in order, as read at start-up.
public struct JournalReadResult: Sendable {
    /// Every record of every segment, oldest first.
    public var entries: [JournalEntry]
    /// The segments, oldest first.
    public var segments: [JournalSegmentInfo]
    /// The torn tail cut off the newest segment, if any (it is already truncated on disk).
    public var tornTail: TornTail?

    /// Payloads only, oldest first.
    public var records: [[UInt8]] { entries.map(\.payload) }

    /// The sequence number the next record would get: end of the newest segment
    /// (nil when there is no segment).
    public var nextSequence: UInt64? {
        segments.last.map { $0.firstSequence + UInt64($0.recordCount) }
    }

    /// The records with sequence ≥ `sequence` — what to replay over a snapshot taken at
    /// `sequence` (use 1 when there is no snapshot). Throws `.missingJournalRecords` when
    /// the journal does not hold every record from `sequence` on (a segment is missing).
    public func entries(from sequence: UInt64) throws -> [JournalEntry] {
        var expected = sequence
        for segment in segments {
            let end = segment.firstSequence + UInt64(segment.recordCount)
            if end <= sequence { continue }
            if segment.firstSequence > expected {
                throw StorageError(.missingJournalRecords, path: segment.path,
                    "journal records \(expected)..<\(segment.firstSequence) are missing before \(segment.path) "
                    + "(recovery must start at sequence \(sequence)); refusing to start — restore the missing segment from backup")
            }
            expected = end
        }
        return entries.filter { $0.sequence >= sequence }
    }
}

/// A journal segment that is no longer appended to.
public struct ClosedSegment: Sendable, Hashable {
    /// The file.
    public let path: String
    /// Its records' sequence numbers are all below this.
    public let end: UInt64
}

/// The write-ahead log. Used from the daemon loop thread only (not Sendable).
public final class Journal {
    static let prefix = "journal-"
    static let suffix = ".log"

    /// The data directory.
    public let directory: String
    /// The sync policy given at init.
    public let fsyncPolicy: FsyncPolicy
    /// The segment appends go to.
    public private(set) var currentSegmentPath: String
    /// Sequence number the next `append` gets (pending records included).
    public private(set) var nextSequence: UInt64
    /// A torn tail that `init` cut off the newest segment, if any.
    public private(set) var recoveredTornTail: TornTail?
    /// Committed (written) bytes not yet covered by an fdatasync.
    public private(set) var hasUnsyncedData = false
    /// When the journal last synced or, with `.everysec`, last started a background sync (or was opened).
    public private(set) var lastSync: ContinuousClock.Instant
    /// fdatasync calls made so far (for stats and tests).
    public private(set) var syncCount = 0
    /// Every record below this sequence is on disk. Announcements wait for it.
    public private(set) var durableNextSequence: UInt64

    private var fd: Int32 = -1
    private var currentFirstSequence: UInt64
    private var currentSize: UInt64 = 0
    private var olderSegments: [(first: UInt64, path: String, bytes: UInt64)] = []
    private var buffer: [UInt8] = []
    private var committedNextSequence: UInt64
    private var failure: String?
    /// When to try again to start a sync the running one held back.
    private var postponedUntil: ContinuousClock.Instant?
    /// everysec's fdatasync thread (nil with the other policies).
    private let backgroundSync: BackgroundSync?
    /// Where write and sync times go (metrics); nil = not measured.
    private let timings: JournalTimings?

    /// Bytes appended but not yet written by `commit`.
    public var pendingBytes: Int { buffer.count }

    /// Bytes in all kept segments (committed bytes only).
    public var bytesOnDisk: UInt64 { olderSegments.reduce(currentSize) { $0 + $1.bytes } }

    /// When `syncIfDue` will next have work: with `.everysec` and unsynced data, one
    /// second after the last sync; otherwise nil. Use it in the poll timeout.
    public var nextSyncDeadline: ContinuousClock.Instant? {
        guard fsyncPolicy == .everysec && hasUnsyncedData else { return nil }
        return max(lastSync + .seconds(1), postponedUntil ?? lastSync)
    }

    /// Opens the journal in `directory` (created if missing) for appending.
    ///
    /// Appends go to the newest segment, after cutting a torn tail off it (reported in
    /// `recoveredTornTail`); with no segment, a new one starts at `nextSequence`. If the
    /// newest segment ends below `nextSequence` (pass the loaded snapshot's sequence), a
    /// new segment starts at `nextSequence`, so records never get numbers a snapshot
    /// already covers. Throws `.damaged` if the newest segment is damaged, `.io` on
    /// failed system calls.
    ///
    /// What the newest segment holds is synced once here: a crashed process may have left
    /// records in the page cache only, and those are about to be served as durable.
    /// `onBackgroundSync` is called on the sync thread after each everysec sync.
    public init(directory: String, fsync: FsyncPolicy, nextSequence: UInt64 = 1,
                now: ContinuousClock.Instant = .now,
                onBackgroundSync: (@Sendable () -> Void)? = nil,
                backgroundSync sync: (@Sendable (Int32, String) throws -> Void)? = nil,
                timings: JournalTimings? = nil) throws {
        self.directory = directory
        self.fsyncPolicy = fsync
        self.lastSync = now
        self.durableNextSequence = nextSequence
        self.timings = timings
        var backgroundSync = sync
        if let timings {
            let plain = sync ?? { try StorageIO.dataSync($0, path: $1) }
            backgroundSync = { fd, path in
                let began = monotonicNanoseconds()
                try plain(fd, path)
                timings.sync(monotonicNanoseconds() - began)
            }
        }
        self.backgroundSync = fsync == .everysec ? BackgroundSync(sync: backgroundSync, onDone: onBackgroundSync) : nil
        self.currentSegmentPath = ""
        self.currentFirstSequence = nextSequence
        self.nextSequence = nextSequence
        self.committedNextSequence = nextSequence
        try StorageIO.makeDirectories(directory)
        let segments = try Journal.listSegments(directory)
        guard let last = segments.last else {
            try startSegment(at: nextSequence)
            return
        }
        for segment in segments.dropLast() {
            olderSegments.append((segment.first, segment.path, try StorageIO.fileSize(atPath: segment.path)))
        }
        let fd = try StorageIO.open(last.path, O_RDWR | O_APPEND)
        self.fd = fd
        let scan = try Journal.scanSegment(fd: fd, path: last.path, isNewest: true, visit: { _ in })
        do {
            try StorageIO.dataSync(fd, path: last.path)
        } catch let error as StorageError where error.errno == EINVAL {
            // A file that cannot be synced at all (a device): later writes will say so.
        }
        recoveredTornTail = scan.torn
        currentSegmentPath = last.path
        currentFirstSequence = last.first
        currentSize = scan.size
        let end = last.first + UInt64(scan.count)
        if end < nextSequence {
            try closeCurrentSegment()
            try startSegment(at: nextSequence)
        } else {
            self.nextSequence = end
            committedNextSequence = end
            durableNextSequence = end
        }
    }

    deinit {
        backgroundSync?.waitUntilIdle()
        backgroundSync?.stop()
        if fd >= 0 { StorageIO.close(fd) }
    }

    /// Buffers one record in memory (nothing reaches the file until `commit`) and
    /// returns its sequence number. Throws `.recordTooLarge` above 64 MiB.
    @discardableResult
    public func append(_ record: [UInt8]) throws -> UInt64 {
        try checkUsable()
        try RecordFraming.append(record, to: &buffer)
        nextSequence += 1
        return nextSequence - 1
    }

    /// Writes the buffer with one write(2) (looping over partial writes), then syncs per
    /// policy. Call it before sending the replies of the batch.
    ///
    /// If the write fails (ENOSPC, EIO…) the segment is truncated back to its last good
    /// size, the buffer is kept (the next `commit` retries it; `discardPending()` drops
    /// it) and `.io` is thrown. If fdatasync fails, the journal becomes unusable: every
    /// later call throws, because after a failed fsync the kernel may have dropped the
    /// dirty pages — restart and recover from disk.
    ///
    /// `urgent` (everysec): announcements wait for the disk, so a background sync starts
    /// now if none is running, not only once a second.
    public func commit(now: ContinuousClock.Instant = .now, urgent: Bool = false) throws {
        // Once per batch, not per append: the background sync's state sits behind a lock.
        takeBackgroundSyncFailure()
        try checkUsable()
        if !buffer.isEmpty {
            do {
                let began = timings == nil ? 0 : monotonicNanoseconds()
                try StorageIO.writeAll(fd, buffer, path: currentSegmentPath)
                timings?.write(monotonicNanoseconds() - began)
            } catch let error as StorageError {
                do {
                    try StorageIO.truncate(fd, to: currentSize, path: currentSegmentPath)
                } catch {
                    failure = "\(error) (after a failed write, the file could not be cut back to its last good size)"
                }
                throw error
            }
            currentSize += UInt64(buffer.count)
            committedNextSequence = nextSequence
            if buffer.capacity > 8 << 20 { buffer = [] } else { buffer.removeAll(keepingCapacity: true) }
            hasUnsyncedData = true
        }
        switch fsyncPolicy {
        case .always: if hasUnsyncedData { try sync(now: now) }
        case .everysec: _ = try syncIfDue(now: now, urgent: urgent)
        case .never: break
        }
    }

    /// Takes in what finished background syncs made durable (`durableNextSequence`).
    public func refreshDurable() {
        guard let backgroundSync else { return }
        durableNextSequence = max(durableNextSequence, backgroundSync.durableThrough)
    }

    /// With `.everysec`: starts a background fdatasync if committed data is unsynced, a
    /// second has passed since the last one started and it has finished; returns whether
    /// it started one. Call it from the loop (see `nextSyncDeadline`) so data is not left
    /// unsynced when traffic stops. With other policies it does nothing. A failed
    /// background sync makes the journal unusable, as a failed `commit` sync does.
    /// With `urgent`, it does not wait for the second to pass.
    @discardableResult
    public func syncIfDue(now: ContinuousClock.Instant = .now, urgent: Bool = false) throws -> Bool {
        try checkUsable()
        guard fsyncPolicy == .everysec, hasUnsyncedData, urgent || now - lastSync >= .seconds(1),
              let backgroundSync else { return false }
        takeBackgroundSyncFailure()
        try checkUsable()
        guard backgroundSync.begin(fd: fd, path: currentSegmentPath, through: committedNextSequence) else {
            // The last one is still running (a slow disk): look again shortly, not in a spin.
            postponedUntil = now + .milliseconds(10)
            return false
        }
        postponedUntil = nil
        hasUnsyncedData = false
        lastSync = now
        syncCount += 1
        return true
    }

    /// Waits for a background sync in flight to finish.
    func waitForBackgroundSync() { backgroundSync?.waitUntilIdle() }

    /// Drops appended records not yet committed (e.g. after a failed `commit` the daemon
    /// chose to roll back); their sequence numbers are reused.
    public func discardPending() {
        buffer.removeAll(keepingCapacity: true)
        nextSequence = committedNextSequence
    }

    /// Commits pending records, syncs and closes the current segment, and starts
    /// `journal-<seq>.log`. `seq` must be ≥ `nextSequence` (normally equal: the sequence
    /// of the snapshot taken at this moment). Rotating to the sequence of an empty
    /// current segment does nothing.
    public func rotate(startingAt seq: UInt64, now: ContinuousClock.Instant = .now) throws {
        try commit(now: now)
        guard seq >= nextSequence else {
            throw StorageError(.misuse, "journal rotate to sequence \(seq) is below the next sequence \(nextSequence)")
        }
        if currentSize == 0 && seq == currentFirstSequence { return }
        if hasUnsyncedData { try sync(now: now) }
        try closeCurrentSegment()
        // The old segment is synced: by `sync` above, or by a background sync that
        // `closeCurrentSegment` waited for.
        refreshDurable()
        try startSegment(at: seq)
    }

    /// Deletes segments whose records are all below `seq` (covered by a snapshot at
    /// `seq`); never the current segment. Pass `SnapshotInfo.oldestKeptSequence` so the
    /// journal still reaches back to the older kept snapshot. Returns how many it deleted.
    @discardableResult
    public func removeSegments(before seq: UInt64) throws -> Int {
        let covered = closedSegments.prefix { $0.end <= seq }.map(\.path)
        try Journal.deleteSegments(covered, in: directory)
        forgetSegments(covered)
        return covered.count
    }

    /// The segments no longer appended to, oldest first, each with the sequence its
    /// records end before. Plain values: a snapshot thread can pick from them what its
    /// snapshot covers and delete those with `deleteSegments` off the loop (unlinking a
    /// segment of hundreds of MiB takes a filesystem a few hundred milliseconds).
    public var closedSegments: [ClosedSegment] {
        olderSegments.indices.map { index in
            ClosedSegment(path: olderSegments[index].path,
                          end: index + 1 < olderSegments.count ? olderSegments[index + 1].first : currentFirstSequence)
        }
    }

    /// Unlinks segment files (oldest first, so a crash midway leaves a contiguous
    /// journal) and syncs the directory. Touches no `Journal`: safe on any thread.
    public static func deleteSegments(_ paths: [String], in directory: String) throws {
        guard !paths.isEmpty else { return }
        for path in paths { try StorageIO.unlink(path) }
        try StorageIO.syncDirectory(directory)
    }

    /// Drops deleted segments (oldest first, as `closedSegments` listed them) from the
    /// journal's accounting.
    public func forgetSegments(_ paths: [String]) {
        let deleted = Set(paths)
        olderSegments.removeAll { deleted.contains($0.path) }
    }

    /// Commits, syncs and closes. Later calls throw `.misuse`.
    public func close(now: ContinuousClock.Instant = .now) throws {
        guard fd >= 0 else { return }
        try commit(now: now)
        if hasUnsyncedData { try sync(now: now) }
        backgroundSync?.waitUntilIdle()
        refreshDurable()
        backgroundSync?.stop()
        StorageIO.close(fd)
        fd = -1
        failure = "journal \(currentSegmentPath) is closed"
    }

    // MARK: recovery

    /// Reads every record of every segment in `directory`, oldest first, for start-up.
    ///
    /// A torn tail of the newest segment is cut off in place (ftruncate + fdatasync) and
    /// reported, so later appends follow the last whole record. Damage anywhere else —
    /// a bad record with more bytes after it, a torn end in an older segment, segments
    /// that overlap — throws `.damaged` with the file path and byte offset. A missing
    /// directory reads as empty.
    public static func readAll(directory: String) throws -> JournalReadResult {
        var result = JournalReadResult(entries: [], segments: [], tornTail: nil)
        let segments = try listSegments(directory)
        var previousEnd: (seq: UInt64, path: String)?
        for (i, segment) in segments.enumerated() {
            if let previous = previousEnd, segment.first < previous.seq {
                throw StorageError(.damaged, path: segment.path,
                    "journal \(segment.path) starts at sequence \(segment.first) but \(previous.path) holds records up to "
                    + "\(previous.seq - 1); refusing to start — move the stray segment aside or restore from backup")
            }
            let isNewest = i == segments.count - 1
            let fd = try StorageIO.open(segment.path, isNewest ? O_RDWR : O_RDONLY)
            defer { StorageIO.close(fd) }
            var seq = segment.first
            let scan = try scanSegment(fd: fd, path: segment.path, isNewest: isNewest) { payload in
                result.entries.append(JournalEntry(sequence: seq, payload: payload))
                seq += 1
            }
            if let torn = scan.torn { result.tornTail = torn }
            result.segments.append(JournalSegmentInfo(path: segment.path, firstSequence: segment.first,
                                                      recordCount: scan.count, bytes: scan.size))
            previousEnd = (seq, segment.path)
        }
        return result
    }

    /// Segment files in `directory`, by first sequence.
    static func listSegments(_ directory: String) throws -> [(first: UInt64, path: String)] {
        try StorageIO.listDirectory(directory)
            .compactMap { name in
                StorageIO.parseSequenceName(name, prefix, suffix).map { ($0, StorageIO.join(directory, name)) }
            }
            .sorted { $0.0 < $1.0 }
    }

    /// Reads one segment, calling `visit` per record. A torn tail of the newest segment is
    /// truncated away (the fd must be writable); anything else bad throws `.damaged`.
    static func scanSegment(fd: Int32, path: String, isNewest: Bool,
                            visit: ([UInt8]) -> Void) throws -> (count: Int, size: UInt64, torn: TornTail?) {
        var scanner = try FramedRecordScanner(fd: fd, path: path, startingAt: 0)
        var count = 0
        while true {
            switch try scanner.next() {
            case .record(_, let payload):
                visit(payload)
                count += 1
            case .end:
                return (count, scanner.fileSize, nil)
            case .torn(let offset, let reason):
                guard isNewest else {
                    throw damaged(path, offset, "\(reason), but this is not the newest segment")
                }
                try StorageIO.truncate(fd, to: offset, path: path)
                try StorageIO.dataSync(fd, path: path)
                let torn = TornTail(path: path, offset: offset, bytesDropped: scanner.fileSize - offset, reason: reason)
                return (count, offset, torn)
            case .damaged(let offset, let reason):
                throw damaged(path, offset, reason)
            }
        }
    }

    static func damaged(_ path: String, _ offset: UInt64, _ reason: String) -> StorageError {
        StorageError(.damaged, path: path, offset: offset,
                     "journal \(path) damaged at offset \(offset): \(reason); "
                     + "refusing to start — move the file aside or restore from backup")
    }

    // MARK: private

    private func checkUsable() throws {
        if let failure { throw StorageError(.io, path: currentSegmentPath, "journal unusable: \(failure)") }
    }

    /// A failed background fdatasync makes the journal unusable from here on.
    private func takeBackgroundSyncFailure() {
        if failure == nil, let failed = backgroundSync?.failure { failure = failed }
    }

    /// fdatasync on this thread, after any background one (used where the caller needs
    /// the data durable now: `.always`, rotation, close).
    private func sync(now: ContinuousClock.Instant) throws {
        backgroundSync?.waitUntilIdle()
        takeBackgroundSyncFailure()
        try checkUsable()
        do {
            let began = timings == nil ? 0 : monotonicNanoseconds()
            try StorageIO.dataSync(fd, path: currentSegmentPath)
            timings?.sync(monotonicNanoseconds() - began)
        } catch {
            failure = "\(error)"
            throw error
        }
        hasUnsyncedData = false
        durableNextSequence = committedNextSequence
        lastSync = now
        syncCount += 1
    }

    private func closeCurrentSegment() throws {
        backgroundSync?.waitUntilIdle()
        olderSegments.append((currentFirstSequence, currentSegmentPath, currentSize))
        StorageIO.close(fd)
        fd = -1
    }

    private func startSegment(at seq: UInt64) throws {
        let path = StorageIO.join(directory, StorageIO.sequenceName(Journal.prefix, seq, Journal.suffix))
        fd = try StorageIO.open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND)
        try StorageIO.syncDirectory(directory)
        currentSegmentPath = path
        currentFirstSequence = seq
        currentSize = 0
        nextSequence = seq
        committedNextSequence = seq
        durableNextSequence = max(durableNextSequence, seq)
    }
}

/// Where the journal reports how long its writes and fdatasyncs took: once per batch
/// written or sync made, never per record (the sync may be reported from the sync thread).
public struct JournalTimings: Sendable {
    /// One write(2) of a batch, nanoseconds.
    public var write: @Sendable (_ nanoseconds: UInt64) -> Void
    /// One fdatasync, nanoseconds.
    public var sync: @Sendable (_ nanoseconds: UInt64) -> Void

    /// Creates the two reporters.
    public init(write: @escaping @Sendable (UInt64) -> Void, sync: @escaping @Sendable (UInt64) -> Void) {
        self.write = write
        self.sync = sync
    }
}
