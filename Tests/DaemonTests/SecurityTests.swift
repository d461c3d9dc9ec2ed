import AfterSalesProto
import AfterSalesRPC
import Foundation
import Testing
import ZeroMQ

#if canImport(Glibc)
import Glibc
#endif

/// Who is calling: CURVE on both sockets, the clients file (ZAP), roles, scopes, audit.
@Suite(.serialized) struct SecurityTests {
    static let lines: [(name: String, role: String, scope: String)] = [
        ("gw", "consumer-gateway", ""), ("shop1", "merchant-gateway", "merchants=M1"), ("shops", "merchant-gateway", ""),
        ("plat", "platform", ""), ("obs", "observer", ""), ("adm", "admin", ""),
    ]

    func start(_ keys: CurveFixture, _ extra: [String] = []) throws -> DaemonProcess {
        try DaemonProcess(arguments: keys.daemonArguments + extra)
    }

    func caller(_ daemon: DaemonProcess, _ keys: CurveFixture, as name: String, timeoutMs: Int32 = 10_000) throws -> TestCaller {
        try TestCaller(daemon.rpc, receiveTimeoutMs: timeoutMs, curve: keys.credentials(name))
    }

    @Test func keygenWritesASecretOnlyItsOwnerCanRead() throws {
        let dir = temporaryDataDirectory()
        let run = try runDaemon(["keygen", "--out", dir, "svc"])
        #expect(run.status == 0, "\(run.stderr)")
        var info = stat()
        #expect(stat(dir + "/svc.key", &info) == 0 && info.st_mode & 0o777 == 0o600)
        let publicKey = try String(contentsOfFile: dir + "/svc.pub", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let secretKey = try String(contentsOfFile: dir + "/svc.key", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(try CurveKeyPair(secretKey: secretKey).publicKey == publicKey)
    }

    @Test func aSecretKeyOthersCanReadRefusesStartUp() throws {
        let keys = try CurveFixture(Self.lines)
        chmod(keys.secretKeyFile, 0o644)
        let run = try runDaemon(keys.daemonArguments + ["--rpc", "tcp://127.0.0.1:*", "--pub", "tcp://127.0.0.1:*", "--data-dir", temporaryDataDirectory()])
        #expect(run.status == 78, "\(run.stderr)")
        #expect(run.stderr.contains("chmod 600 \(keys.secretKeyFile)"), "\(run.stderr)")
    }

    @Test func aNonLoopbackBindWithoutCurveIsRefused() throws {
        let run = try runDaemon(["--rpc", "tcp://0.0.0.0:*", "--pub", "tcp://127.0.0.1:*", "--data-dir", temporaryDataDirectory()])
        #expect(run.status == 64 && run.stderr.contains("--insecure-plaintext") && run.stderr.contains("keygen"), "\(run.stderr)")
    }

    @Test func unknownKeysAndPlaintextGetNoAnswerAndAreCounted() throws {
        let keys = try CurveFixture(Self.lines)
        let daemon = try start(keys)
        defer { daemon.stop() }
        let stranger = try TestCaller(daemon.rpc, receiveTimeoutMs: 500, curve: (keys.server.publicKey, try CurveKeyPair.generate()))
        #expect(throws: TestSupportError.self) { try stranger.callRaw(.ping, Aftersales_V1_PingRequest()) }
        let plaintext = try TestCaller(daemon.rpc, receiveTimeoutMs: 500)
        #expect(throws: TestSupportError.self) { try plaintext.callRaw(.ping, Aftersales_V1_PingRequest()) }
        let stats = try caller(daemon, keys, as: "obs").call(RPCs.getStats, .init())
        #expect(stats.zapRefusals >= 1)
        #expect(daemon.stderr.contains("refused a connection: key not in the clients file"))
    }

    @Test func eachRoleMayCallItsMethodsOnly() throws {
        let keys = try CurveFixture(Self.lines)
        let daemon = try start(keys)
        defer { daemon.stop() }
        let gw = try caller(daemon, keys, as: "gw")
        let created = try gw.call(RPCs.createCase, plainCase(order: "ROLE", merchant: "M1"))
        let id = created.case.caseID
        #expect(try gw.callRaw(.takeSnapshot, Aftersales_V1_TakeSnapshotRequest()).code == .permissionDenied)
        let shops = try caller(daemon, keys, as: "shops")
        #expect(try shops.callRaw(.getCase, Aftersales_V1_GetCaseRequest.with { $0.caseID = id }).code == .ok)
        let refused = try shops.callRaw(.createCase, plainCase(order: "ROLE2"))
        #expect(refused.code == .permissionDenied && refused.message.contains("'shops' (role merchant-gateway)") && refused.message.contains("CreateCase"))
        let plat = try caller(daemon, keys, as: "plat")
        #expect(try plat.callRaw(.evaluateIntervention, Aftersales_V1_EvaluateInterventionRequest.with { $0.caseID = id }).code == .ok)
        #expect(try plat.callRaw(.merchantAgree, Aftersales_V1_MerchantAgreeRequest.with { $0.caseID = id; $0.merchantID = "M1" }).code == .permissionDenied)
        let obs = try caller(daemon, keys, as: "obs")
        #expect(try obs.callRaw(.replayEvents, Aftersales_V1_ReplayEventsRequest.with { $0.fromSeq = 1 }).code == .ok)
        #expect(try obs.callRaw(.cancelCase, Aftersales_V1_CancelCaseRequest.with { $0.caseID = id; $0.consumerID = "C1" }).code == .permissionDenied)
        let adm = try caller(daemon, keys, as: "adm")
        #expect(try adm.callRaw(.takeSnapshot, Aftersales_V1_TakeSnapshotRequest()).code == .ok)
        #expect(try adm.callRaw(.merchantReject, Aftersales_V1_MerchantRejectRequest.with { $0.caseID = id; $0.merchantID = "M1"; $0.reason = "x" }).code == .permissionDenied)
    }

    /// Every method has at least one role: a new RPC without `(roles)` fails here.
    @Test func everyMethodHasARole() {
        for method in Method.allCases { #expect(!method.roles.isEmpty, "\(method.fullName) has no role") }
    }

    @Test func aScopeBindsTheActorWhateverTheRequestClaims() throws {
        let keys = try CurveFixture(Self.lines)
        let daemon = try start(keys)
        defer { daemon.stop() }
        let gw = try caller(daemon, keys, as: "gw")
        let theirs = try gw.call(RPCs.createCase, plainCase(order: "M3-CASE", merchant: "M3")).case
        let shop1 = try caller(daemon, keys, as: "shop1")
        let refused = try shop1.callRaw(.merchantAgree, Aftersales_V1_MerchantAgreeRequest.with { $0.caseID = theirs.caseID; $0.merchantID = "M3" })
        #expect(refused.code == .permissionDenied && refused.message.contains("merchants=M1"), "\(refused.message)")
        let asM1 = try shop1.callRaw(.merchantAgree, Aftersales_V1_MerchantAgreeRequest.with { $0.caseID = theirs.caseID; $0.merchantID = "M1" })
        #expect(asM1.code == .permissionDenied, "the engine refuses M1 acting on M3's case: \(asM1.message)")
        #expect(try shop1.callRaw(.getCase, Aftersales_V1_GetCaseRequest.with { $0.caseID = theirs.caseID }).code == .notFound)
        #expect(try gw.call(RPCs.getCase, .with { $0.caseID = theirs.caseID }).case.version == theirs.version, "unchanged")
        let mine = try gw.call(RPCs.createCase, plainCase(order: "M1-CASE", merchant: "M1")).case
        #expect(try shop1.call(RPCs.merchantAgree, .with { $0.caseID = mine.caseID; $0.merchantID = "M1" }).case.status == .refunded)
    }

    @Test func aReloadRefusesARemovedKeyOnItsOpenConnectionAndABadFileKeepsTheList() throws {
        let keys = try CurveFixture(Self.lines)
        let daemon = try start(keys)
        defer { daemon.stop() }
        let gw = try caller(daemon, keys, as: "gw")
        let obs = try caller(daemon, keys, as: "obs")
        #expect(try gw.ping() && obs.ping())

        try Data("gw consumer-gateway not-a-key\n".utf8).write(to: URL(fileURLWithPath: keys.clientsFile))
        kill(daemon.process.processIdentifier, SIGHUP)
        Thread.sleep(forTimeInterval: 0.3)
        #expect(try gw.ping() && obs.ping(), "a bad file keeps the list in force")
        #expect(daemon.stderr.contains("clients file not reloaded"))

        try keys.writeClients(Self.lines.filter { $0.name != "gw" })
        kill(daemon.process.processIdentifier, SIGHUP)
        Thread.sleep(forTimeInterval: 0.3)
        let removed = try gw.callRaw(.ping, Aftersales_V1_PingRequest())
        #expect(removed.code == .unauthenticated, "\(removed.message)")
        #expect(try obs.ping())
    }

    @Test func historyNamesTheServiceThatMadeEachStep() throws {
        let keys = try CurveFixture(Self.lines)
        let daemon = try start(keys)
        defer { daemon.stop() }
        let created = try caller(daemon, keys, as: "gw").call(RPCs.createCase, plainCase(order: "AUDIT", merchant: "M1")).case
        _ = try caller(daemon, keys, as: "shop1").call(RPCs.merchantAgree, .with { $0.caseID = created.caseID; $0.merchantID = "M1" })
        let history = try caller(daemon, keys, as: "adm").call(RPCs.getCase, .with { $0.caseID = created.caseID }).case.history
        #expect(history.map(\.client) == ["gw", "shop1"])
    }

    @Test func subscribersNeedAnAllowedKeyToo() throws {
        let keys = try CurveFixture(Self.lines)
        let daemon = try start(keys)
        defer { daemon.stop() }
        let allowed = try TestSubscriber(daemon.pub, curve: keys.credentials("obs"))
        let stranger = try TestSubscriber(daemon.pub, curve: (keys.server.publicKey, try CurveKeyPair.generate()))
        _ = try caller(daemon, keys, as: "gw").call(RPCs.createCase, plainCase(order: "SUB"))
        #expect(try allowed.next()?.topic == "case.created")
        #expect(try stranger.next(timeoutMs: 300) == nil)
    }
}
