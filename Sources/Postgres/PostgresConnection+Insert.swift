import CLibPQ

extension PostgresConnection {
    /// Inserts many rows with one multi-row `INSERT ... VALUES (...), (...)` statement:
    /// bound parameters, prepared once per connection and row count (`executePrepared`),
    /// one round trip per batch — the journal's group commit writes a batch this way.
    /// Returns the number of rows inserted.
    ///
    /// Why not COPY: measured on loopback for 64 rows of 300 bytes, the prepared INSERT
    /// takes as long as a binary COPY (~260 µs), while COPY needs a second round trip
    /// (worse on a real network) and the column types to encode binary values.
    ///
    /// `table` may be schema-qualified (`schema.table`); it and `columns` are quoted as
    /// identifiers, so they are matched exactly (lower case for unquoted SQL names). Every
    /// row must have one value per column. A batch larger than PostgreSQL's 65,535
    /// parameters per statement is split into several statements: run it inside
    /// `transaction` when it must be all or nothing.
    @discardableResult
    public func insert(into table: String, columns: [String], rows: [[PostgresValue]]) throws(PostgresError) -> Int {
        let operation = "insert(into: \(table))"
        guard !columns.isEmpty else { throw .misuse("no columns given", operation) }
        for (index, row) in rows.enumerated() where row.count != columns.count {
            throw .misuse("row \(index) has \(row.count) value(s) for \(columns.count) column(s)", operation)
        }
        guard !rows.isEmpty else { return 0 }
        let head = "INSERT INTO \(try Self.quoteQualifiedName(table, operation)) (\(try Self.quoteColumns(columns, operation))) VALUES "
        let rowsPerStatement = 65_535 / columns.count
        var inserted = 0
        var start = 0
        while start < rows.count {
            let end = min(start + rowsPerStatement, rows.count)
            var sql = head
            sql.reserveCapacity(head.utf8.count + (end - start) * columns.count * 8)
            var parameters: [PostgresValue] = []
            parameters.reserveCapacity((end - start) * columns.count)
            for index in start..<end {
                sql += index == start ? "(" : ", ("
                for column in 0..<columns.count {
                    if column > 0 { sql += ", " }
                    sql += "$\(parameters.count + 1)"
                    parameters.append(rows[index][column])
                }
                sql += ")"
            }
            inserted += try executePrepared(sql, parameters).affectedRows
            start = end
        }
        return inserted
    }

    /// `"name"`, with inner quotes doubled; throws `misuse` for an empty name or a NUL.
    static func quoteIdentifier(_ name: String, _ operation: String) throws(PostgresError) -> String {
        guard !name.isEmpty, !name.utf8.contains(0) else {
            throw .misuse("'\(name)' is not a usable identifier (empty, or with a NUL character)", operation)
        }
        return "\"" + name.replacing("\"", with: "\"\"") + "\""
    }

    /// `"schema"."table"` from `schema.table`, or `"table"`.
    static func quoteQualifiedName(_ name: String, _ operation: String) throws(PostgresError) -> String {
        var quoted: [String] = []
        for part in name.split(separator: ".", omittingEmptySubsequences: false) {
            quoted.append(try quoteIdentifier(String(part), operation))
        }
        return quoted.joined(separator: ".")
    }

    /// `"a", "b", "c"`.
    static func quoteColumns(_ columns: [String], _ operation: String) throws(PostgresError) -> String {
        var quoted: [String] = []
        for column in columns { quoted.append(try quoteIdentifier(column, operation)) }
        return quoted.joined(separator: ", ")
    }
}
