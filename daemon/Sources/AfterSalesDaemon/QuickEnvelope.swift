// Every call starts by decoding its RequestEnvelope. Through SwiftProtobuf that cost
// more than serving a GetCase once the case was in hand (callgrind: the field count that
// bounds hostile metadata, the generic decoder, the String of the method name and its
// lookup among the methods). What clients send is the plain shape: request id, method,
// payload, and a deadline and idempotency key, each at most once. That shape is read
// here directly; anything else (metadata, unknown fields, repeated or oddly typed fields,
// an unknown method) goes the general way, whose errors say what is wrong.
// `HotPathCodecTests` hold this reader to SwiftProtobuf on valid and damaged envelopes.
import AfterSalesProto
import AfterSalesRPC
import Foundation

enum QuickEnvelope {
    /// The envelope and its method when `body` has the plain shape; nil otherwise.
    static func read(_ body: [UInt8]) -> (envelope: RequestEnvelope, method: Method)? {
        body.withUnsafeBytes { bytes -> (RequestEnvelope, Method)? in
            var reader = WireReader(bytes)
            var envelope = RequestEnvelope()
            var method: Method?
            var seen: UInt8 = 0
            do throws(CaseWireDecoder.Failure) {
                while !reader.isAtEnd {
                    let (field, wireType) = try reader.tag()
                    guard field <= 5, seen & (1 << field) == 0 else { return nil }
                    seen |= 1 << field
                    switch (Int(field), wireType) {
                    case (Fields.requestID, 0):
                        envelope.requestID = try reader.varint()
                    case (Fields.method, 2):
                        guard let known = MethodNames.lookup(try reader.lengthDelimited()) else { return nil }
                        method = known
                        envelope.method = known.rawValue
                    case (Fields.payload, 2):
                        envelope.payload = Data(try reader.lengthDelimited())
                    case (Fields.deadlineMs, 0):
                        envelope.deadlineMs = try reader.varint()
                    case (Fields.idempotencyKey, 2):
                        envelope.idempotencyKey = try reader.string()
                    default:
                        return nil
                    }
                }
            } catch {
                return nil
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
