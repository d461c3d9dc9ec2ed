// Start-up recovery as it runs since it was made fast: the snapshot read in one go,
// its items decoded in chunks on two threads into a table by case number, the journal's
// cases replacing the snapshot's, the store then built in bulk. Functional checks only —
// nothing here is timed.
import AfterSalesProto
import CaseEngine
import Foundation
import Logging
import SwiftProtobuf
import Testing
@testable import AfterSalesDaemon

@Suite struct RecoveryPerformanceTests {
    /// More cases than two decoding chunks hold, so several hand-overs happen.
    static let caseCount = SnapshotDecoding.chunkSize * 2 + 123

    static func storedCase(_ number: Int, status: Int = -1, version: UInt64 = 1) -> Aftersales_V1_Case {
        Aftersales_V1_Case.with {
            $0.caseID = "AS" + String(repeating: "0", count: 10 - String(number).count) + String(number)
            $0.orderID = "O-\(number)"
            $0.orderLineID = "L-\(number % 3)"
            $0.consumerID = "C-\(number % 97)"
            $0.merchantID = "M-\(number % 13)"
            $0.category = "shoes"
            $0.reason = "too small"
            $0.type = .init(rawValue: 1)!
            $0.delivery = .init(rawValue: 1 + number % 2)!
            $0.status = .init(rawValue: status > 0 ? status : 1 + number % 3)!
            $0.paidAmount = Int64(1_000 + number)
            $0.createdAtMs = 1_700_000_000_000 + Int64(number)
            $0.updatedAtMs = 1_700_000_000_000 + Int64(number)
            $0.version = version
            if number % 4 == 0 {
                $0.deadline = .with { $0.kind = .init(rawValue: 1)!; $0.dueAtMs = 1_800_000_000_000 + Int64(number) }
            }
            $0.history = [.with {
                $0.atMs = 1_700_000_000_000 + Int64(number)
                $0.actor = .init(rawValue: 1)!
                $0.actorID = "C-\(number % 97)"
                $0.action = "create"
                $0.toStatus = .init(rawValue: 1)!
            }]
        }
    }

    static func answer(_ key: String, _ message: String) -> Aftersales_Storage_V1_IdempotentAnswer {
        .with { $0.key = key; $0.method = "CreateCase"; $0.message = message; $0.answeredAtMs = 5 }
    }

    static func item(_ c: Aftersales_V1_Case) -> [UInt8] {
        try! Aftersales_Storage_V1_SnapshotItem.with { $0.case = c }.serializedBytes()
    }

    /// Writes snapshot `position` holding `cases` then `answers`, with `extra` records appended.
    static func writeSnapshot(_ directory: String, position: UInt64, cases: [Aftersales_V1_Case],
                              answers: [Aftersales_Storage_V1_IdempotentAnswer], extra: [[UInt8]] = [],
                              nextCaseNumber: UInt64? = nil) throws {
        let header = Aftersales_Storage_V1_SnapshotHeader.with {
            $0.format = 1
            $0.lastSeq = 7
            $0.nextCaseNumber = nextCaseNumber ?? UInt64(cases.count + 1)
            $0.caseCount = UInt64(cases.count)
            $0.answerCount = UInt64(answers.count)
        }
        var records: [[UInt8]] = [try header.serializedBytes()]
        records += cases.map(item)
        records += answers.map { a in try! Aftersales_Storage_V1_SnapshotItem.with { $0.answer = a }.serializedBytes() }
        records += extra
        _ = try SnapshotWriter(directory: directory).write(seq: position, records: records)
    }

    static func directory() -> String {
        let path = NSTemporaryDirectory() + "aftersales-recovery-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static var logger: Logger {
        var logger = Logger(label: "recovery-test")
        logger.logLevel = .critical
        return logger
    }

