// Endpoint checks that need no socket, so a mistyped --rpc is a usage error found before
// the data directory is locked and recovered, not a runtime failure after it.
import ZeroMQ

/// A ZeroMQ endpoint the daemon binds, checked for form.
public enum BindEndpoint {
    /// Why `endpoint` cannot be bound as written, or nil when its form is right:
    /// `tcp://HOST:PORT` (PORT 0–65535, or `*`: 0 and `*` pick a free port), `ipc://PATH` or `inproc://NAME`.
    public static func problem(_ endpoint: String) -> String? {
        guard let schemeEnd = endpoint.range(of: "://") else {
            return "'\(endpoint)' has no transport; write it like tcp://127.0.0.1:7700, ipc:///run/aftersales.sock or inproc://name"
        }
        let transport = endpoint[..<schemeEnd.lowerBound]
        let address = endpoint[schemeEnd.upperBound...]
        switch transport {
        case "tcp":
            guard let colon = address.lastIndex(of: ":") else {
                return "'\(endpoint)' has no port; write it like tcp://127.0.0.1:7700 (or :* for any free port)"
            }
            let host = address[..<colon]
            let port = address[address.index(after: colon)...]
            if host.isEmpty { return "'\(endpoint)' has no host; use 127.0.0.1 for loopback or * for every interface" }
            if port != "*", UInt16(port) == nil {
                return "'\(endpoint)': port '\(port)' is not a number from 0 to 65535 (or * for any free port)"
            }
            return nil
        case "ipc", "inproc":
            return address.isEmpty ? "'\(endpoint)' names no \(transport) address" : nil
        default:
            return "'\(endpoint)': transport '\(transport)' is not one the daemon binds (tcp, ipc or inproc)"
        }
    }
}

/// A socket the daemon could not bind: the address is taken, not this machine's, or not
/// permitted. Restarting will not help until a person changes something.
public struct BindFailure: Error, CustomStringConvertible {
    /// The endpoint as configured.
    public let endpoint: String
    /// Why: libzmq's reason, or the system's for the metrics port.
    public let reason: String

    /// A ZeroMQ endpoint libzmq would not bind.
    public init(endpoint: String, underlying: ZMQError) { (self.endpoint, reason) = (endpoint, "\(underlying)") }

    /// An endpoint that could not be bound for `reason`.
    public init(endpoint: String, reason: String) { (self.endpoint, self.reason) = (endpoint, reason) }

    public var description: String { "cannot bind \(endpoint): \(reason)" }
}

extension BindEndpoint {
    /// Whether only this machine can reach `endpoint`: ipc and inproc, or tcp on a
    /// loopback address. `*`, 0.0.0.0 and every other host can be reached from outside.
    public static func isLocal(_ endpoint: String) -> Bool {
        guard endpoint.hasPrefix("tcp://") else { return true }
        let address = endpoint.dropFirst("tcp://".count)
        guard let colon = address.lastIndex(of: ":") else { return false }
        let host = address[..<colon]
        return host.hasPrefix("127.") || host == "localhost" || host == "[::1]" || host == "::1"
    }
}
