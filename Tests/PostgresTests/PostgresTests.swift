import AfterSalesTestSupport
import Foundation
import Postgres
import Testing

#if canImport(Glibc)
import Glibc
#endif

// Every test talks to a real PostgreSQL started by scripts/pg-throwaway. The tests that
// only read and write share one server (each with its own tables); the tests that restart
// or kill a server get their own. Without PostgreSQL installed they fail, saying what to
// install — they never skip.

/// The server the ordinary tests share, started on first use. Stopped by the script's
/// owner watch when the test process exits.
private let sharedServer = Result { try PostgresServer() }

/// A connection to the shared server.
private func connectShared() throws -> PostgresConnection {
    try PostgresConnection(url: sharedServer.get().url)
}

/// A table name no other test uses.
private func uniqueTable(_ purpose: String) -> String {
    "t_\(purpose)_\(UInt32.random(in: 0...UInt32.max))"
}

/// `count` bytes from the seeded generator, with zero bytes sprinkled in on purpose.
private func randomBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var generator = SplitMix64(seed: seed)
    return (0..<count).map { index in index % 7 == 0 ? 0 : UInt8(truncatingIfNeeded: generator.next()) }
}

@Suite(.timeLimit(.minutes(1)))
struct PostgresConnectionTests {
    @Test func connectsAndAnswers() throws {
        let db = try connectShared()
        #expect(db.isConnected)
        #expect(db.serverVersion >= 150_000)
        #expect(db.socketDescriptor >= 0)
        #expect(db.target.hasSuffix("/aftersales"))
        let result = try db.execute("SELECT 1 + $1 AS answer, current_database()", [41])
        #expect(result.rowCount == 1 && result.columnCount == 2)
        #expect(try result.int64(row: 0, column: 0) == 42)
        #expect(try result.string(row: 0, column: 1) == "aftersales")
        #expect(result.columnIndex(named: "answer") == 0)
        db.close()
        #expect(!db.isConnected && db.socketDescriptor == -1)
    }

    /// Random bytes with zeros, of 0, 1, 300 bytes and 1 MiB, written as bytea parameters
    /// and read back unchanged — both from a table and straight back from `SELECT $1`.
    @Test func byteaRoundTripsEveryByte() throws {
        let db = try connectShared()
        let table = uniqueTable("bytea")
        try db.execute("CREATE TABLE \(table) (id int PRIMARY KEY, record bytea NOT NULL)")
        let samples: [[UInt8]] = [[], [0], randomBytes(300, seed: 1), randomBytes(1 << 20, seed: 2), [UInt8](repeating: 0, count: 64),
                                  Array(0...255)]
        for (id, sample) in samples.enumerated() {
            try db.execute("INSERT INTO \(table) (id, record) VALUES ($1, $2)", [.int(id), .bytes(sample)])
        }
        let rows = try db.execute("SELECT id, record, length(record) FROM \(table) ORDER BY id")
        #expect(rows.rowCount == samples.count)
        for row in 0..<rows.rowCount {
            let id = Int(try rows.int64(row: row, column: 0))
            #expect(try rows.int64(row: row, column: 2) == Int64(samples[id].count))
            #expect(try rows.bytes(row: row, column: 1) == samples[id], "sample \(id) of \(samples[id].count) bytes")
        }
        let echoed = try db.execute("SELECT $1", [.bytes(samples[2])])
        #expect(try echoed.bytes(row: 0, column: 0) == samples[2])
        // The older escape output form decodes the same.
        try db.execute("SET bytea_output = escape")
        #expect(try db.execute("SELECT record FROM \(table) WHERE id = 5").bytes(row: 0, column: 0) == samples[5])
    }

