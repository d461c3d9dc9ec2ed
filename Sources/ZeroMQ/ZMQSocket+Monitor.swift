import CZeroMQ

/// Socket events libzmq reports on a monitor socket (`zmq_socket_monitor`).
public struct ZMQSocketEvents: OptionSet, Sendable {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// A connection accepted by a bound socket.
    public static let accepted = ZMQSocketEvents(rawValue: Int32(ZMQ_EVENT_ACCEPTED))
    /// A connection closed: by the peer, or by libzmq itself (e.g. for a message over
    /// `ZMQ_MAXMSGSIZE`, which has no event of its own).
    public static let disconnected = ZMQSocketEvents(rawValue: Int32(ZMQ_EVENT_DISCONNECTED))
}

/// One event read from a monitor socket.
public struct ZMQMonitorEvent: Sendable, Equatable {
    /// The event (one of `ZMQSocketEvents`).
    public let event: ZMQSocketEvents
    /// The event's value (a file descriptor, an errno…, by event).
    public let value: UInt32
    /// The endpoint the event concerns.
    public let endpoint: String

    /// Parses libzmq's two-frame event message: 16-bit event, 32-bit value; the endpoint.
    public init?(_ frames: [Frame]) {
        guard frames.count == 2, frames[0].count >= 6 else { return nil }
        let head = frames[0]
        event = ZMQSocketEvents(rawValue: Int32(UInt16(head[0]) | UInt16(head[1]) << 8))
        value = UInt32(head[2]) | UInt32(head[3]) << 8 | UInt32(head[4]) << 16 | UInt32(head[5]) << 24
        endpoint = String(decoding: frames[1], as: UTF8.self)
    }
}

extension ZMQSocket {
    /// Starts reporting `events` of this socket on a PAIR socket bound at `endpoint`
    /// (`inproc://…`), and returns that PAIR socket, connected, for the caller to poll.
    public func monitor(_ events: ZMQSocketEvents, at endpoint: String) throws -> ZMQSocket {
        let handle = try openHandle("zmq_socket_monitor(\(endpoint))")
        if zmq_socket_monitor(handle, endpoint, events.rawValue) != 0 {
            throw ZMQError.last("zmq_socket_monitor(\(endpoint))")
        }
        let pair = try ZMQSocket(context, .pair)
        try pair.connect(endpoint)
        return pair
    }
}
