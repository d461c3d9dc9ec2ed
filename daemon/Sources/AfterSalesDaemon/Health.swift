// Whether the daemon serves, as Check, /readyz and systemd see it, and whether its loop
// still turns, as /healthz sees it. The loop writes, the metrics endpoint's thread reads:
// the state changes a handful of times in a daemon's life (behind a lock), the heartbeat
// once a turn (one relaxed atomic store, no lock).
import Synchronization

/// The daemon's serving state (grpc.health.v1's SERVING / NOT_SERVING, with the reason).
public enum ServingState: Sendable, Equatable {
    /// The data directory is being read; calls other than Ping, Check and reflection are UNAVAILABLE.
    case recovering
    /// Calls are answered and changes made durable.
    case serving
    /// The journal could not be written; the daemon is stopping.
    case storageFailed
    /// A stop was asked for; the final snapshot is being written.
    case shuttingDown

    /// Whether this is SERVING.
    public var isServing: Bool { self == .serving }

    /// The reason a NOT_SERVING answer gives; "serving" when serving.
    public var reason: String {
        switch self {
        case .recovering: "recovering"
        case .serving: "serving"
        case .storageFailed: "storage failed"
        case .shuttingDown: "shutting down"
        }
    }
}

/// The serving state and the loop's heartbeat, shared between the loop and the metrics
/// endpoint.
final class HealthBoard: Sendable {
    private let state = Mutex(ServingState.recovering)
    private let detail = Mutex("")
    /// Monotonic milliseconds of the loop's last turn.
    private let heartbeat = Atomic<Int64>(0)

    /// The state and, when not serving, what more there is to say (e.g. how far recovery is).
    var current: (state: ServingState, detail: String) { (state.withLock { $0 }, detail.withLock { $0 }) }

    func set(_ newState: ServingState, detail text: String = "") {
        state.withLock { $0 = newState }
        detail.withLock { $0 = text }
    }

    /// Called by the loop once a turn.
    func beat(monotonicMs: Int64) { heartbeat.store(monotonicMs, ordering: .relaxed) }

    /// How long ago the loop last turned, in milliseconds.
    func sinceLastBeat(monotonicMs: Int64) -> Int64 { monotonicMs - heartbeat.load(ordering: .relaxed) }
}
