// One reader of protobuf wire bytes for every place that reads them without building a
// SwiftProtobuf message: the daemon's direct decoders (cases, journal records, requests,
// the envelope and the shape check), the routing of calls by their case id, and the
// benchmark's driver. It reads as SwiftProtobuf does and refuses what it refuses
// (truncation, overlong varints, invalid UTF-8, field number 0, bad wire types).
import Foundation

/// Why bytes were not read.
public enum WireFailure: Error, CustomStringConvertible {
    /// Not valid protobuf for the message.
    case malformed(String)
    /// Valid protobuf, but not a value the reader's caller can hold (a stored case this
    /// build does not know, say).
    case invalid(any Error & CustomStringConvertible & Sendable)
    /// More fields in one message than a request may carry (the daemon's `RequestShape`).
    case tooManyFields(String)

    public var description: String {
        switch self {
        case .malformed(let why): return "malformed protobuf: \(why)"
        case .invalid(let error): return error.description
        case .tooManyFields(let what): return "too many fields in \(what)"
        }
    }
}

/// A cursor over protobuf bytes. Inlinable: it is the inner loop of every direct decoder.
@frozen
public struct WireReader {
    @usableFromInline let bytes: UnsafeRawBufferPointer
    @usableFromInline var offset = 0

    /// A reader of `bytes`, which must outlive it.
    @inlinable
    public init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    /// Runs `body` with a reader over `bytes` (an array, a slice, `Data`), passing on its
    /// failure: `withUnsafeBytes` cannot carry a typed throw itself.
    @inlinable
    public static func reading<T>(_ bytes: some ContiguousBytes, _ body: (inout WireReader) throws(WireFailure) -> T) throws(WireFailure) -> T {
        let result = bytes.withUnsafeBytes { raw in
            Result { () throws(WireFailure) -> T in
                var reader = WireReader(raw)
                return try body(&reader)
            }
        }
        return try result.get()
    }

    /// Bytes read so far.
    @inlinable
    public var position: Int { offset }

    /// Whether every byte has been read.
    @inlinable
    public var isAtEnd: Bool { offset >= bytes.count }

    /// Most varints on our wire (tags, lengths, enum numbers) are one byte: read those
    /// inline, the rest in `longVarint`.
    @inlinable @inline(__always)
    public mutating func varint() throws(WireFailure) -> UInt64 {
        if offset < bytes.count {
            let byte = bytes[offset]
            if byte < 0x80 {
                offset &+= 1
                return UInt64(byte)
            }
        }
        return try longVarint()
    }

    @usableFromInline
    mutating func longVarint() throws(WireFailure) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard offset < bytes.count else { throw .malformed("truncated varint") }
            guard shift <= 63 else { throw .malformed("varint longer than ten bytes") }
            let byte = bytes[offset]
            offset += 1
            result |= UInt64(byte & 0x7F) &<< shift
            if byte < 0x80 { return result }
            shift += 7
        }
    }

    /// The next field's number and wire type.
    @inlinable
    public mutating func tag() throws(WireFailure) -> (field: UInt64, wireType: UInt64) {
        let key = try varint()
        let field = key >> 3
        guard field > 0, key < UInt64(UInt32.max), key & 7 <= 5 else { throw .malformed("tag \(key)") }
        return (field, key & 7)
    }

    /// A length-delimited field's bytes.
    @inlinable
    public mutating func lengthDelimited() throws(WireFailure) -> UnsafeRawBufferPointer {
        let length = try varint()
        guard length <= UInt64(bytes.count - offset) else { throw .malformed("length \(length) runs past the end") }
        let start = offset
        offset += Int(length)
        return UnsafeRawBufferPointer(rebasing: bytes[start..<offset])
    }

    /// Skips a field this reader does not know (or a group, to its end).
    @inlinable
    public mutating func skip(field: UInt64, wireType: UInt64) throws(WireFailure) {
        switch wireType {
        case 0: _ = try varint()
        case 1: try advance(8)
        case 2: _ = try lengthDelimited()
        case 5: try advance(4)
        case 3: try skipGroup(field)
        default: throw .malformed("wire type \(wireType) for field \(field)")
        }
    }

    @usableFromInline
    mutating func skipGroup(_ field: UInt64) throws(WireFailure) {
        while true {
            let (inner, innerType) = try tag()
            if innerType == 4 {
                guard inner == field else { throw .malformed("group \(field) closed as \(inner)") }
                return
            }
            try skip(field: inner, wireType: innerType)
        }
    }

    @inlinable
    mutating func advance(_ count: Int) throws(WireFailure) {
        guard count <= bytes.count - offset else { throw .malformed("truncated fixed-width field") }
        offset += count
    }
}

