// JSON as the probe reads and writes it around protobuf's JSON mapping. Foundation's
// JSONSerialization would do the parsing, but it forgets the order of object members (a
// request template or a message with its defaults should read in field order), respells
// numbers, and reports a syntax error only as a character offset; this small reader keeps
// all three, and SwiftProtobuf still decides what a message may contain.

/// A JSON value with its object members in written order and its numbers as written.
indirect enum JSONValue {
    /// Members in written order (a repeated key is kept, as written).
    case object([(key: String, value: JSONValue)])
    /// Elements in order.
    case array([JSONValue])
    /// The text, escapes resolved.
    case string(String)
    /// The number's text, e.g. "-12.5e3", so that re-printing changes nothing.
    case number(String)
    /// true or false.
    case bool(Bool)
    /// null.
    case null

    /// An object's members in written order; none for other values.
    var members: [(key: String, value: JSONValue)] {
        guard case .object(let members) = self else { return [] }
        return members
    }

    /// Parses `text`, which must hold exactly one JSON value.
    init(parsing text: String) throws(JSONSyntaxError) {
        var reader = JSONReader(text)
        self = try reader.document()
    }

    /// Compact text, one line (as SwiftProtobuf prints), or indented by two spaces a level.
    func text(pretty: Bool = false) -> String {
        var out = ""
        write(to: &out, indent: pretty ? "" : nil)
        return out
    }

    private func write(to out: inout String, indent: String?) {
        switch self {
        case .object(let members):
            writeList(members, open: "{", close: "}", to: &out, indent: indent) { member, out, inner in
                JSONValue.string(member.key).write(to: &out, indent: nil)
                out += inner == nil ? ":" : ": "
                member.value.write(to: &out, indent: inner)
            }
        case .array(let items):
            writeList(items, open: "[", close: "]", to: &out, indent: indent) { item, out, inner in
                item.write(to: &out, indent: inner)
            }
        case .string(let value):
            out += "\""
            for scalar in value.unicodeScalars {
                switch scalar {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                case "\n": out += "\\n"
                case "\r": out += "\\r"
                case "\t": out += "\\t"
                case _ where scalar.value < 0x20:
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                default: out.unicodeScalars.append(scalar)
                }
            }
            out += "\""
        case .number(let text): out += text
        case .bool(let value): out += value ? "true" : "false"
        case .null: out += "null"
        }
    }

    private func writeList<Item>(_ items: [Item], open: String, close: String, to out: inout String, indent: String?,
                                 _ writeItem: (Item, inout String, String?) -> Void) {
        out += open
        guard !items.isEmpty else {
            out += close
            return
        }
        let inner = indent.map { $0 + "  " }
        for (index, item) in items.enumerated() {
            if index > 0 { out += "," }
            if let inner { out += "\n" + inner }
            writeItem(item, &out, inner)
        }
        if let indent { out += "\n" + indent }
        out += close
    }
}

/// Where and why a text is not JSON: a 1-based line and column, and the line itself, so
/// that the message can point at the mistake with a caret.
struct JSONSyntaxError: Error, CustomStringConvertible {
    /// What was expected or found, e.g. "expected ',' or '}' after an object member".
    let reason: String
    /// 1-based.
    let line: Int
    /// 1-based, in characters.
    let column: Int
    /// The text of the line, for the snippet.
    let lineText: String

    /// The error at byte `offset` of `bytes`, located by line and column.
    init(_ reason: String, at offset: Int, in bytes: [UInt8]) {
        let start = bytes[..<offset].lastIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? 0
        let end = bytes[offset...].firstIndex(of: UInt8(ascii: "\n")) ?? bytes.endIndex
        self.reason = reason
        line = bytes[..<offset].count(where: { $0 == UInt8(ascii: "\n") }) + 1
        column = String(decoding: bytes[start..<offset], as: UTF8.self).count + 1
        lineText = String(decoding: bytes[start..<end], as: UTF8.self)
    }

    /// "line 2, column 14: <reason>", then the line and a caret under the column (long
    /// lines are cut to the 60 characters around it).
    var description: String {
        let characters = Array(lineText)
        let from = max(0, min(column - 1 - 30, characters.count - 60))
        let shown = String(characters[from..<min(characters.count, from + 60)]).replacingOccurrences(of: "\t", with: " ")
        let lead = from > 0 ? "…" : ""
        let caret = String(repeating: " ", count: lead.count + column - 1 - from) + "^"
        return "line \(line), column \(column): \(reason)\n  \(lead)\(shown)\n  \(caret)"
    }
}

/// A recursive-descent reader over UTF-8 bytes (RFC 8259, nothing more lenient).
private struct JSONReader {
    private let bytes: [UInt8]
    private var position = 0

    init(_ text: String) { bytes = Array(text.utf8) }

    mutating func document() throws(JSONSyntaxError) -> JSONValue {
        let value = try self.value()
        skipWhitespace()
        guard position == bytes.count else { throw error("unexpected text after the JSON value") }
        return value
    }

    private func error(_ reason: String) -> JSONSyntaxError {
        JSONSyntaxError(reason, at: min(position, bytes.count), in: bytes)
    }

    private var next: UInt8? { position < bytes.count ? bytes[position] : nil }

    private mutating func skipWhitespace() {
        while let byte = next, byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 { position += 1 }
    }

    private mutating func expect(_ byte: UInt8, _ reason: String) throws(JSONSyntaxError) {
        skipWhitespace()
        guard next == byte else { throw error(reason) }
        position += 1
    }

