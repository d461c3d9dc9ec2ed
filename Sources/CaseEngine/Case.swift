// The case (售后单) of SPEC.md §2 and the values it holds. Plain data: every rule that
// changes a case lives in Reducer/CaseMachine.swift.

/// One piece of consumer evidence (举证).
public struct Evidence: Sendable, Hashable {
    /// The consumer's description.
    public var description: String
    /// Where the media is stored, opaque to the engine.
    public var uri: String
    /// When it was added.
    public var addedAt: Millis
    /// The tags, packed so the usual one or two need no array of their own.
    private var packedTags: PackedTags
    /// The medium.
    public var kind: EvidenceKind

    /// What it shows; evidence without tags is kept but not scored.
    public var tags: [IssueTag] {
        get { packedTags.tags }
        set { packedTags = PackedTags(newValue) }
    }

    /// Whether it shows `tag` (without building the tag array).
    func hasTag(_ tag: IssueTag) -> Bool { packedTags.contains(tag) }

    /// Creates a piece of evidence.
    public init(kind: EvidenceKind, tags: [IssueTag], description: String = "", uri: String = "", addedAt: Millis) {
        self.kind = kind
        self.packedTags = PackedTags(tags)
        self.description = description
        self.uri = uri
        self.addedAt = addedAt
    }
}

/// A tag list in order, duplicates kept: up to 16 tags as 4-bit codes in one integer
/// (code = position in `IssueTag.allCases` + 1, 0 ends the list); longer lists, which
/// the default limit of 8 tags never produces, spill into an array. Either way one
/// list has one representation, so synthesized equality is value equality.
enum PackedTags: Sendable, Hashable {
    case packed(UInt64)
    case spilled([IssueTag])

    private static let capacity = 16

    init(_ tags: [IssueTag]) {
        guard tags.count <= Self.capacity else {
            self = .spilled(tags)
            return
        }
        var bits: UInt64 = 0
        for (position, tag) in tags.enumerated() {
            bits |= UInt64(IssueTag.allCases.firstIndex(of: tag)! + 1) << (4 * position)
        }
        self = .packed(bits)
    }

    var tags: [IssueTag] {
        switch self {
        case .spilled(let tags):
            return tags
        case .packed(var bits):
            var tags: [IssueTag] = []
            while bits != 0 {
                tags.append(IssueTag.allCases[Int(bits & 0xF) - 1])
                bits >>= 4
            }
            return tags
        }
    }

    func contains(_ tag: IssueTag) -> Bool {
        switch self {
        case .spilled(let tags):
            return tags.contains(tag)
        case .packed(var bits):
            let code = UInt64(IssueTag.allCases.firstIndex(of: tag)! + 1)
            while bits != 0 {
                if bits & 0xF == code { return true }
                bits >>= 4
            }
            return false
        }
    }
}

/// Evidence as the consumer submits it; the engine stamps `addedAt`.
public struct NewEvidence: Sendable, Hashable {
    /// The medium; nil (proto UNSPECIFIED) is refused.
    public var kind: EvidenceKind?
    /// What it shows, at most `EngineConfig.maxTagsPerEvidence`.
    public var tags: [IssueTag]
    /// Free text.
    public var description: String
    /// Where the media is stored.
    public var uri: String

    /// Creates evidence to submit.
    public init(kind: EvidenceKind?, tags: [IssueTag], description: String = "", uri: String = "") {
        self.kind = kind
        self.tags = tags
        self.description = description
        self.uri = uri
    }
}

/// What the intervention judgement looks at (SPEC §1.3).
public struct Signals: Sendable, Hashable {
    /// Logistics problems reported for the shipment, each at most once, first-seen order.
    public var logisticsAnomalies: [LogisticsAnomaly]
    /// The consumer's evidence, oldest first.
    public var evidence: [Evidence]
    /// The merchant's rule violations in the last 90 days.
    public var merchantViolations90d: UInt32
    /// The merchant's complaint rate in basis points (0...10000).
    public var merchantComplaintRateBasisPoints: UInt32
    /// The consumer's refund-only requests in the last 30 days (abuse guard).
    public var consumerRefundOnlyCount30d: UInt32

    /// Creates signals; anomalies are de-duplicated.
    public init(
        logisticsAnomalies: [LogisticsAnomaly] = [],
        evidence: [Evidence] = [],
        merchantViolations90d: UInt32 = 0,
        merchantComplaintRateBasisPoints: UInt32 = 0,
        consumerRefundOnlyCount30d: UInt32 = 0
    ) {
        self.logisticsAnomalies = []
        self.evidence = evidence
        self.merchantViolations90d = merchantViolations90d
        self.merchantComplaintRateBasisPoints = merchantComplaintRateBasisPoints
        self.consumerRefundOnlyCount30d = consumerRefundOnlyCount30d
        _ = addAnomalies(logisticsAnomalies)
    }

