import AfterSalesProto
import CSodium
import DequeModule
import Foundation

/// Answers already given to mutating calls that carried an idempotency key, so a retry
/// gets the first answer instead of applying twice. Bounded: the oldest key is forgotten
/// first. Only answers that changed state are remembered — a failed call changed
/// nothing, so its retry may simply be evaluated again.
///
/// An answer is remembered by what rebuilds it (the case id and version it showed, the
/// judgement it carried) and by a fingerprint of the request, not as a second copy of
/// the case: the case is in the store, and its journal entry holds it at that version.
struct IdempotencyTable {
    typealias Answer = Aftersales_Storage_V1_IdempotentAnswer

    let capacity: Int
    private(set) var answers: [String: Answer] = [:]
    private var order: Deque<String> = []

    init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    var count: Int { answers.count }

    subscript(key: String) -> Answer? { answers[key] }

    mutating func remember(_ answer: Answer) {
        if answers.updateValue(answer, forKey: answer.key) == nil {
            order.append(answer.key)
        }
        while order.count > capacity, let oldest = order.popFirst() {
            answers.removeValue(forKey: oldest)
        }
    }

    /// The remembered answers, oldest first (what a snapshot stores).
    var inOrder: [Answer] { order.compactMap { answers[$0] } }
}

/// What identifies a request's payload for its idempotency key: BLAKE2b-128 of the bytes
/// (the method is kept and compared by name). A key reused with another request (a bug in
/// the caller, a key derived from too little) is then refused instead of silently answered
/// with the first request's answer (as Stripe and the IETF Idempotency-Key draft do).
enum RequestFingerprint {
    static let byteCount = 16

    static func of(payload: Data) -> Data {
        var digest = Data(count: byteCount)
        digest.withUnsafeMutableBytes { out in
            payload.withUnsafeBytes { input in
                _ = crypto_generichash(out.bindMemory(to: UInt8.self).baseAddress!, byteCount,
                                       input.bindMemory(to: UInt8.self).baseAddress, UInt64(input.count), nil, 0)
            }
        }
        return digest
    }
}
