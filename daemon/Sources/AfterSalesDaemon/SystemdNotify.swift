// systemd's readiness protocol (sd_notify(3)) without libsystemd: a datagram of
// "KEY=VALUE" lines to the unix socket named by $NOTIFY_SOCKET. With `Type=notify` the unit
// is "active" only once the daemon has recovered and bound; with `WatchdogSec=` the loop
// itself pings, so a loop that hangs gets restarted, not just a process that died.
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Tells systemd how the daemon is doing; does nothing when not started by systemd.
public final class SystemdNotifier: @unchecked Sendable {
    private let socketPath: String?
    /// Half the watchdog period (systemd's advice), in ms; nil = no watchdog.
    private let watchdogIntervalMs: Int64?
    private var lastWatchdog: Int64 = 0

    /// Reads NOTIFY_SOCKET and WATCHDOG_USEC (ignored when WATCHDOG_PID names another process).
    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        socketPath = environment["NOTIFY_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
        let forUs = environment["WATCHDOG_PID"].map { Int32($0) == getpid() } ?? true
        if forUs, let usec = environment["WATCHDOG_USEC"].flatMap(Int64.init), usec > 0 {
            watchdogIntervalMs = max(1, usec / 2_000)
        } else {
            watchdogIntervalMs = nil
        }
    }

    /// Recovered and bound: calls are answered from now on.
    public func ready(status: String) { send("READY=1\nSTATUS=\(status)") }

    /// Stopping: the final snapshot is being written.
    public func stopping() { send("STOPPING=1\nSTATUS=stopping") }

    /// From the loop, every turn: pings the watchdog when half its period has passed.
    public func watchdogIfDue(nowMs: Int64) {
        guard let interval = watchdogIntervalMs, nowMs - lastWatchdog >= interval else { return }
        lastWatchdog = nowMs
        send("WATCHDOG=1")
    }

    /// The longest the loop may sleep for the watchdog's sake; nil = no watchdog.
    public var watchdogIntervalMilliseconds: Int64? { watchdogIntervalMs }

    private func send(_ message: String) {
        guard let socketPath else { return }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        // "@name" is an abstract socket: a leading NUL byte instead of '@'.
        var path = Array(socketPath.utf8)
        if path.first == UInt8(ascii: "@") { path[0] = 0 }
        guard path.count < MemoryLayout.size(ofValue: address.sun_path) else { return }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in path.enumerated() { raw[i] = byte }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + path.count)
        let bytes = Array(message.utf8)
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, bytes, bytes.count, 0, $0, length) }
        }
    }
}
