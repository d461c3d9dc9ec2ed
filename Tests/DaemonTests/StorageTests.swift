// Tests of the storage layer: record framing, journal, recovery, snapshots, lock.
// Every test works in its own temporary directory and passes time in explicitly.

import Foundation
import Testing
@testable import AfterSalesDaemon

/// A fresh temporary directory, removed when the value goes away.
private final class StorageTestDir {
    let path: String
    init() {
        path = NSTemporaryDirectory() + "storage-tests-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
    func file(_ name: String) -> String { path + "/" + name }
    func names() -> [String] { ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted() }
}

private func storageTestRecord(_ i: Int, size: Int) -> [UInt8] {
    (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ i &* 7) }
}

private func storageTestBytes(of path: String) -> [UInt8] { Array(FileManager.default.contents(atPath: path) ?? Data()) }

private func storageTestWrite(_ content: [UInt8], to path: String) {
    try! Data(content).write(to: URL(fileURLWithPath: path))
}

private func storageTestFileSize(_ path: String) -> UInt64 {
    ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.uint64Value ?? 0
}

/// Writes `records` into a fresh journal in `dir` and closes it; returns the offsets at
/// which each record starts in the (single) segment.
private func storageTestJournal(_ dir: StorageTestDir, _ records: [[UInt8]]) throws -> (path: String, offsets: [UInt64]) {
    let journal = try Journal(directory: dir.path, fsync: .never)
    var offsets: [UInt64] = []
    var at: UInt64 = 0
    for r in records {
        offsets.append(at)
        at += UInt64(8 + r.count)
        try journal.append(r)
    }
    try journal.commit()
    let path = journal.currentSegmentPath
    try journal.close()
    return (path, offsets)
}

/// All storage tests, nested so their names cannot clash with other DaemonTests files.
@Suite struct StorageTests {}

extension StorageTests {
    @Suite struct CRC32CTests {
        @Test func knownVector() {
            #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
            #expect(CRC32C.checksum([]) == 0)
            // 32 bytes of zeros, from RFC 3720 B.4.
            #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
            #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        }

        @Test func hardwareAndTablesAgree() {
            var generator = SystemRandomNumberGenerator()
            for count in [0, 1, 7, 8, 9, 63, 64, 65, 1_000, 4_099] {
                let bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
                let seed = UInt32.random(in: 0...UInt32.max, using: &generator)
                bytes.withUnsafeBytes { raw in
                    #expect(CRC32C.update(seed, raw) == CRC32C.tableUpdate(seed, raw), "\(count) bytes")
                    #expect(CRC32C.update(0, raw) == CRC32C.tableUpdate(0, raw), "\(count) bytes")
                }
            }
        }

        @Test func chainingEqualsWhole() {
            let data = storageTestRecord(3, size: 1000)
            for split in [0, 1, 7, 8, 9, 500, 999, 1000] {
                let a = data[0..<split].withUnsafeBytes { CRC32C.update(0, $0) }
                let ab = data[split...].withUnsafeBytes { CRC32C.update(a, $0) }
                #expect(ab == CRC32C.checksum(data))
            }
        }
    }

    @Suite struct JournalTests {
        @Test func appendCommitReadBackAcrossRotation() throws {
            let dir = StorageTestDir()
            var expected: [[UInt8]] = [[], storageTestRecord(1, size: 1), storageTestRecord(2, size: 3 << 20)]
            for i in 0..<1000 { expected.append(storageTestRecord(i, size: i % 300)) }
            let journal = try Journal(directory: dir.path, fsync: .always)
            #expect(journal.currentSegmentPath == dir.file("journal-00000000000000000001.log"))
            for (i, r) in expected.prefix(600).enumerated() {
                #expect(try journal.append(r) == UInt64(i + 1))
                if i % 50 == 0 { try journal.commit() }
            }
            try journal.rotate(startingAt: 601)
            #expect(journal.currentSegmentPath == dir.file("journal-00000000000000000601.log"))
            for r in expected.dropFirst(600) { try journal.append(r) }
            expected.append([])
            try journal.append([])
            try journal.commit()
            let onDisk = journal.bytesOnDisk
            try journal.close()

            let result = try Journal.readAll(directory: dir.path)
            #expect(result.tornTail == nil)
            #expect(result.records == expected)
            #expect(result.entries.map(\.sequence) == Array(1...UInt64(expected.count)))
            #expect(result.segments.map(\.firstSequence) == [1, 601])
            #expect(result.segments.map(\.recordCount) == [600, expected.count - 600])
            #expect(result.nextSequence == UInt64(expected.count + 1))
            let sizes = result.segments.map { storageTestFileSize($0.path) }
            #expect(onDisk == sizes.reduce(0, +))
            #expect(result.segments.map(\.bytes) == sizes)
            #expect(try result.entries(from: 700).first?.sequence == 700)
        }

