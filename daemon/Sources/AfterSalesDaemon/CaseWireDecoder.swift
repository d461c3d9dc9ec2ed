// The reverse of CaseWireEncoder, for start-up: a snapshot holds every case, and decoding
// each through the generated `Aftersales_V1_Case` and then converting it (class-backed
// storage, a generic visitor per field, a metadata lookup per enum) took ~6 µs a case,
// most of a restart. This reads protobuf bytes straight into the engine's `Case`.
//
// It reads as SwiftProtobuf does: fields in any order, unknown fields skipped (and a known
// field with an unexpected wire type treated as unknown), repeated enums packed or not, a
// message field seen twice merged, the last scalar winning. It refuses what SwiftProtobuf
// refuses (truncation, overlong varints, invalid UTF-8, field number 0, bad wire types)
// and what `Case(stored:)` refuses (an unknown value in a required enum, an id the store
// did not make). `CaseWireDecoderTests` holds it to both on valid and on damaged bytes.
import AfterSalesProto
import CaseEngine
import SwiftProtobuf

enum CaseWireDecoder {
    /// Why bytes are not a case.
    enum Failure: Error, CustomStringConvertible {
        /// Not valid protobuf for the message.
        case malformed(String)
        /// Valid protobuf, but not a case this build can hold.
        case invalid(StoredCaseError)
        /// More fields in one message than a request may carry (`RequestShape`).
        case tooManyFields(String)

        var description: String {
            switch self {
            case .malformed(let why): return "malformed protobuf: \(why)"
            case .invalid(let error): return error.description
            case .tooManyFields(let what): return "too many fields in \(what)"
            }
        }
    }

    /// Decodes one `aftersales.v1.Case` held in an array.
    static func decodeCase(_ bytes: [UInt8]) throws(Failure) -> Case {
        let result = bytes.withUnsafeBytes { raw in Result { () throws(Failure) in try decodeCase(raw) } }
        return try result.get()
    }

    /// Decodes one `aftersales.v1.Case`.
    static func decodeCase(_ bytes: UnsafeRawBufferPointer) throws(Failure) -> Case {
        var reader = WireReader(bytes)
        var fields = CaseFields()
        try fields.merge(&reader)
        return try fields.build()
    }
}

extension CaseWireDecoder {
    /// What one snapshot record holds.
    enum SnapshotItem {
        case storedCase(Case)
        case answer(Aftersales_Storage_V1_IdempotentAnswer)
        case event(Aftersales_Storage_V1_KeptEvent)
    }

    /// Decodes one `aftersales.storage.v1.SnapshotItem` (a oneof: the last member given
    /// wins, as in SwiftProtobuf); nil if it holds no member.
    static func decodeSnapshotItem(_ bytes: UnsafeRawBufferPointer) throws(Failure) -> SnapshotItem? {
        var reader = WireReader(bytes)
        var item: SnapshotItem?
        while !reader.isAtEnd {
            let (field, wt) = try reader.tag()
            switch field {
            case 1:
                guard try reader.accepts(field, wt, 2) else { continue }
                item = .storedCase(try decodeCase(try reader.lengthDelimited()))
            case 2:
                guard try reader.accepts(field, wt, 2) else { continue }
                item = .answer(try small(Aftersales_Storage_V1_IdempotentAnswer.self, try reader.lengthDelimited(), "idempotent answer"))
            case 3:
                guard try reader.accepts(field, wt, 2) else { continue }
                item = .event(try small(Aftersales_Storage_V1_KeptEvent.self, try reader.lengthDelimited(), "kept announcement"))
            default: try reader.skip(field: field, wireType: wt)
            }
        }
        return item
    }
}

extension CaseWireDecoder {
    /// A small record decoded through SwiftProtobuf (only cases are worth a direct decoder).
    static func small<M: SwiftProtobuf.Message>(_ type: M.Type, _ body: UnsafeRawBufferPointer, _ what: String) throws(Failure) -> M {
        do {
            var message = M()
            try message.merge(serializedBytes: RawSpan(_unsafeBytes: body))
            return message
        } catch {
            throw .malformed("\(what): \(error)")
        }
    }

