/// Why a request was refused. The case and the store are then exactly as before.
///
/// Each case maps to one gRPC status (`grpcCode`); `message` tells the caller what to fix.
public enum CaseError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A field breaks its rule; `field` is the proto field name (snake_case). INVALID_ARGUMENT (3).
    case invalidArgument(field: String, message: String)
    /// No case with that id. NOT_FOUND (5).
    case notFound(String)
    /// The case's status does not allow the step. FAILED_PRECONDITION (9).
    case failedPrecondition(String)
    /// The wrong party, or the wrong consumer/merchant id. PERMISSION_DENIED (7).
    case permissionDenied(String)
    /// `expectedVersion` is stale. ABORTED (10).
    case aborted(String)
    /// An open case exists for the same order line. ALREADY_EXISTS (6).
    case alreadyExists(String)

    /// The numeric gRPC status code.
    public var grpcCode: Int32 {
        switch self {
        case .invalidArgument: 3
        case .notFound: 5
        case .alreadyExists: 6
        case .permissionDenied: 7
        case .failedPrecondition: 9
        case .aborted: 10
        }
    }

    /// The gRPC status name, e.g. "FAILED_PRECONDITION".
    public var grpcName: String {
        switch self {
        case .invalidArgument: "INVALID_ARGUMENT"
        case .notFound: "NOT_FOUND"
        case .alreadyExists: "ALREADY_EXISTS"
        case .permissionDenied: "PERMISSION_DENIED"
        case .failedPrecondition: "FAILED_PRECONDITION"
        case .aborted: "ABORTED"
        }
    }

    /// The human-readable message for the status.
    public var message: String {
        switch self {
        case let .invalidArgument(field, message): "\(field): \(message)"
        case let .notFound(message), let .failedPrecondition(message), let .permissionDenied(message),
             let .aborted(message), let .alreadyExists(message):
            message
        }
    }

    /// "CODE: message".
    public var description: String { "\(grpcName): \(message)" }
}