        @Test func reopenContinuesAfterLastRecordAndRemovesSegments() throws {
            let dir = StorageTestDir()
            do {
                let j = try Journal(directory: dir.path, fsync: .never)
                for i in 0..<10 { try j.append(storageTestRecord(i, size: 10)) }
                try j.rotate(startingAt: 11)
                for i in 10..<15 { try j.append(storageTestRecord(i, size: 10)) }
                try j.close()
            }
            let j = try Journal(directory: dir.path, fsync: .never)
            #expect(j.nextSequence == 16)
            #expect(j.currentSegmentPath.hasSuffix("journal-00000000000000000011.log"))
            #expect(j.bytesOnDisk == 15 * 18)
            #expect(try j.append(storageTestRecord(15, size: 10)) == 16)
            try j.rotate(startingAt: 17)
            // Nothing below 11 is covered yet by a snapshot at 5.
            #expect(try j.removeSegments(before: 5) == 0)
            #expect(try j.removeSegments(before: 11) == 1)
            #expect(!FileManager.default.fileExists(atPath: dir.file("journal-00000000000000000001.log")))
            #expect(j.bytesOnDisk == 6 * 18)
            // The current segment is never removed.
            #expect(try j.removeSegments(before: 1000) == 1)
            #expect(FileManager.default.fileExists(atPath: j.currentSegmentPath))
            try j.close()
            let result = try Journal.readAll(directory: dir.path)
            #expect(result.segments.map(\.firstSequence) == [17])
            #expect(result.nextSequence == 17)
            #expect(throws: StorageError.self) { try result.entries(from: 11) }
        }

        @Test func rotateBackwardsIsRefused() throws {
            let dir = StorageTestDir()
            let j = try Journal(directory: dir.path, fsync: .never)
            try j.append([1])
            let error = #expect(throws: StorageError.self) { try j.rotate(startingAt: 1) }
            #expect(error?.kind == .misuse)
        }

        @Test func reopenWithNextSequenceAheadStartsNewSegment() throws {
            let dir = StorageTestDir()
            _ = try storageTestJournal(dir, [[1], [2], [3]])
            let j = try Journal(directory: dir.path, fsync: .never, nextSequence: 50)
            #expect(j.nextSequence == 50)
            #expect(j.currentSegmentPath.hasSuffix("journal-00000000000000000050.log"))
            try j.append([50])
            try j.close()
            let result = try Journal.readAll(directory: dir.path)
            #expect(result.entries.map(\.sequence) == [1, 2, 3, 50])
            #expect(try result.entries(from: 50).map(\.payload) == [[50]])
            // Falling back to a snapshot at 2 would need records 4..<50, which do not exist.
            let error = #expect(throws: StorageError.self) { try result.entries(from: 2) }
            #expect(error?.kind == .missingJournalRecords)
        }

        @Test func oversizedRecordIsRefused() throws {
            let dir = StorageTestDir()
            let j = try Journal(directory: dir.path, fsync: .never)
            let error = #expect(throws: StorageError.self) {
                try j.append([UInt8](repeating: 0, count: RecordFraming.maxRecordLength + 1))
            }
            #expect(error?.kind == .recordTooLarge)
            #expect(j.pendingBytes == 0)
            #expect(j.nextSequence == 1)
        }

        @Test func discardPendingReusesSequenceNumbers() throws {
            let dir = StorageTestDir()
            let j = try Journal(directory: dir.path, fsync: .never)
            try j.append([1])
            try j.commit()
            try j.append([2])
            j.discardPending()
            #expect(try j.append([3]) == 2)
            try j.close()
            #expect(try Journal.readAll(directory: dir.path).records == [[1], [3]])
        }
    }

