// The HTTP side of --metrics-listen: GET /metrics (Prometheus text format), /healthz
// (the loop still turns) and /readyz (the daemon serves). A scrape is a few requests a
// minute, so one thread answers them one at a time with plain sockets, away from the
// loop; a request must arrive whole within two seconds and fit in 8 KiB.
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A minimal HTTP/1.1 responder for monitoring paths.
final class MetricsEndpoint: Sendable {
    /// What a path answers: status, content type, body.
    typealias Responder = @Sendable (_ path: String) -> (status: Int, contentType: String, body: [UInt8])

    /// The address actually bound ("127.0.0.1:9464"; a port of 0 resolved).
    let boundAddress: String
    private let listener: Int32
    private let stopping = Atomic<Bool>(false)
    private let finished = Mutex(false)
    private let respond: Responder

    /// Binds `listen` ("HOST:PORT"); throws `BindFailure` when it cannot.
    init(listen: String, respond: @escaping Responder) throws {
        self.respond = respond
        guard let colon = listen.lastIndex(of: ":"), let port = UInt16(listen[listen.index(after: colon)...]) else {
            throw BindFailure(endpoint: listen, reason: "--metrics-listen wants HOST:PORT, e.g. 127.0.0.1:9464")
        }
        let host = listen[..<colon].trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        var found: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host.isEmpty ? nil : host, String(port), &hints, &found)
        guard status == 0, let first = found else {
            throw BindFailure(endpoint: listen, reason: "cannot resolve '\(host)': \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(found) }
        let fd = socket(first.pointee.ai_family, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw BindFailure(endpoint: listen, reason: String(cString: strerror(errno))) }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        guard bind(fd, first.pointee.ai_addr, first.pointee.ai_addrlen) == 0, Glibc.listen(fd, 16) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw BindFailure(endpoint: listen, reason: reason)
        }
        listener = fd
        var address = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        var hostBuffer = [CChar](repeating: 0, count: Int(NI_MAXHOST)), portBuffer = [CChar](repeating: 0, count: Int(NI_MAXSERV))
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                getnameinfo($0, length, &hostBuffer, socklen_t(hostBuffer.count), &portBuffer, socklen_t(portBuffer.count), NI_NUMERICHOST | NI_NUMERICSERV)
            }
        }
        boundAddress = "\(String(cString: hostBuffer)):\(String(cString: portBuffer))"
    }

    /// Serves on a thread of its own until `stop()`.
    func start() {
        let thread = Thread { [self] in
            serve()
            finished.withLock { $0 = true }
        }
        thread.name = "aftersalesd-metrics"
        thread.start()
    }

    /// Stops serving and closes the socket (within the accept poll's 200 ms).
    func stop() {
        stopping.store(true, ordering: .relaxed)
        for _ in 0..<50 where !finished.withLock({ $0 }) { usleep(10_000) }
    }

    private func serve() {
        defer { close(listener) }
        while !stopping.load(ordering: .relaxed) {
            var item = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            guard poll(&item, 1, 200) > 0 else { continue }
            let connection = accept(listener, nil, nil)
            guard connection >= 0 else { continue }
            answer(connection)
            close(connection)
        }
    }

    private func answer(_ connection: Int32) {
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(connection, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var request: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 2_048)
        while request.count < 8_192, !request.ends(with: [13, 10, 13, 10]) {
            let n = chunk.withUnsafeMutableBytes { recv(connection, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { return }
            request += chunk[..<n]
        }
        let line = String(decoding: request.prefix { $0 != 13 && $0 != 10 }, as: UTF8.self).split(separator: " ")
        let (status, type, body): (Int, String, [UInt8])
        if line.count < 2 {
            (status, type, body) = (400, "text/plain", Array("a request line like 'GET /metrics HTTP/1.1' was expected\n".utf8))
        } else if line[0] != "GET" && line[0] != "HEAD" {
            (status, type, body) = (405, "text/plain", Array("only GET and HEAD are served\n".utf8))
        } else {
            let path = String(line[1].prefix { $0 != "?" })
            (status, type, body) = respond(path)
        }
        let reason = [200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"][status] ?? "Status"
        var response = Array("HTTP/1.1 \(status) \(reason)\r\nContent-Type: \(type)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n".utf8)
        if line.first != "HEAD" { response += body }
        var sent = 0
        while sent < response.count {
            let n = response[sent...].withUnsafeBytes { send(connection, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { return }
            sent += n
        }
    }
}

private extension Array where Element == UInt8 {
    func ends(with suffix: [UInt8]) -> Bool { count >= suffix.count && self[(count - suffix.count)...].elementsEqual(suffix) }
}
