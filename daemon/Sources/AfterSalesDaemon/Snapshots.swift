// Snapshots: a copy of the store taken in O(1) on the loop (CaseStore keeps its cases in
// a persistent hash trie), written on a background thread while the loop keeps serving,
// then handed back through the wake-up pipe. The journal is rotated at the moment of the
// copy, so the snapshot plus the segments after it are the whole state.
import AfterSalesProto
import AfterSalesRPC
import CaseEngine
import DequeModule
import Foundation
import HashTreeCollections
import Logging
import ZeroMQ

/// When the last snapshot was taken, and the one in flight.
struct SnapshotSchedule {
    /// Sequence number of the newest snapshot on disk (0 = none yet).
    var lastSeq: UInt64
    /// When the last snapshot was started (periodic snapshots count from here).
    var lastAt: Millis
    var completedAt: Millis = 0
    var lastDurationMs: Int64 = 0
    var lastBytes: UInt64 = 0
    var inFlight: SnapshotJob?
    /// TakeSnapshot callers the in-flight snapshot answers.
    var waiting: [(routing: ArraySlice<Frame>, requestID: UInt64, started: UInt64)] = []
    /// TakeSnapshot callers waiting for the next snapshot (their changes are not in the one in flight).
    var requested: [(routing: ArraySlice<Frame>, requestID: UInt64, started: UInt64)] = []
    let handOff = SnapshotHandOff()
    /// The in-flight snapshot's thread, for lifting it out of SCHED_IDLE when starved.
    var thread: SnapshotScheduling?
}

/// Where a core's snapshots go.
enum SnapshotTarget: Sendable {
    /// Files in the data directory (a daemon on its own).
    case directory(String)
    /// The shard's rows in PostgreSQL (a cluster member), written under the shard's fence.
    case shard(any ShardSnapshotStore)
}

/// Writes a cluster shard's snapshot: the bytes in the snapshot file format, covering the
/// journal below `position`; deletes the journal rows it covers. Runs on the snapshot thread.
protocol ShardSnapshotStore: Sendable {
    /// Stores the snapshot; throws when the shard's fence no longer holds or PostgreSQL fails.
    func write(position: UInt64, body: [UInt8], records: Int) throws -> SnapshotInfo
}

/// Everything a snapshot needs, captured on the loop thread; safe to run on another.
struct SnapshotJob: Sendable {
    let target: SnapshotTarget
    /// The announcement sequence number the snapshot includes.
    let seq: UInt64
    /// The journal position it covers up to (and its file name).
    let journalPosition: UInt64
    let nextCaseNumber: UInt64
    let takenAt: Millis
    let cases: TreeDictionary<String, Case>
    /// How the store numbers its cases (the snapshot lists them in number order).
    let numbering: CaseNumbering
    let answers: [Aftersales_Storage_V1_IdempotentAnswer]
    /// The replay window, oldest first (all published: the journal was synced at the copy).
    let events: Deque<PublishedEvent>
    /// The journal segments closed when the copy was taken: those the kept snapshots
    /// cover are deleted by `run`, off the loop.
    let closedSegments: [ClosedSegment]

    /// Writes the snapshot file, then deletes the journal segments the kept snapshots
    /// cover; the outcome carries the snapshot's figures or its error.
    func run() -> SnapshotOutcome {
        guard case .directory(let directory) = target else { return SnapshotOutcome(snapshot: writeToShard()) }
        let written = write(into: directory)
        guard case .success(let info) = written else { return SnapshotOutcome(snapshot: written) }
        let covered = closedSegments.prefix { $0.end <= info.oldestKeptSequence }.map(\.path)
        do {
            try Journal.deleteSegments(covered, in: directory)
            return SnapshotOutcome(snapshot: written, deletedSegments: covered)
        } catch {
            // Some may be gone: the loop forgets those whose files no longer exist.
            let gone = covered.filter { !FileManager.default.fileExists(atPath: $0) }
            return SnapshotOutcome(snapshot: written, deletedSegments: gone, deletionError: error)
        }
    }

