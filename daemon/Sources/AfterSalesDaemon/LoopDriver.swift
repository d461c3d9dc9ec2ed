// What the socket loop (Daemon.run) drives each turn: a daemon on its own (`DaemonCore`:
// one store, its journal file) or a cluster member (`ClusterCore`: the shards it owns,
// committed to PostgreSQL). The loop owns the sockets, the poll and the clocks; the
// driver owns everything the calls change.
import AfterSalesRPC
import CaseEngine
import Logging
import ZeroMQ

protocol LoopDriver: AnyObject {
    var clock: any DaemonClock { get }
    var logger: Logger { get }
    /// Messages that could not be answered (counted by the loop when a send fails).
    var droppedFrames: UInt64 { get set }
    /// Connections to the RPC socket that closed.
    var peerDisconnects: UInt64 { get set }
    /// CURVE handshakes refused.
    var zapRefusals: UInt64 { get set }
    /// The metrics' tally; nil when metrics are off.
    var tally: LoopTally? { get set }

    /// The first turn: deadlines missed while down fire, announced late.
    func startUp() throws -> TurnOutput
    /// How long the loop may sleep in its poll.
    func pollTimeout(now: Millis) -> Int
    /// The loop side of a wake-up from another thread.
    func woken(_ reasons: WakeUpReason)
    /// Answers one ZAP request.
    func answerZAP(_ request: [Frame]) -> [Frame]
    /// One call from the ROUTER socket.
    func receive(_ frames: [Frame], caller: String?)
    /// The rest of the turn: due deadlines, the commit, the replies and announcements,
    /// given to `send` (more than once when calls are answered before a deadline slice).
    func finishTurn(send: (TurnOutput) -> Void) throws
    /// Between turns: snapshots to start, and (cluster) leases, claims and loaded shards.
    func housekeeping(now: Millis) -> TurnOutput?
    /// Stopping: final snapshots, closed logs.
    func shutdown(send: (TurnOutput) -> Void) throws
    /// Moves the tally and the gauges into the metrics registry.
    func publish(to metrics: DaemonMetrics, now: Millis)
}

extension DaemonCore: LoopDriver {
    func finishTurn(send: (TurnOutput) -> Void) throws {
        if !batch.replies.isEmpty, let due = nextDeadline, due <= clock.now() {
            // A backlog of deadlines is being worked off: the turn's calls are committed and
            // answered first, so none waits behind the slice that follows (one more write,
            // and under --fsync always one more sync, per turn of a backlog only).
            try commit()
            send(takeOutput())
        }
        fireDueDeadlines()
        try commit()
        send(takeOutput())
    }

    func housekeeping(now: Millis) -> TurnOutput? {
        maybeStartSnapshot(now: now)
        // A snapshot's rotation synced the journal: publish what it released now.
        return hasOutput ? takeOutput() : nil
    }

    func publish(to metrics: DaemonMetrics, now: Millis) {
        guard tally != nil else { return }
        metrics.publish(&tally!, cores: [self], droppedFrames: droppedFrames, peerDisconnects: peerDisconnects,
                        zapRefusals: zapRefusals, slowCalls: slowCalls.totalLogged, now: now)
    }
}
