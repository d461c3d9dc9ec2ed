// A direct protobuf encoder for the engine's `Case`, the daemon's hottest path: every
// GetCase, every change and every snapshot record encodes a case. Going through the
// generated `Aftersales_V1_Case` costs a conversion into class-backed storage, a size pass
// and a write pass per nesting level (≈ 40 % of the daemon's instructions in callgrind);
// this writes the bytes in one pass with no intermediate objects. Field numbers come from
// CaseWireFields.generated.swift (generated from case.proto); `WireEncodingTests` decodes its output with
// SwiftProtobuf and compares it with the generated mapping, so a field added to the proto
// and not here fails the tests.
import AfterSalesProto
import CaseEngine

struct CaseWireEncoder {
    private(set) var bytes: [UInt8] = []

    init(capacity: Int = 512) {
        bytes.reserveCapacity(capacity)
    }

    /// Case fields 1–24: everything but the history.
    mutating func encodeSummary(_ c: Case) {
        string(CaseField.caseID, c.caseID)
        string(CaseField.orderID, c.orderID)
        string(CaseField.orderLineID, c.orderLineID)
        string(CaseField.consumerID, c.consumerID)
        string(CaseField.merchantID, c.merchantID)
        string(CaseField.category, c.category)
        string(CaseField.reason, c.reason)
        enumeration(CaseField.type, c.type)
        enumeration(CaseField.delivery, c.delivery)
        int64(CaseField.paidAmount, c.paidAmount)
        int64(CaseField.refundAmount, c.refundAmount)
        enumeration(CaseField.returnShippingPayer, c.returnShippingPayer)
        enumeration(CaseField.status, c.status)
        message(CaseField.signals) { $0.signals(c.signals) }
        if let p = c.proposal {
            message(CaseField.proposal) { e in
                e.int64(ProposalField.issuedAtMs, p.issuedAt)
                e.int64(ProposalField.expiresAtMs, p.expiresAt)
                e.enumeration(ProposalField.state, p.state)
                e.enumeration(ProposalField.issueKind, p.issueKind)
                for reason in p.reasons { e.string(ProposalField.reasons, reason, always: true) }
                e.int64(ProposalField.score, Int64(p.score))
                e.int64(ProposalField.decidedAtMs, p.decidedAt ?? 0)
            }
        }
        if let o = c.merchantOffer {
            message(CaseField.merchantOffer) { e in
                e.enumeration(MerchantOfferField.type, o.type)
                e.int64(MerchantOfferField.refundAmount, o.refundAmount)
                e.enumeration(MerchantOfferField.returnShippingPayer, o.returnShippingPayer)
                e.string(MerchantOfferField.note, o.note)
                e.int64(MerchantOfferField.offeredAtMs, o.offeredAt)
                e.int64(MerchantOfferField.expiresAtMs, o.expiresAt)
                e.enumeration(MerchantOfferField.state, o.state)
            }
        }
        if let d = c.deadline {
            message(CaseField.deadline) { e in
                e.enumeration(DeadlineField.kind, d.kind)
                e.int64(DeadlineField.dueAtMs, d.dueAt)
            }
        }
        int64(CaseField.pausedReviewRemainingMs, c.pausedReviewRemaining ?? 0)
        if let r = c.returnShipment {
            message(CaseField.returnShipment) { e in
                e.string(ReturnShipmentField.carrier, r.carrier)
                e.string(ReturnShipmentField.trackingNumber, r.trackingNumber)
                e.int64(ReturnShipmentField.shippedAtMs, r.shippedAt)
            }
        }
        enumeration(CaseField.closeReason, c.closeReason)
        enumeration(CaseField.refundReason, c.refundReason)
        int64(CaseField.createdAtMs, c.createdAt)
        int64(CaseField.updatedAtMs, c.updatedAt)
        varintField(CaseField.version, c.version)
    }

