// The reducer: (case, request, now) → (case', announcements) or a typed error. Every step
// of SPEC.md §3 is one arm of the `switch` in `reduce`; the store feeds it requests and
// carries the outcome out. Nothing else changes a case.

/// The state machine of SPEC.md §3 as a pure function.
public struct CaseMachine: Sendable {
    /// The settings the rules read.
    public let config: EngineConfig
    /// The intervention judgement.
    public let policy: InterventionPolicy

    /// Creates the machine for `config`.
    public init(config: EngineConfig) {
        self.config = config
        policy = InterventionPolicy(config: config)
    }

    // MARK: - Create

    /// Opens a case with id `caseID` (assigned by the store, which also enforces one open
    /// case per order line): AWAITING_MERCHANT_REVIEW with the review clock running, then
    /// the judgement at once, which may issue the proposal in the same step.
    public func create(_ request: Request, caseID: String, now: Millis) throws(CaseError) -> Outcome {
        guard case let .create(new) = request.command else {
            throw .invalidArgument(field: "command", message: "create(caseID:) takes a create command, got \(request.command.name)")
        }
        guard request.actor == .consumer else {
            throw .permissionDenied("create is a CONSUMER step; actor \(request.actor.rawValue) may not take it")
        }
        try validate(new)
        guard request.actorID == new.consumerID else {
            throw .permissionDenied("consumer '\(request.actorID)' may not open a case for consumer '\(new.consumerID)'")
        }
        var signals = new.signals
        for index in signals.evidence.indices { signals.evidence[index].addedAt = now }
        let fresh = Case(
            caseID: caseID, orderID: new.orderID, orderLineID: new.orderLineID, consumerID: new.consumerID,
            merchantID: new.merchantID, category: new.category, reason: new.reason, type: new.type!,
            delivery: new.delivery!, paidAmount: new.paidAmount, refundAmount: new.refundAmount,
            status: .awaitingMerchantReview, signals: signals,
            deadline: Deadline(kind: .merchantReview, dueAt: now + config.merchantReviewWindow),
            createdAt: now, updatedAt: now, version: 0)
        var step = Transition(subject: fresh, statusBefore: nil, request: request, now: now)
        step.record(.create, to: .awaitingMerchantReview, note: new.reason)
        step.announce(.caseCreated)
        judgeAndMaybePropose(&step)
        return step.outcome()
    }

    /// Checks a new case's fields (SPEC §2): INVALID_ARGUMENT naming the proto field.
    public func validate(_ new: NewCase) throws(CaseError) {
        let limits = config.limits
        try requireText(new.orderID, field: "order_id", max: limits.maxIdentifierBytes)
        try limitText(new.orderLineID, field: "order_line_id", max: limits.maxIdentifierBytes)
        try requireText(new.consumerID, field: "consumer_id", max: limits.maxIdentifierBytes)
        try requireText(new.merchantID, field: "merchant_id", max: limits.maxIdentifierBytes)
        try requireText(new.category, field: "category", max: limits.maxIdentifierBytes)
        try limitText(new.reason, field: "reason", max: limits.maxTextBytes)
        guard new.type != nil else {
            throw .invalidArgument(field: "type", message: "required: REFUND_ONLY or RETURN_AND_REFUND")
        }
        guard new.delivery != nil else {
            throw .invalidArgument(field: "delivery", message: "required: NOT_SHIPPED, IN_TRANSIT, SIGNED or REFUSED")
        }
        guard new.paidAmount > 0 else {
            throw .invalidArgument(field: "paid_amount", message: "must be > 0, got \(new.paidAmount)")
        }
        try checkRefundAmount(new.refundAmount, paid: new.paidAmount, field: "refund_amount")
        let signals = new.signals
        guard signals.merchantComplaintRateBasisPoints <= 10_000 else {
            throw .invalidArgument(field: "signals.merchant_complaint_rate_bp",
                                   message: "must be 0..10000 basis points, got \(signals.merchantComplaintRateBasisPoints)")
        }
        guard signals.evidence.count <= limits.maxEvidenceItems else {
            throw .invalidArgument(field: "signals.evidence",
                                   message: "at most \(limits.maxEvidenceItems) items, got \(signals.evidence.count)")
        }
        for item in signals.evidence {
            try validateEvidence(NewEvidence(kind: item.kind, tags: item.tags, description: item.description, uri: item.uri),
                                 field: "signals.evidence")
        }
    }