    @Test func snapshotPlusOverlappingJournalRecoversExactlyTheStoreAndAnswers() throws {
        let dir = Self.directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let snapshotCases = (1...Self.caseCount).map { Self.storedCase($0) }
        try Self.writeSnapshot(dir, position: 100, cases: snapshotCases,
                               answers: [Self.answer("a1", "one"), Self.answer("a2", "two"), Self.answer("a3", "three")])
        // The journal from the snapshot's position: one case changed, one created.
        let changed = Self.storedCase(5, status: 3, version: 2)
        let created = Self.storedCase(Self.caseCount + 1)
        let journal = try Journal(directory: dir, fsync: .never, nextSequence: 100)
        try journal.append(try Aftersales_Storage_V1_JournalEntry.with {
            $0.case = changed; $0.nextCaseNumber = UInt64(Self.caseCount + 1); $0.answer = Self.answer("a2", "two again")
        }.serializedBytes())
        try journal.append(try Aftersales_Storage_V1_JournalEntry.with {
            $0.case = created; $0.nextCaseNumber = UInt64(Self.caseCount + 2); $0.answer = Self.answer("a4", "four")
        }.serializedBytes())
        try journal.close()

        let state = try Recovery.recover(directory: dir, config: DaemonConfig(), logger: Self.logger)

        var expected = try snapshotCases.map { try Case(stored: $0) }
        expected[4] = try Case(stored: changed)
        expected.append(try Case(stored: created))
        let reference = CaseStore(config: DaemonConfig().engine, restoring: expected, nextCaseNumber: UInt64(Self.caseCount + 2))
        #expect(state.store == reference)
        #expect(state.store.count == Self.caseCount + 1)
        #expect(state.store["AS0000000005"]?.version == 2)
        #expect(state.journalRecords == 2)
        #expect(state.snapshotSeq == 7)
        #expect(state.journalPosition == 100)
        #expect(state.idempotency.inOrder.map(\.key) == ["a1", "a2", "a3", "a4"])
        #expect(state.idempotency["a2"]?.message == "two again")
    }

    @Test func snapshotWithoutJournalRestoresEveryCase() throws {
        let dir = Self.directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let snapshotCases = (1...Self.caseCount).map { Self.storedCase($0) }
        try Self.writeSnapshot(dir, position: 1, cases: snapshotCases, answers: [])
        let state = try Recovery.recover(directory: dir, config: DaemonConfig(), logger: Self.logger)
        let reference = CaseStore(config: DaemonConfig().engine, restoring: try snapshotCases.map { try Case(stored: $0) },
                                  nextCaseNumber: UInt64(Self.caseCount + 1))
        #expect(state.store == reference)
        #expect(state.idempotency.count == 0)
        #expect(state.journalRecords == 0)
    }

    /// Cases in any order, numbered past the header's counter (its table of cases by
    /// number is then too small), and journal cases replacing ones on either side of it.
    @Test(arguments: [UInt64(Self.caseCount + 1), 100, 1])
    func casesInAnyOrderAndPastTheHeadersCounterAreRestored(headerNext: UInt64) throws {
        let dir = Self.directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var generator = SystemRandomNumberGenerator()
        let snapshotCases = (1...Self.caseCount).map { Self.storedCase($0) }
        try Self.writeSnapshot(dir, position: 100, cases: snapshotCases.shuffled(using: &generator), answers: [Self.answer("a1", "one")],
                               nextCaseNumber: headerNext)
        let changedLow = Self.storedCase(7, status: 3, version: 2)
        let changedHigh = Self.storedCase(Self.caseCount - 3, status: 2, version: 3)
        let created = Self.storedCase(Self.caseCount + 1)
        let journal = try Journal(directory: dir, fsync: .never, nextSequence: 100)
        for (number, stored) in [changedLow, changedHigh, created].enumerated() {
            try journal.append(try Aftersales_Storage_V1_JournalEntry.with {
                $0.case = stored; $0.nextCaseNumber = UInt64(Self.caseCount + 2); $0.answer = Self.answer("j\(number)", "journal")
            }.serializedBytes())
        }
        try journal.close()

        let state = try Recovery.recover(directory: dir, config: DaemonConfig(), logger: Self.logger)
        var expected = try snapshotCases.map { try Case(stored: $0) }
        expected[6] = try Case(stored: changedLow)
        expected[Self.caseCount - 4] = try Case(stored: changedHigh)
        expected.append(try Case(stored: created))
        let reference = CaseStore(config: DaemonConfig().engine, restoring: expected, nextCaseNumber: UInt64(Self.caseCount + 2))
        #expect(state.store == reference)
        #expect(state.store.count == Self.caseCount + 1)
        #expect(state.idempotency.inOrder.map(\.key) == ["a1", "j0", "j1", "j2"])
    }

