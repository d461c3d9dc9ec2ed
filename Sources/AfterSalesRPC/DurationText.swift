/// Durations as operators type them: "500ms", "30s", "15m", "12h", "7d", or a bare number
/// of milliseconds.
public enum DurationText {
    /// Milliseconds in `text`, or nil when it is not a positive duration in a known unit.
    public static func milliseconds(_ text: String) -> Int64? {
        let trimmed = text.trimmingWhitespace()
        let digits = trimmed.prefix { $0.isASCII && $0.isNumber }
        guard !digits.isEmpty, let value = Int64(digits) else { return nil }
        let unit = trimmed.dropFirst(digits.count)
        let scale: Int64
        switch unit {
        case "", "ms": scale = 1
        case "s": scale = 1_000
        case "m": scale = 60_000
        case "h": scale = 3_600_000
        case "d": scale = 86_400_000
        default: return nil
        }
        let (product, overflow) = value.multipliedReportingOverflow(by: scale)
        return overflow ? nil : product
    }

    /// Microseconds in `text`: "250us", or any duration `milliseconds` reads.
    public static func microseconds(_ text: String) -> Int64? {
        let trimmed = text.trimmingWhitespace()
        if trimmed.hasSuffix("us"), let value = Int64(trimmed.dropLast(2)), value > 0 { return value }
        return milliseconds(text).flatMap { $0 > 0 ? $0.multipliedReportingOverflow(by: 1_000) : nil }.flatMap { $0.overflow ? nil : $0.partialValue }
    }

    /// The shortest exact text for a number of milliseconds, e.g. 43_200_000 → "12h".
    public static func format(milliseconds: Int64) -> String {
        for (unit, scale) in [("d", Int64(86_400_000)), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)]
        where milliseconds != 0 && milliseconds % scale == 0 {
            return "\(milliseconds / scale)\(unit)"
        }
        return "\(milliseconds)ms"
    }
}

extension String {
    fileprivate func trimmingWhitespace() -> Substring {
        let start = firstIndex { !$0.isWhitespace } ?? endIndex
        let end = lastIndex { !$0.isWhitespace }.map(index(after:)) ?? start
        return self[start..<end]
    }
}
