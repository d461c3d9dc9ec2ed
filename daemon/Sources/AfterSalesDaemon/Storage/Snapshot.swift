// Snapshots: the whole state as a file, so start-up need not replay the journal from the
// beginning of time (Redis' rdb.c).
//
//     "ASSNAP01" | sequence u64 LE | framed record … | framed trailer
//
// The records are framed exactly like journal records (RecordFraming). The trailer is
// the last record, its payload "ASSNAP01-END" + record count u64 LE; a file without it
// was cut short and is not a snapshot. A snapshot at sequence S holds the effect of every
// journal record below S.
//
// Writing follows the classic recipe: write `snapshot-<S>.snap.tmp`, fsync it, rename it
// to `snapshot-<S>.snap`, fsync the directory — a crash at any point leaves either the
// old set of snapshots or the new one, never a half file under a real name. Then all
// but the newest two are deleted, so a newest snapshot that later proves unreadable
// still has a predecessor to fall back on.

import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

enum SnapshotFormat {
    static let magic: [UInt8] = Array("ASSNAP01".utf8)
    static let headerSize = 16
    static let trailerMarker: [UInt8] = Array("ASSNAP01-END".utf8)
    static let prefix = "snapshot-"
    static let suffix = ".snap"
    static let tmpSuffix = ".snap.tmp"
    static let invalidSuffix = ".snap.invalid"

    static func trailer(count: UInt64) -> [UInt8] {
        var bytes = trailerMarker
        for shift in stride(from: 0, to: 64, by: 8) { bytes.append(UInt8(truncatingIfNeeded: count >> UInt64(shift))) }
        return bytes
    }

    /// A whole snapshot in memory, in the file's format (a cluster shard's snapshot is
    /// stored as these bytes in PostgreSQL). Throws `.recordTooLarge`.
    static func encode(seq: UInt64, records: some Sequence<[UInt8]>) throws -> (bytes: [UInt8], records: Int) {
        var bytes = magic
        for shift in stride(from: 0, to: 64, by: 8) { bytes.append(UInt8(truncatingIfNeeded: seq >> UInt64(shift))) }
        var count = 0
        for record in records {
            try RecordFraming.append(record, to: &bytes)
            count += 1
        }
        try RecordFraming.append(trailer(count: UInt64(count)), to: &bytes)
        return (bytes, count)
    }

    /// Checks a snapshot held in memory (`encode`'s form, every record's checksum and the
    /// trailer's count) and finds its records; `place` names it in errors.
    static func decode(_ bytes: [UInt8], seq: UInt64, place: String) throws -> LoadedSnapshot {
        func invalid(_ reason: String) -> StorageError {
            StorageError(.noValidSnapshot, path: place, "snapshot \(place) is not usable: \(reason)")
        }
        guard bytes.count >= headerSize, Array(bytes[0..<8]) == magic else { throw invalid("bad or short \"ASSNAP01\" header") }
        let stored = bytes[8..<16].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        guard stored == seq else { throw invalid("header says sequence \(stored), the row says \(seq)") }
        var ranges: [Range<Int>] = []
        var at = headerSize
        try bytes.withUnsafeBytes { raw in
            while at < raw.count {
                guard raw.count - at >= RecordFraming.headerSize else { throw invalid("cut short at offset \(at)") }
                let length = Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt32.self)))
                let checksum = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: at + 4, as: UInt32.self))
                let payload = at + RecordFraming.headerSize
                guard length <= RecordFraming.maxRecordLength, raw.count - payload >= length else { throw invalid("cut short at offset \(at)") }
                guard RecordFraming.checksum(UnsafeRawBufferPointer(rebasing: raw[payload..<payload + length])) == checksum else {
                    throw invalid("checksum mismatch at offset \(at)")
                }
                ranges.append(payload..<payload + length)
                at = payload + length
            }
        }
        guard let last = ranges.popLast(), bytes[last].starts(with: trailerMarker), last.count == trailerMarker.count + 8,
              bytes[last].suffix(8).reversed().reduce(UInt64(0), { $0 << 8 | UInt64($1) }) == UInt64(ranges.count) else {
            throw invalid("no completion trailer with the right count")
        }
        return LoadedSnapshot(seq: seq, path: place, bytes: bytes, ranges: ranges, rejected: [])
    }

    /// Snapshot files (`.snap` only) in `directory`, newest first.
    static func list(_ directory: String) throws -> [(seq: UInt64, path: String)] {
        try StorageIO.listDirectory(directory)
            .compactMap { name in
                StorageIO.parseSequenceName(name, prefix, suffix).map { ($0, StorageIO.join(directory, name)) }
            }
            .sorted { $0.0 > $1.0 }
    }
}

