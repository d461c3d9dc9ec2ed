// What a party asks the engine to do: one case of `Command` per step of SPEC.md §3.

/// The fields of a new case as the consumer submits them (proto CreateCaseRequest).
public struct NewCase: Sendable, Hashable {
    /// Required.
    public var orderID: String
    /// May be empty for an order with a single line.
    public var orderLineID: String
    /// Required; must equal the request's actorID when the actor is the consumer.
    public var consumerID: String
    /// Required.
    public var merchantID: String
    /// Required category code.
    public var category: String
    /// Required; nil stands for the proto's UNSPECIFIED.
    public var type: CaseType?
    /// Required; nil stands for the proto's UNSPECIFIED.
    public var delivery: DeliveryState?
    /// > 0.
    public var paidAmount: Int64
    /// 0 < refundAmount <= paidAmount.
    public var refundAmount: Int64
    /// The consumer's stated reason.
    public var reason: String
    /// What the platform knows at creation; evidence `addedAt` is overwritten with `now`.
    public var signals: Signals

    /// Creates the fields of a new case.
    public init(
        orderID: String, orderLineID: String = "", consumerID: String, merchantID: String, category: String,
        type: CaseType?, delivery: DeliveryState?, paidAmount: Int64, refundAmount: Int64,
        reason: String = "", signals: Signals = Signals()
    ) {
        self.orderID = orderID
        self.orderLineID = orderLineID
        self.consumerID = consumerID
        self.merchantID = merchantID
        self.category = category
        self.type = type
        self.delivery = delivery
        self.paidAmount = paidAmount
        self.refundAmount = refundAmount
        self.reason = reason
        self.signals = signals
    }
}

/// The terms of a merchant's negotiation offer (proto MerchantOfferRequest).
public struct OfferTerms: Sendable, Hashable {
    /// Required; nil stands for the proto's UNSPECIFIED.
    public var type: CaseType?
    /// 0 < refundAmount <= the case's paidAmount.
    public var refundAmount: Int64
    /// Required for a return-and-refund offer; ignored for refund-only.
    public var returnShippingPayer: ShippingPayer?
    /// The merchant's note to the consumer.
    public var note: String

    /// Creates offer terms.
    public init(type: CaseType?, refundAmount: Int64, returnShippingPayer: ShippingPayer? = nil, note: String = "") {
        self.type = type
        self.refundAmount = refundAmount
        self.returnShippingPayer = returnShippingPayer
        self.note = note
    }
}

/// One step of SPEC.md §3. Each names the party allowed to take it (`requiredParty`).
public enum Command: Sendable, Hashable {
    /// Consumer (or platform on the consumer's behalf) opens a case.
    case create(NewCase)
    /// Consumer adds evidence; the judgement runs again while the case is eligible.
    case addEvidence(NewEvidence)
    /// Platform reports a delivery change (nil = unchanged) and/or new anomalies.
    case updateLogistics(delivery: DeliveryState?, anomalies: [LogisticsAnomaly])
    /// Consumer answers the platform's proposal.
    case respondToProposal(Decision)
    /// Merchant agrees to the request as it stands.
    case merchantAgree(note: String)
    /// Merchant rejects the request; the reason is required.
    case merchantReject(reason: String)
    /// Merchant offers something else (商家主动协商).
    case merchantOffer(OfferTerms)
    /// Consumer answers the merchant's offer.
    case respondToOffer(Decision)
    /// Consumer escalates a rejected request to the platform.
    case escalate(note: String)
    /// Platform operator rules in arbitration.
    case platformResolve(Ruling, note: String)
    /// Consumer reports the return shipment; both fields required.
    case submitReturnShipment(carrier: String, trackingNumber: String)
    /// Merchant confirms the returned goods arrived.
    case confirmReturnReceived
    /// Consumer withdraws the request.
    case cancel(note: String)
    /// The clock: the case's current deadline of this kind has passed.
    case fireDeadline(DeadlineKind)

    /// The only party that may send this command.
    public var requiredParty: Party {
        switch self {
        case .create, .addEvidence, .respondToProposal, .respondToOffer, .escalate, .submitReturnShipment, .cancel:
            .consumer
        case .merchantAgree, .merchantReject, .merchantOffer, .confirmReturnReceived:
            .merchant
        case .updateLogistics, .platformResolve:
            .platform
        case .fireDeadline:
            .system
        }
    }

    /// The command's name as used in history and error messages.
    public var name: String {
        switch self {
        case .create: "create"
        case .addEvidence: "add_evidence"
        case .updateLogistics: "update_logistics"
        case .respondToProposal: "respond_to_proposal"
        case .merchantAgree: "merchant_agree"
        case .merchantReject: "merchant_reject"
        case .merchantOffer: "merchant_offer"
        case .respondToOffer: "respond_to_offer"
        case .escalate: "escalate"
        case .platformResolve: "platform_resolve"
        case .submitReturnShipment: "submit_return_shipment"
        case .confirmReturnReceived: "confirm_return_received"
        case .cancel: "cancel"
        case .fireDeadline: "fire_deadline"
        }
    }
}

/// A command with who sends it and on which case (one RPC call).
public struct Request: Sendable, Hashable {
    /// The case; ignored for `.create` (the store assigns the id).
    public var caseID: String?
    /// Who sends it.
    public var actor: Party
    /// The consumer, merchant or operator id; ignored for SYSTEM.
    public var actorID: String
    /// Optimistic concurrency: nil or 0 = any version; else must equal the case's version.
    public var expectedVersion: UInt64?
    /// What to do.
    public var command: Command
    /// The calling service, as the daemon authenticated it (empty when it does not):
    /// recorded in every history entry the request writes.
    public var client: String

    /// Creates a request.
    public init(caseID: String?, actor: Party, actorID: String, expectedVersion: UInt64? = nil, command: Command, client: String = "") {
        self.caseID = caseID
        self.actor = actor
        self.actorID = actorID
        self.expectedVersion = expectedVersion
        self.command = command
        self.client = client
    }
}
