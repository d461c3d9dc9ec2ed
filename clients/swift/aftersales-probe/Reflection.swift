import AfterSalesClient
import AfterSalesProto
import AfterSalesRPC
import ArgumentParser
import SwiftProtobuf

// What the daemon serves and how it is shaped, as grpcurl's `list` and `describe` show it,
// and its slow-call log, as Redis' SLOWLOG GET shows it.

/// `describe [NAME]`: the contract as proto source, like grpcurl describe.
struct DescribeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "describe",
        abstract: "A method, service, message or enum as proto source with its comments, like grpcurl describe.",
        discussion: """
            Without a name: every service and method. A method is shown with its request and response \
            and every message and enum they use, once each. The contract comes from the daemon \
            (AdminService/GetDescriptors), or from this probe's own copy when the daemon cannot give \
            it; stderr says which.
            """)
    @OptionGroup var global: GlobalOptions
    @Argument(help: "CreateCase, aftersales.v1.CaseService/CreateCase, CaseService, Case or aftersales.v1.Case.")
    var symbol: String?

    func run() async throws {
        let contract = ContractText(await global.contractDescriptors())
        guard let symbol else {
            print(contract.overview)
            return
        }
        let found = contract.symbols(named: symbol)
        guard let first = found.first else { throw ValidationError(contract.unknownSymbolMessage(symbol)) }
        guard found.count == 1 else {
            throw ValidationError("'\(symbol)' is ambiguous; it names \(found.map(\.fullName).joined(separator: ", "))")
        }
        print(contract.describe(first))
    }
}

/// `methods`: every method served, like grpcurl list.
struct Methods: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Every method the daemon serves, with its request and response types (ListServices, GetDescriptors).",
        discussion: "When the daemon cannot say, the methods compiled into this probe; stderr says which.")
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let rows: [MethodRow]
        do {
            rows = try await global.withClient { client in
                let served = try await client.listServices().services
                let descriptors = try ContractDescriptors(serializedSet: try await client.getDescriptors().fileDescriptorSet)
                return MethodRow.rows(of: served, in: descriptors)
            }
            printError("methods served by the daemon at \(global.endpoint)")
        } catch {
            printError("methods compiled into this probe (the daemon at \(global.endpoint) did not list its own: \(error))")
            rows = Method.allCases.map(MethodRow.init)
        }
        for row in rows { print(global.json ? row.json : row.line) }
    }
}

/// One line of `methods`: a method's full name, its types, and whether it changes state.
struct MethodRow {
    /// "aftersales.v1.CaseService/CreateCase".
    let fullName: String
    /// The request message's full name.
    let request: String
    /// The response message's full name.
    let response: String
    /// Whether the method changes state (the `mutating` method option).
    let isMutating: Bool

    /// The row for a method of the compiled-in table.
    init(_ method: Method) {
        fullName = method.fullName
        request = method.requestType.protoMessageName
        response = method.responseType.protoMessageName
        isMutating = method.isMutating
    }

    /// The methods of the `served` services, as `descriptors` describe them.
    static func rows(of served: [String], in descriptors: ContractDescriptors) -> [MethodRow] {
        descriptors.services.filter { served.contains($0.fullName) }.flatMap { service in
            service.proto.method.map { method in
                MethodRow(fullName: service.fullName + "/" + method.name, request: referencedName(method.inputType),
                          response: referencedName(method.outputType), isMutating: method.options.Aftersales_V1_mutating)
            }
        }
    }

    private init(fullName: String, request: String, response: String, isMutating: Bool) {
        (self.fullName, self.request, self.response, self.isMutating) = (fullName, request, response, isMutating)
    }

    /// For people: name, request → response, "(mutating)".
    var line: String {
        fullName.padding(toLength: 52, withPad: " ", startingAt: 0) + "\(request) → \(response)" + (isMutating ? "  (mutating)" : "")
    }

    /// One JSON object.
    var json: String {
        JSONValue.object([
            ("method", .string(fullName)), ("request", .string(request)), ("response", .string(response)),
            ("mutating", .bool(isMutating)),
        ]).text()
    }
}

/// `slowlog`: the daemon's slow calls, like Redis' SLOWLOG GET.
struct Slowlog: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The daemon's slowest recent calls, newest first, like Redis' SLOWLOG GET (AdminService/SlowCalls).")
    @OptionGroup var global: GlobalOptions
    @Option(help: "At most this many calls (0 = every one the daemon keeps).") var count: UInt32 = 10

    func run() async throws {
        try await global.run { client in
            let log = try await client.slowCalls(.with { $0.count = count })
            try global.emit(log) { describe(log) }
        }
    }
}

