// Where a core's changes become durable. A daemon on its own writes its journal file
// (`Journal`: one write and, by --fsync, one fdatasync per batch); a cluster member's
// shard buffers its records in a `ShardLog`, and the member commits every shard's
// records of a turn in one PostgreSQL transaction. The core appends and asks what is
// durable the same way in both.

/// A core's write-ahead log, as the core and its snapshots use it.
protocol ChangeLog: AnyObject {
    /// The sequence number the next appended record gets.
    var nextSequence: UInt64 { get }
    /// Every record below this is durable (announcements up to it may be published).
    var durableNextSequence: UInt64 { get }
    /// Bytes the log holds (for GetStats and the metrics).
    var bytesOnDisk: UInt64 { get }
    /// Journal segments a snapshot may delete once written (files only).
    var closedSegments: [ClosedSegment] { get }

    /// Buffers one record; returns its sequence number.
    @discardableResult func append(_ record: [UInt8]) throws -> UInt64
    /// Makes the buffered records durable as the policy says (files), or leaves them for
    /// the member's transaction (cluster).
    func commit(urgent: Bool) throws
    /// A periodic sync when nothing was written this turn (files, everysec).
    func syncIfDue(urgent: Bool) throws
    /// Takes in what background syncs made durable.
    func refreshDurable()
    /// Starts a new segment at `seq` (files: the moment of a snapshot's copy).
    func rotate(startingAt seq: UInt64) throws
    /// Forgets segments a snapshot deleted.
    func forgetSegments(_ paths: [String])
    /// Syncs and closes (shutdown).
    func close() throws
}

extension Journal: ChangeLog {
    func commit(urgent: Bool) throws { try commit(now: .now, urgent: urgent) }
    func syncIfDue(urgent: Bool) throws { _ = try syncIfDue(now: .now, urgent: urgent) }
    func rotate(startingAt seq: UInt64) throws { try rotate(startingAt: seq, now: .now) }
    func close() throws { try close(now: .now) }
}

/// A cluster shard's log: records wait here until the member's commit (one transaction
/// for every shard touched in the turn, fenced by each shard's epoch) takes them.
final class ShardLog: ChangeLog {
    /// The records appended since the last commit, with their sequence numbers.
    private(set) var pending: [(seq: UInt64, record: [UInt8])] = []
    private(set) var nextSequence: UInt64
    private(set) var durableNextSequence: UInt64
    private(set) var bytesOnDisk: UInt64 = 0
    var closedSegments: [ClosedSegment] { [] }

    /// A log whose next record is `nextSequence` (everything before it is in PostgreSQL).
    init(nextSequence: UInt64) {
        self.nextSequence = nextSequence
        durableNextSequence = nextSequence
    }

    @discardableResult func append(_ record: [UInt8]) throws -> UInt64 {
        pending.append((nextSequence, record))
        nextSequence += 1
        return nextSequence - 1
    }

    /// The member committed `pending`: those records are durable.
    func committed() {
        for item in pending { bytesOnDisk += UInt64(item.record.count) }
        pending.removeAll(keepingCapacity: true)
        durableNextSequence = nextSequence
    }

    func commit(urgent: Bool) throws {}
    func syncIfDue(urgent: Bool) throws {}
    func refreshDurable() {}
    func rotate(startingAt seq: UInt64) throws {}
    func forgetSegments(_ paths: [String]) {}
    func close() throws {}
}
