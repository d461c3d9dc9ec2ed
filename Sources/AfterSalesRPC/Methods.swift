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

    /// The method's position in `allCases` (declaration order): an index for per-method tables.
    @inlinable
    public var ordinal: Int {
        // A payload-free enum of 2 to 256 cases is stored as its declaration index in one
        // byte (Swift's enum layout); `HotPathCodecTests` holds this to `allCases`.
        withUnsafeBytes(of: self) { Int($0[0]) }
    }

    /// Hashes the position, not the name: a raw-value enum otherwise hashes its String
    /// (some 700 instructions per lookup of a method-keyed table, twice per call).
    @inlinable
    public func hash(into hasher: inout Hasher) { hasher.combine(ordinal) }

    /// Compares positions, not names (see `hash(into:)`).
    @inlinable
    public static func == (lhs: Method, rhs: Method) -> Bool { lhs.ordinal == rhs.ordinal }

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
