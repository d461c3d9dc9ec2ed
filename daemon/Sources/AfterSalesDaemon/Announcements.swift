import AfterSalesProto
import CaseEngine
import DequeModule

/// One announcement, serialized once: the same bytes are published, kept for replay,
/// spliced into ReplayEvents answers and written into snapshots.
struct PublishedEvent: Sendable {
    let seq: UInt64
    let topic: String
    /// A serialized `EventEnvelope`, case included.
    let bytes: [UInt8]
}

/// The announcement stream: numbers every announcement (one more than the last, across
/// restarts), holds each until the journal record that carries it is on disk, then
/// releases it for publishing and keeps the most recent ones so ReplayEvents can serve a
/// subscriber that missed some (the ZeroMQ guide's Clone pattern). Subscribers thus see
/// only what is committed, as Kafka's consumers see only what is below the high-water
/// mark: no announcement can un-happen in a power loss.
struct AnnouncementLog {
    let window: Int
    /// The sequence number of the latest announcement made; 0 before the first.
    private(set) var lastSeq: UInt64
    /// The sequence number of the latest announcement released for publishing.
    private(set) var publishedSeq: UInt64
    /// This run's incarnation of the stream (random, non-zero; 0 until `beginIncarnation`).
    private(set) var incarnation: UInt64 = 0
    /// The first sequence number this incarnation makes.
    private(set) var incarnationStartSeq: UInt64 = 0
    /// Released announcements, oldest first, at most `window`: what ReplayEvents serves.
    private(set) var recent: Deque<PublishedEvent> = []
    /// Announcements waiting for the disk, each with the journal record that holds it.
    private var unpublished: Deque<(record: UInt64, event: PublishedEvent)> = []

    /// The shard whose stream this is (cluster mode; 0 for a daemon on its own, which
    /// leaves the field out of every envelope).
    var shard: UInt32 = 0

    init(window: Int, lastSeq: UInt64 = 0) {
        self.window = max(1, window)
        self.lastSeq = lastSeq
        self.publishedSeq = lastSeq
    }

    /// The oldest sequence number still kept (publishedSeq + 1 when nothing is kept).
    var oldestKept: UInt64 { recent.first?.seq ?? publishedSeq + 1 }

    /// Announcements made but not yet released.
    var unpublishedCount: Int { unpublished.count }

    /// The announcements made but not yet released (a cluster member writes them to
    /// PostgreSQL with the records that hold them).
    var waiting: [PublishedEvent] { unpublished.map(\.event) }

    /// Starts a new incarnation at the next sequence number. Every start is one: a daemon
    /// cannot tell whether storage lost a tail it had once confirmed (a restored backup, a
    /// disk that lied), so each start makes a possible rewind visible to subscribers.
    mutating func beginIncarnation(_ value: UInt64) {
        incarnation = value == 0 ? 1 : value
        incarnationStartSeq = lastSeq + 1
    }

    /// Numbers the announcements of one change, held in journal record `record` until
    /// that record is on disk. Returns each as the journal stores it: the published bytes
    /// without the case (which the journal entry holds once), a prefix of them.
    mutating func announce(_ outcome: Outcome, at now: Millis, caseBytes: ArraySlice<UInt8>, record: UInt64) -> [ArraySlice<UInt8>] {
        var journal: [ArraySlice<UInt8>] = []
        journal.reserveCapacity(outcome.announcements.count)
        for announcement in outcome.announcements {
            lastSeq += 1
            var withoutCase = 0
            let topic = announcement.topic.rawValue
            // Written once, as SwiftProtobuf would order it (by field number), with the case
            // (field 6) after the rest: what `withCase` gives for an envelope read back.
            let bytes = ProtoWriter.bytes(capacity: caseBytes.count + 128) { w in
                w.varintField(EventEnvelopeField.seq.rawValue, lastSeq)
                w.stringField(EventEnvelopeField.topic.rawValue, topic)
                w.int64Field(EventEnvelopeField.timeMs.rawValue, now)
                w.stringField(EventEnvelopeField.caseID.rawValue, announcement.caseID)
                w.varintField(EventEnvelopeField.late.rawValue, announcement.late ? 1 : 0)
                if let previous = announcement.previousStatus {
                    w.varintField(EventEnvelopeField.previousStatus.rawValue, protoNumber(of: previous))
                }
                w.varintField(EventEnvelopeField.incarnation.rawValue, incarnation)
                w.varintField(EventEnvelopeField.incarnationStartSeq.rawValue, incarnationStartSeq)
                w.varintField(EventEnvelopeField.shard.rawValue, UInt64(shard))
                withoutCase = w.count
                caseBytes.withUnsafeBytes { w.bytesField(EventEnvelopeField.case.rawValue, $0) }
            }
            unpublished.append((record, PublishedEvent(seq: lastSeq, topic: topic, bytes: bytes)))
            journal.append(bytes[..<withoutCase])
        }
        return journal
    }

