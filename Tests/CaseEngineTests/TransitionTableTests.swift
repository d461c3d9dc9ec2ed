import CaseEngine
import Testing

/// Every (status × command) pair: the allowed ones give the transition, announcements and
/// deadline SPEC.md §3 names; the rest give FAILED_PRECONDITION and change nothing.
@Suite struct TransitionTableTests {
    /// One representative, valid command per step of SPEC §3.
    static let commands: [(label: String, command: Command)] = [
        ("add_evidence", .addEvidence(NewEvidence(kind: .text, tags: [], description: "more detail"))),
        ("update_logistics", .updateLogistics(delivery: nil, anomalies: [.lateDelivery])),
        ("accept_proposal", .respondToProposal(.accept)),
        ("reject_proposal", .respondToProposal(.reject)),
        ("merchant_agree", .merchantAgree(note: "ok")),
        ("merchant_reject", .merchantReject(reason: "item was used")),
        ("merchant_offer", .merchantOffer(OfferTerms(type: .refundOnly, refundAmount: 5_000))),
        ("accept_offer", .respondToOffer(.accept)),
        ("reject_offer", .respondToOffer(.reject)),
        ("escalate", .escalate(note: "unfair")),
        ("platform_resolve", .platformResolve(.refund, note: "evidence is clear")),
        ("submit_return", .submitReturnShipment(carrier: "SF", trackingNumber: "SF999")),
        ("confirm_receipt", .confirmReturnReceived),
        ("cancel", .cancel(note: "never mind")),
        ("fire_own_deadline", .fireDeadline(.merchantReview)),  // kind replaced per status below
    ]

    /// (status, command label) → (status after, topics). Every pair not listed must fail.
    static let allowed: [CaseStatus: [String: (CaseStatus, [Topic])]] = [
        .awaitingMerchantReview: [
            "add_evidence": (.awaitingMerchantReview, [.caseUpdated]),
            "update_logistics": (.awaitingMerchantReview, [.caseUpdated]),
            "merchant_agree": (.refunded, [.caseRefunded]),
            "merchant_reject": (.merchantRejected, [.caseUpdated]),
            "merchant_offer": (.merchantOfferPending, [.offerMade]),
            "cancel": (.closed, [.caseClosed]),
            "fire_own_deadline": (.refunded, [.merchantReviewLapsed, .caseRefunded]),
        ],
        .proposalPending: [
            "add_evidence": (.proposalPending, [.caseUpdated]),
            "update_logistics": (.proposalPending, [.caseUpdated]),
            "accept_proposal": (.awaitingReturnShipment, [.proposalAccepted]),
            "reject_proposal": (.awaitingMerchantReview, [.proposalRejected]),
            "merchant_agree": (.refunded, [.proposalSuperseded, .caseRefunded]),
            "cancel": (.closed, [.proposalSuperseded, .caseClosed]),
            "fire_own_deadline": (.awaitingMerchantReview, [.proposalExpired]),
        ],
        .merchantOfferPending: [
            "add_evidence": (.merchantOfferPending, [.caseUpdated]),
            "update_logistics": (.merchantOfferPending, [.caseUpdated]),
            "accept_offer": (.refunded, [.offerAccepted, .caseRefunded]),
            "reject_offer": (.awaitingMerchantReview, [.offerRejected]),
            "cancel": (.closed, [.offerWithdrawn, .caseClosed]),
            "fire_own_deadline": (.awaitingMerchantReview, [.offerLapsed]),
        ],
        .merchantRejected: [
            "add_evidence": (.merchantRejected, [.caseUpdated]),
            "update_logistics": (.merchantRejected, [.caseUpdated]),
            "escalate": (.platformArbitration, [.caseEscalated]),
            "cancel": (.closed, [.caseClosed]),
            "fire_own_deadline": (.closed, [.escalationLapsed, .caseClosed]),
        ],
        .platformArbitration: [
            "add_evidence": (.platformArbitration, [.caseUpdated]),
            "update_logistics": (.platformArbitration, [.caseUpdated]),
            "platform_resolve": (.refunded, [.caseRefunded]),
            "cancel": (.closed, [.caseClosed]),
        ],
        .awaitingReturnShipment: [
            "add_evidence": (.awaitingReturnShipment, [.caseUpdated]),
            "update_logistics": (.awaitingReturnShipment, [.caseUpdated]),
            "submit_return": (.awaitingMerchantReceipt, [.caseUpdated]),
            "cancel": (.closed, [.caseClosed]),
            "fire_own_deadline": (.closed, [.returnShipmentLapsed, .caseClosed]),
        ],
        .awaitingMerchantReceipt: [
            "add_evidence": (.awaitingMerchantReceipt, [.caseUpdated]),
            "update_logistics": (.awaitingMerchantReceipt, [.caseUpdated]),
            "confirm_receipt": (.refunded, [.caseRefunded]),
            "fire_own_deadline": (.refunded, [.merchantReceiptLapsed, .caseRefunded]),
        ],
        .refunded: [:],
        .closed: [:],
    ]

    /// The window each status's deadline is set to when a step enters it at `now`.
    static func window(for kind: DeadlineKind, config: EngineConfig) -> Millis {
        switch kind {
        case .merchantReview: config.merchantReviewWindow
        case .proposalExpiry: config.proposalValidity
        case .offerAnswer: config.offerAnswerWindow
        case .escalation: config.escalationWindow
        case .returnShipment: config.returnShipmentWindow
        case .merchantReceipt: config.merchantReceiptWindow
        }
    }

