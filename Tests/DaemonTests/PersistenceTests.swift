import AfterSalesProto
import AfterSalesRPC
import Foundation
import Testing

/// What the daemon acknowledged survives a kill -9, a torn journal tail and a restart from
/// a snapshot; damage anywhere else stops start-up with the file and offset.
@Suite(.serialized) struct PersistenceTests {
    func journalSegments(_ directory: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasPrefix("journal-") }.sorted()
            .map { directory + "/" + $0 }
    }

    @Test func acknowledgedChangesSurviveKill9AndLateExpiryIsAnnounced() throws {
        let directory = temporaryDataDirectory()
        var ids: [String] = []
        var versions: [String: UInt64] = [:]
        var lastSeq: UInt64 = 0
        var expiring = ""
        do {
            let daemon = try DaemonProcess(dataDirectory: directory, arguments: ["--proposal-ttl", "1s", "--snapshot-interval", "0"], fsync: "always")
            let caller = try TestCaller(daemon.rpc)
            for i in 0..<20 {
                let created = try caller.call(RPCs.createCase, i == 0 ? interventionCase(order: "K\(i)") : plainCase(order: "K\(i)"),
                                              key: "create-K\(i)")
                ids.append(created.case.caseID)
                versions[created.case.caseID] = created.case.version
            }
            expiring = ids[0]
            for id in ids[1..<10] {
                let agreed = try caller.call(RPCs.merchantAgree, .with { $0.caseID = id; $0.merchantID = "M1" })
                versions[id] = agreed.case.version
            }
            lastSeq = try caller.call(RPCs.getStats, .init()).lastEventSeq
            daemon.kill()  // no shutdown snapshot, no goodbye: only the journal remains
        }
        Thread.sleep(forTimeInterval: 1.3)  // the proposal's deadline passes while the daemon is down

        let restarted = try DaemonProcess(dataDirectory: directory, arguments: ["--proposal-ttl", "1s"], fsync: "always")
        defer { restarted.stop() }
        let caller = try TestCaller(restarted.rpc)
        for id in ids {
            let stored = try caller.call(RPCs.getCase, .with { $0.caseID = id }).case
            if id == expiring {
                #expect(stored.status == .awaitingMerchantReview && stored.proposal.state == .expired)
            } else {
                #expect(stored.version == versions[id], "case \(id)")
            }
        }
        #expect(try caller.call(RPCs.getCase, .with { $0.caseID = ids[1] }).case.status == .refunded)
        // A retry after the restart gets the first answer, not a second case: exactly it
        // where the case has not changed since (K12), the case as it now stands where it
        // has (K3 was agreed after it was created).
        let unchanged = try caller.call(RPCs.createCase, plainCase(order: "K12"), key: "create-K12")
        #expect(unchanged.case.caseID == ids[12] && unchanged.case.version == 1)
        let retried = try caller.call(RPCs.createCase, plainCase(order: "K3"), key: "create-K3")
        #expect(retried.case.caseID == ids[3] && retried.case.version == versions[ids[3]])
        #expect(try caller.call(RPCs.getStats, .init()).casesTotal == 20)

        // The sequence continues without a gap, and the expiry made at start-up says it is late.
        let replay = try caller.call(RPCs.replayEvents, .with { $0.fromSeq = lastSeq + 1 })
        let expired = try #require(replay.events.first { $0.topic == "proposal.expired" })
        #expect(expired.seq == lastSeq + 1)
        #expect(expired.late)
        #expect(expired.caseID == expiring)
        let next = try caller.call(RPCs.createCase, plainCase(order: "after-restart"))
        #expect(next.case.caseID > ids.last!)
        #expect(try caller.call(RPCs.getStats, .init()).lastEventSeq == replay.lastSeq + 1)
    }

    @Test func tornTailIsCutOffAndEverythingBeforeItKept() throws {
        let directory = temporaryDataDirectory()
        var ids: [String] = []
        do {
            let daemon = try DaemonProcess(dataDirectory: directory, arguments: ["--snapshot-interval", "0"], fsync: "always")
            let caller = try TestCaller(daemon.rpc)
            for i in 0..<5 { ids.append(try caller.call(RPCs.createCase, plainCase(order: "T\(i)")).case.caseID) }
            daemon.kill()
        }
        let segment = try #require(try journalSegments(directory).last)
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: segment))
        let size = try handle.seekToEnd()
        try handle.truncate(atOffset: size - 7)  // cut inside the last record
        try handle.close()

        let restarted = try DaemonProcess(dataDirectory: directory)
        defer { restarted.stop() }
        let caller = try TestCaller(restarted.rpc)
        for id in ids.dropLast() {
            #expect(try caller.call(RPCs.getCase, .with { $0.caseID = id }).case.caseID == id)
        }
        #expect(try caller.failure(RPCs.getCase, .with { $0.caseID = ids.last! }).code == .notFound)
        #expect(restarted.stderr.contains("torn tail"))
        // Appends after the cut read back after another restart.
        let later = try caller.call(RPCs.createCase, plainCase(order: "T-after")).case.caseID
        restarted.stop()
        let again = try DaemonProcess(dataDirectory: directory)
        defer { again.stop() }
        #expect(try TestCaller(again.rpc).call(RPCs.getCase, .with { $0.caseID = later }).case.caseID == later)
    }

    @Test func damageInTheMiddleRefusesStartUpNamingFileAndOffset() throws {
        let directory = temporaryDataDirectory()
        do {
            let daemon = try DaemonProcess(dataDirectory: directory, arguments: ["--snapshot-interval", "0"], fsync: "always")
            let caller = try TestCaller(daemon.rpc)
            for i in 0..<5 { _ = try caller.call(RPCs.createCase, plainCase(order: "D\(i)")) }
            daemon.kill()
        }
        let segment = try #require(try journalSegments(directory).last)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: segment))
        let middle = bytes.count / 2
        bytes[middle] ^= 0xff
        try bytes.write(to: URL(fileURLWithPath: segment))

        #expect(throws: DaemonTestError.self) { try DaemonProcess(dataDirectory: directory) }
        let process = Process()
        process.executableURL = productsDirectory.appendingPathComponent("aftersalesd")
        process.arguments = ["--rpc", "tcp://127.0.0.1:*", "--pub", "tcp://127.0.0.1:*", "--data-dir", directory]
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = Pipe()
        try process.run()
        process.waitUntilExit()
        let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(process.terminationStatus == 78)
        #expect(text.contains(segment), "stderr: \(text)")
        #expect(text.contains("damaged at offset"), "stderr: \(text)")
    }

    @Test func restartFromSnapshotPlusJournalAndSnapshotsDoNotStopService() throws {
        let directory = temporaryDataDirectory()
        var ids: [String] = []
        let daemon = try DaemonProcess(dataDirectory: directory, arguments: ["--snapshot-interval", "0"])
        let caller = try TestCaller(daemon.rpc)
        // Enough cases that writing the snapshot takes a while.
        var pipelined = 0
        for i in 0..<15_000 {
            try caller.send(.createCase, plainCase(order: "S\(i)", consumer: "C\(i % 97)"))
            pipelined += 1
            if pipelined == 500 || i == 14_999 {
                for _ in 0..<pipelined {
                    let answer = try caller.receive()
                    let created = try answer.decodedPayload(as: Aftersales_V1_CreateCaseResponse.self)
                    if ids.count < 10 { ids.append(created.case.caseID) }
                }
                pipelined = 0
            }
        }
        // Ask for a snapshot, and while it is written keep calling: pings come back first.
        let snapshotID = try caller.send(.takeSnapshot, Aftersales_V1_TakeSnapshotRequest())
        var answeredBeforeSnapshot = 0
        for _ in 0..<20 { try caller.send(.ping, Aftersales_V1_PingRequest()) }
        var snapshot: Aftersales_V1_TakeSnapshotResponse?
        for _ in 0..<21 {
            let answer = try caller.receive()
            if answer.requestID == snapshotID {
                snapshot = try answer.decodedPayload(as: Aftersales_V1_TakeSnapshotResponse.self)
            } else if snapshot == nil {
                answeredBeforeSnapshot += 1
            }
        }
        let written = try #require(snapshot)
        #expect(written.cases == 15_000)
        #expect(answeredBeforeSnapshot > 0, "no call was answered while the snapshot was being written")

        // Changes after the snapshot live only in the journal.
        let agreed = try caller.call(RPCs.merchantAgree, .with { $0.caseID = ids[0]; $0.merchantID = "M1" })
        daemon.kill()

        let restarted = try DaemonProcess(dataDirectory: directory)
        defer { restarted.stop() }
        let again = try TestCaller(restarted.rpc)
        #expect(try again.call(RPCs.getStats, .init()).casesTotal == 15_000)
        #expect(try again.call(RPCs.getCase, .with { $0.caseID = ids[0] }).case == agreed.case)
        #expect(try again.call(RPCs.getCase, .with { $0.caseID = ids[5] }).case.status == .awaitingMerchantReview)
    }

    @Test func journalSegmentsTheKeptSnapshotsCoverAreDeletedByTheTimeTakeSnapshotAnswers() throws {
        let directory = temporaryDataDirectory()
        let daemon = try DaemonProcess(dataDirectory: directory, arguments: ["--snapshot-interval", "0"])
        defer { daemon.stop() }
        let caller = try TestCaller(daemon.rpc)
        var positions: [UInt64] = []
        for round in 0..<3 {
            _ = try caller.call(RPCs.createCase, plainCase(order: "J\(round)"))
            positions.append(try caller.call(RPCs.takeSnapshot, .init()).seq)
        }
        // Snapshots 2 and 3 are kept; the journal reaches back to snapshot 2 and no further.
        let snapshots = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".snap") }
        #expect(snapshots.count == 2)
        let segments = try journalSegments(directory).map { ($0 as NSString).lastPathComponent }
        #expect(segments.count == 2, "segments left: \(segments)")
        #expect(!segments.contains("journal-00000000000000000001.log"))
        #expect(try caller.call(RPCs.getStats, .init()).casesTotal == 3)
    }

    @Test func shutdownWritesAFinalSnapshotAndExitsZero() throws {
        let directory = temporaryDataDirectory()
        let daemon = try DaemonProcess(dataDirectory: directory, arguments: ["--snapshot-interval", "0"])
        let caller = try TestCaller(daemon.rpc)
        let id = try caller.call(RPCs.createCase, plainCase(order: "F1")).case.caseID
        #expect(daemon.stop() == 0)
        let snapshots = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".snap") }
        #expect(snapshots.count == 1)
        let restarted = try DaemonProcess(dataDirectory: directory)
        defer { restarted.stop() }
        #expect(try TestCaller(restarted.rpc).call(RPCs.getCase, .with { $0.caseID = id }).case.caseID == id)
        #expect(restarted.stderr.contains("loaded snapshot"))
    }
}
