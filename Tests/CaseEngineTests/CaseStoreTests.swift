import CaseEngine
import Testing

/// The store: copy-on-write snapshots, listing and paging, restore, and the deadline
/// queue driven by a manual clock.
@Suite struct CaseStoreTests {
    @Test func copyIsUnchangedWhenTheOriginalMutates() throws {
        var store = CaseStore()
        for line in 0..<50 {
            _ = try store.apply(Fixture.create(Fixture.newCase(line: "\(line)")), now: Fixture.t0)
        }
        let snapshot = store
        let frozen = snapshot["AS0000000007"]
        _ = try store.apply(Fixture.merchant("AS0000000007", .merchantAgree(note: "")), now: Fixture.t0 + 1)
        _ = try store.apply(Fixture.create(Fixture.newCase(line: "new")), now: Fixture.t0 + 2)
        _ = store.fireDueDeadlines(now: Fixture.t0 + 60 * TimeSpan.day)
        #expect(snapshot["AS0000000007"] == frozen)
        #expect(snapshot["AS0000000007"]?.status == .awaitingMerchantReview)
        #expect(snapshot.count == 50)
        #expect(snapshot.count(in: .awaitingMerchantReview) == 50)
        #expect(snapshot.nextDeadline == Fixture.t0 + 48 * TimeSpan.hour)
        #expect(store.count(in: .awaitingMerchantReview) == 0)
        #expect(store.count == 51)
    }

    /// Many ended cases and few deadlines (a day of refunds): the queue sheds its stale
    /// entries from itself, keeps every live one exactly once, stays O(live) in size, and
    /// still fires what is due.
    @Test func theDeadlineQueueShedsStaleEntriesAndKeepsEveryLiveOne() throws {
        var store = CaseStore()
        var open: [String] = []
        for line in 0..<5_000 {
            let id = try store.apply(Fixture.create(Fixture.newCase(line: "\(line)")), now: Fixture.t0 + Millis(line)).case.caseID
            if line % 500 == 0 { open.append(id); continue }
            _ = try store.apply(Fixture.merchant(id, .merchantAgree(note: "")), now: Fixture.t0 + Millis(line))
            #expect(store.queuedDeadlines.count <= 2 * (open.count + 1) + 1_024 + 1, "line \(line)")
        }
        let live = store.queuedDeadlines.filter(store.isLive)
        #expect(live.count == open.count && Set(live).count == live.count)
        #expect(Set(live.map(\.caseID)) == Set(open))
        #expect(store.nextDeadline == Fixture.t0 + 48 * TimeSpan.hour)
        let fired = store.fireDueDeadlines(now: Fixture.t0 + 49 * TimeSpan.hour)
        #expect(Set(fired.map(\.case.caseID)) == Set(open))
        #expect(store.cases.values.allSatisfy { $0.status.isTerminal })
    }

    @Test func aShardHandsOutIdsThatNameItAndListsThemInOrder() throws {
        let numbering = CaseNumbering(shard: 3, shardCount: 8)
        var store = CaseStore(numbering: numbering)
        for line in 0..<20 {
            var new = Fixture.newCase(line: "\(line)")
            new.merchantID = line % 2 == 0 ? "m-even" : "m-odd"
            _ = try store.apply(Fixture.create(new), now: Fixture.t0)
        }
        let ids = store.list(limit: 100).cases.map(\.caseID)
        #expect(ids.first == "AS0000000011" && ids.count == 20, "the first case of shard 3 of 8 is number 1 × 8 + 3")
        #expect(ids == ids.sorted())
        #expect(ids.allSatisfy { CaseNumbering.shard(of: $0, shardCount: 8) == 3 })
        #expect(numbering.localNumber(of: "AS0000000012") == nil, "an id of shard 4 is not this shard's")
        let page = store.list(merchantID: "m-odd", after: ids[4], limit: 3)
        #expect(page.cases.map(\.caseID) == [ids[5], ids[7], ids[9]])
        #expect(store.list(status: .awaitingMerchantReview, limit: 100).cases.count == 20)

        let restored = CaseStore(numbering: numbering, restoring: store.cases.values, nextCaseNumber: store.nextCaseNumber)
        #expect(restored.list(merchantID: "m-even", limit: 100).cases.map(\.caseID) == store.list(merchantID: "m-even", limit: 100).cases.map(\.caseID))
        var grown = restored
        let next = try grown.apply(Fixture.create(Fixture.newCase(line: "after-restore")), now: Fixture.t0)
        #expect(next.case.caseID == numbering.caseID(local: 21))
        #expect(grown.nextDeadline == Fixture.t0 + 48 * TimeSpan.hour)
    }

