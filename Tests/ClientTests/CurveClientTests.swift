import AfterSalesClient
import AfterSalesProto
import AfterSalesRPC
import Foundation
import Testing
import ZeroMQ

@Suite("Clients speaking CURVE", .serialized, .timeLimit(.minutes(1)))
struct CurveClientTests {
    @Test("AfterSalesClient and EventSubscriber with CURVE; the probe with --server-key and --key")
    func everySwiftClientSpeaksCurve() async throws {
        let keys = try CurveFixture([("gw", "consumer-gateway", ""), ("obs", "observer", "")])
        let daemon = try DaemonProcess(arguments: keys.daemonArguments)
        defer { daemon.stop(removeData: true) }

        let observer = try AfterSalesClient(endpoint: daemon.rpc, configuration: .init(
            curve: .init(serverPublicKey: keys.server.publicKey, keys: keys.clients["obs"]!)))
        defer { observer.close() }
        let subscriber = EventSubscriber(client: observer, endpoint: daemon.pub, topics: ["case.created"])
        defer { subscriber.close() }
        try await Task.sleep(for: .milliseconds(300))

        let gw = try AfterSalesClient(endpoint: daemon.rpc, configuration: .init(
            curve: try .init(serverKeyFile: keys.serverKeyFile, secretKeyFile: keys.secretKeyFile("gw"))))
        defer { gw.close() }
        let created = try await gw.createCase(createRequest("o-curve"))
        let events = try await collect(subscriber) { !$0.compactMap(\.announcement).isEmpty }
        #expect(events.compactMap(\.announcement).first?.caseID == created.case.caseID)

        let obsKey = try keys.secretKeyFile("obs")
        let probe = try await onThread { try runProbe(["get", created.case.caseID, "--endpoint", daemon.rpc,
                                                       "--server-key", keys.serverKeyFile, "--key", obsKey]) }
        #expect(probe.status == 0 && probe.stdout.contains(created.case.caseID), "\(probe.stderr)")
        let refused = try await onThread { try runProbe(["cancel", created.case.caseID, "--consumer", "c-1", "--endpoint", daemon.rpc,
                                                         "--server-key", keys.serverKeyFile, "--key", obsKey]) }
        #expect(refused.status == 10 + 7 && refused.stderr.contains("PERMISSION_DENIED"), "\(refused.stderr)")
    }
}