    @Suite struct RecoveryTests {
        static let records = (0..<5).map { storageTestRecord($0, size: 100) }

        /// Cut points relative to the start of the last record (108 bytes long).
        @Test(arguments: [1, 4, 7, 8, 9, 50, 107])
        func tornTailIsCutAndAppendsContinue(cut: Int) throws {
            let dir = StorageTestDir()
            let (path, offsets) = try storageTestJournal(dir, Self.records)
            let last = offsets.last!
            let full = storageTestBytes(of: path)
            #expect(full.count == Int(last) + 108)
            storageTestWrite(Array(full.prefix(Int(last) + cut)), to: path)

            let result = try Journal.readAll(directory: dir.path)
            #expect(result.records == Array(Self.records.dropLast()))
            let torn = try #require(result.tornTail)
            #expect(torn.path == path)
            #expect(torn.offset == last)
            #expect(torn.bytesDropped == UInt64(cut))
            #expect(storageTestFileSize(path) == last)

            let j = try Journal(directory: dir.path, fsync: .always)
            #expect(j.recoveredTornTail == nil)
            #expect(j.nextSequence == 5)
            try j.append([7, 7])
            try j.append([])
            try j.commit()
            try j.close()
            let again = try Journal.readAll(directory: dir.path)
            #expect(again.tornTail == nil)
            #expect(again.records == Array(Self.records.dropLast()) + [[7, 7], []])
        }

        @Test func checksumMismatchInFinalRecordIsATornTail() throws {
            let dir = StorageTestDir()
            let (path, offsets) = try storageTestJournal(dir, Self.records)
            var content = storageTestBytes(of: path)
            content[Int(offsets.last!) + 60] ^= 0x01
            storageTestWrite(content, to: path)
            let result = try Journal.readAll(directory: dir.path)
            #expect(result.records == Array(Self.records.dropLast()))
            #expect(result.tornTail?.offset == offsets.last)
            #expect(result.tornTail?.reason.contains("checksum mismatch") == true)
        }

        @Test func tornTailFoundByJournalInitToo() throws {
            let dir = StorageTestDir()
            let (path, offsets) = try storageTestJournal(dir, Self.records)
            storageTestWrite(Array(storageTestBytes(of: path).dropLast(3)), to: path)
            let j = try Journal(directory: dir.path, fsync: .never)
            #expect(j.recoveredTornTail?.offset == offsets.last)
            #expect(j.nextSequence == 5)
            #expect(storageTestFileSize(path) == offsets.last)
        }

        @Test func zeroFilledTailIsATornTail() throws {
            let dir = StorageTestDir()
            let (path, offsets) = try storageTestJournal(dir, Self.records)
            storageTestWrite(storageTestBytes(of: path) + [UInt8](repeating: 0, count: 4096), to: path)
            let result = try Journal.readAll(directory: dir.path)
            #expect(result.records == Self.records)
            #expect(result.tornTail?.offset == offsets.last! + 108)
            #expect(result.tornTail?.bytesDropped == 4096)
        }

        @Test(arguments: [1, 2, 3])
        func flippedPayloadByteIsDamageNamingPathAndOffset(index: Int) throws {
            let dir = StorageTestDir()
            let (path, offsets) = try storageTestJournal(dir, Self.records)
            var content = storageTestBytes(of: path)
            content[Int(offsets[index]) + 8 + 42] ^= 0x20
            storageTestWrite(content, to: path)
            let before = storageTestBytes(of: path)
            let error = #expect(throws: StorageError.self) { try Journal.readAll(directory: dir.path) }
            #expect(error?.kind == .damaged)
            #expect(error?.offset == offsets[index])
            let message = error?.description ?? ""
            #expect(message.contains("journal \(path) damaged at offset \(offsets[index]): checksum mismatch (stored 0x"))
            #expect(message.contains("refusing to start"))
            // Damage is never "repaired" by truncation.
            #expect(storageTestBytes(of: path) == before)
            #expect(throws: StorageError.self) { try Journal(directory: dir.path, fsync: .never) }
        }

