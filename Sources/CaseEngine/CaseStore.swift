import HashTreeCollections
import HeapModule

// Every case in memory, the indexes the daemon reads, and the deadline queue. A value
// type over persistent hash tries: a copy is O(1) and later mutations of either copy stay
// O(log n), which is how the daemon snapshots on a background thread while its loop keeps
// writing (the copy shares structure until one side changes).

/// One page of `CaseStore.list`.
public struct CasePage: Sendable, Hashable {
    /// Matching cases in case id order.
    public var cases: [Case]
    /// Pass as `after` for the next page; nil when this is the last page.
    public var nextAfter: String?

    /// Creates a page.
    public init(cases: [Case], nextAfter: String?) {
        self.cases = cases
        self.nextAfter = nextAfter
    }
}

/// The case store: applies requests through `CaseMachine` and keeps indexes and
/// deadlines in step with the cases.
public struct CaseStore: Sendable {
    /// The settings the rules read.
    public let config: EngineConfig
    /// The reducer every change goes through.
    public let machine: CaseMachine

    /// Every case by id, open and terminal (for persistence: iterate this).
    public private(set) var cases: TreeDictionary<String, Case> = [:]
    /// The number the next created case gets (persist it with the cases).
    public private(set) var nextCaseNumber: UInt64 = 1

    private var openCaseByOrderLine: TreeDictionary<String, String> = [:]
    private var idsByStatus: TreeDictionary<CaseStatus, TreeSet<String>> = [:]
    private var idsByMerchant: TreeDictionary<String, TreeSet<String>> = [:]
    private var idsByConsumer: TreeDictionary<String, TreeSet<String>> = [:]
    private var deadlines = DeadlineQueue()
    private var liveDeadlineCount = 0

    /// An empty store.
    public init(config: EngineConfig = EngineConfig()) {
        self.config = config
        machine = CaseMachine(config: config)
    }

    /// Rebuilds a store from persisted cases, rebuilding every index and the deadline
    /// queue. `nextCaseNumber` is raised past the highest restored id if needed.
    public init<S: Sequence>(config: EngineConfig = EngineConfig(), restoring restored: S, nextCaseNumber: UInt64)
    where S.Element == Case {
        self.init(config: config)
        var highest: UInt64 = 0
        for item in restored {
            index(item, replacing: nil)
            if let number = Self.caseNumber(of: item.caseID) { highest = max(highest, number) }
        }
        self.nextCaseNumber = max(nextCaseNumber, highest + 1)
        rebuildDeadlines()
    }

    // MARK: - Writing

    /// Applies one request at `now`. On success the case, indexes and deadlines change
    /// together; on failure (a thrown `CaseError`) nothing changes at all.
    public mutating func apply(_ request: Request, now: Millis) throws(CaseError) -> Outcome {
        if case .create = request.command {
            let outcome = try machine.create(request, caseID: Self.caseID(number: nextCaseNumber), now: now)
            let created = outcome.case
            if let existing = openCaseByOrderLine[created.orderLineKey] {
                throw .alreadyExists(
                    "case \(existing) is already open for order_id '\(created.orderID)' order_line_id '\(created.orderLineID)'; act on it or wait until it ends")
            }
            nextCaseNumber += 1
            commit(created, replacing: nil)
            return outcome
        }
        guard let caseID = request.caseID, !caseID.isEmpty else {
            throw .invalidArgument(field: "case_id", message: "required, got an empty string")
        }
        guard let current = cases[caseID] else {
            throw .notFound("no case with case_id '\(caseID)'")
        }
        let outcome = try machine.reduce(current, request, now: now)
        if outcome.case.version != current.version {
            commit(outcome.case, replacing: current)
        }
        return outcome
    }

    /// Fires the live deadlines due at or before `now`, in due order, each exactly as if
    /// SYSTEM had sent `fireDeadline`; at most `limit` of them, so a caller serving other
    /// work can interleave it with a large backlog. A deadline due at T fires for
    /// `now >= T`, never earlier.
    public mutating func fireDueDeadlines(now: Millis, limit: Int = .max) -> [Outcome] {
        var outcomes: [Outcome] = []
        while outcomes.count < limit, let top = deadlines.earliest, top.dueAt <= now {
            _ = deadlines.popEarliest()
            guard isLive(top) else { continue }
            let request = Request(caseID: top.caseID, actor: .system, actorID: "", command: .fireDeadline(top.kind))
            // Cannot fail: a live entry is the case's current deadline and it is due.
            if let outcome = try? apply(request, now: now) { outcomes.append(outcome) }
        }
        deadlines.discardStale(isLive: isLive)
        return outcomes
    }

