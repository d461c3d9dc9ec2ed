import CZeroMQ

/// One message part. Binary-safe: any bytes, including none and zeros.
public typealias Frame = [UInt8]

/// The ZeroMQ socket patterns this library offers.
public enum SocketType: Sendable, CaseIterable {
    /// Strict request/reply client: send, receive, send, ... (adds an empty delimiter frame).
    case req
    /// Strict request/reply server: receive, send, receive, ... (routes replies back).
    case rep
    /// Asynchronous request side: any number of calls in flight, fair-queued.
    case dealer
    /// Asynchronous server side: each received message starts with the sender's
    /// routing id; a sent message's first frame picks the peer.
    case router
    /// Publisher: sends to every matching subscriber, drops at the high-water mark.
    case pub
    /// Subscriber: receives what matches its `subscribe` prefixes (nothing by default).
    case sub
    /// Exclusive one-to-one pair.
    case pair
    /// Pipeline producer: load-balances messages over connected pullers.
    case push
    /// Pipeline consumer: fair-queues from connected pushers.
    case pull

    var rawValue: Int32 {
        switch self {
        case .req: ZMQ_REQ
        case .rep: ZMQ_REP
        case .dealer: ZMQ_DEALER
        case .router: ZMQ_ROUTER
        case .pub: ZMQ_PUB
        case .sub: ZMQ_SUB
        case .pair: ZMQ_PAIR
        case .push: ZMQ_PUSH
        case .pull: ZMQ_PULL
        }
    }
}

/// A ZeroMQ socket.
///
/// **Never share a socket between threads.** libzmq sockets are not thread-safe; a
/// socket belongs to the thread that uses it (create it there, too). The type is
/// deliberately not `Sendable`, so Swift 6 rejects most accidental sharing at compile
/// time.
///
/// **Lifetime.** The socket holds a strong reference to its context (so the context
/// outlives it) and closes itself in `deinit`; `close()` does it earlier.
///
/// **Linger defaults to 0** (libzmq's default is -1, "forever"): when the socket is
/// closed, messages not yet handed to the network are discarded at once. With libzmq's
/// default, a socket with messages queued for a peer that is gone (or never came)
/// makes `zmq_ctx_term` — and so process shutdown — wait forever. Call
/// `setLinger(_:)` (or `close(linger:)`) where a bounded grace period to flush is wanted,
/// e.g. a publisher's final announcements.
///
/// **Errors.** Every libzmq failure is thrown as a `ZMQError` (errno, operation and
/// libzmq's text). "Would block" is not an error: `send` returns `false` and
/// `receive` returns `nil`. A signal interrupting a blocking call (`EINTR`) is retried
/// transparently.
public final class ZMQSocket {
    /// The libzmq socket handle; `nil` once closed.
    private(set) var handle: UnsafeMutableRawPointer?
    /// The context this socket lives in (kept alive by this reference).
    public let context: ZMQContext
    /// The socket's pattern.
    public let type: SocketType

    /// Creates a socket of `type` in `context`, with linger 0 (see the type's
    /// documentation for why).
    public init(_ context: ZMQContext, _ type: SocketType) throws {
        guard let handle = zmq_socket(context.handle, type.rawValue) else {
            throw ZMQError.last("zmq_socket(\(type))")
        }
        var linger: Int32 = 0
        if zmq_setsockopt(handle, ZMQ_LINGER, &linger, MemoryLayout<Int32>.size) != 0 {
            let error = ZMQError.last("setsockopt(ZMQ_LINGER)")
            zmq_close(handle)
            throw error
        }
        self.handle = handle
        self.context = context
        self.type = type
    }

    deinit {
        if let handle { zmq_close(handle) }
    }

    /// Closes the socket. Idempotent; later calls on the socket throw `ENOTSOCK`.
    /// With `linger`, sets the linger period (milliseconds; -1 = until delivered)
    /// first, giving queued outgoing messages that long to leave.
    public func close(linger: Int32? = nil) {
        guard let handle else { return }
        if var linger {
            _ = zmq_setsockopt(handle, ZMQ_LINGER, &linger, MemoryLayout<Int32>.size)
        }
        zmq_close(handle)
        self.handle = nil
    }

    /// Whether `close()` has been called.
    public var isClosed: Bool { handle == nil }

    /// The open handle, or `ENOTSOCK` if the socket was closed.
    @inline(__always)
    func openHandle(_ operation: @autoclosure () -> String) throws -> UnsafeMutableRawPointer {
        guard let handle else { throw ZMQError(errno: ZMQError.notASocket, operation: operation()) }
        return handle
    }

    // MARK: endpoints

    /// Binds to `endpoint`, e.g. `tcp://127.0.0.1:7700`, `tcp://*:7700`,
    /// `tcp://127.0.0.1:*` (any free port: read it back with `lastEndpoint`),
    /// `ipc:///run/aftersales.sock`, `inproc://name`.
    public func bind(_ endpoint: String) throws {
        let handle = try openHandle("bind(\(endpoint))")
        if zmq_bind(handle, endpoint) != 0 { throw ZMQError.last("bind(\(endpoint))") }
    }