    /// Adds the anomalies not yet known; returns whether anything was added.
    public mutating func addAnomalies(_ anomalies: [LogisticsAnomaly]) -> Bool {
        var added = false
        for anomaly in anomalies where !logisticsAnomalies.contains(anomaly) {
            logisticsAnomalies.append(anomaly)
            added = true
        }
        return added
    }
}

/// The platform's proposal (平台协商方案): convert to return-and-refund, merchant pays.
public struct Proposal: Sendable, Hashable {
    // Widest fields first, one-byte fields last (declaration order is layout order);
    // `decidedAt` is split into a value and a flag so the flag packs with the enums.

    /// When it was issued.
    public var issuedAt: Millis
    /// `issuedAt` + the proposal validity; it expires exactly then.
    public var expiresAt: Millis
    /// `decidedAt`'s value; 0 while it is nil, so equal proposals store equal bytes.
    private var decidedAtIfAny: Millis = 0
    /// The judgement's reason codes.
    public var reasons: [String]
    /// The judgement's score.
    public var score: Int32
    /// Where it is in its life.
    public var state: ProposalState
    /// Which problem the judgement found.
    public var issueKind: IssueKind
    private var isDecided = false

    /// When it left PENDING; nil while pending.
    public var decidedAt: Millis? {
        get { isDecided ? decidedAtIfAny : nil }
        set { (decidedAtIfAny, isDecided) = (newValue ?? 0, newValue != nil) }
    }

    /// Creates a proposal.
    public init(issuedAt: Millis, expiresAt: Millis, state: ProposalState, issueKind: IssueKind, reasons: [String], score: Int32, decidedAt: Millis? = nil) {
        self.issuedAt = issuedAt
        self.expiresAt = expiresAt
        self.state = state
        self.issueKind = issueKind
        self.reasons = reasons
        self.score = score
        self.decidedAt = decidedAt
    }
}

/// A merchant's negotiation offer (商家主动协商); the case keeps the latest one.
public struct MerchantOffer: Sendable, Hashable {
    /// What the merchant offers instead of the original request.
    public var type: CaseType
    /// The amount offered, 1...paidAmount.
    public var refundAmount: Int64
    /// Who pays the return shipping; nil for a refund-only offer.
    public var returnShippingPayer: ShippingPayer?
    /// The merchant's note.
    public var note: String
    /// When it was made.
    public var offeredAt: Millis
    /// When it lapses.
    public var expiresAt: Millis
    /// Where it is in its life.
    public var state: OfferState

    /// Creates an offer.
    public init(type: CaseType, refundAmount: Int64, returnShippingPayer: ShippingPayer?, note: String, offeredAt: Millis, expiresAt: Millis, state: OfferState) {
        self.type = type
        self.refundAmount = refundAmount
        self.returnShippingPayer = returnShippingPayer
        self.note = note
        self.offeredAt = offeredAt
        self.expiresAt = expiresAt
        self.state = state
    }
}

/// The current step's deadline.
public struct Deadline: Sendable, Hashable {
    /// Which clock this is.
    public var kind: DeadlineKind
    /// When it fires: at exactly this instant, not before.
    public var dueAt: Millis

    /// Creates a deadline.
    public init(kind: DeadlineKind, dueAt: Millis) {
        self.kind = kind
        self.dueAt = dueAt
    }
}

/// The consumer's return shipment.
public struct ReturnShipment: Sendable, Hashable {
    /// The carrier's name or code.
    public var carrier: String
    /// The carrier's tracking number.
    public var trackingNumber: String
    /// When the consumer reported it.
    public var shippedAt: Millis

    /// Creates a return shipment record.
    public init(carrier: String, trackingNumber: String, shippedAt: Millis) {
        self.carrier = carrier
        self.trackingNumber = trackingNumber
        self.shippedAt = shippedAt
    }
}


