import AfterSalesRPC
import Testing

/// The shard function every client must compute the same way (vectors from an
/// independent FNV-1a 64 written in Python).
@Suite struct ShardKeyTests {
    @Test func newCasesHashTheirOrderLine() {
        #expect(ShardKey.shard(orderID: "O1", orderLineID: "", shardCount: 64) == 7)
        #expect(ShardKey.shard(orderID: "order-42", orderLineID: "line-7", shardCount: 64) == 26)
        #expect(ShardKey.shard(orderID: "订单", orderLineID: "", shardCount: 16) == 0)
        #expect(ShardKey.shard(orderID: "O1", orderLineID: "", shardCount: 1) == 0)
        #expect(ShardKey.shard(orderID: "a", orderLineID: "b", shardCount: 64) != ShardKey.shard(orderID: "ab", orderLineID: "", shardCount: 64),
                "the zero byte between the two keeps 'a'+'b' apart from 'ab'+''")
    }

    @Test func existingCasesCarryTheirShardInTheirId() {
        #expect(ShardKey.shard(caseID: "AS0000000069", shardCount: 64) == 5)
        #expect(ShardKey.shard(caseID: "AS0000000001", shardCount: 1) == 0)
        #expect(ShardKey.shard(caseID: "XS0000000069", shardCount: 64) == nil)
        #expect(ShardKey.shard(caseID: "AS69", shardCount: 64) == nil)
    }
}
