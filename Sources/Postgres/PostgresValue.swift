/// One statement parameter (`$1`, `$2`, ...).
///
/// Text, numbers and booleans go over the wire in PostgreSQL's text form with no declared
/// type, so the server takes the type from where the parameter stands (`WHERE epoch = $1`
/// makes it the column's type: int4, int8, numeric — whatever the column is). Bytes go
/// in binary form declared as `bytea`: any bytes, zeros included, no escaping, no
/// doubling in size — the form for serialized protobuf records.
public enum PostgresValue: Sendable, Hashable {
    /// SQL NULL.
    case null
    /// A string. PostgreSQL text cannot hold a NUL character; such a string is refused
    /// before sending (use `.bytes`).
    case text(String)
    /// An integer.
    case integer(Int64)
    /// A floating-point number (infinities and NaN included).
    case double(Double)
    /// A boolean.
    case boolean(Bool)
    /// Raw bytes, for a `bytea` column.
    case bytes([UInt8])

    /// An `Int` as an `.integer`.
    public static func int(_ value: Int) -> PostgresValue { .integer(Int64(value)) }
}

extension PostgresValue: ExpressibleByStringLiteral {
    /// A string literal is `.text`.
    public init(stringLiteral value: String) { self = .text(value) }
}

extension PostgresValue: ExpressibleByIntegerLiteral {
    /// An integer literal is `.integer`.
    public init(integerLiteral value: Int64) { self = .integer(value) }
}

extension PostgresValue: ExpressibleByFloatLiteral {
    /// A floating-point literal is `.double`.
    public init(floatLiteral value: Double) { self = .double(value) }
}

extension PostgresValue: ExpressibleByBooleanLiteral {
    /// `true` and `false` are `.boolean`.
    public init(booleanLiteral value: Bool) { self = .boolean(value) }
}

/// PostgreSQL's type numbers (OIDs) this library names.
enum PostgresType {
    /// Let the server infer the type from the parameter's place.
    static let unspecified: UInt32 = 0
    /// `bytea`.
    static let bytea: UInt32 = 17
}

/// Parameters laid out the way `PQexecParams` wants them: one buffer holding every value
/// (text ones NUL-terminated), and per parameter its offset, length, format and type.
/// One allocation for the bytes however many parameters there are.
struct EncodedParameters {
    private var storage: [UInt8] = []
    /// Offset into `storage` per parameter; -1 for NULL.
    private var offsets: [Int] = []
    private(set) var lengths: [Int32] = []
    private(set) var formats: [Int32] = []
    private(set) var types: [UInt32] = []

    /// Encodes `parameters`; throws `misuse` for a value PostgreSQL cannot take.
    init(_ parameters: [PostgresValue], operation: @autoclosure () -> String) throws(PostgresError) {
        offsets.reserveCapacity(parameters.count)
        lengths.reserveCapacity(parameters.count)
        formats.reserveCapacity(parameters.count)
        types.reserveCapacity(parameters.count)
        for (index, parameter) in parameters.enumerated() {
            switch parameter {
            case .null:
                offsets.append(-1); lengths.append(0); formats.append(0); types.append(PostgresType.unspecified)
            case .text(let string):
                if string.utf8.contains(0) {
                    throw .misuse("parameter $\(index + 1) is text with a NUL character, which PostgreSQL text cannot hold; send it as .bytes", operation())
                }
                appendText(string.utf8)
            case .integer(let value):
                appendText(String(value).utf8)
            case .double(let value):
                appendText(Self.text(of: value).utf8)
            case .boolean(let value):
                appendText((value ? "true" : "false").utf8)
            case .bytes(let bytes):
                guard bytes.count <= Int32.max else {
                    throw .misuse("parameter $\(index + 1) has \(bytes.count) bytes; a bytea value is limited to 1 GB", operation())
                }
                offsets.append(storage.count)
                storage.append(contentsOf: bytes)
                lengths.append(Int32(bytes.count)); formats.append(1); types.append(PostgresType.bytea)
            }
        }
    }

    private mutating func appendText(_ utf8: some Collection<UInt8>) {
        offsets.append(storage.count)
        storage.append(contentsOf: utf8)
        storage.append(0)
        lengths.append(0)  // ignored by libpq for text parameters (it reads up to the NUL)
        formats.append(0)
        types.append(PostgresType.unspecified)
    }

    /// PostgreSQL's spelling of a double: Swift's shortest round-trip digits, and the
    /// words PostgreSQL uses for the special values.
    private static func text(of value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value < 0 ? "-Infinity" : "Infinity" }
        return "\(value)"
    }

    /// Calls `body` with the value pointers (nil for NULL), lengths, formats and types,
    /// valid only during the call.
    func withPointers<R>(
        _ body: (UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<Int32>?, UnsafePointer<Int32>?, UnsafePointer<UInt32>?) -> R
    ) -> R {
        storage.withUnsafeBytes { raw in
            let base = raw.baseAddress?.assumingMemoryBound(to: CChar.self)
            // A zero-length value (an empty bytea) still needs a non-nil pointer, or
            // libpq would send NULL; point at any byte (none is read).
            var emptyByte: CChar = 0
            return withUnsafePointer(to: &emptyByte) { empty in
                let values: [UnsafePointer<CChar>?] = offsets.map { offset in
                    offset < 0 ? nil : (base.map { UnsafePointer($0 + offset) } ?? empty)
                }
                return values.withUnsafeBufferPointer { values in
                    lengths.withUnsafeBufferPointer { lengths in
                        formats.withUnsafeBufferPointer { formats in
                            types.withUnsafeBufferPointer { types in
                                body(values.baseAddress, lengths.baseAddress, formats.baseAddress, types.baseAddress)
                            }
                        }
                    }
                }
            }
        }
    }
}