    // MARK: - Every later step

    /// Applies one request to an existing case. Throws, changing nothing, when the party,
    /// the version, the status or an argument is wrong.
    public func reduce(_ current: Case, _ request: Request, now: Millis) throws(CaseError) -> Outcome {
        try authorize(request, on: current)
        if let expected = request.expectedVersion, expected != 0, expected != current.version {
            throw .aborted("case \(current.caseID) is at version \(current.version), you expected \(expected); re-read and retry")
        }
        guard !current.status.isTerminal else {
            throw .failedPrecondition("case \(current.caseID) is \(current.status.rawValue), a terminal status; it accepts no further step")
        }
        var step = Transition(subject: current, statusBefore: current.status, request: request, now: now)
        let status = current.status

        switch (request.command, status) {
        case (.create, _):
            throw .alreadyExists("case \(current.caseID) already exists; create takes no case_id")

        // Signals arrive in any open status; the judgement re-runs while the case is eligible.
        case let (.addEvidence(evidence), _):
            try addEvidence(evidence, &step)
        case let (.updateLogistics(delivery, anomalies), _):
            try updateLogistics(delivery: delivery, anomalies: anomalies, &step)

        // PROPOSAL_PENDING: the consumer answers; the merchant may only agree (SPEC §1.6).
        case (.respondToProposal(.accept), .proposalPending):
            step.subject.proposal!.state = .accepted
            step.subject.proposal!.decidedAt = now
            step.subject.type = .returnAndRefund
            step.subject.pausedReviewRemaining = nil
            startReturn(&step, payer: .merchant, action: .proposalAccept)
            step.announce(.proposalAccepted)
        case (.respondToProposal(.reject), .proposalPending):
            step.subject.proposal!.state = .rejected
            step.subject.proposal!.decidedAt = now
            resumeReview(&step, action: .proposalReject)
            step.announce(.proposalRejected)
        case (.merchantAgree(let note), .proposalPending):
            try limitText(note, field: "note", max: config.limits.maxTextBytes)
            step.subject.proposal!.state = .superseded
            step.subject.proposal!.decidedAt = now
            step.subject.pausedReviewRemaining = nil
            step.announce(.proposalSuperseded)
            agreeToRequest(&step, action: .merchantAgree, note: note, refundReason: .merchantAgreed)
        case (.merchantReject, .proposalPending), (.merchantOffer, .proposalPending):
            let until = ISO8601.format(current.pendingProposal?.expiresAt ?? current.deadline?.dueAt ?? now)
            throw .failedPrecondition(
                "platform proposal pending until \(until); the merchant may only agree to the original request until then")

        // AWAITING_MERCHANT_REVIEW: the merchant decides.
        case (.merchantAgree(let note), .awaitingMerchantReview):
            try limitText(note, field: "note", max: config.limits.maxTextBytes)
            agreeToRequest(&step, action: .merchantAgree, note: note, refundReason: .merchantAgreed)
        case (.merchantReject(let reason), .awaitingMerchantReview):
            try requireText(reason, field: "reason", max: config.limits.maxTextBytes)
            step.subject.deadline = Deadline(kind: .escalation, dueAt: now + config.escalationWindow)
            step.record(.merchantReject, to: .merchantRejected, note: reason)
            step.announce(.caseUpdated)
        case (.merchantOffer(let terms), .awaitingMerchantReview):
            let offer = try makeOffer(terms, for: current, now: now)
            step.subject.merchantOffer = offer
            step.subject.deadline = Deadline(kind: .offerAnswer, dueAt: offer.expiresAt)
            step.record(.merchantOffer, to: .merchantOfferPending, note: describe(offer))
            step.announce(.offerMade)

        // MERCHANT_OFFER_PENDING: the consumer answers the merchant's offer.
        case (.respondToOffer(.accept), .merchantOfferPending):
            let offer = current.merchantOffer!
            step.subject.merchantOffer!.state = .accepted
            step.subject.refundAmount = offer.refundAmount
            step.subject.type = offer.type
            step.announce(.offerAccepted)
            switch offer.type {
            case .refundOnly:
                refund(&step, reason: .offerAccepted, action: .offerAccept)
            case .returnAndRefund:
                startReturn(&step, payer: offer.returnShippingPayer ?? .consumer, action: .offerAccept)
            }
        case (.respondToOffer(.reject), .merchantOfferPending):
            step.subject.merchantOffer!.state = .rejected
            restartReview(&step, action: .offerReject)
            step.announce(.offerRejected)

        // MERCHANT_REJECTED: the consumer may escalate (商家拒绝后平台介入).
        case (.escalate(let note), .merchantRejected):
            try limitText(note, field: "note", max: config.limits.maxTextBytes)
            step.subject.deadline = nil
            step.record(.escalate, to: .platformArbitration, note: note)
            step.announce(.caseEscalated)

        // PLATFORM_ARBITRATION: the platform rules.
        case let (.platformResolve(ruling, note), .platformArbitration):
            try requireText(request.actorID, field: "operator_id", max: config.limits.maxIdentifierBytes)
            try limitText(note, field: "note", max: config.limits.maxTextBytes)
            switch ruling {
            case .refund:
                step.subject.type = .refundOnly
                refund(&step, reason: .ruledForConsumer, action: .platformResolve, note: note)
            case .returnAndRefund:
                step.subject.type = .returnAndRefund
                startReturn(&step, payer: .merchant, action: .platformResolve, note: note)
                step.announce(.caseUpdated)
            case .closeForMerchant:
                close(&step, reason: .ruledForMerchant, action: .platformResolve, note: note)
            }

        // AWAITING_RETURN_SHIPMENT → AWAITING_MERCHANT_RECEIPT → REFUNDED.
        case let (.submitReturnShipment(carrier, trackingNumber), .awaitingReturnShipment):
            try requireText(carrier, field: "carrier", max: config.limits.maxIdentifierBytes)
            try requireText(trackingNumber, field: "tracking_number", max: config.limits.maxIdentifierBytes)
            step.subject.returnShipment = ReturnShipment(carrier: carrier, trackingNumber: trackingNumber, shippedAt: now)
            step.subject.deadline = Deadline(kind: .merchantReceipt, dueAt: now + config.merchantReceiptWindow)
            step.record(.returnShip, to: .awaitingMerchantReceipt, note: "\(carrier) \(trackingNumber)")
            step.announce(.caseUpdated)
        case (.confirmReturnReceived, .awaitingMerchantReceipt):
            refund(&step, reason: .returnReceived, action: .returnReceive)

        // Cancel: any open status until the goods are on their way back.
        case (.cancel(let note), _) where status != .awaitingMerchantReceipt:
            try limitText(note, field: "note", max: config.limits.maxTextBytes)
            if current.pendingProposal != nil {
                step.subject.proposal!.state = .superseded
                step.subject.proposal!.decidedAt = now
                step.announce(.proposalSuperseded)
            }
            if current.pendingOffer != nil {
                step.subject.merchantOffer!.state = .withdrawn
                step.announce(.offerWithdrawn)
            }
            close(&step, reason: .cancelledByConsumer, action: .cancel, note: note)

        // The clock.
        case let (.fireDeadline(kind), _):
            try fireDeadline(kind, &step)

        default:
            throw notAllowed(request.command, in: current)
        }
        return step.outcome()
    }