    @Test func listFiltersAndPagesInCaseIDOrder() throws {
        var store = CaseStore()
        for index in 0..<30 {
            var new = Fixture.newCase(line: "\(index)")
            new.merchantID = index % 3 == 0 ? "m-a" : "m-b"
            let id = try store.apply(Fixture.create(new), now: Fixture.t0).case.caseID
            if index % 2 == 0 {
                _ = try store.apply(Request(caseID: id, actor: .merchant, actorID: new.merchantID, command: .merchantAgree(note: "")), now: Fixture.t0 + 1)
            }
        }
        func collect(status: CaseStatus?, merchant: String?, pageSize: Int) -> [String] {
            var ids: [String] = []
            var after: String? = nil
            repeat {
                let page = store.list(status: status, merchantID: merchant, after: after, limit: pageSize)
                #expect(page.cases.count <= pageSize)
                ids += page.cases.map(\.caseID)
                after = page.nextAfter
            } while after != nil
            return ids
        }
        let all = store.cases.values.sorted { $0.caseID < $1.caseID }
        for status in [nil, CaseStatus.refunded, .awaitingMerchantReview, .closed] {
            for merchant in [nil, "m-a", "m-b", "nobody"] {
                let expected = all.filter { (status == nil || $0.status == status) && (merchant == nil || $0.merchantID == merchant) }.map(\.caseID)
                for pageSize in [1, 4, 7, 100] {
                    #expect(collect(status: status, merchant: merchant, pageSize: pageSize) == expected, "\(String(describing: status)) \(String(describing: merchant)) \(pageSize)")
                }
            }
        }
        #expect(store.list(consumerID: Fixture.consumer, limit: 1000).cases.count == 30)
        #expect(store.list(limit: 0).cases.isEmpty)
        #expect(store.countsByStatus[.refunded] == 15)
    }

    @Test func restoreRebuildsIndexesAndDeadlines() throws {
        var store = CaseStore()
        for line in 0..<20 {
            let id = try store.apply(Fixture.create(Fixture.newCase(line: "\(line)", signals: line % 4 == 0 ? Signals(evidence: [Fixture.defectPhoto]) : Signals())),
                                     now: Fixture.t0 + Millis(line)).case.caseID
            if line % 5 == 1 { _ = try store.apply(Fixture.consumer(id, .cancel(note: "")), now: Fixture.t0 + 100) }
        }
        let restored = CaseStore(config: store.config, restoring: Array(store.cases.values), nextCaseNumber: store.nextCaseNumber)
        #expect(restored == store)
        #expect(restored.nextDeadline == store.nextDeadline)
        var a = store, b = restored
        let due = Fixture.t0 + 60 * TimeSpan.day
        #expect(a.fireDueDeadlines(now: due) == b.fireDueDeadlines(now: due))
        // A counter lower than the restored ids is raised past them.
        #expect(CaseStore(restoring: Array(store.cases.values), nextCaseNumber: 1).nextCaseNumber == 21)
    }

