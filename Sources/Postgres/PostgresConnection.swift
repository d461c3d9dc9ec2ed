import CLibPQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One connection to a PostgreSQL server, used synchronously: each call sends its
/// statement and waits for the answer, the way the daemon's loop waits for fdatasync.
///
/// **One thread at a time.** A libpq connection is not thread-safe, and neither is
/// this type: it is deliberately not `Sendable`, so Swift 6 rejects most accidental
/// sharing at compile time (like `ZMQSocket`). Give each thread its own connection.
///
/// **Errors** are `PostgresError`s whose `kind` says what to do: `connectionLost`
/// (PostgreSQL unreachable or restarted: call `reset()` later and retry),
/// `serializationFailure` (run the transaction again), `statementFailed` (the SQL or its
/// data is wrong), `misuse` (the call itself is wrong).
///
/// **Lifetime.** The connection closes itself in `deinit`; `close()` does it earlier.
/// After the server restarted, the connection stays broken (`isConnected` false, every
/// call throws `connectionLost`) until `reset()` reconnects it.
///
/// **Notices** (`NOTICE: table "x" does not exist, skipping`, ...) are dropped unless
/// `noticeHandler` is set: libpq's default would print them on standard error.
///
/// ```swift
/// let db = try PostgresConnection(url: "postgres://aftersales@127.0.0.1:5432/aftersales")
/// try db.execute("INSERT INTO journal (shard, seq, record) VALUES ($1, $2, $3)",
///                [.integer(7), .integer(42), .bytes(record)])
/// let owned = try db.execute("UPDATE shards SET epoch = epoch WHERE shard = $1 AND epoch = $2",
///                            [.integer(7), .integer(epoch)]).affectedRows == 1
/// ```
public final class PostgresConnection {
    /// The libpq connection; nil once closed.
    private var handle: OpaquePointer?
    /// What `PQconnectdbParams` was given, kept for reconnecting after `close()`.
    private let keywords: [String]
    private let values: [String]
    /// Who and where, for messages: `aftersales@127.0.0.1:5432/aftersales` (never a password).
    public let target: String
    /// Called with each notice or warning the server sends (message text, one line).
    public var noticeHandler: ((String) -> Void)?
    /// This session's server-side prepared statements: name by SQL text and parameter
    /// types. A new session (`reset()`) starts with none.
    private var preparedStatements: [PreparedKey: String] = [:]
    private var preparedCount = 0
    /// More distinct statements than this and the cache starts over (DEALLOCATE ALL).
    private static let preparedStatementLimit = 256

    /// Connects to `url`, a `postgres://user@host:port/database?param=value` URL or a
    /// `key=value ...` string (libpq's syntax; environment variables such as PGHOST fill
    /// what it leaves out).
    ///
    /// Defaults the URL (or PGCONNECT_TIMEOUT) may override: `connect_timeout` =
    /// `connectTimeoutSeconds` (5), and TCP keepalives that notice a dead server after about
    /// 25 idle seconds (`keepalives_idle=10`, `keepalives_interval=5`, `keepalives_count=3`)
    /// plus `tcp_user_timeout=30000` (ms), so that a call on a server that vanished from
    /// the network fails instead of hanging for the kernel's 15 minutes.
    ///
    /// Throws `misuse` for a URL libpq cannot parse (bad syntax, unknown parameter), and
    /// `connectionLost` for every failure to connect, retryable or not — the message says
    /// which: refused, timed out, no such database, authentication failed, bad port, ...
    public init(url: String, connectTimeoutSeconds: Int = 5) throws(PostgresError) {
        let target = try Self.parse(url)
        var keywords: [String] = []
        var values: [String] = []
        // Entries before the expanded URL are defaults: the URL's own settings win
        // (libpq processes the arrays in order, and the last value given is used).
        // Environment variables rank below both, so a default is given only where none is set.
        let defaults: [(keyword: String, environment: String?, value: String)] = [
            ("connect_timeout", "PGCONNECT_TIMEOUT", String(connectTimeoutSeconds)),
            ("keepalives_idle", nil, "10"),
            ("keepalives_interval", nil, "5"),
            ("keepalives_count", nil, "3"),
            ("tcp_user_timeout", nil, "30000"),
        ]
        for entry in defaults {
            if let variable = entry.environment, getenv(variable) != nil { continue }
            keywords.append(entry.keyword)
            values.append(entry.value)
        }
        keywords.append("dbname")
        values.append(url)
        self.keywords = keywords
        self.values = values
        self.target = target
        handle = try Self.connect(keywords: keywords, values: values, target: target)
        installNoticeReceiver()
    }