// MARK: the contract as proto source

/// A name `describe` can show.
enum ContractSymbol {
    /// A service, with its methods.
    case service(ContractDescriptors.Service)
    /// A method of a service.
    case method(ContractDescriptors.Service, Google_Protobuf_MethodDescriptorProto)
    /// A message, by full name.
    case message(String)
    /// An enum, by full name.
    case enumeration(String)

    /// The full name: "aftersales.v1.CaseService/CreateCase" for a method (as `call` takes it).
    var fullName: String {
        switch self {
        case .service(let service): service.fullName
        case .method(let service, let method): service.fullName + "/" + method.name
        case .message(let name), .enumeration(let name): name
        }
    }
}

/// Renders descriptors as grpcurl's describe does: proto source with the comments of proto/.
struct ContractText {
    /// The contract shown.
    let descriptors: ContractDescriptors

    /// Text for `descriptors`.
    init(_ descriptors: ContractDescriptors) { self.descriptors = descriptors }

    /// Every service and its methods, each with the first sentence of its comment.
    var overview: String {
        var lines: [String] = []
        for service in descriptors.services {
            lines.append(service.fullName)
            let width = service.proto.method.map(\.name.count).max() ?? 0
            for method in service.proto.method {
                let summary = firstSentence(descriptors.comment(for: service.fullName + "." + method.name))
                lines.append("  " + method.name.padding(toLength: width + 2, withPad: " ", startingAt: 0) + summary)
            }
        }
        return lines.joined(separator: "\n")
    }

    /// What `name` may mean: a method ("CreateCase", "CaseService/CreateCase", full with "/" or
    /// "."), a service, a message or an enum (full, or the end of the full name), any case.
    func symbols(named name: String) -> [ContractSymbol] {
        let wanted = referencedName(name).lowercased()
        func matches(_ fullName: String) -> Bool {
            let candidate = fullName.lowercased()
            return candidate == wanted || candidate.hasSuffix("." + wanted)
        }
        var found: [ContractSymbol] = []
        for service in descriptors.services {
            if matches(service.fullName) { found.append(.service(service)) }
            for method in service.proto.method {
                let full = service.fullName + "/" + method.name
                if matches(full) || matches(service.fullName + "." + method.name) || method.name.lowercased() == wanted {
                    found.append(.method(service, method))
                }
            }
        }
        found += descriptors.messages.keys.sorted().filter { matches($0) && descriptors.messages[$0]?.options.mapEntry == false }
            .map(ContractSymbol.message)
        found += descriptors.enums.keys.sorted().filter(matches).map(ContractSymbol.enumeration)
        return found
    }

    /// "unknown symbol 'CreatCase'; did you mean 'CreateCase'?", from the contract's own names.
    func unknownSymbolMessage(_ name: String) -> String {
        let own = descriptors.messages.keys.filter { !$0.hasPrefix("google.protobuf.") && descriptors.messages[$0]?.options.mapEntry == false }
            + descriptors.enums.keys.filter { !$0.hasPrefix("google.protobuf.") }
        let shortNames = descriptors.services.flatMap { [$0.fullName] + $0.proto.method.map(\.name) } + own
        let choices = Array(Set(shortNames.map { String($0.split(separator: ".").last ?? "") })).sorted()
        guard !closeMatches(for: name, in: choices).isEmpty else {
            return "unknown symbol '\(name)'; `aftersales-probe describe` lists the services and methods"
        }
        return unknownNameMessage("symbol", name, choices: choices)
    }