/// Typed reads of one field's value; the caller has checked the wire type (`accepts`).
extension WireReader {
    /// Whether field `field` arrived with the wire type it is declared with (`expected`;
    /// `packable` for a repeated enum, which may come packed or not). If not, it is
    /// skipped as an unknown field, as SwiftProtobuf does, and the answer is false.
    @inlinable
    public mutating func accepts(_ field: UInt64, _ wireType: UInt64, _ expected: UInt64, packable: Bool = false) throws(WireFailure) -> Bool {
        if wireType == expected || (packable && wireType == 0) { return true }
        try skip(field: field, wireType: wireType)
        return false
    }

    /// An int64 (or int32: sign-extended on the wire).
    @inlinable
    public mutating func int64() throws(WireFailure) -> Int64 { Int64(bitPattern: try varint()) }

    /// A uint32.
    @inlinable
    public mutating func uint32() throws(WireFailure) -> UInt32 { UInt32(truncatingIfNeeded: try varint()) }

    /// A string field's text; invalid UTF-8 is refused, as SwiftProtobuf refuses it.
    public mutating func string() throws(WireFailure) -> String {
        let raw = try lengthDelimited()
        let utf8 = raw.assumingMemoryBound(to: UInt8.self)
        // ASCII (every id, most text) is valid UTF-8 that nothing repairs: no check after.
        if Self.isASCII(raw) { return String(decoding: utf8, as: UTF8.self) }
        // `String(decoding:)` is the specialised fast path, but it repairs invalid UTF-8
        // (`String(validating:)` is generic and unspecialised here: a metadata lookup per
        // string). Valid input comes back byte for byte; repaired input does not.
        let text = String(decoding: utf8, as: UTF8.self)
        guard text.utf8.elementsEqual(utf8) else { throw .malformed("invalid UTF-8 in a string") }
        return text
    }

    /// Whether every byte is below 0x80, eight at a time.
    public static func isASCII(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var high: UInt64 = 0
        var at = 0
        while bytes.count - at >= 8 {
            high |= bytes.loadUnaligned(fromByteOffset: at, as: UInt64.self)
            at += 8
        }
        while at < bytes.count {
            high |= UInt64(bytes[at])
            at += 1
        }
        return high & 0x8080_8080_8080_8080 == 0
    }

    /// A proto3 enum's number (int32 on the wire).
    @inlinable
    public mutating func enumNumber() throws(WireFailure) -> Int { Int(Int32(truncatingIfNeeded: try varint())) }

    /// Appends a repeated enum's numbers, packed (wire type 2) or one per field.
    public mutating func enumNumbers(_ wireType: UInt64, into numbers: inout [Int]) throws(WireFailure) {
        guard wireType == 2 else {
            numbers.append(try enumNumber())
            return
        }
        var packed = WireReader(try lengthDelimited())
        while !packed.isAtEnd { numbers.append(try packed.enumNumber()) }
    }

    /// A nested message's bytes.
    @inlinable
    public mutating func message() throws(WireFailure) -> WireReader { WireReader(try lengthDelimited()) }
}
