import CaseEngine
import Testing

/// The judgement's gates and scoring, on hand-built cases.
@Suite struct InterventionPolicyTests {
    let policy = InterventionPolicy(config: EngineConfig())

    func eligibleCase(_ signals: Signals) -> Case {
        Case(caseID: "AS0000000001", orderID: "o", orderLineID: "", consumerID: "c", merchantID: "m", category: "apparel",
             reason: "", type: .refundOnly, delivery: .signed, paidAmount: 100, refundAmount: 100,
             status: .awaitingMerchantReview, signals: signals, createdAt: 0, updatedAt: 0, version: 1)
    }

    func evidence(_ kind: EvidenceKind, _ tags: IssueTag...) -> Evidence {
        Evidence(kind: kind, tags: tags, addedAt: 0)
    }

    @Test func allGatesReportedInSpecOrder() {
        var subject = eligibleCase(Signals(evidence: [evidence(.photo, .defect)]))
        subject.type = .returnAndRefund
        subject.refundAmount = 50
        subject.delivery = .inTransit
        subject.category = "live_pets"
        subject.status = .merchantOfferPending
        subject.merchantOffer = MerchantOffer(type: .refundOnly, refundAmount: 1, returnShippingPayer: nil, note: "",
                                              offeredAt: 0, expiresAt: 1, state: .pending)
        subject.proposal = Proposal(issuedAt: 0, expiresAt: 1, state: .expired, issueKind: .quality, reasons: [], score: 0)
        let judgement = policy.judge(subject)
        #expect(!judgement.eligible && !judgement.intervene)
        #expect(judgement.reasons == ["NOT_REFUND_ONLY", "PARTIAL_REFUND", "NOT_SIGNED", "EXCLUDED_CATEGORY",
                                      "NOT_AWAITING_REVIEW", "OFFER_PENDING", "ALREADY_PROPOSED"])
    }

    @Test func logisticsAnomalyAloneIntervenesExceptLateness() {
        for anomaly in LogisticsAnomaly.allCases {
            let judgement = policy.judge(eligibleCase(Signals(logisticsAnomalies: [anomaly])))
            #expect(judgement.intervene == (anomaly != .lateDelivery), "\(anomaly)")
            #expect(judgement.reasons.first == "LOGISTICS_\(anomaly.rawValue)")
            if judgement.intervene { #expect(judgement.issueKind == .logistics) }
        }
    }

    @Test func mediaOutweighsText() {
        #expect(policy.judge(eligibleCase(Signals(evidence: [evidence(.photo, .defect)]))).intervene)
        #expect(policy.judge(eligibleCase(Signals(evidence: [evidence(.video, .damage)]))).intervene)
        let text = policy.judge(eligibleCase(Signals(evidence: [evidence(.text, .defect)])))
        #expect(!text.intervene)
        #expect(text.score == 24)
        // Repeating the same text claim does not add up.
        let repeated = policy.judge(eligibleCase(Signals(evidence: Array(repeating: evidence(.text, .defect), count: 10))))
        #expect(repeated.score == 24)
    }

    @Test func merchantRecordCorroboratesButNeverProvesAlone() {
        let recordOnly = policy.judge(eligibleCase(Signals(merchantViolations90d: 9, merchantComplaintRateBasisPoints: 900)))
        #expect(!recordOnly.intervene)
        #expect(recordOnly.score == 0)
        let corroborated = policy.judge(eligibleCase(Signals(
            evidence: [evidence(.text, .defect)], merchantViolations90d: 2, merchantComplaintRateBasisPoints: 450)))
        // 24 (text defect) + 20 (two violations) + 20 (complaint rate) = 64.
        #expect(corroborated.score == 64)
        #expect(corroborated.intervene)
        #expect(corroborated.issueKind == .quality)
        #expect(corroborated.reasons == ["EVIDENCE_DEFECT_TEXT", "MERCHANT_VIOLATIONS_90D", "MERCHANT_COMPLAINT_RATE_HIGH"])
    }

    @Test func frequentRefundOnlyRequestsArePenalised() {
        let signals = Signals(evidence: [evidence(.photo, .defect)], consumerRefundOnlyCount30d: 4)
        let judgement = policy.judge(eligibleCase(signals))
        #expect(judgement.score == 45)
        #expect(!judgement.intervene)
        #expect(judgement.reasons == ["EVIDENCE_DEFECT_PHOTO", "CONSUMER_REFUND_ONLY_FREQUENT", "NO_ISSUE_DETECTED"])
        // Overwhelming evidence still gets through the capped penalty.
        let strong = policy.judge(eligibleCase(Signals(logisticsAnomalies: [.lostInTransit, .damagedInTransit], consumerRefundOnlyCount30d: 50)))
        #expect(strong.score == 120)
        #expect(strong.intervene)
    }

    @Test func higherKindNamesTheIssue() {
        let judgement = policy.judge(eligibleCase(Signals(logisticsAnomalies: [.partialDelivery],
                                                          evidence: [evidence(.photo, .defect, .damage)])))
        #expect(judgement.issueKind == .quality)
        #expect(judgement.score == 120)
    }

    @Test func judgementIsConfigurable() {
        var config = EngineConfig()
        config.policy.threshold = 200
        config.excludedCategories = ["apparel"]
        let strict = InterventionPolicy(config: config)
        #expect(strict.judge(eligibleCase(Signals(logisticsAnomalies: [.lostInTransit]))).reasons == ["EXCLUDED_CATEGORY"])
    }

    @Test func evaluateIsADryRun() throws {
        let (store, id, _) = try Fixture.store(in: .awaitingMerchantReview)
        let judgement = try store.evaluate(caseID: id)
        #expect(judgement.eligible && !judgement.intervene)
        #expect(throws: CaseError.notFound("no case with case_id 'nope'")) { try store.evaluate(caseID: "nope") }
    }
}
