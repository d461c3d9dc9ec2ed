// Start-up: the newest valid snapshot, then every journal record after it. What the
// daemon acknowledged before it stopped (or was killed) is exactly what it holds again.
import AfterSalesProto
import CaseEngine
import Foundation
#if canImport(Glibc)
import Glibc

/// glibc's malloc_trim(3) (malloc.h is not in the Glibc module).
@_silgen_name("malloc_trim") private func glibcMallocTrim(_ pad: Int) -> Int32
/// glibc's mallopt(3), and its M_TOP_PAD parameter.
@_silgen_name("mallopt") private func glibcMallopt(_ parameter: Int32, _ value: Int32) -> Int32
private let glibcTopPad: Int32 = -2
#endif
import Logging
import SwiftProtobuf

/// What start-up rebuilt from the data directory.
struct RecoveredState {
    var store: CaseStore
    var announcements: AnnouncementLog
    var idempotency: IdempotencyTable
    /// The announcement sequence number of the snapshot start-up began from (0 = none).
    var snapshotSeq: UInt64
    /// The journal position (record number) the snapshot covers up to; appends continue after it.
    var journalPosition: UInt64
    var snapshotPath: String?
    var journalRecords: Int
}

/// A stored record that parses as framing but not as what the daemon writes.
struct RecoveryError: Error, CustomStringConvertible {
    let description: String
}

enum Recovery {
    /// A daemon's data directory: its newest valid snapshot file and its journal segments.
    static func recover(directory: String, config: DaemonConfig, logger: Logger) throws -> RecoveredState {
        let reading = ContinuousClock.now
        let loaded = try SnapshotReader.loadNewestValid(directory: directory)
        if let loaded {
            logger.debug("read the snapshot", metadata: ["path": "\(loaded.path)", "bytes": "\(loaded.bytes.count)",
                                                         "ms": "\(milliseconds(since: reading))"])
        }
        for rejected in loaded?.rejected ?? [] {
            logger.warning("skipped an unusable snapshot", metadata: ["path": "\(rejected.path)", "reason": "\(rejected.reason)"])
        }
        return try rebuild(snapshot: loaded, place: directory, numbering: .single, config: config, logger: logger) { position in
            let journal = try Journal.readAll(directory: directory)
            if let torn = journal.tornTail {
                logger.warning("journal ended inside a record; cut off the torn tail", metadata: [
                    "path": "\(torn.path)", "offset": "\(torn.offset)", "bytes_dropped": "\(torn.bytesDropped)", "reason": "\(torn.reason)"])
            }
            // From the snapshot's position on; throws if a segment it needs is missing.
            return try journal.entries(from: position)
        }
    }

