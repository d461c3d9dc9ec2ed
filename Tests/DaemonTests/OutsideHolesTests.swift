@testable import AfterSalesDaemon
import AfterSalesProto
import AfterSalesRPC
import Foundation
import SwiftProtobuf
import Testing

/// What was found by trying the daemon from outside (issue: holes found from outside).
@Suite struct OutsideHolesTests {
    /// A key names one request: reused with another, it is refused, not answered with the
    /// first request's answer — also after a restart.
    @Test func anIdempotencyKeyReusedWithAnotherRequestIsRefused() throws {
        let directory = temporaryDataDirectory()
        do {
            let daemon = try DaemonProcess(dataDirectory: directory)
            let caller = try TestCaller(daemon.rpc)
            let first = try caller.call(RPCs.createCase, plainCase(order: "R1"), key: "k1")
            #expect(try caller.call(RPCs.createCase, plainCase(order: "R1"), key: "k1") == first)
            let misuse = try caller.callRaw(.createCase, plainCase(order: "TOTALLY-DIFFERENT"), key: "k1")
            #expect(misuse.code == .invalidArgument)
            #expect(misuse.message.contains("'k1'") && misuse.message.contains("CreateCase") && misuse.message.contains("Z"), "\(misuse.message)")
            #expect(try caller.call(RPCs.getStats, .init()).casesTotal == 1)
            daemon.kill()
        }
        let daemon = try DaemonProcess(dataDirectory: directory)
        defer { daemon.stop() }
        let caller = try TestCaller(daemon.rpc)
        #expect(try caller.callRaw(.createCase, plainCase(order: "TOTALLY-DIFFERENT"), key: "k1").code == .invalidArgument)
        #expect(try caller.call(RPCs.createCase, plainCase(order: "R1"), key: "k1").case.orderID == "R1")
    }

    /// ReplayEvents serves the last --replay-window announcements across restarts: those
    /// in the snapshot and those in the journal after it, after a kill and after a stop.
    @Test func theReplayWindowSurvivesRestarts() throws {
        let directory = temporaryDataDirectory()
        var seen: UInt64 = 0
        do {
            let daemon = try DaemonProcess(dataDirectory: directory, arguments: ["--snapshot-interval", "0"])
            let caller = try TestCaller(daemon.rpc)
            for i in 0..<3 { _ = try caller.call(RPCs.createCase, interventionCase(order: "W\(i)")) }
            _ = try caller.call(RPCs.takeSnapshot, .init())  // the first 6 now live in the snapshot
            for i in 3..<5 { _ = try caller.call(RPCs.createCase, interventionCase(order: "W\(i)")) }
            seen = try caller.call(RPCs.getStats, .init()).lastEventSeq
            #expect(seen == 10)
            daemon.kill()
        }
        for round in 0..<2 {
            let daemon = try DaemonProcess(dataDirectory: directory)
            let caller = try TestCaller(daemon.rpc)
            let stats = try caller.call(RPCs.getStats, .init())
            #expect(stats.oldestReplayableSeq == 1 && stats.lastEventSeq == seen, "round \(round)")
            let replay = try caller.call(RPCs.replayEvents, .with { $0.fromSeq = 1 })
            #expect(replay.events.map(\.seq) == Array(1...seen), "round \(round)")
            #expect(replay.events.allSatisfy { $0.case.caseID == $0.caseID })
            #expect(daemon.stop() == 0)  // the second round starts from the final snapshot alone
        }
    }

