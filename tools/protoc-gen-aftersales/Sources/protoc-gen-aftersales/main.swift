// protoc-gen-aftersales: the services of proto/ become Swift, so that a method, whether it
// changes state and who may call it are written once, in the .proto.
//
//   protoc --plugin=protoc-gen-aftersales=PATH --aftersales_out=ROOT -I proto proto/…/*.proto
//
// writes, relative to ROOT (the repository):
//   Sources/AfterSalesRPC/Methods.generated.swift                 the `Method` table and `RPCs`
//   clients/swift/AfterSalesClient/AfterSalesClient+RPCs.generated.swift  one typed method per RPC
//   daemon/Sources/AfterSalesDaemon/CaseWireFields.generated.swift  the field numbers of
//       case.proto's messages and of the mutating requests, with read skeletons, for the
//       daemon's direct codec
import Foundation
import SwiftProtobuf
import SwiftProtobufPluginLibrary

/// A method as the generated code needs it.
struct RPCMethod {
    let service: String          // aftersales.v1.CaseService
    let name: String             // CreateCase
    let request: String          // Aftersales_V1_CreateCaseRequest
    let response: String         // Aftersales_V1_CreateCaseResponse
    let mutating: Bool
    let roles: [String]          // consumerGateway, …
    let summary: String          // the first sentence of the rpc's comment

    var fullName: String { "\(service)/\(name)" }
    var caseName: String { name.prefix(1).lowercased() + name.dropFirst() }
}

/// Field numbers of the extensions in options.proto (`mutating`, `roles`). The plugin reads
/// them from the options' unknown fields: it is built before the Swift of options.proto.
let mutatingField: UInt64 = 51001
let rolesField: UInt64 = 51002

struct Generator: CodeGenerator {
    var supportedFeatures: [Google_Protobuf_Compiler_CodeGeneratorResponse.Feature] { [.proto3Optional] }

    func generate(files: [FileDescriptor], parameter: any CodeGeneratorParameter,
                  protoCompilerContext: any ProtoCompilerContext, generatorOutputs: any GeneratorOutputs) throws {
        let namer = SwiftProtobufNamer()
        var methods: [RPCMethod] = []
        // The requests of the state-changing methods: the daemon reads them straight off the wire.
        var mutatingRequests: [Descriptor] = []
        var roleNames: [Int: String] = [:]
        for file in files {
            for e in file.enums where e.fullName == "aftersales.v1.Role" {
                for value in e.values where value.number != 0 {
                    roleNames[Int(value.number)] = camelCase(String(value.name.dropFirst("ROLE_".count)))
                }
            }
        }
        for file in files {
            for service in file.services {
                for method in service.methods {
                    let (mutating, roleNumbers) = try options(of: method)
                    if mutating, !mutatingRequests.contains(where: { $0 === method.inputType }) {
                        mutatingRequests.append(method.inputType)
                    }
                    let roles = try roleNumbers.map { number -> String in
                        guard let name = roleNames[number] else { throw GenerationError.unknownRole(method.fullName, number) }
                        return name
                    }
                    methods.append(RPCMethod(
                        service: service.fullName, name: method.name,
                        request: namer.fullName(message: method.inputType), response: namer.fullName(message: method.outputType),
                        mutating: mutating, roles: roles, summary: summary(method.sourceCodeInfoLocation?.leadingComments ?? "")))
                }
            }
        }
        let roles = roleNames.sorted { $0.key < $1.key }.map(\.value)
        try generatorOutputs.add(fileName: "Sources/AfterSalesRPC/Methods.generated.swift", contents: methodTable(methods, roles: roles))
        try generatorOutputs.add(fileName: "clients/swift/AfterSalesClient/AfterSalesClient+RPCs.generated.swift", contents: clientMethods(methods))
        if let caseFile = files.first(where: { $0.name == "aftersales/v1/case.proto" }) {
            // The other messages the daemon writes by hand (envelopes, journal records).
            let written = files.flatMap(\.messages).filter { handWrittenMessages.contains($0.fullName) }
            try generatorOutputs.add(fileName: "daemon/Sources/AfterSalesDaemon/CaseWireFields.generated.swift",
                                     contents: fieldNumbers(caseFile, alsoFor: written, requests: mutatingRequests))
        }
    }

