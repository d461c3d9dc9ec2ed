import AfterSalesProto
import CaseEngine
import DequeModule

/// The announcement stream: numbers every announcement (one more than the last, across
/// restarts) and keeps the most recent ones so ReplayEvents can serve a subscriber that
/// missed some (the ZeroMQ guide's Clone pattern).
struct AnnouncementLog {
    let window: Int
    /// The sequence number of the latest announcement; 0 before the first.
    private(set) var lastSeq: UInt64
    private var recent: Deque<Aftersales_V1_EventEnvelope> = []

    init(window: Int, lastSeq: UInt64 = 0) {
        self.window = max(1, window)
        self.lastSeq = lastSeq
    }

    /// The oldest sequence number still kept (lastSeq + 1 when nothing is kept).
    var oldestKept: UInt64 { recent.first?.seq ?? lastSeq + 1 }

    /// Numbers the announcements of one change and keeps them.
    mutating func announce(_ outcome: Outcome, at now: Millis, wireCase: Aftersales_V1_Case) -> [Aftersales_V1_EventEnvelope] {
        outcome.announcements.map { announcement in
            lastSeq += 1
            var event = Aftersales_V1_EventEnvelope()
            event.seq = lastSeq
            event.topic = announcement.topic.rawValue
            event.timeMs = now
            event.caseID = announcement.caseID
            event.late = announcement.late
            event.case = wireCase
            event.previousStatus = EnumMapping.proto(announcement.previousStatus)
            keep(event)
            return event
        }
    }

    /// Keeps an announcement read back from the journal at start-up. The kept window stays
    /// contiguous: an announcement already covered is skipped, and one after a hole
    /// (which a correct journal never has) starts the window afresh.
    mutating func restore(_ event: Aftersales_V1_EventEnvelope) {
        if let last = recent.last {
            if event.seq <= last.seq { return }
            if event.seq != last.seq + 1 { recent.removeAll() }
        }
        lastSeq = max(lastSeq, event.seq)
        keep(event)
    }

    /// Moves the counter forward to what a snapshot recorded (its events are not kept).
    mutating func advance(to seq: UInt64) {
        lastSeq = max(lastSeq, seq)
    }

    private mutating func keep(_ event: Aftersales_V1_EventEnvelope) {
        recent.append(event)
        if recent.count > window { recent.removeFirst() }
    }

    /// Up to `limit` announcements from `fromSeq` on; nil when `fromSeq` is older than what is kept.
    func replay(from fromSeq: UInt64, limit: Int) -> [Aftersales_V1_EventEnvelope]? {
        if fromSeq > lastSeq { return [] }
        guard fromSeq >= oldestKept else { return nil }
        let start = Int(fromSeq - oldestKept)
        let end = min(recent.count, start + limit)
        return Array(recent[start..<end])
    }
}
