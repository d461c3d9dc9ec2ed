// The enums of SPEC.md §2, case for case the proto's (without its *_UNSPECIFIED zero,
// which the daemon maps to `nil` where a value is optional and rejects where required).
// `code` is the proto's SCREAMING_SNAKE name without the enum prefix, for messages and
// reason codes.

/// What the consumer asks for (SPEC §2 `type`).
public enum CaseType: String, Sendable, Hashable, CaseIterable {
    /// 仅退款: money back, goods kept.
    case refundOnly = "REFUND_ONLY"
    /// 退货退款: goods sent back, then money back.
    case returnAndRefund = "RETURN_AND_REFUND"
}

/// Where the goods of the order line are (SPEC §2 `delivery`).
public enum DeliveryState: String, Sendable, Hashable, CaseIterable {
    /// Not yet handed to the carrier.
    case notShipped = "NOT_SHIPPED"
    /// With the carrier.
    case inTransit = "IN_TRANSIT"
    /// 签收: the consumer signed for the goods.
    case signed = "SIGNED"
    /// 拒签: the consumer refused delivery.
    case refused = "REFUSED"
}

/// The step a case is at (SPEC §3 table).
public enum CaseStatus: String, Sendable, Hashable, CaseIterable, Comparable {
    /// New request; the merchant reviews it.
    case awaitingMerchantReview = "AWAITING_MERCHANT_REVIEW"
    /// The platform's proposal is outstanding; the merchant may only agree.
    case proposalPending = "PROPOSAL_PENDING"
    /// The merchant's negotiation offer awaits the consumer.
    case merchantOfferPending = "MERCHANT_OFFER_PENDING"
    /// The merchant rejected; the consumer may escalate.
    case merchantRejected = "MERCHANT_REJECTED"
    /// The platform arbitrates after the merchant's rejection.
    case platformArbitration = "PLATFORM_ARBITRATION"
    /// Return agreed; the consumer ships the goods back.
    case awaitingReturnShipment = "AWAITING_RETURN_SHIPMENT"
    /// Return in transit; the merchant confirms receipt.
    case awaitingMerchantReceipt = "AWAITING_MERCHANT_RECEIPT"
    /// Terminal: the money was returned.
    case refunded = "REFUNDED"
    /// Terminal: closed without refund.
    case closed = "CLOSED"

    /// True for REFUNDED and CLOSED, which accept no step.
    public var isTerminal: Bool { self == .refunded || self == .closed }

    /// The kind of deadline a case in this status always carries; nil for statuses
    /// without a clock (PLATFORM_ARBITRATION waits for the platform) and terminal ones.
    public var deadlineKind: DeadlineKind? {
        switch self {
        case .awaitingMerchantReview: .merchantReview
        case .proposalPending: .proposalExpiry
        case .merchantOfferPending: .offerAnswer
        case .merchantRejected: .escalation
        case .awaitingReturnShipment: .returnShipment
        case .awaitingMerchantReceipt: .merchantReceipt
        case .platformArbitration, .refunded, .closed: nil
        }
    }

    /// Proto declaration order, so statuses sort as the proto lists them.
    public static func < (lhs: CaseStatus, rhs: CaseStatus) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}

/// Who took a step (SPEC §2 history `actor`).
public enum Party: String, Sendable, Hashable, CaseIterable {
    /// The buyer who opened the case.
    case consumer = "CONSUMER"
    /// The seller of the order line.
    case merchant = "MERCHANT"
    /// The platform: its logistics service, its judgement, its operators.
    case platform = "PLATFORM"
    /// The daemon itself, when a deadline passes.
    case system = "SYSTEM"
}

/// Who pays the return shipping.
public enum ShippingPayer: String, Sendable, Hashable, CaseIterable {
    /// The consumer pays (an ordinary return).
    case consumer = "CONSUMER"
    /// The merchant pays (退货退款包运费).
    case merchant = "MERCHANT"
}

/// A logistics problem reported by the carrier or the logistics service.
public enum LogisticsAnomaly: String, Sendable, Hashable, CaseIterable {
    /// The goods were damaged on the way.
    case damagedInTransit = "DAMAGED_IN_TRANSIT"
    /// Delivered after the promised date.
    case lateDelivery = "LATE_DELIVERY"
    /// Only part of the order line arrived.
    case partialDelivery = "PARTIAL_DELIVERY"
    /// Something other than what was ordered arrived.
    case wrongItem = "WRONG_ITEM"
    /// The carrier lost the goods.
    case lostInTransit = "LOST_IN_TRANSIT"
}

/// The medium of a piece of consumer evidence (举证).
public enum EvidenceKind: String, Sendable, Hashable, CaseIterable {
    /// A photo.
    case photo = "PHOTO"
    /// A video.
    case video = "VIDEO"
    /// A written statement only.
    case text = "TEXT"
}