    // MARK: - Deadlines

    /// What each clock does when it runs out; `late` when it fires past the tolerance
    /// (the daemon was down at the due time and fires it at start-up).
    private func fireDeadline(_ kind: DeadlineKind, _ step: inout Transition) throws(CaseError) {
        let current = step.subject
        guard let deadline = current.deadline, deadline.kind == kind else {
            let actual = current.deadline.map { "\($0.kind.rawValue) due \(ISO8601.format($0.dueAt))" } ?? "none"
            throw .failedPrecondition("case \(current.caseID) has no \(kind.rawValue) deadline (current deadline: \(actual))")
        }
        guard deadline.dueAt <= step.now else {
            throw .failedPrecondition("\(kind.rawValue) deadline of case \(current.caseID) is due at \(ISO8601.format(deadline.dueAt)), not yet")
        }
        step.late = step.now - deadline.dueAt > config.lateTolerance
        switch kind {
        case .merchantReview:
            // Auto-agree, as mainstream platforms do when the merchant stays silent.
            step.announce(.merchantReviewLapsed)
            agreeToRequest(&step, action: .merchantReviewLapsed, note: "merchant review window lapsed; request auto-agreed",
                           refundReason: .reviewWindowLapsed)
        case .proposalExpiry:
            step.subject.proposal!.state = .expired
            step.subject.proposal!.decidedAt = step.now
            resumeReview(&step, action: .proposalExpire)
            step.announce(.proposalExpired)
        case .offerAnswer:
            step.subject.merchantOffer!.state = .lapsed
            restartReview(&step, action: .offerLapse)
            step.announce(.offerLapsed)
        case .escalation:
            step.announce(.escalationLapsed)
            close(&step, reason: .escalationWindowLapsed, action: .escalationLapsed)
        case .returnShipment:
            step.announce(.returnShipmentLapsed)
            close(&step, reason: .returnWindowLapsed, action: .returnShipmentLapsed)
        case .merchantReceipt:
            step.announce(.merchantReceiptLapsed)
            refund(&step, reason: .receiptWindowLapsed, action: .merchantReceiptLapsed)
        }
    }

