import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A loopback TCP proxy in front of a daemon port, for faults a test needs to make:
/// answers that never come back although the daemon applied the call (`dropReplies`), and
/// connections that break and cannot come back for a while (`cutAll`, `refusing`).
///
/// It works on ZeroMQ's wire protocol (ZMTP 3) just enough to drop *messages* while
/// letting the handshake through: the 64-byte greeting and command frames (READY, ...)
/// always pass, so the client's socket believes it is connected.
final class TCPProxy: @unchecked Sendable {
    // @unchecked: every mutable field is guarded by `lock`.
    private let lock = NSLock()
    private let listenFD: Int32
    private let targetPort: UInt16
    private var dropRepliesForNext = 0
    private var _refusing = false
    private var _accepted = 0
    private var _swallowedFrames = 0
    private var _forwardedBytes = 0
    private var open: [Int32] = []
    private var stopped = false

    /// The port the proxy listens on.
    let port: UInt16
    /// "tcp://127.0.0.1:PORT".
    var endpoint: String { "tcp://127.0.0.1:\(port)" }

    /// Listens on a free loopback port and forwards to `target` ("tcp://127.0.0.1:PORT").
    init(to target: String) throws {
        guard let portText = target.split(separator: ":").last, let targetPort = UInt16(portText) else {
            throw HelperError("cannot read a port in \(target)")
        }
        self.targetPort = targetPort
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        listenFD = fd
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = loopback(port: 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Bool in
                bind(fd, pointer, length) == 0 && listen(fd, 64) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard ok else { throw HelperError("proxy cannot listen: errno \(errno)") }
        port = UInt16(bigEndian: address.sin_port)
        let acceptor = Thread { [self] in acceptLoop() }
        acceptor.start()
    }

    /// The next `count` connections pass the handshake but swallow every message the
    /// daemon sends back.
    func dropReplies(onNext count: Int) { lock.withLock { dropRepliesForNext = count } }

    /// While true, new connections are closed at once.
    var refusing: Bool {
        get { lock.withLock { _refusing } }
        set { lock.withLock { _refusing = newValue } }
    }

    /// Connections accepted so far.
    var accepted: Int { lock.withLock { _accepted } }
    /// Bytes passed on so far (both directions).
    var forwardedBytes: Int { lock.withLock { _forwardedBytes } }
    /// Message frames swallowed so far.
    var swallowedFrames: Int { lock.withLock { _swallowedFrames } }

    /// Breaks every open connection (both sides see it closed).
    func cutAll() {
        let fds = lock.withLock { open }
        for fd in fds { shutdown(fd, Int32(SHUT_RDWR)) }
    }

    /// Stops listening and breaks every connection.
    func stop() {
        lock.withLock { stopped = true }
        shutdown(listenFD, Int32(SHUT_RDWR))
        cutAll()
    }

    deinit { close(listenFD) }

    private func acceptLoop() {
        while true {
            let client = accept(listenFD, nil, nil)
            if client < 0 {
                if errno == EINTR { continue }
                return
            }
            let (refuse, drop, done) = lock.withLock { () -> (Bool, Bool, Bool) in
                let drop = dropRepliesForNext > 0
                if drop, !_refusing { dropRepliesForNext -= 1 }
                return (_refusing, drop, stopped)
            }
            if refuse || done {
                close(client)
                continue
            }
            let upstream = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = loopback(port: targetPort)
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(upstream, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
                }
            }
            guard connected else {
                close(client)
                close(upstream)
                continue
            }
            lock.withLock {
                _accepted += 1
                open += [client, upstream]
            }
            let pair = PairClose(client, upstream) { [self] in
                lock.withLock { open.removeAll { $0 == client || $0 == upstream } }
            }
            Thread { [self] in pump(from: client, to: upstream, filter: nil, pair) }.start()
            let filter = drop ? ZMTPMessageFilter { [self] in lock.withLock { _swallowedFrames += 1 } } : nil
            Thread { [self] in pump(from: upstream, to: client, filter: filter, pair) }.start()
        }
    }

    private func pump(from source: Int32, to sink: Int32, filter: ZMTPMessageFilter?, _ pair: PairClose) {
        var buffer = [UInt8](repeating: 0, count: 65536)
        loop: while true {
            let n = read(source, &buffer, buffer.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            let chunk = Array(buffer[0..<n])
            let out = filter?.pass(chunk) ?? chunk
            lock.withLock { _forwardedBytes += out.count }
            var sent = 0
            while sent < out.count {
                let w = out[sent...].withUnsafeBytes { write(sink, $0.baseAddress, $0.count) }
                if w < 0 && errno == EINTR { continue }
                if w <= 0 { break loop }
                sent += w
            }
        }
        pair.done()
    }
}

/// Closes both sockets of a proxied connection once both pumps have finished.
private final class PairClose: @unchecked Sendable {
    private let lock = NSLock()
    private var remaining = 2
    private let a: Int32, b: Int32
    private let onClose: () -> Void

    init(_ a: Int32, _ b: Int32, onClose: @escaping () -> Void) {
        self.a = a
        self.b = b
        self.onClose = onClose
    }

    func done() {
        shutdown(a, Int32(SHUT_RDWR))
        shutdown(b, Int32(SHUT_RDWR))
        let last = lock.withLock { () -> Bool in
            remaining -= 1
            return remaining == 0
        }
        if last {
            onClose()
            close(a)
            close(b)
        }
    }
}

/// Lets the ZMTP greeting and command frames through and swallows message frames.
final class ZMTPMessageFilter: @unchecked Sendable {
    // @unchecked: used by one pump thread only.
    private var greetingLeft = 64
    private var header: [UInt8] = []
    private var bodyLeft: UInt64 = 0
    private var forwarding = true
    private let onSwallow: () -> Void

    init(onSwallow: @escaping () -> Void) { self.onSwallow = onSwallow }

    func pass(_ chunk: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var index = 0
        while index < chunk.count {
            let left = chunk.count - index
            if greetingLeft > 0 {
                let n = min(greetingLeft, left)
                out += chunk[index..<index + n]
                greetingLeft -= n
                index += n
            } else if bodyLeft > 0 {
                let n = Int(min(bodyLeft, UInt64(left)))
                if forwarding { out += chunk[index..<index + n] }
                bodyLeft -= UInt64(n)
                index += n
            } else {
                header.append(chunk[index])
                index += 1
                let flags = header[0]
                let needed = flags & 0x02 != 0 ? 9 : 2
                if header.count == needed {
                    bodyLeft = header.dropFirst().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                    forwarding = flags & 0x04 != 0  // command frames pass, message frames do not
                    if forwarding { out += header } else { onSwallow() }
                    header = []
                }
            }
        }
        return out
    }
}

private func loopback(port: UInt16) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = port.bigEndian
    return address
}
