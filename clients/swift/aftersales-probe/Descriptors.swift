import AfterSalesClient
import AfterSalesProto
import AfterSalesRPC
import Foundation
import SwiftProtobuf

// The contract as data: a google.protobuf.FileDescriptorSet (the daemon's, from
// AdminService/GetDescriptors, or the copy compiled into this probe) indexed by full name,
// with the comments written in proto/. `describe`, `call --template`, `methods` and
// --emit-defaults read it; nothing here parses .proto text.

/// Services, messages and enums of a FileDescriptorSet by full name, with their comments.
struct ContractDescriptors: Sendable {
    /// A service and its full name, e.g. "aftersales.v1.CaseService".
    struct Service: Sendable {
        /// "aftersales.v1.CaseService".
        let fullName: String
        /// Its methods, options and name as protoc wrote them.
        let proto: Google_Protobuf_ServiceDescriptorProto
    }

    /// Every service, in file order.
    private(set) var services: [Service] = []
    /// Every message, nested ones included, by full name without the leading dot.
    private(set) var messages: [String: Google_Protobuf_DescriptorProto] = [:]
    /// Every enum, nested ones included, by full name.
    private(set) var enums: [String: Google_Protobuf_EnumDescriptorProto] = [:]
    /// The comment above (or else beside) each element, by full name: "pkg.Message",
    /// "pkg.Message.field", "pkg.Enum.VALUE", "pkg.Service", "pkg.Service.Method".
    private var comments: [String: String] = [:]

    /// Indexes a serialized FileDescriptorSet (our method options decoded as extensions).
    init(serializedSet bytes: Data) throws {
        let set = try Google_Protobuf_FileDescriptorSet(serializedBytes: bytes, extensions: Aftersales_V1_Options_Extensions)
        for file in set.file { index(file) }
    }

    /// The contract this probe was built with (scripts/generate-proto embeds it): what its
    /// message types accept, whatever the daemon runs.
    static let compiledIn: ContractDescriptors = {
        guard let bytes = Data(base64Encoded: contractDescriptorSetBase64),
              let descriptors = try? ContractDescriptors(serializedSet: bytes)
        else { fatalError("the compiled-in descriptor set does not decode: regenerate with scripts/generate-proto") }
        return descriptors
    }()

    // MARK: indexing

    // Where each element sits in its file, as SourceCodeInfo paths count it: the field
    // numbers of FileDescriptorProto, DescriptorProto, EnumDescriptorProto and
    // ServiceDescriptorProto that hold the element, with its index.
    private enum PathTag {
        static let fileMessage: Int32 = 4, fileEnum: Int32 = 5, fileService: Int32 = 6
        static let messageField: Int32 = 2, messageNested: Int32 = 3, messageEnum: Int32 = 4
        static let enumValue: Int32 = 2, serviceMethod: Int32 = 2
    }

    private mutating func index(_ file: Google_Protobuf_FileDescriptorProto) {
        var located: [[Int32]: String] = [:]
        for location in file.sourceCodeInfo.location where location.hasLeadingComments || location.hasTrailingComments {
            located[location.path] = location.hasLeadingComments ? location.leadingComments : location.trailingComments
        }
        let prefix = file.package.isEmpty ? "" : file.package + "."
        for (i, message) in file.messageType.enumerated() {
            index(message, name: prefix + message.name, path: [PathTag.fileMessage, Int32(i)], located)
        }
        for (i, item) in file.enumType.enumerated() {
            index(item, name: prefix + item.name, path: [PathTag.fileEnum, Int32(i)], located)
        }
        for (i, service) in file.service.enumerated() {
            let name = prefix + service.name
            let path = [PathTag.fileService, Int32(i)]
            services.append(Service(fullName: name, proto: service))
            comments[name] = located[path]
            for (j, method) in service.method.enumerated() {
                comments[name + "." + method.name] = located[path + [PathTag.serviceMethod, Int32(j)]]
            }
        }
    }

    private mutating func index(_ message: Google_Protobuf_DescriptorProto, name: String, path: [Int32], _ located: [[Int32]: String]) {
        messages[name] = message
        comments[name] = located[path]
        for (i, field) in message.field.enumerated() {
            comments[name + "." + field.name] = located[path + [PathTag.messageField, Int32(i)]]
        }
        for (i, nested) in message.nestedType.enumerated() {
            index(nested, name: name + "." + nested.name, path: path + [PathTag.messageNested, Int32(i)], located)
        }
        for (i, nested) in message.enumType.enumerated() {
            index(nested, name: name + "." + nested.name, path: path + [PathTag.messageEnum, Int32(i)], located)
        }
    }