    // MARK: - Signals and the judgement

    private func addEvidence(_ evidence: NewEvidence, _ step: inout Transition) throws(CaseError) {
        try validateEvidence(evidence, field: "evidence")
        let limit = config.limits.maxEvidenceItems
        guard step.subject.signals.evidence.count < limit else {
            throw .failedPrecondition("case \(step.subject.caseID) already holds \(limit) evidence items, the most allowed")
        }
        step.subject.signals.evidence.append(Evidence(kind: evidence.kind!, tags: evidence.tags, description: evidence.description,
                                                      uri: evidence.uri, addedAt: step.now))
        let tags = evidence.tags.map(\.rawValue).joined(separator: ",")
        step.record(.evidenceAdd, to: step.subject.status, note: "\(evidence.kind!.rawValue) [\(tags)] \(evidence.description)")
        step.announce(.caseUpdated)
        judgeAndMaybePropose(&step)
    }

    private func updateLogistics(delivery: DeliveryState?, anomalies: [LogisticsAnomaly], _ step: inout Transition) throws(CaseError) {
        guard delivery != nil || !anomalies.isEmpty else {
            throw .invalidArgument(field: "delivery", message: "give a new delivery state or at least one anomaly")
        }
        var changes: [String] = []
        if let delivery, delivery != step.subject.delivery {
            changes.append("delivery \(step.subject.delivery.rawValue) -> \(delivery.rawValue)")
            step.subject.delivery = delivery
        }
        let known = step.subject.signals.logisticsAnomalies
        if step.subject.signals.addAnomalies(anomalies) {
            let added = step.subject.signals.logisticsAnomalies.filter { !known.contains($0) }
            changes.append("anomalies +" + added.map(\.rawValue).joined(separator: ","))
        }
        // Repeating what is already known changes nothing, so it is not a new version.
        guard !changes.isEmpty else {
            step.judgement = policy.judge(step.subject)
            return
        }
        step.record(.logisticsUpdate, to: step.subject.status, note: changes.joined(separator: "; "))
        step.announce(.caseUpdated)
        judgeAndMaybePropose(&step)
    }

    /// Runs the judgement; if it intervenes, issues the proposal (SPEC §3 "Issuing") and
    /// pauses the merchant review clock with the time it has left.
    private func judgeAndMaybePropose(_ step: inout Transition) {
        let judgement = policy.judge(step.subject)
        step.judgement = judgement
        guard judgement.intervene, let issueKind = judgement.issueKind else { return }
        let now = step.now
        let reviewDue = step.subject.deadline?.dueAt ?? now + config.merchantReviewWindow
        let expiresAt = now + config.proposalValidity
        step.subject.pausedReviewRemaining = max(0, reviewDue - now)
        step.subject.proposal = Proposal(issuedAt: now, expiresAt: expiresAt, state: .pending, issueKind: issueKind,
                                         reasons: judgement.reasons, score: judgement.score)
        step.subject.deadline = Deadline(kind: .proposalExpiry, dueAt: expiresAt)
        step.record(.proposalIssue, to: .proposalPending,
                    note: "\(issueKind.rawValue) score \(judgement.score)/\(judgement.threshold): \(judgement.reasons.joined(separator: ","))",
                    actor: .platform, actorID: "intervention-policy")
        step.announce(.proposalIssued)
    }

