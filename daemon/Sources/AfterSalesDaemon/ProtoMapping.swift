// Conversions between the wire's generated protobuf types and CaseEngine's Swift-native
// values. The daemon is the only place that knows both; the engine never sees protobuf.
import AfterSalesProto
import CaseEngine
import SwiftProtobuf

/// Maps an engine enum to its proto twin and back. The proto numbers each enum's values
/// 1, 2, 3… in the order the engine declares its cases (0 is *_UNSPECIFIED, which the
/// engine spells `nil`); `ProtoMappingTests` proves the two orders agree case for case.
enum EnumMapping {
    static func proto<Engine: CaseIterable & Equatable, Proto: SwiftProtobuf.Enum>(_ value: Engine?, as _: Proto.Type = Proto.self) -> Proto
    where Engine.AllCases == [Engine], Proto.RawValue == Int {
        guard let value, let index = Engine.allCases.firstIndex(of: value) else { return Proto(rawValue: 0)! }
        return Proto(rawValue: index + 1)!
    }

    /// nil for *_UNSPECIFIED and for numbers this build does not know.
    static func engine<Engine: CaseIterable, Proto: SwiftProtobuf.Enum>(_ value: Proto, as _: Engine.Type = Engine.self) -> Engine?
    where Engine.AllCases == [Engine], Proto.RawValue == Int {
        engine(number: value.rawValue)
    }

    /// The engine value of a proto enum number: declaration order + 1 (0 = UNSPECIFIED);
    /// nil for 0 and for numbers this build does not know.
    static func engine<Engine: CaseIterable>(number: Int, as _: Engine.Type = Engine.self) -> Engine? where Engine.AllCases == [Engine] {
        let index = number - 1
        return Engine.allCases.indices.contains(index) ? Engine.allCases[index] : nil
    }
}

/// The engine value of a proto enum number as the direct codec reads it (nil for 0 and
/// for numbers this build does not know): `EnumMapping.engine(number:)`, shorter.
func engine<E: CaseIterable>(_ number: Int, as _: E.Type = E.self) -> E? where E.AllCases == [E] {
    EnumMapping.engine(number: number)
}

extension Aftersales_V1_Case {
    /// The wire form of an engine case; `includeHistory: false` keeps announcements and list pages small.
    init(_ c: Case, includeHistory: Bool = true) {
        self.init()
        caseID = c.caseID
        orderID = c.orderID
        orderLineID = c.orderLineID
        consumerID = c.consumerID
        merchantID = c.merchantID
        category = c.category
        reason = c.reason
        type = EnumMapping.proto(c.type)
        delivery = EnumMapping.proto(c.delivery)
        paidAmount = c.paidAmount
        refundAmount = c.refundAmount
        returnShippingPayer = EnumMapping.proto(c.returnShippingPayer)
        status = EnumMapping.proto(c.status)
        signals = .init(c.signals)
        if let p = c.proposal { proposal = .init(p) }
        if let o = c.merchantOffer { merchantOffer = .init(o) }
        if let d = c.deadline {
            deadline = .with { $0.kind = EnumMapping.proto(d.kind); $0.dueAtMs = d.dueAt }
        }
        pausedReviewRemainingMs = c.pausedReviewRemaining ?? 0
        if let r = c.returnShipment {
            returnShipment = .with { $0.carrier = r.carrier; $0.trackingNumber = r.trackingNumber; $0.shippedAtMs = r.shippedAt }
        }
        closeReason = EnumMapping.proto(c.closeReason)
        refundReason = EnumMapping.proto(c.refundReason)
        createdAtMs = c.createdAt
        updatedAtMs = c.updatedAt
        version = c.version
        if includeHistory {
            history = c.history.map(Aftersales_V1_HistoryEntry.init)
        }
    }
}

extension Case {
    /// The engine form of a stored case; throws when the record is not a case we could have
    /// written. Start-up reads stored cases with `CaseWireDecoder`, which is tested to
    /// agree with this readable mapping on every input.
    init(stored p: Aftersales_V1_Case) throws(StoredCaseError) {
        func required<E: CaseIterable, P: SwiftProtobuf.Enum>(_ value: P, _ field: String) throws(StoredCaseError) -> E
        where E.AllCases == [E], P.RawValue == Int {
            guard let mapped: E = EnumMapping.engine(value) else { throw StoredCaseError(caseID: p.caseID, field: field) }
            return mapped
        }
        // The store indexes cases by the number in their id; one it did not make is damage.
        guard CaseStore.caseNumber(of: p.caseID) != nil else { throw StoredCaseError(caseID: p.caseID, field: "case_id") }
        self.init(
            caseID: p.caseID, orderID: p.orderID, orderLineID: p.orderLineID, consumerID: p.consumerID,
            merchantID: p.merchantID, category: p.category, reason: p.reason,
            type: try required(p.type, "type"), delivery: try required(p.delivery, "delivery"),
            paidAmount: p.paidAmount, refundAmount: p.refundAmount,
            returnShippingPayer: EnumMapping.engine(p.returnShippingPayer),
            status: try required(p.status, "status"),
            signals: Signals(stored: p.signals),
            proposal: p.hasProposal ? try Proposal(stored: p.proposal, caseID: p.caseID) : nil,
            merchantOffer: p.hasMerchantOffer ? try MerchantOffer(stored: p.merchantOffer, caseID: p.caseID) : nil,
            deadline: p.hasDeadline ? Deadline(kind: try required(p.deadline.kind, "deadline.kind"), dueAt: p.deadline.dueAtMs) : nil,
            pausedReviewRemaining: p.pausedReviewRemainingMs == 0 ? nil : p.pausedReviewRemainingMs,
            returnShipment: p.hasReturnShipment
                ? ReturnShipment(carrier: p.returnShipment.carrier, trackingNumber: p.returnShipment.trackingNumber, shippedAt: p.returnShipment.shippedAtMs)
                : nil,
            closeReason: EnumMapping.engine(p.closeReason),
            refundReason: EnumMapping.engine(p.refundReason),
            createdAt: p.createdAtMs, updatedAt: p.updatedAtMs, version: p.version,
            history: try p.history.map { h throws(StoredCaseError) in
                HistoryEntry(at: h.atMs, actor: try required(h.actor, "history.actor"), actorID: h.actorID, client: h.client, action: h.action,
                             fromStatus: EnumMapping.engine(h.fromStatus), toStatus: try required(h.toStatus, "history.to_status"),
                             note: h.note)
            }
        )
    }
}

