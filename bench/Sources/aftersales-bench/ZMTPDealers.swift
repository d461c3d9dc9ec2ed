// DEALER callers that speak ZMTP 3.0 themselves, in the driver's own thread: the lean
// load generator, as redis-benchmark (RESP over its ae loop) and pgbench are for the
// peers they drive. With libzmq the driver pays its I/O thread and the signalling
// between the two threads (perf: ~55 % of the driver's CPU in libzmq's I/O thread,
// `poll` and `getpid` in the caller's) for every call, on the same two cores as the
// daemon; row 10 compares the daemon with servers driven by C programs that pay none
// of that. NULL mechanism only (no CURVE): the rows that need CURVE use libzmq.
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// `connections` DEALER connections to one `tcp://IPv4:port` endpoint, each a
/// non-blocking TCP socket speaking ZMTP 3.0 (NULL), waited on together with epoll.
final class ZMTPDealers: CallerConnections {
    private final class Connection {
        let fd: Int32
        var inbox = [UInt8](repeating: 0, count: 1 << 16)
        var start = 0, end = 0
        var sawDelimiter = false
        init(fd: Int32) { self.fd = fd }
    }
    private var connections: [Connection] = []
    private let epoll: Epoll
    private var outbox: [UInt8] = []

    /// Connects and completes the ZMTP handshake of every connection (blocking).
    init(endpoint: String, connections count: Int) throws {
        let address = try Self.address(of: endpoint)
        epoll = try Epoll(capacity: count)
        for index in 0..<count {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { throw BenchError("socket: errno \(errno)") }
            var on: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size))
            var target = address
            let connected = withUnsafePointer(to: &target) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard connected == 0 else { throw BenchError("connect \(endpoint): errno \(errno)") }
            try Self.handshake(fd)
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            try epoll.add(fd, token: index)
            connections.append(Connection(fd: fd))
        }
    }

    deinit {
        for connection in connections { close(connection.fd) }
    }

    func send(_ index: Int, body: [UInt8]) throws {
        outbox.removeAll(keepingCapacity: true)
        outbox.append(contentsOf: [0x01, 0x00] as [UInt8])  // the empty delimiter, MORE
        Self.appendFrameHeader(&outbox, flags: 0, size: body.count)
        outbox.append(contentsOf: body)
        try Self.writeAll(connections[index].fd, outbox)
    }

    func poll(timeoutMilliseconds: Int32, _ onReply: ([UInt8]?) throws -> Void) throws {
        try epoll.wait(timeoutMilliseconds: timeoutMilliseconds) { index in
            try readAvailable(index)
            try deliver(index, onReply)
        }
    }

    private func readAvailable(_ index: Int) throws {
        let c = connections[index]
        while true {
            if c.start == c.end { c.start = 0; c.end = 0 }
            if c.end == c.inbox.count {
                if c.start > 0 {
                    c.inbox.withUnsafeMutableBytes { buffer in
                        let base = buffer.baseAddress!
                        base.copyMemory(from: base + c.start, byteCount: c.end - c.start)
                    }
                    c.end -= c.start
                    c.start = 0
                } else {
                    c.inbox.append(contentsOf: repeatElement(0, count: c.inbox.count))
                }
            }
            let room = c.inbox.count - c.end
            let got = c.inbox.withUnsafeMutableBytes { read(c.fd, $0.baseAddress! + c.end, room) }
            if got > 0 {
                c.end += got
                // A short read took all there was; epoll (level-triggered) tells of more.
                if got < room { return }
                continue
            }
            if got == 0 { throw BenchError("the daemon closed connection \(index)") }
            if errno == EAGAIN || errno == EWOULDBLOCK { return }
            if errno == EINTR { continue }
            throw BenchError("read: errno \(errno)")
        }
    }

    private func deliver(_ index: Int, _ onReply: ([UInt8]?) throws -> Void) throws {
        let c = connections[index]
        while true {
            let available = c.end - c.start
            guard available >= 2 else { return }
            let flags = c.inbox[c.start]
            let headerSize: Int, size: Int
            if flags & 0x02 != 0 {
                guard available >= 9 else { return }
                headerSize = 9
                size = c.inbox[(c.start + 1)..<(c.start + 9)].reduce(0) { $0 << 8 | Int($1) }
            } else {
                headerSize = 2
                size = Int(c.inbox[c.start + 1])
            }
            guard available >= headerSize + size else { return }
            let bodyStart = c.start + headerSize
            c.start = bodyStart + size
            if flags & 0x04 != 0 {
                // A command (ZMTP 3.1 PING): nothing the daemon sends today; tolerated, not answered.
                continue
            }
            if flags & 0x01 != 0 {
                c.sawDelimiter = size == 0
                continue
            }
            let wellFormed = c.sawDelimiter
            c.sawDelimiter = false
            if !wellFormed { throw BenchError("a reply without its delimiter frame on connection \(index)") }
            try onReply(Array(c.inbox[bodyStart..<(bodyStart + size)]))
        }
    }

    // MARK: the wire

    private static func address(of endpoint: String) throws -> sockaddr_in {
        guard endpoint.hasPrefix("tcp://"), let colon = endpoint.lastIndex(of: ":"),
              let port = UInt16(endpoint[endpoint.index(after: colon)...]) else {
            throw BenchError("--raw-zmtp needs a tcp://IPv4:port endpoint, not \(endpoint)")
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        let host = String(endpoint[endpoint.index(endpoint.startIndex, offsetBy: 6)..<colon])
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { throw BenchError("not an IPv4 address: \(host)") }
        return address
    }

    private static func appendFrameHeader(_ bytes: inout [UInt8], flags: UInt8, size: Int) {
        if size <= 255 {
            bytes.append(flags)
            bytes.append(UInt8(size))
        } else {
            bytes.append(flags | 0x02)
            for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: size >> shift)) }
        }
    }

    /// The greeting (signature, version 3.0, NULL, as client) and READY (Socket-Type
    /// DEALER, an empty Identity, as libzmq's DEALER sends); reads the peer's two.
    private static func handshake(_ fd: Int32) throws {
        var greeting: [UInt8] = [0xFF] + [UInt8](repeating: 0, count: 8) + [0x7F, 3, 0]
        greeting += Array("NULL".utf8) + [UInt8](repeating: 0, count: 16)
        greeting += [UInt8](repeating: 0, count: 32)  // as-server 0, filler
        var ready: [UInt8] = [5] + Array("READY".utf8)
        for (name, value) in [("Socket-Type", "DEALER"), ("Identity", "")] {
            ready.append(UInt8(name.utf8.count))
            ready += Array(name.utf8)
            ready += [0, 0, 0, UInt8(value.utf8.count)]
            ready += Array(value.utf8)
        }
        var out = greeting
        appendFrameHeader(&out, flags: 0x04, size: ready.count)
        out += ready
        try writeAll(fd, out)
        let peerGreeting = try readExactly(fd, 64)
        guard peerGreeting[0] == 0xFF, peerGreeting[9] == 0x7F, peerGreeting[10] >= 3 else {
            throw BenchError("the peer does not speak ZMTP 3")
        }
        let header = try readExactly(fd, 2)
        guard header[0] & 0x04 != 0 else { throw BenchError("expected the peer's READY command") }
        let size = header[0] & 0x02 != 0
            ? try readExactly(fd, 7).reduce(Int(header[1])) { $0 << 8 | Int($1) }
            : Int(header[1])
        let command = try readExactly(fd, size)
        guard command.count > 6, command[0] == 5, Array(command[1...5]) == Array("READY".utf8) else {
            throw BenchError("the peer refused the handshake: \(String(decoding: command, as: UTF8.self))")
        }
    }

    private static func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + sent, bytes.count - sent) }
            if n > 0 { sent += n; continue }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                // The daemon reads continuously; wait for room rather than keep a queue.
                var item = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                _ = Glibc.poll(&item, 1, 1_000)
                continue
            }
            throw BenchError("write: errno \(errno)")
        }
    }

    private static func readExactly(_ fd: Int32, _ count: Int) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var got = 0
        while got < count {
            let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + got, count - got) }
            if n > 0 { got += n; continue }
            if n < 0 && errno == EINTR { continue }
            throw BenchError(n == 0 ? "the peer closed during the handshake" : "read: errno \(errno)")
        }
        return bytes
    }
}
