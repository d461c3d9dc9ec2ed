import AfterSalesDaemon
import AfterSalesProto
import AfterSalesRPC
import AfterSalesTestSupport
import Foundation
import SwiftProtobuf
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A daemon run on a thread of this process, stopped and waited for by `stop()`.
private final class RunningDaemon: @unchecked Sendable {
    let daemon: Daemon
    private let done = DispatchSemaphore(value: 0)
    private let failure = Mutex<String?>(nil)

    init(_ config: DaemonConfig) throws {
        daemon = try Daemon(config: config)
        let thread = Thread { [self] in
            do { try daemon.run() } catch { failure.withLock { $0 = "\(error)" } }
            done.signal()
        }
        thread.start()
    }

    /// Stops the daemon; returns the error `run()` ended with, if any.
    @discardableResult
    func stop() -> String? {
        daemon.stop()
        _ = done.wait(timeout: .now() + 10)
        return failure.withLock { $0 }
    }
}

private func operationsConfig() -> DaemonConfig {
    var config = DaemonConfig()
    config.rpcEndpoint = "tcp://127.0.0.1:*"
    config.pubEndpoint = "tcp://127.0.0.1:*"
    config.dataDirectory = temporaryDataDirectory()
    config.fsync = .never
    config.metricsListen = "127.0.0.1:0"
    config.metricsPublishIntervalMs = 20
    return config
}

/// One HTTP GET over a plain socket: the status code and the body.
private func httpGet(_ address: String, _ path: String) throws -> (status: Int, body: String) {
    let colon = address.lastIndex(of: ":")!
    let port = UInt16(address[address.index(after: colon)...])!
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var timeout = timeval(tv_sec: 5, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var target = sockaddr_in()
    target.sin_family = sa_family_t(AF_INET)
    target.sin_port = port.bigEndian
    target.sin_addr.s_addr = inet_addr(String(address[..<colon]))
    let connected = withUnsafePointer(to: &target) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else { throw TestSupportError("cannot connect to \(address)") }
    let request = Array("GET \(path) HTTP/1.1\r\nHost: \(address)\r\n\r\n".utf8)
    _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
    var response: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65_536)
    while true {
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n <= 0 { break }
        response += chunk[..<n]
    }
    let text = String(decoding: response, as: UTF8.self)
    guard let headerEnd = text.range(of: "\r\n\r\n"), let status = Int(text.split(separator: " ")[1]) else {
        throw TestSupportError("not an HTTP response: \(text.prefix(80))")
    }
    return (status, String(text[headerEnd.upperBound...]))
}

/// The value of the sample `series` (name with labels, as exposed) in a Prometheus text exposition.
private func sample(_ series: String, in exposition: String) -> Double? {
    for line in exposition.split(separator: "\n") where line.hasPrefix(series + " ") {
        return Double(line.dropFirst(series.count + 1))
    }
    return nil
}

/// Polls `condition` every 10 ms for up to five seconds (the metrics are published on a
/// 20 ms period in these tests).
private func eventually(_ condition: () throws -> Bool) rethrows -> Bool {
    for _ in 0..<500 {
        if try condition() { return true }
        usleep(10_000)
    }
    return try condition()
}