/// What a piece of evidence shows.
public enum IssueTag: String, Sendable, Hashable, CaseIterable {
    /// The product does not work or is faulty.
    case defect = "DEFECT"
    /// The product is physically damaged.
    case damage = "DAMAGE"
    /// The product differs from its listing.
    case notAsDescribed = "NOT_AS_DESCRIBED"
    /// A part or accessory is missing.
    case missingPart = "MISSING_PART"
    /// Another product than the one ordered.
    case wrongItem = "WRONG_ITEM"
}

/// The life of a platform proposal.
public enum ProposalState: String, Sendable, Hashable, CaseIterable {
    /// Outstanding until `expiresAt`.
    case pending = "PENDING"
    /// The consumer accepted: return-and-refund, merchant pays shipping.
    case accepted = "ACCEPTED"
    /// The consumer rejected: the merchant reviews the original request.
    case rejected = "REJECTED"
    /// Nobody answered within its validity.
    case expired = "EXPIRED"
    /// Overtaken: the merchant agreed to the original request, or the consumer cancelled.
    case superseded = "SUPERSEDED"
}

/// Which problem the judgement found.
public enum IssueKind: String, Sendable, Hashable, CaseIterable {
    /// A logistics problem (carrier-reported anomalies).
    case logistics = "LOGISTICS"
    /// A product quality problem (evidence, merchant record).
    case quality = "QUALITY"
}

/// The life of a merchant's negotiation offer (商家主动协商).
public enum OfferState: String, Sendable, Hashable, CaseIterable {
    /// Awaiting the consumer's answer.
    case pending = "PENDING"
    /// The consumer accepted; the offer's terms now apply.
    case accepted = "ACCEPTED"
    /// The consumer rejected it.
    case rejected = "REJECTED"
    /// The consumer did not answer in time.
    case lapsed = "LAPSED"
    /// The case ended another way while it was pending (the consumer cancelled).
    case withdrawn = "WITHDRAWN"
}

/// A consumer's answer to a proposal or an offer.
public enum Decision: String, Sendable, Hashable, CaseIterable {
    /// Yes.
    case accept = "ACCEPT"
    /// No.
    case reject = "REJECT"
}

/// The platform's ruling in arbitration after a merchant's rejection.
public enum Ruling: String, Sendable, Hashable, CaseIterable {
    /// For the consumer: the refund is granted without a return.
    case refund = "REFUND"
    /// For the consumer: converted to return-and-refund, merchant pays the shipping.
    case returnAndRefund = "RETURN_AND_REFUND"
    /// For the merchant: the case closes without refund.
    case closeForMerchant = "CLOSE_FOR_MERCHANT"
}

/// The kind of the current step's deadline.
public enum DeadlineKind: String, Sendable, Hashable, CaseIterable, Comparable {
    /// Merchant review window; at the deadline the request is auto-agreed.
    case merchantReview = "MERCHANT_REVIEW"
    /// Platform proposal validity; at the deadline the proposal expires.
    case proposalExpiry = "PROPOSAL_EXPIRY"
    /// Consumer's answer to a merchant offer; at the deadline the offer lapses.
    case offerAnswer = "OFFER_ANSWER"
    /// Consumer's escalation window after a rejection; at the deadline the case closes.
    case escalation = "ESCALATION"
    /// Consumer's return shipment window; at the deadline the case closes.
    case returnShipment = "RETURN_SHIPMENT"
    /// Merchant's receipt window; at the deadline the refund is made automatically.
    case merchantReceipt = "MERCHANT_RECEIPT"

    /// Proto declaration order, a tie-breaker for deadlines due at the same instant.
    public static func < (lhs: DeadlineKind, rhs: DeadlineKind) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}

/// Why a case was closed without refund.
public enum CloseReason: String, Sendable, Hashable, CaseIterable {
    /// The consumer withdrew the request.
    case cancelledByConsumer = "CANCELLED_BY_CONSUMER"
    /// The consumer did not escalate a rejection in time.
    case escalationWindowLapsed = "ESCALATION_WINDOW_LAPSED"
    /// The consumer did not ship the return in time.
    case returnWindowLapsed = "RETURN_WINDOW_LAPSED"
    /// The platform ruled for the merchant.
    case ruledForMerchant = "RULED_FOR_MERCHANT"
}

/// Why a case was refunded.
public enum RefundReason: String, Sendable, Hashable, CaseIterable {
    /// The merchant agreed to the refund-only request.
    case merchantAgreed = "MERCHANT_AGREED"
    /// The merchant review window lapsed and the request was auto-agreed.
    case reviewWindowLapsed = "REVIEW_WINDOW_LAPSED"
    /// The consumer accepted the merchant's refund-only offer.
    case offerAccepted = "OFFER_ACCEPTED"
    /// The merchant confirmed the returned goods arrived.
    case returnReceived = "RETURN_RECEIVED"
    /// The merchant receipt window lapsed and the refund was made automatically.
    case receiptWindowLapsed = "RECEIPT_WINDOW_LAPSED"
    /// The platform ruled for the consumer.
    case ruledForConsumer = "RULED_FOR_CONSUMER"
}