        @Test func impossibleLengthIsDamage() throws {
            let dir = StorageTestDir()
            let (path, offsets) = try storageTestJournal(dir, Self.records)
            var content = storageTestBytes(of: path)
            content[Int(offsets[1]) + 3] = 0x7F
            storageTestWrite(content, to: path)
            let error = #expect(throws: StorageError.self) { try Journal.readAll(directory: dir.path) }
            #expect(error?.offset == offsets[1])
            #expect(error?.description.contains("impossible record length") == true)
        }

        @Test func flippedLengthByteIsDamage() throws {
            let dir = StorageTestDir()
            let (path, offsets) = try storageTestJournal(dir, Self.records)
            var content = storageTestBytes(of: path)
            content[Int(offsets[0])] ^= 0x01  // 100 -> 101: checksum covers the length
            storageTestWrite(content, to: path)
            let error = #expect(throws: StorageError.self) { try Journal.readAll(directory: dir.path) }
            #expect(error?.offset == 0)
        }

        @Test func tornEndOfOlderSegmentIsDamage() throws {
            let dir = StorageTestDir()
            let j = try Journal(directory: dir.path, fsync: .never)
            for r in Self.records { try j.append(r) }
            let first = j.currentSegmentPath
            try j.rotate(startingAt: 6)
            try j.append([1])
            try j.close()
            storageTestWrite(Array(storageTestBytes(of: first).dropLast(5)), to: first)
            let error = #expect(throws: StorageError.self) { try Journal.readAll(directory: dir.path) }
            #expect(error?.kind == .damaged)
            #expect(error?.path == first)
            #expect(error?.description.contains("not the newest segment") == true)
        }

        @Test func emptyOrMissingDirectoryReadsEmpty() throws {
            let dir = StorageTestDir()
            let result = try Journal.readAll(directory: dir.file("nope"))
            #expect(result.entries.isEmpty && result.segments.isEmpty && result.nextSequence == nil)
            #expect(try result.entries(from: 1).isEmpty)
        }
    }

    @Suite struct FsyncPolicyTests {
        @Test func alwaysSyncsEveryCommitAndAFreshReaderSeesIt() throws {
            let dir = StorageTestDir()
            let j = try Journal(directory: dir.path, fsync: .always)
            try j.append([1, 2, 3])
            try j.commit()
            #expect(j.syncCount == 1)
            #expect(!j.hasUnsyncedData)
            try j.commit()  // nothing new: no sync
            #expect(j.syncCount == 1)
            try j.append([4])
            try j.append([])
            try j.commit()
            #expect(j.syncCount == 2)
            #expect(j.nextSyncDeadline == nil)
            // Still open: a fresh reader sees every committed record.
            #expect(try Journal.readAll(directory: dir.path).records == [[1, 2, 3], [4], []])
        }

        @Test func everysecSyncsAtMostOncePerSecond() throws {
            let dir = StorageTestDir()
            let t0 = ContinuousClock.now
            let j = try Journal(directory: dir.path, fsync: .everysec, now: t0)
            try j.append([1])
            try j.commit(now: t0 + .milliseconds(300))
            #expect(j.syncCount == 0)
            #expect(j.hasUnsyncedData)
            #expect(j.nextSyncDeadline == t0 + .seconds(1))
            #expect(try j.syncIfDue(now: t0 + .milliseconds(999)) == false)
            #expect(try j.syncIfDue(now: t0 + .seconds(1)) == true)
            #expect(j.syncCount == 1)
            #expect(j.nextSyncDeadline == nil)
            j.waitForBackgroundSync()
            #expect(try j.syncIfDue(now: t0 + .seconds(5)) == false)  // nothing unsynced
            // After a quiet spell, a commit syncs at once.
            try j.append([2])
            try j.commit(now: t0 + .seconds(5))
            #expect(j.syncCount == 2)
            j.waitForBackgroundSync()
            try j.append([3])
            try j.commit(now: t0 + .milliseconds(5500))
            #expect(j.syncCount == 2)
            #expect(j.nextSyncDeadline == t0 + .seconds(6))
            #expect(try j.syncIfDue(now: t0 + .seconds(6)) == true)
            #expect(try Journal.readAll(directory: dir.path).records == [[1], [2], [3]])
        }

