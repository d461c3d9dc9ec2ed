import CaseEngine
import Testing

/// The article's scenarios (SPEC.md §1), each on its own.
@Suite struct ArticleScenarioTests {
    let t0 = Fixture.t0
    let validity = Fixture.config.proposalValidity

    /// A store with one signed, full refund-only case whose photo shows a defect: the
    /// judgement intervenes at creation.
    func proposedCase() throws -> (CaseStore, String) {
        var store = CaseStore(config: Fixture.config)
        let outcome = try store.apply(Fixture.create(Fixture.newCase(signals: Signals(evidence: [Fixture.defectPhoto]))), now: t0)
        return (store, outcome.case.caseID)
    }

    @Test func interventionOnSignedFullRefundOnlyWithQualityIssue() throws {
        var store = CaseStore(config: Fixture.config)
        let outcome = try store.apply(Fixture.create(Fixture.newCase(signals: Signals(evidence: [Fixture.defectPhoto]))), now: t0)
        let created = outcome.case
        #expect(outcome.announcements.map(\.topic) == [.caseCreated, .proposalIssued])
        #expect(created.status == .proposalPending)
        let proposal = try #require(created.proposal)
        #expect(proposal.state == .pending)
        #expect(proposal.issueKind == .quality)
        #expect(proposal.issuedAt == t0)
        #expect(proposal.expiresAt == t0 + 12 * TimeSpan.hour)
        #expect(proposal.reasons.contains("EVIDENCE_DEFECT_PHOTO"))
        #expect(created.deadline == Deadline(kind: .proposalExpiry, dueAt: t0 + 12 * TimeSpan.hour))
        #expect(created.pausedReviewRemaining == 48 * TimeSpan.hour)
        #expect(created.version == 1)
        #expect(created.history.map(\.action) == ["create", "proposal.issue"])
        #expect(created.history.last?.actor == .platform)
        #expect(outcome.judgement?.intervene == true)
        #expect(store.pendingProposalCount == 1)
        #expect(store.nextDeadline == t0 + 12 * TimeSpan.hour)
    }

    @Test func interventionOnLogisticsIssueReportedLater() throws {
        var store = CaseStore(config: Fixture.config)
        let id = try store.apply(Fixture.create(Fixture.newCase(delivery: .inTransit)), now: t0).case.caseID
        let signed = try store.apply(Fixture.platform(id, .updateLogistics(delivery: .signed, anomalies: [])), now: t0 + 1)
        #expect(signed.case.status == .awaitingMerchantReview)
        #expect(signed.judgement?.reasons == ["NO_ISSUE_DETECTED"])
        let damaged = try store.apply(Fixture.platform(id, .updateLogistics(delivery: nil, anomalies: [.damagedInTransit])), now: t0 + 2)
        #expect(damaged.announcements.map(\.topic) == [.caseUpdated, .proposalIssued])
        #expect(damaged.case.proposal?.issueKind == .logistics)
        #expect(damaged.case.proposal?.reasons == ["LOGISTICS_DAMAGED_IN_TRANSIT"])
        // The review clock had 48 h minus 2 ms left when it was paused.
        #expect(damaged.case.pausedReviewRemaining == 48 * TimeSpan.hour - 2)
    }

    @Test(arguments: ["fresh_produce", "flowers_horticulture", "live_pets"])
    func noInterventionForExcludedCategory(category: String) throws {
        var store = CaseStore(config: Fixture.config)
        let outcome = try store.apply(
            Fixture.create(Fixture.newCase(category: category, signals: Signals(evidence: [Fixture.defectPhoto]))), now: t0)
        #expect(outcome.case.status == .awaitingMerchantReview)
        #expect(outcome.case.proposal == nil)
        #expect(outcome.judgement?.reasons == ["EXCLUDED_CATEGORY"])
        #expect(outcome.announcements.map(\.topic) == [.caseCreated])
    }

    @Test func noInterventionForPartialRefund() throws {
        var store = CaseStore(config: Fixture.config)
        let outcome = try store.apply(
            Fixture.create(Fixture.newCase(refund: 9_999, signals: Signals(evidence: [Fixture.defectPhoto]))), now: t0)
        #expect(outcome.case.status == .awaitingMerchantReview)
        #expect(outcome.judgement?.reasons == ["PARTIAL_REFUND"])
    }