    /// Writes the snapshot to the shard's rows.
    private func writeToShard() -> Result<SnapshotInfo, Error> {
        guard case .shard(let store) = target else { preconditionFailure("not a shard snapshot") }
        return Result {
            let encoded = try SnapshotFormat.encode(seq: journalPosition, records: records)
            return try store.write(position: journalPosition, body: encoded.bytes, records: encoded.records)
        }
    }

    /// Writes the snapshot file.
    private func write(into directory: String) -> Result<SnapshotInfo, Error> {
        let records = self.records
        return Result {
            try SnapshotWriter(directory: directory).write(seq: journalPosition, records: records)
        }
    }

    /// The snapshot's records: the header, then every case, remembered answer and kept event.
    private var records: some Sequence<[UInt8]> {
        let header = Aftersales_Storage_V1_SnapshotHeader.with {
            $0.format = 2
            $0.lastSeq = seq
            $0.nextCaseNumber = nextCaseNumber
            $0.takenAtMs = takenAt
            $0.caseCount = UInt64(cases.count)
            $0.answerCount = UInt64(answers.count)
            $0.eventCount = UInt64(events.count)
        }
        // Serializing our own freshly built messages cannot fail.
        let records = [try! header.serializedBytes() as [UInt8]].lazy
        // SnapshotItem's field 1 is the case: splice the directly encoded bytes.
        let caseRecords = casesInNumberOrder.lazy.map { stored -> [UInt8] in
            ProtoWriter.bytes(capacity: EncodedCase.expectedBytes(stored) + 8) { $0.messageField(1) { $0.fullCase(stored) } }
        }
        let answerRecords = answers.lazy.map { answer -> [UInt8] in
            try! Aftersales_Storage_V1_SnapshotItem.with { $0.answer = answer }.serializedBytes()
        }
        // SnapshotItem field 3 is a KeptEvent: seq (1), topic (2), the published bytes (3).
        let eventRecords = events.lazy.map { event -> [UInt8] in
            ProtoWriter.bytes(capacity: event.bytes.count + event.topic.utf8.count + 32) { w in
                w.messageField(3) { kept in
                    kept.varintField(1, event.seq)
                    kept.stringField(2, event.topic, always: true)
                    kept.bytesField(3, event.bytes)
                }
            }
        }
        return [AnySequence(records), AnySequence(caseRecords), AnySequence(answerRecords), AnySequence(eventRecords)].joined()
    }
}

extension SnapshotJob {
    /// Every case, in case number order: start-up decodes them in file order, so that is
    /// the order they are laid out in memory and the order the store's indexes are built
    /// in — a walk in any other order misses the cache on almost every case. A look-up
    /// per number costs the writer a little; a case whose id is not one of the numbering's
    /// (none should be) follows in trie order.
    var casesInNumberOrder: AnySequence<Case> { Self.inNumberOrder(cases, numbering: numbering, below: nextCaseNumber) }

    /// `cases` numbered below `next` in number order, then the others in trie order.
    static func inNumberOrder(_ cases: TreeDictionary<String, Case>, numbering: CaseNumbering, below next: UInt64) -> AnySequence<Case> {
        AnySequence { () -> AnyIterator<Case> in
            var number: UInt64 = 0
            var listed = 0
            var strays: TreeDictionary<String, Case>.Keys.Iterator?
            return AnyIterator { () -> Case? in
                while number < next {
                    defer { number += 1 }
                    if let item = cases[numbering.caseID(local: number)] {
                        listed += 1
                        return item
                    }
                }
                guard listed < cases.count else { return nil }
                if strays == nil { strays = cases.keys.makeIterator() }
                while let key = strays!.next() {
                    if numbering.localNumber(of: key).map({ $0 >= next }) ?? true { return cases[key] }
                }
                return nil
            }
        }
    }
}

/// What a background snapshot hands back to the loop.
struct SnapshotOutcome: Sendable {
    /// The snapshot's figures, or why it failed.
    var snapshot: Result<SnapshotInfo, Error>
    /// Journal segments deleted because the kept snapshots cover them, oldest first.
    var deletedSegments: [String] = []
    /// Why deleting the covered segments failed, if it did (the snapshot stands).
    var deletionError: Error?
}

