import AfterSalesProto

/// gRPC's status codes, as carried in `ResponseEnvelope.code`.
public typealias StatusCode = Aftersales_V1_StatusCode

extension StatusCode {
    /// gRPC's upper-case name, e.g. "FAILED_PRECONDITION", as engineers see it in logs and CLIs.
    public var name: String {
        switch self {
        case .ok: "OK"
        case .cancelled: "CANCELLED"
        case .unknown: "UNKNOWN"
        case .invalidArgument: "INVALID_ARGUMENT"
        case .deadlineExceeded: "DEADLINE_EXCEEDED"
        case .notFound: "NOT_FOUND"
        case .alreadyExists: "ALREADY_EXISTS"
        case .permissionDenied: "PERMISSION_DENIED"
        case .resourceExhausted: "RESOURCE_EXHAUSTED"
        case .failedPrecondition: "FAILED_PRECONDITION"
        case .aborted: "ABORTED"
        case .outOfRange: "OUT_OF_RANGE"
        case .unimplemented: "UNIMPLEMENTED"
        case .internal: "INTERNAL"
        case .unavailable: "UNAVAILABLE"
        case .dataLoss: "DATA_LOSS"
        case .unauthenticated: "UNAUTHENTICATED"
        case .UNRECOGNIZED(let n): "CODE_\(n)"
        }
    }
}

/// A failed call: the status code and the daemon's (or the client's) explanation.
public struct RPCError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Why the call failed; never `.ok`.
    public let code: StatusCode
    /// What went wrong and what to fix.
    public let message: String
    /// Cluster mode: where the call's shard is served, when the member that answered does
    /// not serve it (UNAVAILABLE); nil otherwise.
    public let redirect: Aftersales_V1_Redirect?

    /// Creates an error with a code and an explanation (and, from a cluster member, where to go instead).
    public init(_ code: StatusCode, _ message: String, redirect: Aftersales_V1_Redirect? = nil) {
        self.code = code
        self.message = message
        self.redirect = redirect
    }

    /// "CODE: message", the form the probe prints.
    public var description: String { "\(code.name): \(message)" }
}