    @Test func textParametersArriveVerbatim() throws {
        let db = try connectShared()
        let table = uniqueTable("text")
        try db.execute("CREATE TABLE \(table) (id int PRIMARY KEY, note text)")
        let notes = ["O'Brien said \"hi\"; DROP TABLE \(table); --", "back\\slash \\x00 $1 %s",
                     "售后主动介入协商 — 退货退款 🚚📦", "", "tab\tnew\nline"]
        for (id, note) in notes.enumerated() {
            try db.execute("INSERT INTO \(table) VALUES ($1, $2)", [.int(id), .text(note)])
        }
        try db.execute("INSERT INTO \(table) VALUES ($1, $2)", [99, .null])
        let rows = try db.execute("SELECT id, note, length(note) FROM \(table) ORDER BY id")
        for row in 0..<notes.count {
            #expect(try rows.string(row: row, column: 1) == notes[row])
            #expect(try rows.int64(row: row, column: 2) == Int64(notes[row].count))  // characters, not bytes
        }
        #expect(try rows.isNull(row: notes.count, column: 1))
        #expect(try !rows.isNull(row: 0, column: 1))
        #expect(try db.execute("SELECT $1::text", [.text(notes[2])]).string(row: 0, column: 0) == notes[2])
        let values = try db.execute("SELECT $1::bigint, $2::float8, $3::boolean, $4::float8, $5::bigint",
                                    [.integer(.min), .double(0.1), true, .double(-.infinity), .integer(.max)])
        #expect(try values.int64(row: 0, column: 0) == .min)
        #expect(try values.string(row: 0, column: 1) == "0.1")
        #expect(try values.string(row: 0, column: 2) == "t")
        #expect(try values.string(row: 0, column: 3) == "-Infinity")
        #expect(try values.int64(row: 0, column: 4) == .max)
        // A NUL cannot be in PostgreSQL text: refused before sending, with what to do instead.
        let nul = #expect(throws: PostgresError.self) { try db.execute("SELECT $1", [.text("a\u{0}b")]) }
        #expect(nul?.kind == .misuse && nul?.message.contains(".bytes") == true)
    }

    @Test func transactionCommitsOrLeavesNothing() throws {
        struct Abort: Error {}
        let db = try connectShared()
        let table = uniqueTable("tx")
        try db.execute("CREATE TABLE \(table) (id int PRIMARY KEY)")
        let count = { try db.execute("SELECT count(*) FROM \(table)").int64(row: 0, column: 0) }

        // The body throws: everything it wrote is rolled back, the error comes out unchanged.
        #expect(throws: Abort.self) {
            try db.transaction { db in
                try db.execute("INSERT INTO \(table) VALUES (1), (2)")
                throw Abort()
            }
        }
        #expect(try count() == 0)
        #expect(!db.isInTransaction)

