import CLibPQ

/// A failed PostgreSQL operation: what we were doing, what PostgreSQL (or libpq) said, and
/// — the part a caller acts on — what kind of failure it is.
///
/// `description` reads like
/// `execute(SELECT * FROM nowhere): ERROR 42P01: relation "nowhere" does not exist`,
/// so it can go straight into a log line or an operator's message.
///
/// The kinds ask for different reactions, which is why they are told apart:
/// - `connectionLost`: PostgreSQL is unreachable or dropped us; keep the work, call
///   `reset()` later and retry. A lost connection during `COMMIT` leaves the outcome
///   unknown (`isCommitOutcomeUnknown`): the transaction may or may not have committed.
/// - `serializationFailure`: the server aborted the transaction to keep it serializable
///   or to break a deadlock; run the whole transaction again.
/// - `statementFailed`: the server refused the statement (bad SQL, unknown table, a
///   constraint, a value of the wrong type, a timeout); the same statement fails again.
/// - `misuse`: the call was wrong before anything reached the server (a NUL byte in a
///   text parameter, a row out of range, NULL read as a value, a closed connection).
public struct PostgresError: Error, CustomStringConvertible, Sendable {
    /// What kind of failure this is; see the type's documentation for what each asks of
    /// the caller.
    public enum Kind: Sendable, Equatable {
        /// PostgreSQL cannot be reached, refused the connection, or dropped it.
        case connectionLost
        /// The transaction was aborted to keep it serializable or to break a deadlock.
        case serializationFailure
        /// The server refused the statement; retrying it unchanged fails the same way.
        case statementFailed
        /// The API was used wrongly; nothing (more) was sent to the server.
        case misuse
    }

    /// What kind of failure this is.
    public let kind: Kind
    /// The five-character SQLSTATE the server sent (`42P01`, `40001`, `57P01`, ...);
    /// nil when the failure happened on our side of the wire (libpq, or this library).
    public let sqlState: String?
    /// The primary message: the server's, libpq's, or this library's.
    public let message: String
    /// The server's optional detail line.
    public let detail: String?
    /// The server's optional hint.
    public let hint: String?
    /// What failed: `connect to aftersales@127.0.0.1:5432/aftersales`, `execute(UPDATE …)`,
    /// `COMMIT`, `reset`, ...
    public let operation: String
    /// True when the connection was lost while `COMMIT` was on its way: the transaction
    /// may have committed or not, and only reading the database again can tell.
    public internal(set) var isCommitOutcomeUnknown: Bool = false

    /// Builds an error from its parts (the library builds them; tests and callers may too).
    public init(kind: Kind, message: String, operation: String, sqlState: String? = nil,
                detail: String? = nil, hint: String? = nil) {
        self.kind = kind
        self.message = message
        self.operation = operation
        self.sqlState = sqlState
        self.detail = detail
        self.hint = hint
    }

    /// PostgreSQL is unreachable or dropped the connection: retry after `reset()`.
    public var isConnectionLost: Bool { kind == .connectionLost }
    /// The transaction lost a serialization conflict or a deadlock (40001, 40P01): run it again.
    public var isSerializationFailure: Bool { kind == .serializationFailure }
    /// A unique constraint refused the row (23505), e.g. a journal sequence number taken twice.
    public var isUniqueViolation: Bool { sqlState == "23505" }

    /// `operation: [SEVERITY SQLSTATE: ]message[ (detail)][ hint: …]`.
    public var description: String {
        var text = "\(operation): "
        if let sqlState { text += "ERROR \(sqlState): " }
        text += message
        if let detail { text += " (\(detail))" }
        if let hint { text += " hint: \(hint)" }
        if isCommitOutcomeUnknown { text += " [commit outcome unknown]" }
        return text
    }

    // MARK: classification

    /// The kind an SQLSTATE stands for, when the connection itself is still up.
    ///
    /// Connection-lost states: class 08 (connection exception), 57P01 admin shutdown,
    /// 57P02 crash shutdown, 57P03 cannot connect now (starting up or shutting down),
    /// 57P05 idle session timeout, 53300 too many connections — each means "this
    /// server cannot serve this connection now", not "your SQL is wrong".
    static func kind(forSQLState sqlState: String?) -> Kind {
        guard let sqlState else { return .statementFailed }
        if sqlState.hasPrefix("08") { return .connectionLost }
        switch sqlState {
        case "57P01", "57P02", "57P03", "57P05", "53300": return .connectionLost
        case "40001", "40P01": return .serializationFailure
        default: return .statementFailed
        }
    }

    /// Builds the error for a failed result (`result` may be nil: libpq had none to give,
    /// e.g. out of memory or the connection broke before any answer).
    static func from(result: OpaquePointer?, connection: OpaquePointer?, operation: String) -> PostgresError {
        let connectionBroken = connection.map { PQstatus($0) != CONNECTION_OK } ?? true
        guard let result else {
            let message = connection.map { libpqMessage(PQerrorMessage($0)) } ?? "no connection"
            return PostgresError(kind: connectionBroken ? .connectionLost : .statementFailed,
                                 message: message.isEmpty ? "libpq returned no result" : message, operation: operation)
        }
        let sqlState = field(result, CLibPQ_DIAG_SQLSTATE())
        var message = field(result, CLibPQ_DIAG_MESSAGE_PRIMARY()) ?? libpqMessage(PQresultErrorMessage(result))
        if message.isEmpty { message = connection.map { libpqMessage(PQerrorMessage($0)) } ?? "" }
        if message.isEmpty { message = "unknown error (result status \(String(cString: PQresStatus(PQresultStatus(result)))))" }
        let kind: Kind = connectionBroken ? .connectionLost : PostgresError.kind(forSQLState: sqlState)
        return PostgresError(kind: kind, message: message, operation: operation, sqlState: sqlState,
                             detail: field(result, CLibPQ_DIAG_MESSAGE_DETAIL()),
                             hint: field(result, CLibPQ_DIAG_MESSAGE_HINT()))
    }

    /// A diagnostic field of a result, nil when absent or empty.
    private static func field(_ result: OpaquePointer, _ code: Int32) -> String? {
        guard let text = PQresultErrorField(result, code) else { return nil }
        let value = String(cString: text)
        return value.isEmpty ? nil : value
    }

    /// libpq's message text made one line: libpq ends messages with a newline and puts a
    /// hint on a tab-indented second line ("Is the server running on that host …").
    static func libpqMessage(_ text: UnsafePointer<CChar>?) -> String {
        guard let text else { return "" }
        return String(cString: text)
            .split(whereSeparator: \.isNewline)
            .map { $0.trimmingPrefix(while: \.isWhitespace) }
            .filter { !$0.isEmpty }
            .joined(separator: "; ")
    }

    /// This error, marked as having happened while COMMIT was on its way.
    func withCommitOutcomeUnknown() -> PostgresError {
        var copy = self
        copy.isCommitOutcomeUnknown = true
        return copy
    }

    /// An error for a mistake the caller made, found before anything was sent.
    static func misuse(_ message: String, _ operation: String) -> PostgresError {
        PostgresError(kind: .misuse, message: message, operation: operation)
    }
}
