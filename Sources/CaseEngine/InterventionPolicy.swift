// SPEC.md §3 "Proposal eligibility" and "Judgement": when the platform proactively
// proposes return-and-refund with merchant-paid shipping (主动介入协商).

/// The outcome of the judgement, explained by machine-readable reason codes.
public struct Judgement: Sendable, Hashable {
    /// Every eligibility gate passed.
    public var eligible: Bool
    /// Eligible and the score reached the threshold: the platform proposes.
    public var intervene: Bool
    /// The problem found (the kind with the higher score); nil when none reached the threshold.
    public var issueKind: IssueKind?
    /// The best kind's points after the abuse penalty.
    public var score: Int32
    /// Points needed.
    public var threshold: Int32
    /// Failed gate codes when ineligible; otherwise the signals that scored, plus
    /// NO_ISSUE_DETECTED when the score fell short.
    public var reasons: [String]

    /// Creates a judgement.
    public init(eligible: Bool, intervene: Bool, issueKind: IssueKind?, score: Int32, threshold: Int32, reasons: [String]) {
        self.eligible = eligible
        self.intervene = intervene
        self.issueKind = issueKind
        self.score = score
        self.threshold = threshold
        self.reasons = reasons
    }
}

/// The deterministic, explainable intervention policy.
public struct InterventionPolicy: Sendable, Hashable {
    /// Gate code: the case is not refund-only.
    public static let notRefundOnly = "NOT_REFUND_ONLY"
    /// Gate code: refund amount below paid amount.
    public static let partialRefund = "PARTIAL_REFUND"
    /// Gate code: the goods were not signed for.
    public static let notSigned = "NOT_SIGNED"
    /// Gate code: the category is excluded.
    public static let excludedCategory = "EXCLUDED_CATEGORY"
    /// Gate code: the case is not awaiting merchant review.
    public static let notAwaitingReview = "NOT_AWAITING_REVIEW"
    /// Gate code: a merchant offer is pending.
    public static let offerPending = "OFFER_PENDING"
    /// Gate code: the case already had its one proposal.
    public static let alreadyProposed = "ALREADY_PROPOSED"
    /// Eligible, but the score fell short of the threshold.
    public static let noIssueDetected = "NO_ISSUE_DETECTED"
    /// Scoring code: the merchant has violations in the last 90 days.
    public static let merchantViolations = "MERCHANT_VIOLATIONS_90D"
    /// Scoring code: the merchant's complaint rate is high.
    public static let merchantComplaintRateHigh = "MERCHANT_COMPLAINT_RATE_HIGH"
    /// Scoring code: the consumer asks for refund-only often (penalty applied).
    public static let consumerRefundOnlyFrequent = "CONSUMER_REFUND_ONLY_FREQUENT"

    /// Weights and threshold.
    public var weights: PolicyWeights
    /// Categories never eligible.
    public var excludedCategories: Set<String>

    /// Creates the policy from the engine's config.
    public init(config: EngineConfig) {
        weights = config.policy
        excludedCategories = config.excludedCategories
    }

    /// Judges `subject` as it stands. Pure: same case, same judgement.
    public func judge(_ subject: Case) -> Judgement {
        let gates = failedGates(subject)
        let scored = score(subject.signals)
        guard gates.isEmpty else {
            // Ineligible cases report only why: their signals would mislead a reader into
            // thinking they were close to a proposal. The score stays for tuning.
            return Judgement(eligible: false, intervene: false, issueKind: nil, score: scored.score,
                             threshold: weights.threshold, reasons: gates)
        }
        let intervene = scored.score >= weights.threshold
        return Judgement(
            eligible: true, intervene: intervene, issueKind: intervene ? scored.kind : nil,
            score: scored.score, threshold: weights.threshold,
            reasons: intervene ? scored.reasons : scored.reasons + [Self.noIssueDetected])
    }

    /// The eligibility gates of SPEC §3 that `subject` fails, in SPEC order.
    public func failedGates(_ subject: Case) -> [String] {
        var failed: [String] = []
        if subject.type != .refundOnly { failed.append(Self.notRefundOnly) }
        if subject.refundAmount != subject.paidAmount { failed.append(Self.partialRefund) }
        if subject.delivery != .signed { failed.append(Self.notSigned) }
        if excludedCategories.contains(subject.category) { failed.append(Self.excludedCategory) }
        if subject.status != .awaitingMerchantReview { failed.append(Self.notAwaitingReview) }
        if subject.pendingOffer != nil { failed.append(Self.offerPending) }
        if subject.proposal != nil { failed.append(Self.alreadyProposed) }
        return failed
    }