    /// Decodes one `aftersales.storage.v1.JournalEntry`: its case directly, the rest
    /// (time, events, counter, answer: small) through SwiftProtobuf.
    static func decodeJournalEntry(_ bytes: UnsafeRawBufferPointer) throws(Failure) -> (storedCase: Case, entry: Aftersales_Storage_V1_JournalEntry) {
        var reader = WireReader(bytes)
        // Occurrences of a message field merge, which is what decoding their concatenation does.
        var caseBytes: [UInt8] = []
        var otherFields: [UInt8] = []
        while !reader.isAtEnd {
            let start = reader.position
            let (field, wt) = try reader.tag()
            if field == 2 && wt == 2 {
                caseBytes.append(contentsOf: try reader.lengthDelimited())
            } else {
                try reader.skip(field: field, wireType: wt)
                otherFields.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[start..<reader.position]))
            }
        }
        let entry: Aftersales_Storage_V1_JournalEntry
        do {
            entry = try Aftersales_Storage_V1_JournalEntry(serializedBytes: otherFields)
        } catch {
            throw .malformed("\(error)")
        }
        return (try decodeCase(caseBytes), entry)
    }
}

// MARK: - Reading the wire

/// A cursor over protobuf bytes (the case decoder's, and `RequestShape`'s).
struct WireReader {
    private let bytes: UnsafeRawBufferPointer
    private(set) var position = 0

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    var isAtEnd: Bool { position >= bytes.count }

    mutating func varint() throws(CaseWireDecoder.Failure) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard position < bytes.count else { throw .malformed("truncated varint") }
            guard shift <= 63 else { throw .malformed("varint longer than ten bytes") }
            let byte = bytes[position]
            position += 1
            result |= UInt64(byte & 0x7F) &<< shift
            if byte < 0x80 { return result }
            shift += 7
        }
    }

    /// The next field's number and wire type.
    mutating func tag() throws(CaseWireDecoder.Failure) -> (field: UInt64, wireType: UInt64) {
        let key = try varint()
        let field = key >> 3
        guard field > 0, key < UInt64(UInt32.max), key & 7 <= 5 else { throw .malformed("tag \(key)") }
        return (field, key & 7)
    }

    mutating func lengthDelimited() throws(CaseWireDecoder.Failure) -> UnsafeRawBufferPointer {
        let length = try varint()
        guard length <= UInt64(bytes.count - position) else { throw .malformed("length \(length) runs past the end") }
        let start = position
        position += Int(length)
        return UnsafeRawBufferPointer(rebasing: bytes[start..<position])
    }

    /// Skips a field this reader does not know (or a group, to its end).
    mutating func skip(field: UInt64, wireType: UInt64) throws(CaseWireDecoder.Failure) {
        switch wireType {
        case 0: _ = try varint()
        case 1: try advance(8)
        case 2: _ = try lengthDelimited()
        case 5: try advance(4)
        case 3:
            while true {
                let (inner, innerType) = try tag()
                if innerType == 4 {
                    guard inner == field else { throw .malformed("group \(field) closed as \(inner)") }
                    return
                }
                try skip(field: inner, wireType: innerType)
            }
        default: throw .malformed("wire type \(wireType) for field \(field)")
        }
    }

    private mutating func advance(_ count: Int) throws(CaseWireDecoder.Failure) {
        guard count <= bytes.count - position else { throw .malformed("truncated fixed-width field") }
        position += count
    }
}

/// Typed reads of one field's value; the caller has checked the wire type (`accepts`).
private extension WireReader {
    /// Whether field `field` arrived with the wire type it is declared with (`expected`;
    /// `packable` for a repeated enum, which may come packed or not). If not, it is
    /// skipped as an unknown field, as SwiftProtobuf does, and the answer is false.
    mutating func accepts(_ field: UInt64, _ wireType: UInt64, _ expected: UInt64, packable: Bool = false) throws(CaseWireDecoder.Failure) -> Bool {
        if wireType == expected || (packable && wireType == 0) { return true }
        try skip(field: field, wireType: wireType)
        return false
    }

    mutating func int64() throws(CaseWireDecoder.Failure) -> Int64 { Int64(bitPattern: try varint()) }