    @Test(arguments: [DeliveryState.notShipped, .inTransit, .refused])
    func noInterventionBeforeSigning(delivery: DeliveryState) throws {
        var store = CaseStore(config: Fixture.config)
        let outcome = try store.apply(
            Fixture.create(Fixture.newCase(delivery: delivery, signals: Signals(evidence: [Fixture.defectPhoto]))), now: t0)
        #expect(outcome.case.status == .awaitingMerchantReview)
        #expect(outcome.judgement?.reasons == ["NOT_SIGNED"])
    }

    @Test func noInterventionForReturnAndRefundRequest() throws {
        var store = CaseStore(config: Fixture.config)
        let outcome = try store.apply(
            Fixture.create(Fixture.newCase(type: .returnAndRefund, signals: Signals(evidence: [Fixture.defectPhoto]))), now: t0)
        #expect(outcome.judgement?.reasons == ["NOT_REFUND_ONLY"])
    }

    @Test func noInterventionWhenNoIssueFound() throws {
        var store = CaseStore(config: Fixture.config)
        let text = Evidence(kind: .text, tags: [.notAsDescribed], description: "colour is off", addedAt: 0)
        let outcome = try store.apply(Fixture.create(Fixture.newCase(signals: Signals(evidence: [text]))), now: t0)
        let judgement = try #require(outcome.judgement)
        #expect(judgement.eligible)
        #expect(!judgement.intervene)
        #expect(judgement.issueKind == nil)
        #expect(judgement.score < judgement.threshold)
        #expect(judgement.reasons == ["EVIDENCE_NOT_AS_DESCRIBED_TEXT", "NO_ISSUE_DETECTED"])
        #expect(outcome.case.status == .awaitingMerchantReview)
    }

    @Test func consumerAcceptsBecomesReturnAndRefundWithMerchantPaidShipping() throws {
        var (store, id) = try proposedCase()
        let outcome = try store.apply(Fixture.consumer(id, .respondToProposal(.accept)), now: t0 + TimeSpan.hour)
        let accepted = outcome.case
        #expect(outcome.announcements.map(\.topic) == [.proposalAccepted])
        #expect(accepted.type == .returnAndRefund)
        #expect(accepted.returnShippingPayer == .merchant)
        #expect(accepted.status == .awaitingReturnShipment)
        #expect(accepted.proposal?.state == .accepted)
        #expect(accepted.proposal?.decidedAt == t0 + TimeSpan.hour)
        #expect(accepted.deadline == Deadline(kind: .returnShipment, dueAt: t0 + TimeSpan.hour + 7 * TimeSpan.day))
        #expect(accepted.refundAmount == Fixture.paid)
        // The rest of the return path: ship, receive, refund.
        _ = try store.apply(Fixture.consumer(id, .submitReturnShipment(carrier: "SF", trackingNumber: "SF1")), now: t0 + 2 * TimeSpan.hour)
        let refunded = try store.apply(Fixture.merchant(id, .confirmReturnReceived), now: t0 + 3 * TimeSpan.day)
        #expect(refunded.case.status == .refunded)
        #expect(refunded.case.refundReason == .returnReceived)
    }

    @Test func consumerRejectsThenMerchantMayReview() throws {
        var (store, id) = try proposedCase()
        let outcome = try store.apply(Fixture.consumer(id, .respondToProposal(.reject)), now: t0 + TimeSpan.hour)
        #expect(outcome.announcements.map(\.topic) == [.proposalRejected])
        #expect(outcome.case.status == .awaitingMerchantReview)
        #expect(outcome.case.proposal?.state == .rejected)
        #expect(outcome.case.type == .refundOnly)
        let rejected = try store.apply(Fixture.merchant(id, .merchantReject(reason: "no defect visible")), now: t0 + 2 * TimeSpan.hour)
        #expect(rejected.case.status == .merchantRejected)
    }

