/// Where a case lives in a cluster of `shardCount` shards. Clients route with it, so it is
/// a function every language can write in a few lines: FNV-1a (64-bit) over the UTF-8 of
/// order_id, one zero byte, and the UTF-8 of order_line_id, modulo the shard count. An
/// existing case's shard is in its id: case number mod shard count.
public enum ShardKey {
    /// The shard of a new case on this order line.
    public static func shard(orderID: String, orderLineID: String, shardCount: UInt64) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix(_ byte: UInt8) {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        for byte in orderID.utf8 { mix(byte) }
        mix(0)
        for byte in orderLineID.utf8 { mix(byte) }
        return hash % max(1, shardCount)
    }

    /// The shard of an existing case, from its id ("AS" + 10 digits); nil for an id no daemon made.
    public static func shard(caseID: String, shardCount: UInt64) -> UInt64? {
        guard caseID.hasPrefix("AS"), caseID.utf8.count == 12, let number = UInt64(caseID.dropFirst(2)) else { return nil }
        return number % max(1, shardCount)
    }
}
