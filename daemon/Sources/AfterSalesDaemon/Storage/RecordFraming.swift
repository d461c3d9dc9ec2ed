// How one record sits on disk, and how a file of records is read back.
//
//     +----------------+----------------+----------------------+
//     | length u32 LE  | CRC-32C u32 LE | payload (length B)   |
//     +----------------+----------------+----------------------+
//
// The checksum covers the 4 length bytes followed by the payload. Covering the length
// means a flipped length bit is caught, and a run of zero bytes (what a filesystem may
// show after a crash past the last synced size) is never a valid empty record: the
// CRC-32C of an empty payload alone would be 0.
//
// Reading tells three endings apart (the same distinction Redis' aof.c makes between a
// truncated AOF, which it fixes, and a corrupt one, which it refuses):
//   • clean end     — the file ends exactly after a record;
//   • torn tail     — the file ends inside the last record: a short header, a short
//                     payload, a checksum mismatch of a record that ends exactly at end
//                     of file, or a bad record followed only by zero bytes. That is a
//                     write the crash interrupted; it was never acknowledged, so it is
//                     cut off;
//   • damage        — a checksum mismatch or an impossible length with more bytes after
//                     it. Acknowledged data is unreadable; the caller refuses to go on.

/// The on-disk record format shared by journal segments and snapshots.
public enum RecordFraming {
    /// Bytes before each payload: length + checksum.
    public static let headerSize = 8
    /// Longest payload accepted; a longer length field is treated as damage.
    public static let maxRecordLength = 64 << 20

    /// The checksum stored for `payload`: CRC-32C over its 4 length bytes then the payload.
    static func checksum(_ payload: UnsafeRawBufferPointer) -> UInt32 {
        var length = UInt32(payload.count).littleEndian
        let crc = withUnsafeBytes(of: &length) { CRC32C.update(0, $0) }
        return CRC32C.update(crc, payload)
    }

    /// Appends the framed `payload` to `buffer`. Throws `.recordTooLarge`.
    static func append(_ payload: [UInt8], to buffer: inout [UInt8]) throws {
        guard payload.count <= maxRecordLength else {
            throw StorageError(.recordTooLarge,
                               "record of \(payload.count) bytes exceeds the limit of \(maxRecordLength) bytes")
        }
        let crc = payload.withUnsafeBytes { checksum($0) }
        let length = UInt32(payload.count)
        for shift in stride(from: 0, to: 32, by: 8) { buffer.append(UInt8(truncatingIfNeeded: length >> UInt32(shift))) }
        for shift in stride(from: 0, to: 32, by: 8) { buffer.append(UInt8(truncatingIfNeeded: crc >> UInt32(shift))) }
        buffer.append(contentsOf: payload)
    }
}

/// Reads framed records forward from an open file through a 1 MiB window — or, with
/// `wholeFile: true`, through one window holding the whole file read by a single pread
/// (snapshots: the payloads are then handed out as ranges of `window`, never copied).
struct FramedRecordScanner {
    enum Step {
        /// A valid record starting at `offset`.
        case record(offset: UInt64, payload: [UInt8])
        /// The file ends exactly here.
        case end
        /// The file ends inside the record at `offset`.
        case torn(offset: UInt64, reason: String)
        /// The record at `offset` is bad and more bytes follow.
        case damaged(offset: UInt64, reason: String)
    }

    /// Like `Step`, but a record's payload is given as its range in `window`.
    enum RangeStep {
        case record(offset: UInt64, payload: Range<Int>)
        case end
        case torn(offset: UInt64, reason: String)
        case damaged(offset: UInt64, reason: String)
    }

    let fd: Int32
    let path: String
    let fileSize: UInt64
    /// File offset of the next record.
    private(set) var offset: UInt64
    /// The bytes read; `window[0]` is file offset `windowStart`.
    private(set) var window: [UInt8] = []
    private(set) var windowStart: UInt64 = 0
    private let chunk: Int
    private static let defaultChunk = 1 << 20

