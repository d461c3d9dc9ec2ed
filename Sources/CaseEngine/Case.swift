// The case (售后单) of SPEC.md §2 and the values it holds. Plain data: every rule that
// changes a case lives in Reducer/CaseMachine.swift.

/// One piece of consumer evidence (举证).
public struct Evidence: Sendable, Hashable {
    /// The medium.
    public var kind: EvidenceKind
    /// What it shows; evidence without tags is kept but not scored.
    public var tags: [IssueTag]
    /// The consumer's description.
    public var description: String
    /// Where the media is stored, opaque to the engine.
    public var uri: String
    /// When it was added.
    public var addedAt: Millis

    /// Creates a piece of evidence.
    public init(kind: EvidenceKind, tags: [IssueTag], description: String = "", uri: String = "", addedAt: Millis) {
        self.kind = kind
        self.tags = tags
        self.description = description
        self.uri = uri
        self.addedAt = addedAt
    }
}

/// Evidence as the consumer submits it; the engine stamps `addedAt`.
public struct NewEvidence: Sendable, Hashable {
    /// The medium; nil (proto UNSPECIFIED) is refused.
    public var kind: EvidenceKind?
    /// What it shows, at most `EngineConfig.maxTagsPerEvidence`.
    public var tags: [IssueTag]
    /// Free text.
    public var description: String
    /// Where the media is stored.
    public var uri: String

    /// Creates evidence to submit.
    public init(kind: EvidenceKind?, tags: [IssueTag], description: String = "", uri: String = "") {
        self.kind = kind
        self.tags = tags
        self.description = description
        self.uri = uri
    }
}

/// What the intervention judgement looks at (SPEC §1.3).
public struct Signals: Sendable, Hashable {
    /// Logistics problems reported for the shipment, each at most once, first-seen order.
    public var logisticsAnomalies: [LogisticsAnomaly]
    /// The consumer's evidence, oldest first.
    public var evidence: [Evidence]
    /// The merchant's rule violations in the last 90 days.
    public var merchantViolations90d: UInt32
    /// The merchant's complaint rate in basis points (0...10000).
    public var merchantComplaintRateBasisPoints: UInt32
    /// The consumer's refund-only requests in the last 30 days (abuse guard).
    public var consumerRefundOnlyCount30d: UInt32

    /// Creates signals; anomalies are de-duplicated.
    public init(
        logisticsAnomalies: [LogisticsAnomaly] = [],
        evidence: [Evidence] = [],
        merchantViolations90d: UInt32 = 0,
        merchantComplaintRateBasisPoints: UInt32 = 0,
        consumerRefundOnlyCount30d: UInt32 = 0
    ) {
        self.logisticsAnomalies = []
        self.evidence = evidence
        self.merchantViolations90d = merchantViolations90d
        self.merchantComplaintRateBasisPoints = merchantComplaintRateBasisPoints
        self.consumerRefundOnlyCount30d = consumerRefundOnlyCount30d
        _ = addAnomalies(logisticsAnomalies)
    }

    /// Adds the anomalies not yet known; returns whether anything was added.
    public mutating func addAnomalies(_ anomalies: [LogisticsAnomaly]) -> Bool {
        var added = false
        for anomaly in anomalies where !logisticsAnomalies.contains(anomaly) {
            logisticsAnomalies.append(anomaly)
            added = true
        }
        return added
    }
}

/// The platform's proposal (平台协商方案): convert to return-and-refund, merchant pays.
public struct Proposal: Sendable, Hashable {
    /// When it was issued.
    public var issuedAt: Millis
    /// `issuedAt` + the proposal validity; it expires exactly then.
    public var expiresAt: Millis
    /// Where it is in its life.
    public var state: ProposalState
    /// Which problem the judgement found.
    public var issueKind: IssueKind
    /// The judgement's reason codes.
    public var reasons: [String]
    /// The judgement's score.
    public var score: Int32
    /// When it left PENDING; nil while pending.
    public var decidedAt: Millis?

    /// Creates a proposal.
    public init(issuedAt: Millis, expiresAt: Millis, state: ProposalState, issueKind: IssueKind, reasons: [String], score: Int32, decidedAt: Millis? = nil) {
        self.issuedAt = issuedAt
        self.expiresAt = expiresAt
        self.state = state
        self.issueKind = issueKind
        self.reasons = reasons
        self.score = score
        self.decidedAt = decidedAt
    }
}

/// A merchant's negotiation offer (商家主动协商); the case keeps the latest one.
public struct MerchantOffer: Sendable, Hashable {
    /// What the merchant offers instead of the original request.
    public var type: CaseType
    /// The amount offered, 1...paidAmount.
    public var refundAmount: Int64
    /// Who pays the return shipping; nil for a refund-only offer.
    public var returnShippingPayer: ShippingPayer?
    /// The merchant's note.
    public var note: String
    /// When it was made.
    public var offeredAt: Millis
    /// When it lapses.
    public var expiresAt: Millis
    /// Where it is in its life.
    public var state: OfferState

    /// Creates an offer.
    public init(type: CaseType, refundAmount: Int64, returnShippingPayer: ShippingPayer?, note: String, offeredAt: Millis, expiresAt: Millis, state: OfferState) {
        self.type = type
        self.refundAmount = refundAmount
        self.returnShippingPayer = returnShippingPayer
        self.note = note
        self.offeredAt = offeredAt
        self.expiresAt = expiresAt
        self.state = state
    }
}

/// The current step's deadline.
public struct Deadline: Sendable, Hashable {
    /// Which clock this is.
    public var kind: DeadlineKind
    /// When it fires: at exactly this instant, not before.
    public var dueAt: Millis

