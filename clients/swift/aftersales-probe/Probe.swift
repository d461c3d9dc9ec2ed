import AfterSalesClient
import AfterSalesProto
import AfterSalesRPC
import ArgumentParser
import Foundation
import Histogram

/// `aftersales-probe`: the engineer's tool for `aftersalesd`, in the spirit of redis-cli and
/// grpcurl.
@main
struct Probe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aftersales-probe",
        abstract: "Talk to aftersalesd: ping, read and change cases, call any method, watch announcements.",
        discussion: """
            Output is for people by default; --json prints protobuf's JSON mapping, one object \
            per line, for scripts.

            Exit codes:
              0        success
              10+N     the daemon answered with status code N, printed on stderr
                       as "CODE: message" (e.g. 15 NOT_FOUND, 16 ALREADY_EXISTS,
                       19 FAILED_PRECONDITION, 20 ABORTED, 21 OUT_OF_RANGE,
                       24 UNAVAILABLE)
              64       usage error (bad flag, unknown method, JSON that does not parse)
              69       no answer from the daemon within --timeout (EX_UNAVAILABLE)
            """,
        subcommands: [
            Ping.self, Get.self, List.self, History.self,
            Create.self, Evidence.self, Logistics.self, Evaluate.self,
            ProposalCommand.self, MerchantCommand.self, OfferCommand.self,
            Escalate.self, Resolve.self, ReturnCommand.self, Cancel.self,
            Call.self, Methods.self, Watch.self, Stats.self, Health.self, Snapshot.self,
        ])

    /// The exit code for a failed call: 69 when the daemon never answered, else 10 + code.
    static func exitCode(for error: RPCError) -> Int32 {
        if error.isNoAnswer { return 69 }
        return 10 + Int32(error.code.rawValue)
    }

    static func main() async {
        do {
            var command = try parseAsRoot(GlobalOptions.movedAfterSubcommand(Array(CommandLine.arguments.dropFirst())))
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}

// MARK: liveness and figures

struct Ping: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Round-trip times: min/p50/p99/max, like redis-cli --latency.")
    @OptionGroup var global: GlobalOptions
    @Option(help: "How many pings.") var count: Int = 5
    @Option(help: "Milliseconds between pings.") var interval: Int = 100

    func validate() throws {
        guard count >= 1 else { throw ValidationError("--count must be at least 1") }
        guard interval >= 0 else { throw ValidationError("--interval must not be negative") }
    }

    func run() async throws {
        try await global.run { client in
            var histogram = Histogram<UInt64>(numberOfSignificantValueDigits: .three)
            var version = ""
            for index in 0..<count {
                if index > 0, interval > 0 { try? await Task.sleep(for: .milliseconds(interval)) }
                let start = ContinuousClock.now
                var request = Aftersales_V1_PingRequest()
                request.payload = Data("probe \(index)".utf8)
                let response = try await client.ping(request)
                let elapsed = ContinuousClock.now - start
                version = response.version
                let (seconds, attoseconds) = elapsed.components
                _ = histogram.record(UInt64(max(1, seconds * 1_000_000 + attoseconds / 1_000_000_000_000)))
            }
            func ms(_ us: UInt64) -> String { String(format: "%.3f", Double(us) / 1000) }
            let (lo, p50, p99, hi) = (histogram.min, histogram.valueAtPercentile(50), histogram.valueAtPercentile(99), histogram.max)
            if global.json {
                print(#"{"endpoint":"\#(global.endpoint)","count":\#(count),"minMs":\#(ms(lo)),"p50Ms":\#(ms(p50)),"p99Ms":\#(ms(p99)),"maxMs":\#(ms(hi)),"version":"\#(version)"}"#)
            } else {
                print("\(global.endpoint): \(count) replies  min \(ms(lo)) ms  p50 \(ms(p50)) ms  p99 \(ms(p99)) ms  max \(ms(hi)) ms  (\(version))")
            }
        }
    }
}

struct Stats: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The daemon's figures as a table.")
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        try await global.run { client in
            let stats = try await client.getStats()
            try global.emit(stats) { describe(stats) }
        }
    }
}