/// Every step the engine writes into a case's history, by the name the history shows.
public enum HistoryAction: String, CaseIterable, Sendable {
    case create
    case evidenceAdd = "evidence.add"
    case logisticsUpdate = "logistics.update"
    case proposalIssue = "proposal.issue"
    case proposalAccept = "proposal.accept"
    case proposalReject = "proposal.reject"
    case proposalExpire = "proposal.expire"
    case merchantAgree = "merchant.agree"
    case merchantReject = "merchant.reject"
    case merchantOffer = "merchant.offer"
    case offerAccept = "offer.accept"
    case offerReject = "offer.reject"
    case offerLapse = "offer.lapse"
    case escalate
    case platformResolve = "platform.resolve"
    case returnShip = "return.ship"
    case returnReceive = "return.receive"
    case cancel
    case merchantReviewLapsed = "deadline.merchant_review"
    case escalationLapsed = "deadline.escalation"
    case returnShipmentLapsed = "deadline.return_shipment"
    case merchantReceiptLapsed = "deadline.merchant_receipt"
}

/// One step in a case's history (协商记录). Append-only.
public struct HistoryEntry: Sendable, Hashable {
    // Every case keeps its history, so an entry is packed into 64 bytes: the action, a
    // small fixed vocabulary, is a one-byte code instead of a 16-byte String. An action
    // outside the vocabulary (a record written by a newer build) is kept as text in
    // front of the note. Fields are declared widest first (declaration order is layout
    // order). Each action and note has exactly one packed form, so the synthesized
    // equality and hashing compare values.

    /// When it happened.
    public var at: Millis
    /// The consumer, merchant or operator id; "intervention-policy" for the judgement; empty for SYSTEM.
    public var actorID: String
    /// The calling service that made the step (audit); empty for SYSTEM and unauthenticated calls.
    public var client: String
    /// The note, preceded by the action's text when `actionCode` is `customActionCode`.
    private var customActionAndNote: String
    /// UTF-8 length of the action text in front of the note (custom actions only).
    private var customActionUTF8Count: UInt32
    /// Who took the step.
    public var actor: Party
    /// The status before; nil for the creation entry.
    public var fromStatus: CaseStatus?
    /// The status after.
    public var toStatus: CaseStatus
    /// Index into `knownActions`, or `customActionCode`.
    private var actionCode: UInt8

    /// What happened, e.g. "create", "proposal.issue", "merchant.reject".
    public var action: String {
        get {
            guard actionCode == Self.customActionCode else { return Self.knownActions[Int(actionCode)] }
            return String(decoding: customActionAndNote.utf8.prefix(Int(customActionUTF8Count)), as: UTF8.self)
        }
        set { pack(action: newValue, note: note) }
    }

    /// Free text: the party's note or the engine's explanation.
    public var note: String {
        get {
            guard actionCode == Self.customActionCode else { return customActionAndNote }
            return String(decoding: customActionAndNote.utf8.dropFirst(Int(customActionUTF8Count)), as: UTF8.self)
        }
        set { pack(action: action, note: newValue) }
    }

    /// Creates a history entry; an action outside `HistoryAction` (written by a newer
    /// build) is kept as text.
    public init(at: Millis, actor: Party, actorID: String, client: String = "", action: String, fromStatus: CaseStatus?, toStatus: CaseStatus, note: String) {
        self.init(at: at, actor: actor, actorID: actorID, client: client, action: .create, fromStatus: fromStatus, toStatus: toStatus, note: note)
        pack(action: action, note: note)
    }

    /// Creates a history entry for one of the engine's own steps.
    public init(at: Millis, actor: Party, actorID: String, client: String = "", action: HistoryAction, fromStatus: CaseStatus?, toStatus: CaseStatus, note: String) {
        self.at = at
        self.actor = actor
        self.actorID = actorID
        self.client = client
        self.fromStatus = fromStatus
        self.toStatus = toStatus
        customActionAndNote = note
        customActionUTF8Count = 0
        actionCode = UInt8(HistoryAction.allCases.firstIndex(of: action)!)
    }

    private mutating func pack(action: String, note: String) {
        if let code = Self.codeByAction[action] {
            (actionCode, customActionUTF8Count, customActionAndNote) = (code, 0, note)
        } else {
            (actionCode, customActionUTF8Count, customActionAndNote) =
                (Self.customActionCode, UInt32(action.utf8.count), action + note)
        }
    }

    /// Every action the reducer records (Reducer/CaseMachine.swift).
    private static let knownActions = HistoryAction.allCases.map(\.rawValue)
    private static let codeByAction = Dictionary(uniqueKeysWithValues: knownActions.enumerated().map { ($1, UInt8($0)) })
    private static let customActionCode = UInt8.max
}