    private mutating func value() throws(JSONSyntaxError) -> JSONValue {
        skipWhitespace()
        guard let byte = next else { throw error("the text ends where a value should be") }
        switch byte {
        case UInt8(ascii: "{"): return try object()
        case UInt8(ascii: "["): return try array()
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
        case UInt8(ascii: "t"): return try literal("true", .bool(true))
        case UInt8(ascii: "f"): return try literal("false", .bool(false))
        case UInt8(ascii: "n"): return try literal("null", .null)
        default: throw error("expected a value (an object, array, string, number, true, false or null)")
        }
    }

    private mutating func object() throws(JSONSyntaxError) -> JSONValue {
        position += 1
        var members: [(key: String, value: JSONValue)] = []
        skipWhitespace()
        if next == UInt8(ascii: "}") {
            position += 1
            return .object(members)
        }
        repeat {
            skipWhitespace()
            guard next == UInt8(ascii: "\"") else { throw error("expected a member name in double quotes") }
            let key = try string()
            try expect(UInt8(ascii: ":"), "expected ':' after the member name \"\(key)\"")
            members.append((key, try value()))
            skipWhitespace()
        } while try separator(close: UInt8(ascii: "}"), "expected ',' or '}' after an object member")
        return .object(members)
    }

    private mutating func array() throws(JSONSyntaxError) -> JSONValue {
        position += 1
        var items: [JSONValue] = []
        skipWhitespace()
        if next == UInt8(ascii: "]") {
            position += 1
            return .array(items)
        }
        repeat {
            items.append(try value())
            skipWhitespace()
        } while try separator(close: UInt8(ascii: "]"), "expected ',' or ']' after an array element")
        return .array(items)
    }

    /// Consumes a ',' (true: another item follows) or the closing bracket (false).
    private mutating func separator(close: UInt8, _ reason: String) throws(JSONSyntaxError) -> Bool {
        switch next {
        case UInt8(ascii: ","):
            position += 1
            return true
        case close:
            position += 1
            return false
        default:
            throw error(reason)
        }
    }

    private mutating func string() throws(JSONSyntaxError) -> String {
        position += 1
        var utf8: [UInt8] = []
        while true {
            guard let byte = next else { throw error("the text ends inside a string (a closing '\"' is missing)") }
            switch byte {
            case UInt8(ascii: "\""):
                position += 1
                return String(decoding: utf8, as: UTF8.self)
            case UInt8(ascii: "\\"):
                position += 1
                try escape(into: &utf8)
            case 0..<0x20:
                throw error("a control character in a string must be escaped (e.g. \\n)")
            default:
                utf8.append(byte)
                position += 1
            }
        }
    }

    private mutating func escape(into utf8: inout [UInt8]) throws(JSONSyntaxError) {
        let simple: [UInt8: UInt8] = [
            UInt8(ascii: "\""): 0x22, UInt8(ascii: "\\"): 0x5C, UInt8(ascii: "/"): 0x2F, UInt8(ascii: "b"): 0x08,
            UInt8(ascii: "f"): 0x0C, UInt8(ascii: "n"): 0x0A, UInt8(ascii: "r"): 0x0D, UInt8(ascii: "t"): 0x09,
        ]
        guard let byte = next else { throw error("the text ends inside a string") }
        if let plain = simple[byte] {
            utf8.append(plain)
            position += 1
            return
        }
        guard byte == UInt8(ascii: "u") else { throw error("unknown escape '\\\(Character(Unicode.Scalar(byte)))'") }
        position += 1
        var code = try hexQuad()
        if (0xD800..<0xDC00).contains(code) {
            // A UTF-16 high surrogate: its low half must follow as another \u escape.
            guard bytes[position...].starts(with: Array("\\u".utf8)) else { throw error("a lone UTF-16 surrogate in \\u escape") }
            position += 2
            let low = try hexQuad()
            guard (0xDC00..<0xE000).contains(low) else { throw error("a lone UTF-16 surrogate in \\u escape") }
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
        }
        guard let scalar = Unicode.Scalar(code) else { throw error("a lone UTF-16 surrogate in \\u escape") }
        utf8.append(contentsOf: Array(String(Character(scalar)).utf8))
    }

    private mutating func hexQuad() throws(JSONSyntaxError) -> UInt32 {
        guard position + 4 <= bytes.count,
              let value = UInt32(String(decoding: bytes[position..<position + 4], as: UTF8.self), radix: 16)
        else { throw error("expected four hex digits after \\u") }
        position += 4
        return value
    }

    private mutating func number() throws(JSONSyntaxError) -> JSONValue {
        let start = position
        func digits(_ reader: inout JSONReader) -> Int {
            let from = reader.position
            while let byte = reader.next, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) { reader.position += 1 }
            return reader.position - from
        }
        if next == UInt8(ascii: "-") { position += 1 }
        let integer = position
        guard digits(&self) > 0 else { throw error("expected a digit") }
        if bytes[integer] == UInt8(ascii: "0"), position - integer > 1 {
            position = integer
            throw error("a number must not start with 0")
        }
        if next == UInt8(ascii: ".") {
            position += 1
            guard digits(&self) > 0 else { throw error("expected a digit after the decimal point") }
        }
        if next == UInt8(ascii: "e") || next == UInt8(ascii: "E") {
            position += 1
            if next == UInt8(ascii: "+") || next == UInt8(ascii: "-") { position += 1 }
            guard digits(&self) > 0 else { throw error("expected a digit in the exponent") }
        }
        return .number(String(decoding: bytes[start..<position], as: UTF8.self))
    }

    private mutating func literal(_ word: String, _ value: JSONValue) throws(JSONSyntaxError) -> JSONValue {
        guard bytes[position...].starts(with: Array(word.utf8)) else {
            throw error("expected a value (an object, array, string, number, true, false or null)")
        }
        position += word.utf8.count
        return value
    }
}
