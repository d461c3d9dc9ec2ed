// Every number SPEC.md §5 lets a user change, with its default and why. All durations
// are milliseconds.

/// The engine's settings (SPEC §5). The defaults are SPEC's.
public struct EngineConfig: Sendable, Hashable {
    /// How long a platform proposal stays valid. 12 h: the article.
    public var proposalValidity: Millis = 12 * TimeSpan.hour
    /// Merchant review window, then auto-agree. 48 h: common platform practice.
    public var merchantReviewWindow: Millis = 48 * TimeSpan.hour
    /// Consumer's time to answer a merchant offer. 48 h: same as the merchant gets.
    public var offerAnswerWindow: Millis = 48 * TimeSpan.hour
    /// Consumer's time to escalate a rejection. 7 days.
    public var escalationWindow: Millis = 7 * TimeSpan.day
    /// Consumer's time to ship a return. 7 days.
    public var returnShipmentWindow: Millis = 7 * TimeSpan.day
    /// Merchant's time to confirm receipt, then auto-refund. 10 days: covers slow carriers.
    public var merchantReceiptWindow: Millis = 10 * TimeSpan.day
    /// Categories never eligible for intervention: the article's three.
    public var excludedCategories: Set<String> = ["fresh_produce", "flowers_horticulture", "live_pets"]
    /// A deadline firing more than this after its due time is announced `late`. 1 s:
    /// a live loop fires within milliseconds, so anything later means the daemon was down.
    public var lateTolerance: Millis = 1_000
    /// The judgement's weights and threshold.
    public var policy: PolicyWeights = PolicyWeights()

    /// Limits that keep one case's memory bounded (the proto's documented field limits).
    public var limits: FieldLimits = FieldLimits()

    /// The defaults.
    public init() {}
}

/// Size limits on free-form fields, as the proto documents them.
public struct FieldLimits: Sendable, Hashable {
    /// order_id, order_line_id, consumer_id, merchant_id, category, carrier, tracking number: bytes.
    public var maxIdentifierBytes: Int = 128
    /// reason, notes, evidence descriptions: bytes.
    public var maxTextBytes: Int = 2_000
    /// Evidence uri: bytes.
    public var maxURIBytes: Int = 512
    /// Tags on one piece of evidence.
    public var maxTagsPerEvidence: Int = 8
    /// Evidence items on one case.
    public var maxEvidenceItems: Int = 32

    /// The proto's limits.
    public init() {}
}

/// The intervention judgement's weights (SPEC §3 "Judgement", ours). Points are on one
/// scale; a case needs `threshold` points in one issue kind, after the abuse penalty.
public struct PolicyWeights: Sendable, Hashable {
    /// Points needed to intervene. 60: one strong signal (a carrier-confirmed anomaly or a
    /// photo of the problem) suffices; weak ones (text, a late parcel) need corroboration.
    public var threshold: Int32 = 60

    /// Points per carrier-reported anomaly. Carrier data is the most objective signal, so
    /// anything but lateness crosses the threshold alone; lateness alone says nothing
    /// about the goods and only counts toward it.
    public var logistics: [LogisticsAnomaly: Int32] = [
        .lostInTransit: 100,
        .damagedInTransit: 80,
        .wrongItem: 80,
        .partialDelivery: 60,
        .lateDelivery: 20,
    ]

    /// Points per evidence tag when shown by photo or video. Defect, damage and wrong item
    /// are visible facts; a missing part or "not as described" need more interpretation.
    public var evidenceTag: [IssueTag: Int32] = [
        .defect: 60,
        .damage: 60,
        .wrongItem: 60,
        .missingPart: 50,
        .notAsDescribed: 45,
    ]

    /// Percentage of a tag's points that a text-only statement earns. 40 %: a claim
    /// without media must be corroborated (by a second tag or the merchant's record).
    public var textEvidencePercent: Int32 = 40

    /// Quality points per merchant violation in the last 90 days. 10, capped below: a
    /// record makes a consumer's claim more plausible but never proves it alone.
    public var pointsPerMerchantViolation: Int32 = 10
    /// Cap on violation points. 30: half the threshold.
    public var maxMerchantViolationPoints: Int32 = 30

    /// Complaint rate (basis points) from which the merchant's record counts. 300 = 3 %,
    /// several times a typical marketplace rate.
    public var highComplaintRateBasisPoints: UInt32 = 300
    /// Quality points for a high complaint rate. 20: corroboration, not proof.
    public var highComplaintRatePoints: Int32 = 20

    /// Refund-only requests in 30 days that draw no penalty. 3: ordinary bad luck.
    public var freeRefundOnlyRequests30d: UInt32 = 3
    /// Penalty per refund-only request beyond the free ones. 15: four extra cancel one
    /// strong signal.
    public var penaltyPerExtraRefundOnly: Int32 = 15
    /// Cap on the abuse penalty. 60: a frequent requester with overwhelming evidence can
    /// still get the proposal.
    public var maxAbusePenalty: Int32 = 60

    /// The defaults above.
    public init() {}
}
