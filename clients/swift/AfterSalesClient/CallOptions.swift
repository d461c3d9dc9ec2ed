import AfterSalesRPC

/// How one call is made: its deadline, how long each attempt waits, how often it is tried,
/// and its idempotency key.
///
/// Every field is optional; what is left unset comes from the client's
/// `AfterSalesClient.Configuration`.
public struct CallOptions: Sendable, Hashable {
    /// The whole call's deadline, counted from when it is made. When it passes without an
    /// answer the call fails with DEADLINE_EXCEEDED. nil = no overall deadline: the call is
    /// bounded by `maxAttempts × attemptTimeout` and then fails with UNAVAILABLE.
    public var deadline: Duration?
    /// How long one attempt waits for its answer before the Lazy Pirate closes the socket,
    /// reopens it and resends (capped by what is left of `deadline`). It is also what the
    /// envelope's `deadline_ms` tells the daemon. nil = the client's default (2 s).
    public var attemptTimeout: Duration?
    /// How many attempts at most (≥ 1). nil = the client's default (3).
    public var maxAttempts: Int?
    /// The idempotency key sent with a mutating call. nil = a random 128-bit key is made
    /// for mutating calls (read-only calls get none). "" = none, which also means a mutating
    /// call is never resent (it could be applied twice).
    public var idempotencyKey: String?
    /// Free-form caller metadata carried in the envelope (not interpreted by the daemon).
    public var metadata: [String: String]

    /// Options with everything left to the client's defaults unless given.
    public init(
        deadline: Duration? = nil, attemptTimeout: Duration? = nil, maxAttempts: Int? = nil,
        idempotencyKey: String? = nil, metadata: [String: String] = [:]
    ) {
        self.deadline = deadline
        self.attemptTimeout = attemptTimeout
        self.maxAttempts = maxAttempts
        self.idempotencyKey = idempotencyKey
        self.metadata = metadata
    }

    /// These options with `deadline` replaced when `deadline` is not nil.
    public func with(deadline: Duration?) -> CallOptions {
        guard let deadline else { return self }
        var copy = self
        copy.deadline = deadline
        return copy
    }
}

/// A fresh idempotency key: 128 random bits as 32 lower-case hex digits.
public func makeIdempotencyKey() -> String {
    var generator = SystemRandomNumberGenerator()
    let high = generator.next() as UInt64
    let low = generator.next() as UInt64
    return hex16(high) + hex16(low)
}

private func hex16(_ value: UInt64) -> String {
    let digits = String(value, radix: 16)
    return String(repeating: "0", count: 16 - digits.count) + digits
}

extension RPCError {
    /// The start of the message of the UNAVAILABLE error the client makes itself when the
    /// daemon did not answer at all ("no answer from ENDPOINT within T ...").
    public static let noAnswerPrefix = "no answer from "

    /// True when this error was made by the client because the daemon never answered
    /// (as opposed to an UNAVAILABLE the daemon itself returned).
    public var isNoAnswer: Bool { code == .unavailable && message.hasPrefix(RPCError.noAnswerPrefix) }
}

extension Duration {
    /// Whole nanoseconds (saturating), for the monotonic clock arithmetic of the I/O loop.
    var nanoseconds: UInt64 {
        let (seconds, attoseconds) = components
        guard seconds >= 0 else { return 0 }
        let (whole, overflow) = UInt64(seconds).multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return .max }
        let (sum, overflow2) = whole.addingReportingOverflow(UInt64(attoseconds / 1_000_000_000))
        return overflow2 ? .max : sum
    }

    /// Operator-style text: "300ms", "2s", "1m30s".
    var shortText: String {
        let ms = Int64(clamping: nanoseconds / 1_000_000)
        return DurationText.format(milliseconds: ms)
    }
}
