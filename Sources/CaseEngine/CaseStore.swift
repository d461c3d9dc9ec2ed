import HashTreeCollections

// Every case in memory, the indexes the daemon reads, and the deadline queue. The cases
// live in a persistent hash trie: copying `cases` is O(1) and later mutations of either
// copy stay O(log n), which is how the daemon snapshots on a background thread while its
// loop keeps writing (the copy shares structure until one side changes). The secondary
// indexes and the deadline queue are plain copy-on-write values (CaseIndexes.swift):
// copying the whole store is still O(1), but the first change after such a copy copies
// them, O(n) once; the daemon only ever copies `cases`.

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
    /// The number the next created case gets (persist it with the cases); local to the
    /// store's shard, see `CaseNumbering`.
    public private(set) var nextCaseNumber: UInt64 = 1
    /// How the store's case numbers become case ids (which shard of how many).
    public let numbering: CaseNumbering

    // Secondary indexes hold case numbers (see CaseIndexes.swift). Merchants' and
    // consumers' lists only grow (a case never changes hands and is never deleted) and
    // numbers are handed out in increasing order, so appending keeps them sorted.
    private var openCaseByOrderLine: [String: UInt64] = [:]
    private var numbersByStatus = StatusBitmaps()
    private var numbersByMerchant: [String: [UInt64]] = [:]
    private var numbersByConsumer: [String: [UInt64]] = [:]
    private var deadlines = DeadlineQueue()
    private var liveDeadlineCount = 0
    /// Deadlines of restored cases, gathered by `restore` and queued by `finishRestoring`.
    private var restoredDeadlines: [ScheduledDeadline] = []

    /// An empty store (of shard `numbering.shard` when the cases are sharded).
    public init(config: EngineConfig = EngineConfig(), numbering: CaseNumbering = .single) {
        self.config = config
        self.numbering = numbering
        machine = CaseMachine(config: config)
    }

    /// Rebuilds a store from persisted cases, rebuilding every index and the deadline
    /// queue. `nextCaseNumber` is raised past the highest restored id if needed. Every id
    /// must be one the store made ("AS" + 10 digits).
    public init<S: Sequence>(config: EngineConfig = EngineConfig(), numbering: CaseNumbering = .single,
                             restoring restored: S, nextCaseNumber: UInt64)
    where S.Element == Case {
        self.init(config: config, numbering: numbering)
        for item in restored { restore(item) }
        finishRestoring(nextCaseNumber: nextCaseNumber)
    }

    /// Adds one persisted case to a store being rebuilt (a new, empty store; no `apply`
    /// before `finishRestoring`). The non-generic form of `init(restoring:)`, for callers
    /// that stream cases in from another module without paying for generic dispatch.
    public mutating func restore(_ item: Case) {
        cases[item.caseID] = item
        index(item, number: indexNumber(of: item.caseID), replacing: nil)
        if let deadline = item.deadline {
            restoredDeadlines.append(ScheduledDeadline(dueAt: deadline.dueAt, caseID: item.caseID, kind: deadline.kind))
        }
    }

    /// Makes room for `count` restored cases in the indexes, so a rebuild does not grow
    /// them step by step (optional; call before the first `restore`).
    public mutating func reserveCapacityForRestoring(_ count: Int) {
        openCaseByOrderLine.reserveCapacity(count)
        restoredDeadlines.reserveCapacity(count)
    }

    /// Ends a rebuild: orders the per-party indexes, sets the id counter (at least past
    /// the highest restored id) and builds the deadline queue.
    public mutating func finishRestoring(nextCaseNumber: UInt64) {
        // Restored cases arrive in any order; the per-party lists must be ascending.
        numbersByMerchant = numbersByMerchant.mapValues { $0.sorted() }
        numbersByConsumer = numbersByConsumer.mapValues { $0.sorted() }
        // Every case is on exactly one merchant's list, so the lists' ends give the highest.
        let highest = numbersByMerchant.values.lazy.compactMap(\.last).max() ?? 0
        self.nextCaseNumber = max(nextCaseNumber, highest + 1)
        deadlines.rebuild(from: restoredDeadlines)
        restoredDeadlines = []
    }

    // MARK: - Writing

    /// Applies one request at `now`. On success the case, indexes and deadlines change
    /// together; on failure (a thrown `CaseError`) nothing changes at all.
    public mutating func apply(_ request: Request, now: Millis) throws(CaseError) -> Outcome {
        if case .create = request.command {
            let outcome = try machine.create(request, caseID: numbering.caseID(local: nextCaseNumber), now: now)
            let created = outcome.case
            if let existing = openCaseByOrderLine[created.orderLineKey].map(numbering.caseID(local:)) {
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
            if let outcome = fire(Deadline(kind: top.kind, dueAt: top.dueAt), of: top.caseID, now: now) { outcomes.append(outcome) }
        }
        discardStaleDeadlines()
        return outcomes
    }

    /// Fires the deadline of one case if it is due at `now` and has not fired yet; nil
    /// otherwise. A caller about to act on (or read) a case while a backlog of deadlines
    /// is still being worked off calls this first, so that no call ever sees a step whose
    /// time has passed: a proposal past `expires_at` is expired, whoever looks first (as
    /// Redis expires a key on access as well as in its background cycle). O(1) when no
    /// deadline anywhere is due.
    public mutating func fireDeadlineIfDue(caseID: String, now: Millis) -> Outcome? {
        guard let earliest = deadlines.earliestDueAt, earliest <= now,
              let deadline = cases[caseID]?.deadline, deadline.dueAt <= now else { return nil }
        // Its queue entry is now stale and is dropped when it reaches the top.
        return fire(deadline, of: caseID, now: now)
    }

    /// SYSTEM's `fireDeadline` for the case's current, due deadline. Cannot fail then; nil
    /// would mean the caller passed a deadline that is not the case's.
    private mutating func fire(_ deadline: Deadline, of caseID: String, now: Millis) -> Outcome? {
        let request = Request(caseID: caseID, actor: .system, actorID: "", command: .fireDeadline(deadline.kind))
        guard var outcome = try? apply(request, now: now) else { return nil }
        outcome.firedDeadlineDueAt = deadline.dueAt
        return outcome
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
    public var nextDeadline: Millis? { deadlines.earliestDueAt }

    /// Number of cases, open and terminal.
    public var count: Int { cases.count }

    /// Entries in the deadline queue: pending deadlines and superseded ones not yet dropped.
    public var deadlineQueueEntries: Int { deadlines.storedCount }

    /// Number of cases in `status`.
    public func count(in status: CaseStatus) -> Int { numbersByStatus[status].count }

    /// Number of cases in each status (every status present, zero included).
    public var countsByStatus: [CaseStatus: Int] {
        Dictionary(uniqueKeysWithValues: CaseStatus.allCases.map { ($0, count(in: $0)) })
    }

    /// Proposals currently pending (one per PROPOSAL_PENDING case).
    public var pendingProposalCount: Int { count(in: .proposalPending) }

    /// The open case on this order line, if any.
    public func openCaseID(orderID: String, orderLineID: String) -> String? {
        openCaseByOrderLine[Self.orderLineKey(orderID: orderID, orderLineID: orderLineID)].map(numbering.caseID(local:))
    }

    /// Ids of the cases in `status`, in case id order.
    public func caseIDs(in status: CaseStatus) -> [String] {
        numbersByStatus[status].members.map(numbering.caseID(local:))
    }

    /// Ids of the merchant's cases, in case id order.
    public func caseIDs(merchantID: String) -> [String] { (numbersByMerchant[merchantID] ?? []).map(numbering.caseID(local:)) }

    /// Ids of the consumer's cases, in case id order.
    public func caseIDs(consumerID: String) -> [String] { (numbersByConsumer[consumerID] ?? []).map(numbering.caseID(local:)) }

    /// Every queued deadline entry, live or stale, unordered (for checks and stats).
    public var queuedDeadlines: [ScheduledDeadline] { deadlines.unorderedEntries }

    /// Whether a queued entry is still its case's current deadline.
    public func isLive(_ entry: ScheduledDeadline) -> Bool { Self.isLive(entry, in: cases) }

    private static func isLive(_ entry: ScheduledDeadline, in cases: TreeDictionary<String, Case>) -> Bool {
        cases[entry.caseID]?.deadline == Deadline(kind: entry.kind, dueAt: entry.dueAt)
    }

    /// Drops stale entries from the top of the deadline queue. The closure captures only
    /// `cases`: passing the method `isLive` would capture a copy of the whole store,
    /// whose second reference to the heap's buffer makes the first pop copy the entire
    /// queue (O(n) per commit with a million deadlines queued).
    private mutating func discardStaleDeadlines() {
        let cases = self.cases
        deadlines.discardStale { Self.isLive($0, in: cases) }
    }

    /// Cases matching every given filter (nil or empty = any) with id greater than
    /// `after`, in case id order, at most `limit`.
    ///
    /// With a merchant or consumer filter, the cost is O(log m + scanned) over the m cases
    /// of the smallest matching index; with a status filter alone, a bitmap walk that
    /// skips 64 non-members per step; without a filter, O(limit), walking the dense ids.
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

        // Walk the smallest index in ascending number (= id) order from just past
        // `after`; an `after` that is not a store-made id is compared as a string.
        let afterNumber = after.flatMap(numbering.localNumber(of:))
        let firstNumber = afterNumber.map { $0 + 1 } ?? 0
        var found: [Case] = []
        func visit(_ number: UInt64) -> Bool {
            if let subject = cases[numbering.caseID(local: number)], matches(subject),
               afterNumber != nil || after.map({ subject.caseID > $0 }) ?? true {
                found.append(subject)
            }
            return found.count <= limit
        }

        var sortedCandidates: [[UInt64]] = []
        if let merchantID { sortedCandidates.append(numbersByMerchant[merchantID] ?? []) }
        if let consumerID { sortedCandidates.append(numbersByConsumer[consumerID] ?? []) }
        let smallestList = sortedCandidates.min(by: { $0.count < $1.count })

        if let status, smallestList.map({ count(in: status) <= $0.count }) ?? true {
            numbersByStatus[status].forEach(from: firstNumber, visit)
        } else if let smallestList {
            for number in smallestList[smallestList.firstIndex(atLeast: firstNumber)...] where !visit(number) { break }
        } else if after == nil || numbering.localNumber(of: after!) != nil {
            var number = after.flatMap(numbering.localNumber(of:)).map { $0 + 1 } ?? 1
            while found.count <= limit, number < nextCaseNumber {
                if let subject = cases[numbering.caseID(local: number)] { found.append(subject) }
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
        guard number < 10_000_000_000 else { return "AS" + String(number) }
        // Written digit by digit into a 12-byte small string: this runs on every create
        // and every listed case, and concatenating padded pieces cost ~1 000 instructions.
        return String(unsafeUninitializedCapacity: 12) { buffer in
            buffer[0] = UInt8(ascii: "A")
            buffer[1] = UInt8(ascii: "S")
            var rest = number
            for position in stride(from: 11, through: 2, by: -1) {
                buffer[position] = UInt8(ascii: "0") + UInt8(rest % 10)
                rest /= 10
            }
            return 12
        }
    }

    /// The number inside an id made by `caseID(number:)`, or nil for any other string.
    public static func caseNumber(of caseID: String) -> UInt64? {
        // Read byte by byte: this runs on every change and every routed call, and
        // `hasPrefix` + `dropFirst` + `UInt64(_:)` cost ~900 instructions.
        let utf8 = caseID.utf8
        guard utf8.count == 12 else { return nil }
        return utf8.withContiguousStorageIfAvailable { bytes -> UInt64? in
            guard bytes[0] == UInt8(ascii: "A"), bytes[1] == UInt8(ascii: "S") else { return nil }
            var number: UInt64 = 0
            for byte in bytes[2...] {
                guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
                number = number * 10 + UInt64(byte - UInt8(ascii: "0"))
            }
            return number
        } ?? Self.caseNumberSlowly(caseID)
    }

    /// The same for a string without contiguous UTF-8 (bridged), digit by digit.
    private static func caseNumberSlowly(_ caseID: String) -> UInt64? {
        guard caseID.hasPrefix("AS"), caseID.utf8.count == 12, caseID.utf8.dropFirst(2).allSatisfy({ (48...57).contains($0) }) else { return nil }
        return UInt64(caseID.dropFirst(2))
    }

    /// The key of the one-open-case-per-order-line rule.
    public static func orderLineKey(orderID: String, orderLineID: String) -> String {
        // NUL cannot appear in proto strings' ids in practice and keeps the pair unambiguous.
        // Written in one allocation: `+` twice cost ~2 500 instructions per create.
        var order = orderID
        var line = orderLineID
        return order.withUTF8 { o in
            line.withUTF8 { l in
                String(unsafeUninitializedCapacity: o.count + 1 + l.count) { buffer in
                    _ = buffer.initialize(fromContentsOf: o)
                    buffer[o.count] = 0
                    _ = UnsafeMutableBufferPointer(rebasing: buffer[(o.count + 1)...]).initialize(fromContentsOf: l)
                    return o.count + 1 + l.count
                }
            }
        }
    }

    // MARK: - Keeping indexes in step

    /// Stores `updated` and brings the indexes and the deadline queue in step with it.
    private mutating func commit(_ updated: Case, replacing previous: Case?) {
        cases[updated.caseID] = updated
        index(updated, number: indexNumber(of: updated.caseID), replacing: previous)
        if updated.deadline != previous?.deadline, let deadline = updated.deadline {
            deadlines.schedule(ScheduledDeadline(dueAt: deadline.dueAt, caseID: updated.caseID, kind: deadline.kind))
        }
        // Lazy cancellation leaves stale entries behind; shed them once they outnumber
        // the live ones, so the queue stays O(live) in size at amortised O(1) per change.
        if deadlines.storedCount > 2 * liveDeadlineCount + 1_024 {
            shedStaleDeadlines()
        }
        // Only this case's own entry can have gone stale at the top: look further only
        // then (checking liveness is a lookup of the case, on every change otherwise).
        if let top = deadlines.earliest, top.caseID == updated.caseID { discardStaleDeadlines() }
    }

    /// Updates only the index entries whose keys changed: order line, merchant and
    /// consumer never change after creation, so a later step touches at most the status
    /// bitmaps and, when the case ends, the open-case-by-order-line entry.
    private mutating func index(_ updated: Case, number: UInt64, replacing previous: Case?) {
        if let previous {
            if !previous.status.isTerminal, updated.status.isTerminal {
                let key = updated.orderLineKey
                if openCaseByOrderLine[key] == number { openCaseByOrderLine[key] = nil }
            }
        } else {
            numbersByMerchant[updated.merchantID, default: []].append(number)
            numbersByConsumer[updated.consumerID, default: []].append(number)
            if !updated.status.isTerminal { openCaseByOrderLine[updated.orderLineKey] = number }
        }
        if previous?.status != updated.status {
            if let old = previous?.status { numbersByStatus[old].remove(number) }
            numbersByStatus[updated.status].insert(number)
        }
        liveDeadlineCount += (updated.deadline == nil ? 0 : 1) - (previous?.deadline == nil ? 0 : 1)
    }

    /// The number of a case id the store made; any other id is a broken invariant (ids
    /// come only from `caseID(number:)`, and restored ones were made the same way).
    private func indexNumber(of caseID: String) -> UInt64 {
        guard let number = numbering.localNumber(of: caseID) else {
            preconditionFailure("case id '\(caseID)' was not made by this store's numbering (\(numbering))")
        }
        return number
    }

    /// Sheds the queue's stale entries from the queue itself, not by walking every case: a
    /// store of many ended cases and few deadlines (a day of refunds) walked all its cases
    /// every ~1 000 changes, and a call's cost grew with the cases ever stored (24 µs →
    /// 51 µs of daemon CPU per call over 400 000 cases). This is one case lookup per
    /// entry, and there are at most 2 × live + 1 024. (Captures only `cases`, as
    /// `discardStaleDeadlines` explains.)
    private mutating func shedStaleDeadlines() {
        let cases = self.cases
        deadlines.shedStale { Self.isLive($0, in: cases) }
    }
}

// MARK: - Rebuilding in bulk (start-up)
// `restore` one case at a time costs a trie insert, a hash-map insert and two list
// appends per case, all on one thread, and then sorts the per-party lists. Start-up with a
// million cases instead hands over every case at once, in case number order: the indexes
// are then built by appending (no sort), and the cases, the order-line index and the other
// indexes are three separate values, so a caller with threads can build them at the same
// time and assemble the store with `init(restoredCases:orderLines:indexes:…)`. Nothing
// here runs a thread itself.

extension CaseStore {
    /// The open-case-by-order-line index of restored cases (`restoredOrderLines`).
    public struct RestoredOrderLines: Sendable {
        fileprivate var numbers: [String: UInt64]
    }

    /// Every other index and the deadline queue of restored cases (`restoredIndexes`).
    public struct RestoredIndexes: Sendable {
        fileprivate var numbersByStatus = StatusBitmaps()
        fileprivate var numbersByMerchant: [String: [UInt64]] = [:]
        fileprivate var numbersByConsumer: [String: [UInt64]] = [:]
        fileprivate var deadlines = DeadlineQueue()
        fileprivate var liveDeadlineCount = 0
        fileprivate var highestNumber: UInt64 = 0
    }

    /// Top-level buckets of the case trie (`restoredTrieBucket`).
    public static let restoredTrieBuckets = 32

    /// The top-level bucket of the case trie that `caseID` goes to: the low five bits of
    /// its raw hash, where swift-collections' TreeDictionary starts its path. Were that
    /// layout to change, tries built from separate buckets would share nodes and joining
    /// them would cost more; the store built would be the same.
    public static func restoredTrieBucket(of caseID: String) -> UInt8 {
        UInt8(truncatingIfNeeded: UInt(bitPattern: caseID._rawHashValue(seed: 0)) & 31)
    }

    /// The cases of `ordered` whose top-level bucket (`buckets[i]` is that of
    /// `ordered[i]`, from `restoredTrieBucket`) is in `range`: tries built from disjoint
    /// ranges at the same time never share a node, and `init(restoredCases:…)` joins
    /// them by linking their top-level children.
    public static func restoredCaseTrie(_ ordered: [Case], buckets: [UInt8], in range: Range<Int>) -> TreeDictionary<String, Case> {
        precondition(buckets.count == ordered.count, "one bucket per case")
        var trie = TreeDictionary<String, Case>()
        for position in ordered.indices where range.contains(Int(buckets[position])) {
            let item = ordered[position]
            trie[item.caseID] = item
        }
        return trie
    }

    /// The open-case-by-order-line index of `ordered`: restored cases in ascending case
    /// number order, each number once (a precondition), ids of `numbering`.
    public static func restoredOrderLines(_ ordered: [Case], numbering: CaseNumbering) -> RestoredOrderLines {
        var numbers: [String: UInt64] = [:]
        numbers.reserveCapacity(ordered.count)
        var previous: UInt64?
        for item in ordered {
            let number = restoredNumber(of: item.caseID, numbering: numbering, after: previous)
            previous = number
            // As `index` does: a later case on the same line wins (none should be open).
            if !item.status.isTerminal { numbers[item.orderLineKey] = number }
        }
        return RestoredOrderLines(numbers: numbers)
    }

    /// The status bitmaps, the per-party lists and the deadline queue of `ordered` (as
    /// for `restoredOrderLines`). The lists come out ascending because the cases are.
    public static func restoredIndexes(_ ordered: [Case], numbering: CaseNumbering) -> RestoredIndexes {
        var indexes = RestoredIndexes()
        var deadlines: [(dueAt: Millis, caseNumber: UInt64, kind: DeadlineKind)] = []
        deadlines.reserveCapacity(ordered.count)
        var previous: UInt64?
        for item in ordered {
            let number = restoredNumber(of: item.caseID, numbering: numbering, after: previous)
            previous = number
            indexes.numbersByStatus[item.status].insert(number)
            indexes.numbersByMerchant[item.merchantID, default: []].append(number)
            indexes.numbersByConsumer[item.consumerID, default: []].append(number)
            if let deadline = item.deadline {
                // The queue keys entries by the id's own number (`caseNumber(of:)`).
                deadlines.append((deadline.dueAt, number * numbering.shardCount + numbering.shard, deadline.kind))
            }
        }
        indexes.liveDeadlineCount = deadlines.count
        indexes.deadlines.rebuild(numbered: deadlines)
        indexes.highestNumber = previous ?? 0
        return indexes
    }

    /// A rebuilt store from its parts: the case trie in one or more parts
    /// (`restoredCaseTrie` of disjoint bucket ranges) and the indexes of the same cases.
    /// `nextCaseNumber` is raised past the highest restored number if needed.
    public init(config: EngineConfig = EngineConfig(), numbering: CaseNumbering = .single,
                restoredCases parts: [TreeDictionary<String, Case>], orderLines: RestoredOrderLines,
                indexes: RestoredIndexes, nextCaseNumber: UInt64) {
        self.init(config: config, numbering: numbering)
        var parts = parts.sorted { $0.count > $1.count }
        var joined = parts.isEmpty ? [:] : parts.removeFirst()
        for part in parts {
            joined.merge(part) { _, _ in preconditionFailure("restored trie parts overlap") }
        }
        cases = joined
        openCaseByOrderLine = orderLines.numbers
        numbersByStatus = indexes.numbersByStatus
        numbersByMerchant = indexes.numbersByMerchant
        numbersByConsumer = indexes.numbersByConsumer
        deadlines = indexes.deadlines
        liveDeadlineCount = indexes.liveDeadlineCount
        self.nextCaseNumber = max(nextCaseNumber, indexes.highestNumber + 1)
    }

    /// `ordered`'s number of `caseID`, checked to be above `previous`.
    private static func restoredNumber(of caseID: String, numbering: CaseNumbering, after previous: UInt64?) -> UInt64 {
        guard let number = numbering.localNumber(of: caseID) else {
            preconditionFailure("case id '\(caseID)' was not made by this store's numbering (\(numbering))")
        }
        precondition(previous.map { number > $0 } ?? true, "restored cases out of case number order at '\(caseID)'")
        return number
    }
}

extension CaseStore: Equatable {
    /// Same cases, id counter, indexes and live deadline entries (stale entries are an
    /// implementation detail of lazy cancellation and do not count).
    public static func == (lhs: CaseStore, rhs: CaseStore) -> Bool {
        lhs.cases == rhs.cases
            && lhs.nextCaseNumber == rhs.nextCaseNumber
            && lhs.openCaseByOrderLine == rhs.openCaseByOrderLine
            && lhs.numbersByStatus == rhs.numbersByStatus
            && lhs.numbersByMerchant == rhs.numbersByMerchant
            && lhs.numbersByConsumer == rhs.numbersByConsumer
            && lhs.liveDeadlineCount == rhs.liveDeadlineCount
            && lhs.queuedDeadlines.filter(lhs.isLive).sorted() == rhs.queuedDeadlines.filter(rhs.isLive).sorted()
    }
}

/// Which ids a store hands out. A daemon on its own is one shard of one (ids "AS" + the
/// case number); in a cluster of S shards, shard k's n-th case is number n × S + k, so
/// the id alone says which shard holds the case (number mod S) and ids stay in the same
/// "AS" + 10 digits form, unique across the cluster.
public struct CaseNumbering: Sendable, Hashable, CustomStringConvertible {
    /// This store's shard, 0..<shardCount.
    public let shard: UInt64
    /// The shards of the cluster (1 for a daemon on its own).
    public let shardCount: UInt64

    /// A daemon on its own: ids are "AS" + the case number.
    public static let single = CaseNumbering(shard: 0, shardCount: 1)

    /// Shard `shard` of `shardCount`.
    public init(shard: UInt64, shardCount: UInt64) {
        precondition(shardCount >= 1 && shard < shardCount, "shard \(shard) of \(shardCount)")
        (self.shard, self.shardCount) = (shard, shardCount)
    }

    /// The id of this shard's `local`-th case.
    public func caseID(local: UInt64) -> String { CaseStore.caseID(number: local * shardCount + shard) }

    /// This shard's number for `caseID`, or nil for an id it did not (or could not) make.
    public func localNumber(of caseID: String) -> UInt64? {
        guard let number = CaseStore.caseNumber(of: caseID), number % shardCount == shard else { return nil }
        return number / shardCount
    }

    /// The shard that holds `caseID` in a cluster of `shardCount` shards; nil for an id no store made.
    public static func shard(of caseID: String, shardCount: UInt64) -> UInt64? {
        CaseStore.caseNumber(of: caseID).map { $0 % shardCount }
    }

    public var description: String { "shard \(shard) of \(shardCount)" }
}
