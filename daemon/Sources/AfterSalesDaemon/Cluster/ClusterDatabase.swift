// What a cluster keeps in PostgreSQL, and every statement a member runs against it.
//
//   aftersales_cluster    one row: the shard count, fixed when the cluster is created
//   aftersales_members    one row per running member: its endpoints and membership lease
//   aftersales_shards     one row per shard: owner, epoch (the fencing token), lease expiry
//                         (PostgreSQL's clock), the owner's endpoints
//   aftersales_journal    a shard's records, (shard, seq) → the journal entry's bytes, and
//                         the epoch of the owner that wrote it
//   aftersales_snapshots  a shard's snapshots, in the snapshot file format
//
// Fencing, as Temporal's history shards do it: a claim raises the shard's epoch; every
// write of a shard (a turn's records, a snapshot) runs in a transaction whose first
// statement is an UPDATE of the shard's row guarded by owner = me AND epoch = mine. The
// UPDATE takes the row's lock, so a claim and a write of the same shard serialize: the
// write either commits before the claim (and the new owner loads it) or finds the new
// epoch and changes nothing. Two writers can never both commit to a shard.
import AfterSalesProto
import Foundation
import Postgres

/// The statements of cluster mode, on one connection (one thread at a time).
final class ClusterDatabase {
    let connection: PostgresConnection
    /// The connection's target for messages (never a password).
    var target: String { connection.target }

    /// Connects to `url`.
    init(url: String) throws(PostgresError) {
        connection = try PostgresConnection(url: url, connectTimeoutSeconds: 3)
    }

    // MARK: creating a cluster

    /// Creates the tables and `shards` shard rows; refuses a database that already holds a cluster.
    static func initialize(url: String, shards: Int) throws -> String {
        let db = try ClusterDatabase(url: url)
        if let existing = try? db.shardCount() {
            throw ClusterError("\(db.target) already holds an aftersales cluster of \(existing) shards; a cluster's shard count is fixed when it is created (drop the aftersales_* tables to start over)")
        }
        try db.connection.transaction { c in
            try c.executeScript("""
                CREATE TABLE aftersales_cluster (
                  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
                  shard_count integer NOT NULL CHECK (shard_count BETWEEN 1 AND 4096),
                  format integer NOT NULL,
                  created_at timestamptz NOT NULL DEFAULT now());
                CREATE TABLE aftersales_members (
                  member_id text PRIMARY KEY,
                  rpc_endpoint text NOT NULL,
                  pub_endpoint text NOT NULL,
                  lease_expires timestamptz NOT NULL,
                  started_at timestamptz NOT NULL DEFAULT now());
                CREATE TABLE aftersales_shards (
                  shard integer PRIMARY KEY,
                  owner text,
                  epoch bigint NOT NULL DEFAULT 0,
                  lease_expires timestamptz,
                  rpc_endpoint text NOT NULL DEFAULT '',
                  pub_endpoint text NOT NULL DEFAULT '',
                  committed_at timestamptz);
                CREATE TABLE aftersales_journal (
                  shard integer NOT NULL,
                  seq bigint NOT NULL,
                  epoch bigint NOT NULL,
                  record bytea NOT NULL,
                  PRIMARY KEY (shard, seq));
                CREATE TABLE aftersales_events (
                  shard integer NOT NULL,
                  seq bigint NOT NULL,
                  topic text NOT NULL,
                  at timestamptz NOT NULL DEFAULT now(),
                  body bytea NOT NULL,
                  PRIMARY KEY (shard, seq));
                CREATE TABLE aftersales_snapshots (
                  shard integer NOT NULL,
                  position bigint NOT NULL,
                  epoch bigint NOT NULL,
                  taken_at timestamptz NOT NULL DEFAULT now(),
                  body bytea NOT NULL,
                  PRIMARY KEY (shard, position));
                """)
            try c.execute("INSERT INTO aftersales_cluster (shard_count, format) VALUES ($1, 1)", [.int(shards)])
            try c.execute("INSERT INTO aftersales_shards (shard) SELECT generate_series(0, $1::int - 1)", [.int(shards)])
        }
        return db.target
    }

