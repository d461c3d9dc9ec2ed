@testable import AfterSalesDaemon
import AfterSalesProto
import AfterSalesRPC
import CaseEngine
import Foundation
import SwiftProtobuf
import Testing

/// The daemon assembles replies, journal entries and announcements from bytes it encoded
/// once; each assembly must decode to exactly what building the message would give.
@Suite struct WireEncodingTests {
    func sampleCase() throws -> (Case, Judgement?) {
        var store = CaseStore()
        let created = try store.apply(.init(caseID: nil, actor: .consumer, actorID: "C1", expectedVersion: nil, command: .create(NewCase(
            orderID: "O1", consumerID: "C1", merchantID: "M1", category: "apparel", type: .refundOnly, delivery: .signed,
            paidAmount: 500, refundAmount: 500, reason: "torn",
            signals: Signals(evidence: [Evidence(kind: .video, tags: [.damage, .defect], description: "seam", addedAt: 1)])))),
            now: 10)
        return (created.case, created.judgement)
    }

    @Test func encodedCaseDecodesToTheMappedCase() throws {
        let (c, _) = try sampleCase()
        let encoded = EncodedCase(c)
        #expect(try Aftersales_V1_Case(serializedBytes: encoded.full) == Aftersales_V1_Case(c))
        #expect(try Aftersales_V1_Case(serializedBytes: encoded.summary) == Aftersales_V1_Case(c, includeHistory: false))
        #expect(c.history.count == 2)
    }

    /// Cases that between them set every field of the proto's Case.
    func casesAlongEveryPath() throws -> [Case] {
        var store = CaseStore()
        var now: Millis = 1_700_000_000_000
        func create(_ order: String, signals: Signals = Signals(), refund: Int64 = 900) throws -> String {
            now += 1
            return try store.apply(.init(caseID: nil, actor: .consumer, actorID: "C1", expectedVersion: nil, command: .create(NewCase(
                orderID: order, orderLineID: "L-\(order)", consumerID: "C1", merchantID: "M1", category: "家居", type: .refundOnly,
                delivery: .signed, paidAmount: 900, refundAmount: refund, reason: String(repeating: "长文本", count: 60), signals: signals))),
                now: now).case.caseID
        }
        func step(_ id: String, _ actor: Party, _ actorID: String, _ command: Command) throws {
            now += 1_000
            _ = try store.apply(.init(caseID: id, actor: actor, actorID: actorID, expectedVersion: nil, command: command), now: now)
        }
        let rich = Signals(logisticsAnomalies: [.damagedInTransit, .lateDelivery],
                           evidence: [Evidence(kind: .photo, tags: [.defect, .missingPart], description: "d", uri: "s3://x", addedAt: 3)],
                           merchantViolations90d: 4, merchantComplaintRateBasisPoints: 350, consumerRefundOnlyCount30d: 9)
        let returned = try create("R", signals: rich)
        try step(returned, .consumer, "C1", .respondToProposal(.accept))
        try step(returned, .consumer, "C1", .submitReturnShipment(carrier: "SF", trackingNumber: "SF123"))
        try step(returned, .merchant, "M1", .confirmReturnReceived)
        let offered = try create("O", refund: 500)
        try step(offered, .merchant, "M1", .merchantOffer(OfferTerms(type: .returnAndRefund, refundAmount: 800, returnShippingPayer: .consumer, note: "n")))
        let rejected = try create("X")
        try step(rejected, .merchant, "M1", .merchantReject(reason: "used"))
        try step(rejected, .consumer, "C1", .cancel(note: "never mind"))
        let pending = try create("P", signals: rich)
        return [returned, offered, rejected, pending].map { store[$0]! }
    }

