import AfterSalesProto
import DequeModule

/// Answers already given to mutating calls that carried an idempotency key, so a retry
/// gets the first answer instead of applying twice. Bounded: the oldest key is forgotten
/// first. Only answers that changed state are remembered — a failed call changed
/// nothing, so its retry may simply be evaluated again.
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