    mutating func uint32() throws(CaseWireDecoder.Failure) -> UInt32 { UInt32(truncatingIfNeeded: try varint()) }

    mutating func string() throws(CaseWireDecoder.Failure) -> String {
        let utf8 = try lengthDelimited().assumingMemoryBound(to: UInt8.self)
        // `String(decoding:)` is the specialised fast path, but it repairs invalid UTF-8
        // (`String(validating:)` is generic and unspecialised here: a metadata lookup per
        // string). Valid input comes back byte for byte; repaired input does not.
        let text = String(decoding: utf8, as: UTF8.self)
        guard text.utf8.elementsEqual(utf8) else { throw .malformed("invalid UTF-8 in a string") }
        return text
    }

    /// A proto3 enum's number (int32 on the wire).
    mutating func enumNumber() throws(CaseWireDecoder.Failure) -> Int { Int(Int32(truncatingIfNeeded: try varint())) }

    /// Appends a repeated enum's numbers, packed (wire type 2) or one per field.
    mutating func enumNumbers(_ wireType: UInt64, into numbers: inout [Int]) throws(CaseWireDecoder.Failure) {
        guard wireType == 2 else {
            numbers.append(try enumNumber())
            return
        }
        var packed = WireReader(try lengthDelimited())
        while !packed.isAtEnd { numbers.append(try packed.enumNumber()) }
    }

    /// A nested message's bytes.
    mutating func message() throws(CaseWireDecoder.Failure) -> WireReader { WireReader(try lengthDelimited()) }
}

/// An engine enum from its proto number.
private func engine<E: CaseIterable>(_ number: Int) -> E? where E.AllCases == [E] { EnumMapping.engine(number: number) }

// MARK: - Messages, field by field (numbers: CaseWireFields.generated.swift, from case.proto)

private struct CaseFields {
    var caseID = "", orderID = "", orderLineID = "", consumerID = "", merchantID = "", category = "", reason = ""
    var type = 0, delivery = 0, returnShippingPayer = 0, status = 0, closeReason = 0, refundReason = 0
    var paidAmount: Int64 = 0, refundAmount: Int64 = 0, pausedReviewRemaining: Int64 = 0
    var createdAt: Int64 = 0, updatedAt: Int64 = 0
    var version: UInt64 = 0
    var signals = SignalsFields()
    var proposal: ProposalFields?
    var merchantOffer: OfferFields?
    var deadline: DeadlineFields?
    var returnShipment: ShipmentFields?
    var history: [HistoryFields] = []