        @Test func everysecSyncsOffTheCallingThreadOneAtATime() throws {
            let release = DispatchSemaphore(value: 0)
            let calls = LockedCounter()
            let sync = BackgroundSync { fd, _ in
                calls.increment()
                release.wait()
                if fd == 99 { throw StorageError(.io, path: "x", "disk gone") }
            }
            defer { sync.stop() }
            #expect(sync.begin(fd: 7, path: "a"))  // returns at once, the sync runs on
            #expect(!sync.begin(fd: 7, path: "a"), "a second sync while one runs is postponed")
            release.signal()
            sync.waitUntilIdle()
            #expect(calls.value == 1)
            #expect(sync.failure == nil)
            #expect(sync.begin(fd: 99, path: "b"))
            release.signal()
            sync.waitUntilIdle()
            #expect(calls.value == 2)
            #expect(sync.failure?.contains("disk gone") == true)
        }

        @Test func everysecJournalSyncsInTheBackgroundAndCloseWaitsForIt() throws {
            let dir = StorageTestDir()
            let t0 = ContinuousClock.now
            let j = try Journal(directory: dir.path, fsync: .everysec, now: t0)
            try j.append([1])
            try j.commit(now: t0 + .milliseconds(10))
            #expect(try j.syncIfDue(now: t0 + .seconds(1)))
            j.waitForBackgroundSync()
            try j.append([2])
            try j.commit(now: t0 + .milliseconds(1500))
            #expect(j.nextSyncDeadline == t0 + .seconds(2))
            try j.close(now: t0 + .milliseconds(1600))
            #expect(try Journal.readAll(directory: dir.path).records == [[1], [2]])
        }

        @Test func neverDoesNotSync() throws {
            let dir = StorageTestDir()
            let t0 = ContinuousClock.now
            let j = try Journal(directory: dir.path, fsync: .never, now: t0)
            try j.append([1])
            try j.commit(now: t0 + .seconds(10))
            #expect(try j.syncIfDue(now: t0 + .seconds(20)) == false)
            #expect(j.syncCount == 0)
            #expect(j.nextSyncDeadline == nil)
            #expect(try Journal.readAll(directory: dir.path).records == [[1]])
            #expect(FsyncPolicy(rawValue: "everysec") == .everysec)
        }
    }

    @Suite struct SnapshotTests {
        @Test func writeAndLoad() throws {
            let dir = StorageTestDir()
            let records: [[UInt8]] = [[0xAA], [], storageTestRecord(9, size: 70_000), Array("ASSNAP01-END".utf8)]
            let info = try SnapshotWriter(directory: dir.path).write(seq: 42, records: records)
            #expect(info.path == dir.file("snapshot-00000000000000000042.snap"))
            #expect(info.records == 4)
            #expect(info.bytes == storageTestFileSize(info.path))
            #expect(info.oldestKeptSequence == 42)
            #expect(info.durationMs >= 0)
            let loaded = try #require(try SnapshotReader.loadNewestValid(directory: dir.path))
            #expect(loaded.seq == 42)
            #expect(loaded.path == info.path)
            #expect(loaded.records == records)
            #expect(loaded.rejected.isEmpty)
            #expect(dir.names() == ["snapshot-00000000000000000042.snap"])
        }

        @Test func noSnapshotLoadsNil() throws {
            let dir = StorageTestDir()
            #expect(try SnapshotReader.loadNewestValid(directory: dir.path) == nil)
            #expect(try SnapshotReader.loadNewestValid(directory: dir.file("missing")) == nil)
        }

        @Test func keepsOnlyTheNewestTwo() throws {
            let dir = StorageTestDir()
            let writer = SnapshotWriter(directory: dir.path)
            for seq in [5, 10, 20, 30] as [UInt64] {
                let info = try writer.write(seq: seq, records: [[UInt8(seq)]])
                #expect(info.oldestKeptSequence == (seq == 5 ? 5 : seq == 10 ? 5 : seq == 20 ? 10 : 20))
            }
            #expect(dir.names() == ["snapshot-00000000000000000020.snap", "snapshot-00000000000000000030.snap"])
            #expect(try SnapshotReader.loadNewestValid(directory: dir.path)?.records == [[30]])
        }

