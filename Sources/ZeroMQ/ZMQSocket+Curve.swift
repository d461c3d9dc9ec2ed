// CURVE (ZeroMQ RFC 26) on a socket, and the ZAP (RFC 27) pieces a server needs to know
// who is calling: libzmq does the cryptography; this names its options.
import CZeroMQ

/// A CURVE key pair as Z85 text: 40 characters each.
public struct CurveKeyPair: Sendable, Hashable {
    /// The public key, to hand to the other side.
    public let publicKey: String
    /// The secret key, to keep (a file readable by its owner only).
    public let secretKey: String

    /// A pair from its two Z85 keys.
    public init(publicKey: String, secretKey: String) {
        self.publicKey = publicKey
        self.secretKey = secretKey
    }

    /// A new random key pair (libzmq's `zmq_curve_keypair`).
    public static func generate() throws -> CurveKeyPair {
        var publicKey = [CChar](repeating: 0, count: 41)
        var secretKey = [CChar](repeating: 0, count: 41)
        guard zmq_curve_keypair(&publicKey, &secretKey) == 0 else { throw ZMQError.last("zmq_curve_keypair") }
        return CurveKeyPair(publicKey: String(cString: publicKey), secretKey: String(cString: secretKey))
    }

    /// The pair of a secret key (its public key derived, `zmq_curve_public`).
    public init(secretKey: String) throws {
        guard Z85.decode(secretKey) != nil else {
            throw ZMQError(errno: CZeroMQ_EINVAL(), operation: "CURVE secret key (40 Z85 characters expected)")
        }
        var publicKey = [CChar](repeating: 0, count: 41)
        guard zmq_curve_public(&publicKey, secretKey) == 0 else { throw ZMQError.last("zmq_curve_public") }
        self.init(publicKey: String(cString: publicKey), secretKey: secretKey)
    }

    /// Whether this libzmq was built with CURVE (`zmq_has("curve")`).
    public static var isAvailable: Bool { zmq_has("curve") == 1 }
}

/// ZeroMQ's Z85 text encoding of binary keys (RFC 32).
public enum Z85 {
    /// The 32 bytes of a 40-character key, or nil when `text` is not one.
    public static func decode(_ text: String) -> [UInt8]? {
        guard text.utf8.count == 40 else { return nil }
        var out = [UInt8](repeating: 0, count: 32)
        guard zmq_z85_decode(&out, text) != nil else { return nil }
        return out
    }

    /// The 40 characters of a 32-byte key.
    public static func encode(_ key: [UInt8]) -> String? {
        guard key.count == 32 else { return nil }
        var text = [CChar](repeating: 0, count: 41)
        guard zmq_z85_encode(&text, key, 32) != nil else { return nil }
        return String(cString: text)
    }
}

extension ZMQSocket {
    /// Makes this socket a CURVE server with `secretKey` (Z85): a peer must know the
    /// matching public key to connect, and the context's ZAP handler decides who may.
    /// Call before `bind`.
    public func makeCurveServer(secretKey: String) throws {
        try setInt32(ZMQ_CURVE_SERVER, "ZMQ_CURVE_SERVER", 1)
        try setBytes(ZMQ_CURVE_SECRETKEY, "ZMQ_CURVE_SECRETKEY", Array(secretKey.utf8))
    }

    /// Makes this socket a CURVE client of the server whose public key is `serverKey`,
    /// proving itself with `keys`. Call before `connect`.
    public func makeCurveClient(serverKey: String, keys: CurveKeyPair) throws {
        try setBytes(ZMQ_CURVE_SERVERKEY, "ZMQ_CURVE_SERVERKEY", Array(serverKey.utf8))
        try setBytes(ZMQ_CURVE_PUBLICKEY, "ZMQ_CURVE_PUBLICKEY", Array(keys.publicKey.utf8))
        try setBytes(ZMQ_CURVE_SECRETKEY, "ZMQ_CURVE_SECRETKEY", Array(keys.secretKey.utf8))
    }
}