    /// Tables added since a cluster was first created (announcements for ReplayEvents).
    func upgradeSchema() throws {
        try connection.execute("""
            CREATE TABLE IF NOT EXISTS aftersales_events (
              shard integer NOT NULL, seq bigint NOT NULL, topic text NOT NULL,
              at timestamptz NOT NULL DEFAULT now(), body bytea NOT NULL, PRIMARY KEY (shard, seq))
            """)
    }

    /// The cluster's shard count; throws when the database holds no cluster.
    func shardCount() throws -> UInt64 {
        let result: PostgresResult
        do {
            result = try connection.execute("SELECT shard_count FROM aftersales_cluster")
        } catch {
            if error.sqlState == "42P01" {
                throw ClusterError("\(target) holds no aftersales cluster; create one with: aftersalesd cluster init --shards 64 URL")
            }
            throw error
        }
        guard result.rowCount == 1 else { throw ClusterError("\(target): aftersales_cluster has \(result.rowCount) rows, expected 1") }
        return UInt64(try result.int64(row: 0, column: 0))
    }

    // MARK: membership and ownership

    /// Registers (or renews) this member; returns the number of live members.
    func renewMembership(member: String, rpc: String, pub: String, ttlMs: Int64) throws -> Int {
        try connection.execute("""
            INSERT INTO aftersales_members (member_id, rpc_endpoint, pub_endpoint, lease_expires)
            VALUES ($1, $2, $3, now() + $4 * interval '1 millisecond')
            ON CONFLICT (member_id) DO UPDATE SET rpc_endpoint = EXCLUDED.rpc_endpoint,
              pub_endpoint = EXCLUDED.pub_endpoint, lease_expires = EXCLUDED.lease_expires
            """, [.text(member), .text(rpc), .text(pub), .integer(ttlMs)])
        let live = try connection.execute("SELECT count(*) FROM aftersales_members WHERE lease_expires > now()")
        return Int(try live.int64(row: 0, column: 0))
    }

    /// Extends the leases of the shards this member still owns at these epochs; returns
    /// those it still owns (a shard missing from the answer was taken over).
    func renewShards(member: String, owned: [UInt64: UInt64], ttlMs: Int64) throws -> Set<UInt64> {
        guard !owned.isEmpty else { return [] }
        let (shards, epochs) = Self.arrays(owned)
        let result = try connection.execute("""
            UPDATE aftersales_shards SET lease_expires = now() + $4 * interval '1 millisecond'
            WHERE owner = $1 AND (shard, epoch) IN (SELECT * FROM unnest($2::int[], $3::bigint[]))
            RETURNING shard
            """, [.text(member), .text(shards), .text(epochs), .integer(ttlMs)])
        return Set(try (0..<result.rowCount).map { UInt64(try result.int64(row: $0, column: 0)) })
    }

    /// Claims up to `count` shards that no live member owns (never owned, released, or
    /// whose owner's lease ran out), raising each one's epoch; returns them with their new epochs.
    func claimShards(member: String, rpc: String, pub: String, count: Int, ttlMs: Int64) throws -> [(shard: UInt64, epoch: UInt64)] {
        guard count > 0 else { return [] }
        let result = try connection.execute("""
            UPDATE aftersales_shards SET owner = $1, epoch = epoch + 1, rpc_endpoint = $2, pub_endpoint = $3,
              lease_expires = now() + $5 * interval '1 millisecond'
            WHERE shard IN (SELECT shard FROM aftersales_shards
                            WHERE owner IS NULL OR lease_expires IS NULL OR lease_expires < now()
                            ORDER BY shard LIMIT $4 FOR UPDATE SKIP LOCKED)
            RETURNING shard, epoch
            """, [.text(member), .text(rpc), .text(pub), .int(count), .integer(ttlMs)])
        return try (0..<result.rowCount).map { (UInt64(try result.int64(row: $0, column: 0)), UInt64(try result.int64(row: $0, column: 1))) }
    }

    /// Gives a shard up (balancing, shutdown): another member may claim it at once.
    func releaseShard(_ shard: UInt64, member: String, epoch: UInt64) throws {
        try connection.execute("UPDATE aftersales_shards SET owner = NULL, lease_expires = NULL WHERE shard = $1 AND owner = $2 AND epoch = $3",
                               [.integer(Int64(shard)), .text(member), .integer(Int64(epoch))])
    }