        /// Cuts the newest snapshot at several points: each falls back to the previous one.
        @Test(arguments: [1, 10, 16, 20, 30, 48])
        func truncatedNewestFallsBackToPrevious(keepBytes: Int) throws {
            let dir = StorageTestDir()
            let writer = SnapshotWriter(directory: dir.path)
            _ = try writer.write(seq: 10, records: [[1], [2]])
            let newest = try writer.write(seq: 20, records: [[3], [4]])
            // 16 header + 9 + 9 + 28 trailer = 62 bytes; cut before the trailer ends.
            #expect(newest.bytes == 62)
            storageTestWrite(Array(storageTestBytes(of: newest.path).prefix(keepBytes)), to: newest.path)
            let loaded = try #require(try SnapshotReader.loadNewestValid(directory: dir.path))
            #expect(loaded.seq == 10)
            #expect(loaded.records == [[1], [2]])
            #expect(loaded.rejected.map(\.path) == [newest.path])
            #expect(dir.names().contains("snapshot-00000000000000000020.snap.invalid"))
            #expect(!dir.names().contains("snapshot-00000000000000000020.snap"))
        }

        @Test func snapshotWithoutTrailerIsIncomplete() throws {
            let dir = StorageTestDir()
            let writer = SnapshotWriter(directory: dir.path)
            _ = try writer.write(seq: 1, records: [[9]])
            let newest = try writer.write(seq: 2, records: [[1], [2]])
            // Drop exactly the trailer record: every remaining record is whole.
            storageTestWrite(Array(storageTestBytes(of: newest.path).prefix(16 + 9 + 9)), to: newest.path)
            let loaded = try #require(try SnapshotReader.loadNewestValid(directory: dir.path))
            #expect(loaded.seq == 1)
            #expect(loaded.rejected.first?.reason.contains("incomplete") == true)
        }

        @Test func flippedByteInNewestFallsBack() throws {
            let dir = StorageTestDir()
            let writer = SnapshotWriter(directory: dir.path)
            _ = try writer.write(seq: 1, records: [[9]])
            let newest = try writer.write(seq: 2, records: [storageTestRecord(1, size: 50), [2]])
            var content = storageTestBytes(of: newest.path)
            content[16 + 8 + 10] ^= 0xFF
            storageTestWrite(content, to: newest.path)
            let loaded = try #require(try SnapshotReader.loadNewestValid(directory: dir.path))
            #expect(loaded.seq == 1)
            #expect(loaded.rejected.first?.reason.contains("offset 16") == true)
        }

        @Test func leftoverTmpIsIgnoredAndRemoved() throws {
            let dir = StorageTestDir()
            _ = try SnapshotWriter(directory: dir.path).write(seq: 10, records: [[1]])
            let tmp = dir.file("snapshot-00000000000000000020.snap.tmp")
            storageTestWrite(Array("ASSNAP01".utf8) + [20, 0, 0, 0, 0, 0, 0, 0, 1, 0], to: tmp)
            let loaded = try #require(try SnapshotReader.loadNewestValid(directory: dir.path))
            #expect(loaded.seq == 10)
            #expect(loaded.rejected.isEmpty)
            #expect(!FileManager.default.fileExists(atPath: tmp))
        }

        @Test func noValidSnapshotIsAnError() throws {
            let dir = StorageTestDir()
            let info = try SnapshotWriter(directory: dir.path).write(seq: 7, records: [[1]])
            storageTestWrite(Array(storageTestBytes(of: info.path).dropLast(1)), to: info.path)
            let error = #expect(throws: StorageError.self) { try SnapshotReader.loadNewestValid(directory: dir.path) }
            #expect(error?.kind == .noValidSnapshot)
            #expect(error?.description.contains(info.path) == true)
        }

