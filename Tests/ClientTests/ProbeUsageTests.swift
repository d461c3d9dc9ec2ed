import AfterSalesProto
import AfterSalesRPC
import Foundation
import SwiftProtobuf
import Testing

@Suite("aftersales-probe as a command line: suggestions, version, numbers, JSON in and out", .serialized, .timeLimit(.minutes(2)))
struct ProbeUsageTests {
    @Test("a mistyped command: exit 64 with the nearest names, or the list when none is near")
    func suggestions() async throws {
        let typo = try await onThread { try runProbe(["stast"]) }
        #expect(typo.status == 64)
        #expect(typo.stderr.contains("unknown command 'stast'; did you mean 'stats'?"), "\(typo.stderr)")

        // Global options before the subcommand are still moved behind it first.
        let after = try await onThread { try runProbe(["--endpoint", "tcp://127.0.0.1:1", "--json", "stast"]) }
        #expect(after.status == 64 && after.stderr.contains("did you mean 'stats'?"), "\(after.stderr)")

        let nested = try await onThread { try runProbe(["merchant", "agre", "AS0000000001"]) }
        #expect(nested.status == 64)
        #expect(nested.stderr.contains("unknown merchant command 'agre'; did you mean 'agree'?"), "\(nested.stderr)")

        let nothingNear = try await onThread { try runProbe(["zzzzzz"]) }
        #expect(nothingNear.status == 64)
        #expect(nothingNear.stderr.contains("the commands are: ping, get, list"), "\(nothingNear.stderr)")

        let method = try await onThread { try runProbe(["call", "GetCas", "{}"] + unreachable()) }
        #expect(method.status == 64 && method.stderr.contains("did you mean 'GetCase'?"), "\(method.stderr)")
    }

    @Test("--version prints the probe's version in the daemon's style, the same release")
    func version() async throws {
        let probe = try await onThread { try runProbe(["--version"]) }
        #expect(probe.status == 0)
        let daemon = try await onThread { try outputOf(productPath("aftersalesd"), ["--version"]) }
        let release = try #require(daemon.split(separator: " ").last)
        #expect(probe.stdout == "aftersales-probe \(release)\n")
    }

    @Test("signed options take negative numbers: the daemon, not the parser, judges them")
    func negativeNumbers() async throws {
        try await withDaemon { daemon in
            let at = ["--endpoint", daemon.rpc]
            let negative = try await onThread {
                try runProbe(["create", "--order", "o-n", "--consumer", "c", "--merchant", "m", "--category", "apparel",
                              "--paid", "-5"] + at)
            }
            #expect(negative.status == 10 + 3, "\(negative.stderr)")  // INVALID_ARGUMENT from the daemon
            #expect(negative.stderr.hasPrefix("INVALID_ARGUMENT: paid_amount"), "\(negative.stderr)")

            // The parser's own rule, not "missing value".
            let count = try await onThread { try runProbe(["ping", "--count", "-1"] + at) }
            #expect(count.status == 64 && count.stderr.contains("--count must be at least 1"), "\(count.stderr)")
        }
    }