    private mutating func index(_ item: Google_Protobuf_EnumDescriptorProto, name: String, path: [Int32], _ located: [[Int32]: String]) {
        enums[name] = item
        comments[name] = located[path]
        for (i, value) in item.value.enumerated() {
            comments[name + "." + value.name] = located[path + [PathTag.enumValue, Int32(i)]]
        }
    }

    // MARK: reading

    /// The comment written above `symbol` in proto/, one entry a line, without "//".
    func comment(for symbol: String) -> [String] {
        guard let text = comments[symbol] else { return [] }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.hasPrefix(" ") ? String($0.dropFirst()) : String($0) }
        while lines.last?.isEmpty == true { lines.removeLast() }
        return lines
    }

    /// The type a message or enum field refers to ("aftersales.v1.Case"), or nil for a scalar.
    func referencedType(of field: Google_Protobuf_FieldDescriptorProto) -> String? {
        field.typeName.isEmpty ? nil : referencedName(field.typeName)
    }

    /// The entry message of a map field (its key is field 1, its value field 2), else nil.
    func mapEntry(of field: Google_Protobuf_FieldDescriptorProto) -> Google_Protobuf_DescriptorProto? {
        guard field.label == .repeated, let type = referencedType(of: field), let entry = messages[type],
              entry.options.mapEntry else { return nil }
        return entry
    }

    /// The name of an enum's value numbered `number` (proto3's default when 0).
    func enumValueName(_ enumName: String, number: Int32) -> String? {
        enums[enumName]?.value.first { $0.number == number }?.name
    }

    /// The method `name` of service `service`, if the set has it.
    func method(_ name: Substring, of service: String) -> Google_Protobuf_MethodDescriptorProto? {
        services.first { $0.fullName == service }?.proto.method.first { $0.name == name }
    }
}

/// A type as descriptors refer to it (".aftersales.v1.Case", fully qualified) by its full name.
func referencedName(_ reference: String) -> String {
    reference.hasPrefix(".") ? String(reference.dropFirst()) : reference
}

extension Google_Protobuf_FieldDescriptorProto {
    /// The member name in protobuf's JSON mapping (protoc records it; lowerCamelCase otherwise).
    var jsonKey: String {
        if hasJsonName { return jsonName }
        let words = name.split(separator: "_")
        return String(words.first ?? "") + words.dropFirst().map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined()
    }

    /// Whether an unset field can be told from one set to its default: singular messages,
    /// members of a oneof and proto3 `optional` fields. JSON leaves these out when unset,
    /// even with defaults.
    var hasPresence: Bool {
        label != .repeated && (type == .message || type == .group || hasOneofIndex || proto3Optional)
    }
}

/// Types whose JSON form is not their fields (Timestamp is a string, Struct any object, …):
/// never expanded or filled in field by field.
private func isWellKnown(_ typeName: String) -> Bool { typeName.hasPrefix("google.protobuf.") }

// MARK: JSON from the descriptors

extension ContractDescriptors {
    /// A scalar field's zero in protobuf's JSON mapping: "" for strings and bytes, false, 0,
    /// and "0" for the 64-bit integers (which the mapping writes as strings).
    private func scalarZero(_ type: Google_Protobuf_FieldDescriptorProto.TypeEnum) -> JSONValue {
        switch type {
        case .string, .bytes: .string("")
        case .bool: .bool(false)
        case .int64, .uint64, .sint64, .fixed64, .sfixed64: .string("0")
        default: .number("0")
        }
    }

    /// `value`, protobuf's JSON for a `messageName` message, with every field that has no
    /// presence written out at its default, nested messages too: protobuf's
    /// `always_print_fields_with_no_presence` (formerly `including_default_value_fields`),
    /// which SwiftProtobuf 1.39's JSONEncodingOptions does not offer. Members keep field order.
    func addingDefaults(to value: JSONValue, messageName: String) -> JSONValue {
        guard case .object(var remaining) = value, let message = messages[messageName], !isWellKnown(messageName) else {
            return value
        }
        var members: [(key: String, value: JSONValue)] = []
        for field in message.field {
            if let index = remaining.firstIndex(where: { $0.key == field.jsonKey || $0.key == field.name }) {
                let present = remaining.remove(at: index)
                members.append((present.key, addingDefaults(toValueOf: field, present.value)))
            } else if !field.hasPresence {
                members.append((field.jsonKey, defaultValue(of: field)))
            }
        }
        return .object(members + remaining)
    }