    mutating func merge(_ r: inout WireReader) throws(CaseWireDecoder.Failure) {
        while !r.isAtEnd {
            let (field, wt) = try r.tag()
            switch CaseField(rawValue: field) {
            case .caseID?: if try r.accepts(field, wt, 2) { caseID = try r.string() }
            case .orderID?: if try r.accepts(field, wt, 2) { orderID = try r.string() }
            case .orderLineID?: if try r.accepts(field, wt, 2) { orderLineID = try r.string() }
            case .consumerID?: if try r.accepts(field, wt, 2) { consumerID = try r.string() }
            case .merchantID?: if try r.accepts(field, wt, 2) { merchantID = try r.string() }
            case .category?: if try r.accepts(field, wt, 2) { category = try r.string() }
            case .reason?: if try r.accepts(field, wt, 2) { reason = try r.string() }
            case .type?: if try r.accepts(field, wt, 0) { type = try r.enumNumber() }
            case .delivery?: if try r.accepts(field, wt, 0) { delivery = try r.enumNumber() }
            case .paidAmount?: if try r.accepts(field, wt, 0) { paidAmount = try r.int64() }
            case .refundAmount?: if try r.accepts(field, wt, 0) { refundAmount = try r.int64() }
            case .returnShippingPayer?: if try r.accepts(field, wt, 0) { returnShippingPayer = try r.enumNumber() }
            case .status?: if try r.accepts(field, wt, 0) { status = try r.enumNumber() }
            case .signals?: if try r.accepts(field, wt, 2) { var m = try r.message(); try signals.merge(&m) }
            case .proposal?:
                guard try r.accepts(field, wt, 2) else { continue }
                var m = try r.message(), p = proposal ?? ProposalFields()
                try p.merge(&m)
                proposal = p
            case .merchantOffer?:
                guard try r.accepts(field, wt, 2) else { continue }
                var m = try r.message(), o = merchantOffer ?? OfferFields()
                try o.merge(&m)
                merchantOffer = o
            case .deadline?:
                guard try r.accepts(field, wt, 2) else { continue }
                var m = try r.message(), d = deadline ?? DeadlineFields()
                try d.merge(&m)
                deadline = d
            case .pausedReviewRemainingMs?: if try r.accepts(field, wt, 0) { pausedReviewRemaining = try r.int64() }
            case .returnShipment?:
                guard try r.accepts(field, wt, 2) else { continue }
                var m = try r.message(), s = returnShipment ?? ShipmentFields()
                try s.merge(&m)
                returnShipment = s
            case .closeReason?: if try r.accepts(field, wt, 0) { closeReason = try r.enumNumber() }
            case .refundReason?: if try r.accepts(field, wt, 0) { refundReason = try r.enumNumber() }
            case .createdAtMs?: if try r.accepts(field, wt, 0) { createdAt = try r.int64() }
            case .updatedAtMs?: if try r.accepts(field, wt, 0) { updatedAt = try r.int64() }
            case .version?: if try r.accepts(field, wt, 0) { version = try r.varint() }
            case .history?:
                guard try r.accepts(field, wt, 2) else { continue }
                var m = try r.message(), h = HistoryFields()
                try h.merge(&m)
                history.append(h)
            default: try r.skip(field: field, wireType: wt)
            }
        }
    }

    func build() throws(CaseWireDecoder.Failure) -> Case {
        func required<E: CaseIterable>(_ number: Int, _ field: String) throws(CaseWireDecoder.Failure) -> E where E.AllCases == [E] {
            guard let value: E = engine(number) else { throw .invalid(StoredCaseError(caseID: caseID, field: field)) }
            return value
        }
        guard CaseStore.caseNumber(of: caseID) != nil else { throw .invalid(StoredCaseError(caseID: caseID, field: "case_id")) }
        return Case(
            caseID: caseID, orderID: orderID, orderLineID: orderLineID, consumerID: consumerID, merchantID: merchantID,
            category: category, reason: reason, type: try required(type, "type"), delivery: try required(delivery, "delivery"),
            paidAmount: paidAmount, refundAmount: refundAmount, returnShippingPayer: engine(returnShippingPayer),
            status: try required(status, "status"), signals: signals.build(),
            proposal: try proposal.map { p throws(CaseWireDecoder.Failure) in
                Proposal(issuedAt: p.issuedAt, expiresAt: p.expiresAt, state: try required(p.state, "proposal.state"),
                         issueKind: try required(p.issueKind, "proposal.issue_kind"), reasons: p.reasons, score: p.score,
                         decidedAt: p.decidedAt == 0 ? nil : p.decidedAt)
            },
            merchantOffer: try merchantOffer.map { o throws(CaseWireDecoder.Failure) in
                MerchantOffer(type: try required(o.type, "merchant_offer.type"), refundAmount: o.refundAmount,
                              returnShippingPayer: engine(o.returnShippingPayer), note: o.note, offeredAt: o.offeredAt,
                              expiresAt: o.expiresAt, state: try required(o.state, "merchant_offer.state"))
            },
            deadline: try deadline.map { d throws(CaseWireDecoder.Failure) in
                Deadline(kind: try required(d.kind, "deadline.kind"), dueAt: d.dueAt)
            },
            pausedReviewRemaining: pausedReviewRemaining == 0 ? nil : pausedReviewRemaining,
            returnShipment: returnShipment.map { ReturnShipment(carrier: $0.carrier, trackingNumber: $0.trackingNumber, shippedAt: $0.shippedAt) },
            closeReason: engine(closeReason), refundReason: engine(refundReason),
            createdAt: createdAt, updatedAt: updatedAt, version: version,
            history: try history.map { h throws(CaseWireDecoder.Failure) in try h.build(caseID: caseID) })
    }
}

