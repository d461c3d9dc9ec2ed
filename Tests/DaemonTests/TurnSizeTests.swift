@testable import AfterSalesDaemon
import Testing

@Suite struct TurnSizeTests {
    @Test func aTurnThatEmptiesTheSocketHalvesTheNextButNotBelowTheFloor() {
        var size = TurnSize(ceiling: 128)
        #expect(size.limit == 128)
        size.turnEnded(taken: 100, drained: true)
        #expect(size.limit == 50)
        size.turnEnded(taken: 3, drained: true)
        #expect(size.limit == TurnSize.floor)
    }

    @Test func callsThatQueueGrowTheTurnBackToTheCeiling() {
        var size = TurnSize(ceiling: 128)
        size.turnEnded(taken: 1, drained: true)
        var turns = 0
        while size.limit < 128 {
            size.turnEnded(taken: size.limit, drained: false)
            turns += 1
            #expect(turns <= 3, "doubling from the floor reaches 128 in a few turns")
        }
        size.turnEnded(taken: 128, drained: false)
        #expect(size.limit == 128, "never above --max-batch")
    }

    @Test func aCeilingBelowTheFloorIsKept() {
        var size = TurnSize(ceiling: 4)
        size.turnEnded(taken: 4, drained: true)
        #expect(size.limit == 4)
        size.turnEnded(taken: 4, drained: false)
        #expect(size.limit == 4)
        #expect(TurnSize(ceiling: 0).limit == 1)
    }
}