    /// Ends this member's membership (clean shutdown).
    func leave(member: String) throws {
        try connection.execute("DELETE FROM aftersales_members WHERE member_id = $1", [.text(member)])
    }

    /// The ownership table and the live members.
    func clusterMap() throws -> Aftersales_V1_GetClusterMapResponse {
        let shards = try connection.execute("""
            SELECT shard, coalesce(owner, ''), epoch, rpc_endpoint, pub_endpoint,
                   coalesce((extract(epoch FROM lease_expires) * 1000)::bigint, 0), coalesce(lease_expires > now(), false)
            FROM aftersales_shards ORDER BY shard
            """)
        let members = try connection.execute("""
            SELECT m.member_id, m.rpc_endpoint, m.pub_endpoint, (extract(epoch FROM m.lease_expires) * 1000)::bigint,
                   (SELECT count(*) FROM aftersales_shards s WHERE s.owner = m.member_id AND s.lease_expires > now())
            FROM aftersales_members m WHERE m.lease_expires > now() ORDER BY m.member_id
            """)
        var map = Aftersales_V1_GetClusterMapResponse()
        map.shardCount = UInt32(shards.rowCount)
        for row in 0..<shards.rowCount {
            let live = try shards.string(row: row, column: 6) == "t"
            map.shards.append(try .with {
                $0.shard = UInt32(try shards.int64(row: row, column: 0))
                $0.epoch = UInt64(try shards.int64(row: row, column: 2))
                if live {
                    $0.member = try shards.string(row: row, column: 1)
                    $0.rpcEndpoint = try shards.string(row: row, column: 3)
                    $0.pubEndpoint = try shards.string(row: row, column: 4)
                    $0.leaseExpiresMs = try shards.int64(row: row, column: 5)
                }
            })
        }
        for row in 0..<members.rowCount {
            map.members.append(try .with {
                $0.member = try members.string(row: row, column: 0)
                $0.rpcEndpoint = try members.string(row: row, column: 1)
                $0.pubEndpoint = try members.string(row: row, column: 2)
                $0.leaseExpiresMs = try members.int64(row: row, column: 3)
                $0.shards = UInt32(try members.int64(row: row, column: 4))
            })
        }
        return map
    }

    // MARK: writing and reading a shard

    /// One turn's records of several shards, all or nothing, each shard fenced by its
    /// epoch. Returns the shards whose fence failed (then nothing was written at all and
    /// the caller retries without them); empty when the records are committed.
    ///
    /// One statement, so one round trip and its own transaction: the fence SELECT … FOR
    /// SHARE locks the shards' rows and counts those still ours; the INSERT writes only
    /// when that count is every shard of the batch. (A claim of one of these shards, an
    /// UPDATE, waits for the locks, so it sees the records; or the fence waits for the
    /// claim and then sees its new epoch.) A share lock rather than an UPDATE: the UPDATE
    /// wrote a new version of each shard's row on every commit, a dead tuple per shard and
    /// turn for vacuum (PostgreSQL's CPU per call 59 → 55 µs in the cluster benchmark).
    /// `committed_at` is now written by snapshots only.
    func commit(member: String, batches: [ShardBatch]) throws -> Set<UInt64> {
        let owned = Dictionary(uniqueKeysWithValues: batches.map { ($0.shard, $0.epoch) })
        let (shards, epochs) = Self.arrays(owned)
        var parameters: [PostgresValue] = [.text(member), .text(shards), .text(epochs), .int(owned.count)]
        var values: [String] = []
        var events: [String] = []
        for batch in batches {
            for item in batch.records {
                let n = parameters.count
                values.append("($\(n + 1)::int, $\(n + 2)::bigint, $\(n + 3)::bigint, $\(n + 4)::bytea)")
                parameters += [.integer(Int64(batch.shard)), .integer(Int64(item.seq)), .integer(Int64(batch.epoch)), .bytes(item.record)]
            }
            for event in batch.events {
                let n = parameters.count
                events.append("($\(n + 1)::int, $\(n + 2)::bigint, $\(n + 3)::text, $\(n + 4)::bytea)")
                parameters += [.integer(Int64(batch.shard)), .integer(Int64(event.seq)), .text(event.topic), .bytes(event.bytes)]
            }
        }
        // The announcements go in with their records, so ReplayEvents (from any member)
        // serves exactly what is committed.
        let announced = events.isEmpty ? "" : """
            , announced AS (
              INSERT INTO aftersales_events (shard, seq, topic, body)
              SELECT * FROM (VALUES \(events.joined(separator: ", "))) AS e
              WHERE (SELECT count(*) FROM fence) = $4)
            """
        let result = try connection.executePrepared("""
            WITH fence AS (
              SELECT shard FROM aftersales_shards
              WHERE owner = $1 AND (shard, epoch) IN (SELECT * FROM unnest($2::int[], $3::bigint[]))
              FOR SHARE),
            written AS (
              INSERT INTO aftersales_journal (shard, seq, epoch, record)
              SELECT * FROM (VALUES \(values.joined(separator: ", "))) AS v
              WHERE (SELECT count(*) FROM fence) = $4
              RETURNING 1)\(announced)
            SELECT coalesce((SELECT string_agg(shard::text, ',') FROM fence), ''), (SELECT count(*) FROM written)
            """, parameters)
        let holding = Set(try result.string(row: 0, column: 0).split(separator: ",").compactMap { UInt64($0) })
        let lost = Set(owned.keys).subtracting(holding)
        if !lost.isEmpty { throw FencedShards(shards: lost) }
        return []
    }

