import AfterSalesProto
import CaseEngine
import DequeModule

/// One announcement, serialized once: the same bytes are published, kept for replay and
/// spliced into ReplayEvents answers.
struct PublishedEvent {
    let seq: UInt64
    let topic: String
    /// A serialized `EventEnvelope`, case included.
    let bytes: [UInt8]
}

/// The announcement stream: numbers every announcement (one more than the last, across
/// restarts) and keeps the most recent ones so ReplayEvents can serve a subscriber that
/// missed some (the ZeroMQ guide's Clone pattern).
struct AnnouncementLog {
    let window: Int
    /// The sequence number of the latest announcement; 0 before the first.
    private(set) var lastSeq: UInt64
    private var recent: Deque<PublishedEvent> = []

    init(window: Int, lastSeq: UInt64 = 0) {
        self.window = max(1, window)
        self.lastSeq = lastSeq
    }

    /// The oldest sequence number still kept (lastSeq + 1 when nothing is kept).
    var oldestKept: UInt64 { recent.first?.seq ?? lastSeq + 1 }

    /// Numbers the announcements of one change and keeps them. Returns them twice: as the
    /// journal stores them (without the case, which the journal entry holds once) and as
    /// published (with the case as it stands after the change, `caseBytes`).
    mutating func announce(_ outcome: Outcome, at now: Millis, caseBytes: [UInt8]) -> (journal: [Aftersales_V1_EventEnvelope], published: [PublishedEvent]) {
        var journal: [Aftersales_V1_EventEnvelope] = []
        var published: [PublishedEvent] = []
        journal.reserveCapacity(outcome.announcements.count)
        published.reserveCapacity(outcome.announcements.count)
        for announcement in outcome.announcements {
            lastSeq += 1
            var event = Aftersales_V1_EventEnvelope()
            event.seq = lastSeq
            event.topic = announcement.topic.rawValue
            event.timeMs = now
            event.caseID = announcement.caseID
            event.late = announcement.late
            event.previousStatus = EnumMapping.proto(announcement.previousStatus)
            let full = PublishedEvent(seq: lastSeq, topic: event.topic, bytes: Self.withCase(event, caseBytes))
            keep(full)
            journal.append(event)
            published.append(full)
        }
        return (journal, published)
    }

    /// An event's bytes with the case appended as field 6. Protobuf allows fields in any
    /// order, so this is exactly what setting `case` and serializing would give a reader,
    /// without encoding the case once per announcement.
    static func withCase(_ event: Aftersales_V1_EventEnvelope, _ caseBytes: [UInt8]) -> [UInt8] {
        // Serializing our own freshly built message cannot fail.
        var bytes: [UInt8] = try! event.serializedBytes()
        bytes.reserveCapacity(bytes.count + caseBytes.count + 6)
        bytes.append(0x32)  // field 6, length-delimited
        ProtoWire.appendVarint(UInt64(caseBytes.count), to: &bytes)
        bytes.append(contentsOf: caseBytes)
        return bytes
    }

    /// Keeps an announcement read back from the journal at start-up. The kept window stays
    /// contiguous: an announcement already covered is skipped, and one after a hole
    /// (which a correct journal never has) starts the window afresh.
    mutating func restore(_ event: Aftersales_V1_EventEnvelope, caseBytes: [UInt8]) {
        if let last = recent.last {
            if event.seq <= last.seq { return }
            if event.seq != last.seq + 1 { recent.removeAll() }
        }
        lastSeq = max(lastSeq, event.seq)
        keep(PublishedEvent(seq: event.seq, topic: event.topic, bytes: Self.withCase(event, caseBytes)))
    }

    /// Moves the counter forward to what a snapshot recorded (its events are not kept).
    mutating func advance(to seq: UInt64) {
        lastSeq = max(lastSeq, seq)
    }

    private mutating func keep(_ event: PublishedEvent) {
        recent.append(event)
        if recent.count > window { recent.removeFirst() }
    }

    /// Up to `limit` announcements from `fromSeq` on; nil when `fromSeq` is older than what is kept.
    func replay(from fromSeq: UInt64, limit: Int) -> [PublishedEvent]? {
        if fromSeq > lastSeq { return [] }
        guard fromSeq >= oldestKept else { return nil }
        let start = Int(fromSeq - oldestKept)
        let end = min(recent.count, start + limit)
        return Array(recent[start..<end])
    }
}

/// The few protobuf wire-format pieces the daemon writes by hand to avoid re-encoding
/// bytes it already has.
enum ProtoWire {
    static func appendVarint(_ value: UInt64, to bytes: inout [UInt8]) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7f) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    /// A length-delimited field (tag = field number << 3 | 2) holding `payload`.
    static func appendField(_ number: UInt64, _ payload: [UInt8], to bytes: inout [UInt8]) {
        appendVarint(number << 3 | 2, to: &bytes)
        appendVarint(UInt64(payload.count), to: &bytes)
        bytes.append(contentsOf: payload)
    }

    /// A varint field (tag = field number << 3 | 0); proto3 leaves out zero.
    static func appendVarintField(_ number: UInt64, _ value: UInt64, to bytes: inout [UInt8]) {
        guard value != 0 else { return }
        appendVarint(number << 3, to: &bytes)
        appendVarint(value, to: &bytes)
    }
}