    @Test func expiryAtExactlyTwelveHoursAndNotOneMillisecondEarlier() throws {
        var (store, id) = try proposedCase()
        let due = t0 + 12 * TimeSpan.hour
        #expect(store.nextDeadline == due)
        #expect(store.fireDueDeadlines(now: due - 1).isEmpty)
        #expect(store[id]?.status == .proposalPending)
        let early = caseError { () throws(CaseError) in try store.apply(Fixture.system(id, .fireDeadline(.proposalExpiry)), now: due - 1) }
        #expect(early == .failedPrecondition("PROPOSAL_EXPIRY deadline of case \(id) is due at 2026-11-27T04:00:00.000Z, not yet"))

        let fired = store.fireDueDeadlines(now: due)
        #expect(fired.count == 1)
        let expired = try #require(fired.first)
        #expect(expired.announcements == [Announcement(topic: .proposalExpired, caseID: id, previousStatus: .proposalPending,
                                                        status: .awaitingMerchantReview, late: false)])
        #expect(expired.case.proposal?.state == .expired)
        #expect(expired.case.proposal?.decidedAt == due)
        #expect(expired.case.status == .awaitingMerchantReview)
        #expect(expired.case.history.last?.actor == .system)
        // The merchant may review as usual: offer now works.
        let offer = try store.apply(Fixture.merchant(id, .merchantOffer(OfferTerms(type: .refundOnly, refundAmount: 6_000))), now: due + 1)
        #expect(offer.case.status == .merchantOfferPending)
    }

    /// A call on a case whose proposal is past due, before the backlog reaches it, sees
    /// it expired: the case's own deadline fires first, once, and the queue skips it later.
    @Test func aDueDeadlineFiresForItsCaseAloneAndOnlyOnce() throws {
        var (store, id) = try proposedCase()
        var (other, _) = (store, id)
        let due = t0 + 12 * TimeSpan.hour
        let early = store.fireDeadlineIfDue(caseID: id, now: due - 1)
        #expect(early == nil, "not before its time")
        let unknown = store.fireDeadlineIfDue(caseID: "AS9999999999", now: due)
        #expect(unknown == nil, "no such case")
        let fired = try #require({ store.fireDeadlineIfDue(caseID: id, now: due + 5) }())
        #expect(fired.announcements.map(\.topic) == [.proposalExpired])
        #expect(fired.firedDeadlineDueAt == due && fired.case.proposal?.state == .expired)
        #expect(store[id]?.status == .awaitingMerchantReview)
        // Exactly what the queue would have done at that instant.
        let queued = other.fireDueDeadlines(now: due + 5)
        #expect(queued.first?.case == fired.case)
        let again = store.fireDeadlineIfDue(caseID: id, now: due + 6)
        #expect(again == nil, "fired once")
        let later = store.fireDueDeadlines(now: due + 7)
        #expect(later.isEmpty, "its queue entry is stale now")
        #expect(store.nextDeadline == due + 5 + 48 * TimeSpan.hour, "the merchant's review clock runs again")
    }

    @Test func expiryFiredLateAtStartUpIsMarkedLate() throws {
        var (store, id) = try proposedCase()
        let due = t0 + 12 * TimeSpan.hour
        // Within tolerance: on time. Past it: late.
        var onTime = store
        #expect(onTime.fireDueDeadlines(now: due + Fixture.config.lateTolerance).first?.announcements.first?.late == false)
        let fired = store.fireDueDeadlines(now: due + TimeSpan.hour)
        #expect(fired.first?.announcements.first?.late == true)
        // The review clock resumes from when the expiry was actually processed.
        #expect(store[id]?.deadline == Deadline(kind: .merchantReview, dueAt: due + TimeSpan.hour + 48 * TimeSpan.hour))
    }

    @Test func merchantAgreesDuringWindowRefundsAndSupersedes() throws {
        var (store, id) = try proposedCase()
        let outcome = try store.apply(Fixture.merchant(id, .merchantAgree(note: "sorry")), now: t0 + TimeSpan.hour)
        #expect(outcome.announcements.map(\.topic) == [.proposalSuperseded, .caseRefunded])
        #expect(outcome.case.status == .refunded)
        #expect(outcome.case.refundReason == .merchantAgreed)
        #expect(outcome.case.type == .refundOnly)
        #expect(outcome.case.refundAmount == Fixture.paid)
        #expect(outcome.case.proposal?.state == .superseded)
        #expect(outcome.case.deadline == nil)
        #expect(store.nextDeadline == nil)
        #expect(store.pendingProposalCount == 0)
    }

    @Test(arguments: [
        Command.merchantReject(reason: "used"),
        Command.merchantOffer(OfferTerms(type: .refundOnly, refundAmount: 5_000)),
        Command.merchantOffer(OfferTerms(type: .returnAndRefund, refundAmount: 10_000, returnShippingPayer: .consumer)),
    ])
    func merchantRejectOrOfferDuringWindowIsRefusedNamingTheTime(command: Command) throws {
        let (original, id) = try proposedCase()
        var store = original
        let error = caseError { () throws(CaseError) in try store.apply(Fixture.merchant(id, command), now: t0 + TimeSpan.hour) }
        #expect(error == .failedPrecondition(
            "platform proposal pending until 2026-11-27T04:00:00.000Z; the merchant may only agree to the original request until then"))
        #expect(error?.grpcCode == 9)
        #expect(store == original)
    }

    @Test func coexistsWithMerchantInitiatedNegotiation() throws {
        var store = CaseStore(config: Fixture.config)
        let id = try store.apply(Fixture.create(Fixture.newCase()), now: t0).case.caseID
        let offered = try store.apply(
            Fixture.merchant(id, .merchantOffer(OfferTerms(type: .returnAndRefund, refundAmount: 10_000, returnShippingPayer: .merchant, note: "send it back"))),
            now: t0 + TimeSpan.hour)
        #expect(offered.case.status == .merchantOfferPending)
        #expect(offered.case.deadline == Deadline(kind: .offerAnswer, dueAt: t0 + TimeSpan.hour + 48 * TimeSpan.hour))
        // Strong evidence while the offer is pending does not start a proposal.
        let evidence = try store.apply(Fixture.consumer(id, .addEvidence(NewEvidence(kind: .video, tags: [.defect]))), now: t0 + 2 * TimeSpan.hour)
        #expect(evidence.case.proposal == nil)
        #expect(evidence.judgement?.reasons == ["NOT_AWAITING_REVIEW", "OFFER_PENDING"])
        let accepted = try store.apply(Fixture.consumer(id, .respondToOffer(.accept)), now: t0 + 3 * TimeSpan.hour)
        #expect(accepted.case.status == .awaitingReturnShipment)
        #expect(accepted.case.type == .returnAndRefund)
        #expect(accepted.case.returnShippingPayer == .merchant)
        #expect(accepted.case.merchantOffer?.state == .accepted)
    }

    @Test func partialRefundOfferAcceptedRefundsTheOfferedAmount() throws {
        var (store, id, now) = try Fixture.store(in: .merchantOfferPending)
        now += TimeSpan.minute
        let outcome = try store.apply(Fixture.consumer(id, .respondToOffer(.accept)), now: now)
        #expect(outcome.case.status == .refunded)
        #expect(outcome.case.refundAmount == 5_000)
        #expect(outcome.case.refundReason == .offerAccepted)
    }

    @Test func rejectedOfferReturnsToReviewWithAFreshWindowAndNoProposalAfterwards() throws {
        var (store, id, now) = try Fixture.store(in: .merchantOfferPending)
        now += TimeSpan.minute
        let outcome = try store.apply(Fixture.consumer(id, .respondToOffer(.reject)), now: now)
        #expect(outcome.case.deadline == Deadline(kind: .merchantReview, dueAt: now + 48 * TimeSpan.hour))
    }

    @Test func coexistsWithEscalationAfterRejection() throws {
        var (store, id, now) = try Fixture.store(in: .merchantRejected)
        #expect(store[id]?.deadline == Deadline(kind: .escalation, dueAt: now + 7 * TimeSpan.day))
        let escalated = try store.apply(Fixture.consumer(id, .escalate(note: "defective")), now: now + TimeSpan.day)
        #expect(escalated.announcements.map(\.topic) == [.caseEscalated])
        #expect(escalated.case.status == .platformArbitration)
        #expect(escalated.case.deadline == nil)
        var convert = store
        let ruled = try convert.apply(Fixture.platform(id, .platformResolve(.returnAndRefund, note: "return it")), now: now + 2 * TimeSpan.day)
        #expect(ruled.case.status == .awaitingReturnShipment)
        #expect(ruled.case.returnShippingPayer == .merchant)
        var close = store
        let closed = try close.apply(Fixture.platform(id, .platformResolve(.closeForMerchant, note: "")), now: now + 2 * TimeSpan.day)
        #expect(closed.case.closeReason == .ruledForMerchant)
        let refunded = try store.apply(Fixture.platform(id, .platformResolve(.refund, note: "")), now: now + 2 * TimeSpan.day)
        #expect(refunded.case.refundReason == .ruledForConsumer)
    }

    @Test func escalationWindowLapseCloses() throws {
        var (store, id, now) = try Fixture.store(in: .merchantRejected)
        let outcomes = store.fireDueDeadlines(now: now + 7 * TimeSpan.day)
        #expect(outcomes.map(\.case.caseID) == [id])
        #expect(store[id]?.closeReason == .escalationWindowLapsed)
    }

    @Test func reviewClockPausesDuringProposalAndResumesWithTimeLeft() throws {
        var store = CaseStore(config: Fixture.config)
        let id = try store.apply(Fixture.create(Fixture.newCase()), now: t0).case.caseID
        // 10 h of the 48 h review pass, then strong evidence arrives: the proposal pauses the clock.
        let issuedAt = t0 + 10 * TimeSpan.hour
        let issued = try store.apply(Fixture.consumer(id, .addEvidence(NewEvidence(kind: .photo, tags: [.damage]))), now: issuedAt)
        #expect(issued.announcements.map(\.topic) == [.caseUpdated, .proposalIssued])
        #expect(issued.case.pausedReviewRemaining == 38 * TimeSpan.hour)
        // The paused clock does not fire at its old due time (t0 + 48 h) – only expiry is queued.
        #expect(store.nextDeadline == issuedAt + 12 * TimeSpan.hour)
        // The consumer rejects 5 h later: review resumes with the 38 h it had left.
        let rejectedAt = issuedAt + 5 * TimeSpan.hour
        let resumed = try store.apply(Fixture.consumer(id, .respondToProposal(.reject)), now: rejectedAt)
        #expect(resumed.case.deadline == Deadline(kind: .merchantReview, dueAt: rejectedAt + 38 * TimeSpan.hour))
        #expect(resumed.case.pausedReviewRemaining == nil)
        // One proposal per case: more evidence does not propose again.
        let again = try store.apply(Fixture.consumer(id, .addEvidence(NewEvidence(kind: .video, tags: [.defect]))), now: rejectedAt + 1)
        #expect(again.case.status == .awaitingMerchantReview)
        #expect(again.judgement?.reasons == ["ALREADY_PROPOSED"])
        // And at the resumed due time the request is auto-agreed.
        #expect(store.fireDueDeadlines(now: rejectedAt + 38 * TimeSpan.hour - 1).isEmpty)
        let lapsed = store.fireDueDeadlines(now: rejectedAt + 38 * TimeSpan.hour)
        #expect(lapsed.first?.announcements.map(\.topic) == [.merchantReviewLapsed, .caseRefunded])
        #expect(store[id]?.refundReason == .reviewWindowLapsed)
    }

    @Test func reviewLapseOnReturnRequestStartsTheReturnAtConsumerCost() throws {
        var store = CaseStore(config: Fixture.config)
        let id = try store.apply(Fixture.create(Fixture.newCase(type: .returnAndRefund)), now: t0).case.caseID
        let fired = store.fireDueDeadlines(now: t0 + 48 * TimeSpan.hour)
        #expect(fired.first?.announcements.map(\.topic) == [.merchantReviewLapsed])
        #expect(store[id]?.status == .awaitingReturnShipment)
        #expect(store[id]?.returnShippingPayer == .consumer)
        // Nobody ships within 7 days: closed.
        _ = store.fireDueDeadlines(now: t0 + 48 * TimeSpan.hour + 7 * TimeSpan.day)
        #expect(store[id]?.closeReason == .returnWindowLapsed)
    }

    @Test func receiptWindowLapseRefundsAutomatically() throws {
        var (store, id, now) = try Fixture.store(in: .awaitingMerchantReceipt)
        let fired = store.fireDueDeadlines(now: now + 10 * TimeSpan.day)
        #expect(fired.first?.announcements.map(\.topic) == [.merchantReceiptLapsed, .caseRefunded])
        #expect(store[id]?.refundReason == .receiptWindowLapsed)
    }

    @Test func cancelWhileProposalPendingSupersedesIt() throws {
        var (store, id) = try proposedCase()
        let outcome = try store.apply(Fixture.consumer(id, .cancel(note: "")), now: t0 + 1)
        #expect(outcome.case.proposal?.state == .superseded)
        #expect(outcome.case.closeReason == .cancelledByConsumer)
        #expect(store.openCaseID(orderID: "o-1", orderLineID: "1") == nil)
        // The order line is free again.
        let second = try store.apply(Fixture.create(Fixture.newCase()), now: t0 + 2)
        #expect(second.case.caseID == "AS0000000002")
    }
}
