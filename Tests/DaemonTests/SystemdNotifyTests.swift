import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A fake systemd: the unix datagram socket NOTIFY_SOCKET names.
final class FakeNotifySocket {
    let path: String
    private let fd: Int32

    init() throws {
        path = temporaryDataDirectory() + "/notify.sock"
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in path.utf8.enumerated() { raw[i] = byte }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard fd >= 0, bound == 0 else { throw TestSupportError("cannot bind \(path)") }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    /// The next datagram (waits at most 5 s), or nil.
    func next() -> String? {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = recv(fd, &buffer, buffer.count, 0)
        return n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : nil
    }
}

@Suite struct SystemdNotifyTests {
    @Test func readyWatchdogAndStoppingReachSystemd() throws {
        let systemd = try FakeNotifySocket()
        let daemon = try DaemonProcess(environment: ["NOTIFY_SOCKET": systemd.path, "WATCHDOG_USEC": "200000"])
        let ready = try #require(systemd.next())
        #expect(ready.hasPrefix("READY=1\n") && ready.contains("STATUS=serving rpc=\(daemon.rpc)"), "\(ready)")
        var pings = 0
        for _ in 0..<3 where systemd.next() == "WATCHDOG=1" { pings += 1 }
        #expect(pings == 3, "the loop pings every half watchdog period while idle")
        #expect(daemon.stop() == 0)
        var last: String?
        while let message = systemd.next() { last = message; if message.hasPrefix("STOPPING=1") { break } }
        #expect(last?.hasPrefix("STOPPING=1") == true)
    }
}