    /// `mutating` and `roles` from the method's options.
    func options(of method: MethodDescriptor) throws -> (Bool, [Int]) {
        var mutating = false
        var roles: [Int] = []
        var bytes = [UInt8](method.options.unknownFields.data)[...]
        while !bytes.isEmpty {
            let key = try varint(&bytes)
            switch (key >> 3, key & 7) {
            case (mutatingField, 0): mutating = try varint(&bytes) != 0
            case (rolesField, 0): roles.append(Int(try varint(&bytes)))
            case (rolesField, 2):
                let length = Int(try varint(&bytes))
                var packed = bytes.prefix(length)
                bytes = bytes.dropFirst(length)
                while !packed.isEmpty { roles.append(Int(try varint(&packed))) }
            case (_, 0): _ = try varint(&bytes)
            case (_, 1): bytes = bytes.dropFirst(8)
            case (_, 2): bytes = bytes.dropFirst(Int(try varint(&bytes)))
            case (_, 5): bytes = bytes.dropFirst(4)
            default: throw GenerationError.badOptions(method.fullName)
            }
        }
        return (mutating, roles)
    }
}

enum GenerationError: Error, CustomStringConvertible {
    case unknownRole(String, Int)
    case badOptions(String)
    case truncated

    var description: String {
        switch self {
        case .unknownRole(let method, let number): "\(method): role \(number) is not a value of aftersales.v1.Role"
        case .badOptions(let method): "\(method): options that do not parse"
        case .truncated: "truncated varint in method options"
        }
    }
}

func varint(_ bytes: inout ArraySlice<UInt8>) throws -> UInt64 {
    var value: UInt64 = 0
    var shift: UInt64 = 0
    while let byte = bytes.popFirst() {
        value |= UInt64(byte & 0x7f) << shift
        if byte < 0x80 { return value }
        shift += 7
        if shift > 63 { break }
    }
    throw GenerationError.truncated
}

/// CONSUMER_GATEWAY → consumerGateway.
func camelCase(_ constant: String) -> String {
    let words = constant.lowercased().split(separator: "_")
    return (words.first.map(String.init) ?? "") + words.dropFirst().map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined()
}

/// The first sentence of a comment, on one line, without the status-code lists after it.
func summary(_ comments: String) -> String {
    let text = comments.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: " ")
    guard let end = text.firstRange(of: ". ") else { return text.hasSuffix(".") ? text : text + "." }
    return String(text[..<end.lowerBound]) + "."
}

let header = """
    // Generated by scripts/generate-proto (tools/protoc-gen-aftersales) from proto/.
    // Do not edit: change the .proto and regenerate.

    """

func methodTable(_ methods: [RPCMethod], roles: [String]) -> String {
    var out = header + """
        import AfterSalesProto
        import SwiftProtobuf

        /// Every RPC of the contract, by its gRPC-style full name on the wire.
        public enum Method: String, CaseIterable, Sendable {

        """
    for m in methods {
        out += "    /// \(m.summary)\n"
        out += "    case \(m.caseName) = \"\(m.fullName)\"\n"
    }
    out += """
        }

        /// The calling services' roles (`aftersales.v1.Role`).
        public enum Role: String, CaseIterable, Sendable {

        """
    for role in roles {
        out += "    case \(role) = \"\(role.map { $0.isUppercase ? "-" + $0.lowercased() : String($0) }.joined())\"\n"
    }
    out += """
        }

        extension Method {
            /// Whether the call changes state (journaled, durable before its answer, honours
            /// idempotency keys): the method's `(mutating)` option.
            public var isMutating: Bool {
                switch self {

        """
    let mutating = methods.filter(\.mutating).map { "." + $0.caseName }
    out += "        case \(mutating.joined(separator: ", ")): true\n"
    out += "        default: false\n        }\n    }\n\n"
    out += "    /// The roles that may make the call: the method's `(roles)` option.\n"
    out += "    public var roles: Set<Role> {\n        switch self {\n"
    for m in methods {
        out += "        case .\(m.caseName): [\(m.roles.map { "." + $0 }.joined(separator: ", "))]\n"
    }
    out += "        }\n    }\n\n"
    out += "    /// The request message type.\n    public var requestType: any SwiftProtobuf.Message.Type {\n        switch self {\n"
    for m in methods { out += "        case .\(m.caseName): \(m.request).self\n" }
    out += "        }\n    }\n\n"
    out += "    /// The response message type.\n    public var responseType: any SwiftProtobuf.Message.Type {\n        switch self {\n"
    for m in methods { out += "        case .\(m.caseName): \(m.response).self\n" }
    out += "        }\n    }\n}\n\n"
    out += "/// The typed form of every method, so a client cannot pair a request with the wrong method.\n"
    out += "public enum RPCs {\n"
    for m in methods {
        out += "    public static let \(m.caseName) = RPC<\(m.request), \(m.response)>(.\(m.caseName))\n"
    }
    out += "}\n"
    return out
}