    @Test(arguments: [UInt64(Self.caseCount + 1), 1])
    func aCaseTwiceInTheSnapshotRefusesStartUp(headerNext: UInt64) throws {
        let dir = Self.directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var snapshotCases = (1...Self.caseCount).map { Self.storedCase($0) }
        snapshotCases.append(Self.storedCase(SnapshotDecoding.chunkSize + 5, version: 9))
        try Self.writeSnapshot(dir, position: 1, cases: snapshotCases, answers: [], nextCaseNumber: headerNext)
        let error = #expect(throws: RecoveryError.self) {
            try Recovery.recover(directory: dir, config: DaemonConfig(), logger: Self.logger)
        }
        #expect(error?.description.contains("twice") == true)
    }

    @Test func snapshotsListCasesInNumberOrderThenTheRest() throws {
        let numbering = CaseNumbering(shard: 1, shardCount: 3)
        let cases = try (1...200).map { local in
            var stored = Self.storedCase(0)
            stored.caseID = numbering.caseID(local: UInt64(local))
            return try Case(stored: stored)
        }
        let store = CaseStore(numbering: numbering, restoring: cases.shuffled(), nextCaseNumber: 201)
        let listed = SnapshotJob.inNumberOrder(store.cases, numbering: numbering, below: 151).map(\.caseID)
        #expect(Array(listed.prefix(150)) == cases.prefix(150).map(\.caseID))
        #expect(Set(listed.dropFirst(150)) == Set(cases.dropFirst(150).map(\.caseID)))
        #expect(listed.count == 200)
    }

    @Test func aBadCaseDeepInTheSnapshotRefusesStartUp() throws {
        let dir = Self.directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var snapshotCases = (1...Self.caseCount).map { Self.storedCase($0) }
        snapshotCases[SnapshotDecoding.chunkSize + 10].type = .init(rawValue: 0)!  // unspecified: not a case we write
        try Self.writeSnapshot(dir, position: 1, cases: snapshotCases, answers: [])
        let error = #expect(throws: StoredCaseError.self) {
            try Recovery.recover(directory: dir, config: DaemonConfig(), logger: Self.logger)
        }
        #expect(error?.field == "type")
        #expect(error?.caseID == snapshotCases[SnapshotDecoding.chunkSize + 10].caseID)
    }

    @Test func anUnparsableItemRefusesStartUpNamingTheSnapshot() throws {
        let dir = Self.directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let snapshotCases = (1...Self.caseCount).map { Self.storedCase($0) }
        try Self.writeSnapshot(dir, position: 1, cases: snapshotCases, answers: [], extra: [[0xFF, 0xFF, 0xFF]])
        let error = #expect(throws: RecoveryError.self) {
            try Recovery.recover(directory: dir, config: DaemonConfig(), logger: Self.logger)
        }
        #expect(error?.description.contains("snapshot-00000000000000000001.snap") == true)
        #expect(error?.description.contains("SnapshotItem") == true)
    }

    @Test func aLargeSnapshotIsReadWholeAndItsRecordsComeBackIntact() throws {
        let dir = Self.directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Over 1 MiB, so the reader takes the one-read path rather than the 1 MiB window.
        let records: [[UInt8]] = (0..<3_000).map { i in (0..<(400 + i % 50)).map { UInt8(truncatingIfNeeded: $0 &+ i) } }
        _ = try SnapshotWriter(directory: dir).write(seq: 9, records: records)
        let loaded = try #require(try SnapshotReader.loadNewestValid(directory: dir))
        #expect(loaded.count == records.count)
        #expect(loaded.records == records)
        #expect(loaded.withRecord(1234) { Array($0) } == records[1234])
    }

    @Test func aLargeSnapshotDamagedInTheMiddleFallsBackNamingTheOffset() throws {
        let dir = Self.directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let records: [[UInt8]] = (0..<3_000).map { i in [UInt8](repeating: UInt8(truncatingIfNeeded: i), count: 500) }
        _ = try SnapshotWriter(directory: dir).write(seq: 3, records: [[1]])
        let info = try SnapshotWriter(directory: dir).write(seq: 9, records: records)
        // Flip one payload byte of record 1000: 16-byte header, then 508 bytes per record.
        let offset = 16 + 1000 * 508 + 8 + 17
        let handle = try #require(FileHandle(forUpdatingAtPath: info.path))
        try handle.seek(toOffset: UInt64(offset))
        try handle.write(contentsOf: Data([0xAA]))
        try handle.close()
        let loaded = try #require(try SnapshotReader.loadNewestValid(directory: dir))
        #expect(loaded.seq == 3)
        #expect(loaded.records == [[1]])
        #expect(loaded.rejected.count == 1)
        #expect(loaded.rejected.first?.reason.contains("damaged at offset \(16 + 1000 * 508)") == true)
    }
}
