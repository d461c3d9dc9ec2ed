import AfterSalesClient
import AfterSalesProto
import AfterSalesRPC
import ArgumentParser
import Foundation
import SwiftProtobuf

/// The options every command takes.
struct GlobalOptions: ParsableArguments {
    @Option(help: "The daemon's RPC endpoint (env AFTERSALES_ENDPOINT).")
    var endpoint: String = ProcessInfo.processInfo.environment["AFTERSALES_ENDPOINT"] ?? AfterSalesClient.defaultEndpoint

    @Option(help: "The daemon's announcement endpoint (env AFTERSALES_EVENTS_ENDPOINT).")
    var eventsEndpoint: String = ProcessInfo.processInfo.environment["AFTERSALES_EVENTS_ENDPOINT"] ?? EventSubscriber.defaultEndpoint

    @Option(help: "How long to wait for each answer, e.g. 500ms, 2s.")
    var timeout: String = "2s"

    @Option(parsing: .unconditional, help: "How many times a call is tried before giving up (mutating calls are resent with the same idempotency key).")
    var attempts: Int = 1

    @Flag(help: "Print the answer as JSON (protobuf's JSON mapping), one object per line.")
    var json = false

    @Flag(help: "With --json, and in call's answers: also print the fields at their default values (\"\", 0, false, [], the enum's zero value), as protobuf's always_print_fields_with_no_presence does.")
    var emitDefaults = false

    @Option(name: .customLong("server-key"), help: ArgumentHelp("CURVE: the daemon's public key file (env AFTERSALES_SERVER_KEY); with --key.", valueName: "server-key"))
    var serverKeyOption: String?

    @Option(name: .customLong("key"), help: ArgumentHelp("CURVE: this client's secret key file, mode 0600 (env AFTERSALES_KEY); its public key must be in the daemon's clients file.", valueName: "key"))
    var keyOption: String?

    /// --server-key, else AFTERSALES_SERVER_KEY.
    var serverKey: String? { serverKeyOption ?? ProcessInfo.processInfo.environment["AFTERSALES_SERVER_KEY"] }
    /// --key, else AFTERSALES_KEY.
    var key: String? { keyOption ?? ProcessInfo.processInfo.environment["AFTERSALES_KEY"] }

    mutating func validate() throws {
        guard let ms = DurationText.milliseconds(timeout), ms > 0 else {
            throw ValidationError("--timeout '\(timeout)' is not a positive duration like 500ms or 2s")
        }
        guard attempts >= 1 else { throw ValidationError("--attempts must be at least 1") }
        if (serverKey == nil) != (key == nil) {
            throw ValidationError("CURVE needs both --server-key (the daemon's .pub) and --key (this client's .key)")
        }
    }

    /// The CURVE credentials from --server-key and --key; nil for plaintext.
    func curve() throws -> AfterSalesClient.CurveCredentials? {
        guard let serverKey, let key else { return nil }
        do {
            return try AfterSalesClient.CurveCredentials(serverKeyFile: serverKey, secretKeyFile: key)
        } catch {
            throw ValidationError("\(error.message)")
        }
    }

    /// The global options given before the subcommand (`aftersales-probe --endpoint X ping`,
    /// as redis-cli and grpcurl take them), moved after it, where the parser reads them.
    static func movedAfterSubcommand(_ arguments: [String]) -> [String] {
        let takesValue: Set<String> = ["--endpoint", "--events-endpoint", "--timeout", "--attempts", "--server-key", "--key"]
        let flags: Set<String> = ["--json", "--emit-defaults"]
        var leading: [String] = []
        var index = arguments.startIndex
        while index < arguments.endIndex {
            let word = arguments[index]
            let name = String(word.split(separator: "=", maxSplits: 1).first ?? "")
            if flags.contains(word) || (takesValue.contains(name) && word.contains("=")) {
                leading.append(word)
                index += 1
            } else if takesValue.contains(word), index + 1 < arguments.endIndex {
                leading += [word, arguments[index + 1]]
                index += 2
            } else {
                break
            }
        }
        guard !leading.isEmpty, index < arguments.endIndex else { return arguments }
        // Before any "--" that ends the options, or at the end.
        var rest = Array(arguments[index...])
        let end = rest.firstIndex(of: "--") ?? rest.endIndex
        rest.insert(contentsOf: leading, at: end)
        return rest
    }

    var timeoutDuration: Duration { .milliseconds(DurationText.milliseconds(timeout) ?? 2000) }

    /// A client configured from these options (of the member at `target`, default --endpoint).
    func makeClient(_ target: String? = nil) throws -> AfterSalesClient {
        do {
            return try AfterSalesClient(
                endpoint: target ?? endpoint,
                configuration: .init(attemptTimeout: timeoutDuration, maxAttempts: attempts,
                                     metadata: ["caller": "aftersales-probe"], curve: try curve()))
        } catch let error as ValidationError {
            throw error
        } catch {
            throw ValidationError("\(error)")
        }
    }

