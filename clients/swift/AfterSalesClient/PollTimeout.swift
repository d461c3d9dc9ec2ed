/// Milliseconds to wait until `deadline` (monotonic nanoseconds; rounded up so a poll
/// never wakes just before it), or -1 when there is none.
func pollTimeout(until deadline: UInt64?, now: UInt64) -> Int {
    guard let deadline else { return -1 }
    if deadline <= now { return 0 }
    let ms = (deadline - now + 999_999) / 1_000_000
    return Int(min(ms, UInt64(Int32.max)))
}
