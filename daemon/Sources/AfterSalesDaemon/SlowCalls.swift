// The slow-call log, like Redis' SLOWLOG: every call that took at least the threshold
// from receipt to reply is kept, newest first, in a bounded ring. Only slow calls cost
// anything beyond one comparison: the entry (and the case id read from the payload) is
// built for them alone.
import AfterSalesProto
import AfterSalesRPC
import CaseEngine
import DequeModule
import Foundation

struct SlowCallLog {
    /// 0 turns the log off.
    let thresholdMicroseconds: UInt64
    let capacity: Int
    /// Newest first.
    private(set) var entries: Deque<Aftersales_V1_SlowCall> = []
    /// Calls logged since start-up.
    private(set) var totalLogged: UInt64 = 0

    init(thresholdMicroseconds: UInt64, capacity: Int) {
        self.thresholdMicroseconds = thresholdMicroseconds
        self.capacity = max(1, capacity)
    }

    /// Logs the call when it was slow.
    mutating func consider(_ reply: Batch.Reply, microseconds: UInt64, now: Millis) {
        guard thresholdMicroseconds > 0, microseconds >= thresholdMicroseconds, let method = reply.method else { return }
        totalLogged += 1
        let entry = Aftersales_V1_SlowCall.with {
            $0.id = totalLogged
            $0.atMs = now - Int64(microseconds / 1_000)
            $0.durationUs = microseconds
            $0.method = method.fullName
            $0.code = reply.code
            $0.client = reply.client ?? ""
            if let request = reply.request {
                $0.caller = request.metadata["caller"] ?? ""
                $0.requestBytes = UInt64(request.payload.count)
                $0.caseID = RequestRouting.caseID(of: method, payload: request.payload) ?? ""
            }
        }
        if entries.count == capacity { entries.removeLast() }
        entries.prepend(entry)
    }

    /// SlowCalls: the newest `count` entries (all when 0).
    func answer(_ request: Aftersales_V1_SlowCallsRequest) -> Aftersales_V1_SlowCallsResponse {
        .with {
            $0.calls = Array(request.count == 0 ? entries[...] : entries.prefix(Int(request.count)))
            $0.thresholdUs = thresholdMicroseconds
            $0.totalLogged = totalLogged
        }
    }
}

