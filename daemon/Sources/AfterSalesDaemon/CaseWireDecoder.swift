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
import AfterSalesRPC
import CaseEngine
import Foundation
import SwiftProtobuf

enum CaseWireDecoder {
    /// Why bytes are not a case (or not a request): the wire reader's failure, shared with
    /// AfterSalesRPC's `WireReader`.
    typealias Failure = WireFailure

    /// Decodes one `aftersales.v1.Case` (an array, `Data`, a buffer).
    static func decodeCase(_ bytes: some ContiguousBytes) throws(Failure) -> Case {
        var texts = RepeatedTexts()
        return try CaseWire(reading: bytes).build(sharing: &texts)
    }

    /// Decodes one `aftersales.v1.Case`, sharing the storage of texts equal to ones in
    /// `texts` (the previous case's), which it then updates. The snapshot's loop: read in
    /// place, without `reading`'s closure (3 % of a restart when it went through it).
    static func decodeCase(_ bytes: UnsafeRawBufferPointer, sharing texts: inout RepeatedTexts) throws(Failure) -> Case {
        var reader = WireReader(bytes)
        return try CaseWire(from: &reader).build(sharing: &texts)
    }

    /// Texts that case after case repeats — a reason picked from a list, the creation
    /// entry's note that repeats the reason — kept once: a decoded case holds the String
    /// of an equal text seen just before instead of a copy of its own (a string is a
    /// value: nothing else differs). With a million cases at start-up that is a hundred
    /// megabytes not allocated, not faulted in and not resident.
    struct RepeatedTexts {
        var reason = ""

        /// `text`, or an equal string already held.
        static func shared(_ text: String, with held: String) -> String {
            // Short strings are held inline: nothing to share.
            text.utf8.count > 15 && text == held ? held : text
        }
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
        var texts = RepeatedTexts()
        return try decodeSnapshotItem(bytes, sharing: &texts)
    }

    /// `decodeSnapshotItem`, a case sharing texts with the previous one (`RepeatedTexts`).
    static func decodeSnapshotItem(_ bytes: UnsafeRawBufferPointer, sharing texts: inout RepeatedTexts) throws(Failure) -> SnapshotItem? {
        var reader = WireReader(bytes)
        var item: SnapshotItem?
        while !reader.isAtEnd {
            let (field, wt) = try reader.tag()
            switch field {
            case 1:
                guard try reader.accepts(field, wt, 2) else { continue }
                item = .storedCase(try decodeCase(try reader.lengthDelimited(), sharing: &texts))
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

extension WireMessage {
    /// The message read from the rest of `reader`, as SwiftProtobuf would merge it.
    @inline(__always)
    init(from reader: inout WireReader) throws(WireFailure) {
        self.init()
        try merge(&reader)
    }

    /// The message read from all of `bytes`.
    @inline(__always)
    init(reading bytes: some ContiguousBytes) throws(WireFailure) {
        self = try WireReader.reading(bytes) { (reader: inout WireReader) throws(WireFailure) in try Self(from: &reader) }
    }
}

// MARK: - From the wire to the engine's types
// The per-message structs and their `merge` loops are generated from case.proto
// (CaseWireFields.generated.swift); here is only what the engine's types need from them.

extension CaseWire {
    func build(sharing texts: inout CaseWireDecoder.RepeatedTexts) throws(CaseWireDecoder.Failure) -> Case {
        func required<E: CaseIterable>(_ number: Int, _ field: String) throws(CaseWireDecoder.Failure) -> E where E.AllCases == [E] {
            guard let value: E = engine(number) else { throw .invalid(StoredCaseError(caseID: caseID, field: field)) }
            return value
        }
        // `CaseStore.caseNumber(of:)`'s answer, read directly from the usual ten digits.
        guard CaseNumbering.single.localNumber(of: caseID) != nil else { throw .invalid(StoredCaseError(caseID: caseID, field: "case_id")) }
        let reason = CaseWireDecoder.RepeatedTexts.shared(self.reason, with: texts.reason)
        texts.reason = reason
        return Case(
            caseID: caseID, orderID: orderID, orderLineID: orderLineID, consumerID: consumerID, merchantID: merchantID,
            category: category, reason: reason, type: try required(type, "type"), delivery: try required(delivery, "delivery"),
            paidAmount: paidAmount, refundAmount: refundAmount, returnShippingPayer: engine(returnShippingPayer),
            status: try required(status, "status"), signals: (signals ?? SignalsWire()).build(),
            proposal: try proposal.map { p throws(CaseWireDecoder.Failure) in
                Proposal(issuedAt: p.issuedAtMs, expiresAt: p.expiresAtMs, state: try required(p.state, "proposal.state"),
                         issueKind: try required(p.issueKind, "proposal.issue_kind"), reasons: p.reasons, score: p.score,
                         decidedAt: p.decidedAtMs == 0 ? nil : p.decidedAtMs)
            },
            merchantOffer: try merchantOffer.map { o throws(CaseWireDecoder.Failure) in
                MerchantOffer(type: try required(o.type, "merchant_offer.type"), refundAmount: o.refundAmount,
                              returnShippingPayer: engine(o.returnShippingPayer), note: o.note, offeredAt: o.offeredAtMs,
                              expiresAt: o.expiresAtMs, state: try required(o.state, "merchant_offer.state"))
            },
            deadline: try deadline.map { d throws(CaseWireDecoder.Failure) in
                Deadline(kind: try required(d.kind, "deadline.kind"), dueAt: d.dueAtMs)
            },
            pausedReviewRemaining: pausedReviewRemainingMs == 0 ? nil : pausedReviewRemainingMs,
            returnShipment: returnShipment.map { ReturnShipment(carrier: $0.carrier, trackingNumber: $0.trackingNumber, shippedAt: $0.shippedAtMs) },
            closeReason: engine(closeReason), refundReason: engine(refundReason),
            createdAt: createdAtMs, updatedAt: updatedAtMs, version: version,
            history: try history.map { h throws(CaseWireDecoder.Failure) in try h.build(caseID: caseID, reason: reason) })
    }
}

extension SignalsWire {
    func build() -> Signals {
        // Evidence of a kind this build does not know is dropped, as Signals(stored:) does.
        let known = evidence.compactMap { e -> Evidence? in
            guard let kind: EvidenceKind = engine(e.kind) else { return nil }
            return Evidence(kind: kind, tags: e.tags.compactMap { engine($0) }, description: e.description, uri: e.uri, addedAt: e.addedAtMs)
        }
        return Signals(logisticsAnomalies: logisticsAnomalies.compactMap { engine($0) }, evidence: known,
                       merchantViolations90d: merchantViolations90D, merchantComplaintRateBasisPoints: merchantComplaintRateBp,
                       consumerRefundOnlyCount30d: consumerRefundOnlyCount30D)
    }
}

extension HistoryEntryWire {
    /// The entry; a note equal to the case's `reason` shares its storage.
    func build(caseID: String, reason: String) throws(CaseWireDecoder.Failure) -> HistoryEntry {
        guard let actor: Party = engine(actor) else { throw .invalid(StoredCaseError(caseID: caseID, field: "history.actor")) }
        guard let toStatus: CaseStatus = engine(toStatus) else {
            throw .invalid(StoredCaseError(caseID: caseID, field: "history.to_status"))
        }
        return HistoryEntry(at: atMs, actor: actor, actorID: actorID, client: client, action: action, fromStatus: engine(fromStatus),
                            toStatus: toStatus, note: CaseWireDecoder.RepeatedTexts.shared(note, with: reason))
    }
}
