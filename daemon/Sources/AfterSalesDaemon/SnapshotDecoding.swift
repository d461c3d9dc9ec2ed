// Start-up's snapshot decoding, on both cores: the items after the header are cut into
// chunks that two threads claim in file order (a helper from the start, the recovery
// thread once it has read the journal). Each decoded case goes straight to its slot in a
// table indexed by case number — a store numbers its cases densely from 1 — so the cases
// come out in number order without a sort, which is the order the store's indexes are
// built in (CaseStore.restoredIndexes).
import AfterSalesProto
import CaseEngine
import Foundation
import HashTreeCollections

final class SnapshotDecoding: @unchecked Sendable {
    /// Items per claim.
    static let chunkSize = 4_096

    let path: String
    private let snapshot: LoadedSnapshot
    private let numbering: CaseNumbering
    /// Slot n holds the snapshot's case numbered n (local number), nil where none is.
    /// Written by both threads, each case to its own slot; read once both are done.
    private let slots: UnsafeMutableBufferPointer<Case?>
    /// The case trie's top-level bucket of each slot's case (`CaseStore.restoredTrieBucket`),
    /// worked out while the case is at hand.
    private let buckets: UnsafeMutableBufferPointer<UInt8>
    private let chunkCount: Int

    private let condition = NSCondition()
    // Guarded by `condition`:
    private var nextChunk = 0
    private var cancelled = false
    private var helperDone = false
    private var results: [Chunk?]

    /// What one chunk held besides the cases in their slots.
    private struct Chunk {
        var cases = 0
        var answers: [IdempotencyTable.Answer] = []
        var events: [Aftersales_Storage_V1_KeptEvent] = []
        /// Cases numbered past the slots.
        var strays: [(number: UInt64, item: Case, bucket: UInt8)] = []
        var failure: (any Error)?
    }

    private init(_ snapshot: LoadedSnapshot, numbering: CaseNumbering, slots: Int) {
        path = snapshot.path
        self.snapshot = snapshot
        self.numbering = numbering
        self.slots = .allocate(capacity: max(slots, 1))
        self.slots.initialize(repeating: nil)
        buckets = .allocate(capacity: max(slots, 1))
        buckets.initialize(repeating: 0)
        chunkCount = (snapshot.count - 1 + Self.chunkSize - 1) / Self.chunkSize
        results = Array(repeating: nil, count: chunkCount)
    }

    deinit {
        _ = slots.deinitialize()
        slots.deallocate()
        buckets.deallocate()
    }

    /// Starts decoding `snapshot`'s items (every record after the header) on a helper
    /// thread; `slots` sizes the table of cases by number.
    static func start(_ snapshot: LoadedSnapshot, numbering: CaseNumbering, slots: Int) -> SnapshotDecoding {
        let decoding = SnapshotDecoding(snapshot, numbering: numbering, slots: slots)
        let thread = Thread {
            decoding.decodeUntilDone()
            decoding.condition.lock()
            decoding.helperDone = true
            decoding.condition.broadcast()
            decoding.condition.unlock()
        }
        thread.name = "snapshot-decode"
        thread.stackSize = 8 << 20
        thread.start()
        return decoding
    }

    /// Claims and decodes chunks until none is left (or decoding was cancelled or failed).
    func decodeUntilDone() {
        while let chunk = claim() {
            let result = decode(chunk)
            condition.lock()
            results[chunk] = result
            // Chunks are claimed in file order: every chunk before a failed one is claimed,
            // so the first failure in file order is found; those after it need not be.
            if result.failure != nil { cancelled = true }
            condition.unlock()
        }
    }

    private func claim() -> Int? {
        condition.lock()
        defer { condition.unlock() }
        guard !cancelled, nextChunk < chunkCount else { return nil }
        nextChunk += 1
        return nextChunk - 1
    }

    /// Stops handing out chunks (those under way are finished).
    func cancel() {
        condition.lock()
        cancelled = true
        condition.unlock()
    }

    func waitForHelper() {
        condition.lock()
        while !helperDone { condition.wait() }
        condition.unlock()
    }

    func cancelAndWait() {
        cancel()
        waitForHelper()
    }

    private func decode(_ chunk: Int) -> Chunk {
        var result = Chunk()
        let first = 1 + chunk * Self.chunkSize
        let end = min(first + Self.chunkSize, snapshot.count)
        var index = first
        var texts = CaseWireDecoder.RepeatedTexts()
        do {
            while index < end {
                let item = try snapshot.withRecord(index) { bytes in
                    try Recovery.decodeStored(Aftersales_Storage_V1_SnapshotItem.self, in: "\(path) record \(index)") {
                        () throws(CaseWireDecoder.Failure) in try CaseWireDecoder.decodeSnapshotItem(bytes, sharing: &texts)
                    }
                }
                switch item {
                case .storedCase(let restored)?:
                    guard let number = numbering.localNumber(of: restored.caseID) else {
                        throw RecoveryError(description: "snapshot \(path) record \(index): case \(restored.caseID) is not one \(numbering) numbers; refusing to start")
                    }
                    let bucket = CaseStore.restoredTrieBucket(of: restored.caseID)
                    if number < UInt64(slots.count) {
                        guard slots[Int(number)] == nil else { throw Self.twice(restored.caseID, in: path) }
                        slots[Int(number)] = restored
                        buckets[Int(number)] = bucket
                    } else {
                        result.strays.append((number, restored, bucket))
                    }
                    result.cases += 1
                case .answer(let answer)?: result.answers.append(answer)
                case .event(let event)?: result.events.append(event)
                case nil: throw RecoveryError(description: "snapshot \(path) holds an empty item")
                }
                index += 1
            }
        } catch {
            result.failure = error
        }
        return result
    }

