// A direct protobuf encoder for the engine's `Case`, the daemon's hottest path: every
// GetCase, every change and every snapshot record encodes a case. Going through the
// generated `Aftersales_V1_Case` costs a conversion into class-backed storage, a size pass
// and a write pass per nesting level (≈ 40 % of the daemon's instructions in callgrind);
// this writes the bytes in one pass with no intermediate objects, through `ProtoWriter`. Field numbers come from
// CaseWireFields.generated.swift (generated from case.proto); `WireEncodingTests` decodes its output with
// SwiftProtobuf and compares it with the generated mapping, so a field added to the proto
// and not here fails the tests.
import AfterSalesProto
import CaseEngine

/// The engine's `Case` as protobuf, written by a `ProtoWriter`.
extension ProtoWriter {
    /// Case fields 1–24: everything but the history.
    mutating func caseSummary(_ c: Case) {
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
        varintField(CaseField.version.rawValue, c.version)
    }

    /// Case field 25, one entry at a time (a repeated field may be written anywhere).
    mutating func caseHistory(_ history: [HistoryEntry]) {
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

    /// The whole case: summary, then history.
    mutating func fullCase(_ c: Case) {
        caseSummary(c)
        caseHistory(c.history)
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
        varintField(SignalsField.merchantViolations90D.rawValue, UInt64(s.merchantViolations90d))
        varintField(SignalsField.merchantComplaintRateBp.rawValue, UInt64(s.merchantComplaintRateBasisPoints))
        varintField(SignalsField.consumerRefundOnlyCount30D.rawValue, UInt64(s.consumerRefundOnlyCount30d))
    }

    /// A `Judgement`, as the mutating answers that run it (CreateCase, AddEvidence,
    /// UpdateLogistics) carry it and idempotent answers keep it.
    mutating func judgement(_ j: Judgement) {
        varintField(JudgementField.eligible.rawValue, j.eligible ? 1 : 0)
        varintField(JudgementField.intervene.rawValue, j.intervene ? 1 : 0)
        enumeration(JudgementField.issueKind, j.issueKind)
        int64(JudgementField.score, Int64(j.score))
        int64(JudgementField.threshold, Int64(j.threshold))
        for reason in j.reasons { string(JudgementField.reasons, reason, always: true) }
    }

    // MARK: the generated field enums over the writer's primitives

    @inline(__always)
    private mutating func int64(_ field: some WireField, _ value: Int64) { int64Field(field.rawValue, value) }

    @inline(__always)
    private mutating func string(_ field: some WireField, _ value: String, always: Bool = false) {
        stringField(field.rawValue, value, always: always)
    }

    @inline(__always)
    private mutating func message(_ field: some WireField, _ body: (inout ProtoWriter) -> Void) { messageField(field.rawValue, body) }

    /// An engine enum as its proto number: declaration order + 1 (0 = unset), as EnumMapping.
    @inline(__always)
    private mutating func enumeration<E: CaseIterable & Equatable>(_ field: some WireField, _ value: E?) where E.AllCases == [E] {
        guard let value else { return }
        varintField(field.rawValue, protoNumber(of: value))
    }

    private mutating func packedEnumerations<E: CaseIterable & Equatable>(_ field: some WireField, _ values: [E]) where E.AllCases == [E] {
        guard !values.isEmpty else { return }
        message(field) { e in
            for value in values { e.varint(protoNumber(of: value)) }
        }
    }
}

/// An engine enum's proto number: its declaration index + 1 (the proto's 0 is UNSPECIFIED,
/// which the engine has no case for). A payload-free enum of 2 to 256 cases is stored as
/// its declaration index in one byte (Swift's enum layout), which is read here instead of
/// searching `allCases` — an array the engine module builds anew on each call;
/// `HotPathCodecTests` holds every engine enum to the search.
@inline(__always)
func protoNumber<E: CaseIterable & Equatable>(of value: E) -> UInt64 where E.AllCases == [E] {
    if MemoryLayout<E>.size == 1 {
        return withUnsafeBytes(of: value) { UInt64($0[0]) } + 1
    }
    return UInt64(E.allCases.firstIndex(of: value)! + 1)
}