/// The one place a background snapshot's result crosses back to the loop thread.
final class SnapshotHandOff: @unchecked Sendable {
    private let lock = NSLock()
    private var result: SnapshotOutcome?

    func put(_ value: SnapshotOutcome) {
        lock.lock()
        result = value
        lock.unlock()
    }

    func take() -> SnapshotOutcome? {
        lock.lock()
        defer { lock.unlock() }
        let value = result
        result = nil
        return value
    }
}

extension DaemonCore {
    /// Captures the store and rotates the journal (loop thread; the batch is committed).
    /// The rotation syncs the journal, so every announcement made so far is released to
    /// the batch and the snapshot's replay window reaches its last sequence number.
    func prepareSnapshot() -> SnapshotJob {
        let position = journal.nextSequence
        do {
            try journal.rotate(startingAt: position)
        } catch {
            logger.error("journal rotation failed; the snapshot will still be written", metadata: ["error": "\(error)"])
        }
        releaseDurableAnnouncements()
        let now = clock.now()
        snapshots.lastAt = now
        return SnapshotJob(target: snapshotTarget, seq: announcements.publishedSeq, journalPosition: position,
                           nextCaseNumber: store.nextCaseNumber, takenAt: now,
                           cases: store.cases, numbering: store.numbering, answers: idempotency.inOrder, events: announcements.recent,
                           closedSegments: journal.closedSegments)
    }

    /// Periodic snapshots: every --snapshot-interval, when something changed.
    func maybeStartSnapshot(now: Millis) {
        guard snapshots.inFlight == nil else {
            snapshots.thread?.liftIfStarved(nowNanoseconds: monotonicNanoseconds())
            return
        }
        if !snapshots.requested.isEmpty {
            snapshots.waiting = snapshots.requested
            snapshots.requested.removeAll()
            startBackgroundSnapshot()
            return
        }
        guard config.snapshotIntervalMs > 0, now - snapshots.lastAt >= config.snapshotIntervalMs else { return }
        guard announcements.lastSeq != snapshots.lastSeq else {
            snapshots.lastAt = now
            return
        }
        startBackgroundSnapshot()
    }

    /// TakeSnapshot: answered when the snapshot is on disk.
    func requestSnapshot(replyTo routing: ArraySlice<Frame>, requestID: UInt64) {
        // The copy must include this batch's changes, which are not committed yet: the
        // loop starts it after the commit, at the end of this turn (or after the snapshot
        // already in flight, which may not hold them).
        snapshots.requested.append((routing, requestID, monotonicNanoseconds()))
    }

    private func startBackgroundSnapshot() {
        let job = prepareSnapshot()
        snapshots.inFlight = job
        let handOff = snapshots.handOff
        let wake = wakeUp
        let scheduling = SnapshotScheduling()
        snapshots.thread = scheduling
        let thread = Thread {
            // On a small machine the snapshot competes with the loop for a core: it takes
            // only what every other thread leaves (SCHED_IDLE), and calls keep their pace.
            scheduling.yieldToEveryOtherThread()
            handOff.put(job.run())
            wake.signal(.snapshotDone)
        }
        thread.name = "aftersalesd-snapshot"
        thread.start()
    }

    /// The loop side of a finished background snapshot.
    func finishBackgroundSnapshot() {
        guard let job = snapshots.inFlight, let result = snapshots.handOff.take() else { return }
        complete(job, result)
    }

    /// Blocks until an in-flight snapshot is done (shutdown only).
    func waitForBackgroundSnapshot() {
        guard let job = snapshots.inFlight else { return }
        var result = snapshots.handOff.take()
        while result == nil {
            Thread.sleep(forTimeInterval: 0.005)
            result = snapshots.handOff.take()
        }
        complete(job, result!)
    }