/// An after-sales case (售后单) on one order line (SPEC §2). Its fields are `Case.Fields`
/// properties, read and written as the case's own (`c.status`, `c.version += 1`).
@dynamicMemberLookup
public struct Case: Sendable, Hashable {
    // Memory layout matters here: a million cases live in the store's hash trie. The
    // fields sit in one heap box behind a single pointer, so a trie entry is 24 bytes
    // (id + pointer) rather than the whole case, the trie's slack space stays small, and
    // copying a node while a snapshot shares it moves pointers, not cases. The box is
    // copied on write only when shared (copy-on-write), so `Case` keeps value semantics.
    // Inside, fields are declared widest first (Swift lays them out in declaration
    // order, so the one-byte enums pack together) and the parts most cases never get (a
    // merchant offer, a return shipment) live in a further box. Fields are reached through
    // one key-path subscript (inlinable, so a literal key path compiles to a direct access).

    @usableFromInline var storage: Storage

    @usableFromInline final class Storage: @unchecked Sendable {
        // Mutated only through `Case.fields`, which first makes the box unique.
        @usableFromInline var fields: Fields
        @usableFromInline init(_ fields: Fields) { self.fields = fields }
    }

    /// The stored fields of a case. Optionals of 8-byte values are kept split (see
    /// `deadline`, `pausedReviewRemaining` on `Case`), so those parts are not public here.
    public struct Fields: Sendable, Hashable {
        /// Assigned by the store ("AS" + 10 digits), unique and stable.
        public var caseID: String
        /// The order.
        public var orderID: String
        /// The line within the order; may be empty for single-line orders.
        public var orderLineID: String
        /// The buyer.
        public var consumerID: String
        /// The seller.
        public var merchantID: String
        /// Category code, e.g. "apparel".
        public var category: String
        /// The consumer's stated reason.
        public var reason: String
        /// What the consumer paid, > 0, minor units.
        public var paidAmount: Int64
        /// What the consumer gets back, 0 < refundAmount <= paidAmount, minor units.
        public var refundAmount: Int64
        /// When it was created.
        public var createdAt: Millis
        /// When it last changed.
        public var updatedAt: Millis
        /// 1 on creation, +1 on every change and only then.
        public var version: UInt64
        /// Every step, oldest first.
        public var history: [HistoryEntry]
        fileprivate var rareParts: OutOfLine<RareParts>?
        // Optionals of 8-byte values are split into the value (0 when absent, so equal
        // cases store equal bytes) and a one-byte part at the end with the enums: that
        // keeps the box within 264 bytes, a 288-byte malloc chunk instead of 320.
        fileprivate var deadlineDueAt: Millis
        fileprivate var pausedReviewRemainingIfAny: Millis
        /// The platform's proposal, if one was ever issued (one per case).
        public var proposal: Proposal?
        /// What the judgement looks at.
        public var signals: Signals
        fileprivate var deadlineKind: DeadlineKind?
        fileprivate var isReviewPaused: Bool
        /// What the consumer asks for (changes when a proposal or offer is accepted).
        public var type: CaseType
        /// Where the goods are.
        public var delivery: DeliveryState
        /// Who pays the return shipping; nil until a return is agreed.
        public var returnShippingPayer: ShippingPayer?
        /// The current step.
        public var status: CaseStatus
        /// Why the case closed (CLOSED only).
        public var closeReason: CloseReason?
        /// Why the case was refunded (REFUNDED only).
        public var refundReason: RefundReason?

        fileprivate mutating func setDeadline(_ deadline: Deadline?) {
            (deadlineDueAt, deadlineKind) = (deadline?.dueAt ?? 0, deadline?.kind)
        }

        fileprivate mutating func setPausedReviewRemaining(_ remaining: Millis?) {
            (pausedReviewRemainingIfAny, isReviewPaused) = (remaining ?? 0, remaining != nil)
        }
    }

    /// The parts of a case that most cases never get, stored out of line.
    fileprivate struct RareParts: Sendable, Hashable {
        var merchantOffer: MerchantOffer?
        var returnShipment: ReturnShipment?

        /// nil when there is nothing to store, so that equal cases have equal storage.
        var orNilIfEmpty: OutOfLine<RareParts>? {
            merchantOffer == nil && returnShipment == nil ? nil : OutOfLine(self)
        }
    }

    /// The fields for writing: copies the box first if another `Case` shares it.
    @inlinable var fields: Fields {
        get { storage.fields }
        _modify {
            if !isKnownUniquelyReferenced(&storage) { storage = Storage(storage.fields) }
            yield &storage.fields
        }
    }

    /// A field of the case, read or written in place (`Case.Fields` lists them).
    @inlinable public subscript<Value>(dynamicMember field: WritableKeyPath<Fields, Value>) -> Value {
        get { storage.fields[keyPath: field] }
        _modify { yield &fields[keyPath: field] }
    }

