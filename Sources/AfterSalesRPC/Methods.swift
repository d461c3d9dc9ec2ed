import AfterSalesProto
import SwiftProtobuf

/// What is derived from a method's name. The table itself (`Method`, its `isMutating`,
/// `roles`, request and response types, and `RPCs`) is generated from the services in
/// proto/ and their options: Methods.generated.swift (scripts/generate-proto).
extension Method {
    /// The full name on the wire, e.g. "aftersales.v1.CaseService/CreateCase".
    public var fullName: String { rawValue }

    /// The service part of the name, e.g. "aftersales.v1.CaseService".
    public var serviceName: Substring { rawValue[..<rawValue.firstIndex(of: "/")!] }

    /// The method part of the name, e.g. "CreateCase".
    public var methodName: Substring { rawValue[rawValue.index(after: rawValue.firstIndex(of: "/")!)...] }

    /// Looks a method up by its full wire name; nil for a name the contract does not have.
    public init?(fullName: String) { self.init(rawValue: fullName) }

    /// Looks a method up by its short name ("CreateCase") or full name, case-insensitively.
    public static func named(_ name: String) -> Method? {
        if let exact = Method(rawValue: name) { return exact }
        let wanted = name.lowercased()
        return allCases.first { $0.methodName.lowercased() == wanted || $0.rawValue.lowercased() == wanted }
    }
}

/// A method with its request and response types bound, for typed clients.
public struct RPC<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>: Sendable {
    /// The method this describes.
    public let method: Method

    init(_ method: Method) {
        precondition(method.requestType == Request.self && method.responseType == Response.self,
                     "RPC table types disagree with Method for \(method.rawValue)")
        self.method = method
    }
}