    /// Connects to `endpoint`. Succeeds at once even if nothing listens there yet:
    /// libzmq connects (and reconnects) in the background.
    public func connect(_ endpoint: String) throws {
        let handle = try openHandle("connect(\(endpoint))")
        if zmq_connect(handle, endpoint) != 0 { throw ZMQError.last("connect(\(endpoint))") }
    }

    /// Undoes a `bind`. For a wildcard bind, pass the resolved `lastEndpoint`.
    public func unbind(_ endpoint: String) throws {
        let handle = try openHandle("unbind(\(endpoint))")
        if zmq_unbind(handle, endpoint) != 0 { throw ZMQError.last("unbind(\(endpoint))") }
    }

    /// Undoes a `connect`.
    public func disconnect(_ endpoint: String) throws {
        let handle = try openHandle("disconnect(\(endpoint))")
        if zmq_disconnect(handle, endpoint) != 0 { throw ZMQError.last("disconnect(\(endpoint))") }
    }

    /// The endpoint of the last `bind`/`connect`, resolved: after
    /// `bind("tcp://127.0.0.1:*")` it is e.g. `tcp://127.0.0.1:54321`.
    public var lastEndpoint: String {
        get throws { try stringOption(ZMQ_LAST_ENDPOINT, "ZMQ_LAST_ENDPOINT") }
    }

    // MARK: sending

    /// Sends one multipart message: every frame but the last goes with `ZMQ_SNDMORE`;
    /// ZeroMQ delivers all parts or none. An empty array sends nothing and returns true.
    ///
    /// Returns `false` when the message could not be queued without blocking (with
    /// `dontWait`) or within `sendTimeout` — at the high-water mark, or with no peer
    /// to send to. Nothing of the message was sent then. PUB, and ROUTER without
    /// `routerMandatory`, never return false: they drop such a message silently and
    /// report success.
    /// Throws `ZMQError` for everything else — e.g. `EFSM` on a REQ socket out of turn,
    /// `EHOSTUNREACH` from a ROUTER with `routerMandatory` and an unknown routing id.
    @discardableResult
    public func send(_ frames: [Frame], dontWait: Bool = false) throws -> Bool {
        let handle = try openHandle("send")
        let last = frames.count - 1
        guard last >= 0 else { return true }
        var message = zmq_msg_t()
        for index in 0...last {
            var flags: Int32 = index < last ? ZMQ_SNDMORE : 0
            // Only the first part can meet the high-water mark: once it is queued,
            // libzmq accepts the rest of the message without blocking.
            if dontWait && index == 0 { flags |= ZMQ_DONTWAIT }
            if try !sendPart(handle, &message, frames[index], flags) {
                if index == 0 { return false }
                // Unreachable in practice (see above); never report a torn message
                // as "would block".
                throw ZMQError(errno: CZeroMQ_EAGAIN(), operation: "send(part \(index) of \(frames.count))")
            }
        }
        return true
    }

    /// A ROUTER's reply: the routing frames, the empty delimiter, then `body`, sent as one
    /// message without building a frame list. See `send(_:dontWait:)` for the result.
    @discardableResult
    public func sendRouted(_ routing: ArraySlice<Frame>, body: UnsafeRawBufferPointer, dontWait: Bool = false) throws -> Bool {
        // A concrete slice, not `some Collection`: a generic here is not specialized from
        // the daemon's module, and its iterator's witness calls cost ~1 600 instructions a reply.
        let handle = try openHandle("send")
        var message = zmq_msg_t()
        var first = true
        for frame in routing {
            guard try sendPart(handle, &message, frame, ZMQ_SNDMORE | (dontWait && first ? ZMQ_DONTWAIT : 0)) else {
                if first { return false }
                throw ZMQError(errno: CZeroMQ_EAGAIN(), operation: "send(routing frame)")
            }
            first = false
        }
        let delimiter = UnsafeRawBufferPointer(start: nil, count: 0)
        guard try sendPart(handle, &message, delimiter, ZMQ_SNDMORE | (dontWait && first ? ZMQ_DONTWAIT : 0)) else {
            if first { return false }
            throw ZMQError(errno: CZeroMQ_EAGAIN(), operation: "send(delimiter)")
        }
        guard try sendPart(handle, &message, body, 0) else {
            throw ZMQError(errno: CZeroMQ_EAGAIN(), operation: "send(body)")
        }
        return true
    }

    /// A PUB's two-part message, `topic` then `body`, without building a frame list. See
    /// `send(_:dontWait:)` for the result.
    @discardableResult
    public func send(topic: String, body: UnsafeRawBufferPointer, dontWait: Bool = false) throws -> Bool {
        let handle = try openHandle("send")
        var message = zmq_msg_t()
        var text = topic
        let sent = try text.withUTF8 { try sendPart(handle, &message, UnsafeRawBufferPointer($0), ZMQ_SNDMORE | (dontWait ? ZMQ_DONTWAIT : 0)) }
        guard sent else { return false }
        guard try sendPart(handle, &message, body, 0) else {
            throw ZMQError(errno: CZeroMQ_EAGAIN(), operation: "send(body)")
        }
        return true
    }

