import CaseEngine
import Testing

/// The packed representations behind `Case`, `HistoryEntry` and `Evidence` behave as the
/// plain values they replace: round trips, equality, and copies that do not alias.
@Suite struct CompactStorageTests {
    @Test func historyEntryKeepsActionsOutsideTheVocabulary() {
        var entry = HistoryEntry(at: 1, actor: .platform, actorID: "op-7", action: "future.step", fromStatus: nil,
                                 toStatus: .closed, note: "naïve note")
        #expect(entry.action == "future.step")
        #expect(entry.note == "naïve note")
        entry.note = ""
        #expect(entry.action == "future.step" && entry.note == "")
        entry.action = "cancel"
        #expect(entry.action == "cancel" && entry.note == "")
        entry.action = ""
        entry.note = "x"
        #expect(entry.action == "" && entry.note == "x")
        let known = HistoryEntry(at: 1, actor: .consumer, actorID: "c", action: "create", fromStatus: nil, toStatus: .closed, note: "n")
        var renamed = HistoryEntry(at: 1, actor: .consumer, actorID: "c", action: "other", fromStatus: nil, toStatus: .closed, note: "n")
        #expect(known != renamed)
        renamed.action = "create"
        #expect(known == renamed && known.hashValue == renamed.hashValue)
    }

    @Test func evidenceTagsKeepOrderDuplicatesAndLongLists() {
        let short: [IssueTag] = [.wrongItem, .defect, .wrongItem]
        #expect(Evidence(kind: .photo, tags: short, addedAt: 0).tags == short)
        #expect(Evidence(kind: .photo, tags: [], addedAt: 0).tags == [])
        let long = (0..<40).map { IssueTag.allCases[$0 % IssueTag.allCases.count] }
        var evidence = Evidence(kind: .video, tags: long, addedAt: 0)
        #expect(evidence.tags == long)
        evidence.tags = [.damage]
        #expect(evidence == Evidence(kind: .video, tags: [.damage], addedAt: 0))
    }

    @Test func aCaseBoxFitsA288ByteMallocChunk() {
        // The fields live in one heap object: its 16-byte header + at most 264 bytes of
        // fields + malloc's 8 = one 288-byte chunk (one more byte of fields costs 320).
        #expect(MemoryLayout<Case.Fields>.size <= 264, "\(MemoryLayout<Case.Fields>.size) bytes")
    }

    @Test func caseCopiesDoNotAlias() {
        let original = Case(caseID: "AS0000000001", orderID: "o", orderLineID: "", consumerID: "c", merchantID: "m",
                            category: "apparel", reason: "r", type: .refundOnly, delivery: .signed, paidAmount: 5,
                            refundAmount: 5, status: .awaitingMerchantReview, signals: Signals(), createdAt: 0, updatedAt: 0, version: 1)
        var copy = original
        #expect(copy == original)
        copy.status = .closed
        copy.merchantOffer = MerchantOffer(type: .refundOnly, refundAmount: 3, returnShippingPayer: nil, note: "",
                                           offeredAt: 0, expiresAt: 1, state: .pending)
        copy.merchantOffer!.state = .lapsed
        copy.returnShipment = ReturnShipment(carrier: "sf", trackingNumber: "1", shippedAt: 0)
        #expect(original.status == .awaitingMerchantReview)
        #expect(original.merchantOffer == nil && original.returnShipment == nil)
        #expect(copy.merchantOffer?.state == .lapsed && copy.returnShipment?.carrier == "sf")
        copy.merchantOffer = nil
        copy.returnShipment = nil
        copy.status = .awaitingMerchantReview
        #expect(copy == original && copy.hashValue == original.hashValue)
    }
}
