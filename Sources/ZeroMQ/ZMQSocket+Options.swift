import CZeroMQ

// Socket options as typed setters and throwing getters. Setters are functions rather
// than property setters because setting an option can fail (Swift property setters
// cannot throw). Times are milliseconds throughout, as in libzmq.
extension ZMQSocket {
    // MARK: lifecycle and limits

    /// How long (ms) `close` lets queued outgoing messages try to leave: 0 = discard at
    /// once (this library's default), -1 = wait until delivered (libzmq's default; can
    /// hang shutdown forever when the peer is gone).
    public func setLinger(_ milliseconds: Int32) throws { try setInt32(ZMQ_LINGER, "ZMQ_LINGER", milliseconds) }
    /// See `setLinger(_:)`.
    public var linger: Int32 { get throws { try int32Option(ZMQ_LINGER, "ZMQ_LINGER") } }

    /// The largest inbound frame (bytes; libzmq checks each part of a message on its
    /// own) this socket accepts; -1 = no limit (the default).
    /// A peer that sends a bigger frame is **disconnected** by libzmq: the frame is
    /// dropped, nothing is received, the sender is not told. A connecting peer will
    /// reconnect; messages it had already written to that connection are lost too.
    /// Set it before `bind`/`connect` — it applies to connections made afterwards.
    public func setMaxMessageSize(_ bytes: Int64) throws { try setInt64(ZMQ_MAXMSGSIZE, "ZMQ_MAXMSGSIZE", bytes) }
    /// See `setMaxMessageSize(_:)`.
    public var maxMessageSize: Int64 { get throws { try int64Option(ZMQ_MAXMSGSIZE, "ZMQ_MAXMSGSIZE") } }

    /// How many whole messages may queue for sending, per peer (default 1000; 0 = no
    /// limit). What happens at the limit depends on the pattern: PUB and ROUTER (unless
    /// `routerMandatory`) drop; the others block, or `send` returns false.
    public func setSendHighWaterMark(_ messages: Int32) throws { try setInt32(ZMQ_SNDHWM, "ZMQ_SNDHWM", messages) }
    /// See `setSendHighWaterMark(_:)`.
    public var sendHighWaterMark: Int32 { get throws { try int32Option(ZMQ_SNDHWM, "ZMQ_SNDHWM") } }

    /// How many whole messages may queue on receipt, per peer (default 1000; 0 = no limit).
    public func setReceiveHighWaterMark(_ messages: Int32) throws { try setInt32(ZMQ_RCVHWM, "ZMQ_RCVHWM", messages) }
    /// See `setReceiveHighWaterMark(_:)`.
    public var receiveHighWaterMark: Int32 { get throws { try int32Option(ZMQ_RCVHWM, "ZMQ_RCVHWM") } }

    /// How long (ms) a blocking `send` may wait before returning false; -1 = forever
    /// (default), 0 = never wait.
    public func setSendTimeout(_ milliseconds: Int32) throws { try setInt32(ZMQ_SNDTIMEO, "ZMQ_SNDTIMEO", milliseconds) }
    /// See `setSendTimeout(_:)`.
    public var sendTimeout: Int32 { get throws { try int32Option(ZMQ_SNDTIMEO, "ZMQ_SNDTIMEO") } }

    /// How long (ms) a blocking `receive` may wait before returning nil; -1 = forever
    /// (default), 0 = never wait.
    public func setReceiveTimeout(_ milliseconds: Int32) throws { try setInt32(ZMQ_RCVTIMEO, "ZMQ_RCVTIMEO", milliseconds) }
    /// See `setReceiveTimeout(_:)`.
    public var receiveTimeout: Int32 { get throws { try int32Option(ZMQ_RCVTIMEO, "ZMQ_RCVTIMEO") } }

    // MARK: routing and connection behaviour

    /// ROUTER only. When true, sending to an unknown routing id throws `EHOSTUNREACH`
    /// (`ZMQError.isHostUnreachable`) and a full peer queue makes `send` block/return
    /// false, instead of libzmq silently dropping the message (the default). Write-only.
    /// ZMQ_AFFINITY: which of the context's I/O threads (bit i = thread i) serve the
    /// connections made or accepted after this call; 0 = any.
    public func setAffinity(_ ioThreadMask: UInt64) throws {
        try setInt64(ZMQ_AFFINITY, "ZMQ_AFFINITY", Int64(bitPattern: ioThreadMask))
    }

    public func setRouterMandatory(_ enabled: Bool) throws { try setInt32(ZMQ_ROUTER_MANDATORY, "ZMQ_ROUTER_MANDATORY", enabled ? 1 : 0) }

