// Prometheus metrics (--metrics-listen). The loop never touches the registry per call:
// it counts into `LoopTally` (plain integers and preallocated sample buffers, no locks),
// and once a second `DaemonMetrics.publish` moves the tally into swift-prometheus'
// registry and reads the gauges off the core. The journal's write and fsync times go to
// the registry directly: once per batch, not per call, and the fsync of everysec happens
// on its own thread anyway.
//
// The registry is used directly rather than through swift-metrics' global facade: the
// daemon is the only producer, and the registry carries each metric's HELP text and its
// own buckets, which the facade cannot.
import AfterSalesProto
import AfterSalesRPC
import CaseEngine
import Prometheus
import Synchronization

/// What the loop counted since the last publication.
struct LoopTally {
    private static let codeCount = 17
    /// Calls answered, by method index × status code.
    private(set) var calls = [UInt64](repeating: 0, count: Method.allCases.count * LoopTally.codeCount)
    /// Receipt-to-reply times in microseconds, by method index.
    private(set) var latencies: [(method: Int, microseconds: UInt64)] = []
    /// Calls per turn, for the turns that had any.
    private(set) var batchSizes: [Int] = []
    /// How late each deadline fired, milliseconds.
    private(set) var lateness: [Int64] = []

    init() {
        latencies.reserveCapacity(4_096)
        batchSizes.reserveCapacity(1_024)
    }

    mutating func call(method: Int, code: StatusCode, microseconds: UInt64) {
        let code = min(code.rawValue, Self.codeCount - 1)
        calls[method * Self.codeCount + code] += 1
        latencies.append((method, microseconds))
    }

    mutating func batch(size: Int) { batchSizes.append(size) }

    mutating func deadlineFired(lateByMs: Int64) { lateness.append(max(0, lateByMs)) }

    /// The calls counted for `method` with `code` (tests).
    func count(method: Int, code: StatusCode) -> UInt64 { calls[method * Self.codeCount + code.rawValue] }

    mutating func clear() {
        for i in calls.indices { calls[i] = 0 }
        latencies.removeAll(keepingCapacity: true)
        batchSizes.removeAll(keepingCapacity: true)
        lateness.removeAll(keepingCapacity: true)
    }
}