    @Test func directEncodingMatchesTheGeneratedMessagesOnEveryPath() throws {
        let cases = try casesAlongEveryPath()
        #expect(cases.contains { $0.returnShipment != nil && $0.refundReason != nil && $0.proposal?.decidedAt != nil })
        #expect(cases.contains { $0.merchantOffer != nil })
        #expect(cases.contains { $0.closeReason != nil })
        #expect(cases.contains { $0.pausedReviewRemaining != nil })
        for c in cases {
            let encoded = EncodedCase(c)
            #expect(try Aftersales_V1_Case(serializedBytes: encoded.full) == Aftersales_V1_Case(c), "case \(c.caseID)")
            #expect(try Aftersales_V1_Case(serializedBytes: encoded.summary) == Aftersales_V1_Case(c, includeHistory: false))
            #expect(try Case(stored: Aftersales_V1_Case(serializedBytes: encoded.full)) == c)
        }
    }

    @Test func everyMutationResponseCarriesTheCaseAsFieldOne() throws {
        let (c, judgement) = try sampleCase()
        let encoded = EncodedCase(c)
        for method in Method.allCases where method.isMutating {
            let bytes = WireAssembly.mutationResponse(encoded, judgement: judgement)
            let decoded = try method.responseType.init(serializedBytes: bytes)
            // A field the response does not declare would land in unknownFields.
            let declaresJudgement = decoded.unknownFields.data.isEmpty
            let withoutJudgement = try method.responseType.init(serializedBytes: WireAssembly.mutationResponse(encoded, judgement: nil))
            #expect(withoutJudgement.unknownFields.data.isEmpty, "\(method.fullName) does not have `case` as field 1")
            let caseOnly = try Aftersales_V1_GetCaseResponse(serializedBytes: try withoutJudgement.serializedBytes() as [UInt8])
            #expect(caseOnly.case == Aftersales_V1_Case(c), "\(method.fullName) field 1 is not the case")
            if [.createCase, .addEvidence, .updateLogistics].contains(method) {
                #expect(declaresJudgement, "\(method.fullName) should carry the judgement as field 2")
            }
        }
        let create = try Aftersales_V1_CreateCaseResponse(serializedBytes: WireAssembly.mutationResponse(encoded, judgement: judgement))
        #expect(create.judgement == Aftersales_V1_Judgement(judgement!))
    }

    @Test func journalEntryAndResponseEnvelopeAssemblies() throws {
        let (c, _) = try sampleCase()
        let encoded = EncodedCase(c)
        var entry = Aftersales_Storage_V1_JournalEntry()
        entry.timeMs = 10
        entry.nextCaseNumber = 2
        entry.events = [.with { $0.seq = 1; $0.topic = "case.created"; $0.caseID = c.caseID }]
        var expected = entry
        expected.case = Aftersales_V1_Case(c)
        #expect(try Aftersales_Storage_V1_JournalEntry(serializedBytes: WireAssembly.journalEntry(entry, case: encoded)) == expected)

        let ok = WireAssembly.responseEnvelope(requestID: 300, code: .ok, message: "", payload: [1, 2, 3])
        #expect(try ResponseEnvelope(serializedBytes: ok) == .ok(requestID: 300, payload: [1, 2, 3]))
        let failure = WireAssembly.responseEnvelope(requestID: 0, code: .failedPrecondition, message: "pending — 待定", payload: [UInt8]())
        #expect(try ResponseEnvelope(serializedBytes: failure) == .failure(requestID: 0, RPCError(.failedPrecondition, "pending — 待定")))
    }

    @Test func publishedEventsCarryTheCaseSummary() throws {
        let (c, _) = try sampleCase()
        let encoded = EncodedCase(c)
        var log = AnnouncementLog(window: 10)
        let outcome = Outcome(case: c, announcements: [Announcement(topic: .caseCreated, caseID: c.caseID, previousStatus: nil, status: c.status)])
        let journaled = log.announce(outcome, at: 10, caseBytes: encoded.summary, record: 1)
        var published: [PublishedEvent] = []
        log.release(durableBefore: 2, into: &published)
        let decoded = try Aftersales_V1_EventEnvelope(serializedBytes: published[0].bytes)
        var expected = journaled[0]
        expected.case = Aftersales_V1_Case(c, includeHistory: false)
        #expect(decoded == expected)
    }
}