    /// Argument checks come before the case is looked up: a malformed request is
    /// INVALID_ARGUMENT whether or not its case exists.
    @Test func anUnknownEnumValueIsInvalidEvenForAMissingCase() throws {
        let daemon = try DaemonProcess()
        defer { daemon.stop() }
        let caller = try TestCaller(daemon.rpc)
        let unknown = try caller.callRaw(.merchantOffer, Aftersales_V1_MerchantOfferRequest.with {
            $0.caseID = "AS9999999999"; $0.merchantID = "M1"; $0.type = .UNRECOGNIZED(99); $0.refundAmount = 100
        })
        #expect(unknown.code == .invalidArgument && unknown.message.contains("type: unknown value 99"), "\(unknown.message)")
        let missing = try caller.callRaw(.merchantOffer, Aftersales_V1_MerchantOfferRequest.with {
            $0.caseID = "AS9999999999"; $0.merchantID = "M1"; $0.refundAmount = 100
        })
        #expect(missing.code == .invalidArgument && missing.message.contains("type: required"))
        let valid = try caller.callRaw(.merchantOffer, Aftersales_V1_MerchantOfferRequest.with {
            $0.caseID = "AS9999999999"; $0.merchantID = "M1"; $0.type = .refundOnly; $0.refundAmount = 100
        })
        #expect(valid.code == .notFound)
    }

    /// A malformed endpoint is a usage error found before the data directory is touched.
    @Test func aMalformedEndpointExits64BeforeTouchingTheDataDirectory() throws {
        for endpoint in ["127.0.0.1:17710", "tcp://127.0.0.1", "tcp://127.0.0.1:http", "udp://127.0.0.1:9"] {
            let directory = temporaryDataDirectory() + "/not-yet"
            let run = try runDaemon(["--rpc", endpoint, "--pub", "tcp://127.0.0.1:*", "--data-dir", directory])
            #expect(run.status == 64, "\(endpoint): \(run.stderr)")
            #expect(run.stderr.contains("--rpc"), "\(endpoint): \(run.stderr)")
            #expect(!FileManager.default.fileExists(atPath: directory), "\(endpoint) created the data directory")
        }
    }

    /// A call too big for the daemon is answered RESOURCE_EXHAUSTED, not dropped in
    /// silence (a 5 MB call with the default 1 MiB limit); one too big even for libzmq
    /// (16 × the limit + 64 KiB) closes the connection, and that is counted.
    @Test func oversizedCallsAreAnsweredOrCounted() throws {
        let daemon = try DaemonProcess()
        defer { daemon.stop() }
        let caller = try TestCaller(daemon.rpc)
        var fiveMB = RequestEnvelope(requestID: 5, method: .ping, payload: [])
        fiveMB.idempotencyKey = String(repeating: "x", count: 5 << 20)
        try caller.sendRaw([[], try fiveMB.serializedBytes()])
        let answer = try caller.receive()
        #expect(answer.code == .resourceExhausted && answer.requestID == 5, "\(answer.message)")
        #expect(try caller.call(RPCs.getStats, .init()).peerDisconnects == 0)

        let small = try DaemonProcess(arguments: ["--max-message-bytes", "4096"])
        defer { small.stop() }
        let huge = try TestCaller(small.rpc)
        try huge.sendRaw([[], [UInt8](repeating: 7, count: 16 * 4096 + 65_536 + 1)])
        let observer = try TestCaller(small.rpc)
        var counted: UInt64 = 0
        for _ in 0..<200 where counted == 0 {
            counted = try observer.call(RPCs.getStats, .init()).peerDisconnects
            if counted == 0 { Thread.sleep(forTimeInterval: 0.05) }
        }
        #expect(counted == 1)
    }
}

/// Requests of absurd shape are refused from their wire bytes, before decoding, with the
/// field named; requests of sane shape are untouched.
@Suite struct RequestShapeTests {
    let shape = RequestShape(limits: .init())

    func payload(_ message: some SwiftProtobuf.Message) -> Data { try! message.serializedBytes() }