        // A statement fails: the transaction is rolled back, the SQL error comes out.
        let duplicate = #expect(throws: PostgresError.self) {
            try db.transaction { db in
                try db.execute("INSERT INTO \(table) VALUES (1)")
                try db.execute("INSERT INTO \(table) VALUES (1)")
            }
        }
        #expect(duplicate?.isUniqueViolation == true)
        #expect(try count() == 0)

        // A failed statement whose error the body swallowed: COMMIT must not pretend success.
        let swallowed = #expect(throws: PostgresError.self) {
            try db.transaction { db in
                try db.execute("INSERT INTO \(table) VALUES (7)")
                _ = try? db.execute("SELECT * FROM no_such_table")
            }
        }
        #expect(swallowed?.operation == "COMMIT" && swallowed?.kind == .statementFailed)
        #expect(try count() == 0)

        // Success: committed, and the body's value comes back.
        let inserted = try db.transaction(isolation: .serializable) { db in
            try db.execute("INSERT INTO \(table) VALUES (1), (2), (3)").affectedRows
        }
        #expect(inserted == 3)
        #expect(try count() == 3)

        // Transactions do not nest.
        let nested = #expect(throws: PostgresError.self) {
            try db.transaction { db in try db.transaction { _ in } }
        }
        #expect(nested?.kind == .misuse)
        #expect(!db.isInTransaction)
    }

    /// The fence the cluster builds on: an UPDATE guarded by the epoch changes one row
    /// while the epoch is ours, none once someone else raised it.
    @Test func affectedRowsTellWhetherTheFenceHeld() throws {
        let db = try connectShared()
        let table = uniqueTable("shards")
        try db.execute("CREATE TABLE \(table) (shard int PRIMARY KEY, epoch bigint NOT NULL, owner text NOT NULL)")
        #expect(try db.execute("INSERT INTO \(table) SELECT g, 1, 'a' FROM generate_series(0, 15) g").affectedRows == 16)
        let fence = "UPDATE \(table) SET owner = owner WHERE shard = $1 AND epoch = $2"
        #expect(try db.execute(fence, [3, 1]).affectedRows == 1)
        #expect(try db.execute("UPDATE \(table) SET epoch = epoch + 1, owner = 'b' WHERE shard = $1", [3]).affectedRows == 1)
        #expect(try db.execute(fence, [3, 1]).affectedRows == 0)  // fenced off
        #expect(try db.execute("DELETE FROM \(table) WHERE shard >= $1", [10]).affectedRows == 6)
        let select = try db.execute("SELECT shard FROM \(table)")
        #expect(select.affectedRows == 10 && select.rowCount == 10 && select.commandTag == "SELECT 10")
        #expect(try db.execute("CREATE INDEX ON \(table) (owner)").affectedRows == 0)
    }

    @Test func sqlErrorsCarryTheirSQLState() throws {
        let db = try connectShared()
        let syntax = #expect(throws: PostgresError.self) { try db.execute("SELEC 1") }
        #expect(syntax?.sqlState == "42601")
        #expect(syntax?.kind == .statementFailed && syntax?.isConnectionLost == false)
        #expect(syntax?.description.contains("ERROR 42601") == true)

        let missing = #expect(throws: PostgresError.self) { try db.execute("SELECT * FROM no_such_table WHERE id = $1", [1]) }
        #expect(missing?.sqlState == "42P01" && missing?.isConnectionLost == false)
        #expect(missing?.message.contains("no_such_table") == true)
        #expect(missing?.operation == "execute(SELECT * FROM no_such_table WHERE id = $1)")

        let type = #expect(throws: PostgresError.self) { try db.execute("SELECT $1::int", ["seven"]) }
        #expect(type?.sqlState == "22P02" && type?.kind == .statementFailed)

        let serialization = #expect(throws: PostgresError.self) {
            try db.execute("DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = 'serialization_failure'; END $$")
        }
        #expect(serialization?.isSerializationFailure == true && serialization?.isConnectionLost == false)

        let adminShutdown = #expect(throws: PostgresError.self) {
            try db.execute("DO $$ BEGIN RAISE EXCEPTION 'bye' USING ERRCODE = 'admin_shutdown'; END $$")
        }
        #expect(adminShutdown?.sqlState == "57P01" && adminShutdown?.isConnectionLost == true)

        // The connection is fine after all that.
        #expect(db.isConnected)
        #expect(try db.execute("SELECT 2").int64(row: 0, column: 0) == 2)
    }

    @Test func misuseIsReportedNotSent() throws {
        let db = try connectShared()
        let result = try db.execute("SELECT NULL::int AS nothing, 'x' AS letter")
        let outOfRange = #expect(throws: PostgresError.self) { try result.string(row: 1, column: 0) }
        #expect(outOfRange?.kind == .misuse && outOfRange?.message == "row 1 is out of range: the result has 1 row(s)")
        let null = #expect(throws: PostgresError.self) { try result.int64(row: 0, column: 0) }
        #expect(null?.message.contains("is NULL") == true)
        let notNumber = #expect(throws: PostgresError.self) { try result.int64(row: 0, column: 1) }
        #expect(notNumber?.message == "row 0 column 1 (\"letter\") holds 'x', not a 64-bit integer")

        let copy = #expect(throws: PostgresError.self) { try db.execute("COPY (SELECT 1) TO STDOUT") }
        #expect(copy?.kind == .misuse)
        let empty = #expect(throws: PostgresError.self) { try db.execute("  ") }
        #expect(empty?.kind == .misuse)
        #expect(try db.execute("SELECT 3").int64(row: 0, column: 0) == 3)  // still usable

        db.close()
        db.close()
        let closed = #expect(throws: PostgresError.self) { try db.execute("SELECT 1") }
        #expect(closed?.kind == .misuse && closed?.message.contains("closed") == true)
        try db.reset()  // reopens a closed connection
        #expect(try db.execute("SELECT 4").int64(row: 0, column: 0) == 4)

        let badURL = #expect(throws: PostgresError.self) { try PostgresConnection(url: "postgres://x@127.0.0.1:5432/db?no_such_option=1") }
        #expect(badURL?.kind == .misuse && badURL?.message.contains("no_such_option") == true)
    }

    @Test func unreachableServerIsConnectionLostQuickly() throws {
        let port = try freePort()  // nothing listens there
        let started = ContinuousClock.now
        let error = #expect(throws: PostgresError.self) {
            try PostgresConnection(url: "postgres://aftersales@127.0.0.1:\(port)/aftersales")
        }
        #expect(error?.isConnectionLost == true)
        #expect(error?.operation == "connect to aftersales@127.0.0.1:\(port)/aftersales")
        #expect(error?.message.contains("refused") == true)
        #expect(ContinuousClock.now - started < .seconds(2))
    }

    @Test func preparedStatementsAreReusedAndRecovered() throws {
        let db = try connectShared()
        let fence = "SELECT $1::bigint + 1"
        for value in 0..<3 {
            #expect(try db.executePrepared(fence, [.int(value)]).int64(row: 0, column: 0) == Int64(value + 1))
        }
        let prepared = { try db.execute("SELECT count(*) FROM pg_prepared_statements").int64(row: 0, column: 0) }
        #expect(try prepared() == 1)
        // Dropped behind the connection's back: prepared again transparently.
        try db.execute("DEALLOCATE ALL")
        #expect(try db.executePrepared(fence, [41]).int64(row: 0, column: 0) == 42)
        // The same SQL with a parameter of another declared type is another statement.
        #expect(try db.executePrepared("SELECT length($1)", [.bytes([1, 2, 3])]).int64(row: 0, column: 0) == 3)
        #expect(try db.executePrepared("SELECT length($1)", ["four"]).int64(row: 0, column: 0) == 4)
        #expect(try prepared() == 3)
        let error = #expect(throws: PostgresError.self) { try db.executePrepared("SELECT * FROM no_such_table") }
        #expect(error?.sqlState == "42P01")
    }

    /// A server that accepts the TCP connection and then says nothing (hung, or a
    /// listener that is not PostgreSQL): connect_timeout bounds the wait.
    @Test func connectTimeoutBoundsAHungServer() throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let listening = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(listener, pointer, length) == 0 && getsockname(listener, pointer, &length) == 0 && listen(listener, 4) == 0
            }
        }
        try #require(listening)
        let port = UInt16(bigEndian: address.sin_port)
        let started = ContinuousClock.now
        // libpq's smallest timeout is 2 s (it reads 1 as 2).
        let error = #expect(throws: PostgresError.self) {
            try PostgresConnection(url: "postgres://aftersales@127.0.0.1:\(port)/aftersales?connect_timeout=2&sslmode=disable")
        }
        let waited = ContinuousClock.now - started
        #expect(error?.isConnectionLost == true, "\(String(describing: error))")
        #expect(waited >= .seconds(1) && waited < .seconds(5), "waited \(waited)")
    }

    @Test func noticesGoToTheHandler() throws {
        let db = try connectShared()
        let notices = NoticeLog()
        db.noticeHandler = { notices.append($0) }
        try db.execute("DROP TABLE IF EXISTS no_such_table_here")
        #expect(notices.lines == ["NOTICE: table \"no_such_table_here\" does not exist, skipping"])
    }

    @Test func insertWritesManyRowsInOneStatement() throws {
        let db = try connectShared()
        let table = uniqueTable("journal")
        try db.execute("CREATE TABLE \(table) (shard int, seq bigint, record bytea, note text, PRIMARY KEY (shard, seq))")
        let rows: [[PostgresValue]] = (0..<64).map { [7, .int($0), .bytes(randomBytes(300, seed: UInt64($0))), $0 % 2 == 0 ? "even 'quoted'" : .null] }
        #expect(try db.insert(into: table, columns: ["shard", "seq", "record", "note"], rows: rows) == 64)
        let back = try db.execute("SELECT seq, record, note FROM \(table) ORDER BY seq")
        #expect(back.rowCount == 64)
        for row in 0..<64 {
            #expect(try back.bytes(row: row, column: 1) == randomBytes(300, seed: UInt64(row)))
            #expect(try back.isNull(row: row, column: 2) == (row % 2 == 1))
        }
        // More rows than one statement's 65,535 parameters hold: split, all inserted.
        let many: [[PostgresValue]] = (0..<20_000).map { [8, .int($0), .bytes([1]), .null] }
        #expect(try db.transaction { db in try db.insert(into: table, columns: ["shard", "seq", "record", "note"], rows: many) } == 20_000)
        let short = #expect(throws: PostgresError.self) { try db.insert(into: table, columns: ["shard", "seq"], rows: [[1]]) }
        #expect(short?.message == "row 0 has 1 value(s) for 2 column(s)")
    }
}