    // MARK: - Shared moves

    /// The merchant (or its lapsed clock) agrees to the request as it stands.
    private func agreeToRequest(_ step: inout Transition, action: HistoryAction, note: String, refundReason: RefundReason) {
        switch step.subject.type {
        case .refundOnly:
            refund(&step, reason: refundReason, action: action, note: note)
        case .returnAndRefund:
            // An ordinary return is shipped at the consumer's cost unless the platform
            // already made the merchant pay.
            startReturn(&step, payer: step.subject.returnShippingPayer ?? .consumer, action: action, note: note)
            // A lapse already announced itself; an explicit agreement needs a topic of its own.
            if step.topics.isEmpty { step.announce(.caseUpdated) }
        }
    }

    private func startReturn(_ step: inout Transition, payer: ShippingPayer, action: HistoryAction, note: String = "") {
        step.subject.returnShippingPayer = payer
        step.subject.pausedReviewRemaining = nil
        step.subject.deadline = Deadline(kind: .returnShipment, dueAt: step.now + config.returnShipmentWindow)
        step.record(action, to: .awaitingReturnShipment, note: note.isEmpty ? "return shipping paid by \(payer.rawValue)" : note)
    }

    private func refund(_ step: inout Transition, reason: RefundReason, action: HistoryAction, note: String = "") {
        step.subject.refundReason = reason
        step.subject.deadline = nil
        step.subject.pausedReviewRemaining = nil
        step.record(action, to: .refunded, note: note.isEmpty ? "refund \(step.subject.refundAmount): \(reason.rawValue)" : note)
        step.announce(.caseRefunded)
    }

    private func close(_ step: inout Transition, reason: CloseReason, action: HistoryAction, note: String = "") {
        step.subject.closeReason = reason
        step.subject.deadline = nil
        step.subject.pausedReviewRemaining = nil
        step.record(action, to: .closed, note: note.isEmpty ? reason.rawValue : note)
        step.announce(.caseClosed)
    }

    /// Back to review after a proposal: the paused clock resumes with the time it had left.
    private func resumeReview(_ step: inout Transition, action: HistoryAction) {
        let remaining = step.subject.pausedReviewRemaining ?? config.merchantReviewWindow
        step.subject.pausedReviewRemaining = nil
        step.subject.deadline = Deadline(kind: .merchantReview, dueAt: step.now + remaining)
        step.record(action, to: .awaitingMerchantReview, note: "merchant review resumes with \(remaining) ms left")
    }

    /// Back to review after an offer: the merchant spent its review by offering, so a
    /// fresh window starts (ours): resuming a remainder would let an offer made in the
    /// last minute leave the merchant no time to review the consumer's refusal.
    private func restartReview(_ step: inout Transition, action: HistoryAction) {
        step.subject.deadline = Deadline(kind: .merchantReview, dueAt: step.now + config.merchantReviewWindow)
        step.record(action, to: .awaitingMerchantReview, note: "merchant review restarts")
    }

    // MARK: - Checks

    /// PERMISSION_DENIED unless the request comes from the party the step belongs to, and
    /// for consumer and merchant steps from this case's consumer or merchant.
    private func authorize(_ request: Request, on subject: Case) throws(CaseError) {
        let party = request.command.requiredParty
        guard request.actor == party else {
            throw .permissionDenied("\(request.command.name) is a \(party.rawValue) step; actor \(request.actor.rawValue) may not take it")
        }
        switch party {
        case .consumer where request.actorID != subject.consumerID:
            throw .permissionDenied("consumer '\(request.actorID)' is not the consumer of case \(subject.caseID)")
        case .merchant where request.actorID != subject.merchantID:
            throw .permissionDenied("merchant '\(request.actorID)' is not the merchant of case \(subject.caseID)")
        default:
            break
        }
    }

