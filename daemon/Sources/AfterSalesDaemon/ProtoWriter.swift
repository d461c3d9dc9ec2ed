// Protobuf wire format written straight into an array's storage. Every GetCase, every
// change and every snapshot record writes a case; appending to an `[UInt8]` byte by byte
// paid a uniqueness and a capacity check per byte (callgrind: ~7 of the ~11 thousand
// instructions of encoding a case). This writes through a pointer into room reserved
// once; when the guess was too small the writing runs again with more room (rare: the
// guesses cover every case the call limits allow but the longest histories).
import Foundation

/// A one-pass protobuf writer over room reserved up front (see `ProtoWriter.bytes`).
struct ProtoWriter {
    private let base: UnsafeMutablePointer<UInt8>
    private let capacity: Int
    /// Bytes written so far.
    private(set) var count = 0
    /// The room ran out: the bytes are incomplete and `bytes` writes them again.
    private(set) var overflowed = false

    private init(base: UnsafeMutablePointer<UInt8>, capacity: Int) {
        self.base = base
        self.capacity = capacity
    }

    /// What `write` writes, as an array of exactly that size. It writes into scratch room
    /// on the stack (up to 1 KiB) and copies once into the array: an array made in this
    /// module costs some 300 instructions less than one whose storage the standard library
    /// allocates uninitialized (`Array(unsafeUninitializedCapacity:)` looks its storage
    /// class up in the runtime's metadata cache on every call, on Linux). When `capacity`
    /// was not enough, it writes again into four times as much.
    static func bytes(capacity: Int, _ write: (inout ProtoWriter) -> Void) -> [UInt8] {
        var room = max(capacity, 64)
        while true {
            let bytes: [UInt8]? = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: room) { scratch in
                var writer = ProtoWriter(base: scratch.baseAddress!, capacity: room)
                write(&writer)
                if writer.overflowed { return nil }
                return Array(UnsafeBufferPointer(start: scratch.baseAddress!, count: writer.count))
            }
            if let bytes { return bytes }
            room *= 4
        }
    }

    /// Whether `n` more bytes fit; marks the writer overflowed when they do not.
    @inline(__always)
    private mutating func room(for n: Int) -> Bool {
        if !overflowed && count &+ n <= capacity { return true }
        overflowed = true
        return false
    }

    // MARK: primitives (proto3: zero scalars and empty strings are left out by the callers that say so)

    @inline(__always)
    mutating func varint(_ value: UInt64) {
        guard room(for: 10) else { return }
        var v = value
        var at = count
        while v >= 0x80 {
            base[at] = UInt8(truncatingIfNeeded: v) | 0x80
            at &+= 1
            v >>= 7
        }
        base[at] = UInt8(truncatingIfNeeded: v)
        count = at &+ 1
    }

    @inline(__always)
    mutating func tag(_ number: UInt64, _ wireType: UInt64) { varint(number << 3 | wireType) }

    /// A varint field; nothing when `value` is zero (proto3's default).
    @inline(__always)
    mutating func varintField(_ number: UInt64, _ value: UInt64) {
        guard value != 0 else { return }
        tag(number, 0)
        varint(value)
    }

    /// int64 and int32 alike: negative values are sign-extended to ten bytes, as protobuf does.
    @inline(__always)
    mutating func int64Field(_ number: UInt64, _ value: Int64) { varintField(number, UInt64(bitPattern: value)) }

    /// Raw bytes, as they are.
    mutating func raw(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0, room(for: bytes.count) else { return }
        UnsafeMutableRawPointer(base + count).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        count &+= bytes.count
    }

    /// A length-delimited field holding `bytes` (written even when empty).
    mutating func bytesField(_ number: UInt64, _ bytes: UnsafeRawBufferPointer) {
        tag(number, 2)
        varint(UInt64(bytes.count))
        raw(bytes)
    }

    /// A length-delimited field holding `bytes` (written even when empty).
    mutating func bytesField(_ number: UInt64, _ bytes: [UInt8]) {
        bytes.withUnsafeBytes { bytesField(number, $0) }
    }

    /// A string field; nothing when empty unless `always` (a repeated string's elements).
    mutating func stringField(_ number: UInt64, _ value: String, always: Bool = false) {
        guard always || !value.isEmpty else { return }
        // Native strings are contiguous UTF-8 already: read in place, without the copy
        // (a retain and a release) that `withUTF8` on a `var` costs.
        if let written: Void = value.utf8.withContiguousStorageIfAvailable({ bytesField(number, UnsafeRawBufferPointer($0)) }) {
            return written
        }
        var text = value
        text.withUTF8 { bytesField(number, UnsafeRawBufferPointer($0)) }
    }

    /// A length-delimited field whose content `body` writes in place. The length is
    /// reserved as one byte and widened afterwards (moving the content) when the content
    /// is 128 bytes or more.
    @inline(__always)
    mutating func messageField(_ number: UInt64, _ body: (inout ProtoWriter) -> Void) {
        tag(number, 2)
        guard room(for: 1) else { return }
        let lengthAt = count
        count &+= 1
        body(&self)
        guard !overflowed else { return }
        let length = count &- lengthAt &- 1
        if length < 0x80 {
            base[lengthAt] = UInt8(truncatingIfNeeded: length)
            return
        }
        var width = 1
        var v = length >> 7
        while v > 0 { width &+= 1; v >>= 7 }
        guard room(for: width &- 1) else { return }
        memmove(base + lengthAt + width, base + lengthAt + 1, length)
        count = lengthAt
        varint(UInt64(length))
        count &+= length
    }
}
