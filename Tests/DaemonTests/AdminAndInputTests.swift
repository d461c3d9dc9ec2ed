@testable import AfterSalesDaemon
import AfterSalesProto
import AfterSalesRPC
import Foundation
import Testing
import ZeroMQ

/// Admin RPCs, idempotency, and every kind of bad input — after each the daemon still answers.
@Suite(.serialized) struct AdminAndInputTests {
    @Test func adminCalls() throws {
        let daemon = try DaemonProcess(arguments: ["--replay-window", "5"])
        defer { daemon.stop() }
        let caller = try TestCaller(daemon.rpc)
        let pong = try caller.call(RPCs.ping, .with { $0.payload = Data([0, 1, 0]) })
        #expect(pong.payload == Data([0, 1, 0]) && pong.version.hasPrefix("aftersalesd"))

        for i in 0..<4 { _ = try caller.call(RPCs.createCase, interventionCase(order: "A\(i)")) }  // 2 announcements each
        let stats = try caller.call(RPCs.getStats, .init())
        #expect(stats.casesTotal == 4 && stats.pendingProposals == 4)
        #expect(stats.casesByStatus.first { $0.status == .proposalPending }?.count == 4)
        #expect(stats.lastEventSeq == 8)
        #expect(stats.nextDeadlineAtMs > 0)
        #expect(stats.fsyncPolicy == "always")
        let createStats = try #require(stats.methods.first { $0.method == Method.createCase.fullName })
        #expect(createStats.calls == 4 && createStats.errors == 0)

        let replay = try caller.call(RPCs.replayEvents, .with { $0.fromSeq = 6 })
        #expect(replay.events.map(\.seq) == [6, 7, 8])
        #expect(replay.events.first?.case.caseID == replay.events.first?.caseID)
        let tooOld = try caller.failure(RPCs.replayEvents, .with { $0.fromSeq = 1 })
        #expect(tooOld.code == .outOfRange && tooOld.message.contains("oldest available is 4"))
        #expect(try caller.call(RPCs.replayEvents, .with { $0.fromSeq = 9 }).events.isEmpty)

        let snapshot = try caller.call(RPCs.takeSnapshot, .init())
        #expect(snapshot.seq == 8 && snapshot.cases == 4 && snapshot.bytes > 0)
        #expect(FileManager.default.fileExists(atPath: snapshot.path))
        #expect(try caller.call(RPCs.getStats, .init()).lastSnapshotAtMs > 0)
    }

    @Test func healthCheckInTheMannerOfGRPC() throws {
        let daemon = try DaemonProcess()
        defer { daemon.stop() }
        let caller = try TestCaller(daemon.rpc)
        #expect(try caller.call(RPCs.check, .init()).status == .serving)
        #expect(try caller.call(RPCs.check, .with { $0.service = "aftersales.v1.CaseService" }).status == .serving)
        let unknown = try caller.callRaw(.check, Aftersales_V1_CheckRequest.with { $0.service = "grpc.health.v1.Health" })
        #expect(unknown.code == .notFound && unknown.message.contains("aftersales.v1.AdminService"))
    }

