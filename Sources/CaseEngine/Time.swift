/// Milliseconds since the Unix epoch (UTC): the unit of every instant and duration in
/// the engine, so that the daemon's `*_ms` proto fields convert without arithmetic.
public typealias Millis = Int64

/// Named spans of time in milliseconds, so that defaults read as "48 * hour".
public enum TimeSpan {
    /// One second in milliseconds.
    public static let second: Millis = 1_000
    /// One minute in milliseconds.
    public static let minute: Millis = 60 * second
    /// One hour in milliseconds.
    public static let hour: Millis = 60 * minute
    /// One day in milliseconds.
    public static let day: Millis = 24 * hour
}

/// Formats instants as ISO-8601 UTC with milliseconds ("2026-11-27T04:00:00.000Z").
///
/// Hand-written (Howard Hinnant's civil-from-days) so the engine needs no Foundation.
public enum ISO8601 {
    /// The ISO-8601 UTC text of `instant`, e.g. "2026-11-27T04:00:00.000Z".
    public static func format(_ instant: Millis) -> String {
        let (days, msOfDay) = floorDivide(instant, TimeSpan.day)
        let (year, month, day) = civilFromDays(days)
        let hour = msOfDay / TimeSpan.hour
        let minute = (msOfDay % TimeSpan.hour) / TimeSpan.minute
        let second = (msOfDay % TimeSpan.minute) / TimeSpan.second
        let milli = msOfDay % TimeSpan.second
        let yearText = year < 0 ? "-" + pad(-year, 4) : pad(year, 4)
        return "\(yearText)-\(pad(month, 2))-\(pad(day, 2))T\(pad(hour, 2)):\(pad(minute, 2)):\(pad(second, 2)).\(pad(milli, 3))Z"
    }

    private static func floorDivide(_ value: Int64, _ divisor: Int64) -> (Int64, Int64) {
        var quotient = value / divisor
        var remainder = value % divisor
        if remainder < 0 {
            quotient -= 1
            remainder += divisor
        }
        return (quotient, remainder)
    }

    // Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
    private static func civilFromDays(_ daysSinceEpoch: Int64) -> (Int64, Int64, Int64) {
        let z = daysSinceEpoch + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        return (year, month, day)
    }

    static func pad(_ value: Int64, _ width: Int) -> String {
        let digits = String(value)
        return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
    }
}