    /// Sends a single-part message. See `send(_:dontWait:)` for the meaning of the result.
    @discardableResult
    public func send(_ frame: Frame, dontWait: Bool = false) throws -> Bool {
        let handle = try openHandle("send")
        var message = zmq_msg_t()
        return try sendPart(handle, &message, frame, dontWait ? ZMQ_DONTWAIT : 0)
    }

    /// Copies `frame` into `message` and sends it; false on EAGAIN, retries EINTR.
    @inline(__always)
    private func sendPart(
        _ handle: UnsafeMutableRawPointer, _ message: inout zmq_msg_t, _ frame: Frame, _ flags: Int32
    ) throws -> Bool {
        try frame.withUnsafeBytes { try sendPart(handle, &message, $0, flags) }
    }

    /// Copies `bytes` into `message` and sends it; false on EAGAIN, retries EINTR.
    @inline(__always)
    private func sendPart(
        _ handle: UnsafeMutableRawPointer, _ message: inout zmq_msg_t, _ bytes: UnsafeRawBufferPointer, _ flags: Int32
    ) throws -> Bool {
        while true {
            if zmq_msg_init_size(&message, bytes.count) != 0 {
                throw ZMQError.last("send (zmq_msg_init_size \(bytes.count))")
            }
            if bytes.count > 0 {
                zmq_msg_data(&message).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
            }
            // On success libzmq takes the content and leaves `message` empty; on
            // failure it stays ours to close.
            if zmq_msg_send(&message, handle, flags) >= 0 { return true }
            let error = zmq_errno()
            zmq_msg_close(&message)
            if error == CZeroMQ_EINTR() { continue }
            if error == CZeroMQ_EAGAIN() { return false }
            throw ZMQError(errno: error, operation: "send")
        }
    }

    // MARK: receiving

    /// Receives one whole multipart message (all its parts, in order).
    ///
    /// Returns `nil` when nothing is ready (with `dontWait`) or when `receiveTimeout`
    /// elapses first. Blocks otherwise; a signal (`EINTR`) restarts the wait (and so
    /// restarts the receive timeout).
    public func receive(dontWait: Bool = false) throws -> [Frame]? {
        try receive(dontWait: dontWait, userID: nil)
    }

    /// Receives one whole message and the User-Id its peer was admitted with (the ZAP
    /// handler's answer; nil without one) — who is calling, on a CURVE server.
    public func receiveWithUserID(dontWait: Bool = false) throws -> (frames: [Frame], userID: String?)? {
        var userID: String?
        guard let frames = try receive(dontWait: dontWait, userID: &userID) else { return nil }
        return (frames, userID)
    }

    private func receive(dontWait: Bool, userID: UnsafeMutablePointer<String?>?) throws -> [Frame]? {
        let handle = try openHandle("receive")
        var message = zmq_msg_t()
        zmq_msg_init(&message)
        defer { zmq_msg_close(&message) }

        guard let first = try receivePart(handle, &message, dontWait ? ZMQ_DONTWAIT : 0) else {
            return nil
        }
        // The User-Id travels on the peer's own frames (a ROUTER's routing-id frame is made
        // locally and carries none): take it from the first part that has it.
        if let userID {
            userID.pointee = zmq_msg_gets(&message, "User-Id").map { String(cString: $0) }
        }
        var frames = [first]
        // ZeroMQ delivers a message atomically: once the first part is here, the
        // others are too, so these calls never wait.
        while zmq_msg_more(&message) != 0 {
            guard let part = try receivePart(handle, &message, 0) else {
                throw ZMQError(errno: CZeroMQ_EAGAIN(), operation: "receive(part \(frames.count))")
            }
            if let userID, userID.pointee == nil {
                userID.pointee = zmq_msg_gets(&message, "User-Id").map { String(cString: $0) }
            }
            frames.append(part)
        }
        return frames
    }

    /// Receives one part into `message` and copies it out; nil on EAGAIN, retries EINTR.
    @inline(__always)
    private func receivePart(
        _ handle: UnsafeMutableRawPointer, _ message: inout zmq_msg_t, _ flags: Int32
    ) throws -> Frame? {
        while zmq_msg_recv(&message, handle, flags) < 0 {
            let error = zmq_errno()
            if error == CZeroMQ_EINTR() { continue }
            if error == CZeroMQ_EAGAIN() { return nil }
            throw ZMQError(errno: error, operation: "receive")
        }
        let size = zmq_msg_size(&message)
        guard size > 0, let source = zmq_msg_data(&message) else { return [] }
        // Array(_: UnsafeRawBufferPointer) rather than Array(unsafeUninitializedCapacity:):
        // the latter looks up its storage class in the runtime on every call (Linux), some
        // 300 instructions per frame in callgrind.
        return Frame(UnsafeRawBufferPointer(start: source, count: size))
    }
}

/// Sockets must never cross threads (libzmq sockets are not thread-safe).
@available(*, unavailable, message: "a ZMQSocket must stay on the thread that uses it")
extension ZMQSocket: Sendable {}