/// What `SnapshotWriter.write` produced.
public struct SnapshotInfo: Sendable, Equatable {
    public let path: String
    public let sequence: UInt64
    /// File size in bytes.
    public let bytes: UInt64
    /// Records written (the trailer not counted).
    public let records: Int
    /// Wall time of the whole write, fsyncs included, in milliseconds.
    public let durationMs: Double
    /// Sequence of the oldest snapshot kept after pruning: pass it to
    /// `Journal.removeSegments(before:)` so a fallback to it can still replay the journal.
    public let oldestKeptSequence: UInt64
}

/// Writes snapshot files. A value type with no shared mutable state: run `write` on a
/// background thread while the loop keeps appending to the journal. Run one `write` at
/// a time per directory.
public struct SnapshotWriter: Sendable {
    /// The data directory.
    public let directory: String
    /// Snapshots kept after a write (newest first); at least 1.
    public let keep: Int
    /// Bytes gathered before each write(2).
    public let bufferSize: Int

    public init(directory: String, keep: Int = 2, bufferSize: Int = 1 << 20) {
        self.directory = directory
        self.keep = max(1, keep)
        self.bufferSize = max(4096, bufferSize)
    }

    /// Writes `records` as snapshot `seq` (tmp file, fsync, rename, fsync directory), then
    /// deletes all but the newest `keep` snapshots and any leftover `.tmp`. Records are
    /// streamed through a `bufferSize` buffer, never the whole file in memory. On error
    /// the tmp file is removed and the error thrown (`.io`, `.recordTooLarge`); existing
    /// snapshots are untouched.
    public func write(seq: UInt64, records: some Sequence<[UInt8]>) throws -> SnapshotInfo {
        let clock = ContinuousClock()
        let started = clock.now
        try StorageIO.makeDirectories(directory)
        let finalPath = StorageIO.join(directory, StorageIO.sequenceName(SnapshotFormat.prefix, seq, SnapshotFormat.suffix))
        let tmpPath = StorageIO.join(directory, StorageIO.sequenceName(SnapshotFormat.prefix, seq, SnapshotFormat.tmpSuffix))
        let fd = try StorageIO.open(tmpPath, O_WRONLY | O_CREAT | O_TRUNC)
        var count = 0
        var size: UInt64 = 0
        do {
            defer { StorageIO.close(fd) }
            var buffer = [UInt8]()
            buffer.reserveCapacity(bufferSize + 64 * 1024)
            buffer.append(contentsOf: SnapshotFormat.magic)
            for shift in stride(from: 0, to: 64, by: 8) { buffer.append(UInt8(truncatingIfNeeded: seq >> UInt64(shift))) }
            for record in records {
                try RecordFraming.append(record, to: &buffer)
                count += 1
                if buffer.count >= bufferSize {
                    try StorageIO.writeAll(fd, buffer, path: tmpPath)
                    size += UInt64(buffer.count)
                    buffer.removeAll(keepingCapacity: true)
                }
            }
            try RecordFraming.append(SnapshotFormat.trailer(count: UInt64(count)), to: &buffer)
            try StorageIO.writeAll(fd, buffer, path: tmpPath)
            size += UInt64(buffer.count)
            try StorageIO.fullSync(fd, path: tmpPath)
        } catch {
            try? StorageIO.unlink(tmpPath)
            throw error
        }
        try StorageIO.rename(tmpPath, finalPath)
        try StorageIO.syncDirectory(directory)
        let oldestKept = try prune()
        let elapsed = clock.now - started
        let ms = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
        return SnapshotInfo(path: finalPath, sequence: seq, bytes: size, records: count,
                            durationMs: ms, oldestKeptSequence: oldestKept)
    }

    /// Deletes all but the newest `keep` snapshots and every `.tmp`; returns the oldest
    /// kept sequence.
    private func prune() throws -> UInt64 {
        let snapshots = try SnapshotFormat.list(directory)
        for old in snapshots.dropFirst(keep) { try StorageIO.unlink(old.path) }
        for name in try StorageIO.listDirectory(directory) where name.hasPrefix(SnapshotFormat.prefix)
            && name.hasSuffix(SnapshotFormat.tmpSuffix) {
            try StorageIO.unlink(StorageIO.join(directory, name))
        }
        try StorageIO.syncDirectory(directory)
        return snapshots.prefix(keep).last?.seq ?? 0
    }
}