private struct SignalsFields {
    var anomalies: [Int] = []
    var evidence: [Evidence] = []
    var violations: UInt32 = 0, complaintRate: UInt32 = 0, refundOnlyCount: UInt32 = 0

    mutating func merge(_ r: inout WireReader) throws(CaseWireDecoder.Failure) {
        while !r.isAtEnd {
            let (field, wt) = try r.tag()
            switch SignalsField(rawValue: field) {
            case .logisticsAnomalies?: if try r.accepts(field, wt, 2, packable: true) { try r.enumNumbers(wt, into: &anomalies) }
            case .evidence?:
                guard try r.accepts(field, wt, 2) else { continue }
                var m = try r.message()
                var e = EvidenceFields()
                try e.merge(&m)
                // Evidence of a kind this build does not know is dropped, as Signals(stored:) does.
                if let kind: EvidenceKind = engine(e.kind) {
                    evidence.append(Evidence(kind: kind, tags: e.tags.compactMap { engine($0) }, description: e.description,
                                             uri: e.uri, addedAt: e.addedAt))
                }
            case .merchantViolations90D?: if try r.accepts(field, wt, 0) { violations = try r.uint32() }
            case .merchantComplaintRateBp?: if try r.accepts(field, wt, 0) { complaintRate = try r.uint32() }
            case .consumerRefundOnlyCount30D?: if try r.accepts(field, wt, 0) { refundOnlyCount = try r.uint32() }
            default: try r.skip(field: field, wireType: wt)
            }
        }
    }

    func build() -> Signals {
        Signals(logisticsAnomalies: anomalies.compactMap { engine($0) }, evidence: evidence, merchantViolations90d: violations,
                merchantComplaintRateBasisPoints: complaintRate, consumerRefundOnlyCount30d: refundOnlyCount)
    }
}

private struct EvidenceFields {
    var kind = 0
    var tags: [Int] = []
    var description = "", uri = ""
    var addedAt: Int64 = 0

    mutating func merge(_ r: inout WireReader) throws(CaseWireDecoder.Failure) {
        while !r.isAtEnd {
            let (field, wt) = try r.tag()
            switch EvidenceField(rawValue: field) {
            case .kind?: if try r.accepts(field, wt, 0) { kind = try r.enumNumber() }
            case .tags?: if try r.accepts(field, wt, 2, packable: true) { try r.enumNumbers(wt, into: &tags) }
            case .description?: if try r.accepts(field, wt, 2) { description = try r.string() }
            case .uri?: if try r.accepts(field, wt, 2) { uri = try r.string() }
            case .addedAtMs?: if try r.accepts(field, wt, 0) { addedAt = try r.int64() }
            default: try r.skip(field: field, wireType: wt)
            }
        }
    }
}

private struct ProposalFields {
    var issuedAt: Int64 = 0, expiresAt: Int64 = 0, decidedAt: Int64 = 0
    var state = 0, issueKind = 0
    var reasons: [String] = []
    var score: Int32 = 0

    mutating func merge(_ r: inout WireReader) throws(CaseWireDecoder.Failure) {
        while !r.isAtEnd {
            let (field, wt) = try r.tag()
            switch ProposalField(rawValue: field) {
            case .issuedAtMs?: if try r.accepts(field, wt, 0) { issuedAt = try r.int64() }
            case .expiresAtMs?: if try r.accepts(field, wt, 0) { expiresAt = try r.int64() }
            case .state?: if try r.accepts(field, wt, 0) { state = try r.enumNumber() }
            case .issueKind?: if try r.accepts(field, wt, 0) { issueKind = try r.enumNumber() }
            case .reasons?: if try r.accepts(field, wt, 2) { reasons.append(try r.string()) }
            case .score?: if try r.accepts(field, wt, 0) { score = Int32(truncatingIfNeeded: try r.int64()) }
            case .decidedAtMs?: if try r.accepts(field, wt, 0) { decidedAt = try r.int64() }
            default: try r.skip(field: field, wireType: wt)
            }
        }
    }
}

private struct OfferFields {
    var type = 0, returnShippingPayer = 0, state = 0
    var refundAmount: Int64 = 0, offeredAt: Int64 = 0, expiresAt: Int64 = 0
    var note = ""