    /// Start-up's bulk rebuild (the trie in parts, the order-line index and the other
    /// indexes built apart, then assembled) gives the store `restore` one case at a time gives.
    @Test(arguments: [CaseNumbering.single, CaseNumbering(shard: 2, shardCount: 5)])
    func bulkRestoreEqualsRestoringOneByOne(numbering: CaseNumbering) throws {
        var store = CaseStore(numbering: numbering)
        for line in 0..<300 {
            var new = Fixture.newCase(line: "\(line)", signals: line % 4 == 0 ? Signals(evidence: [Fixture.defectPhoto]) : Signals())
            new.merchantID = "m-\(line % 7)"
            new.consumerID = "c-\(line % 11)"
            let id = try store.apply(Fixture.create(new), now: Fixture.t0 + Millis(line)).case.caseID
            if line % 5 == 1 {
                _ = try store.apply(Request(caseID: id, actor: .consumer, actorID: new.consumerID, command: .cancel(note: "")), now: Fixture.t0 + 1_000)
            }
            if line % 5 == 2 {
                _ = try store.apply(Request(caseID: id, actor: .merchant, actorID: new.merchantID, command: .merchantAgree(note: "")), now: Fixture.t0 + 1_000)
            }
        }
        let ordered = store.cases.values.sorted { $0.caseID < $1.caseID }
        let reference = CaseStore(numbering: numbering, restoring: ordered.shuffled(), nextCaseNumber: store.nextCaseNumber)
        #expect(reference == store)
        for parts in [1, 2, 3, 32] {
            let shuffled = ordered.shuffled()
            let buckets = shuffled.map { CaseStore.restoredTrieBucket(of: $0.caseID) }
            let bounds = (0...parts).map { $0 * CaseStore.restoredTrieBuckets / parts }
            let trie = (0..<parts).map { CaseStore.restoredCaseTrie(shuffled, buckets: buckets, in: bounds[$0]..<bounds[$0 + 1]) }
            #expect(trie.reduce(0) { $0 + $1.count } == ordered.count)
            let bulk = CaseStore(numbering: numbering, restoredCases: trie,
                                 orderLines: CaseStore.restoredOrderLines(ordered, numbering: numbering),
                                 indexes: CaseStore.restoredIndexes(ordered, numbering: numbering), nextCaseNumber: 1)
            #expect(bulk == reference, "\(parts) parts")
            #expect(bulk.nextCaseNumber == store.nextCaseNumber, "raised past the highest restored number")
            #expect(bulk.nextDeadline == store.nextDeadline)
            #expect(bulk.caseIDs(merchantID: "m-3") == store.caseIDs(merchantID: "m-3"))
            var a = store, b = bulk
            let due = Fixture.t0 + 60 * TimeSpan.day
            #expect(a.fireDueDeadlines(now: due) == b.fireDueDeadlines(now: due))
        }
    }

    @Test func restoredNumbersReadIdsAsCaseNumberDoes() {
        let expected: [(String, UInt64?)] = [("AS0000000042", 42), ("AS9999999999", 9_999_999_999), ("AS+000000042", nil), ("AS00000000x2", nil),
                                             ("AS000000042", nil), ("XS0000000042", nil), ("", nil), ("AS0000000042 ", nil)]
        for (id, number) in expected {
            #expect(CaseNumbering.single.localNumber(of: id) == number, "\(id)")
        }
        let shard = CaseNumbering(shard: 2, shardCount: 5)
        #expect(shard.localNumber(of: "AS0000000017") == 3)
        #expect(shard.localNumber(of: "AS0000000018") == nil)
    }

    /// The 12-hour expiry proved with a manual clock: time moves only when the test says,
    /// so the whole 12 hours pass in microseconds (swift-nio's EmbeddedEventLoop idea).
    @Test func twelveHourExpiryWithManualClock() throws {
        var clock: Millis = Fixture.t0
        var store = CaseStore()
        let id = try store.apply(Fixture.create(Fixture.newCase(signals: Signals(evidence: [Fixture.defectPhoto]))), now: clock).case.caseID
        var expiries: [Outcome] = []
        // Advance a minute at a time, as a daemon loop waking on its poll timeout would.
        while expiries.isEmpty && clock < Fixture.t0 + 13 * TimeSpan.hour {
            clock += TimeSpan.minute
            expiries = store.fireDueDeadlines(now: clock)
        }
        #expect(clock == Fixture.t0 + 12 * TimeSpan.hour)
        #expect(expiries.first?.announcements.map(\.topic) == [.proposalExpired])
        #expect(store[id]?.proposal?.state == .expired)
        #expect(store.nextDeadline == clock + 48 * TimeSpan.hour)
    }

    @Test func queueStaysBoundedUnderChurn() throws {
        var store = CaseStore()
        var now = Fixture.t0
        let id = try store.apply(Fixture.create(Fixture.newCase()), now: now).case.caseID
        // Offer and reject repeatedly: each step replaces the deadline, leaving a stale entry.
        for _ in 0..<3_000 {
            now += 1
            _ = try store.apply(Fixture.merchant(id, .merchantOffer(OfferTerms(type: .refundOnly, refundAmount: 1))), now: now)
            _ = try store.apply(Fixture.consumer(id, .respondToOffer(.reject)), now: now)
        }
        #expect(store.queuedDeadlines.count <= 2 + 1_024 + 2)
        #expect(store.nextDeadline == now + 48 * TimeSpan.hour)
    }
}
