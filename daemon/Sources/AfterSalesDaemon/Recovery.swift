// Start-up: the newest valid snapshot, then every journal record after it. What the
// daemon acknowledged before it stopped (or was killed) is exactly what it holds again.
import AfterSalesProto
import CaseEngine
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
    static func recover(directory: String, config: DaemonConfig, logger: Logger) throws -> RecoveredState {
        var cases: [String: Case] = [:]
        var nextCaseNumber: UInt64 = 1
        var idempotency = IdempotencyTable(capacity: config.idempotencyCapacity)
        var announcements = AnnouncementLog(window: config.replayWindow)
        var snapshotSeq: UInt64 = 0
        var snapshotPath: String?
        var journalPosition: UInt64 = 1

        let loaded = try SnapshotReader.loadNewestValid(directory: directory)
        if let snapshot = loaded {
            for rejected in snapshot.rejected {
                logger.warning("skipped an unusable snapshot", metadata: ["path": "\(rejected.path)", "reason": "\(rejected.reason)"])
            }
            // Snapshot files are named for the journal position they cover up to.
            journalPosition = snapshot.seq
            snapshotPath = snapshot.path
            var records = snapshot.records.makeIterator()
            guard let first = records.next() else { throw RecoveryError(description: "snapshot \(snapshot.path) has no header") }
            let header = try parse(Aftersales_Storage_V1_SnapshotHeader.self, first, in: snapshot.path)
            guard header.format == 1 else {
                throw RecoveryError(description: "snapshot \(snapshot.path) has format \(header.format); this aftersalesd reads format 1")
            }
            nextCaseNumber = header.nextCaseNumber
            cases.reserveCapacity(Int(header.caseCount))
            while let bytes = records.next() {
                let item = try parse(Aftersales_Storage_V1_SnapshotItem.self, bytes, in: snapshot.path)
                switch item.item {
                case .case(let stored)?: cases[stored.caseID] = try Case(stored: stored)
                case .answer(let answer)?: idempotency.remember(answer)
                case nil: throw RecoveryError(description: "snapshot \(snapshot.path) holds an empty item")
                }
            }
            snapshotSeq = header.lastSeq
            announcements.advance(to: header.lastSeq)
            logger.info("loaded snapshot", metadata: ["path": "\(snapshot.path)", "seq": "\(header.lastSeq)", "cases": "\(cases.count)"])
        }

        let journal = try Journal.readAll(directory: directory)
        if let torn = journal.tornTail {
            logger.warning("journal ended inside a record; cut off the torn tail", metadata: [
                "path": "\(torn.path)", "offset": "\(torn.offset)", "bytes_dropped": "\(torn.bytesDropped)", "reason": "\(torn.reason)"])
        }
        var applied = 0
        // From the snapshot's position on; throws if a segment it needs is missing.
        for record in try journal.entries(from: journalPosition) {
            let entry = try parse(Aftersales_Storage_V1_JournalEntry.self, record.payload, in: "journal record \(record.sequence) in \(directory)")
            let restored = try Case(stored: entry.case)
            cases[restored.caseID] = restored
            nextCaseNumber = max(nextCaseNumber, entry.nextCaseNumber)
            if entry.hasAnswer { idempotency.remember(entry.answer) }
            var wireCase = entry.case
            wireCase.history = []
            let caseBytes: [UInt8] = try wireCase.serializedBytes()
            for event in entry.events {
                announcements.restore(event, caseBytes: caseBytes)
            }
            applied += 1
        }
        let store = CaseStore(config: config.engine, restoring: cases.values, nextCaseNumber: nextCaseNumber)
        return RecoveredState(store: store, announcements: announcements, idempotency: idempotency,
                              snapshotSeq: snapshotSeq, journalPosition: journalPosition, snapshotPath: snapshotPath,
                              journalRecords: applied)
    }

    private static func parse<M: SwiftProtobuf.Message>(_ type: M.Type, _ bytes: [UInt8], in place: String) throws -> M {
        do {
            return try M(serializedBytes: bytes)
        } catch {
            throw RecoveryError(description: "\(place): record does not parse as \(M.protoMessageName) (\(error)); refusing to start")
        }
    }
}
