/// Protobuf bytes for the codec tests: fields no message of ours declares, which every
/// reader must skip as SwiftProtobuf does.
public enum WireSamples {
    /// One unknown field of each wire type: 501 varint, 502 fixed64, 503 bytes, 504
    /// fixed32, 505 a group holding a varint.
    public static let unknownFields: [[UInt8]] = [
        [0xA8, 0x1F, 0x05],
        [0xB1, 0x1F] + [UInt8](repeating: 1, count: 8),
        [0xBA, 0x1F, 0x02, 0x41, 0x42],
        [0xC5, 0x1F] + [UInt8](repeating: 2, count: 4),
        [0xCB, 0x1F, 0x08, 0x01, 0xCC, 0x1F],
    ]

    /// All of `unknownFields`, one after the other.
    public static var unknownFieldsOfEveryWireType: [UInt8] { unknownFields.flatMap { $0 } }
}