    @Test("malformed JSON for call: exit 64 naming line and column, with the line and a caret")
    func jsonErrorPosition() async throws {
        let text = "{\n  \"caseId\": \"AS1\" \"x\"}"
        let run = try await onThread { try runProbe(["call", "GetCase", text] + unreachable()) }
        #expect(run.status == 64)  // refused before any call: not 69
        #expect(run.stderr.contains("line 2, column 19: expected ',' or '}' after an object member"), "\(run.stderr)")
        let lines = run.stderr.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let snippet = try #require(lines.firstIndex { $0.contains(#""caseId": "AS1" "x"}"#) })
        let caret = try #require(lines[snippet + 1].firstIndex(of: "^"))
        let column = lines[snippet + 1].distance(from: lines[snippet + 1].startIndex, to: caret)
        #expect(Array(lines[snippet])[column] == "\"" && Array(lines[snippet])[column + 1] == "x", "\(run.stderr)")

        let truncated = try await onThread { try runProbe(["call", "GetCase", #"{"caseId": "AS1"#] + unreachable()) }
        #expect(truncated.status == 64 && truncated.stderr.contains("line 1, column 16: the text ends inside a string"), "\(truncated.stderr)")

        // JSON that parses but does not fit the request names the member.
        let wrongType = try await onThread { try runProbe(["call", "GetCase", #"{"caseId": 5}"#] + unreachable()) }
        #expect(wrongType.status == 64 && wrongType.stderr.contains(#"(member "caseId")"#), "\(wrongType.stderr)")
        let unknown = try await onThread { try runProbe(["call", "GetCase", #"{"caseID": "AS1"}"#] + unreachable()) }
        #expect(unknown.status == 64 && unknown.stderr.contains(#"no field "caseID""#), "\(unknown.stderr)")
    }

    @Test("--json --emit-defaults prints the default-valued fields --json leaves out")
    func emitDefaults() async throws {
        try await withDaemon { daemon in
            let at = ["--endpoint", daemon.rpc]
            let plain = try await onThread { try runProbe(["health", "--json"] + at) }
            let full = try await onThread { try runProbe(["--json", "--emit-defaults", "health"] + at) }
            #expect(plain.status == 0 && full.status == 0, "\(full.stderr)")
            #expect(!plain.stdout.contains(#""reason""#))
            #expect(full.stdout.contains(#""reason":"""#), "\(full.stdout)")
            #expect(try Aftersales_V1_CheckResponse(jsonString: full.stdout) == Aftersales_V1_CheckResponse(jsonString: plain.stdout))

            let empty = try await onThread { try runProbe(["list", "--merchant", "nobody", "--json", "--emit-defaults"] + at) }
            #expect(empty.stdout.contains(#""cases":[]"#), "\(empty.stdout)")

            // A reason with quotes, a line break, a tab, a control character and CJK: the
            // re-printed JSON must keep it exactly.
            let reason = "a \"quoted\"\nline\t中文 \u{1}"
            let created = try await onThread {
                try runProbe(["create", "--order", "o-d", "--consumer", "c", "--merchant", "m", "--category", "apparel",
                              "--paid", "500", "--reason", reason, "--json"] + at)
            }
            let id = try Aftersales_V1_CreateCaseResponse(jsonString: created.stdout).case.caseID
            let got = try await onThread { try runProbe(["get", id, "--json"] + at) }
            let gotAll = try await onThread { try runProbe(["get", id, "--json", "--emit-defaults"] + at) }
            #expect(!got.stdout.contains("closeReason"))
            // Enums at their zero value by name, 64-bit zeros as strings, nested messages too.
            #expect(gotAll.stdout.contains(#""closeReason":"CLOSE_REASON_UNSPECIFIED""#), "\(gotAll.stdout)")
            #expect(gotAll.stdout.contains(#""pausedReviewRemainingMs":"0""#))
            #expect(gotAll.stdout.contains(#""merchantViolations90d":0"#))
            #expect(try Aftersales_V1_GetCaseResponse(jsonString: gotAll.stdout) == Aftersales_V1_GetCaseResponse(jsonString: got.stdout))
            #expect(try Aftersales_V1_GetCaseResponse(jsonString: gotAll.stdout).case.reason == reason)

            // call's indented answer, in field order, is the same message too.
            let pretty = try await onThread { try runProbe(["call", "GetCase", #"{"caseId":"\#(id)"}"#] + at) }
            #expect(pretty.stdout.hasPrefix("{\n  \"case\": {\n    \"caseId\": \"\(id)\""), "\(pretty.stdout)")
            #expect(try Aftersales_V1_GetCaseResponse(jsonString: pretty.stdout) == Aftersales_V1_GetCaseResponse(jsonString: got.stdout))
        }
    }

    @Test("call --template: a request skeleton that parses back into the request, for every method")
    func templates() async throws {
        let run = try await onThread { try runProbe(["call", "CreateCase", "--template"]) }
        #expect(run.status == 0, "\(run.stderr)")
        let request = try Aftersales_V1_CreateCaseRequest(jsonString: run.stdout)
        #expect(request.type == .refundOnly)  // the first value after UNSPECIFIED
        #expect(request.signals.evidence.count == 1 && request.signals.evidence[0].tags == [.defect])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        #expect(Set(object.keys) == ["orderId", "orderLineId", "consumerId", "merchantId", "category", "type", "delivery",
                                     "paidAmount", "refundAmount", "reason", "signals"])
        #expect(object["paidAmount"] as? String == "0")
        // Indented in field order for people.
        #expect(run.stdout.hasPrefix("{\n  \"orderId\": \"\",\n  \"orderLineId\""), "\(run.stdout)")

        for method in Method.allCases {
            let template = try await onThread { try runProbe(["call", method.fullName, "--template", "--json"]) }
            #expect(template.status == 0 && template.lines.count == 1, "\(method): \(template.stderr)")
            #expect(throws: Never.self, "\(method)") { _ = try method.requestType.init(jsonString: template.stdout) }
        }
    }

    @Test("repl: each line a command, with the repl's options; errors come back as text")
    func repl() async throws {
        try await withDaemon { daemon in
            let probe = try RunningProbe(["repl", "--endpoint", daemon.rpc], input: "ping --count 1\nstast\nget AS0000000404\nhistory\nquit\n")
            let run = try await onThread { try probe.finish() }
            #expect(run.status == 0, "\(run.stderr)")
            #expect(run.stdout.contains("1 replies"), "\(run.stdout)")
            #expect(run.stderr.contains("did you mean 'stats'?"))
            #expect(run.stderr.contains("NOT_FOUND: ") && run.stderr.contains("(exit 15)"), "\(run.stderr)")
            #expect(run.stdout.contains("1  ping --count 1\n2  stast\n3  get AS0000000404\n4  history"), "\(run.stdout)")
        }
    }
}

/// Runs a program to completion and returns its standard output, trimmed.
private func outputOf(_ path: String, _ arguments: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    let output = Pipe()
    process.standardOutput = output
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
}