    /// `symbol` as proto source; a method with every message and enum it uses, once each.
    func describe(_ symbol: ContractSymbol) -> String {
        switch symbol {
        case .service(let service):
            var lines = ["\(service.fullName) is a service:"] + commentLines(service.fullName, indent: "")
            lines.append("service \(service.proto.name) {")
            for method in service.proto.method {
                lines += commentLines(service.fullName + "." + method.name, indent: "  ") + rpcLines(method, indent: "  ")
            }
            return (lines + ["}"]).joined(separator: "\n")
        case .method(let service, let method):
            let head = ["\(symbol.fullName) is a method:"] + commentLines(service.fullName + "." + method.name, indent: "")
                + rpcLines(method, indent: "")
            let used = typesUsed(from: [method.inputType, method.outputType].map(referencedName))
            return ([head.joined(separator: "\n")] + used.map(describe)).joined(separator: "\n\n")
        case .message(let name):
            guard let message = descriptors.messages[name] else { return name }
            var lines = ["\(name) is a message:"] + commentLines(name, indent: "") + ["message \(message.name) {"]
            for field in message.field {
                lines += commentLines(name + "." + field.name, indent: "  ")
                var line = "  \(fieldType(field)) \(field.name) = \(field.number);"
                if field.hasOneofIndex, !field.proto3Optional, Int(field.oneofIndex) < message.oneofDecl.count {
                    line += "  // in oneof \(message.oneofDecl[Int(field.oneofIndex)].name)"
                }
                lines.append(line)
            }
            return (lines + ["}"]).joined(separator: "\n")
        case .enumeration(let name):
            guard let item = descriptors.enums[name] else { return name }
            var lines = ["\(name) is an enum:"] + commentLines(name, indent: "") + ["enum \(item.name) {"]
            for value in item.value {
                lines += commentLines(name + "." + value.name, indent: "  ") + ["  \(value.name) = \(value.number);"]
            }
            return (lines + ["}"]).joined(separator: "\n")
        }
    }

    /// The messages and enums reachable from `roots` through fields, each once, roots first.
    private func typesUsed(from roots: [String]) -> [ContractSymbol] {
        var queue = roots
        var seen: Set<String> = []
        var used: [ContractSymbol] = []
        while !queue.isEmpty {
            let name = queue.removeFirst()
            guard seen.insert(name).inserted else { continue }
            if descriptors.enums[name] != nil { used.append(.enumeration(name)) }
            guard let message = descriptors.messages[name] else { continue }
            used.append(.message(name))
            for field in message.field {
                // A map's entry message is spelled map<K, V>: what it refers to is its value.
                let fields = descriptors.mapEntry(of: field)?.field ?? [field]
                queue += fields.compactMap(descriptors.referencedType)
            }
        }
        // Messages first, then the enums they use: the order a reader needs them.
        return used.filter { if case .message = $0 { true } else { false } }
            + used.filter { if case .enumeration = $0 { true } else { false } }
    }

    /// "repeated aftersales.v1.Evidence", "map<string, string>", "optional int64", "string".
    private func fieldType(_ field: Google_Protobuf_FieldDescriptorProto) -> String {
        if let entry = descriptors.mapEntry(of: field), entry.field.count == 2 {
            return "map<\(fieldType(entry.field[0])), \(fieldType(entry.field[1]))>"
        }
        // Scalar type names in Swift are the proto keywords ("string", "sfixed64").
        let type = descriptors.referencedType(of: field) ?? String(describing: field.type)
        if field.label == .repeated { return "repeated " + type }
        return field.proto3Optional ? "optional " + type : type
    }

    /// "rpc M ( Req ) returns ( Resp );", with our method options (mutating, roles) as proto writes them.
    private func rpcLines(_ method: Google_Protobuf_MethodDescriptorProto, indent: String) -> [String] {
        let (input, output) = (referencedName(method.inputType), referencedName(method.outputType))
        let head = "\(indent)rpc \(method.name) ( \(input) ) returns ( \(output) )"
        var options: [String] = []
        if method.options.Aftersales_V1_mutating {
            options.append("option (\(Aftersales_V1_Extensions_mutating.fieldName)) = true;")
        }
        for role in method.options.Aftersales_V1_roles {
            options.append("option (\(Aftersales_V1_Extensions_roles.fieldName)) = \(Aftersales_V1_Role.typePrefix)_\(protoName(role));")
        }
        guard !options.isEmpty else { return [head + ";"] }
        return [head + " {"] + options.map { indent + "  " + $0 } + [indent + "}"]
    }

    private func commentLines(_ symbol: String, indent: String) -> [String] {
        descriptors.comment(for: symbol).map { ($0.isEmpty ? "\(indent)//" : "\(indent)// \($0)") }
    }

    /// The comment up to its first full stop, on one line.
    private func firstSentence(_ comment: [String]) -> String {
        let text = comment.joined(separator: " ")
        guard let stop = text.range(of: ". ") else { return text }
        return String(text[..<stop.lowerBound]) + "."
    }
}