struct Health: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Whether the daemon serves (AdminService/Check): exit 0 only when SERVING, 1 when it answers otherwise.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "A service, e.g. aftersales.v1.CaseService (none = the daemon).") var service: String = ""

    func run() async throws {
        let serving = try await global.run { client in
            let health = try await client.check(.with { $0.service = service })
            try global.emit(health) { health.reason.isEmpty ? protoName(health.status) : "\(protoName(health.status)): \(health.reason)" }
            return health.status == .serving
        }
        if !serving { throw ExitCode(1) }
    }
}

struct Snapshot: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Write a snapshot now; prints where and how big.")
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        try await global.run { client in
            let done = try await client.takeSnapshot()
            try global.emit(done) {
                "snapshot at seq \(done.seq): \(done.path)  \(done.bytes) bytes, \(done.cases) cases, \(done.durationMs) ms"
            }
        }
    }
}

// MARK: reading cases

struct Get: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "One case: key fields, deadline, proposal, offer and history.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The case id, e.g. AS0000000001.") var caseID: String

    func run() async throws {
        try await global.run { client in
            let response = try await client.getCase(.with { $0.caseID = caseID })
            try global.emit(response) { describe(response.case) }
        }
    }
}

struct History: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "A case's history (协商记录), one step a line.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The case id.") var caseID: String

    func run() async throws {
        try await global.run { client in
            let response = try await client.getCase(.with { $0.caseID = caseID })
            if global.json {
                for entry in response.case.history { print(try entry.jsonString()) }
            } else {
                print(response.case.history.map(describe).joined(separator: "\n"))
            }
        }
    }
}

struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Cases by status, merchant or consumer, in case id order.")
    @OptionGroup var global: GlobalOptions
    @Option(help: "Only this status (\(enumChoices(Aftersales_V1_CaseStatus.self))).") var status: CaseStatusArgument?
    @Option(help: "Only this merchant.") var merchant: String?
    @Option(help: "Only this consumer.") var consumer: String?
    @Option(help: "At most this many cases.") var limit: Int = 50

    func validate() throws { guard limit >= 1 else { throw ValidationError("--limit must be at least 1") } }

    func run() async throws {
        try await global.run { client in
            var request = Aftersales_V1_ListCasesRequest()
            request.status = status?.value ?? .unspecified
            request.merchantID = merchant ?? ""
            request.consumerID = consumer ?? ""
            var cases: [Aftersales_V1_Case] = []
            repeat {
                request.pageSize = UInt32(min(1000, limit - cases.count))
                let page = try await client.listCases(request)
                cases.append(contentsOf: page.cases.prefix(limit - cases.count))
                request.pageToken = page.nextPageToken
            } while !request.pageToken.isEmpty && cases.count < limit
            if global.json {
                var response = Aftersales_V1_ListCasesResponse()
                response.cases = cases
                response.nextPageToken = request.pageToken
                print(try response.jsonString())
            } else if cases.isEmpty {
                print("no cases")
            } else {
                print(cases.map(listLine).joined(separator: "\n"))
            }
        }
    }
}

// MARK: the generic call

struct Call: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Call any method with a JSON request; prints the JSON answer.",
        discussion: "METHOD is a short (CreateCase) or full (aftersales.v1.CaseService/CreateCase) name; JSON uses protobuf's JSON mapping; '-' reads it from stdin.")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var step: StepOptions
    @Argument(help: "The method, e.g. GetCase.") var method: String
    @Argument(help: "The request as JSON (default {}).") var request: String = "{}"

    func run() async throws {
        guard let resolved = Method.named(method) else {
            throw ValidationError("unknown method '\(method)'; `aftersales-probe methods` lists them")
        }
        var text = request
        if text == "-" { text = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self) }
        let payload: [UInt8]
        do {
            let message = try resolved.requestType.init(jsonString: text)
            payload = try message.serializedBytes()
        } catch {
            throw ValidationError("the JSON is not a valid \(resolved.requestType.protoMessageName): \(error)")
        }
        try await global.run { client in
            let bytes = try await client.call(method: resolved, payload: payload, options: step.callOptions)
            let response = try resolved.responseType.init(serializedBytes: bytes)
            let json = try response.jsonString()
            print(global.json ? json : prettyJSON(json))
        }
    }
}

