import AfterSalesProto
import AfterSalesRPC
import Foundation
import Testing

@Suite("aftersales-probe describe, methods and slowlog: the contract and the slow calls from the daemon", .serialized, .timeLimit(.minutes(2)))
struct ProbeReflectionTests {
    /// What `describe CreateCase` must show, from either source: the method's comment, its
    /// types, a request field under its comment, and a message it uses.
    private func expectCreateCaseDescribed(_ run: ProbeRun) {
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.hasPrefix("aftersales.v1.CaseService/CreateCase is a method:\n// Opens a case"), "\(run.stdout)")
        #expect(run.stdout.contains("rpc CreateCase ( aftersales.v1.CreateCaseRequest ) returns ( aftersales.v1.CreateCaseResponse ) {"))
        #expect(run.stdout.contains("  option (aftersales.v1.mutating) = true;"))
        #expect(run.stdout.contains("aftersales.v1.CreateCaseRequest is a message:\nmessage CreateCaseRequest {"))
        #expect(run.stdout.contains("  // Required, at most 128 bytes.\n  string order_id = 1;"))
        #expect(run.stdout.contains("  // > 0.\n  int64 paid_amount = 8;"))
        #expect(run.stdout.contains("  repeated aftersales.v1.Evidence evidence = 2;"))
        // Each type used is described once.
        #expect(run.stdout.components(separatedBy: "aftersales.v1.Signals is a message:").count == 2)
        #expect(run.stdout.contains("aftersales.v1.CaseType is an enum:"))
    }

    @Test("describe without a daemon: the compiled-in contract, saying so")
    func describeOffline() async throws {
        let run = try await onThread { try runProbe(["describe", "CreateCase"] + unreachable()) }
        #expect(run.stderr.contains("descriptors compiled into this probe"), "\(run.stderr)")
        expectCreateCaseDescribed(run)
    }

    @Test("describe against the daemon: its own contract (GetDescriptors); names short or full; typos suggested")
    func describeFromDaemon() async throws {
        try await withDaemon { daemon in
            let at = ["--endpoint", daemon.rpc]
            let method = try await onThread { try runProbe(["describe", "CreateCase"] + at) }
            #expect(method.stderr.contains("descriptors from the daemon at \(daemon.rpc)"), "\(method.stderr)")
            expectCreateCaseDescribed(method)
            let full = try await onThread { try runProbe(["describe", "aftersales.v1.CaseService/CreateCase"] + at) }
            #expect(full.stdout == method.stdout)

            let short = try await onThread { try runProbe(["describe", "Case"] + at) }
            let qualified = try await onThread { try runProbe(["describe", "aftersales.v1.Case"] + at) }
            #expect(short.status == 0 && short.stdout == qualified.stdout)
            #expect(short.stdout.hasPrefix("aftersales.v1.Case is a message:\n// "))
            #expect(short.stdout.contains("  string case_id = 1;"), "\(short.stdout)")

            let enumeration = try await onThread { try runProbe(["describe", "CaseType"] + at) }
            #expect(enumeration.stdout.contains("enum CaseType {") && enumeration.stdout.contains("CASE_TYPE_REFUND_ONLY = 1;"))

            let overview = try await onThread { try runProbe(["describe"] + at) }
            #expect(overview.status == 0)
            for method in Method.allCases {
                #expect(overview.lines.contains { $0.hasPrefix("  \(method.methodName) ") }, "\(method) missing")
            }

            let typo = try await onThread { try runProbe(["describe", "CreatCase"] + at) }
            #expect(typo.status == 64 && typo.stderr.contains("unknown symbol 'CreatCase'; did you mean 'CreateCase'?"), "\(typo.stderr)")
        }
    }

    @Test("methods: the daemon's list (ListServices + GetDescriptors), else the compiled-in table, saying which")
    func methods() async throws {
        try await withDaemon { daemon in
            let served = try await onThread { try runProbe(["methods", "--json", "--endpoint", daemon.rpc]) }
            #expect(served.status == 0)
            #expect(served.stderr.contains("methods served by the daemon at \(daemon.rpc)"), "\(served.stderr)")
            let rows = try served.lines.map { try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
            #expect(rows.compactMap { $0["method"] as? String }.sorted() == Method.allCases.map(\.fullName).sorted())
            for row in rows {
                let method = try #require(Method(fullName: row["method"] as? String ?? ""))
                #expect(row["request"] as? String == method.requestType.protoMessageName)
                #expect(row["mutating"] as? Bool == method.isMutating, "\(method)")
            }
        }
        let compiled = try await onThread { try runProbe(["methods"] + unreachable()) }
        #expect(compiled.status == 0)
        #expect(compiled.stderr.contains("methods compiled into this probe"), "\(compiled.stderr)")
        #expect(compiled.lines.count == Method.allCases.count)
    }

    @Test("slowlog: the daemon's slow calls newest first, as lines and as JSON; off when the threshold is 0")
    func slowlog() async throws {
        try await withDaemon(extra: ["--slow-call-threshold", "1us"]) { daemon in
            let at = ["--endpoint", daemon.rpc]
            let client = try daemon.client()
            defer { client.close() }
            let created = try await client.createCase(createRequest("o-slow"))
            _ = try await client.getCase(.with { $0.caseID = created.case.caseID })

            let lines = try await onThread { try runProbe(["slowlog", "--count", "2"] + at) }
            #expect(lines.status == 0, "\(lines.stderr)")
            #expect(lines.lines.count == 4, "\(lines.stdout)")  // summary, header, two calls
            #expect(lines.lines[1].split(separator: " ") == ["id", "time", "duration", "method", "code", "case", "client", "caller"])
            #expect(lines.lines[2].contains("aftersales.v1.CaseService/GetCase") && lines.lines[2].contains(created.case.caseID))
            #expect(lines.lines[3].contains("aftersales.v1.CaseService/CreateCase"))

            let json = try await onThread { try runProbe(["slowlog", "--json"] + at) }
            let log = try Aftersales_V1_SlowCallsResponse(jsonString: json.stdout)
            #expect(log.thresholdUs == 1)
            #expect(log.calls.map(\.id) == log.calls.map(\.id).sorted(by: >))  // newest first
            #expect(log.calls.contains { $0.method == Method.createCase.fullName && $0.code == .ok })
        }
        try await withDaemon(extra: ["--slow-call-threshold", "0"]) { daemon in
            let off = try await onThread { try runProbe(["slowlog", "--endpoint", daemon.rpc]) }
            #expect(off.status == 0 && off.stdout.contains("the slow-call log is off"), "\(off.stdout)")
        }
    }
}