    /// The current step's deadline; nil in PLATFORM_ARBITRATION and terminal statuses.
    public var deadline: Deadline? {
        get { storage.fields.deadlineKind.map { Deadline(kind: $0, dueAt: storage.fields.deadlineDueAt) } }
        set { fields.setDeadline(newValue) }
    }

    /// While a proposal is pending: what the paused merchant review clock had left.
    public var pausedReviewRemaining: Millis? {
        get { storage.fields.isReviewPaused ? storage.fields.pausedReviewRemainingIfAny : nil }
        set { fields.setPausedReviewRemaining(newValue) }
    }

    /// The latest merchant offer, if any.
    public var merchantOffer: MerchantOffer? {
        get { storage.fields.rareParts?.value.merchantOffer }
        set {
            var parts = storage.fields.rareParts?.value ?? RareParts()
            parts.merchantOffer = newValue
            fields.rareParts = parts.orNilIfEmpty
        }
    }

    /// The consumer's return shipment, once reported.
    public var returnShipment: ReturnShipment? {
        get { storage.fields.rareParts?.value.returnShipment }
        set {
            var parts = storage.fields.rareParts?.value ?? RareParts()
            parts.returnShipment = newValue
            fields.rareParts = parts.orNilIfEmpty
        }
    }

    /// Same field values (a shared box is equal without looking inside).
    public static func == (lhs: Case, rhs: Case) -> Bool {
        lhs.storage === rhs.storage || lhs.storage.fields == rhs.storage.fields
    }

    /// Hashes the field values.
    public func hash(into hasher: inout Hasher) { storage.fields.hash(into: &hasher) }

    /// Creates a case; the reducer is the only caller that should need this.
    public init(
        caseID: String, orderID: String, orderLineID: String, consumerID: String, merchantID: String,
        category: String, reason: String, type: CaseType, delivery: DeliveryState,
        paidAmount: Int64, refundAmount: Int64, returnShippingPayer: ShippingPayer? = nil,
        status: CaseStatus, signals: Signals, proposal: Proposal? = nil, merchantOffer: MerchantOffer? = nil,
        deadline: Deadline? = nil, pausedReviewRemaining: Millis? = nil, returnShipment: ReturnShipment? = nil,
        closeReason: CloseReason? = nil, refundReason: RefundReason? = nil,
        createdAt: Millis, updatedAt: Millis, version: UInt64, history: [HistoryEntry] = []
    ) {
        storage = Storage(Fields(
            caseID: caseID,
            orderID: orderID,
            orderLineID: orderLineID,
            consumerID: consumerID,
            merchantID: merchantID,
            category: category,
            reason: reason,
            paidAmount: paidAmount,
            refundAmount: refundAmount,
            createdAt: createdAt,
            updatedAt: updatedAt,
            version: version,
            history: history,
            rareParts: RareParts(merchantOffer: merchantOffer, returnShipment: returnShipment).orNilIfEmpty,
            deadlineDueAt: 0,
            pausedReviewRemainingIfAny: 0,
            proposal: proposal,
            signals: signals,
            deadlineKind: nil,
            isReviewPaused: false,
            type: type,
            delivery: delivery,
            returnShippingPayer: returnShippingPayer,
            status: status,
            closeReason: closeReason,
            refundReason: refundReason))
        storage.fields.setDeadline(deadline)
        storage.fields.setPausedReviewRemaining(pausedReviewRemaining)
    }

    /// The proposal if it is outstanding.
    public var pendingProposal: Proposal? { self.proposal?.state == .pending ? self.proposal : nil }

    /// The merchant offer if it awaits the consumer.
    public var pendingOffer: MerchantOffer? { merchantOffer?.state == .pending ? merchantOffer : nil }

    /// The key of the one-open-case-per-order-line rule.
    public var orderLineKey: String { CaseStore.orderLineKey(orderID: self.orderID, orderLineID: self.orderLineID) }
}

/// A value kept behind one pointer: an immutable box replaced on every write, so copies
/// share it and value semantics hold. Compares and hashes by value.
struct OutOfLine<Value: Sendable & Hashable>: Sendable, Hashable {
    private final class Box: Sendable {
        let value: Value
        init(_ value: Value) { self.value = value }
    }

    private let box: Box

    init(_ value: Value) { box = Box(value) }

    var value: Value { box.value }

    static func == (lhs: OutOfLine, rhs: OutOfLine) -> Bool { lhs.box === rhs.box || lhs.value == rhs.value }

    func hash(into hasher: inout Hasher) { value.hash(into: &hasher) }
}