    /// When true, messages are queued only for completed connections: with no peer
    /// connected, `send` blocks / returns false instead of queueing for a peer that may
    /// never come. Default false. Set before `connect`.
    public func setImmediate(_ enabled: Bool) throws { try setInt32(ZMQ_IMMEDIATE, "ZMQ_IMMEDIATE", enabled ? 1 : 0) }
    /// See `setImmediate(_:)`.
    public var immediate: Bool { get throws { try int32Option(ZMQ_IMMEDIATE, "ZMQ_IMMEDIATE") != 0 } }

    /// DEALER/ROUTER/REQ. When true, connecting sends an empty message to the peer, so a
    /// ROUTER learns the new peer's routing id at once. Write-only; set before `connect`.
    public func setProbeRouter(_ enabled: Bool) throws { try setInt32(ZMQ_PROBE_ROUTER, "ZMQ_PROBE_ROUTER", enabled ? 1 : 0) }

    /// The identity a ROUTER peer sees for this socket (1...255 bytes, not starting with
    /// a zero byte). Set before `connect`. Default: the ROUTER makes one up.
    public func setRoutingID(_ id: Frame) throws { try setBytes(ZMQ_ROUTING_ID, "ZMQ_ROUTING_ID", id) }
    /// See `setRoutingID(_:)`.
    public var routingID: Frame { get throws { try bytesOption(ZMQ_ROUTING_ID, "ZMQ_ROUTING_ID", capacity: 256) } }

    /// Milliseconds before the first reconnection attempt after a lost connection
    /// (default 100; -1 = never reconnect).
    public func setReconnectInterval(_ milliseconds: Int32) throws { try setInt32(ZMQ_RECONNECT_IVL, "ZMQ_RECONNECT_IVL", milliseconds) }
    /// Upper bound (ms) for the exponential back-off of reconnection attempts (default
    /// 0 = no back-off, always `reconnectInterval`).
    public func setReconnectIntervalMax(_ milliseconds: Int32) throws { try setInt32(ZMQ_RECONNECT_IVL_MAX, "ZMQ_RECONNECT_IVL_MAX", milliseconds) }

    // MARK: heartbeats (ZMTP 3.1 PING/PONG)

    /// Send a PING every `milliseconds` on each connection (0 = off, the default).
    public func setHeartbeatInterval(_ milliseconds: Int32) throws { try setInt32(ZMQ_HEARTBEAT_IVL, "ZMQ_HEARTBEAT_IVL", milliseconds) }
    /// See `setHeartbeatInterval(_:)`.
    public var heartbeatInterval: Int32 { get throws { try int32Option(ZMQ_HEARTBEAT_IVL, "ZMQ_HEARTBEAT_IVL") } }
    /// Close a connection when no traffic arrives within `milliseconds` after a PING
    /// (default: the heartbeat interval).
    public func setHeartbeatTimeout(_ milliseconds: Int32) throws { try setInt32(ZMQ_HEARTBEAT_TIMEOUT, "ZMQ_HEARTBEAT_TIMEOUT", milliseconds) }
    /// See `setHeartbeatTimeout(_:)`.
    public var heartbeatTimeout: Int32 { get throws { try int32Option(ZMQ_HEARTBEAT_TIMEOUT, "ZMQ_HEARTBEAT_TIMEOUT") } }
    /// Ask the peer to drop the connection if it hears nothing from us for
    /// `milliseconds` (carried in our PINGs; whole tenths of a second, at most 6553599).
    public func setHeartbeatTTL(_ milliseconds: Int32) throws { try setInt32(ZMQ_HEARTBEAT_TTL, "ZMQ_HEARTBEAT_TTL", milliseconds) }
    /// See `setHeartbeatTTL(_:)`.
    public var heartbeatTTL: Int32 { get throws { try int32Option(ZMQ_HEARTBEAT_TTL, "ZMQ_HEARTBEAT_TTL") } }

    // MARK: subscriptions (SUB)

    /// SUB: receive messages whose first frame starts with `prefix` (empty = all).
    /// A SUB socket receives nothing until it subscribes to something.
    public func subscribe(_ prefix: Frame) throws { try setBytes(ZMQ_SUBSCRIBE, "ZMQ_SUBSCRIBE", prefix) }
    /// SUB: `subscribe` to the UTF-8 bytes of `prefix`, e.g. `"proposal."`.
    public func subscribe(_ prefix: String) throws { try subscribe(Frame(prefix.utf8)) }
    /// SUB: remove one earlier `subscribe` of exactly `prefix`.
    public func unsubscribe(_ prefix: Frame) throws { try setBytes(ZMQ_UNSUBSCRIBE, "ZMQ_UNSUBSCRIBE", prefix) }
    /// SUB: `unsubscribe` the UTF-8 bytes of `prefix`.
    public func unsubscribe(_ prefix: String) throws { try unsubscribe(Frame(prefix.utf8)) }