    // MARK: - Reading

    /// The case with this id, if any.
    public subscript(caseID: String) -> Case? { cases[caseID] }

    /// Dry run of the intervention judgement on the case as it stands; changes nothing.
    public func evaluate(caseID: String) throws(CaseError) -> Judgement {
        guard let subject = cases[caseID] else { throw .notFound("no case with case_id '\(caseID)'") }
        return machine.policy.judge(subject)
    }

    /// When the earliest live deadline is due; nil when nothing is scheduled. The daemon
    /// polls with a timeout up to this instant.
    public var nextDeadline: Millis? { deadlines.earliest?.dueAt }

    /// Number of cases, open and terminal.
    public var count: Int { cases.count }

    /// Number of cases in `status`.
    public func count(in status: CaseStatus) -> Int { idsByStatus[status]?.count ?? 0 }

    /// Number of cases in each status (every status present, zero included).
    public var countsByStatus: [CaseStatus: Int] {
        Dictionary(uniqueKeysWithValues: CaseStatus.allCases.map { ($0, count(in: $0)) })
    }

    /// Proposals currently pending (one per PROPOSAL_PENDING case).
    public var pendingProposalCount: Int { count(in: .proposalPending) }

    /// The open case on this order line, if any.
    public func openCaseID(orderID: String, orderLineID: String) -> String? {
        openCaseByOrderLine[Self.orderLineKey(orderID: orderID, orderLineID: orderLineID)]
    }

    /// Ids of the cases in `status`, unordered.
    public func caseIDs(in status: CaseStatus) -> TreeSet<String> { idsByStatus[status] ?? [] }

    /// Ids of the merchant's cases, unordered.
    public func caseIDs(merchantID: String) -> TreeSet<String> { idsByMerchant[merchantID] ?? [] }

    /// Ids of the consumer's cases, unordered.
    public func caseIDs(consumerID: String) -> TreeSet<String> { idsByConsumer[consumerID] ?? [] }

    /// Every queued deadline entry, live or stale, unordered (for checks and stats).
    public var queuedDeadlines: [ScheduledDeadline] { deadlines.unorderedEntries }

    /// Whether a queued entry is still its case's current deadline.
    public func isLive(_ entry: ScheduledDeadline) -> Bool {
        cases[entry.caseID]?.deadline == Deadline(kind: entry.kind, dueAt: entry.dueAt)
    }

    /// Cases matching every given filter (nil or empty = any) with id greater than
    /// `after`, in case id order, at most `limit`.
    ///
    /// With a filter, the cost is O(m + limit·log m) for the m cases of the smallest
    /// matching index set; without one, O(limit), walking the dense id sequence.
    public func list(status: CaseStatus? = nil, merchantID: String? = nil, consumerID: String? = nil,
                     after: String? = nil, limit: Int) -> CasePage {
        let limit = max(0, limit)
        let merchantID = merchantID.flatMap { $0.isEmpty ? nil : $0 }
        let consumerID = consumerID.flatMap { $0.isEmpty ? nil : $0 }
        let after = after.flatMap { $0.isEmpty ? nil : $0 }

        func matches(_ subject: Case) -> Bool {
            (status == nil || subject.status == status)
                && (merchantID == nil || subject.merchantID == merchantID)
                && (consumerID == nil || subject.consumerID == consumerID)
        }

        var candidates: [TreeSet<String>] = []
        if let status { candidates.append(caseIDs(in: status)) }
        if let merchantID { candidates.append(caseIDs(merchantID: merchantID)) }
        if let consumerID { candidates.append(caseIDs(consumerID: consumerID)) }

        var found: [Case] = []
        if let smallest = candidates.min(by: { $0.count < $1.count }) {
            let eligible = smallest.filter { id in after.map { id > $0 } ?? true }
            var heap = Heap(eligible)
            while found.count <= limit, let id = heap.popMin() {
                if let subject = cases[id], matches(subject) { found.append(subject) }
            }
        } else if after == nil || Self.caseNumber(of: after!) != nil {
            var number = after.flatMap(Self.caseNumber(of:)).map { $0 + 1 } ?? 1
            while found.count <= limit, number < nextCaseNumber {
                if let subject = cases[Self.caseID(number: number)] { found.append(subject) }
                number += 1
            }
        } else {
            let eligible = cases.keys.filter { $0 > after! }
            found = eligible.sorted().prefix(limit + 1).compactMap { cases[$0] }
        }
        guard found.count > limit else { return CasePage(cases: found, nextAfter: nil) }
        let page = Array(found.prefix(limit))
        return CasePage(cases: page, nextAfter: page.last?.caseID)
    }

