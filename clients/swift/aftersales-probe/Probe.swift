import AfterSalesClient
import AfterSalesProto
import AfterSalesRPC
import ArgumentParser
import Foundation
import Histogram
import SwiftProtobuf

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
              64       usage error (bad flag, unknown command or method, JSON that
                       does not parse)
              69       no answer from the daemon within --timeout (EX_UNAVAILABLE)

            Shell completion: aftersales-probe --generate-completion-script bash|zsh|fish.
            """,
        version: version,
        subcommands: [
            Ping.self, Get.self, List.self, History.self,
            Create.self, Evidence.self, Logistics.self, Evaluate.self,
            ProposalCommand.self, MerchantCommand.self, OfferCommand.self,
            Escalate.self, Resolve.self, ReturnCommand.self, Cancel.self,
            Call.self, Methods.self, DescribeCommand.self, Watch.self, Stats.self, Slowlog.self,
            Health.self, Snapshot.self, Repl.self,
        ])

    /// What --version prints, in the daemon's style ("aftersalesd 0.1.0").
    static let version = "aftersales-probe \(aftersalesRelease)"

    /// The exit code for a failed call: 69 when the daemon never answered, else 10 + code.
    static func exitCode(for error: RPCError) -> Int32 {
        if error.isNoAnswer { return 69 }
        return 10 + Int32(error.code.rawValue)
    }

    static func main() async {
        do {
            try await execute(Array(CommandLine.arguments.dropFirst()))
        } catch {
            exit(withError: error)
        }
    }

    /// Parses `arguments` (global options may come before the subcommand) and runs the
    /// command they name; a mistyped subcommand is a usage error that suggests the
    /// nearest names.
    static func execute(_ arguments: [String]) async throws {
        let arguments = GlobalOptions.movedAfterSubcommand(arguments)
        if let unknown = unknownSubcommand(in: arguments) {
            let kind = (unknown.group + ["command"]).joined(separator: " ")
            throw ValidationError(unknownNameMessage(kind, unknown.word, choices: unknown.choices))
        }
        var command = try parseAsRoot(arguments)
        if var asyncCommand = command as? AsyncParsableCommand {
            try await asyncCommand.run()
        } else {
            try command.run()
        }
    }
}

// MARK: liveness and figures

struct Ping: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Round-trip times: min/p50/p99/max; --latency for a rolling view like redis-cli --latency.")
    @OptionGroup var global: GlobalOptions
    @Flag(help: "Ping until Ctrl-C (or --count): min, max and average in ms, refreshed in place on a terminal, a line a second otherwise.")
    var latency = false
    // Signed numbers take the next word unconditionally, so that `--count -1` gets the
    // rule below instead of "missing value" (argument-parser reads -1 as an option).
    @Option(parsing: .unconditional, help: "How many pings (default 5; with --latency, until Ctrl-C).") var count: Int?
    @Option(parsing: .unconditional, help: "Milliseconds between pings (default 100; 10 with --latency, as redis-cli).") var interval: Int?

    func validate() throws {
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
        if let interval, interval < 0 { throw ValidationError("--interval must not be negative") }
    }

    func run() async throws {
        if latency {
            try await global.run { client in
                try await monitorLatency(client, count: count, interval: .milliseconds(interval ?? 10), json: global.json)
            }
            return
        }
        let (pings, gapMs) = (count ?? 5, interval ?? 100)
        try await global.run { client in
            var histogram = Histogram<UInt64>(numberOfSignificantValueDigits: .three)
            var version = ""
            for index in 0..<pings {
                if index > 0, gapMs > 0 { try? await Task.sleep(for: .milliseconds(gapMs)) }
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
                print(#"{"endpoint":"\#(global.endpoint)","count":\#(pings),"minMs":\#(ms(lo)),"p50Ms":\#(ms(p50)),"p99Ms":\#(ms(p99)),"maxMs":\#(ms(hi)),"version":"\#(version)"}"#)
            } else {
                print("\(global.endpoint): \(pings) replies  min \(ms(lo)) ms  p50 \(ms(p50)) ms  p99 \(ms(p99)) ms  max \(ms(hi)) ms  (\(version))")
            }
        }
    }
}

struct Stats: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The daemon's figures as a table; with --interval, a line per interval like redis-cli --stat.")
    @OptionGroup var global: GlobalOptions
    @Option(help: "Print a line of figures (calls/s and errors/s from the change in the call counts) every interval, e.g. 1s or 500ms, until Ctrl-C or --count.")
    var interval: String?
    @Option(parsing: .unconditional, help: "With --interval: stop after this many lines.") var count: Int?

    func validate() throws {
        if let interval, (DurationText.milliseconds(interval) ?? 0) <= 0 {
            throw ValidationError("--interval '\(interval)' is not a positive duration like 500ms or 1s")
        }
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
        if count != nil, interval == nil { throw ValidationError("--count needs --interval (the rolling view)") }
    }

    func run() async throws {
        if let interval, let ms = DurationText.milliseconds(interval) {
            try await global.run { client in
                try await monitorStats(client, count: count, interval: .milliseconds(ms), json: global.json)
            }
            return
        }
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
                for entry in response.case.history { print(try global.jsonText(entry)) }
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
    @Option(parsing: .unconditional, help: "At most this many cases.") var limit: Int = 50

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
                print(try global.jsonText(response))
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
        discussion: """
            METHOD is a short (CreateCase) or full (aftersales.v1.CaseService/CreateCase) name; JSON uses \
            protobuf's JSON mapping; '-' reads it from stdin. --template prints a request to fill in \
            (`aftersales-probe describe METHOD` says what each field means).
            """)
    @OptionGroup var global: GlobalOptions
    @OptionGroup var step: StepOptions
    @Argument(help: "The method, e.g. GetCase.") var method: String
    @Argument(help: "The request as JSON (default {}).") var request: String?
    @Flag(help: "Print a JSON skeleton of the request instead of calling, like grpcurl's -msg-template.") var template = false

    func run() async throws {
        guard let resolved = Method.named(method) else {
            throw ValidationError(unknownNameMessage("method", method, choices: Method.allCases.map { String($0.methodName) })
                                  + " (`aftersales-probe methods` lists them)")
        }
        if template {
            guard request == nil else { throw ValidationError("--template prints a request to fill in; give it no JSON") }
            let skeleton = ContractDescriptors.compiledIn.template(for: resolved.requestType.protoMessageName)
            print(skeleton.text(pretty: !global.json))
            return
        }
        let payload = try requestPayload(for: resolved)
        try await global.run { client in
            let bytes = try await client.call(method: resolved, payload: payload, options: step.callOptions)
            let response = try resolved.responseType.init(serializedBytes: bytes)
            print(try global.jsonText(response, pretty: !global.json))
        }
    }

    /// The request, from JSON to protobuf bytes. JSON that does not parse is a usage error
    /// pointing at the line and column; JSON the request type does not take names the member.
    private func requestPayload(for method: Method) throws -> [UInt8] {
        var text = request ?? "{}"
        if text == "-" { text = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self) }
        let name = method.requestType.protoMessageName
        let parsed: JSONValue
        do {
            parsed = try JSONValue(parsing: text)
        } catch {
            printError("the JSON does not parse: \(error)")
            throw ExitCode.validationFailure
        }
        guard case .object = parsed else {
            printError("the JSON is not a valid \(name): a request is a JSON object, {...}")
            throw ExitCode.validationFailure
        }
        do {
            return try method.requestType.init(jsonString: text).serializedBytes()
        } catch {
            // SwiftProtobuf does not say where; decoding the members one at a time does.
            let member = parsed.members.first {
                (try? method.requestType.init(jsonString: JSONValue.object([$0]).text())) == nil
            }
            printError("the JSON is not a valid \(name)\(member.map { " (member \"\($0.key)\")" } ?? ""): \(explain(error))")
            throw ExitCode.validationFailure
        }
    }

    /// SwiftProtobuf's JSON decoding errors in words.
    private func explain(_ error: Error) -> String {
        switch error as? JSONDecodingError {
        case .unknownField(let field)?:
            "no field \"\(field)\" (`aftersales-probe describe \(method)` lists the fields)"
        case .unrecognizedEnumValue?: "not a value of the field's enum"
        case .schemaMismatch?, .malformedString?, .malformedBool?, .malformedNumber?, .malformedMap?:
            "a value of the wrong type for the field"
        case .numberRange?: "a number out of the field's range (or not a whole number)"
        case .conflictingOneOf?: "two fields of the same oneof"
        default: "\(error)"
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
    @Option(parsing: .unconditional, help: "Stop after this many announcements.") var count: Int?

    func run() async throws {
        try await global.run { client in
            // A cluster numbers announcements per shard: follow every member instead.
            let map = try? await client.getClusterMap(deadline: .seconds(2))
            if let map, map.shardCount > 1 {
                try await watchCluster(seeds: [global.endpoint] + map.members.map(\.rpcEndpoint))
            } else {
                try await watch(client)
            }
        }
    }

    /// `watch` on a cluster: every member's announcements, each once, through kills and moves.
    @_optimize(none)  // as `watch`: swiftc 6.3.1 crashes optimizing this async loop
    private func watchCluster(seeds: [String]) async throws {
        if from != nil {
            throw ValidationError("--from: a cluster numbers announcements per shard; watch without --from, or replay one shard with `call ReplayEvents '{\"shard\": N, \"fromSeq\": \"SEQ\"}'`")
        }
        let subscriber = ClusterSubscriber(seeds: seeds, topics: topics, configuration: try global.makeClient().configuration)
        defer { subscriber.close() }
        var seen = 0
        if count == 0 { return }
        for await item in subscriber {
            switch item {
            case .announcement(let event):
                print(global.json ? try line(for: event) : "[shard \(event.shard)] " + (try line(for: event)))
                seen += 1
                if let count, seen >= count { return }
            case .lost(let shard, let first, let last, let oldest):
                if global.json {
                    print(#"{"lost":{"shard":\#(shard),"fromSeq":"\#(first)","throughSeq":"\#(last)","oldestAvailableSeq":"\#(oldest)"}}"#)
                } else {
                    print("!! shard \(shard): announcements \(first)...\(last) are gone (oldest available \(oldest)): re-read the cases")
                }
            }
            fflush(nil)
        }
    }

    // swiftc 6.3.1 crashes (signal 11, "while splitting coroutine") optimizing this loop in
    // release builds; it waits on the network, so it loses nothing by not being optimized.
    @_optimize(none)
    private func watch(_ client: AfterSalesClient) async throws {
        do {
            let subscriber = EventSubscriber(client: client, endpoint: global.eventsEndpoint, topics: topics, from: from)
            defer { subscriber.close() }
            var seen = 0
            if count == 0 { return }
            for try await item in subscriber {
                switch item {
                case .announcement(let event):
                    print(try line(for: event))
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

    /// One announcement as printed.
    private func line(for event: EventEnvelope) throws -> String {
        global.json ? try global.jsonText(event) : describe(event)
    }
}

