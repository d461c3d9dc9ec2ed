// Loading a claimed shard reads its snapshot and journal from PostgreSQL and rebuilds its
// store: tens of milliseconds for a small shard, seconds for a big one. That happens on a
// thread of its own, with its own connection, while the loop keeps serving the shards it
// has; the loop picks the result up when the thread wakes it.
import CaseEngine
import Foundation
import Logging
import Postgres

/// A shard rebuilt from PostgreSQL, ready to serve at `epoch`.
struct LoadedShard {
    let shard: UInt64
    let epoch: UInt64
    let recovered: RecoveredState
    let records: Int
    let milliseconds: Int64
}

/// Loads claimed shards one after another on a background thread.
final class ShardLoader: @unchecked Sendable {
    private let url: String
    private let config: DaemonConfig
    private let shardCount: UInt64
    private let logger: Logger
    private let onDone: @Sendable () -> Void
    private let condition = NSCondition()
    // Guarded by `condition`:
    private var queue: [(shard: UInt64, epoch: UInt64)] = []
    private var finished: [Result<LoadedShard, ShardLoadFailure>] = []
    private var stopping = false

    init(url: String, config: DaemonConfig, shardCount: UInt64, logger: Logger, onDone: @escaping @Sendable () -> Void) {
        (self.url, self.config, self.shardCount, self.logger, self.onDone) = (url, config, shardCount, logger, onDone)
        let thread = Thread { [self] in serve() }
        thread.name = "aftersalesd-shard-loader"
        thread.stackSize = 8 << 20
        thread.start()
    }

    /// Asks for `shard` to be loaded for serving at `epoch`.
    func load(_ shard: UInt64, epoch: UInt64) {
        condition.lock()
        queue.append((shard, epoch))
        condition.signal()
        condition.unlock()
    }

    /// The loads finished since the last call.
    func takeFinished() -> [Result<LoadedShard, ShardLoadFailure>] {
        condition.lock()
        defer { condition.unlock() }
        let done = finished
        finished.removeAll()
        return done
    }

    func stop() {
        condition.lock()
        stopping = true
        condition.signal()
        condition.unlock()
    }

    private func serve() {
        var database: ClusterDatabase?
        while true {
            condition.lock()
            while queue.isEmpty && !stopping { condition.wait() }
            if stopping {
                condition.unlock()
                return
            }
            let job = queue.removeFirst()
            condition.unlock()
            let result: Result<LoadedShard, ShardLoadFailure>
            do {
                if database == nil || database?.connection.isConnected == false { database = try ClusterDatabase(url: url) }
                result = .success(try load(job.shard, epoch: job.epoch, from: database!))
            } catch {
                database = nil
                result = .failure(ShardLoadFailure(shard: job.shard, epoch: job.epoch, reason: "\(error)"))
            }
            condition.lock()
            finished.append(result)
            condition.unlock()
            onDone()
        }
    }

    private func load(_ shard: UInt64, epoch: UInt64, from database: ClusterDatabase) throws -> LoadedShard {
        let began = Date()
        let (snapshot, records, rejected) = try database.loadShard(shard)
        for reason in rejected { logger.warning("skipped an unusable shard snapshot", metadata: ["shard": "\(shard)", "reason": "\(reason)"]) }
        let recovered = try Recovery.rebuild(snapshot: snapshot, place: "shard \(shard)", numbering: CaseNumbering(shard: shard, shardCount: shardCount),
                                             config: config, logger: logger) { _ in records }
        return LoadedShard(shard: shard, epoch: epoch, recovered: recovered, records: records.count,
                           milliseconds: Int64(Date().timeIntervalSince(began) * 1_000))
    }
}

/// A shard that could not be loaded, and why.
struct ShardLoadFailure: Error {
    let shard: UInt64
    let epoch: UInt64
    let reason: String
}

/// Writes a shard's snapshots to PostgreSQL under its fence, on the snapshot thread (a
/// connection of its own for each snapshot: they are minutes apart).
struct PostgresShardSnapshots: ShardSnapshotStore {
    let url: String
    let shard: UInt64
    let member: String
    let epoch: UInt64

    func write(position: UInt64, body: [UInt8], records: Int) throws -> SnapshotInfo {
        let began = Date()
        let database = try ClusterDatabase(url: url)
        defer { database.connection.close() }
        try database.writeSnapshot(shard: shard, member: member, epoch: epoch, position: position, body: body)
        return SnapshotInfo(path: "postgres shard \(shard) position \(position)", sequence: position, bytes: UInt64(body.count),
                            records: records, durationMs: Date().timeIntervalSince(began) * 1_000, oldestKeptSequence: 0)
    }
}
