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
        // Every bound at once, in one walk of the bytes, without allocating. A list of one
        // field per element at the top cannot pass its bound in bytes too few to hold that
        // many fields (each takes at least two).
        var active: UInt8 = 0
        for (b, bound) in bounds.enumerated() where !(bound.path.count == 1 && !bound.scalar && bytes.count <= 2 * bound.max) {
            active |= 1 << b
        }
        var walk = Walk(bounds: bounds)
        do throws(CaseWireDecoder.Failure) {
            _ = try walk.level(bytes, depth: 0, active: active, name: nil)
            return nil
        } catch {
            if case .tooManyFields(let at) = error {
                return RPCError(.invalidArgument, "\(at.isEmpty ? what() : at): more than \(Self.maxFieldsPerMessage) fields in one message")
            }
            if let over = walk.exceeded {
                return RPCError(.invalidArgument, "\(bounds[over].name): at most \(bounds[over].max) items, got more; nothing was decoded or changed")
            }
            // Malformed bytes: SwiftProtobuf's decoder says so in its own words.
            return nil
        }
    }

    /// One walk over a request's bytes counting the elements of every bounded list
    /// (at most `Walk.maxBounds` per message type; sets of them are bit masks).
    private struct Walk {
        static let maxBounds = 4
        typealias Counts = InlineArray<4, Int>
        let bounds: [Bound]
        /// The bound found over its maximum (the walk stops there, throwing).
        var exceeded: Int?

        init(bounds: [Bound]) {
            precondition(bounds.count <= Self.maxBounds, "RequestShape walks at most \(Self.maxBounds) bounds per message")
            self.bounds = bounds
        }

        /// The counts of the bounds in `active` in one message at `depth`, by bound index.
        /// A bound's count under a singular message is the sum over its occurrences (they
        /// merge); under a repeated one, the largest (each is its own parent). Throws
        /// `.tooManyFields` with the level's name ("" at the top) when one message holds
        /// more than `maxFieldsPerMessage` fields.
        mutating func level(_ bytes: UnsafeRawBufferPointer, depth: Int, active: UInt8, name: String?) throws(CaseWireDecoder.Failure) -> Counts {
            var reader = WireReader(bytes)
            var totals = Counts(repeating: 0)
            var most = Counts(repeating: 0)
            var fields = 0
            while !reader.isAtEnd {
                fields += 1
                if fields > RequestShape.maxFieldsPerMessage { throw .tooManyFields(name ?? "") }
                let (field, wireType) = try reader.tag()
                var matched: UInt8 = 0
                for b in Self.members(active) where bounds[b].path[depth].number == field { matched |= 1 << b }
                guard matched != 0 else {
                    try reader.skip(field: field, wireType: wireType)
                    continue
                }
                var content: UnsafeRawBufferPointer?
                if wireType == 2 { content = try reader.lengthDelimited() } else { try reader.skip(field: field, wireType: wireType) }
                var descend: UInt8 = 0
                for b in Self.members(matched) {
                    if bounds[b].path.count == depth + 1 {
                        if bounds[b].scalar, let packed = content {
                            // Packed: one element per varint, each ending in a byte below 0x80.
                            for byte in packed where byte < 0x80 { totals[b] += 1 }
                        } else {
                            totals[b] += 1
                        }
                        if totals[b] > bounds[b].max { exceeded = b; throw .malformed("over a bound") }
                    } else if content != nil {
                        descend |= 1 << b
                    }
                }
                guard let nested = content, descend != 0 else { continue }
                let first = descend.trailingZeroBitCount
                let inner = try level(nested, depth: depth + 1, active: descend, name: bounds[first].levels[depth])
                for b in Self.members(descend) {
                    if bounds[b].path[depth].repeated { most[b] = max(most[b], inner[b]) } else { totals[b] += inner[b] }
                    if max(totals[b], most[b]) > bounds[b].max { exceeded = b; throw .malformed("over a bound") }
                }
            }
            for b in 0..<Self.maxBounds { totals[b] = max(totals[b], most[b]) }
            return totals
        }

        /// The bound indices in `mask`, lowest first.
        static func members(_ mask: UInt8) -> some Sequence<Int> {
            sequence(state: mask) { rest -> Int? in
                guard rest != 0 else { return nil }
                let b = rest.trailingZeroBitCount
                rest &= rest - 1
                return b
            }
        }
    }
}