/// A snapshot passed over at load, and why.
public struct SnapshotRejection: Sendable, Equatable {
    /// Where the file was (it has been renamed to `…\(".snap.invalid")`).
    public let path: String
    public let reason: String
}

/// The snapshot start-up loads.
public struct LoadedSnapshot: Sendable {
    /// Its sequence: replay journal records with sequence ≥ this.
    public let seq: UInt64
    public let path: String
    /// The file's bytes as read (one buffer for the whole file, not one array per record).
    public let bytes: [UInt8]
    /// Where each record's payload sits in `bytes`, in the order written (trailer removed).
    public let ranges: [Range<Int>]
    /// Newer snapshots passed over because they were invalid: log each one.
    public let rejected: [SnapshotRejection]

    /// The records, in the order written (trailer removed), each copied out of `bytes`.
    public var records: [[UInt8]] { ranges.map { Array(bytes[$0]) } }

    /// Number of records (trailer not counted).
    public var count: Int { ranges.count }

    /// Calls `body` with record `index`'s payload, without copying it.
    public func withRecord<R>(_ index: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        let range = ranges[index]
        return try bytes.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[range])) }
    }
}

/// Loads snapshots at start-up.
public enum SnapshotReader {
    /// Loads the newest complete, valid snapshot in `directory`; nil when there is no
    /// snapshot file at all.
    ///
    /// Leftover `.snap.tmp` files (a write the crash interrupted) are deleted. An invalid
    /// snapshot (bad magic, sequence not matching its name, damaged or torn record, no
    /// trailer or a wrong count) is renamed to `.snap.invalid` — kept for inspection but
    /// out of the newest-two rotation — reported in `rejected`, and the previous one is
    /// tried. Throws `.noValidSnapshot` if snapshot files exist but none is valid, and
    /// `.io` when a file cannot be read (an I/O error is not proof the snapshot is bad).
    public static func loadNewestValid(directory: String) throws -> LoadedSnapshot? {
        for name in try StorageIO.listDirectory(directory) where name.hasPrefix(SnapshotFormat.prefix)
            && name.hasSuffix(SnapshotFormat.tmpSuffix) {
            try StorageIO.unlink(StorageIO.join(directory, name))
        }
        let snapshots = try SnapshotFormat.list(directory)
        if snapshots.isEmpty { return nil }
        var rejected: [SnapshotRejection] = []
        for snapshot in snapshots {
            switch try load(path: snapshot.path, seq: snapshot.seq) {
            case .success(let loaded):
                return LoadedSnapshot(seq: snapshot.seq, path: snapshot.path, bytes: loaded.bytes, ranges: loaded.ranges,
                                      rejected: rejected)
            case .failure(let invalid):
                rejected.append(SnapshotRejection(path: snapshot.path, reason: invalid.reason))
                let aside = String(snapshot.path.dropLast(SnapshotFormat.suffix.count)) + SnapshotFormat.invalidSuffix
                try StorageIO.rename(snapshot.path, aside)
            }
        }
        try StorageIO.syncDirectory(directory)
        let reasons = rejected.map { "\($0.path): \($0.reason)" }.joined(separator: "; ")
        throw StorageError(.noValidSnapshot, path: directory,
            "no valid snapshot in \(directory) (\(reasons)); refusing to start — restore a snapshot from backup")
    }

    /// Why a file is not a valid snapshot.
    struct Invalid: Error { let reason: String }

    /// Reads and validates one snapshot file: `.success` with the file's bytes (one pread
    /// of the whole file) and each record's payload range in them, or `.failure(reason)`;
    /// throws only on I/O errors.
    static func load(path: String, seq: UInt64) throws -> Result<(bytes: [UInt8], ranges: [Range<Int>]), Invalid> {
        let fd = try StorageIO.open(path, O_RDONLY)
        defer { StorageIO.close(fd) }
        var header = [UInt8](repeating: 0, count: SnapshotFormat.headerSize)
        let got = try header.withUnsafeMutableBytes { try StorageIO.preadFully(fd, $0, at: 0, path: path) }
        guard got == SnapshotFormat.headerSize, Array(header[0..<8]) == SnapshotFormat.magic else {
            return .failure(Invalid(reason: "not a snapshot file (bad or short \"ASSNAP01\" header)"))
        }
        let stored = header[8..<16].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        guard stored == seq else {
            return .failure(Invalid(reason: "header says sequence \(stored) but the name says \(seq)"))
        }
        if let whole = try readAndVerifyOnTwoThreads(fd: fd, path: path) {
            return checkTrailer(whole.bytes, whole.ranges)
        }
        // One window holds the whole file, so each record is kept as a range of it.
        var scanner = try FramedRecordScanner(fd: fd, path: path, startingAt: UInt64(SnapshotFormat.headerSize), wholeFile: true)
        var ranges: [Range<Int>] = []
        while true {
            switch try scanner.nextRange() {
            case .record(_, let payload):
                ranges.append(payload)
            case .torn(let offset, let reason):
                return .failure(Invalid(reason: "cut short at offset \(offset): \(reason)"))
            case .damaged(let offset, let reason):
                return .failure(Invalid(reason: "damaged at offset \(offset): \(reason)"))
            case .end:
                return checkTrailer(scanner.window, ranges)
            }
        }
    }

