/// The pub/sub topics of SPEC.md §4; `rawValue` is the dotted string on the wire.
public enum Topic: String, Sendable, Hashable, CaseIterable {
    /// A case was opened.
    case caseCreated = "case.created"
    /// A case changed in a way no more specific topic names.
    case caseUpdated = "case.updated"
    /// The consumer escalated a rejection to the platform.
    case caseEscalated = "case.escalated"
    /// The money was returned (terminal).
    case caseRefunded = "case.refunded"
    /// The case closed without refund (terminal).
    case caseClosed = "case.closed"
    /// The platform issued its proposal.
    case proposalIssued = "proposal.issued"
    /// The consumer accepted the proposal.
    case proposalAccepted = "proposal.accepted"
    /// The consumer rejected the proposal.
    case proposalRejected = "proposal.rejected"
    /// The proposal expired unanswered (the expiry notice).
    case proposalExpired = "proposal.expired"
    /// The proposal was overtaken (merchant agreed, or consumer cancelled).
    case proposalSuperseded = "proposal.superseded"
    /// The merchant made an offer.
    case offerMade = "offer.made"
    /// The consumer accepted the offer.
    case offerAccepted = "offer.accepted"
    /// The consumer rejected the offer.
    case offerRejected = "offer.rejected"
    /// The offer lapsed unanswered.
    case offerLapsed = "offer.lapsed"
    /// The offer ended because the consumer cancelled the case.
    case offerWithdrawn = "offer.withdrawn"
    /// The merchant review window lapsed: the request was auto-agreed.
    case merchantReviewLapsed = "deadline.merchant_review_lapsed"
    /// The escalation window lapsed: the case closed.
    case escalationLapsed = "deadline.escalation_lapsed"
    /// The return shipment window lapsed: the case closed.
    case returnShipmentLapsed = "deadline.return_shipment_lapsed"
    /// The merchant receipt window lapsed: the refund was made.
    case merchantReceiptLapsed = "deadline.merchant_receipt_lapsed"
}

/// One message for the publish socket: what happened to which case.
public struct Announcement: Sendable, Hashable {
    /// The topic.
    public var topic: Topic
    /// The case it is about.
    public var caseID: String
    /// The status before the command; nil for `case.created`.
    public var previousStatus: CaseStatus?
    /// The status after the command.
    public var status: CaseStatus
    /// True when a deadline fired more than `EngineConfig.lateTolerance` after it was due.
    public var late: Bool

    /// Creates an announcement.
    public init(topic: Topic, caseID: String, previousStatus: CaseStatus?, status: CaseStatus, late: Bool = false) {
        self.topic = topic
        self.caseID = caseID
        self.previousStatus = previousStatus
        self.status = status
        self.late = late
    }
}

/// The result of one applied request: the case as it now stands and what to announce.
public struct Outcome: Sendable, Hashable {
    /// The case after the command (unchanged, same version, when the command was a no-op).
    public var `case`: Case
    /// In order; empty for a no-op.
    public var announcements: [Announcement]
    /// The judgement, for commands that run it (create, add evidence, update logistics).
    public var judgement: Judgement?
    /// When the deadline that caused this outcome was due (fired deadlines only).
    public var firedDeadlineDueAt: Millis?

    /// Creates an outcome.
    public init(case: Case, announcements: [Announcement], judgement: Judgement? = nil) {
        self.case = `case`
        self.announcements = announcements
        self.judgement = judgement
    }
}