    /// A shard's announcements from `fromSeq` on (at most `limit`), the oldest kept and the
    /// latest; nil `events` when `fromSeq` is older than what retention kept.
    func announcements(shard: UInt64, from fromSeq: UInt64, limit: Int) throws -> (events: [(seq: UInt64, body: [UInt8])]?, oldest: UInt64, latest: UInt64) {
        let bounds = try connection.execute("SELECT coalesce(min(seq), 0), coalesce(max(seq), 0) FROM aftersales_events WHERE shard = $1",
                                            [.integer(Int64(shard))])
        let oldest = UInt64(try bounds.int64(row: 0, column: 0)), latest = UInt64(try bounds.int64(row: 0, column: 1))
        if latest > 0, fromSeq < oldest { return (nil, oldest, latest) }
        let rows = try connection.executePrepared("SELECT seq, body FROM aftersales_events WHERE shard = $1 AND seq >= $2 ORDER BY seq LIMIT $3",
                                                  [.integer(Int64(shard)), .integer(Int64(fromSeq)), .int(limit)])
        let events = try (0..<rows.rowCount).map { (UInt64(try rows.int64(row: $0, column: 0)), try rows.bytes(row: $0, column: 1)) }
        return (events, latest == 0 ? 1 : oldest, latest)
    }

    /// Deletes the announcements of these shards older than `retentionMs`, keeping each
    /// shard's latest (so its numbering stays known).
    func forgetAnnouncements(shards owned: [UInt64], olderThanMs retentionMs: Int64) throws {
        guard !owned.isEmpty else { return }
        try connection.execute("""
            DELETE FROM aftersales_events e WHERE e.shard = ANY($1::int[]) AND e.at < now() - $2 * interval '1 millisecond'
              AND e.seq < (SELECT max(seq) FROM aftersales_events l WHERE l.shard = e.shard)
            """, [.text("{" + owned.map(String.init).joined(separator: ",") + "}"), .integer(retentionMs)])
    }