    deinit {
        if let handle { PQfinish(handle) }
    }

    /// Closes the connection. Idempotent; later calls throw `misuse` until `reset()`
    /// opens a new one.
    public func close() {
        preparedStatements.removeAll()
        guard let handle else { return }
        PQfinish(handle)
        self.handle = nil
    }

    /// Whether `close()` has been called (and no `reset()` since).
    public var isClosed: Bool { handle == nil }

    /// Whether the connection is up as far as libpq knows (PQstatus). A server that went
    /// away is noticed only by the next call, which then throws `connectionLost`.
    public var isConnected: Bool {
        guard let handle else { return false }
        return PQstatus(handle) == CONNECTION_OK
    }

    /// The connection's socket (PQsocket), for polling it alongside other descriptors;
    /// -1 when closed or broken. It changes on `reset()`.
    public var socketDescriptor: Int32 {
        guard let handle else { return -1 }
        return PQsocket(handle)
    }

    /// The server's version as a number, e.g. 150018 for 15.18; 0 when not connected.
    public var serverVersion: Int {
        guard let handle else { return 0 }
        return Int(PQserverVersion(handle))
    }

    /// Whether a transaction is open on the connection (also a failed one awaiting
    /// ROLLBACK).
    public var isInTransaction: Bool {
        guard let handle else { return false }
        let status = PQtransactionStatus(handle)
        return status == PQTRANS_INTRANS || status == PQTRANS_INERROR || status == PQTRANS_ACTIVE
    }

    /// Reconnects with the same settings: after the server restarted, after a
    /// `connectionLost`, or after `close()`. Blocks while it connects: a refused
    /// connection fails at once, an unanswered one after the connect timeout (per address
    /// tried; twice with sslmode=prefer, libpq's default, which retries without TLS).
    /// Throws `connectionLost` when the server still cannot be reached.
    public func reset() throws(PostgresError) {
        preparedStatements.removeAll()  // a new session has none of the old one's
        guard let handle else {
            handle = try Self.connect(keywords: keywords, values: values, target: target)
            installNoticeReceiver()
            return
        }
        PQreset(handle)
        guard PQstatus(handle) == CONNECTION_OK else {
            throw PostgresError(kind: .connectionLost, message: PostgresError.libpqMessage(PQerrorMessage(handle)),
                                operation: "reset (reconnect to \(target))")
        }
    }

    // MARK: statements

    /// Runs one SQL statement with parameters `$1`, `$2`, ... (never interpolate values
    /// into `sql`): strings and numbers go in text form, `.bytes` in binary form as
    /// `bytea` (any bytes, zeros included). Returns its rows and its affected-row count.
    ///
    /// At most 65,535 parameters, and one statement per call (for a script of several,
    /// `executeScript`). Outside `transaction` the statement commits on its own.
    @discardableResult
    public func execute(_ sql: String, _ parameters: [PostgresValue] = []) throws(PostgresError) -> PostgresResult {
        let handle = try openHandle(sql)
        guard parameters.count <= 65_535 else {
            throw .misuse("\(parameters.count) parameters; PostgreSQL takes at most 65535 in one statement", Self.operation(sql))
        }
        try Self.checkNoNUL(sql)
        let encoded = try EncodedParameters(parameters, operation: Self.operation(sql))
        let result = encoded.withPointers { values, lengths, formats, types in
            PQexecParams(handle, sql, Int32(parameters.count), types, values, lengths, formats, 0)
        }
        return try accept(result, sql)
    }