@Suite struct OperationsTests {
    @Test func metricsCountCallsByMethodAndCodeAndShowTheStore() throws {
        var config = operationsConfig()
        config.fsync = .always  // announcements are published once on disk: at once under always
        let running = try RunningDaemon(config)
        defer { running.stop() }
        let endpoints = try #require(running.daemon.waitUntilReady())
        let address = try #require(running.daemon.metricsEndpoint)
        let caller = try TestCaller(endpoints.rpc)
        for order in ["m1", "m2", "m3"] { _ = try caller.call(RPCs.createCase, interventionCase(order: order)) }
        #expect(try caller.failure(RPCs.getCase, .with { $0.caseID = "AS9999999999" }).code == .notFound)
        #expect(try caller.ping())

        let create = #"aftersales_calls_total{method="aftersales.v1.CaseService/CreateCase",code="OK"}"#
        let notFound = #"aftersales_calls_total{method="aftersales.v1.CaseService/GetCase",code="NOT_FOUND"}"#
        let pending = #"aftersales_cases{status="PROPOSAL_PENDING"}"#
        var exposition = ""
        let settled = try eventually {
            exposition = try httpGet(address, "/metrics").body
            return sample(create, in: exposition) == 3 && sample(notFound, in: exposition) == 1
        }
        #expect(settled, "\(exposition.split(separator: "\n").filter { $0.hasPrefix("aftersales_calls_total") && !$0.hasSuffix(" 0") })")
        #expect(sample(pending, in: exposition) == 3)
        #expect(sample("aftersales_pending_proposals", in: exposition) == 3)
        #expect(sample(#"aftersales_call_duration_seconds_count{method="aftersales.v1.CaseService/CreateCase"}"#, in: exposition) == 3)
        #expect(sample("aftersales_serving", in: exposition) == 1)
        #expect(sample("aftersales_announcements_published_total", in: exposition) == 6,
                "each intervention case announces its creation and its proposal")
        #expect(sample("aftersales_journal_fsync_seconds_count", in: exposition).map { $0 >= 3 } == true)
        #expect(exposition.contains("# HELP aftersales_journal_write_seconds"))
    }

    @Test func healthAndReadinessOverHTTP() throws {
        let running = try RunningDaemon(operationsConfig())
        defer { running.stop() }
        _ = try #require(running.daemon.waitUntilReady())
        let address = try #require(running.daemon.metricsEndpoint)
        #expect(try httpGet(address, "/readyz") == (200, "serving\n"))
        #expect(try httpGet(address, "/healthz").status == 200)
        #expect(try httpGet(address, "/nothing").status == 404)
    }

    @Test func whileRecoveringTheDaemonAnswersNotServingAndThenServes() throws {
        var config = operationsConfig()
        let release = DispatchSemaphore(value: 0)
        config.beforeRecovery = { _ = release.wait(timeout: .now() + 20) }
        let running = try RunningDaemon(config)
        defer {
            release.signal()
            running.stop()
        }
        let endpoints = try #require(running.daemon.waitUntilListening())
        let address = try #require(running.daemon.metricsEndpoint)
        let caller = try TestCaller(endpoints.rpc)

        let check = try caller.call(RPCs.check, .init())
        #expect(check.status == .notServing)
        #expect(check.reason.hasPrefix("recovering"))
        #expect(try caller.ping(), "Ping answers while recovering: the process is alive")
        let refused = try caller.failure(RPCs.getStats, .init())
        #expect(refused.code == .unavailable)
        #expect(refused.message.contains("recovering"))
        let readiness = try httpGet(address, "/readyz")
        #expect(readiness.status == 503)
        #expect(readiness.body.hasPrefix("recovering"))

        release.signal()
        #expect(running.daemon.waitUntilReady() != nil)
        #expect(try caller.call(RPCs.check, .init()).status == .serving)
        #expect(try caller.call(RPCs.getStats, .init()).casesTotal == 0)
        #expect(try httpGet(address, "/readyz").status == 200)
    }

    @Test func slowCallsAreKeptNewestFirstWithTheirCallerAndCase() throws {
        var config = operationsConfig()
        config.slowCallThresholdMicroseconds = 1  // every call is slow
        config.slowCallLogSize = 3
        let running = try RunningDaemon(config)
        defer { running.stop() }
        let endpoints = try #require(running.daemon.waitUntilReady())
        let caller = try TestCaller(endpoints.rpc)
        let created = try caller.call(RPCs.createCase, interventionCase(order: "slow"))
        let get = try caller.callRaw(.getCase, Aftersales_V1_GetCaseRequest.with { $0.caseID = created.case.caseID },
                                     metadata: ["caller": "ops-dashboard"])
        #expect(get.code == .ok)
        for _ in 0..<3 { #expect(try caller.ping()) }

        let log = try caller.call(RPCs.slowCalls, .init())
        #expect(log.thresholdUs == 1)
        #expect(log.totalLogged == 5, "create, get, three pings (SlowCalls itself is answered before it is logged)")
        #expect(log.calls.map(\.method) == Array(repeating: Method.ping.fullName, count: 3), "the ring keeps the newest three")
        #expect(log.calls.map(\.id) == [5, 4, 3])

        let wider = try caller.call(RPCs.slowCalls, .with { $0.count = 1 })
        #expect(wider.calls.count == 1)

        // A fresh daemon with room for the GetCase entry shows what the log records.
        var roomy = operationsConfig()
        roomy.slowCallThresholdMicroseconds = 1
        let second = try RunningDaemon(roomy)
        defer { second.stop() }
        let secondCaller = try TestCaller(try #require(second.daemon.waitUntilReady()).rpc)
        let made = try secondCaller.call(RPCs.createCase, interventionCase(order: "slow2"))
        _ = try secondCaller.callRaw(.getCase, Aftersales_V1_GetCaseRequest.with { $0.caseID = made.case.caseID },
                                     metadata: ["caller": "ops-dashboard"])
        let entry = try #require(try secondCaller.call(RPCs.slowCalls, .init()).calls.first)
        #expect(entry.method == Method.getCase.fullName)
        #expect(entry.caseID == made.case.caseID)
        #expect(entry.caller == "ops-dashboard")
        #expect(entry.code == .ok)
        #expect(entry.requestBytes > 0)
    }

    @Test func reflectionServesTheContractTheDaemonWasBuiltFrom() throws {
        var config = operationsConfig()
        config.metricsListen = nil
        let running = try RunningDaemon(config)
        defer { running.stop() }
        let caller = try TestCaller(try #require(running.daemon.waitUntilReady()).rpc)
        let services = try caller.call(RPCs.listServices, .init()).services
        #expect(Set(services) == ["aftersales.v1.CaseService", "aftersales.v1.AdminService"])
        let answer = try caller.call(RPCs.getDescriptors, .init())
        #expect(answer.protoDigest == protoSourceDigest)
        let set = try Google_Protobuf_FileDescriptorSet(serializedBytes: answer.fileDescriptorSet)
        let caseService = try #require(set.file.flatMap(\.service).first { $0.name == "CaseService" })
        let methodNames = Set(caseService.method.map { "aftersales.v1.CaseService/\($0.name)" })
        #expect(methodNames == Set(Method.allCases.filter { $0.serviceName == "aftersales.v1.CaseService" }.map(\.fullName)))
        #expect(set.file.contains { $0.hasSourceCodeInfo }, "comments travel with the descriptors")
    }

    @Test func aMetricsPortInUseIsABindFailure() throws {
        let first = try RunningDaemon(operationsConfig())
        defer { first.stop() }
        _ = try #require(first.daemon.waitUntilReady())
        var config = operationsConfig()
        config.metricsListen = try #require(first.daemon.metricsEndpoint)
        let second = try RunningDaemon(config)
        let failure = second.stop()
        #expect(failure?.contains("cannot bind") == true, "\(failure ?? "no failure")")
    }

    @Test func operationsFlagsAreCheckedBeforeAnythingStarts() throws {
        let base = ["--rpc", "tcp://127.0.0.1:*", "--pub", "tcp://127.0.0.1:*", "--data-dir", temporaryDataDirectory()]
        let exposed = try runDaemon(base + ["--metrics-listen", "0.0.0.0:9464"])
        #expect(exposed.status == 64, "\(exposed.stderr)")
        #expect(exposed.stderr.contains("reachable from other machines"), "\(exposed.stderr)")
        let malformed = try runDaemon(base + ["--metrics-listen", "9464"])
        #expect(malformed.status == 64)
        #expect(malformed.stderr.contains("HOST:PORT"), "\(malformed.stderr)")
        let threshold = try runDaemon(base + ["--slow-call-threshold", "soon"])
        #expect(threshold.status == 64)
        #expect(threshold.stderr.contains("500us, 10ms or 1s"), "\(threshold.stderr)")
        let batch = try runDaemon(base + ["--max-batch", "0"])
        #expect(batch.status == 64)
        #expect(batch.stderr.contains("between 1 and 4096"), "\(batch.stderr)")
    }
}