    /// Releases, in order, the announcements whose journal records are all below
    /// `durableBefore` (every record below it is on disk): keeps them for replay and
    /// appends them to `published` — at most `limit`. Returns whether releasable ones remain.
    @discardableResult
    mutating func release(durableBefore: UInt64, into published: inout [PublishedEvent], limit: Int = .max) -> Bool {
        var released = 0
        while let first = unpublished.first, first.record < durableBefore {
            if released == limit { return true }
            unpublished.removeFirst()
            publishedSeq = first.event.seq
            keep(first.event)
            published.append(first.event)
            released += 1
        }
        return false
    }

    /// An event's bytes with the case appended as field 6. Protobuf allows fields in any
    /// order, so this is exactly what setting `case` and serializing would give a reader,
    /// without encoding the case once per announcement.
    static func withCase(_ event: Aftersales_V1_EventEnvelope, _ caseBytes: [UInt8]) -> [UInt8] {
        // Serializing our own freshly built message cannot fail.
        let head: [UInt8] = try! event.serializedBytes()
        return ProtoWriter.bytes(capacity: head.count + caseBytes.count + 8) { w in
            head.withUnsafeBytes { w.raw($0) }
            w.bytesField(EventEnvelopeField.case.rawValue, caseBytes)
        }
    }

    /// Keeps an announcement read back at start-up (it is on disk, so it is published).
    /// The kept window stays contiguous: an announcement already covered is skipped, and
    /// one after a hole (which correct storage never has) starts the window afresh.
    mutating func restore(_ event: PublishedEvent) {
        if let last = recent.last {
            if event.seq <= last.seq { return }
            if event.seq != last.seq + 1 { recent.removeAll() }
        }
        lastSeq = max(lastSeq, event.seq)
        publishedSeq = lastSeq
        keep(event)
    }

    /// Keeps an announcement read back from the journal at start-up.
    mutating func restore(_ event: Aftersales_V1_EventEnvelope, caseBytes: [UInt8]) {
        restore(PublishedEvent(seq: event.seq, topic: event.topic, bytes: Self.withCase(event, caseBytes)))
    }

    /// Moves the counter forward to what a snapshot recorded.
    mutating func advance(to seq: UInt64) {
        lastSeq = max(lastSeq, seq)
        publishedSeq = lastSeq
    }

    private mutating func keep(_ event: PublishedEvent) {
        recent.append(event)
        if recent.count > window { recent.removeFirst() }
    }

    /// Up to `limit` announcements from `fromSeq` on; nil when `fromSeq` is older than what is kept.
    func replay(from fromSeq: UInt64, limit: Int) -> ArraySlice<PublishedEvent>? {
        if fromSeq > publishedSeq { return [] }
        guard fromSeq >= oldestKept else { return nil }
        let start = Int(fromSeq - oldestKept)
        let end = min(recent.count, start + limit)
        return ArraySlice(recent[start..<end])
    }
}