    /// Like `execute`, but the statement is parsed and planned only on its first run on
    /// this connection (PQprepare), later runs send just the parameters (PQexecPrepared).
    /// For statements run again and again — the shard fence, the journal insert: measured
    /// on loopback, a 64-row INSERT takes ~260 µs prepared against ~400 µs unprepared.
    ///
    /// The server keeps up to 256 such statements per connection; a `reset()` forgets them.
    @discardableResult
    public func executePrepared(_ sql: String, _ parameters: [PostgresValue] = []) throws(PostgresError) -> PostgresResult {
        let handle = try openHandle(sql)
        guard parameters.count <= 65_535 else {
            throw .misuse("\(parameters.count) parameters; PostgreSQL takes at most 65535 in one statement", Self.operation(sql))
        }
        try Self.checkNoNUL(sql)
        let encoded = try EncodedParameters(parameters, operation: Self.operation(sql))
        let key = PreparedKey(sql: sql, types: encoded.types)
        let name = try preparedName(key, handle)
        let result = encoded.withPointers { values, lengths, formats, _ in
            PQexecPrepared(handle, name, Int32(parameters.count), values, lengths, formats, 0)
        }
        do {
            return try accept(result, sql)
        } catch where error.sqlState == "26000" {
            // The statement was dropped behind our back (DISCARD ALL, DEALLOCATE): prepare
            // it again, once.
            preparedStatements[key] = nil
            let name = try preparedName(key, handle)
            let retried = encoded.withPointers { values, lengths, formats, _ in
                PQexecPrepared(handle, name, Int32(parameters.count), values, lengths, formats, 0)
            }
            return try accept(retried, sql)
        }
    }

    /// The name of the prepared statement for `key`, preparing it first if needed.
    private func preparedName(_ key: PreparedKey, _ handle: OpaquePointer) throws(PostgresError) -> String {
        if let name = preparedStatements[key] { return name }
        if preparedStatements.count >= Self.preparedStatementLimit {
            if let result = PQexec(handle, "DEALLOCATE ALL") { PQclear(result) }
            preparedStatements.removeAll()
        }
        preparedCount += 1
        let name = "aftersales_\(preparedCount)"
        let result = key.types.withUnsafeBufferPointer { types in
            PQprepare(handle, name, key.sql, Int32(types.count), types.baseAddress)
        }
        _ = try accept(result, key.sql)
        preparedStatements[key] = name
        return name
    }

    /// Runs a script of one or more SQL statements separated by semicolons, without
    /// parameters (PostgreSQL's simple query protocol) — for schema set-up. Unless the
    /// script has its own BEGIN/COMMIT, its statements commit or fail together. Returns
    /// the last statement's result.
    @discardableResult
    public func executeScript(_ sql: String) throws(PostgresError) -> PostgresResult {
        let handle = try openHandle(sql)
        try Self.checkNoNUL(sql)
        return try accept(PQexec(handle, sql), sql)
    }

    // MARK: transactions

    /// How strongly concurrent transactions are kept apart.
    public enum IsolationLevel: Sendable {
        /// PostgreSQL's default: each statement sees what was committed before it began.
        case readCommitted
        /// The whole transaction sees one snapshot; conflicting writes fail with 40001.
        case repeatableRead
        /// As if the transactions ran one after another; conflicts fail with 40001.
        case serializable

        var begin: String {
            switch self {
            case .readCommitted: "BEGIN"
            case .repeatableRead: "BEGIN ISOLATION LEVEL REPEATABLE READ"
            case .serializable: "BEGIN ISOLATION LEVEL SERIALIZABLE"
            }
        }
    }