    @Test func listsOverTheirBoundAreRefusedByName() throws {
        var create = plainCase(order: "SHAPE")
        create.signals.evidence = Array(repeating: .with { $0.kind = .photo }, count: 33)
        #expect(shape.checkPayload(payload(create), for: .createCase)?.message.hasPrefix("signals.evidence: at most 32") == true)
        create.signals.evidence = [.with { $0.kind = .photo; $0.tags = Array(repeating: .defect, count: 9) }]
        #expect(shape.checkPayload(payload(create), for: .createCase)?.message.hasPrefix("signals.evidence[].tags: at most 8") == true)
        var logistics = Aftersales_V1_UpdateLogisticsRequest()
        logistics.anomalies = Array(repeating: .lateDelivery, count: 65)
        #expect(shape.checkPayload(payload(logistics), for: .updateLogistics)?.message.hasPrefix("anomalies: at most 64") == true)
        var envelope = RequestEnvelope(requestID: 1, method: .ping, payload: [])
        envelope.metadata = Dictionary(uniqueKeysWithValues: (0..<65).map { ("k\($0)", "v") })
        #expect(shape.checkEnvelope(try envelope.serializedBytes())?.message.hasPrefix("metadata: at most 64") == true)
    }

    @Test func saneRequestsPass() throws {
        var create = interventionCase(order: "SANE")
        create.signals.evidence = Array(repeating: .with { $0.kind = .photo; $0.tags = Array(repeating: .defect, count: 8) }, count: 32)
        create.signals.logisticsAnomalies = [.lateDelivery, .damagedInTransit]
        #expect(shape.checkPayload(payload(create), for: .createCase) == nil)
        var envelope = RequestEnvelope(requestID: 1, method: .createCase, payload: try create.serializedBytes())
        envelope.metadata = ["caller": "merchant-backoffice"]
        #expect(shape.checkEnvelope(try envelope.serializedBytes()) == nil)
    }

    @Test func unknownFieldsBeyondAnyRequestsOwnAreRefused() throws {
        // 600 unknown varint fields (number 99) in a Ping.
        let junk = Data((0..<600).flatMap { _ in [0x98, 0x06, 0x01] as [UInt8] })
        #expect(shape.checkPayload(junk, for: .ping)?.message.contains("more than 512 fields") == true)
    }
}

/// The wire checks run on every request before anything else looks at it: damaged bytes of
/// every shape must be answered (refused or passed on to the decoder), never crash.
@Suite struct RequestShapeFuzzTests {
    @Test func damagedRequestsNeverCrashTheChecks() throws {
        let shape = RequestShape(limits: .init())
        var rng = SplitMix64(seed: 0xA5A5_2026)
        var create = interventionCase(order: "FUZZ")
        create.signals.evidence = Array(repeating: .with { $0.kind = .photo; $0.tags = [.defect, .damage] }, count: 4)
        create.signals.logisticsAnomalies = [.lateDelivery]
        let originals: [(Method, [UInt8])] = [
            (.createCase, try create.serializedBytes()),
            (.addEvidence, try Aftersales_V1_AddEvidenceRequest.with { $0.caseID = "AS0000000001"; $0.evidence = .with { $0.tags = [.defect] } }.serializedBytes()),
            (.updateLogistics, try Aftersales_V1_UpdateLogisticsRequest.with { $0.caseID = "AS0000000001"; $0.anomalies = [.lateDelivery, .wrongItem] }.serializedBytes()),
        ]
        var refused = 0
        for round in 0..<6_000 {
            let (method, original) = originals[round % originals.count]
            let damaged = rng.damaged(original)
            if shape.checkPayload(Data(damaged), for: method) != nil { refused += 1 }
            var envelope = RequestEnvelope(requestID: UInt64(round), method: method, payload: damaged)
            envelope.metadata = ["caller": "fuzz"]
            _ = shape.checkEnvelope(rng.damaged(try envelope.serializedBytes()))
        }
        #expect(refused < 6_000, "most damage is for the decoder to name, not the shape check")
        for (method, original) in originals { #expect(shape.checkPayload(Data(original), for: method) == nil) }
    }
}