    /// Runs `body` with a client, closed afterwards; errors are the caller's to handle.
    /// A cluster member that does not serve the call's shard answers with a redirect: the
    /// body runs again against the owner it names (a few hops at most), as `redis-cli -c`
    /// follows MOVED. Nothing was applied by the refused attempt, so running it again is safe.
    func withClient<T>(_ body: (AfterSalesClient) async throws -> T) async throws -> T {
        var target: String?
        for hop in 0..<4 {
            let client = try makeClient(target)
            defer { client.close() }
            do {
                return try await body(client)
            } catch let error as RPCError {
                guard hop < 3, let next = error.redirect?.rpcEndpoint, !next.isEmpty, next != (target ?? endpoint) else { throw error }
                if !json { FileHandle.standardError.write(Data("-> redirected to \(next) (shard \(error.redirect!.shard))\n".utf8)) }
                target = next
            }
        }
        preconditionFailure("the loop returns or throws")
    }

    /// Runs `body` with a client; an `RPCError` is printed as "CODE: message" on stderr and
    /// becomes the process's exit code (see `Probe.exitCode(for:)`).
    func run<T>(_ body: (AfterSalesClient) async throws -> T) async throws -> T {
        do {
            return try await withClient(body)
        } catch let error as RPCError {
            printError(error.description)
            throw ExitCode(Probe.exitCode(for: error))
        }
    }

    /// Prints `message` as JSON or, for people, as `human` describes it.
    func emit(_ message: some SwiftProtobuf.Message, _ human: () -> String) throws {
        if json {
            print(try jsonText(message))
        } else {
            print(human())
        }
    }

    /// `message` in protobuf's JSON mapping, with its default-valued fields under
    /// --emit-defaults; one line, or indented (in field order) for people.
    func jsonText(_ message: some SwiftProtobuf.Message, pretty: Bool = false) throws -> String {
        let compact = try message.jsonString()
        guard emitDefaults || pretty else { return compact }
        var value = try JSONValue(parsing: compact)
        if emitDefaults {
            value = ContractDescriptors.compiledIn.addingDefaults(to: value, messageName: type(of: message).protoMessageName)
        }
        return value.text(pretty: pretty)
    }
}

/// The options of every step that changes a case.
struct StepOptions: ParsableArguments {
    @Option(help: "Apply only if the case is at this version (0 = any).")
    var expectedVersion: UInt64 = 0

    @Option(help: "The idempotency key (default: a random one, reused by retries).")
    var idempotencyKey: String?

    var callOptions: CallOptions { CallOptions(idempotencyKey: idempotencyKey) }
}

extension GlobalOptions {
    /// One step on a case, as every action subcommand takes it: `request` sent as `rpc`
    /// with the step's options, the answer printed (as JSON, or as `human` describes it).
    func step<Request, Response>(_ rpc: RPC<Request, Response>, _ request: Request, _ step: StepOptions,
                                 _ human: @escaping (Response) -> String) async throws {
        try await run { client in
            let response = try await client.call(rpc, request, options: step.callOptions)
            try emit(response) { human(response) }
        }
    }
}

func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

// MARK: enum names

/// "PROPOSAL_PENDING" for `.proposalPending`: the proto name without its type prefix.
func protoName(_ value: some SwiftProtobuf.Enum) -> String {
    let swiftName = String(describing: value)
    var result = ""
    for character in swiftName {
        if character.isUppercase, !result.isEmpty { result.append("_") }
        result.append(contentsOf: character.uppercased())
    }
    return result
}

/// Parses "signed", "SIGNED", "delivery-state-signed" or "DELIVERY_STATE_SIGNED".
func parseProtoEnum<E: SwiftProtobuf.Enum & CaseIterable>(_ text: String, prefix: String) -> E? {
    var wanted = text.uppercased().replacingOccurrences(of: "-", with: "_")
    if wanted.hasPrefix(prefix + "_") { wanted.removeFirst(prefix.count + 1) }
    return E.allCases.first { protoName($0) == wanted && $0.rawValue != 0 }
}

func enumChoices<E: SwiftProtobuf.Enum & CaseIterable>(_ type: E.Type) -> String {
    E.allCases.filter { $0.rawValue != 0 }.map { protoName($0).lowercased().replacingOccurrences(of: "_", with: "-") }.joined(separator: ", ")
}