    /// Runs `body` in one transaction: BEGIN, the body's statements, COMMIT. If the body
    /// throws, the transaction is rolled back and the error rethrown; nothing it did stays.
    ///
    /// Throws `misuse` when called inside a transaction (PostgreSQL has no nesting). A
    /// statement that failed inside the body aborts the whole transaction even if the body
    /// caught its error: COMMIT then throws (`statementFailed`) instead of quietly rolling
    /// back. When the connection is lost during COMMIT the error is `connectionLost` with
    /// `isCommitOutcomeUnknown`: the transaction may have committed or not.
    @discardableResult
    public func transaction<T>(
        isolation: IsolationLevel = .readCommitted, _ body: (PostgresConnection) throws -> T
    ) throws -> T {
        if isInTransaction {
            throw PostgresError.misuse("a transaction is already open on this connection (transactions do not nest)", "BEGIN")
        }
        try execute(isolation.begin)
        let value: T
        do {
            value = try body(self)
        } catch {
            rollbackIfOpen()
            throw error
        }
        let commit: PostgresResult
        do {
            commit = try execute("COMMIT")
        } catch {
            throw error.kind == .connectionLost ? error.withCommitOutcomeUnknown() : error
        }
        // PostgreSQL answers COMMIT of an aborted transaction with a ROLLBACK tag and no error.
        if commit.commandTag == "ROLLBACK" {
            throw PostgresError(kind: .statementFailed,
                                message: "the transaction was rolled back: a statement inside it failed (and its error was caught inside the transaction)",
                                operation: "COMMIT")
        }
        return value
    }

    /// Ends an open transaction with ROLLBACK, ignoring failures (a lost connection has
    /// rolled it back already).
    private func rollbackIfOpen() {
        guard let handle, PQstatus(handle) == CONNECTION_OK, isInTransaction else { return }
        if let result = PQexec(handle, "ROLLBACK") { PQclear(result) }
    }

    // MARK: plumbing

    /// The open handle, or `misuse` after `close()`.
    @inline(__always)
    func openHandle(_ sql: @autoclosure () -> String) throws(PostgresError) -> OpaquePointer {
        guard let handle else {
            throw .misuse("the connection is closed (close() was called); reset() reopens it", Self.operation(sql()))
        }
        return handle
    }