/// Indented JSON for people (falls back to the compact form).
func prettyJSON(_ json: String) -> String {
    guard let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)),
          let data = try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
    else { return json }
    return String(decoding: data, as: UTF8.self)
}

struct Methods: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Every method of the contract, with its request and response types.")
    @OptionGroup var global: GlobalOptions

    func run() throws {
        for method in Method.allCases {
            if global.json {
                print(#"{"method":"\#(method.fullName)","request":"\#(method.requestType.protoMessageName)","response":"\#(method.responseType.protoMessageName)","mutating":\#(method.isMutating)}"#)
            } else {
                let name = method.fullName.padding(toLength: 52, withPad: " ", startingAt: 0)
                print("\(name)\(method.requestType.protoMessageName) → \(method.responseType.protoMessageName)\(method.isMutating ? "  (mutating)" : "")")
            }
        }
    }
}

// MARK: announcements

struct Watch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Tail announcements, one line each (seq, time, topic, case, status change), filling gaps.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "Topic prefixes, e.g. proposal. or case.created (none = all).") var topics: [String] = []
    @Option(help: "Start at this sequence number (earlier ones are replayed first).") var from: UInt64?
    @Option(help: "Stop after this many announcements.") var count: Int?

    func run() async throws {
        try await global.run { client in
            let subscriber = EventSubscriber(client: client, endpoint: global.eventsEndpoint, topics: topics, from: from)
            defer { subscriber.close() }
            var seen = 0
            if count == 0 { return }
            for try await item in subscriber {
                switch item {
                case .announcement(let event):
                    print(global.json ? try event.jsonString() : describe(event))
                    fflush(nil)  // a line as it happens, also into a pipe
                    seen += 1
                    if let count, seen >= count { return }
                case .lost(let first, let last, let oldest):
                    if global.json {
                        print(#"{"lost":{"fromSeq":"\#(first)","throughSeq":"\#(last)","oldestAvailableSeq":"\#(oldest)"}}"#)
                    } else {
                        print("!! announcements \(first)...\(last) are gone (oldest available \(oldest)): re-read the cases")
                    }
                    fflush(nil)
                case .rewound(let first, let last, let old, let new):
                    if global.json {
                        print(#"{"rewound":{"fromSeq":"\#(first)","throughSeq":"\#(last)","oldIncarnation":"\#(old)","newIncarnation":"\#(new)"}}"#)
                    } else {
                        print("!! the daemon's stream rewound: announcements \(first)...\(last) shown above are gone (incarnation \(old) → \(new)); the numbers are reused below: re-read the cases")
                    }
                    fflush(nil)
                case .disconnected(let reason):
                    if global.json {
                        let quoted = (try? JSONSerialization.data(withJSONObject: [reason], options: [])).map { String(decoding: $0.dropFirst().dropLast(), as: UTF8.self) } ?? "\"\""
                        print(#"{"disconnected":{"reason":\#(quoted)}}"#)
                    } else {
                        FileHandle.standardError.write(Data("-- no answer from the daemon (\(reason)); retrying\n".utf8))
                    }
                    fflush(nil)
                case .reconnected(let incarnation, let restarted):
                    if global.json {
                        print(#"{"reconnected":{"incarnation":"\#(incarnation)","restarted":\#(restarted)}}"#)
                    } else {
                        FileHandle.standardError.write(Data("-- \(restarted ? "daemon restarted" : "reconnected") (incarnation \(incarnation)); catching up\n".utf8))
                    }
                    fflush(nil)
                }
            }
        }
    }
}