    /// A shard's newest usable snapshot and the journal records after it, read in one
    /// consistent view. A snapshot that fails its checks is passed over for the one before.
    func loadShard(_ shard: UInt64) throws -> (snapshot: LoadedSnapshot?, records: [JournalEntry], rejected: [String]) {
        let (snapshots, journal) = try connection.transaction(isolation: .repeatableRead) { c -> (PostgresResult, PostgresResult) in
            let snapshots = try c.execute("SELECT position, body FROM aftersales_snapshots WHERE shard = $1 ORDER BY position DESC",
                                          [.integer(Int64(shard))])
            // Every journal row from the oldest snapshot's position: enough whichever snapshot loads.
            let journal = try c.execute("""
                SELECT seq, record FROM aftersales_journal WHERE shard = $1
                  AND seq >= coalesce((SELECT min(position) FROM aftersales_snapshots WHERE shard = $1), 1)
                ORDER BY seq
                """, [.integer(Int64(shard))])
            return (snapshots, journal)
        }
        var loaded: LoadedSnapshot?
        var rejected: [String] = []
        for row in 0..<snapshots.rowCount where loaded == nil {
            let position = UInt64(try snapshots.int64(row: row, column: 0))
            do {
                loaded = try SnapshotFormat.decode(try snapshots.bytes(row: row, column: 1), seq: position,
                                                   place: "aftersales_snapshots shard \(shard) position \(position)")
            } catch {
                rejected.append("\(error)")
            }
        }
        if loaded == nil, !rejected.isEmpty {
            throw ClusterError("shard \(shard) has no usable snapshot (\(rejected.joined(separator: "; "))); restore the database from backup")
        }
        let from = loaded?.seq ?? 1
        var records: [JournalEntry] = []
        records.reserveCapacity(journal.rowCount)
        for row in 0..<journal.rowCount {
            let seq = UInt64(try journal.int64(row: row, column: 0))
            if seq < from { continue }
            let expected = from + UInt64(records.count)
            guard seq == expected else {
                throw ClusterError("shard \(shard): journal record \(expected) is missing (the next is \(seq)); restore the database from backup")
            }
            records.append(JournalEntry(sequence: seq, payload: try journal.bytes(row: row, column: 1)))
        }
        return (loaded, records, rejected)
    }

    /// Stores a shard's snapshot under its fence, keeps the newest two, and deletes the
    /// journal records the older of them covers.
    func writeSnapshot(shard: UInt64, member: String, epoch: UInt64, position: UInt64, body: [UInt8]) throws {
        try connection.transaction { c in
            let fence = try c.execute("UPDATE aftersales_shards SET committed_at = now() WHERE shard = $1 AND owner = $2 AND epoch = $3",
                                      [.integer(Int64(shard)), .text(member), .integer(Int64(epoch))])
            guard fence.affectedRows == 1 else { throw FencedShards(shards: [shard]) }
            try c.execute("""
                INSERT INTO aftersales_snapshots (shard, position, epoch, body) VALUES ($1, $2, $3, $4)
                ON CONFLICT (shard, position) DO UPDATE SET epoch = EXCLUDED.epoch, body = EXCLUDED.body, taken_at = now()
                """, [.integer(Int64(shard)), .integer(Int64(position)), .integer(Int64(epoch)), .bytes(body)])
            let kept = try c.execute("SELECT position FROM aftersales_snapshots WHERE shard = $1 ORDER BY position DESC LIMIT 2",
                                     [.integer(Int64(shard))])
            let oldestKept = try kept.int64(row: kept.rowCount - 1, column: 0)
            try c.execute("DELETE FROM aftersales_snapshots WHERE shard = $1 AND position < $2", [.integer(Int64(shard)), .integer(oldestKept)])
            try c.execute("DELETE FROM aftersales_journal WHERE shard = $1 AND seq < $2", [.integer(Int64(shard)), .integer(oldestKept)])
        }
    }

    /// PostgreSQL array literals of the shards and their epochs, in the same order.
    private static func arrays(_ owned: [UInt64: UInt64]) -> (shards: String, epochs: String) {
        let pairs = owned.sorted { $0.key < $1.key }
        return ("{" + pairs.map { String($0.key) }.joined(separator: ",") + "}",
                "{" + pairs.map { String($0.value) }.joined(separator: ",") + "}")
    }
}

/// One shard's part of a turn's commit: its records and the announcements they hold.
struct ShardBatch {
    let shard: UInt64
    let epoch: UInt64
    let records: [(seq: UInt64, record: [UInt8])]
    var events: [PublishedEvent] = []
}

/// Shards whose fence failed: another member owns them now.
struct FencedShards: Error {
    let shards: Set<UInt64>
}

/// A cluster set-up or consistency problem, said plainly.
struct ClusterError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Creating a cluster (`aftersalesd cluster init`).
public enum ClusterSetup {
    /// Creates the cluster's tables and `shards` shards in the database at `url`; returns
    /// where (user@host:port/database). Throws when one exists there already.
    public static func initialize(url: String, shards: Int) throws -> String {
        try ClusterDatabase.initialize(url: url, shards: shards)
    }
}