/// A stored case that names an enum value this build does not know: written by a newer daemon, or damaged.
struct StoredCaseError: Error, CustomStringConvertible, Sendable {
    let caseID: String
    let field: String
    var description: String { "stored case \(caseID) has no valid \(field)" }
}

extension Aftersales_V1_Signals {
    init(_ s: Signals) {
        self.init()
        logisticsAnomalies = s.logisticsAnomalies.map { EnumMapping.proto($0) }
        evidence = s.evidence.map(Aftersales_V1_Evidence.init)
        merchantViolations90D = s.merchantViolations90d
        merchantComplaintRateBp = s.merchantComplaintRateBasisPoints
        consumerRefundOnlyCount30D = s.consumerRefundOnlyCount30d
    }
}

extension Signals {
    /// Signals as a caller or a stored record gives them; unknown enum values are dropped.
    init(stored p: Aftersales_V1_Signals) {
        self.init(
            logisticsAnomalies: p.logisticsAnomalies.compactMap { EnumMapping.engine($0) },
            evidence: p.evidence.compactMap { e in
                guard let kind: EvidenceKind = EnumMapping.engine(e.kind) else { return nil }
                return Evidence(kind: kind, tags: e.tags.compactMap { EnumMapping.engine($0) },
                                description: e.description_p, uri: e.uri, addedAt: e.addedAtMs)
            },
            merchantViolations90d: p.merchantViolations90D,
            merchantComplaintRateBasisPoints: p.merchantComplaintRateBp,
            consumerRefundOnlyCount30d: p.consumerRefundOnlyCount30D
        )
    }
}

extension Aftersales_V1_Evidence {
    init(_ e: Evidence) {
        self.init()
        kind = EnumMapping.proto(e.kind)
        tags = e.tags.map { EnumMapping.proto($0) }
        description_p = e.description
        uri = e.uri
        addedAtMs = e.addedAt
    }
}

extension Aftersales_V1_Proposal {
    init(_ p: Proposal) {
        self.init()
        issuedAtMs = p.issuedAt
        expiresAtMs = p.expiresAt
        state = EnumMapping.proto(p.state)
        issueKind = EnumMapping.proto(p.issueKind)
        reasons = p.reasons
        score = p.score
        decidedAtMs = p.decidedAt ?? 0
    }
}

extension Proposal {
    init(stored p: Aftersales_V1_Proposal, caseID: String) throws(StoredCaseError) {
        guard let state: ProposalState = EnumMapping.engine(p.state) else { throw StoredCaseError(caseID: caseID, field: "proposal.state") }
        guard let kind: IssueKind = EnumMapping.engine(p.issueKind) else { throw StoredCaseError(caseID: caseID, field: "proposal.issue_kind") }
        self.init(issuedAt: p.issuedAtMs, expiresAt: p.expiresAtMs, state: state, issueKind: kind, reasons: p.reasons,
                  score: p.score, decidedAt: p.decidedAtMs == 0 ? nil : p.decidedAtMs)
    }
}

extension Aftersales_V1_MerchantOffer {
    init(_ o: MerchantOffer) {
        self.init()
        type = EnumMapping.proto(o.type)
        refundAmount = o.refundAmount
        returnShippingPayer = EnumMapping.proto(o.returnShippingPayer)
        note = o.note
        offeredAtMs = o.offeredAt
        expiresAtMs = o.expiresAt
        state = EnumMapping.proto(o.state)
    }
}

extension MerchantOffer {
    init(stored o: Aftersales_V1_MerchantOffer, caseID: String) throws(StoredCaseError) {
        guard let type: CaseType = EnumMapping.engine(o.type) else { throw StoredCaseError(caseID: caseID, field: "merchant_offer.type") }
        guard let state: OfferState = EnumMapping.engine(o.state) else { throw StoredCaseError(caseID: caseID, field: "merchant_offer.state") }
        self.init(type: type, refundAmount: o.refundAmount, returnShippingPayer: EnumMapping.engine(o.returnShippingPayer),
                  note: o.note, offeredAt: o.offeredAtMs, expiresAt: o.expiresAtMs, state: state)
    }
}

extension Aftersales_V1_Judgement {
    init(_ j: Judgement) {
        self.init()
        eligible = j.eligible
        intervene = j.intervene
        issueKind = EnumMapping.proto(j.issueKind)
        score = j.score
        threshold = j.threshold
        reasons = j.reasons
    }
}
