// Every call starts by decoding its RequestEnvelope. Through SwiftProtobuf that cost
// more than serving a GetCase once the case was in hand (callgrind: the field count that
// bounds hostile metadata, the generic decoder, the String of the method name and its
// lookup among the methods). What clients send is the plain shape: request id, method,
// payload, and a deadline and idempotency key, each at most once. That shape is read
// here directly; anything else (metadata, unknown fields, repeated or oddly typed fields,
// an unknown method) goes the general way, whose errors say what is wrong.
// `QuickEnvelopeTests` hold this reader to SwiftProtobuf on valid and damaged envelopes.
import AfterSalesProto
import AfterSalesRPC
import Foundation

enum QuickEnvelope {
    /// The envelope and its method when `body` has the plain shape; nil otherwise.
    static func read(_ body: [UInt8]) -> (envelope: RequestEnvelope, method: Method)? {
        body.withUnsafeBytes { bytes -> (RequestEnvelope, Method)? in
            var at = 0
            let end = bytes.count
            // A varint of at most ten bytes whose tenth is 0 or 1 (64 bits), else nil.
            func varint() -> UInt64? {
                var value: UInt64 = 0
                var shift: UInt64 = 0
                while at < end {
                    let byte = bytes[at]
                    at &+= 1
                    if shift == 63 {
                        guard byte <= 1 else { return nil }
                        return value | UInt64(byte) << 63
                    }
                    value |= UInt64(byte & 0x7F) << shift
                    if byte < 0x80 { return value }
                    shift &+= 7
                }
                return nil
            }
            func lengthDelimited() -> UnsafeRawBufferPointer? {
                guard let length = varint(), length <= UInt64(end &- at) else { return nil }
                let start = at
                at &+= Int(length)
                return UnsafeRawBufferPointer(rebasing: bytes[start..<at])
            }
            var envelope = RequestEnvelope()
            var method: Method?
            var seen: UInt8 = 0
            while at < end {
                guard let key = varint(), key <= 0x2F else { return nil }
                let (field, wireType) = (Int(key >> 3), key & 7)
                let bit = UInt8(1) << field
                guard field >= 1, seen & bit == 0 else { return nil }
                seen |= bit
                switch (field, wireType) {
                case (Fields.requestID, 0):
                    guard let value = varint() else { return nil }
                    envelope.requestID = value
                case (Fields.method, 2):
                    guard let name = lengthDelimited(), let known = MethodNames.lookup(name) else { return nil }
                    method = known
                    envelope.method = known.rawValue
                case (Fields.payload, 2):
                    guard let payload = lengthDelimited() else { return nil }
                    envelope.payload = Data(payload)
                case (Fields.deadlineMs, 0):
                    guard let value = varint() else { return nil }
                    envelope.deadlineMs = value
                case (Fields.idempotencyKey, 2):
                    guard let text = lengthDelimited(), let key = WireText.string(text) else { return nil }
                    envelope.idempotencyKey = key
                default:
                    return nil
                }
            }
            guard let method else { return nil }
            return (envelope, method)
        }
    }

    /// RequestEnvelope's field numbers, from the contract's descriptors (checked at start-up
    /// to be the five this reader knows).
    private enum Fields {
        static let requestID = number("request_id")
        static let method = number("method")
        static let payload = number("payload")
        static let deadlineMs = number("deadline_ms")
        static let idempotencyKey = number("idempotency_key")

        static func number(_ name: String) -> Int {
            guard let field = Contract.fieldPath([name], in: RequestEnvelope.protoMessageName)?.last else {
                preconditionFailure("RequestEnvelope has no field \(name): QuickEnvelope and the .proto disagree")
            }
            precondition((1...5).contains(field.number), "QuickEnvelope reads fields 1–5 only; \(name) is \(field.number)")
            return Int(field.number)
        }
    }
}

/// The methods by the UTF-8 bytes of their full names, found without making a String
/// (only names of the same length are compared).
enum MethodNames {
    private static let table: [(name: [UInt8], method: Method)] = Method.allCases.map { (Array($0.rawValue.utf8), $0) }

    /// The method named by `name`, or nil.
    static func lookup(_ name: UnsafeRawBufferPointer) -> Method? {
        for entry in table where entry.name.count == name.count {
            // Names are never empty, so `name` has an address here.
            if entry.name.withUnsafeBytes({ memcmp($0.baseAddress!, name.baseAddress!, name.count) }) == 0 { return entry.method }
        }
        return nil
    }
}

enum WireText {
    /// The text of UTF-8 `bytes`, nil when they are not UTF-8 (which SwiftProtobuf refuses
    /// in a string field). ASCII, which every id the daemon makes is, is checked byte by
    /// byte: a third of what the general validation costs.
    @inline(__always)
    static func string(_ bytes: UnsafeRawBufferPointer) -> String? {
        var ascii = true
        for byte in bytes where byte >= 0x80 {
            ascii = false
            break
        }
        return ascii ? String(decoding: bytes, as: UTF8.self) : String(validating: bytes, as: UTF8.self)
    }
}
