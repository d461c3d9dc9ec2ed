import AfterSalesProto
import SwiftProtobuf

/// The call envelope (see proto/aftersales/v1/envelope.proto).
public typealias RequestEnvelope = Aftersales_V1_RequestEnvelope
/// The answer envelope.
public typealias ResponseEnvelope = Aftersales_V1_ResponseEnvelope
/// The announcement envelope.
public typealias EventEnvelope = Aftersales_V1_EventEnvelope

/// Longest idempotency key the daemon accepts, in bytes.
public let maxIdempotencyKeyBytes = 128

extension ResponseEnvelope {
    /// A successful answer carrying a serialized response message.
    public static func ok(requestID: UInt64, payload: [UInt8]) -> ResponseEnvelope {
        var envelope = ResponseEnvelope()
        envelope.requestID = requestID
        envelope.code = .ok
        envelope.payload = .init(payload)
        return envelope
    }

    /// A failed answer: code and message, no payload.
    public static func failure(requestID: UInt64, _ error: RPCError) -> ResponseEnvelope {
        var envelope = ResponseEnvelope()
        envelope.requestID = requestID
        envelope.code = error.code
        envelope.message = error.message
        return envelope
    }

    /// The response message if the call succeeded, else the call's error as thrown `RPCError`.
    public func decodedPayload<Response: SwiftProtobuf.Message>(as type: Response.Type = Response.self) throws(RPCError) -> Response {
        guard code == .ok else { throw RPCError(code, message) }
        do {
            return try Response(serializedBytes: payload)
        } catch {
            throw RPCError(.internal, "the daemon's \(Response.protoMessageName) answer does not parse: \(error)")
        }
    }
}

extension RequestEnvelope {
    /// An envelope for `method` carrying an already-serialized request.
    public init(requestID: UInt64, method: Method, payload: [UInt8], deadlineMilliseconds: UInt64 = 0, idempotencyKey: String = "") {
        self.init()
        self.requestID = requestID
        self.method = method.fullName
        self.payload = .init(payload)
        self.deadlineMs = deadlineMilliseconds
        self.idempotencyKey = idempotencyKey
    }
}