func clientMethods(_ methods: [RPCMethod]) -> String {
    var out = header + """
        import AfterSalesProto
        import AfterSalesRPC

        extension AfterSalesClient {

        """
    for (i, m) in methods.enumerated() {
        if i > 0 { out += "\n" }
        out += """
                /// \(m.summary) `deadline` overrides `options.deadline`.
                public func \(m.caseName)(_ request: \(m.request) = \(m.request)(), deadline: Duration? = nil, options: CallOptions = CallOptions()) async throws(RPCError) -> \(m.response) {
                    try await call(RPCs.\(m.caseName), request, options: options.with(deadline: deadline))
                }

            """
    }
    out += "}\n\nextension AfterSalesClient.Blocking {\n"
    for (i, m) in methods.enumerated() {
        if i > 0 { out += "\n" }
        out += """
                /// \(m.summary) Blocks until the answer.
                public func \(m.caseName)(_ request: \(m.request) = \(m.request)(), deadline: Duration? = nil, options: CallOptions = CallOptions()) throws(RPCError) -> \(m.response) {
                    try client.callSync(RPCs.\(m.caseName), request, options: options.with(deadline: deadline))
                }

            """
    }
    out += "}\n"
    return out
}

/// Messages outside case.proto that the daemon writes with `ProtoWriter` (replies, announcements,
/// journal records), so their field numbers come from here too.
let handWrittenMessages: Set<String> = [
    "aftersales.v1.ResponseEnvelope", "aftersales.v1.GetCaseResponse", "aftersales.v1.EventEnvelope",
    "aftersales.storage.v1.JournalEntry", "aftersales.storage.v1.IdempotentAnswer",
]

/// One enum of field numbers per message of `file`, of `others` and of `requests`: the direct
/// codec names a field by these, so a renumbered or removed field is a compile error there,
/// not silent bytes. `Case` and the `requests` also get read skeletons.
func fieldNumbers(_ file: FileDescriptor, alsoFor others: [Descriptor], requests: [Descriptor]) -> String {
    var out = header + """
        import AfterSalesRPC

        /// A message's field numbers, as the direct codec reads and writes them.
        protocol WireField: RawRepresentable where RawValue == UInt64 {}

        /// A message as the direct codec reads it: wire-level fields, merged as protobuf does.
        protocol WireMessage {
            /// The protobuf full name, for messages that say what did not parse.
            static var messageName: String { get }
            init()
            /// Reads the message's fields from `r` into this value.
            mutating func merge(_ r: inout WireReader) throws(CaseWireDecoder.Failure)
        }

        """
    func emit(_ message: Descriptor) {
        out += "\n/// The fields of `\(message.fullName)`.\n"
        out += "enum \(message.name)Field: UInt64, WireField {\n"
        for field in message.fields {
            let name = NamingUtils.toLowerCamelCase(field.name)
            // A field named like a Swift keyword (`case`) is written in backticks.
            let swiftName = ["case", "default", "enum", "struct", "protocol", "func", "var", "let"].contains(name) ? "`\(name)`" : name
            out += "    case \(swiftName) = \(field.number)\n"
        }
        out += "}\n"
        for nested in message.messages where !nested.isMapEntry { emit(nested) }
    }
    for message in file.messages { emit(message) }
    for message in others { emit(message) }
    for message in requests { emit(message) }
    if let root = file.messages.first(where: { $0.name == "Case" }) { out += readSkeletons(from: [root] + requests) }
    return out
}