/// The daemon's metrics in a swift-prometheus registry; `exposition()` is what /metrics serves.
final class DaemonMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()

    private static let latencyBuckets: [Double] = [0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]
    private static let statusCodes: [StatusCode] = (0...16).map { StatusCode(rawValue: $0)! }

    /// `aftersales_calls_total{method,code}`, by method index × code.
    private let calls: [Counter]
    private let latency: [ValueHistogram]
    private let batchSize: ValueHistogram
    private let deadlineLateness: ValueHistogram
    let journalWriteSeconds: ValueHistogram
    let journalSyncSeconds: ValueHistogram
    private let casesByStatus: [(CaseStatus, Gauge)]
    private let deadlineQueueEntries: Gauge
    private let nextDeadlineSeconds: Gauge
    private let pendingProposals: Gauge
    private let announcementsPublished: Counter
    private let replayWindow: Gauge
    private let unpublishedAnnouncements: Gauge
    private let idempotencyKeys: Gauge
    private let journalBytes: Gauge
    private let snapshotDuration: Gauge
    private let snapshotBytes: Gauge
    private let snapshotAge: Gauge
    private let droppedFrames: Counter
    private let peerDisconnects: Counter
    private let zapRefusals: Counter
    private let slowCalls: Counter
    private let up: Gauge

    init() {
        let r = registry
        calls = Method.allCases.flatMap { method in
            Self.statusCodes.map { code in
                r.makeCounter(name: "aftersales_calls_total", labels: [("method", method.fullName), ("code", code.name)],
                              help: "Calls answered, by method and status code.")
            }
        }
        latency = Method.allCases.map { method in
            r.makeValueHistogram(name: "aftersales_call_duration_seconds", labels: [("method", method.fullName)], buckets: Self.latencyBuckets,
                                 help: "From receipt of a call to its reply being handed to the socket (a mutating call includes its group commit).")
        }
        batchSize = r.makeValueHistogram(name: "aftersales_batch_calls", buckets: [1, 2, 4, 8, 16, 32, 64, 128],
                                         help: "Calls taken in one turn of the loop (one group commit).")
        deadlineLateness = r.makeValueHistogram(name: "aftersales_deadline_lateness_seconds", buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 60, 3_600],
                                                help: "How long after its due time a deadline fired (proposal expiries and the other clocks).")
        journalWriteSeconds = r.makeValueHistogram(name: "aftersales_journal_write_seconds", buckets: Self.latencyBuckets,
                                                   help: "One write(2) of a batch to the journal.")
        journalSyncSeconds = r.makeValueHistogram(name: "aftersales_journal_fsync_seconds", buckets: Self.latencyBuckets,
                                                  help: "One fdatasync of the journal (on the loop under always, on the sync thread under everysec).")
        casesByStatus = CaseStatus.allCases.map { status in
            (status, r.makeGauge(name: "aftersales_cases", labels: [("status", status.rawValue)],
                                 help: "Cases in the store, by status."))
        }
        deadlineQueueEntries = r.makeGauge(name: "aftersales_deadline_queue_entries", help: "Entries in the deadline queue (pending deadlines, and superseded ones not yet dropped).")
        nextDeadlineSeconds = r.makeGauge(name: "aftersales_next_deadline_seconds", help: "Seconds until the earliest deadline; 0 when none or overdue.")
        pendingProposals = r.makeGauge(name: "aftersales_pending_proposals", help: "Platform proposals awaiting the consumer.")
        announcementsPublished = r.makeCounter(name: "aftersales_announcements_published_total", help: "Announcements published on the PUB socket since start-up.")
        replayWindow = r.makeGauge(name: "aftersales_replay_window_events", help: "Announcements ReplayEvents can serve.")
        unpublishedAnnouncements = r.makeGauge(name: "aftersales_unpublished_announcements", help: "Announcements waiting for their journal record to reach the disk.")
        idempotencyKeys = r.makeGauge(name: "aftersales_idempotency_keys", help: "Idempotency keys remembered.")
        journalBytes = r.makeGauge(name: "aftersales_journal_bytes", help: "Bytes in the journal's segments.")
        snapshotDuration = r.makeGauge(name: "aftersales_snapshot_duration_seconds", help: "How long the last snapshot took to write.")
        snapshotBytes = r.makeGauge(name: "aftersales_snapshot_bytes", help: "Size of the last snapshot.")
        snapshotAge = r.makeGauge(name: "aftersales_snapshot_age_seconds", help: "Seconds since the last snapshot was completed (since start-up when none was).")
        droppedFrames = r.makeCounter(name: "aftersales_dropped_frames_total", help: "Messages that could not be answered: a bad frame layout, or a caller that had gone.")
        peerDisconnects = r.makeCounter(name: "aftersales_peer_disconnects_total", help: "Connections to the RPC socket closed (callers gone, or cut off by libzmq for an oversized message).")
        zapRefusals = r.makeCounter(name: "aftersales_zap_refusals_total", help: "CURVE handshakes refused: the key is not in the clients file.")
        slowCalls = r.makeCounter(name: "aftersales_slow_calls_total", help: "Calls over --slow-call-threshold (see AdminService/SlowCalls).")
        up = r.makeGauge(name: "aftersales_serving", help: "1 while the daemon serves (Check: SERVING), 0 while recovering, stopping or failed.")
    }

    /// What was published last, to turn the core's running totals into counter increments.
    private struct Published {
        var announcements: UInt64 = 0
        var droppedFrames: UInt64 = 0
        var peerDisconnects: UInt64 = 0
        var zapRefusals: UInt64 = 0
        var slowCalls: UInt64 = 0
    }
    private let published = Mutex(Published())

    /// Moves the loop's tally into the registry and reads the gauges off the cores (a
    /// daemon's one, or a cluster member's shards, summed); empties the tally.
    func publish(_ tally: inout LoopTally, cores: [DaemonCore], droppedFrames: UInt64, peerDisconnects: UInt64,
                 zapRefusals: UInt64, slowCalls: UInt64, now: Millis) {
        for (i, count) in tally.calls.enumerated() where count > 0 { calls[i].increment(by: Int64(count)) }
        for sample in tally.latencies { latency[sample.method].record(Double(sample.microseconds) / 1e6) }
        for size in tally.batchSizes { batchSize.record(Double(size)) }
        for late in tally.lateness { deadlineLateness.record(Double(late) / 1e3) }
        tally.clear()

        var counts: [CaseStatus: Int] = [:]
        for core in cores { counts.merge(core.store.countsByStatus, uniquingKeysWith: +) }
        for (status, gauge) in casesByStatus { gauge.set(Double(counts[status] ?? 0)) }
        func sum(_ value: (DaemonCore) -> Int) -> Double { Double(cores.reduce(0) { $0 + value($1) }) }
        deadlineQueueEntries.set(sum { $0.store.deadlineQueueEntries })
        let next = cores.compactMap(\.store.nextDeadline).min()
        nextDeadlineSeconds.set(next.map { Double(max(0, $0 - now)) / 1e3 } ?? 0)
        pendingProposals.set(sum { $0.store.pendingProposalCount })
        replayWindow.set(sum { $0.announcements.recent.count })
        unpublishedAnnouncements.set(sum { $0.announcements.unpublishedCount })
        idempotencyKeys.set(sum { $0.idempotency.count })
        journalBytes.set(Double(cores.reduce(UInt64(0)) { $0 + $1.journal.bytesOnDisk }))
        if let newest = cores.max(by: { $0.snapshots.completedAt < $1.snapshots.completedAt }) {
            snapshotDuration.set(Double(newest.snapshots.lastDurationMs) / 1e3)
            snapshotBytes.set(Double(newest.snapshots.lastBytes))
            let oldest = cores.map { $0.snapshots.completedAt > 0 ? $0.snapshots.completedAt : $0.startedAt }.min() ?? now
            snapshotAge.set(Double(now - oldest) / 1e3)
        }
        let published = cores.reduce(UInt64(0)) { total, core in
            let log = core.announcements
            return total + (log.publishedSeq >= log.incarnationStartSeq ? log.publishedSeq - log.incarnationStartSeq + 1 : 0)
        }
        self.published.withLock { last in
            func advance(_ counter: Counter, _ total: UInt64, _ previous: inout UInt64) {
                if total > previous { counter.increment(by: Int64(total - previous)) }
                previous = total
            }
            advance(announcementsPublished, published, &last.announcements)
            advance(self.droppedFrames, droppedFrames, &last.droppedFrames)
            advance(self.peerDisconnects, peerDisconnects, &last.peerDisconnects)
            advance(self.zapRefusals, zapRefusals, &last.zapRefusals)
            advance(self.slowCalls, slowCalls, &last.slowCalls)
        }
    }

    /// Sets `aftersales_serving`.
    func serving(_ isServing: Bool) { up.set(Int64(isServing ? 1 : 0)) }

    /// The Prometheus text exposition of every metric.
    func exposition() -> [UInt8] { registry.emitToBuffer() }
}