    // MARK: - Identity

    /// The id of the case numbered `number`: "AS" + 10 digits, so ids sort as numbers.
    public static func caseID(number: UInt64) -> String {
        "AS" + ISO8601.pad(Int64(number), 10)
    }

    /// The number inside an id made by `caseID(number:)`, or nil for any other string.
    public static func caseNumber(of caseID: String) -> UInt64? {
        guard caseID.hasPrefix("AS"), caseID.utf8.count == 12 else { return nil }
        return UInt64(caseID.dropFirst(2))
    }

    /// The key of the one-open-case-per-order-line rule.
    public static func orderLineKey(orderID: String, orderLineID: String) -> String {
        // NUL cannot appear in proto strings' ids in practice and keeps the pair unambiguous.
        orderID + "\u{0}" + orderLineID
    }

    // MARK: - Keeping indexes in step

    private mutating func commit(_ updated: Case, replacing previous: Case?) {
        index(updated, replacing: previous)
        if updated.deadline != previous?.deadline, let deadline = updated.deadline {
            deadlines.schedule(ScheduledDeadline(dueAt: deadline.dueAt, caseID: updated.caseID, kind: deadline.kind))
        }
        // Lazy cancellation leaves stale entries behind; shed them once they outnumber
        // the live ones, so the queue stays O(live) in size at amortised O(1) per change.
        if deadlines.storedCount > 2 * liveDeadlineCount + 1_024 {
            rebuildDeadlines()
        }
        deadlines.discardStale(isLive: isLive)
    }

    private mutating func index(_ updated: Case, replacing previous: Case?) {
        let id = updated.caseID
        cases[id] = updated
        if previous == nil {
            idsByMerchant[updated.merchantID, default: []].insert(id)
            idsByConsumer[updated.consumerID, default: []].insert(id)
        }
        if previous?.status != updated.status {
            if let old = previous?.status {
                idsByStatus[old]?.remove(id)
                if idsByStatus[old]?.isEmpty == true { idsByStatus[old] = nil }
            }
            idsByStatus[updated.status, default: []].insert(id)
        }
        let key = updated.orderLineKey
        if updated.status.isTerminal {
            if openCaseByOrderLine[key] == id { openCaseByOrderLine[key] = nil }
        } else {
            openCaseByOrderLine[key] = id
        }
        liveDeadlineCount += (updated.deadline == nil ? 0 : 1) - (previous?.deadline == nil ? 0 : 1)
    }

    private mutating func rebuildDeadlines() {
        let live = cases.values.compactMap { item in
            item.deadline.map { ScheduledDeadline(dueAt: $0.dueAt, caseID: item.caseID, kind: $0.kind) }
        }
        deadlines.rebuild(from: live)
    }
}

extension CaseStore: Equatable {
    /// Same cases, id counter, indexes and live deadline entries (stale entries are an
    /// implementation detail of lazy cancellation and do not count).
    public static func == (lhs: CaseStore, rhs: CaseStore) -> Bool {
        lhs.cases == rhs.cases
            && lhs.nextCaseNumber == rhs.nextCaseNumber
            && lhs.openCaseByOrderLine == rhs.openCaseByOrderLine
            && lhs.idsByStatus == rhs.idsByStatus
            && lhs.idsByMerchant == rhs.idsByMerchant
            && lhs.idsByConsumer == rhs.idsByConsumer
            && lhs.liveDeadlineCount == rhs.liveDeadlineCount
            && lhs.queuedDeadlines.filter(lhs.isLive).sorted() == rhs.queuedDeadlines.filter(rhs.isLive).sorted()
    }
}