/// For each root (`Case`, the mutating requests) and every message it holds, each once: a
/// struct with one stored property per field
/// (wire-level types: enums as their numbers) and the `merge` loop that reads it as
/// SwiftProtobuf does — fields in any order, a known field with the wrong wire type
/// skipped as unknown, repeated enums packed or not, a message seen twice merged, the last
/// scalar winning. The daemon writes only `build()`, the mapping to the engine's types.
func readSkeletons(from roots: [Descriptor]) -> String {
    var ordered: [Descriptor] = []
    func visit(_ message: Descriptor) {
        guard !ordered.contains(where: { $0 === message }) else { return }
        ordered.append(message)
        for field in message.fields where field.type == .message { visit(field.messageType) }
    }
    roots.forEach(visit)
    var out = ""
    for message in ordered {
        let name = message.name
        out += "\n/// `\(message.fullName)` as read from the wire (the daemon builds the engine's value from it).\n"
        out += "struct \(name)Wire: WireMessage {\n"
        out += "    static let messageName = \"\(message.fullName)\"\n"
        var cases: [String] = []
        for field in message.fields {
            let property = NamingUtils.toLowerCamelCase(field.name)
            let caseName = ".\(property)?"
            let repeated = field.isRepeated
            switch field.type {
            case .message:
                let sub = "\(field.messageType.name)Wire"
                if repeated {
                    out += "    var \(property): [\(sub)] = []\n"
                    cases.append("case \(caseName):\n                guard try r.accepts(field, wt, 2) else { continue }\n                var m = try r.message(), item = \(sub)()\n                try item.merge(&m)\n                \(property).append(item)")
                } else {
                    out += "    var \(property): \(sub)?\n"
                    cases.append("case \(caseName):\n                guard try r.accepts(field, wt, 2) else { continue }\n                var m = try r.message(), item = \(property) ?? \(sub)()\n                try item.merge(&m)\n                \(property) = item")
                }
            case .enum:
                if repeated {
                    out += "    var \(property): [Int] = []\n"
                    cases.append("case \(caseName): if try r.accepts(field, wt, 2, packable: true) { try r.enumNumbers(wt, into: &\(property)) }")
                } else {
                    out += "    var \(property) = 0\n"
                    cases.append("case \(caseName): if try r.accepts(field, wt, 0) { \(property) = try r.enumNumber() }")
                }
            default:
                let (swiftType, initial, wireType, read): (String, String, Int, String)
                switch field.type {
                case .string: (swiftType, initial, wireType, read) = ("String", "\"\"", 2, "try r.string()")
                case .int64: (swiftType, initial, wireType, read) = ("Int64", "0", 0, "try r.int64()")
                case .uint64: (swiftType, initial, wireType, read) = ("UInt64", "0", 0, "try r.varint()")
                case .int32: (swiftType, initial, wireType, read) = ("Int32", "0", 0, "Int32(truncatingIfNeeded: try r.int64())")
                case .uint32: (swiftType, initial, wireType, read) = ("UInt32", "0", 0, "try r.uint32()")
                case .bool: (swiftType, initial, wireType, read) = ("Bool", "false", 0, "try r.varint() != 0")
                default: fatalError("\(message.fullName).\(field.name): type \(field.type) has no direct reader; add one to the plugin")
                }
                if repeated {
                    out += "    var \(property): [\(swiftType)] = []\n"
                    cases.append("case \(caseName): if try r.accepts(field, wt, \(wireType)) { \(property).append(\(read)) }")
                } else {
                    out += "    var \(property): \(swiftType) = \(initial)\n"
                    cases.append("case \(caseName): if try r.accepts(field, wt, \(wireType)) { \(property) = \(read) }")
                }
            }
        }
        out += """

                /// Reads the message's fields from `r` into this value (merging, as protobuf does).
                mutating func merge(_ r: inout WireReader) throws(CaseWireDecoder.Failure) {
                    while !r.isAtEnd {
                        let (field, wt) = try r.tag()
                        switch \(name)Field(rawValue: field) {

            """
        for c in cases { out += "            \(c)\n" }
        out += """
                        default: try r.skip(field: field, wireType: wt)
                        }
                    }
                }
            }

            """
    }
    return out
}

Generator.main()