    private func addingDefaults(toValueOf field: Google_Protobuf_FieldDescriptorProto, _ value: JSONValue) -> JSONValue {
        guard field.type == .message, let type = referencedType(of: field) else { return value }
        switch value {
        case .object(let entries) where mapEntry(of: field) != nil:
            guard let valueField = mapEntry(of: field)?.field.first(where: { $0.number == 2 }) else { return value }
            return .object(entries.map { ($0.key, addingDefaults(toValueOf: valueField, $0.value)) })
        case .array(let items):
            return .array(items.map { addingDefaults(to: $0, messageName: type) })
        default:
            return addingDefaults(to: value, messageName: type)
        }
    }

    /// What an unset field without presence means, in JSON: [] or {} when repeated, the enum
    /// value numbered 0, or the scalar's zero.
    private func defaultValue(of field: Google_Protobuf_FieldDescriptorProto) -> JSONValue {
        if mapEntry(of: field) != nil { return .object([]) }
        if field.label == .repeated { return .array([]) }
        if field.type == .enum, let type = referencedType(of: field) {
            return enumValueName(type, number: 0).map(JSONValue.string) ?? .number("0")
        }
        return scalarZero(field.type)
    }

    /// A request to fill in, like grpcurl's -msg-template: every field with a value of its
    /// type, enums as their first value after UNSPECIFIED, repeated fields as one element,
    /// maps as one entry, nested messages expanded (one level of any recursion), and only
    /// the first field of each oneof (two would not parse).
    func template(for messageName: String, expanding outer: Set<String> = []) -> JSONValue {
        guard let message = messages[messageName], !isWellKnown(messageName) else { return .null }
        let path = outer.union([messageName])
        var oneofsSeen: Set<Int32> = []
        var members: [(key: String, value: JSONValue)] = []
        for field in message.field {
            if field.hasOneofIndex, !oneofsSeen.insert(field.oneofIndex).inserted { continue }
            if let entry = mapEntry(of: field), entry.field.count == 2 {
                let key: String
                switch scalarZero(entry.field[0].type) {
                case .string(let text), .number(let text): key = text
                default: key = "false"
                }
                members.append((field.jsonKey, .object([(key, templateValue(of: entry.field[1], path))])))
            } else {
                let one = templateValue(of: field, path)
                members.append((field.jsonKey, field.label == .repeated ? .array([one]) : one))
            }
        }
        return .object(members)
    }

    private func templateValue(of field: Google_Protobuf_FieldDescriptorProto, _ path: Set<String>) -> JSONValue {
        guard let type = referencedType(of: field) else { return scalarZero(field.type) }
        if field.type == .enum {
            let values = enums[type]?.value ?? []
            return (values.first { $0.number != 0 } ?? values.first).map { .string($0.name) } ?? .number("0")
        }
        return path.contains(type) ? .object([]) : template(for: type, expanding: path)
    }
}

// MARK: where the descriptors come from

extension GlobalOptions {
    /// The daemon's contract (AdminService/GetDescriptors), or the compiled-in one when the
    /// daemon cannot give it (not running, an older daemon); says on stderr which it is.
    func contractDescriptors() async -> ContractDescriptors {
        do {
            let response = try await withClient { client in try await client.getDescriptors() }
            let descriptors = try ContractDescriptors(serializedSet: response.fileDescriptorSet)
            var note = "descriptors from the daemon at \(endpoint)"
            if !response.protoDigest.isEmpty, response.protoDigest != protoSourceDigest {
                note += " (its contract differs from this probe's: proto digest \(response.protoDigest.prefix(12)), here \(protoSourceDigest.prefix(12)))"
            }
            printError(note)
            return descriptors
        } catch {
            printError("descriptors compiled into this probe (the daemon at \(endpoint) gave none: \(error))")
            return .compiledIn
        }
    }
}
