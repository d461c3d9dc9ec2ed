import CZeroMQ

/// What a poller item waits for, or what fired for it.
public struct PollEvents: OptionSet, Sendable, Hashable {
    /// The `zmq_pollitem_t.events` / `revents` bits.
    public let rawValue: Int16
    /// Wraps raw `ZMQ_POLL*` bits.
    public init(rawValue: Int16) { self.rawValue = rawValue }

    /// A whole message can be received (socket) / the descriptor is readable (`ZMQ_POLLIN`).
    public static let readable = PollEvents(rawValue: Int16(ZMQ_POLLIN))
    /// A message can be sent without blocking / the descriptor is writable (`ZMQ_POLLOUT`).
    public static let writable = PollEvents(rawValue: Int16(ZMQ_POLLOUT))
    /// An error condition on a raw descriptor (`ZMQ_POLLERR`); never set for sockets.
    public static let error = PollEvents(rawValue: Int16(ZMQ_POLLERR))
}

/// Waits on several ZeroMQ sockets and raw file descriptors at once (`zmq_poll`).
///
/// Build it once, then call `poll` in the loop and look at `revents(_:)` for each item
/// index `add` returned. Items are ZeroMQ sockets or plain descriptors — an eventfd or
/// a pipe is the usual way to wake a loop from another thread.
///
/// The poller keeps its sockets alive (strong references), so it is as thread-bound as
/// they are: use it on the thread that owns them. Polling a socket that has since been
/// closed throws `ENOTSOCK`.
///
/// Socket readiness is level-triggered here (unlike the raw `ZMQ_FD`): `.readable`
/// stays set while a message is waiting.
public struct ZMQPoller {
    private var items: [zmq_pollitem_t] = []
    private var sockets: [ZMQSocket?] = []

    public init() {}

    /// The number of items.
    public var count: Int { items.count }

    /// Adds a socket; returns its item index.
    @discardableResult
    public mutating func add(_ socket: ZMQSocket, events: PollEvents = .readable) -> Int {
        items.append(zmq_pollitem_t(socket: socket.handle, fd: 0, events: events.rawValue, revents: 0))
        sockets.append(socket)
        return items.count - 1
    }

    /// Adds a raw file descriptor; returns its item index. The poller does not own the
    /// descriptor (it never closes it).
    @discardableResult
    public mutating func add(fileDescriptor: Int32, events: PollEvents = .readable) -> Int {
        items.append(zmq_pollitem_t(socket: nil, fd: zmq_fd_t(fileDescriptor), events: events.rawValue, revents: 0))
        sockets.append(nil)
        return items.count - 1
    }

    /// Changes what item `index` waits for (e.g. add `.writable` only while there is
    /// something to send; an empty set parks the item).
    public mutating func setEvents(_ index: Int, _ events: PollEvents) {
        items[index].events = events.rawValue
    }

    /// Waits until at least one item is ready or `timeoutMilliseconds` pass (-1 =
    /// forever, 0 = just look). Returns how many items are ready (0 on timeout).
    /// A signal interrupting the wait (`EINTR`) returns 0 with no events set, rather
    /// than throwing: the caller's loop just goes round again.
    public mutating func poll(timeoutMilliseconds: Int) throws -> Int {
        for index in items.indices {
            items[index].revents = 0
            if let socket = sockets[index] {
                guard let handle = socket.handle else {
                    throw ZMQError(errno: ZMQError.notASocket, operation: "poll(item \(index): socket closed)")
                }
                items[index].socket = handle
            }
        }
        let ready = items.withUnsafeMutableBufferPointer {
            zmq_poll($0.baseAddress, Int32($0.count), timeoutMilliseconds)
        }
        if ready >= 0 { return Int(ready) }
        let error = zmq_errno()
        if error == CZeroMQ_EINTR() {
            for index in items.indices { items[index].revents = 0 }
            return 0
        }
        throw ZMQError(errno: error, operation: "poll")
    }

    /// What fired for item `index` in the last `poll`.
    public func revents(_ index: Int) -> PollEvents {
        PollEvents(rawValue: items[index].revents)
    }

    /// Whether item `index` was readable in the last `poll`.
    public func isReadable(_ index: Int) -> Bool { revents(index).contains(.readable) }
}
