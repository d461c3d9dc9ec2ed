import CaseEngine
#if canImport(Glibc)
import Glibc
#endif

/// Where the daemon reads the time. Production reads the system clock; tests inject one
/// they control (e.g. one that jumps forward to push a call past its deadline).
public protocol DaemonClock: Sendable {
    /// Wall-clock time, milliseconds since the Unix epoch: what deadlines and records use.
    func now() -> Millis
}

/// The system's real-time clock.
public struct SystemClock: DaemonClock {
    /// Creates the system clock.
    public init() {}
    /// Milliseconds since the Unix epoch from CLOCK_REALTIME.
    public func now() -> Millis {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Millis(ts.tv_sec) * 1_000 + Millis(ts.tv_nsec) / 1_000_000
    }
}
