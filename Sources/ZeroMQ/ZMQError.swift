import CZeroMQ

/// A failed libzmq call: the `errno` libzmq reported, what we were doing, and libzmq's
/// own text for the error (`zmq_strerror`).
///
/// `description` reads like
/// `bind(tcp://127.0.0.1:7700): Address already in use (errno 98)`, so it can go
/// straight into a log line or an error message for an operator.
public struct ZMQError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The error number (`zmq_errno()` at the time of the failure). Compare with the
    /// static helpers below (`ZMQError.contextTerminated`, ...) or with Glibc's constants.
    public let errno: Int32
    /// What failed, with its argument where there is one: `bind(tcp://127.0.0.1:7700)`,
    /// `send`, `setsockopt(ZMQ_LINGER)`, ...
    public let operation: String

    /// Builds an error from an explicit error number.
    public init(errno: Int32, operation: String) {
        self.errno = errno
        self.operation = operation
    }

    /// Builds an error from the calling thread's last libzmq error (`zmq_errno()`).
    /// Call it immediately after the failing libzmq call.
    public static func last(_ operation: String) -> ZMQError {
        ZMQError(errno: zmq_errno(), operation: operation)
    }

    /// libzmq's text for `errno` (`zmq_strerror`), e.g. "Address already in use".
    public var message: String {
        guard let text = zmq_strerror(errno) else { return "unknown error" }
        return String(cString: text)
    }

    /// `operation: message (errno N)`.
    public var description: String {
        "\(operation): \(message) (errno \(errno))"
    }

    /// The context was terminated or shut down (`ETERM`): the owning loop should stop.
    public var isContextTerminated: Bool { errno == ZMQError.contextTerminated }
    /// The operation is not valid in the socket's current state (`EFSM`), e.g. a REQ
    /// socket sending twice without receiving the reply in between.
    public var isWrongSocketState: Bool { errno == ZMQError.wrongSocketState }
    /// A ROUTER with `routerMandatory` was asked to send to a routing id it does not
    /// know (`EHOSTUNREACH`) — the peer has gone or never existed.
    public var isHostUnreachable: Bool { errno == ZMQError.hostUnreachable }

    /// `ETERM`
    public static var contextTerminated: Int32 { CZeroMQ_ETERM() }
    /// `EFSM`
    public static var wrongSocketState: Int32 { CZeroMQ_EFSM() }
    /// `EHOSTUNREACH`
    public static var hostUnreachable: Int32 { CZeroMQ_EHOSTUNREACH() }
    /// `EADDRINUSE`
    public static var addressInUse: Int32 { CZeroMQ_EADDRINUSE() }
    /// `ENOTSOCK` — also what this library reports for a socket that was already closed.
    public static var notASocket: Int32 { CZeroMQ_ENOTSOCK() }
    /// `EINVAL`
    public static var invalidArgument: Int32 { CZeroMQ_EINVAL() }
}

/// The libzmq library this process is linked against (not the headers it was built
/// with), e.g. `(4, 3, 4)`.
public func zmqVersion() -> (major: Int, minor: Int, patch: Int) {
    var major: Int32 = 0
    var minor: Int32 = 0
    var patch: Int32 = 0
    zmq_version(&major, &minor, &patch)
    return (Int(major), Int(minor), Int(patch))
}
