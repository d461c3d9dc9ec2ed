import AfterSalesClient
import AfterSalesProto
import AfterSalesRPC
import Foundation
import Testing

@Suite("aftersales-probe against a real aftersalesd", .serialized, .timeLimit(.minutes(2)))
struct ProbeTests {
    @Test("ping, create, get, list, history, stats, snapshot, methods: output and exit 0")
    func readsAndFigures() async throws {
        try await withDaemon { daemon in
            let at = ["--endpoint", daemon.rpc]
            let ping = try runProbe(["ping", "--count", "3", "--interval", "10"] + at)
            #expect(ping.status == 0, "\(ping.stderr)")
            for word in ["min", "p50", "p99", "max", "ms"] { #expect(ping.stdout.contains(word)) }

            let created = try runProbe(["create", "--order", "o-1", "--consumer", "c-1", "--merchant", "m-1",
                                        "--category", "apparel", "--paid", "19900", "--anomaly", "damaged-in-transit",
                                        "--evidence", "photo:defect,damage:torn", "--json"] + at)
            #expect(created.status == 0, "\(created.stderr)")
            let response = try Aftersales_V1_CreateCaseResponse(jsonString: created.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
            #expect(response.case.status == .proposalPending)
            #expect(response.case.signals.evidence.first?.tags == [.defect, .damage])
            let id = response.case.caseID

            let got = try runProbe(["get", id] + at)
            #expect(got.status == 0)
            #expect(got.stdout.contains(id))
            #expect(got.stdout.contains("PROPOSAL_PENDING"))
            #expect(got.stdout.contains("proposal   PENDING"))
            #expect(got.stdout.contains("(in 11h59m") || got.stdout.contains("(in 12h0m"))
            #expect(got.stdout.contains("history"))

            let gotJSON = try runProbe(["get", id, "--json"] + at)
            let parsed = try Aftersales_V1_GetCaseResponse(jsonString: gotJSON.stdout)
            #expect(parsed.case.caseID == id)

            let list = try runProbe(["list", "--status", "proposal-pending"] + at)
            #expect(list.lines.count == 1 && list.stdout.contains(id))
            let none = try runProbe(["list", "--merchant", "nobody"] + at)
            #expect(none.stdout.contains("no cases"))

            let history = try runProbe(["history", id] + at)
            #expect(history.status == 0 && history.lines.count >= 2)

            let stats = try runProbe(["stats"] + at)
            #expect(stats.status == 0)
            #expect(stats.stdout.contains("cases") && stats.stdout.contains("CreateCase"))
            let statsJSON = try runProbe(["stats", "--json"] + at)
            #expect(try Aftersales_V1_GetStatsResponse(jsonString: statsJSON.stdout).casesTotal == 1)

            let snapshot = try runProbe(["snapshot"] + at)
            #expect(snapshot.status == 0 && snapshot.stdout.contains("snapshot at seq"))

            let methods = try runProbe(["methods"] + at)
            #expect(methods.lines.count == Method.allCases.count)
            #expect(methods.stderr.contains("served by the daemon"), "\(methods.stderr)")
        }
    }

    @Test("actions, generic call, and exit codes per status")
    func actionsAndErrors() async throws {
        try await withDaemon { daemon in
            let at = ["--endpoint", daemon.rpc]
            let created = try runProbe(["create", "--order", "o-2", "--consumer", "c-2", "--merchant", "m-2",
                                        "--category", "apparel", "--paid", "5000", "--json"] + at)
            let id = try Aftersales_V1_CreateCaseResponse(jsonString: created.stdout).case.caseID

            let offer = try runProbe(["merchant", "offer", id, "--merchant", "m-2", "--type", "refund-only", "--refund", "2000"] + at)
            #expect(offer.status == 0, "\(offer.stderr)")
            #expect(offer.stdout.contains("MERCHANT_OFFER_PENDING"))
            let wrong = try runProbe(["offer", "accept", id, "--consumer", "not-c-2"] + at)
            #expect(wrong.status == 10 + 7)
            #expect(wrong.stderr.hasPrefix("PERMISSION_DENIED: "))
            let accept = try runProbe(["offer", "accept", id, "--consumer", "c-2", "--json"] + at)
            #expect(accept.status == 0)
            #expect(try Aftersales_V1_RespondToOfferResponse(jsonString: accept.stdout).case.status == .refunded)
            let late = try runProbe(["cancel", id, "--consumer", "c-2"] + at)
            #expect(late.status == 10 + 9)
            #expect(late.stderr.hasPrefix("FAILED_PRECONDITION: "))

            let missing = try runProbe(["get", "AS9999999999"] + at)
            #expect(missing.status == 15)
            #expect(missing.stderr.hasPrefix("NOT_FOUND: "))

            let evaluate = try runProbe(["evaluate", id] + at)
            #expect(evaluate.status == 0 && evaluate.stdout.contains("judgement"))

            // The generic call: short and full names, JSON in and out.
            let call = try runProbe(["call", "GetCase", #"{"caseId":"\#(id)"}"#, "--json"] + at)
            #expect(call.status == 0)
            #expect(try Aftersales_V1_GetCaseResponse(jsonString: call.stdout).case.status == .refunded)
            let full = try runProbe(["call", "aftersales.v1.AdminService/Ping", #"{"payload":"aGk="}"#] + at)
            #expect(full.status == 0 && full.stdout.contains("aGk="))
            let badJSON = try runProbe(["call", "GetCase", "{not json"] + at)
            #expect(badJSON.status == 64)
            let badMethod = try runProbe(["call", "NoSuchMethod", "{}"] + at)
            #expect(badMethod.status == 64)
            let outOfRange = try runProbe(["call", "ReplayEvents", #"{"fromSeq":"999"}"#, "--json"] + at)
            #expect(outOfRange.status == 0)  // past the latest: an empty answer, not an error

            // The environment variable names the endpoint.
            let viaEnv = try runProbe(["ping", "--count", "1"], environment: ["AFTERSALES_ENDPOINT": daemon.rpc])
            #expect(viaEnv.status == 0)
        }
    }

    @Test("global options before or after the subcommand, as redis-cli and grpcurl take them")
    func globalOptionsEitherSide() async throws {
        try await withDaemon { daemon in
            let before = try await onThread { try runProbe(["--endpoint", daemon.rpc, "--json", "health"]) }
            #expect(before.status == 0 && before.stdout.contains("SERVING"), "\(before.stderr)")
            let after = try await onThread { try runProbe(["merchant", "agree", "AS0000000009", "--merchant", "m", "--endpoint=\(daemon.rpc)"]) }
            let mixed = try await onThread { try runProbe(["--endpoint=\(daemon.rpc)", "merchant", "agree", "AS0000000009", "--merchant", "m"]) }
            #expect(after.status == 15 && mixed.status == 15, "\(after.stderr) / \(mixed.stderr)")
        }
    }

    @Test("health: SERVING and exit 0; an unknown service exits 10 + NOT_FOUND")
    func health() async throws {
        try await withDaemon { daemon in
            let serving = try await onThread { try runProbe(["health", "--endpoint", daemon.rpc]) }
            #expect(serving.status == 0 && serving.stdout.contains("SERVING"), "\(serving.stderr)")
            let unknown = try await onThread { try runProbe(["health", "nope.Service", "--endpoint", daemon.rpc]) }
            #expect(unknown.status == 15, "\(unknown.stderr)")
        }
    }

    @Test("a daemon that does not answer: a clear message and exit 69, not a hang")
    func noAnswer() throws {
        let endpoint = "tcp://127.0.0.1:\(try freePort())"
        let start = ContinuousClock.now
        let run = try runProbe(["get", "AS0000000001", "--endpoint", endpoint, "--timeout", "300ms"], within: .seconds(10))
        #expect(run.status == 69)
        #expect(run.stderr.contains("no answer from \(endpoint) within 300ms"))
        #expect(ContinuousClock.now - start < .seconds(5))
        let usage = try runProbe(["get"])
        #expect(usage.status == 64)
    }

    @Test("watch prints the expiry notice, as lines and as JSON")
    func watchExpiry() async throws {
        try await withDaemon(proposalTTL: "500ms") { daemon in
            let client = try daemon.client()
            defer { client.close() }
            let from = try await client.getStats().lastEventSeq + 1
            let args = ["watch", "proposal.", "--from", "\(from)", "--count", "2",
                        "--endpoint", daemon.rpc, "--events-endpoint", daemon.pub]
            // On their own threads: a blocked cooperative thread could starve this test.
            async let human = onThread { try runProbe(args, within: .seconds(20)) }
            async let json = onThread { try runProbe(args + ["--json"], within: .seconds(20)) }
            try await Task.sleep(for: .milliseconds(300))
            let created = try await client.createCase(createRequest("o-w", damaged: true))
            let (lines, objects) = try await (human, json)
            #expect(lines.status == 0, "\(lines.stderr)")
            #expect(lines.lines.count == 2)
            #expect(lines.lines.first?.contains("proposal.issued") == true)
            #expect(lines.lines.last?.contains("proposal.expired") == true)
            #expect(lines.lines.last?.contains(created.case.caseID) == true)
            #expect(lines.lines.last?.contains("PROPOSAL_PENDING → AWAITING_MERCHANT_REVIEW") == true)
            #expect(objects.status == 0, "\(objects.stderr)")
            let events = try objects.lines.map { try EventEnvelope(jsonString: $0) }
            #expect(events.map(\.topic) == ["proposal.issued", "proposal.expired"])
            #expect(events.map(\.seq) == events.map(\.seq).sorted())
        }
    }
}