    /// The best issue kind's score after the abuse penalty, and the codes that scored.
    func score(_ signals: Signals) -> (kind: IssueKind, score: Int32, reasons: [String]) {
        var reasons: [String] = []

        var logistics: Int32 = 0
        for anomaly in LogisticsAnomaly.allCases where signals.logisticsAnomalies.contains(anomaly) {
            let points = weights.logistics[anomaly] ?? 0
            guard points > 0 else { continue }
            logistics += points
            reasons.append(ReasonCodes.logistics[anomaly]!)
        }

        // Each tag counts once, at its strongest medium, so that repeating the same claim
        // in many text items cannot pump the score.
        var quality: Int32 = 0
        for tag in IssueTag.allCases {
            var best: (points: Int32, kind: EvidenceKind)? = nil
            for item in signals.evidence where item.hasTag(tag) {
                let base = weights.evidenceTag[tag] ?? 0
                let points = item.kind == .text ? base * weights.textEvidencePercent / 100 : base
                if points > (best?.points ?? 0) { best = (points, item.kind) }
            }
            if let best {
                quality += best.points
                reasons.append(ReasonCodes.evidence[tag]![best.kind]!)
            }
        }
        // The merchant's record corroborates the consumer's evidence; without any evidence
        // it says nothing about this order line.
        if quality > 0 {
            if signals.merchantViolations90d > 0 {
                let raw = Int64(signals.merchantViolations90d) * Int64(weights.pointsPerMerchantViolation)
                quality += Int32(min(raw, Int64(weights.maxMerchantViolationPoints)))
                reasons.append(Self.merchantViolations)
            }
            if signals.merchantComplaintRateBasisPoints >= weights.highComplaintRateBasisPoints {
                quality += weights.highComplaintRatePoints
                reasons.append(Self.merchantComplaintRateHigh)
            }
        }

        var penalty: Int32 = 0
        if signals.consumerRefundOnlyCount30d > weights.freeRefundOnlyRequests30d {
            let extra = Int64(signals.consumerRefundOnlyCount30d - weights.freeRefundOnlyRequests30d)
            penalty = Int32(min(extra * Int64(weights.penaltyPerExtraRefundOnly), Int64(weights.maxAbusePenalty)))
            reasons.append(Self.consumerRefundOnlyFrequent)
        }

        // Ties go to logistics: carrier data is the more objective finding.
        let kind: IssueKind = logistics >= quality ? .logistics : .quality
        return (kind, max(logistics, quality) - penalty, ReasonCodes.shared(reasons))
    }
}

/// The reason codes built from enum names, made once: every proposal keeps its reasons,
/// and a code longer than 15 UTF-8 bytes built per judgement would be one more heap
/// string per case; these are shared instead.
private enum ReasonCodes {
    static let logistics: [LogisticsAnomaly: String] = Dictionary(
        uniqueKeysWithValues: LogisticsAnomaly.allCases.map { ($0, "LOGISTICS_\($0.rawValue)") })
    static let evidence: [IssueTag: [EvidenceKind: String]] = Dictionary(
        uniqueKeysWithValues: IssueTag.allCases.map { tag in
            (tag, Dictionary(uniqueKeysWithValues: EvidenceKind.allCases.map { ($0, "EVIDENCE_\(tag.rawValue)_\($0.rawValue)") }))
        })

    /// A one-element array for each scoring code, made once.
    private static let singletons: [String: [String]] = Dictionary(
        uniqueKeysWithValues: (Array(logistics.values) + evidence.values.flatMap(\.values)
            + [InterventionPolicy.merchantViolations, InterventionPolicy.merchantComplaintRateHigh,
               InterventionPolicy.consumerRefundOnlyFrequent]).map { ($0, [$0]) })

    /// `reasons`, or an equal array shared by every caller when it is one known code
    /// (the usual proposal), so each proposal does not keep an array of its own.
    static func shared(_ reasons: [String]) -> [String] {
        guard reasons.count == 1, let shared = singletons[reasons[0]] else { return reasons }
        return shared
    }
}
