// The throughput driver's connections to the daemon, two ways: libzmq DEALER sockets
// (CURVE, the cluster, the comparisons of the daemon with itself) and DEALERs that speak
// ZMTP from the driver's own thread (`ZMTPDealers`, the lean load generator of rows 2
// and 10). The driver sends and takes replies the same way through either.
import AfterSalesRPC
import CEpoll
import Foundation
import ZeroMQ

#if canImport(Glibc)
import Glibc
#endif

/// Connections a driver sends calls on and takes whole replies from.
protocol CallerConnections: AnyObject {
    /// Sends `[delimiter, body]` on connection `index`, as a DEALER does.
    func send(_ index: Int, body: [UInt8]) throws
    /// Waits up to `timeoutMilliseconds` for replies, then hands each reply's body to
    /// `onReply` (nil for a reply that is not `[delimiter, envelope]`).
    func poll(timeoutMilliseconds: Int32, _ onReply: ([UInt8]?) throws -> Void) throws
}

/// An epoll instance: descriptors registered with a token, `wait` hands back the tokens
/// of those that are readable (level-triggered).
final class Epoll {
    private let fd: Int32
    private var events: [epoll_event]

    /// An epoll instance for up to `capacity` descriptors.
    init(capacity: Int) throws {
        fd = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard fd >= 0 else { throw BenchError("epoll_create1: errno \(errno)") }
        events = Array(repeating: epoll_event(), count: max(1, capacity))
    }

    deinit { close(fd) }

    /// Watches `descriptor` for input; `wait` names it by `token`.
    func add(_ descriptor: Int32, token: Int) throws {
        var event = epoll_event()
        event.events = EPOLLIN.rawValue
        event.data.u64 = UInt64(token)
        guard epoll_ctl(fd, EPOLL_CTL_ADD, descriptor, &event) == 0 else { throw BenchError("epoll_ctl: errno \(errno)") }
    }

    /// Waits up to `timeoutMilliseconds` (0: just look), then calls `body` with the token of
    /// each readable descriptor.
    func wait(timeoutMilliseconds: Int32, _ body: (Int) throws -> Void) rethrows {
        let fired = events.withUnsafeMutableBufferPointer {
            epoll_wait(fd, $0.baseAddress, Int32($0.count), timeoutMilliseconds)
        }
        for event in events.prefix(Int(max(0, fired))) { try body(Int(event.data.u64)) }
    }
}

/// libzmq DEALER sockets, waited on at the cost of the ones that fired, not of all of them.
///
/// `zmq_poll` reads `ZMQ_EVENTS` of every socket twice per call (each read drains that
/// socket's command mailbox: a syscall and a `getpid`), so a driver of 50 callers paid
/// ~100 of those per reply — a quarter of its CPU in `perf`, where redis-benchmark pays
/// one `epoll_wait`. Here epoll watches the sockets' `ZMQ_FD`s, and the sockets drained
/// are those whose descriptor fired plus those sent on since. The descriptor only says
/// "look at the socket", and a send may consume that signal; a socket drained until
/// `receive(dontWait:)` returns nil needs nothing more.
final class LibzmqDealers: CallerConnections {
    private let sockets: [ZMQSocket]
    private let epoll: Epoll
    /// Sockets to drain on the next `poll`, each once.
    private var due: [Int]
    private var isDue: [Bool]
    /// The socket being drained: a send on it needs no second look.
    private var draining: Int?

    init(_ sockets: [ZMQSocket]) throws {
        self.sockets = sockets
        epoll = try Epoll(capacity: sockets.count)
        for (index, socket) in sockets.enumerated() { try epoll.add(try socket.fileDescriptor, token: index) }
        // Every socket is looked at once first: a signal may predate the registration.
        due = Array(sockets.indices)
        isDue = Array(repeating: true, count: sockets.count)
    }

    func send(_ index: Int, body: [UInt8]) throws {
        try sockets[index].send(WireFrames.dealerCall(body: body))
        if index != draining { markDue(index) }
    }

    func poll(timeoutMilliseconds: Int32, _ onReply: ([UInt8]?) throws -> Void) throws {
        epoll.wait(timeoutMilliseconds: due.isEmpty ? timeoutMilliseconds : 0) { markDue($0) }
        let ready = due
        due.removeAll(keepingCapacity: true)
        for index in ready { isDue[index] = false }
        for index in ready {
            draining = index
            defer { draining = nil }
            while let frames = try sockets[index].receive(dontWait: true) { try onReply(WireFrames.dealerReply(frames)) }
        }
    }

    private func markDue(_ index: Int) {
        if !isDue[index] { isDue[index] = true; due.append(index) }
    }
}