    func complete(_ job: SnapshotJob, _ outcome: SnapshotOutcome) {
        snapshots.inFlight = nil
        journal.forgetSegments(outcome.deletedSegments)
        if let error = outcome.deletionError {
            logger.warning("could not remove old journal segments", metadata: ["error": "\(error)"])
        }
        switch outcome.snapshot {
        case .success(let info):
            snapshots.lastSeq = job.seq
            snapshots.completedAt = clock.now()
            snapshots.lastDurationMs = Int64(info.durationMs.rounded())
            snapshots.lastBytes = info.bytes
            logger.info("snapshot written", metadata: ["path": "\(info.path)", "seq": "\(job.seq)", "cases": "\(job.cases.count)",
                                                       "bytes": "\(info.bytes)", "ms": "\(Int64(info.durationMs.rounded()))"])
            for waiter in snapshots.waiting {
                let response = Aftersales_V1_TakeSnapshotResponse.with {
                    $0.seq = job.seq
                    $0.path = info.path
                    $0.bytes = info.bytes
                    $0.durationMs = Int64(info.durationMs.rounded())
                    $0.cases = UInt64(job.cases.count)
                }
                batch.reply(to: waiter.routing, requestID: waiter.requestID, method: .takeSnapshot, started: waiter.started,
                            .success(try! response.serializedBytes()))
            }
        case .failure(let error):
            logger.error("snapshot failed", metadata: ["error": "\(error)"])
            for waiter in snapshots.waiting {
                batch.reply(to: waiter.routing, requestID: waiter.requestID, method: .takeSnapshot, started: waiter.started,
                            .failure(RPCError(.unavailable, "snapshot failed: \(error)")))
            }
        }
        snapshots.waiting.removeAll()
    }
}

/// How the snapshot thread is scheduled. SCHED_IDLE: it runs only on a core no other
/// thread wants, and any thread that wakes (the loop, libzmq's I/O, a caller on the same
/// machine) takes the core from it at once; nice 19 alone left it time slices that calls
/// waited behind (GetCase p99 2.1× during a 1 M-case snapshot, 1.0× under SCHED_IDLE).
/// A machine busy without pause would starve it, and the journal would grow without a
/// snapshot to cut it: after `starvedAfter` the loop lifts it to nice 19.
final class SnapshotScheduling: @unchecked Sendable {
    // @unchecked: the state is written by the snapshot thread and read by the loop, both
    // under the lock.
    private let lock = NSLock()
    private var tid: Int32 = 0
    private var started: UInt64 = 0
    private var lifted = false
    static let starvedAfterNanoseconds: UInt64 = 5_000_000_000

    /// The calling thread's kernel id (Swift cannot call gettid(2) through the variadic
    /// syscall(); /proc/thread-self links to "PID/task/TID"). 0 when unreadable.
    private static func threadID() -> Int32 {
        var buffer = [CChar](repeating: 0, count: 64)
        let length = readlink("/proc/thread-self", &buffer, buffer.count - 1)
        guard length > 0 else { return 0 }
        let text = String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return text.split(separator: "/").last.flatMap { Int32($0) } ?? 0
    }

    /// Called on the snapshot thread as it starts.
    func yieldToEveryOtherThread() {
        let me = Self.threadID()
        lock.withLock { tid = me; started = monotonicNanoseconds() }
        // Nice 19 first: the priority it keeps if it is lifted (the per-thread nice value;
        // who = 0 is the calling thread).
        _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 19)
        var parameters = sched_param(sched_priority: 0)
        // 5 is SCHED_IDLE, which Glibc declares only under _GNU_SOURCE.
        _ = sched_setscheduler(0, 5, &parameters)
    }

    /// Called by the loop while the snapshot is in flight: past `starvedAfter`, back to the
    /// normal policy at the lowest priority.
    func liftIfStarved(nowNanoseconds: UInt64) {
        lock.withLock {
            // Started at all: `started` is set with `tid`.
            guard !lifted, tid != 0, nowNanoseconds &- started > Self.starvedAfterNanoseconds else { return }
            lifted = true
            var parameters = sched_param(sched_priority: 0)
            _ = sched_setscheduler(tid, Int32(SCHED_OTHER), &parameters)
        }
    }
}
