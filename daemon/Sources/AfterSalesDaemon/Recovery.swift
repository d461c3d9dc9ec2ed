// Start-up: the newest valid snapshot, then every journal record after it. What the
// daemon acknowledged before it stopped (or was killed) is exactly what it holds again.
import AfterSalesProto
import CaseEngine
import Foundation
#if canImport(Glibc)
import Glibc

/// glibc's malloc_trim(3) (malloc.h is not in the Glibc module).
@_silgen_name("malloc_trim") private func glibcMallocTrim(_ pad: Int) -> Int32
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
        let loaded = try SnapshotReader.loadNewestValid(directory: directory)
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
        var snapshotNextCaseNumber: UInt64 = 0
        var snapshotCaseCount = 0

        // The snapshot's items are decoded on a second thread while this one reads the
        // journal and then builds the store from the cases as they arrive.
        var feed: SnapshotFeed?
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
            snapshotNextCaseNumber = header.nextCaseNumber
            snapshotSeq = header.lastSeq
            // The header's count sizes the indexes; the file's record count bounds it.
            snapshotCaseCount = Int(min(header.caseCount, UInt64(snapshot.count)))
            announcements.advance(to: header.lastSeq)
            feed = SnapshotFeed.start(snapshot)
        }
        // However this ends, the decoding thread is stopped and waited for.
        defer { feed?.cancelAndWait() }

        // The journal's cases replace the snapshot's; its answers and announcements follow
        // the snapshot's, in journal order.
        var journalCases: [String: Case] = [:]
        var journalAnswers: [IdempotencyTable.Answer] = []
        // The journal's announcements follow the snapshot's kept window, which the
        // decoding thread delivers only at its end: they wait in a window of their own.
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
        // A bad snapshot item is reported before anything the journal holds (the order the
        // records were once read in).
        if let feed, case .failure = journalOutcome {
            feed.cancelAndWait()
            if let error = feed.failure { throw error }
        }
        try journalOutcome.get()

        let store: CaseStore
        if let feed {
            // Only a journal case numbered below the snapshot's next case number can be in
            // the snapshot (a store numbers every case it creates from that counter); the
            // cases created after it — usually the whole journal — need no look-up.
            let mayBeInSnapshot = Set(journalCases.keys.lazy.filter { id in
                numbering.localNumber(of: id).map { $0 < snapshotNextCaseNumber } ?? true
            })
            var restoring = CaseStore(config: config.engine, numbering: numbering)
            restoring.reserveCapacityForRestoring(snapshotCaseCount + journalCases.count)
            var cases = RestoredCases(feed: feed, replaced: mayBeInSnapshot, journal: journalCases)
            while let item = cases.next() { restoring.restore(item) }
            restoring.finishRestoring(nextCaseNumber: nextCaseNumber)
            store = restoring
            feed.cancelAndWait()
            if let error = feed.failure { throw error }
            for answer in feed.answers { idempotency.remember(answer) }
            for kept in feed.events {
                announcements.restore(PublishedEvent(seq: kept.seq, topic: kept.topic, bytes: Array(kept.envelope)))
            }
            logger.info("loaded snapshot", metadata: ["path": "\(feed.path)", "seq": "\(snapshotSeq)", "cases": "\(feed.caseCount)"])
        } else {
            store = CaseStore(config: config.engine, numbering: numbering, restoring: journalCases.values, nextCaseNumber: nextCaseNumber)
        }
        for answer in journalAnswers { idempotency.remember(answer) }
        for event in journalAnnouncements.recent { announcements.restore(event) }
        #if canImport(Glibc)
        // The decoding thread's malloc arena is left full of freed decoding temporaries
        // between the cases it made; hand those pages back rather than keep them resident.
        if feed != nil { _ = glibcMallocTrim(0) }
        #endif
        return RecoveredState(store: store, announcements: announcements, idempotency: idempotency,
                              snapshotSeq: snapshotSeq, journalPosition: journalPosition, snapshotPath: snapshotPath,
                              journalRecords: applied)
    }

    /// Runs the direct decoder on one stored record of type `M`: a case this build cannot
    /// hold throws its `StoredCaseError`; bytes that are not protobuf throw a
    /// `RecoveryError` naming `place`.
    static func decodeStored<M: SwiftProtobuf.Message, T>(_ type: M.Type, in place: String,
                                                          _ decode: () throws(CaseWireDecoder.Failure) -> T) throws -> T {
        do {
            return try decode()
        } catch .invalid(let error) {
            throw error
        } catch {
            throw RecoveryError(description: "\(place): record does not parse as \(M.protoMessageName) (\(error)); refusing to start")
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

/// The snapshot's items (every record after the header) decoded on a thread of their own:
/// cases handed over in chunks as they are ready, answers kept in order for the end.
final class SnapshotFeed: @unchecked Sendable {
    /// Cases per hand-over.
    static let chunkSize = 4_096

    let path: String
    private let condition = NSCondition()
    // Guarded by `condition`:
    private var chunks: [[Case]] = []
    private var head = 0
    private var done = false
    private var cancelled = false
    // Written by the decoding thread before `done`; read after waiting for `done`.
    private(set) var failure: (any Error)?
    private(set) var answers: [IdempotencyTable.Answer] = []
    private(set) var events: [Aftersales_Storage_V1_KeptEvent] = []
    private(set) var caseCount = 0

    private init(path: String) { self.path = path }

    static func start(_ snapshot: LoadedSnapshot) -> SnapshotFeed {
        let feed = SnapshotFeed(path: snapshot.path)
        let thread = Thread { feed.decode(snapshot) }
        thread.name = "snapshot-decode"
        thread.stackSize = 8 << 20
        thread.start()
        return feed
    }

    private func decode(_ snapshot: LoadedSnapshot) {
        var chunk: [Case] = []
        chunk.reserveCapacity(Self.chunkSize)
        do {
            items: for index in 1..<snapshot.count {
                let item = try snapshot.withRecord(index) { bytes in
                    try Recovery.decodeStored(Aftersales_Storage_V1_SnapshotItem.self, in: "\(snapshot.path) record \(index)") {
                        () throws(CaseWireDecoder.Failure) in try CaseWireDecoder.decodeSnapshotItem(bytes)
                    }
                }
                switch item {
                case .storedCase(let restored)?:
                    chunk.append(restored)
                    if chunk.count == Self.chunkSize {
                        if !hand(&chunk) { break items }
                    }
                case .answer(let answer)?: answers.append(answer)
                case .event(let event)?: events.append(event)
                case nil: throw RecoveryError(description: "snapshot \(snapshot.path) holds an empty item")
                }
            }
            _ = hand(&chunk)
        } catch {
            failure = error
        }
        condition.lock()
        done = true
        condition.broadcast()
        condition.unlock()
    }

    /// Passes `chunk` on (reversed, so the taker can pop cases off its end without copying
    /// them); false once the feed is cancelled.
    private func hand(_ chunk: inout [Case]) -> Bool {
        caseCount += chunk.count
        chunk.reverse()
        condition.lock()
        defer { condition.unlock() }
        if cancelled { return false }
        if !chunk.isEmpty {
            chunks.append(chunk)
            condition.signal()
        }
        chunk = []
        chunk.reserveCapacity(Self.chunkSize)
        return true
    }

    /// The next chunk (reversed), waiting for it; nil when decoding ended.
    func take() -> [Case]? {
        condition.lock()
        defer { condition.unlock() }
        while head == chunks.count && !done { condition.wait() }
        guard head < chunks.count else { return nil }
        let chunk = chunks[head]
        chunks[head] = []
        head += 1
        if head == chunks.count { chunks.removeAll(keepingCapacity: true); head = 0 }
        return chunk
    }

    /// Stops decoding (if still running) and waits for the thread to finish.
    func cancelAndWait() {
        condition.lock()
        cancelled = true
        while !done { condition.wait() }
        chunks = []
        head = 0
        condition.unlock()
    }
}

/// The cases to restore: the snapshot's as they are decoded, except those the journal
/// replaced, then the journal's.
struct RestoredCases: IteratorProtocol {
    let feed: SnapshotFeed
    /// Ids of journal cases that may also be in the snapshot: skip those there.
    let replaced: Set<String>
    let journal: [String: Case]
    private var current: [Case] = []
    private var journalCases: Dictionary<String, Case>.Values.Iterator?

    init(feed: SnapshotFeed, replaced: Set<String>, journal: [String: Case]) {
        self.feed = feed
        self.replaced = replaced
        self.journal = journal
    }

    mutating func next() -> Case? {
        if journalCases == nil {
            while true {
                if let item = current.popLast() {
                    if !replaced.isEmpty && replaced.contains(item.caseID) { continue }
                    return item
                }
                guard let chunk = feed.take() else { break }
                current = chunk
            }
            journalCases = journal.values.makeIterator()
        }
        return journalCases!.next()
    }
}