    mutating func merge(_ r: inout WireReader) throws(CaseWireDecoder.Failure) {
        while !r.isAtEnd {
            let (field, wt) = try r.tag()
            switch MerchantOfferField(rawValue: field) {
            case .type?: if try r.accepts(field, wt, 0) { type = try r.enumNumber() }
            case .refundAmount?: if try r.accepts(field, wt, 0) { refundAmount = try r.int64() }
            case .returnShippingPayer?: if try r.accepts(field, wt, 0) { returnShippingPayer = try r.enumNumber() }
            case .note?: if try r.accepts(field, wt, 2) { note = try r.string() }
            case .offeredAtMs?: if try r.accepts(field, wt, 0) { offeredAt = try r.int64() }
            case .expiresAtMs?: if try r.accepts(field, wt, 0) { expiresAt = try r.int64() }
            case .state?: if try r.accepts(field, wt, 0) { state = try r.enumNumber() }
            default: try r.skip(field: field, wireType: wt)
            }
        }
    }
}

private struct DeadlineFields {
    var kind = 0
    var dueAt: Int64 = 0

    mutating func merge(_ r: inout WireReader) throws(CaseWireDecoder.Failure) {
        while !r.isAtEnd {
            let (field, wt) = try r.tag()
            switch DeadlineField(rawValue: field) {
            case .kind?: if try r.accepts(field, wt, 0) { kind = try r.enumNumber() }
            case .dueAtMs?: if try r.accepts(field, wt, 0) { dueAt = try r.int64() }
            default: try r.skip(field: field, wireType: wt)
            }
        }
    }
}

private struct ShipmentFields {
    var carrier = "", trackingNumber = ""
    var shippedAt: Int64 = 0

    mutating func merge(_ r: inout WireReader) throws(CaseWireDecoder.Failure) {
        while !r.isAtEnd {
            let (field, wt) = try r.tag()
            switch ReturnShipmentField(rawValue: field) {
            case .carrier?: if try r.accepts(field, wt, 2) { carrier = try r.string() }
            case .trackingNumber?: if try r.accepts(field, wt, 2) { trackingNumber = try r.string() }
            case .shippedAtMs?: if try r.accepts(field, wt, 0) { shippedAt = try r.int64() }
            default: try r.skip(field: field, wireType: wt)
            }
        }
    }
}

private struct HistoryFields {
    var at: Int64 = 0
    var actor = 0, fromStatus = 0, toStatus = 0
    var actorID = "", action = "", note = "", client = ""

    mutating func merge(_ r: inout WireReader) throws(CaseWireDecoder.Failure) {
        while !r.isAtEnd {
            let (field, wt) = try r.tag()
            switch HistoryEntryField(rawValue: field) {
            case .client?: if try r.accepts(field, wt, 2) { client = try r.string() }
            case .atMs?: if try r.accepts(field, wt, 0) { at = try r.int64() }
            case .actor?: if try r.accepts(field, wt, 0) { actor = try r.enumNumber() }
            case .actorID?: if try r.accepts(field, wt, 2) { actorID = try r.string() }
            case .action?: if try r.accepts(field, wt, 2) { action = try r.string() }
            case .fromStatus?: if try r.accepts(field, wt, 0) { fromStatus = try r.enumNumber() }
            case .toStatus?: if try r.accepts(field, wt, 0) { toStatus = try r.enumNumber() }
            case .note?: if try r.accepts(field, wt, 2) { note = try r.string() }
            default: try r.skip(field: field, wireType: wt)
            }
        }
    }

    func build(caseID: String) throws(CaseWireDecoder.Failure) -> HistoryEntry {
        guard let actor: Party = engine(actor) else { throw .invalid(StoredCaseError(caseID: caseID, field: "history.actor")) }
        guard let toStatus: CaseStatus = engine(toStatus) else {
            throw .invalid(StoredCaseError(caseID: caseID, field: "history.to_status"))
        }
        return HistoryEntry(at: at, actor: actor, actorID: actorID, client: client, action: action, fromStatus: engine(fromStatus),
                            toStatus: toStatus, note: note)
    }
}