    private func notAllowed(_ command: Command, in subject: Case) -> CaseError {
        let allowed = Self.allowedSteps(in: subject.status).joined(separator: ", ")
        return .failedPrecondition(
            "\(command.name) is not allowed while case \(subject.caseID) is \(subject.status.rawValue); allowed now: \(allowed)")
    }

    /// The steps a status accepts besides its own deadline firing (SPEC §3 table).
    public static func allowedSteps(in status: CaseStatus) -> [String] {
        let signals = ["add_evidence", "update_logistics"]
        switch status {
        case .awaitingMerchantReview: return ["merchant_agree", "merchant_reject", "merchant_offer", "cancel"] + signals
        case .proposalPending: return ["respond_to_proposal", "merchant_agree", "cancel"] + signals
        case .merchantOfferPending: return ["respond_to_offer", "cancel"] + signals
        case .merchantRejected: return ["escalate", "cancel"] + signals
        case .platformArbitration: return ["platform_resolve", "cancel"] + signals
        case .awaitingReturnShipment: return ["submit_return_shipment", "cancel"] + signals
        case .awaitingMerchantReceipt: return ["confirm_return_received"] + signals
        case .refunded, .closed: return []
        }
    }

    private func makeOffer(_ terms: OfferTerms, for subject: Case, now: Millis) throws(CaseError) -> MerchantOffer {
        guard let type = terms.type else {
            throw .invalidArgument(field: "type", message: "required: REFUND_ONLY or RETURN_AND_REFUND")
        }
        try checkRefundAmount(terms.refundAmount, paid: subject.paidAmount, field: "refund_amount")
        try limitText(terms.note, field: "note", max: config.limits.maxTextBytes)
        var payer: ShippingPayer? = nil
        if type == .returnAndRefund {
            guard let given = terms.returnShippingPayer else {
                throw .invalidArgument(field: "return_shipping_payer", message: "required for a RETURN_AND_REFUND offer: CONSUMER or MERCHANT")
            }
            payer = given
        }
        return MerchantOffer(type: type, refundAmount: terms.refundAmount, returnShippingPayer: payer, note: terms.note,
                             offeredAt: now, expiresAt: now + config.offerAnswerWindow, state: .pending)
    }

    private func describe(_ offer: MerchantOffer) -> String {
        let payer = offer.returnShippingPayer.map { ", shipping paid by \($0.rawValue)" } ?? ""
        return "\(offer.type.rawValue) \(offer.refundAmount)\(payer)" + (offer.note.isEmpty ? "" : ": \(offer.note)")
    }

    private func validateEvidence(_ evidence: NewEvidence, field: String) throws(CaseError) {
        let limits = config.limits
        guard evidence.kind != nil else {
            throw .invalidArgument(field: "\(field).kind", message: "required: PHOTO, VIDEO or TEXT")
        }
        guard evidence.tags.count <= limits.maxTagsPerEvidence else {
            throw .invalidArgument(field: "\(field).tags", message: "at most \(limits.maxTagsPerEvidence) tags, got \(evidence.tags.count)")
        }
        try limitText(evidence.description, field: "\(field).description", max: limits.maxTextBytes)
        try limitText(evidence.uri, field: "\(field).uri", max: limits.maxURIBytes)
    }

    private func checkRefundAmount(_ amount: Int64, paid: Int64, field: String) throws(CaseError) {
        guard amount > 0 else {
            throw .invalidArgument(field: field, message: "must be > 0, got \(amount)")
        }
        guard amount <= paid else {
            throw .invalidArgument(field: field, message: "\(field) \(amount) exceeds paid_amount \(paid)")
        }
    }

    private func requireText(_ text: String, field: String, max: Int) throws(CaseError) {
        guard !text.isEmpty else { throw .invalidArgument(field: field, message: "required, got an empty string") }
        try limitText(text, field: field, max: max)
    }

    private func limitText(_ text: String, field: String, max: Int) throws(CaseError) {
        guard text.utf8.count <= max else {
            throw .invalidArgument(field: field, message: "at most \(max) bytes, got \(text.utf8.count)")
        }
    }
}