        @Test func sequenceMismatchBetweenNameAndHeaderIsInvalid() throws {
            let dir = StorageTestDir()
            let writer = SnapshotWriter(directory: dir.path)
            _ = try writer.write(seq: 1, records: [[1]])
            let info = try writer.write(seq: 2, records: [[2]])
            try FileManager.default.moveItem(atPath: info.path, toPath: dir.file("snapshot-00000000000000000003.snap"))
            let loaded = try SnapshotReader.loadNewestValid(directory: dir.path)
            #expect(loaded?.seq == 1)
            #expect(loaded?.rejected.first?.reason.contains("sequence 2") == true)
        }

        @Test func twoHundredThousandRecordsRoundTrip() throws {
            let dir = StorageTestDir()
            let count = 200_000
            let records = (0..<count).lazy.map { i -> [UInt8] in
                withUnsafeBytes(of: UInt32(i).littleEndian) { Array($0) } + [UInt8(i % 251)]
            }
            // Small buffer: many write(2) calls, records crossing buffer boundaries.
            let info = try SnapshotWriter(directory: dir.path, bufferSize: 64 * 1024).write(seq: 1_000_000, records: records)
            #expect(info.records == count)
            #expect(info.bytes == UInt64(16 + count * 13 + 28))
            let loaded = try #require(try SnapshotReader.loadNewestValid(directory: dir.path))
            #expect(loaded.records.count == count)
            #expect(loaded.records.elementsEqual(records))
        }

        @Test func writerIsUsableOffTheLoopThread() async throws {
            let dir = StorageTestDir()
            let writer = SnapshotWriter(directory: dir.path)
            let journal = try Journal(directory: dir.path, fsync: .never)
            let task = Task.detached { try writer.write(seq: 1, records: (0..<10_000).lazy.map { [UInt8($0 % 256)] }) }
            for i in 0..<1000 { try journal.append([UInt8(i % 256)]) }
            try journal.commit()
            let info = try await task.value
            #expect(info.records == 10_000)
            #expect(try Journal.readAll(directory: dir.path).entries.count == 1000)
        }
    }

    @Suite struct DataDirectoryLockTests {
        @Test func secondHolderIsRefusedUntilReleased() throws {
            let dir = StorageTestDir()
            let data = dir.file("a/b/data")
            let first = try DataDirectoryLock(directory: data)
            #expect(FileManager.default.fileExists(atPath: data + "/LOCK"))
            let error = #expect(throws: StorageError.self) { try DataDirectoryLock(directory: data) }
            #expect(error?.kind == .dataDirectoryInUse)
            #expect(error?.description == "data dir \(data) is in use by another aftersalesd (pid \(getpid()))")
            first.release()
            let second = try DataDirectoryLock(directory: data)
            second.release()
        }
    }

    @Suite struct IOErrorTests {
        /// A segment that is really /dev/full: every write fails with ENOSPC.
        @Test func writeFailureNamesPathAndStrerrorAndKeepsTheBuffer() throws {
            let dir = StorageTestDir()
            let segment = dir.file("journal-00000000000000000001.log")
            try FileManager.default.createSymbolicLink(atPath: segment, withDestinationPath: "/dev/full")
            let j = try Journal(directory: dir.path, fsync: .always)
            try j.append([1, 2, 3])
            let error = #expect(throws: StorageError.self) { try j.commit() }
            #expect(error?.kind == .io)
            #expect(error?.errno == ENOSPC)
            #expect(error?.description == "write to \(segment) failed: No space left on device (errno \(ENOSPC))")
            #expect(j.pendingBytes == 11)
            #expect(j.nextSequence == 2)
            // /dev/full cannot be cut back to its last good size: the journal refuses
            // further work rather than append after a possibly partial record.
            let again = #expect(throws: StorageError.self) { try j.commit() }
            #expect(again?.description.contains("journal unusable") == true)
        }

        @Test func dataDirectoryThatIsAFileIsAnIOError() throws {
            let dir = StorageTestDir()
            let notADir = dir.file("plain")
            storageTestWrite([1], to: notADir)
            let error = #expect(throws: StorageError.self) { try Journal(directory: notADir, fsync: .never) }
            #expect(error?.kind == .io)
            #expect(error?.description.contains(notADir) == true)
            #expect(throws: StorageError.self) { try DataDirectoryLock(directory: notADir) }
        }
    }
}

/// A counter several threads may bump.
final class LockedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func increment() { lock.lock(); count += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return count }
}
