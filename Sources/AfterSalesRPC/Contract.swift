import Foundation
import SwiftProtobuf

/// The contract as descriptors (proto/ embedded at generation time, with its comments):
/// what reflection serves, and where code looks up a field by name instead of repeating
/// its number.
public enum Contract {
    /// The serialized google.protobuf.FileDescriptorSet of proto/.
    public static let descriptorSetBytes: Data = Data(base64Encoded: contractDescriptorSetBase64)!

    /// The parsed descriptor set.
    public static let descriptorSet: Google_Protobuf_FileDescriptorSet =
        try! Google_Protobuf_FileDescriptorSet(serializedBytes: descriptorSetBytes)

    /// Full names of the services, e.g. "aftersales.v1.CaseService".
    public static var serviceNames: [String] {
        descriptorSet.file.flatMap { file in file.service.map { "\(file.package).\($0.name)" } }
    }

    /// The message with this full name ("aftersales.v1.Case"), nested ones included.
    public static func message(named fullName: String) -> Google_Protobuf_DescriptorProto? {
        let wanted = fullName.hasPrefix(".") ? String(fullName.dropFirst()) : fullName
        for file in descriptorSet.file {
            func search(_ messages: [Google_Protobuf_DescriptorProto], prefix: String) -> Google_Protobuf_DescriptorProto? {
                for message in messages {
                    let name = prefix + "." + message.name
                    if name == wanted { return message }
                    if let nested = search(message.nestedType, prefix: name) { return nested }
                }
                return nil
            }
            if let found = search(file.messageType, prefix: file.package) { return found }
        }
        return nil
    }

    /// The request message of a method.
    public static func requestMessage(of method: Method) -> Google_Protobuf_DescriptorProto? {
        let service = String(method.serviceName), name = String(method.methodName)
        for file in descriptorSet.file {
            for s in file.service where "\(file.package).\(s.name)" == service {
                if let m = s.method.first(where: { $0.name == name }) { return message(named: m.inputType) }
            }
        }
        return nil
    }

    /// The number of the field `field` of a method's request, if it has one.
    public static func requestFieldNumber(_ field: String, of method: Method) -> Int? {
        requestMessage(of: method)?.field.first { $0.name == field }.map { Int($0.number) }
    }

    /// The fields along a dotted path of field names from the message `message`
    /// (["signals", "evidence", "tags"] in "aftersales.v1.CreateCaseRequest"); nil when a
    /// name is not there or a step before the last is not a message.
    public static func fieldPath(_ names: [String], in message: String) -> [Google_Protobuf_FieldDescriptorProto]? {
        var fields: [Google_Protobuf_FieldDescriptorProto] = []
        var current = message
        for name in names {
            guard let descriptor = self.message(named: current), let field = descriptor.field.first(where: { $0.name == name }) else { return nil }
            fields.append(field)
            current = field.typeName
        }
        return fields
    }
}