    /// The records of a file read whole, once the last is found to be a trailer with the
    /// right count (which is then dropped).
    private static func checkTrailer(_ window: [UInt8], _ ranges: [Range<Int>]) -> Result<(bytes: [UInt8], ranges: [Range<Int>]), Invalid> {
        var ranges = ranges
        guard let last = ranges.last, last.count == SnapshotFormat.trailerMarker.count + 8,
              window[last].starts(with: SnapshotFormat.trailerMarker) else {
            return .failure(Invalid(reason: "incomplete: no completion trailer (the write was cut short)"))
        }
        let count = window[last].suffix(8).reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        guard count == UInt64(ranges.count - 1) else {
            return .failure(Invalid(reason: "trailer counts \(count) records but the file holds \(ranges.count - 1)"))
        }
        ranges.removeLast()
        return .success((window, ranges))
    }

    /// The usual case, on both cores: the file after its header read by two threads, every
    /// record's frame walked, and the checksums checked by two threads — the frames as
    /// `FramedRecordScanner` gives them (the bytes from the header's end, each payload a
    /// range of them). nil when anything is not a clean run of records to the end of the
    /// file: the scanner then reads it again and says what is wrong and where.
    private static func readAndVerifyOnTwoThreads(fd: Int32, path: String) throws -> (bytes: [UInt8], ranges: [Range<Int>])? {
        let start = UInt64(SnapshotFormat.headerSize)
        let fileSize = try StorageIO.fileSize(fd, path: path)
        guard fileSize >= start else { return nil }
        let size = Int(fileSize - start)
        var complete = true
        let bytes = try [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
            let whole = UnsafeMutableRawBufferPointer(buffer)
            let half = size / 2
            let target = SendableBuffer(whole)
            let (first, second) = inParallel({
                Result { try StorageIO.preadFully(fd, UnsafeMutableRawBufferPointer(rebasing: whole[..<half]), at: start, path: path) }
            }, and: {
                Result { try StorageIO.preadFully(fd, UnsafeMutableRawBufferPointer(rebasing: target.buffer[half...]),
                                                  at: start + UInt64(half), path: path) }
            })
            let got = (try first.get(), try second.get())
            complete = got.0 == half && got.1 == size - half
            // A short read (the file shrank meanwhile) leaves bytes unread: zero them, and
            // let the scanner report it.
            if !complete { whole.initializeMemory(as: UInt8.self, repeating: 0) }
            initialized = size
        }
        guard complete else { return nil }
        var ranges: [Range<Int>] = []
        var stored: [UInt32] = []
        let clean = bytes.withUnsafeBytes { raw -> Bool in
            var at = 0
            while at < raw.count {
                guard raw.count - at >= RecordFraming.headerSize else { return false }
                let length = Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt32.self)))
                let payload = at + RecordFraming.headerSize
                guard length <= RecordFraming.maxRecordLength, raw.count - payload >= length else { return false }
                stored.append(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: at + 4, as: UInt32.self)))
                ranges.append(payload..<payload + length)
                at = payload + length
            }
            return true
        }
        guard clean else { return nil }
        let sharedBytes = bytes, sharedRanges = ranges, sharedStored = stored
        let verified = { @Sendable (part: Range<Int>) -> Bool in
            sharedBytes.withUnsafeBytes { raw in
                part.allSatisfy { RecordFraming.checksum(UnsafeRawBufferPointer(rebasing: raw[sharedRanges[$0]])) == sharedStored[$0] }
            }
        }
        let middle = ranges.count / 2
        let (first, second) = inParallel({ verified(0..<middle) }, and: { verified(middle..<sharedRanges.count) })
        return first && second ? (bytes, ranges) : nil
    }
}

/// A buffer handed to another thread that writes a part of it no other thread touches.
private struct SendableBuffer: @unchecked Sendable {
    let buffer: UnsafeMutableRawBufferPointer
    init(_ buffer: UnsafeMutableRawBufferPointer) { self.buffer = buffer }
}
