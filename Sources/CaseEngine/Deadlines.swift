import HeapModule

// The deadline queue: every case's current deadline, ordered by due time, so the daemon
// sleeps exactly until the next one (Redis's ae.c timer idea).

/// One scheduled deadline: a case's clock of `kind`, due at `dueAt`.
public struct ScheduledDeadline: Sendable, Hashable, Comparable {
    /// When it fires.
    public var dueAt: Millis
    /// The case it belongs to.
    public var caseID: String
    /// Which clock.
    public var kind: DeadlineKind

    /// Creates an entry.
    public init(dueAt: Millis, caseID: String, kind: DeadlineKind) {
        self.dueAt = dueAt
        self.caseID = caseID
        self.kind = kind
    }

    /// Due order; ties by case id then kind so that firing order is deterministic.
    public static func < (lhs: ScheduledDeadline, rhs: ScheduledDeadline) -> Bool {
        (lhs.dueAt, lhs.caseID, lhs.kind) < (rhs.dueAt, rhs.caseID, rhs.kind)
    }
}

/// A min-heap of deadlines with lazy cancellation: an entry is live only while its case's
/// current `deadline` still equals it. Replacing a case's deadline costs one O(log n)
/// push; the superseded entry is dropped when it reaches the top. Case ids must be ones
/// `CaseStore.caseID(number:)` makes: entries are stored by case number.
public struct DeadlineQueue: Sendable {
    private var heap = Heap<PackedDeadline>()

    /// An empty queue.
    public init() {}

    /// Entries held, live and stale.
    public var storedCount: Int { heap.count }

    /// The earliest entry, live or stale.
    public var earliest: ScheduledDeadline? { heap.min?.unpacked }

    /// When the earliest entry is due, without making its case id (the loop asks twice a turn).
    public var earliestDueAt: Millis? { heap.min?.dueAt }

    /// Adds an entry. O(log n).
    public mutating func schedule(_ entry: ScheduledDeadline) {
        heap.insert(PackedDeadline(entry))
    }

    /// Removes and returns the earliest entry. O(log n).
    public mutating func popEarliest() -> ScheduledDeadline? {
        heap.popMin()?.unpacked
    }

    /// Drops stale entries from the top until the earliest is live (or the queue is empty).
    public mutating func discardStale(isLive: (ScheduledDeadline) -> Bool) {
        while let top = heap.min, !isLive(top.unpacked) { _ = heap.popMin() }
    }

    /// Keeps only the live entries, each once, O(n) in the entries stored (not in the
    /// cases the store holds): what `discardStale` does at the top, over the whole queue.
    public mutating func shedStale(isLive: (ScheduledDeadline) -> Bool) {
        var kept = Set<PackedDeadline>()
        heap = Heap(heap.unordered.filter { isLive($0.unpacked) && kept.insert($0).inserted })
    }

    /// Rebuilds from exactly `entries`, O(n): used at restore.
    public mutating func rebuild<S: Sequence>(from entries: S) where S.Element == ScheduledDeadline {
        heap = Heap(entries.map(PackedDeadline.init))
    }

    /// Rebuilds from exactly `entries`, given by the number in their case id (what
    /// `CaseStore.caseNumber(of:)` reads), O(n): restore in bulk, without reading ids.
    mutating func rebuild(numbered entries: [(dueAt: Millis, caseNumber: UInt64, kind: DeadlineKind)]) {
        heap = Heap(entries.map { PackedDeadline(dueAt: $0.dueAt, caseNumber: $0.caseNumber, kind: $0.kind) })
    }

    /// Every stored entry, in no particular order (for checks and tests).
    public var unorderedEntries: [ScheduledDeadline] { heap.unordered.map(\.unpacked) }
}

/// A `ScheduledDeadline` in 16 bytes instead of 32 (one per open case, so a million of
/// them): the case number and the kind share one word, and comparing two integers orders
/// entries exactly as (dueAt, caseID, kind) does, since store-made ids sort as numbers.
private struct PackedDeadline: Comparable, Hashable {
    let dueAt: Millis
    /// Case number × 8 + the kind's position in `DeadlineKind.allCases` (6 kinds).
    let caseNumberAndKind: UInt64

    init(_ entry: ScheduledDeadline) {
        guard let number = CaseStore.caseNumber(of: entry.caseID), number < 1 << 60 else {
            preconditionFailure("deadline for case id '\(entry.caseID)', which CaseStore.caseID(number:) did not make")
        }
        dueAt = entry.dueAt
        caseNumberAndKind = number << 3 | UInt64(DeadlineKind.allCases.firstIndex(of: entry.kind)!)
    }

    init(dueAt: Millis, caseNumber number: UInt64, kind: DeadlineKind) {
        precondition(number < 1 << 60, "deadline for case number \(number)")
        self.dueAt = dueAt
        caseNumberAndKind = number << 3 | UInt64(DeadlineKind.allCases.firstIndex(of: kind)!)
    }

    var unpacked: ScheduledDeadline {
        ScheduledDeadline(dueAt: dueAt, caseID: CaseStore.caseID(number: caseNumberAndKind >> 3),
                          kind: DeadlineKind.allCases[Int(caseNumberAndKind & 7)])
    }

    static func < (lhs: PackedDeadline, rhs: PackedDeadline) -> Bool {
        (lhs.dueAt, lhs.caseNumberAndKind) < (rhs.dueAt, rhs.caseNumberAndKind)
    }
}