    private static func twice(_ caseID: String, in path: String) -> RecoveryError {
        RecoveryError(description: "snapshot \(path) holds case \(caseID) twice; refusing to start")
    }

    // MARK: - Once both threads are done

    private var finished: [Chunk] { results.map { $0! } }

    /// The first failure in file order, if any.
    var failure: (any Error)? { results.lazy.compactMap { $0?.failure }.first }

    /// Remembered answers, in file order.
    var answers: [IdempotencyTable.Answer] { finished.flatMap(\.answers) }

    /// Kept announcements, in file order.
    var events: [Aftersales_Storage_V1_KeptEvent] { finished.flatMap(\.events) }

    /// Cases the snapshot held.
    var caseCount: Int { finished.reduce(0) { $0 + $1.cases } }

    /// Every case, the journal's replacing the snapshot's with the same id, in ascending
    /// case number order, with each one's trie bucket; empties the table. Call once,
    /// after a decoding without failure.
    func takeCasesInNumberOrder(replacingWith journal: [String: Case], numbering: CaseNumbering) throws -> (cases: [Case], buckets: [UInt8]) {
        let chunks = finished
        let decoded = chunks.reduce(0) { $0 + $1.cases }
        var placed = 0
        for slot in slots where slot != nil { placed += 1 }
        // Cases past the table, then the journal's cases past it: usually every case the
        // journal created (the snapshot's next case number sized the table).
        var beyond: [UInt64: (item: Case, bucket: UInt8)] = [:]
        for stray in chunks.lazy.flatMap(\.strays) {
            guard beyond.updateValue((stray.item, stray.bucket), forKey: stray.number) == nil else {
                throw Self.twice(stray.item.caseID, in: path)
            }
            placed += 1
        }
        // Two threads writing one slot at the same moment would lose a case unseen: the
        // count shows it.
        guard placed == decoded else {
            throw RecoveryError(description: "snapshot \(path) holds a case id twice (\(decoded) cases, \(placed) ids); refusing to start")
        }
        for (caseID, item) in journal {
            guard let number = numbering.localNumber(of: caseID) else {
                throw RecoveryError(description: "the journal holds case \(caseID), which is not one \(numbering) numbers; refusing to start")
            }
            let bucket = CaseStore.restoredTrieBucket(of: caseID)
            if number < UInt64(slots.count) {
                slots[Int(number)] = item
                buckets[Int(number)] = bucket
            } else {
                beyond[number] = (item, bucket)
            }
        }
        var ordered: [Case] = [], orderedBuckets: [UInt8] = []
        ordered.reserveCapacity(placed + journal.count)
        orderedBuckets.reserveCapacity(placed + journal.count)
        for position in slots.indices {
            // Moved out and nil put back: no reference counting per case.
            if let item = (slots.baseAddress! + position).move() {
                ordered.append(item)
                orderedBuckets.append(buckets[position])
            }
            (slots.baseAddress! + position).initialize(to: nil)
        }
        for number in beyond.keys.sorted() {
            ordered.append(beyond[number]!.item)
            orderedBuckets.append(beyond[number]!.bucket)
        }
        return (ordered, orderedBuckets)
    }
}

/// Runs `first` on this thread and `second` on a new one, and returns both results once
/// both are done.
func inParallel<A, B: Sendable>(_ first: () -> A, and second: @escaping @Sendable () -> B) -> (A, B) {
    let outcome = ParallelOutcome<B>()
    let thread = Thread {
        let value = second()
        outcome.done.lock()
        outcome.value = value
        outcome.done.broadcast()
        outcome.done.unlock()
    }
    thread.stackSize = 8 << 20
    thread.start()
    let mine = first()
    outcome.done.lock()
    while outcome.value == nil { outcome.done.wait() }
    let theirs = outcome.value!
    outcome.done.unlock()
    return (mine, theirs)
}

/// `inParallel`'s hand-over from the second thread.
private final class ParallelOutcome<B>: @unchecked Sendable {
    let done = NSCondition()
    var value: B?
}

/// Start-up's store-building tasks, numbered, handed out in order to whichever thread
/// asks first.
final class BuildQueue: @unchecked Sendable {
    /// What one thread built.
    struct Output: Sendable {
        var orderLines: CaseStore.RestoredOrderLines?
        var indexes: CaseStore.RestoredIndexes?
        var trie: [TreeDictionary<String, Case>] = []
        var milliseconds: Int64 = 0
    }

    private let lock = NSLock()
    private var next = 0
    private let tasks: Int

    init(tasks: Int) { self.tasks = tasks }

    func claim() -> Int? {
        lock.lock()
        defer { lock.unlock() }
        guard next < tasks else { return nil }
        next += 1
        return next - 1
    }
}