/// A proto enum as a command-line value.
struct ProtoEnumArgument<E: SwiftProtobuf.Enum & CaseIterable & Sendable>: ExpressibleByArgument, Sendable {
    let value: E
    init?(argument: String) {
        guard let value: E = parseProtoEnum(argument, prefix: E.typePrefix) else { return nil }
        self.value = value
    }
    static var allValueStrings: [String] {
        E.allCases.filter { $0.rawValue != 0 }.map { protoName($0).lowercased().replacingOccurrences(of: "_", with: "-") }
    }
    static var defaultCompletionKind: CompletionKind { .list(allValueStrings) }
    /// How --help shows a default: the same spelling the flag accepts.
    var defaultValueDescription: String {
        protoName(value).lowercased().replacingOccurrences(of: "_", with: "-")
    }
}

/// The prefix every value name of a proto enum carries ("CASE_STATUS" for CaseStatus).
extension SwiftProtobuf.Enum {
    static var typePrefix: String {
        let name = String(describing: Self.self).replacingOccurrences(of: "Aftersales_V1_", with: "")
        var result = ""
        for character in name {
            if character.isUppercase, !result.isEmpty { result.append("_") }
            result.append(contentsOf: character.uppercased())
        }
        return result
    }
}

typealias CaseStatusArgument = ProtoEnumArgument<Aftersales_V1_CaseStatus>
typealias CaseTypeArgument = ProtoEnumArgument<Aftersales_V1_CaseType>
typealias DeliveryArgument = ProtoEnumArgument<Aftersales_V1_DeliveryState>
typealias AnomalyArgument = ProtoEnumArgument<Aftersales_V1_LogisticsAnomaly>
typealias ShippingPayerArgument = ProtoEnumArgument<Aftersales_V1_ShippingPayer>
typealias RulingArgument = ProtoEnumArgument<Aftersales_V1_Ruling>
typealias EvidenceKindArgument = ProtoEnumArgument<Aftersales_V1_EvidenceKind>
typealias IssueTagArgument = ProtoEnumArgument<Aftersales_V1_IssueTag>

/// One piece of evidence on the command line: "KIND:TAG[,TAG...][:DESCRIPTION]",
/// e.g. "photo:defect,damage:seam torn".
struct EvidenceArgument: ExpressibleByArgument, Sendable {
    let evidence: Aftersales_V1_Evidence
    init?(argument: String) {
        let parts = argument.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
        guard let kind: Aftersales_V1_EvidenceKind = parseProtoEnum(parts[0], prefix: "EVIDENCE_KIND") else { return nil }
        var evidence = Aftersales_V1_Evidence()
        evidence.kind = kind
        if parts.count > 1, !parts[1].isEmpty {
            for tag in parts[1].split(separator: ",") {
                guard let value: Aftersales_V1_IssueTag = parseProtoEnum(String(tag), prefix: "ISSUE_TAG") else { return nil }
                evidence.tags.append(value)
            }
        }
        if parts.count > 2 { evidence.description_p = parts[2] }
        self.evidence = evidence
    }
}

// MARK: times

/// "2026-11-26T16:00:00.123Z" for milliseconds since the epoch.
func isoTime(_ ms: Int64) -> String {
    // Whole seconds through Date, milliseconds by integer arithmetic: a Double of
    // milliseconds can format 41.155 as 41.154, disagreeing with the daemon's own text.
    let (seconds, millis) = ms >= 0 ? (ms / 1000, ms % 1000) : ((ms - 999) / 1000, ((ms % 1000) + 1000) % 1000)
    let whole = Date(timeIntervalSince1970: Double(seconds)).formatted(Date.ISO8601FormatStyle())
    let digits = String(millis)
    return whole.dropLast() + "." + String(repeating: "0", count: 3 - digits.count) + digits + "Z"
}

/// "in 11h59m" / "3m12s ago" relative to now.
func relative(_ ms: Int64, now: Int64 = Int64(Date().timeIntervalSince1970 * 1000)) -> String {
    let delta = ms - now
    let text = compactDuration(abs(delta))
    return delta >= 0 ? "in \(text)" : "\(text) ago"
}

/// "11h59m", "3m12s", "850ms".
func compactDuration(_ ms: Int64) -> String {
    if ms < 1000 { return "\(ms)ms" }
    let seconds = ms / 1000
    let (d, h, m, s) = (seconds / 86_400, seconds % 86_400 / 3600, seconds % 3600 / 60, seconds % 60)
    if d > 0 { return "\(d)d\(h)h" }
    if h > 0 { return "\(h)h\(m)m" }
    if m > 0 { return "\(m)m\(s)s" }
    return "\(s)s"
}

/// Money in minor units as "199.00".
func money(_ minor: Int64) -> String {
    let sign = minor < 0 ? "-" : ""
    let value = abs(minor)
    let cents = value % 100
    return "\(sign)\(value / 100).\(cents < 10 ? "0" : "")\(cents)"
}
