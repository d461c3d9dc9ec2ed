// Every caller waits while the loop works on one call, so the work a call may cost before
// it is refused must be bounded. Decoding is what costs: SwiftProtobuf builds one value
// per list element, about half a microsecond each, so a 400 KB CreateCase with 100 001
// evidence items held the loop for ~50 ms only to be told "at most 32". This counts list
// elements on the wire first, without building anything, and refuses at the first one
// over its bound; only a request of a sane shape is decoded.
import AfterSalesProto
import AfterSalesRPC
import CaseEngine
import Foundation
import SwiftProtobuf

/// Bounds on the repeated fields of requests, checked on the wire before decoding.
struct RequestShape {
    /// One repeated field: where it is, how many elements one parent may hold.
    struct Bound {
        /// Field numbers from the request down to the repeated field; every step but the
        /// last is a nested message (`repeated` when each occurrence is its own element).
        var path: [(number: UInt64, repeated: Bool)]
        /// Elements are scalars (an enum: packed, or one field each) rather than messages.
        var scalar: Bool
        var max: Int
        /// The field's name as the error names it.
        var name: String
        /// The name of each message level on the path ("signals", "signals.evidence"),
        /// worked out once here rather than on every call.
        var levels: [String]

        /// The bound on `name` ("signals.evidence[].tags": `[]` marks a list passed through)
        /// in the message `message`, read from the contract's descriptors.
        init(in message: String, _ name: String, max: Int) {
            let parts = name.split(separator: ".").map { $0.hasSuffix("[]") ? String($0.dropLast(2)) : String($0) }
            guard let fields = Contract.fieldPath(parts, in: message) else {
                preconditionFailure("\(message) has no field path \(name): RequestShape and the .proto disagree")
            }
            // A message-typed repeated field is one wire field per element; scalars (enums)
            // may be packed, and are counted by value.
            path = fields.map { (UInt64($0.number), $0.label == .repeated && $0.type == .message) }
            scalar = fields.last!.type != .message
            (self.max, self.name) = (max, name)
            levels = parts.indices.map { parts[...$0].joined(separator: ".") }
        }
    }

    /// Fields a message may carry at one level (known or not): far above any request's
    /// own, far below what would make skipping them cost.
    static let maxFieldsPerMessage = 512
    /// A repeated field the engine sets no bound on (anomalies: each kind counts once).
    static let maxUnboundedElements = 64

    private let bounds: [Method: [Bound]]
    private let envelope: [Bound]

    /// The bounds for `limits`; each field's number and kind come from the contract's
    /// descriptors, by name.
    init(limits: FieldLimits) {
        func bound(_ method: Method, _ name: String, max: Int) -> Bound {
            Bound(in: method.requestType.protoMessageName, name, max: max)
        }
        bounds = [
            .createCase: [
                bound(.createCase, "signals.evidence", max: limits.maxEvidenceItems),
                bound(.createCase, "signals.evidence[].tags", max: limits.maxTagsPerEvidence),
                bound(.createCase, "signals.logistics_anomalies", max: Self.maxUnboundedElements),
            ],
            .addEvidence: [bound(.addEvidence, "evidence.tags", max: limits.maxTagsPerEvidence)],
            .updateLogistics: [bound(.updateLogistics, "anomalies", max: Self.maxUnboundedElements)],
        ]
        envelope = [Bound(in: RequestEnvelope.protoMessageName, "metadata", max: Self.maxUnboundedElements)]
    }

    /// Why the RequestEnvelope `body` is refused before decoding, or nil.
    func checkEnvelope(_ body: [UInt8]) -> RPCError? {
        body.withUnsafeBytes { check($0, envelope, what: "RequestEnvelope") }
    }

    /// Why `method`'s request `payload` is refused before decoding, or nil.
    func checkPayload(_ payload: Data, for method: Method) -> RPCError? {
        payload.withUnsafeBytes { check($0, bounds[method] ?? [], what: method.requestType.protoMessageName) }
    }

    private func check(_ bytes: UnsafeRawBufferPointer, _ bounds: [Bound], what: @autoclosure () -> String) -> RPCError? {
        do throws(CaseWireDecoder.Failure) {
            // The fields of every message level a bound descends into are counted too.
            let fields = try Self.countFields(bytes, what: what())
            for bound in bounds {
                // A list of messages at the top level has at most one element per field.
                if bound.path.count == 1 && !bound.scalar && fields <= bound.max { continue }
                let count = try Self.elements(bytes, bound.path[...], levels: bound.levels, scalar: bound.scalar, limit: bound.max)
                if count > bound.max {
                    return RPCError(.invalidArgument, "\(bound.name): at most \(bound.max) items, got more; nothing was decoded or changed")
                }
            }
            return nil
        } catch .tooManyFields(let at) {
            return RPCError(.invalidArgument, "\(at): more than \(Self.maxFieldsPerMessage) fields in one message")
        } catch {
            // Malformed bytes: SwiftProtobuf's decoder says so in its own words.
            return nil
        }
    }

    /// The fields of one message level; throws when there are more than `maxFieldsPerMessage`.
    private static func countFields(_ bytes: UnsafeRawBufferPointer, what: @autoclosure () -> String) throws(CaseWireDecoder.Failure) -> Int {
        var reader = WireReader(bytes)
        var fields = 0
        while !reader.isAtEnd {
            let (field, wireType) = try reader.tag()
            try reader.skip(field: field, wireType: wireType)
            fields += 1
            if fields > maxFieldsPerMessage { throw .tooManyFields(what()) }
        }
        return fields
    }

    /// The most elements of the repeated field at `path` under one parent, counting no
    /// further than just past `limit`. A nested level holding more than
    /// `maxFieldsPerMessage` fields before that is refused by the name in `levels`.
    private static func elements(_ bytes: UnsafeRawBufferPointer, _ path: ArraySlice<(number: UInt64, repeated: Bool)>,
                                 levels: [String], scalar: Bool, limit: Int,
                                 level: String? = nil) throws(CaseWireDecoder.Failure) -> Int {
        guard let step = path.first else { return 0 }
        var reader = WireReader(bytes)
        var total = 0
        var most = 0
        var fields = 0
        while !reader.isAtEnd, total <= limit, most <= limit {
            fields += 1
            if let level, fields > maxFieldsPerMessage { throw .tooManyFields(level) }
            let (field, wireType) = try reader.tag()
            guard field == step.number else {
                try reader.skip(field: field, wireType: wireType)
                continue
            }
            if path.count == 1 {
                if scalar && wireType == 2 {
                    // Packed: one element per varint, each ending in a byte below 0x80.
                    total += try reader.lengthDelimited().reduce(0) { $0 + ($1 < 0x80 ? 1 : 0) }
                } else {
                    try reader.skip(field: field, wireType: wireType)
                    total += 1
                }
                continue
            }
            guard wireType == 2 else {
                try reader.skip(field: field, wireType: wireType)
                continue
            }
            let nested = try reader.lengthDelimited()
            let inside = try elements(nested, path.dropFirst(), levels: levels, scalar: scalar, limit: limit,
                                      level: levels[levels.count - path.count])
            // Occurrences of a singular message merge (their lists add up); each of a
            // repeated one is its own parent.
            if step.repeated { most = max(most, inside) } else { total += inside }
        }
        return max(total, most)
    }
}
