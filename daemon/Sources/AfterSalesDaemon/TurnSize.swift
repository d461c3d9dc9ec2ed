// How many calls one turn takes from the socket. A turn is answered only when it is
// durable (one write, one fdatasync under --fsync always), so every call in it waits for
// the last. With a few dozen callers of one call each, taking all of them makes one
// convoy: the loop syncs while every caller waits, then sits idle while the replies
// travel and the next calls come back (measured: the loop busy under half a core, calls/s
// 5–29 % below turns of 32). With a deep queue (callers with many calls in flight) big
// turns are what pays: fewer syncs per call (a fixed 32 cost a third of the throughput).
// So, much as TCP sizes its window: a turn that empties the socket halves the next one,
// a turn that stops at its limit doubles it (an additive step measured ~10 % slower with
// 16 calls in flight per caller, and no better with one).

/// The number of calls the next turn may take, from how the last turns ended.
struct TurnSize {
    /// The smallest limit: below it, per-turn costs (a write, a sync) dominate. Against a
    /// floor of 16 (medians of three alternating runs): 14 % more calls/s with sixteen in
    /// flight per caller, 4–8 % fewer with one, inside that load's run-to-run spread.
    static let floor = 32

    /// The most a turn may take (--max-batch).
    let ceiling: Int
    /// What the next turn may take.
    private(set) var limit: Int

    /// Starts at `ceiling` (the most calls one turn may take, at least 1).
    init(ceiling: Int) {
        self.ceiling = max(1, ceiling)
        limit = self.ceiling
    }

    /// After a turn that took `taken` calls and found the socket empty (`drained`) or
    /// stopped at the limit.
    mutating func turnEnded(taken: Int, drained: Bool) {
        if drained {
            limit = min(ceiling, max(Self.floor, taken / 2))
        } else {
            limit = min(ceiling, limit * 2)
        }
    }
}