    /// The state from a snapshot (nil: none yet) and the journal records from the
    /// snapshot's position on (`journal` is asked for them while the snapshot's items are
    /// decoded on another thread). `place` names the source in errors and records.
    static func rebuild(snapshot loaded: LoadedSnapshot?, place: String, numbering: CaseNumbering, config: DaemonConfig,
                        logger: Logger, journal readJournal: (_ from: UInt64) throws -> [JournalEntry]) throws -> RecoveredState {
        let directory = place
        var nextCaseNumber: UInt64 = 1
        var idempotency = IdempotencyTable(capacity: config.idempotencyCapacity)
        var announcements = AnnouncementLog(window: config.replayWindow)
        announcements.shard = UInt32(numbering.shard)
        var snapshotSeq: UInt64 = 0
        var snapshotPath: String?
        var journalPosition: UInt64 = 1

        // The snapshot's items are decoded on two threads: a helper starts on them at once,
        // this one reads the journal first and then joins in (SnapshotDecoding).
        let clock = ContinuousClock()
        let began = clock.now
        #if canImport(Glibc)
        // A thread's malloc arena grows its heap by one mprotect(2) per page it runs short
        // (a tenth of the decoding time with a million cases); with a top pad each new
        // 64 MiB heap is made usable at once. glibc's default comes back at the end. (glibc
        // then no longer moves its mmap threshold by itself: blocks of 128 KiB and more
        // stay mapped, as in a daemon that never freed a larger one.)
        if loaded != nil { _ = glibcMallopt(glibcTopPad, 64 << 20) }
        defer { if loaded != nil { _ = glibcMallopt(glibcTopPad, 128 << 10) } }
        #endif
        var decoding: SnapshotDecoding?
        if let snapshot = loaded {
            // Snapshot files are named for the journal position they cover up to.
            journalPosition = snapshot.seq
            snapshotPath = snapshot.path
            guard snapshot.count > 0 else { throw RecoveryError(description: "snapshot \(snapshot.path) has no header") }
            let header = try snapshot.withRecord(0) {
                try parse(Aftersales_Storage_V1_SnapshotHeader.self, $0, in: snapshot.path)
            }
            guard header.format == 1 || header.format == 2 else {
                throw RecoveryError(description: "snapshot \(snapshot.path) has format \(header.format); this aftersalesd reads formats 1 and 2")
            }
            nextCaseNumber = header.nextCaseNumber
            snapshotSeq = header.lastSeq
            announcements.advance(to: header.lastSeq)
            // A store numbers its cases densely from 1, so the header's next case number
            // sizes the table of cases by number; one beyond any sane size is not trusted
            // (cases numbered past the table are sorted in after it).
            let slots = Int(min(header.nextCaseNumber, UInt64(snapshot.count) * 2 + 1_024))
            decoding = SnapshotDecoding.start(snapshot, numbering: numbering, slots: slots)
        }
        // However this ends, the helper thread is stopped and waited for.
        defer { decoding?.cancelAndWait() }

        // The journal's cases replace the snapshot's; its answers and announcements follow
        // the snapshot's, in journal order.
        var journalCases: [String: Case] = [:]
        var journalAnswers: [IdempotencyTable.Answer] = []
        // The journal's announcements follow the snapshot's kept window, which is known
        // only once every item is decoded: they wait in a window of their own.
        var journalAnnouncements = AnnouncementLog(window: config.replayWindow)
        var applied = 0
        let journalOutcome = Result<Void, any Error> {
            for record in try readJournal(journalPosition) {
                let (restored, entry) = try record.payload.withUnsafeBytes { bytes in
                    try decodeStored(Aftersales_Storage_V1_JournalEntry.self, in: "journal record \(record.sequence) in \(directory)") {
                        () throws(CaseWireDecoder.Failure) in try CaseWireDecoder.decodeJournalEntry(bytes)
                    }
                }
                journalCases[restored.caseID] = restored
                nextCaseNumber = max(nextCaseNumber, entry.nextCaseNumber)
                if entry.hasAnswer { journalAnswers.append(entry.answer) }
                // Announcements carry the case without its history, as the loop sent them.
                let caseBytes = EncodedCase.summary(of: restored)
                for event in entry.events {
                    journalAnnouncements.restore(event, caseBytes: caseBytes)
                }
                applied += 1
            }
        }
        let journalRead = clock.now
        if let decoding {
            // A bad snapshot item is reported before anything the journal holds (the order
            // the records were once read in).
            if case .failure = journalOutcome { decoding.cancel() } else { decoding.decodeUntilDone() }
            decoding.waitForHelper()
            if let error = decoding.failure { throw error }
        }
        try journalOutcome.get()
        let decoded = clock.now

        let store: CaseStore
        if let decoding {
            let (ordered, buckets) = try decoding.takeCasesInNumberOrder(replacingWith: journalCases, numbering: numbering)
            let sorted = clock.now
            // Two threads share the rest: the order-line index, the other indexes and the
            // case trie in eight parts (by top-level bucket), claimed as each is free.
            let parts = 8
            let work = BuildQueue(tasks: 2 + parts)
            let build = { @Sendable () -> BuildQueue.Output in
                var output = BuildQueue.Output()
                let start = ContinuousClock.now
                while let task = work.claim() {
                    switch task {
                    case 0: output.orderLines = CaseStore.restoredOrderLines(ordered, numbering: numbering)
                    case 1: output.indexes = CaseStore.restoredIndexes(ordered, numbering: numbering)
                    default:
                        let part = task - 2, width = CaseStore.restoredTrieBuckets / parts
                        output.trie.append(CaseStore.restoredCaseTrie(ordered, buckets: buckets, in: part * width..<(part + 1) * width))
                    }
                }
                output.milliseconds = milliseconds(since: start)
                return output
            }
            let (mine, theirs) = inParallel(build, and: build)
            store = CaseStore(config: config.engine, numbering: numbering, restoredCases: mine.trie + theirs.trie,
                              orderLines: (mine.orderLines ?? theirs.orderLines)!, indexes: (mine.indexes ?? theirs.indexes)!,
                              nextCaseNumber: nextCaseNumber)
            for answer in decoding.answers { idempotency.remember(answer) }
            for kept in decoding.events {
                announcements.restore(PublishedEvent(seq: kept.seq, topic: kept.topic, bytes: Array(kept.envelope)))
            }
            logger.info("loaded snapshot", metadata: ["path": "\(decoding.path)", "seq": "\(snapshotSeq)", "cases": "\(decoding.caseCount)"])
            logger.debug("rebuilt the store", metadata: [
                "journal_ms": "\(milliseconds(since: began, to: journalRead))", "decode_ms": "\(milliseconds(since: began, to: decoded))",
                "order_ms": "\(milliseconds(since: decoded, to: sorted))", "build_ms": "\(milliseconds(since: sorted))",
                "build_ms_per_thread": "\(mine.milliseconds)/\(theirs.milliseconds)"])
        } else {
            store = CaseStore(config: config.engine, numbering: numbering, restoring: journalCases.values, nextCaseNumber: nextCaseNumber)
        }
        for answer in journalAnswers { idempotency.remember(answer) }
        for event in journalAnnouncements.recent { announcements.restore(event) }
        #if canImport(Glibc)
        // The decoding threads' malloc arenas are left full of freed decoding temporaries
        // between the cases they made; hand those pages back rather than keep them resident.
        if decoding != nil { _ = glibcMallocTrim(0) }
        #endif
        return RecoveredState(store: store, announcements: announcements, idempotency: idempotency,
                              snapshotSeq: snapshotSeq, journalPosition: journalPosition, snapshotPath: snapshotPath,
                              journalRecords: applied)
    }

