// Plain sockets on a running daemon, for tests and benchmarks that want the wire itself
// rather than AfterSalesClient.
import AfterSalesProto
import AfterSalesRPC
import Foundation
import SwiftProtobuf
import ZeroMQ

/// A plain DEALER caller: one call at a time unless the test sends several itself.
public final class TestCaller {
    public let socket: ZMQSocket
    private var nextID: UInt64 = 1

    /// A DEALER connected to `endpoint`; each answer is awaited at most `receiveTimeoutMs`.
    /// With `curve`, the DEALER is a CURVE client of the daemon whose public key it names.
    public init(_ endpoint: String, context: ZMQContext = ZMQContext.shared!, receiveTimeoutMs: Int32 = 10_000,
                curve: (serverKey: String, keys: CurveKeyPair)? = nil) throws {
        socket = try ZMQSocket(context, .dealer)
        if let curve { try socket.makeCurveClient(serverKey: curve.serverKey, keys: curve.keys) }
        try socket.setReceiveTimeout(receiveTimeoutMs)
        // A DEALER with no peer (a refused handshake, a daemon that is gone) blocks on send:
        // bound that wait too, so a test fails instead of hanging.
        try socket.setSendTimeout(receiveTimeoutMs)
        try socket.connect(endpoint)
    }

    /// Sends a raw frame list as is.
    public func sendRaw(_ frames: [Frame]) throws {
        guard try socket.send(frames) else { throw TestSupportError("could not send within the timeout: no connected peer") }
    }

    /// Sends an envelope and returns its request id.
    @discardableResult
    public func send(_ method: Method, _ request: some SwiftProtobuf.Message, deadlineMs: UInt64 = 0, key: String = "",
                     metadata: [String: String] = [:]) throws -> UInt64 {
        let id = nextID
        nextID += 1
        var envelope = RequestEnvelope(requestID: id, method: method, payload: try request.serializedBytes(),
                                       deadlineMilliseconds: deadlineMs, idempotencyKey: key)
        envelope.metadata = metadata
        guard try socket.send(WireFrames.dealerCall(body: try envelope.serializedBytes())) else {
            throw TestSupportError("could not send within the timeout: no connected peer")
        }
        return id
    }

    /// The next answer (bounded by the receive timeout).
    public func receive() throws -> ResponseEnvelope {
        guard let frames = try socket.receive() else { throw TestSupportError("no answer within the receive timeout") }
        guard let body = WireFrames.dealerReply(frames) else { throw TestSupportError("reply is not [delimiter, envelope]: \(frames.count) frames") }
        return try ResponseEnvelope(serializedBytes: body)
    }

    /// One call: the answer's envelope.
    public func callRaw(_ method: Method, _ request: some SwiftProtobuf.Message, deadlineMs: UInt64 = 0, key: String = "",
                        metadata: [String: String] = [:]) throws -> ResponseEnvelope {
        let id = try send(method, request, deadlineMs: deadlineMs, key: key, metadata: metadata)
        let answer = try receive()
        guard answer.requestID == id else { throw TestSupportError("answer for request \(answer.requestID), expected \(id)") }
        return answer
    }

    /// One typed call that must succeed.
    public func call<Req, Res>(_ rpc: RPC<Req, Res>, _ request: Req, key: String = "") throws -> Res {
        try callRaw(rpc.method, request, key: key).decodedPayload(as: Res.self)
    }

    /// One typed call that must fail; returns its error.
    public func failure<Req, Res>(_ rpc: RPC<Req, Res>, _ request: Req) throws -> RPCError {
        let answer = try callRaw(rpc.method, request)
        guard answer.code != .ok else { throw TestSupportError("\(rpc.method.fullName) succeeded but was expected to fail") }
        return RPCError(answer.code, answer.message)
    }

    public func ping() throws -> Bool {
        (try? call(RPCs.ping, .init()).version.hasPrefix("aftersalesd")) ?? false
    }
}

/// A SUB socket on the daemon's announcements, with the slow-joiner handled.
public final class TestSubscriber {
    public let socket: ZMQSocket

    public init(_ endpoint: String, prefixes: [String] = [""], context: ZMQContext = ZMQContext.shared!,
                curve: (serverKey: String, keys: CurveKeyPair)? = nil) throws {
        socket = try ZMQSocket(context, .sub)
        if let curve { try socket.makeCurveClient(serverKey: curve.serverKey, keys: curve.keys) }
        for prefix in prefixes { try socket.subscribe(prefix) }
        try socket.connect(endpoint)
        // ZeroMQ's slow joiner: give the subscription time to reach the publisher.
        Thread.sleep(forTimeInterval: 0.3)
    }

    /// The next announcement within `timeoutMs`, or nil.
    public func next(timeoutMs: Int32 = 5_000) throws -> (topic: String, event: EventEnvelope)? {
        try socket.setReceiveTimeout(timeoutMs)
        guard let frames = try socket.receive(), frames.count == 2 else { return nil }
        return (String(decoding: frames[0], as: UTF8.self), try EventEnvelope(serializedBytes: frames[1]))
    }
}