    /// Creates a deadline.
    public init(kind: DeadlineKind, dueAt: Millis) {
        self.kind = kind
        self.dueAt = dueAt
    }
}

/// The consumer's return shipment.
public struct ReturnShipment: Sendable, Hashable {
    /// The carrier's name or code.
    public var carrier: String
    /// The carrier's tracking number.
    public var trackingNumber: String
    /// When the consumer reported it.
    public var shippedAt: Millis

    /// Creates a return shipment record.
    public init(carrier: String, trackingNumber: String, shippedAt: Millis) {
        self.carrier = carrier
        self.trackingNumber = trackingNumber
        self.shippedAt = shippedAt
    }
}

/// One step in a case's history (协商记录). Append-only.
public struct HistoryEntry: Sendable, Hashable {
    /// When it happened.
    public var at: Millis
    /// Who took the step.
    public var actor: Party
    /// The consumer, merchant or operator id; "intervention-policy" for the judgement; empty for SYSTEM.
    public var actorID: String
    /// What happened, e.g. "create", "proposal.issue", "merchant.reject".
    public var action: String
    /// The status before; nil for the creation entry.
    public var fromStatus: CaseStatus?
    /// The status after.
    public var toStatus: CaseStatus
    /// Free text: the party's note or the engine's explanation.
    public var note: String

    /// Creates a history entry.
    public init(at: Millis, actor: Party, actorID: String, action: String, fromStatus: CaseStatus?, toStatus: CaseStatus, note: String) {
        self.at = at
        self.actor = actor
        self.actorID = actorID
        self.action = action
        self.fromStatus = fromStatus
        self.toStatus = toStatus
        self.note = note
    }
}

/// An after-sales case (售后单) on one order line (SPEC §2).
public struct Case: Sendable, Hashable {
    /// Assigned by the store ("AS" + 10 digits), unique and stable.
    public var caseID: String
    /// The order.
    public var orderID: String
    /// The line within the order; may be empty for single-line orders.
    public var orderLineID: String
    /// The buyer.
    public var consumerID: String
    /// The seller.
    public var merchantID: String
    /// Category code, e.g. "apparel".
    public var category: String
    /// The consumer's stated reason.
    public var reason: String
    /// What the consumer asks for (changes when a proposal or offer is accepted).
    public var type: CaseType
    /// Where the goods are.
    public var delivery: DeliveryState
    /// What the consumer paid, > 0, minor units.
    public var paidAmount: Int64
    /// What the consumer gets back, 0 < refundAmount <= paidAmount, minor units.
    public var refundAmount: Int64
    /// Who pays the return shipping; nil until a return is agreed.
    public var returnShippingPayer: ShippingPayer?
    /// The current step.
    public var status: CaseStatus
    /// What the judgement looks at.
    public var signals: Signals
    /// The platform's proposal, if one was ever issued (one per case).
    public var proposal: Proposal?
    /// The latest merchant offer, if any.
    public var merchantOffer: MerchantOffer?
    /// The current step's deadline; nil in PLATFORM_ARBITRATION and terminal statuses.
    public var deadline: Deadline?
    /// While a proposal is pending: what the paused merchant review clock had left.
    public var pausedReviewRemaining: Millis?
    /// The consumer's return shipment, once reported.
    public var returnShipment: ReturnShipment?
    /// Why the case closed (CLOSED only).
    public var closeReason: CloseReason?
    /// Why the case was refunded (REFUNDED only).
    public var refundReason: RefundReason?
    /// When it was created.
    public var createdAt: Millis
    /// When it last changed.
    public var updatedAt: Millis
    /// 1 on creation, +1 on every change and only then.
    public var version: UInt64
    /// Every step, oldest first.
    public var history: [HistoryEntry]

    /// Creates a case; the reducer is the only caller that should need this.
    public init(
        caseID: String, orderID: String, orderLineID: String, consumerID: String, merchantID: String,
        category: String, reason: String, type: CaseType, delivery: DeliveryState,
        paidAmount: Int64, refundAmount: Int64, returnShippingPayer: ShippingPayer? = nil,
        status: CaseStatus, signals: Signals, proposal: Proposal? = nil, merchantOffer: MerchantOffer? = nil,
        deadline: Deadline? = nil, pausedReviewRemaining: Millis? = nil, returnShipment: ReturnShipment? = nil,
        closeReason: CloseReason? = nil, refundReason: RefundReason? = nil,
        createdAt: Millis, updatedAt: Millis, version: UInt64, history: [HistoryEntry] = []
    ) {
        self.caseID = caseID
        self.orderID = orderID
        self.orderLineID = orderLineID
        self.consumerID = consumerID
        self.merchantID = merchantID
        self.category = category
        self.reason = reason
        self.type = type
        self.delivery = delivery
        self.paidAmount = paidAmount
        self.refundAmount = refundAmount
        self.returnShippingPayer = returnShippingPayer
        self.status = status
        self.signals = signals
        self.proposal = proposal
        self.merchantOffer = merchantOffer
        self.deadline = deadline
        self.pausedReviewRemaining = pausedReviewRemaining
        self.returnShipment = returnShipment
        self.closeReason = closeReason
        self.refundReason = refundReason
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.version = version
        self.history = history
    }

    /// The proposal if it is outstanding.
    public var pendingProposal: Proposal? { proposal?.state == .pending ? proposal : nil }

    /// The merchant offer if it awaits the consumer.
    public var pendingOffer: MerchantOffer? { merchantOffer?.state == .pending ? merchantOffer : nil }

    /// The key of the one-open-case-per-order-line rule.
    public var orderLineKey: String { CaseStore.orderLineKey(orderID: orderID, orderLineID: orderLineID) }
}