    /// Case field 25, one entry at a time (a repeated field may be written anywhere).
    mutating func encodeHistory(_ history: [HistoryEntry]) {
        for h in history {
            message(CaseField.history) { e in
                e.int64(HistoryEntryField.atMs, h.at)
                e.enumeration(HistoryEntryField.actor, h.actor)
                e.string(HistoryEntryField.actorID, h.actorID)
                e.string(HistoryEntryField.action, h.action)
                e.enumeration(HistoryEntryField.fromStatus, h.fromStatus)
                e.enumeration(HistoryEntryField.toStatus, h.toStatus)
                e.string(HistoryEntryField.note, h.note)
                e.string(HistoryEntryField.client, h.client)
            }
        }
    }

    private mutating func signals(_ s: Signals) {
        packedEnumerations(SignalsField.logisticsAnomalies, s.logisticsAnomalies)
        for item in s.evidence {
            message(SignalsField.evidence) { e in
                e.enumeration(EvidenceField.kind, item.kind)
                e.packedEnumerations(EvidenceField.tags, item.tags)
                e.string(EvidenceField.description, item.description)
                e.string(EvidenceField.uri, item.uri)
                e.int64(EvidenceField.addedAtMs, item.addedAt)
            }
        }
        varintField(SignalsField.merchantViolations90D, UInt64(s.merchantViolations90d))
        varintField(SignalsField.merchantComplaintRateBp, UInt64(s.merchantComplaintRateBasisPoints))
        varintField(SignalsField.consumerRefundOnlyCount30D, UInt64(s.consumerRefundOnlyCount30d))
    }

    // MARK: wire primitives (proto3: zero scalars and empty strings are left out)

    private mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    private mutating func tag(_ field: some WireField, _ wireType: UInt64) { varint(field.rawValue << 3 | wireType) }

    private mutating func varintField(_ field: some WireField, _ value: UInt64) {
        guard value != 0 else { return }
        tag(field, 0)
        varint(value)
    }

    /// int64 and int32 alike: negative values are sign-extended to ten bytes, as protobuf does.
    private mutating func int64(_ field: some WireField, _ value: Int64) {
        varintField(field, UInt64(bitPattern: value))
    }

    private mutating func string(_ field: some WireField, _ value: String, always: Bool = false) {
        guard always || !value.isEmpty else { return }
        tag(field, 2)
        var text = value
        text.withUTF8 { utf8 in
            varint(UInt64(utf8.count))
            bytes.append(contentsOf: utf8)
        }
    }

    /// An engine enum as its proto number: declaration order + 1 (0 = unset), as EnumMapping.
    private mutating func enumeration<E: CaseIterable & Equatable>(_ field: some WireField, _ value: E?) where E.AllCases == [E] {
        guard let value, let index = E.allCases.firstIndex(of: value) else { return }
        varintField(field, UInt64(index + 1))
    }

    private mutating func packedEnumerations<E: CaseIterable & Equatable>(_ field: some WireField, _ values: [E]) where E.AllCases == [E] {
        guard !values.isEmpty else { return }
        message(field) { e in
            for value in values { e.varint(UInt64(E.allCases.firstIndex(of: value)! + 1)) }
        }
    }

    /// A length-delimited field whose content `body` writes in place; the length is
    /// reserved as one byte and widened afterwards in the rare case the body is ≥ 128 bytes.
    private mutating func message(_ field: some WireField, _ body: (inout CaseWireEncoder) -> Void) {
        tag(field, 2)
        let lengthAt = bytes.count
        bytes.append(0)
        body(&self)
        let length = bytes.count - lengthAt - 1
        if length < 0x80 {
            bytes[lengthAt] = UInt8(length)
        } else {
            var prefix: [UInt8] = []
            var v = UInt64(length)
            while v >= 0x80 {
                prefix.append(UInt8(truncatingIfNeeded: v) | 0x80)
                v >>= 7
            }
            prefix.append(UInt8(v))
            bytes.replaceSubrange(lengthAt...lengthAt, with: prefix)
        }
    }
}