/// What a notice handler was given.
private final class NoticeLog {
    private(set) var lines: [String] = []
    func append(_ line: String) { lines.append(line) }
}

/// Tests that restart or kill their server, each on a server of its own.
@Suite(.timeLimit(.minutes(1)))
struct PostgresFailureTests {
    /// After a restart the old connection's next call says the connection was lost;
    /// `reset()` reconnects, and what was committed before is still there.
    @Test func restartIsConnectionLostThenResetReconnects() throws {
        let server = try PostgresServer()
        let db = try PostgresConnection(url: server.url)
        try db.execute("CREATE TABLE kept (id int)")
        try db.execute("INSERT INTO kept VALUES (1)")
        let oldPid = server.pid
        try server.restart()
        #expect(server.pid != oldPid)

        let lost = #expect(throws: PostgresError.self) { try db.execute("SELECT count(*) FROM kept") }
        #expect(lost?.isConnectionLost == true, "\(String(describing: lost))")
        #expect(!db.isConnected)
        let stillLost = #expect(throws: PostgresError.self) { try db.execute("SELECT 1") }
        #expect(stillLost?.isConnectionLost == true)

        try db.reset()
        #expect(db.isConnected)
        #expect(try db.execute("SELECT count(*) FROM kept").int64(row: 0, column: 0) == 1)
        // Prepared statements belong to the old session; the new one prepares them again.
        #expect(try db.insert(into: "kept", columns: ["id"], rows: [[2], [3]]) == 2)
        try server.restart()
        _ = try? db.execute("SELECT 1")  // notices the restart
        try db.reset()
        #expect(try db.insert(into: "kept", columns: ["id"], rows: [[4], [5]]) == 2)
        #expect(try db.execute("SELECT count(*) FROM kept").int64(row: 0, column: 0) == 5)
    }