    /// Turns what libpq returned into a result, or into the error it stands for.
    func accept(_ result: OpaquePointer?, _ sql: String) throws(PostgresError) -> PostgresResult {
        guard let result else {
            throw PostgresError.from(result: nil, connection: handle, operation: Self.operation(sql))
        }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK:
            return PostgresResult(result)
        case PGRES_EMPTY_QUERY:
            PQclear(result)
            throw .misuse("the statement is empty", Self.operation(sql))
        case PGRES_COPY_IN, PGRES_COPY_OUT, PGRES_COPY_BOTH:
            PQclear(result)
            abandonCopy()
            throw .misuse("COPY FROM STDIN / TO STDOUT is not supported (for many rows use insert(into:columns:rows:))", Self.operation(sql))
        default:
            let error = PostgresError.from(result: result, connection: handle, operation: Self.operation(sql))
            PQclear(result)
            throw error
        }
    }

    /// Leaves a COPY a statement started by mistake, so the connection can be used again:
    /// an incoming COPY is ended with an error, outgoing data is read and dropped.
    private func abandonCopy() {
        guard let handle else { return }
        _ = PQputCopyEnd(handle, "COPY is not supported through execute")  // refused unless copying in
        var buffer: UnsafeMutablePointer<CChar>?
        while PQgetCopyData(handle, &buffer, 0) >= 0 {  // -1 at the end of outgoing data, -2 if none
            if let data = buffer { PQfreemem(data) }
            buffer = nil
        }
        // Drain the COPY's final result. Bounded: a connection still stuck in COPY after
        // that (COPY BOTH, for replication) is reconnected rather than looped on.
        for _ in 0..<16 {
            guard let result = PQgetResult(handle) else { return }
            PQclear(result)
        }
        PQreset(handle)
    }

    /// Routes the server's notices to `noticeHandler` instead of standard error.
    private func installNoticeReceiver() {
        guard let handle else { return }
        // Unretained: the receiver is called only from inside this connection's own libpq
        // calls, which cannot run once the connection is deinitialized (deinit closes it).
        let context = Unmanaged.passUnretained(self).toOpaque()
        PQsetNoticeReceiver(handle, { context, result in
            guard let context, let result else { return }
            let connection = Unmanaged<PostgresConnection>.fromOpaque(context).takeUnretainedValue()
            guard let handler = connection.noticeHandler else { return }
            // "NOTICE: table \"x\" does not exist, skipping": severity and primary message.
            let severity = PQresultErrorField(result, CLibPQ_DIAG_SEVERITY_NONLOCALIZED()).map { String(cString: $0) }
            let message = PQresultErrorField(result, CLibPQ_DIAG_MESSAGE_PRIMARY()).map { String(cString: $0) }
            if let severity, let message {
                handler("\(severity): \(message)")
            } else {
                handler(PostgresError.libpqMessage(PQresultErrorMessage(result)))
            }
        }, context)
    }

    /// Connects, or throws `connectionLost` with libpq's reason.
    private static func connect(keywords: [String], values: [String], target: String) throws(PostgresError) -> OpaquePointer {
        let connection = withCStringArray(keywords) { keywords in
            withCStringArray(values) { values in PQconnectdbParams(keywords, values, 1) }
        }
        guard let connection else {
            throw PostgresError(kind: .connectionLost, message: "libpq could not allocate a connection", operation: "connect to \(target)")
        }
        guard PQstatus(connection) == CONNECTION_OK else {
            let message = PostgresError.libpqMessage(PQerrorMessage(connection))
            PQfinish(connection)
            throw PostgresError(kind: .connectionLost, message: message, operation: "connect to \(target)")
        }
        return connection
    }

    /// Checks `url` with libpq's own parser (so a typo is `misuse`, not "unreachable")
    /// and names its target for messages.
    private static func parse(_ url: String) throws(PostgresError) -> String {
        if url.utf8.contains(0) { throw .misuse("the connection URL contains a NUL character", "connect") }
        var errorText: UnsafeMutablePointer<CChar>?
        guard let options = PQconninfoParse(url, &errorText) else {
            let message = errorText.map { PostgresError.libpqMessage($0) } ?? "out of memory"
            if let errorText { PQfreemem(errorText) }
            throw .misuse("invalid connection URL: \(message)", "connect")
        }
        defer { PQconninfoFree(options) }
        var settings: [String: String] = [:]
        var option = options
        while let keyword = option.pointee.keyword {
            if let value = option.pointee.val { settings[String(cString: keyword)] = String(cString: value) }
            option += 1
        }
        let user = settings["user"].map { $0 + "@" } ?? ""
        let host = settings["host"] ?? settings["hostaddr"] ?? "(default host)"
        let port = settings["port"].map { ":" + $0 } ?? ""
        let database = settings["dbname"].map { "/" + $0 } ?? ""
        return "\(user)\(host)\(port)\(database)"
    }

    /// `execute(<the statement, shortened to one line of at most 120 characters>)`.
    static func operation(_ sql: String) -> String {
        let oneLine = sql.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        return oneLine.count <= 120 ? "execute(\(oneLine))" : "execute(\(oneLine.prefix(117))...)"
    }

    /// libpq reads SQL as a C string: a NUL would silently cut the statement short.
    private static func checkNoNUL(_ sql: String) throws(PostgresError) {
        if sql.utf8.contains(0) {
            throw .misuse("the SQL text contains a NUL character (values belong in parameters)", operation(sql))
        }
    }
}

/// What makes two prepared statements the same: the SQL and the declared parameter types.
private struct PreparedKey: Hashable {
    let sql: String
    let types: [UInt32]
}

/// Calls `body` with `strings` as a NULL-terminated array of C strings.
private func withCStringArray<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
    let copies = strings.map { strdup($0) }
    defer { copies.forEach { free($0) } }
    let pointers: [UnsafePointer<CChar>?] = copies.map { $0.map { UnsafePointer($0) } } + [nil]
    // Never empty (it ends with nil), so the buffer has a base address.
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}