    /// Whole milliseconds from `start` to `end`, for the debug log's phase timings.
    static func milliseconds(since start: ContinuousClock.Instant, to end: ContinuousClock.Instant = .now) -> Int64 {
        let elapsed = (end - start).components
        return elapsed.seconds * 1000 + elapsed.attoseconds / 1_000_000_000_000_000
    }

    /// Runs the direct decoder on one stored record of type `M`: a case this build cannot
    /// hold throws its `StoredCaseError`; bytes that are not protobuf throw a
    /// `RecoveryError` naming `place` (built only then: a million records are decoded).
    static func decodeStored<M: SwiftProtobuf.Message, T>(_ type: M.Type, in place: @autoclosure () -> String,
                                                          _ decode: () throws(CaseWireDecoder.Failure) -> T) throws -> T {
        do {
            return try decode()
        } catch .invalid(let error) {
            throw error
        } catch {
            throw RecoveryError(description: "\(place()): record does not parse as \(M.protoMessageName) (\(error)); refusing to start")
        }
    }

    static func parse<M: SwiftProtobuf.Message>(_ type: M.Type, _ bytes: UnsafeRawBufferPointer, in place: String) throws -> M {
        do {
            var message = M()
            try message.merge(serializedBytes: RawSpan(_unsafeBytes: bytes))
            return message
        } catch {
            throw RecoveryError(description: "\(place): record does not parse as \(M.protoMessageName) (\(error)); refusing to start")
        }
    }
}