    @Test(arguments: CaseStatus.allCases)
    func everyCommandIn(status: CaseStatus) throws {
        for (label, template) in Self.commands {
            let (original, caseID, reachedAt) = try Fixture.store(in: status)
            let before = try #require(original[caseID])
            var command = template
            var now = reachedAt + TimeSpan.minute
            if label == "fire_own_deadline" {
                // Fire the status's own clock exactly when due; a status without a clock
                // gets the review kind, which it does not hold.
                command = .fireDeadline(status.deadlineKind ?? .merchantReview)
                now = before.deadline?.dueAt ?? now
            }
            var store = original
            let request = Fixture.byRightParty(caseID, command)
            let result = Result { () throws(CaseError) -> Outcome in try store.apply(request, now: now) }

            if let (expectedStatus, expectedTopics) = Self.allowed[status]?[label] {
                let outcome = try result.get()
                let after = outcome.case
                #expect(after.status == expectedStatus, "\(status) × \(label)")
                #expect(outcome.announcements.map(\.topic) == expectedTopics, "\(status) × \(label)")
                #expect(outcome.announcements.allSatisfy { $0.caseID == caseID && $0.previousStatus == status && $0.status == expectedStatus })
                #expect(after.version == before.version + 1, "\(status) × \(label)")
                #expect(after.history.count > before.history.count, "\(status) × \(label) appends history")
                #expect(after.history.last?.toStatus == expectedStatus)
                #expect(after.updatedAt == now)
                #expect(after.deadline?.kind == expectedStatus.deadlineKind, "\(status) × \(label): deadline kind")
                if expectedStatus != status, let deadline = after.deadline, expectedStatus != .awaitingMerchantReview {
                    // Fresh steps get their full window; review resumption is tested on its own.
                    #expect(deadline.dueAt == now + Self.window(for: deadline.kind, config: Fixture.config), "\(status) × \(label)")
                }
                if expectedStatus == status {
                    #expect(after.deadline == before.deadline, "\(status) × \(label): signals leave the clock alone")
                }
                #expect(store[caseID] == after)
            } else {
                guard case .failure(let error) = result else {
                    Issue.record("\(status) × \(label) should be refused but succeeded")
                    continue
                }
                guard case .failedPrecondition(let message) = error else {
                    Issue.record("\(status) × \(label): expected FAILED_PRECONDITION, got \(error)")
                    continue
                }
                if label != "fire_own_deadline" && status != .proposalPending {
                    #expect(message.contains(status.rawValue), "\(status) × \(label): message names the status: \(message)")
                }
                #expect(store == original, "\(status) × \(label): a refused step changes nothing")
                #expect(store[caseID] == before)
            }
        }
    }

    @Test(arguments: CaseStatus.allCases)
    func wrongPartyIsPermissionDenied(status: CaseStatus) throws {
        let (original, caseID, now) = try Fixture.store(in: status)
        for (label, command) in Self.commands {
            for actor in Party.allCases where actor != command.requiredParty {
                var store = original
                let request = Request(caseID: caseID, actor: actor, actorID: actor == .consumer ? Fixture.consumer : Fixture.merchant, command: command)
                let error = caseError { () throws(CaseError) in try store.apply(request, now: now) }
                guard case .permissionDenied = error else {
                    Issue.record("\(status) × \(label) by \(actor): expected PERMISSION_DENIED, got \(String(describing: error))")
                    continue
                }
                #expect(store == original)
            }
            // The right party with someone else's id.
            if command.requiredParty == .consumer || command.requiredParty == .merchant {
                var store = original
                let request = Request(caseID: caseID, actor: command.requiredParty, actorID: "intruder", command: command)
                let error = caseError { () throws(CaseError) in try store.apply(request, now: now) }
                guard case .permissionDenied(let message) = error else {
                    Issue.record("\(status) × \(label) by intruder: got \(String(describing: error))")
                    continue
                }
                #expect(message.contains("intruder"))
                #expect(store == original)
            }
        }
    }

    @Test func staleVersionIsAbortedAndChangesNothing() throws {
        let (original, caseID, now) = try Fixture.store(in: .merchantRejected)
        var store = original
        let version = try #require(store[caseID]?.version)
        let error = caseError { () throws(CaseError) in
            try store.apply(Fixture.consumer(caseID, .escalate(note: ""), version: version - 1), now: now)
        }
        #expect(error == .aborted("case \(caseID) is at version \(version), you expected \(version - 1); re-read and retry"))
        #expect(error?.grpcCode == 10)
        #expect(store == original)
        let outcome = try store.apply(Fixture.consumer(caseID, .escalate(note: ""), version: version), now: now)
        #expect(outcome.case.version == version + 1)
    }

    @Test func unknownCaseIsNotFound() {
        var store = CaseStore()
        let error = caseError { () throws(CaseError) in try store.apply(Fixture.consumer("AS9999999999", .cancel(note: "")), now: Fixture.t0) }
        #expect(error == .notFound("no case with case_id 'AS9999999999'"))
        #expect(error?.grpcName == "NOT_FOUND")
    }
}