    init(fd: Int32, path: String, startingAt offset: UInt64, wholeFile: Bool = false) throws {
        self.fd = fd
        self.path = path
        self.fileSize = try StorageIO.fileSize(fd, path: path)
        self.offset = offset
        // The first read then takes in everything from `offset` on, and nothing is read again.
        chunk = wholeFile ? Int(clamping: fileSize - min(offset, fileSize)) : Self.defaultChunk
    }

    /// Makes `count` bytes at `at` available in the window; the caller checked they exist.
    private mutating func load(_ at: UInt64, _ count: Int) throws {
        if at >= windowStart && at + UInt64(count) <= windowStart + UInt64(window.count) { return }
        let size = Int(min(UInt64(max(chunk, count)), fileSize - at))
        let fd = self.fd, path = self.path
        var got = 0
        // Every byte is either read or cut off below: no need to zero the buffer first.
        window = try [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
            got = try StorageIO.preadFully(fd, UnsafeMutableRawBufferPointer(buffer), at: at, path: path)
            initialized = got
        }
        windowStart = at
        if got < count {
            throw StorageError(.io, path: path, "\(path) shrank while being read (offset \(at))")
        }
    }

    /// True when every byte from `from` to end of file is zero.
    private mutating func zeroToEnd(from: UInt64) throws -> Bool {
        var at = from
        while at < fileSize {
            let n = Int(min(UInt64(chunk), fileSize - at))
            try load(at, n)
            let base = Int(at - windowStart)
            if window[base..<base + n].contains(where: { $0 != 0 }) { return false }
            at += UInt64(n)
        }
        return true
    }

    /// Reads the next record, or says how the file ends.
    mutating func next() throws -> Step {
        switch try nextRange() {
        case .record(let offset, let payload): return .record(offset: offset, payload: Array(window[payload]))
        case .end: return .end
        case .torn(let offset, let reason): return .torn(offset: offset, reason: reason)
        case .damaged(let offset, let reason): return .damaged(offset: offset, reason: reason)
        }
    }

    /// Reads the next record, giving its payload as a range of `window` (valid until the
    /// next call; with `wholeFile: true`, for as long as the scanner lives).
    mutating func nextRange() throws -> RangeStep {
        let start = offset
        let remaining = fileSize - start
        if remaining == 0 { return .end }
        if remaining < UInt64(RecordFraming.headerSize) {
            return .torn(offset: start, reason: "short header (\(remaining) of \(RecordFraming.headerSize) bytes)")
        }
        try load(start, RecordFraming.headerSize)
        let h = Int(start - windowStart)
        let (length, stored) = window.withUnsafeBytes {
            (UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: h, as: UInt32.self)),
             UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: h + 4, as: UInt32.self)))
        }
        if Int(length) > RecordFraming.maxRecordLength {
            return .damaged(offset: start, reason: "impossible record length \(length) (limit \(RecordFraming.maxRecordLength))")
        }
        let total = UInt64(RecordFraming.headerSize) + UInt64(length)
        if remaining < total {
            return .torn(offset: start, reason: "short payload (\(remaining - 8) of \(length) bytes)")
        }
        try load(start, Int(total))
        let p = Int(start - windowStart) + RecordFraming.headerSize
        let computed = window.withUnsafeBytes { RecordFraming.checksum(UnsafeRawBufferPointer(rebasing: $0[p..<p + Int(length)])) }
        if computed != stored {
            let what = "checksum mismatch (stored \(StorageIO.hex(stored)), computed \(StorageIO.hex(computed)))"
            if remaining == total { return .torn(offset: start, reason: what + " in the final record") }
            if try zeroToEnd(from: start) { return .torn(offset: start, reason: "zero-filled tail") }
            return .damaged(offset: start, reason: what)
        }
        offset = start + total
        return .record(offset: start, payload: p..<p + Int(length))
    }
}