    // MARK: integration with other event loops

    /// What the socket could do right now without blocking (`ZMQ_EVENTS`):
    /// `.readable` = a whole message is waiting, `.writable` = a message can be queued.
    public var events: PollEvents {
        get throws { PollEvents(rawValue: Int16(truncatingIfNeeded: try int32Option(ZMQ_EVENTS, "ZMQ_EVENTS"))) }
    }

    /// The socket's notification file descriptor (`ZMQ_FD`), for foreign event loops.
    /// It is edge-triggered and signals "check `events`", not "a message is ready":
    /// after it fires, drain with `receive(dontWait: true)` until nil and re-check
    /// `events`. `ZMQPoller` handles this for you.
    public var fileDescriptor: Int32 {
        get throws {
            let handle = try openHandle("getsockopt(ZMQ_FD)")
            var fd: zmq_fd_t = 0
            var size = MemoryLayout<zmq_fd_t>.size
            if zmq_getsockopt(handle, ZMQ_FD, &fd, &size) != 0 { throw ZMQError.last("getsockopt(ZMQ_FD)") }
            return Int32(fd)
        }
    }

    // MARK: raw access

    /// Sets an integer option libzmq defines as `int` (for options not wrapped above).
    public func setOption(_ option: Int32, _ value: Int32) throws { try setInt32(option, "option \(option)", value) }
    /// Reads an integer option libzmq defines as `int`.
    public func option(_ option: Int32) throws -> Int32 { try int32Option(option, "option \(option)") }

    // MARK: helpers

    func setInt32(_ option: Int32, _ name: @autoclosure () -> String, _ value: Int32) throws {
        let handle = try openHandle("setsockopt(\(name()))")
        var value = value
        if zmq_setsockopt(handle, option, &value, MemoryLayout<Int32>.size) != 0 {
            throw ZMQError.last("setsockopt(\(name()), \(value))")
        }
    }

    func setInt64(_ option: Int32, _ name: @autoclosure () -> String, _ value: Int64) throws {
        let handle = try openHandle("setsockopt(\(name()))")
        var value = value
        if zmq_setsockopt(handle, option, &value, MemoryLayout<Int64>.size) != 0 {
            throw ZMQError.last("setsockopt(\(name()), \(value))")
        }
    }

    func setBytes(_ option: Int32, _ name: @autoclosure () -> String, _ value: Frame) throws {
        let handle = try openHandle("setsockopt(\(name()))")
        let rc = value.withUnsafeBytes { zmq_setsockopt(handle, option, $0.baseAddress, $0.count) }
        if rc != 0 { throw ZMQError.last("setsockopt(\(name()))") }
    }

    func int32Option(_ option: Int32, _ name: @autoclosure () -> String) throws -> Int32 {
        let handle = try openHandle("getsockopt(\(name()))")
        var value: Int32 = 0
        var size = MemoryLayout<Int32>.size
        if zmq_getsockopt(handle, option, &value, &size) != 0 { throw ZMQError.last("getsockopt(\(name()))") }
        return value
    }

    func int64Option(_ option: Int32, _ name: @autoclosure () -> String) throws -> Int64 {
        let handle = try openHandle("getsockopt(\(name()))")
        var value: Int64 = 0
        var size = MemoryLayout<Int64>.size
        if zmq_getsockopt(handle, option, &value, &size) != 0 { throw ZMQError.last("getsockopt(\(name()))") }
        return value
    }

    func bytesOption(_ option: Int32, _ name: @autoclosure () -> String, capacity: Int) throws -> Frame {
        let handle = try openHandle("getsockopt(\(name()))")
        var size = capacity
        var error: Int32 = 0
        let bytes = Frame(unsafeUninitializedCapacity: capacity) { buffer, count in
            if zmq_getsockopt(handle, option, buffer.baseAddress, &size) != 0 { error = zmq_errno() }
            count = error == 0 ? size : 0
        }
        if error != 0 { throw ZMQError(errno: error, operation: "getsockopt(\(name()))") }
        return bytes
    }

    func stringOption(_ option: Int32, _ name: @autoclosure () -> String) throws -> String {
        var bytes = try bytesOption(option, name(), capacity: 1024)
        while bytes.last == 0 { bytes.removeLast() }  // libzmq counts the terminating NUL
        return String(decoding: bytes, as: UTF8.self)
    }
}