    /// A crashed server: the next call fails at once (no hang) as connection lost, and a
    /// lost COMMIT says its outcome is unknown. Committed rows survive crash recovery.
    @Test func killFailsFastAsConnectionLost() throws {
        let server = try PostgresServer()
        let db = try PostgresConnection(url: server.url)
        try db.execute("CREATE TABLE kept (id int)")
        try db.execute("INSERT INTO kept VALUES (1)")
        try server.kill()

        let started = ContinuousClock.now
        let lost = #expect(throws: PostgresError.self) { try db.execute("INSERT INTO kept VALUES (2)") }
        #expect(lost?.isConnectionLost == true, "\(String(describing: lost))")
        #expect(ContinuousClock.now - started < .seconds(3))
        let refused = #expect(throws: PostgresError.self) { try db.reset() }
        #expect(refused?.isConnectionLost == true)

        try server.start()
        try db.reset()
        #expect(try db.execute("SELECT count(*) FROM kept").int64(row: 0, column: 0) == 1)

        // The connection dies between BEGIN and COMMIT: the error is marked outcome-unknown.
        let victim = try PostgresConnection(url: server.url)
        let inDoubt = #expect(throws: PostgresError.self) {
            try victim.transaction { victim in
                try victim.execute("INSERT INTO kept VALUES (3)")
                try db.execute("SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND datname = current_database()")
            }
        }
        #expect(inDoubt?.isConnectionLost == true && inDoubt?.isCommitOutcomeUnknown == true, "\(String(describing: inDoubt))")
    }
}
