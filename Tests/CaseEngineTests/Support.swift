import CaseEngine

/// Shared fixtures: one consumer, one merchant, a fixed start instant, and helpers that
/// drive a store into any status through the public API only.
enum Fixture {
    /// 2026-11-26T16:00:00.000Z, so a proposal issued then is pending until 2026-11-27T04:00:00.000Z.
    static let t0: Millis = 1_795_708_800_000
    static let consumer = "c-1001"
    static let merchant = "m-2001"
    static let paid: Int64 = 10_000
    static let config = EngineConfig()

    static let defectPhoto = Evidence(kind: .photo, tags: [.defect], description: "cracked screen", addedAt: 0)

    static func newCase(
        order: String = "o-1", line: String = "1", category: String = "electronics", type: CaseType? = .refundOnly,
        delivery: DeliveryState? = .signed, paid: Int64 = paid, refund: Int64 = paid, signals: Signals = Signals()
    ) -> NewCase {
        NewCase(orderID: order, orderLineID: line, consumerID: consumer, merchantID: merchant, category: category,
                type: type, delivery: delivery, paidAmount: paid, refundAmount: refund, reason: "broken", signals: signals)
    }

    static func create(_ new: NewCase) -> Request {
        Request(caseID: nil, actor: .consumer, actorID: new.consumerID, command: .create(new))
    }

    static func consumer(_ caseID: String, _ command: Command, version: UInt64? = nil) -> Request {
        Request(caseID: caseID, actor: .consumer, actorID: consumer, expectedVersion: version, command: command)
    }

    static func merchant(_ caseID: String, _ command: Command, version: UInt64? = nil) -> Request {
        Request(caseID: caseID, actor: .merchant, actorID: merchant, expectedVersion: version, command: command)
    }

    static func platform(_ caseID: String, _ command: Command) -> Request {
        Request(caseID: caseID, actor: .platform, actorID: "op-7", command: command)
    }

    static func system(_ caseID: String, _ command: Command) -> Request {
        Request(caseID: caseID, actor: .system, actorID: "", command: command)
    }

    /// The request a correct party would send for `command`.
    static func byRightParty(_ caseID: String, _ command: Command) -> Request {
        switch command.requiredParty {
        case .consumer: consumer(caseID, command)
        case .merchant: merchant(caseID, command)
        case .platform: platform(caseID, command)
        case .system: system(caseID, command)
        }
    }

    /// A store holding one case in `status`, reached through the public API; returns the
    /// store, the case id and the instant the case reached the status.
    static func store(in status: CaseStatus) throws -> (store: CaseStore, caseID: String, now: Millis) {
        var store = CaseStore(config: config)
        var now = t0
        let intervenes = status == .proposalPending || status == .awaitingReturnShipment || status == .awaitingMerchantReceipt
        let signals = intervenes ? Signals(evidence: [defectPhoto]) : Signals()
        let id = try store.apply(create(newCase(signals: signals)), now: now).case.caseID
        now += TimeSpan.hour
        func step(_ request: Request) throws { _ = try store.apply(request, now: now) }
        switch status {
        case .awaitingMerchantReview, .proposalPending:
            break
        case .merchantOfferPending:
            try step(merchant(id, .merchantOffer(OfferTerms(type: .refundOnly, refundAmount: 5_000, note: "half back"))))
        case .merchantRejected:
            try step(merchant(id, .merchantReject(reason: "used")))
        case .platformArbitration:
            try step(merchant(id, .merchantReject(reason: "used")))
            try step(consumer(id, .escalate(note: "please look")))
        case .awaitingReturnShipment:
            try step(consumer(id, .respondToProposal(.accept)))
        case .awaitingMerchantReceipt:
            try step(consumer(id, .respondToProposal(.accept)))
            try step(consumer(id, .submitReturnShipment(carrier: "SF", trackingNumber: "SF123")))
        case .refunded:
            try step(merchant(id, .merchantAgree(note: "")))
        case .closed:
            try step(consumer(id, .cancel(note: "changed my mind")))
        }
        return (store, id, now)
    }
}

/// Runs `body` and returns its CaseError, or nil if it succeeded.
func caseError<T>(_ body: () throws(CaseError) -> T) -> CaseError? {
    do {
        _ = try body()
        return nil
    } catch {
        return error
    }
}
