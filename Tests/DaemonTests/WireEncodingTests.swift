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
        let events: [Aftersales_V1_EventEnvelope] = [
            .with { $0.seq = 1; $0.topic = "case.created"; $0.caseID = c.caseID; $0.timeMs = 10 },
            .with { $0.seq = 2; $0.topic = "proposal.issued"; $0.caseID = c.caseID; $0.late = true; $0.previousStatus = .awaitingMerchantReview },
        ]
        let answer = Aftersales_Storage_V1_IdempotentAnswer.with {
            $0.key = "svc\u{0}k-1"; $0.method = "aftersales.v1.CaseService/CreateCase"; $0.code = .ok; $0.answeredAtMs = 10
            $0.fingerprint = Data([1, 2, 3]); $0.caseID = c.caseID; $0.caseVersion = 3; $0.judgement = Data([9, 9])
        }
        for withAnswer in [false, true] {
            var expected = Aftersales_Storage_V1_JournalEntry()
            expected.timeMs = 10
            expected.nextCaseNumber = 2
            expected.events = events
            if withAnswer { expected.answer = answer }
            expected.case = Aftersales_V1_Case(c)
            // The events arrive as bytes inside larger arrays (prefixes of what was published).
            let slices = try events.map { try ($0.serializedBytes() as [UInt8]) + [0x32, 0] }.map { $0[..<($0.count - 2)] }
            let bytes = WireAssembly.journalEntry(timeMs: 10, case: encoded, events: slices, nextCaseNumber: 2, answer: withAnswer ? answer : nil)
            #expect(try Aftersales_Storage_V1_JournalEntry(serializedBytes: bytes) == expected)
        }

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
        let journaled = log.announce(outcome, at: 10, caseBytes: encoded.summaryBytes, record: 1)
        var published: [PublishedEvent] = []
        log.release(durableBefore: 2, into: &published)
        let decoded = try Aftersales_V1_EventEnvelope(serializedBytes: published[0].bytes)
        var expected = Aftersales_V1_EventEnvelope.with { $0.seq = 1; $0.topic = "case.created"; $0.timeMs = 10; $0.caseID = c.caseID }
        #expect(try Aftersales_V1_EventEnvelope(serializedBytes: Array(journaled[0])) == expected)
        expected.case = Aftersales_V1_Case(c, includeHistory: false)
        #expect(decoded == expected)
        // Read back from the journal, an announcement is published with the same bytes.
        #expect(AnnouncementLog.withCase(try Aftersales_V1_EventEnvelope(serializedBytes: Array(journaled[0])), encoded.summary) == published[0].bytes)
    }

    @Test func announcementsCarryEveryEnvelopeField() throws {
        let (c, _) = try sampleCase()
        var log = AnnouncementLog(window: 10, lastSeq: 41)
        log.shard = 7
        log.beginIncarnation(0xDEAD_BEEF)
        let outcome = Outcome(case: c, announcements: [
            Announcement(topic: .proposalExpired, caseID: c.caseID, previousStatus: .proposalPending, status: c.status, late: true)])
        let journaled = log.announce(outcome, at: -5, caseBytes: EncodedCase(c).summaryBytes, record: 1)
        let expected = Aftersales_V1_EventEnvelope.with {
            $0.seq = 42; $0.topic = "proposal.expired"; $0.timeMs = -5; $0.caseID = c.caseID; $0.late = true
            $0.previousStatus = .proposalPending; $0.incarnation = 0xDEAD_BEEF; $0.incarnationStartSeq = 42; $0.shard = 7
        }
        #expect(try Aftersales_V1_EventEnvelope(serializedBytes: Array(journaled[0])) == expected)
    }
}