    @Test func jsonLogLinesParse() throws {
        let daemon = try DaemonProcess(arguments: ["--log-format", "json"])
        _ = try TestCaller(daemon.rpc).ping()
        #expect(daemon.stop() == 0)
        let lines = daemon.stderr.split(separator: "\n")
        #expect(lines.count >= 3)
        for line in lines {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "\(line)")
            #expect(object["level"] != nil && object["message"] != nil)
            #expect((object["time"] as? String)?.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"#, options: .regularExpression) != nil)
        }
        #expect(lines.contains { $0.contains(#""message":"serving""#) })
    }

    @Test func textLogLinesQuoteValuesThatWouldSplit() throws {
        #expect(TextLogHandler.quotedIfNeeded("tcp://127.0.0.1:7700") == "tcp://127.0.0.1:7700")
        #expect(TextLogHandler.quotedIfNeeded("cannot bind: Address in use") == #""cannot bind: Address in use""#)
        #expect(TextLogHandler.quotedIfNeeded(#"say "hi"\n"#) == #""say \"hi\"\\n""#)
        #expect(TextLogHandler.quotedIfNeeded("a=b") == #""a=b""#)
        #expect(TextLogHandler.quotedIfNeeded("") == #""""#)

        let daemon = try DaemonProcess()
        _ = try TestCaller(daemon.rpc).ping()
        #expect(daemon.stop() == 0)
        let serving = try #require(daemon.stderr.split(separator: "\n").first { $0.contains(" serving ") || $0.hasSuffix(" serving") || $0.contains(": serving") })
        #expect(serving.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z info aftersalesd: serving "#, options: .regularExpression) != nil, "\(serving)")
    }

    @Test func idempotentRetryAppliesOnce() throws {
        let daemon = try DaemonProcess()
        defer { daemon.stop() }
        let caller = try TestCaller(daemon.rpc)
        let request = plainCase(order: "IDEM")
        let first = try caller.call(RPCs.createCase, request, key: "create-IDEM")
        let retry = try caller.call(RPCs.createCase, request, key: "create-IDEM")
        #expect(retry == first)
        #expect(try caller.call(RPCs.getStats, .init()).casesTotal == 1)
        // Without the key the same order line is refused: the first case is still open.
        #expect(try caller.failure(RPCs.createCase, request).code == .alreadyExists)
        // The same key for another method is a caller mistake.
        let misuse = try caller.callRaw(.cancelCase, Aftersales_V1_CancelCaseRequest.with { $0.caseID = first.case.caseID; $0.consumerID = "C1" }, key: "create-IDEM")
        #expect(misuse.code == .invalidArgument && misuse.message.contains("already used"))
    }

    @Test func badInputNeverStopsTheDaemon() throws {
        let daemon = try DaemonProcess(arguments: ["--max-message-bytes", "4096"])
        defer { daemon.stop() }
        let caller = try TestCaller(daemon.rpc)

        // An envelope that does not decode.
        try caller.sendRaw([[], [0xff, 0xff, 0xff, 0x01, 0x02]])
        let garbage = try caller.receive()
        #expect(garbage.code == .invalidArgument && garbage.message.contains("RequestEnvelope"))
        #expect(try caller.ping())

        // An unknown method.
        var unknown = RequestEnvelope()
        unknown.requestID = 77
        unknown.method = "aftersales.v1.CaseService/DeleteEverything"
        try caller.sendRaw([[], try unknown.serializedBytes()])
        let unimplemented = try caller.receive()
        #expect(unimplemented.code == .unimplemented && unimplemented.requestID == 77)
        #expect(try caller.ping())

        // A payload that does not parse as the method's request.
        var broken = RequestEnvelope()
        broken.requestID = 78
        broken.method = Method.createCase.fullName
        broken.payload = Data([0x0a, 0xff, 0xff])
        try caller.sendRaw([[], try broken.serializedBytes()])
        let unparsable = try caller.receive()
        #expect(unparsable.code == .invalidArgument && unparsable.message.contains("CreateCaseRequest"))
        #expect(try caller.ping())

        // A field rule broken: the message names the field.
        var overRefund = plainCase()
        overRefund.refundAmount = overRefund.paidAmount + 1
        let money = try caller.failure(RPCs.createCase, overRefund)
        #expect(money.code == .invalidArgument && money.message.contains("refund_amount"))
        var noDecision = Aftersales_V1_RespondToProposalRequest()
        noDecision.caseID = "AS0000000001"
        noDecision.consumerID = "C1"
        let decision = try caller.failure(RPCs.respondToProposal, noDecision)
        #expect(decision.code == .invalidArgument && decision.message.contains("decision"))
        #expect(try caller.ping())

        // Over the size limit: answered, with the request id read from the envelope's head.
        let big = try caller.callRaw(.ping, Aftersales_V1_PingRequest.with { $0.payload = Data(count: 8_000) })
        #expect(big.code == .resourceExhausted && big.message.contains("4096"))
        #expect(try caller.ping())

        // Frame layouts that cannot be answered: counted and dropped.
        let before = try caller.call(RPCs.getStats, .init()).droppedFrames
        try caller.sendRaw([[1, 2, 3]])           // no delimiter
        #expect(try caller.ping())
        let after = try caller.call(RPCs.getStats, .init()).droppedFrames
        #expect(after == before + 1)

        // Several frames after the delimiter: answerable, so answered.
        try caller.sendRaw([[], [1], [2]])
        let twoBodies = try caller.receive()
        #expect(twoBodies.code == .invalidArgument && twoBodies.message.contains("exactly one"))
        #expect(try caller.ping())
    }

    @Test func aSecondDaemonCannotShareTheDataDirectory() throws {
        let daemon = try DaemonProcess()
        defer { daemon.stop() }
        #expect(throws: DaemonTestError.self) { try DaemonProcess(dataDirectory: daemon.dataDirectory) }
        #expect(try TestCaller(daemon.rpc).ping())
    }

    @Test func bindingABusyPortFailsClearly() throws {
        let daemon = try DaemonProcess()
        defer { daemon.stop() }
        let second = Process()
        second.executableURL = productsDirectory.appendingPathComponent("aftersalesd")
        second.arguments = ["--rpc", daemon.rpc, "--pub", "tcp://127.0.0.1:*", "--data-dir", temporaryDataDirectory()]
        let errors = Pipe()
        second.standardError = errors
        second.standardOutput = Pipe()
        try second.run()
        second.waitUntilExit()
        let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(second.terminationStatus == 73, "its own exit code, one systemd does not retry")
        #expect(text.contains("Address already in use"), "stderr: \(text)")
    }
}
