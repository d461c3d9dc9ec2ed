@testable import AfterSalesDaemon
import AfterSalesProto
import CaseEngine
import SwiftProtobuf
import Testing

/// The engine's enums and the proto's must agree case for case, in order: the daemon maps
/// them by position (see EnumMapping).
@Suite struct ProtoMappingTests {
    func agree<E: CaseIterable & Equatable, P: SwiftProtobuf.Enum & CaseIterable>(_: E.Type, _: P.Type) -> Bool
    where E.AllCases == [E], P.RawValue == Int {
        let declared = P.allCases.filter { $0.rawValue != 0 }
        guard declared.count == E.allCases.count else { return false }
        return E.allCases.allSatisfy { engine in
            let proto: P = EnumMapping.proto(engine)
            return String(describing: proto) == String(describing: engine) && EnumMapping.engine(proto) == engine
        }
    }

    @Test func everyEnumAgrees() {
        #expect(agree(CaseType.self, Aftersales_V1_CaseType.self))
        #expect(agree(DeliveryState.self, Aftersales_V1_DeliveryState.self))
        #expect(agree(CaseStatus.self, Aftersales_V1_CaseStatus.self))
        #expect(agree(Party.self, Aftersales_V1_Party.self))
        #expect(agree(ShippingPayer.self, Aftersales_V1_ShippingPayer.self))
        #expect(agree(LogisticsAnomaly.self, Aftersales_V1_LogisticsAnomaly.self))
        #expect(agree(EvidenceKind.self, Aftersales_V1_EvidenceKind.self))
        #expect(agree(IssueTag.self, Aftersales_V1_IssueTag.self))
        #expect(agree(ProposalState.self, Aftersales_V1_ProposalState.self))
        #expect(agree(IssueKind.self, Aftersales_V1_IssueKind.self))
        #expect(agree(OfferState.self, Aftersales_V1_OfferState.self))
        #expect(agree(DeadlineKind.self, Aftersales_V1_DeadlineKind.self))
        #expect(agree(CloseReason.self, Aftersales_V1_CloseReason.self))
        #expect(agree(RefundReason.self, Aftersales_V1_RefundReason.self))
        #expect(agree(Decision.self, Aftersales_V1_Decision.self))
        #expect(agree(Ruling.self, Aftersales_V1_Ruling.self))
    }

    @Test func aCaseSurvivesTheRoundTripThroughItsStoredForm() throws {
        var store = CaseStore()
        let created = try store.apply(.init(caseID: nil, actor: .consumer, actorID: "C1", expectedVersion: nil, command: .create(NewCase(
            orderID: "O1", orderLineID: "1", consumerID: "C1", merchantID: "M1", category: "apparel",
            type: .refundOnly, delivery: .signed, paidAmount: 100, refundAmount: 100, reason: "r",
            signals: Signals(logisticsAnomalies: [.lateDelivery], evidence: [Evidence(kind: .photo, tags: [.defect], addedAt: 5)],
                             merchantViolations90d: 2, merchantComplaintRateBasisPoints: 120, consumerRefundOnlyCount30d: 1)))),
            now: 1_000)
        var current = created.case
        #expect(current.proposal != nil && current.pausedReviewRemaining != nil)
        current = try store.apply(.init(caseID: current.caseID, actor: .consumer, actorID: "C1", expectedVersion: nil,
                                        command: .respondToProposal(.accept)), now: 2_000).case
        current = try store.apply(.init(caseID: current.caseID, actor: .consumer, actorID: "C1", expectedVersion: nil,
                                        command: .submitReturnShipment(carrier: "SF", trackingNumber: "123")), now: 3_000).case
        let bytes: [UInt8] = try Aftersales_V1_Case(current).serializedBytes()
        let back = try Case(stored: Aftersales_V1_Case(serializedBytes: bytes))
        #expect(back == current)
    }

    @Test func aStoredCaseWithAnUnknownStatusIsRefused() {
        var stored = Aftersales_V1_Case()
        stored.caseID = "AS0000000001"
        stored.type = .refundOnly
        stored.delivery = .signed
        stored.status = .UNRECOGNIZED(99)
        #expect(throws: StoredCaseError.self) { try Case(stored: stored) }
    }

    @Test func aStoredCaseWhoseIDTheStoreDidNotMakeIsRefusedNotTrusted() {
        var stored = Aftersales_V1_Case()
        stored.type = .refundOnly
        stored.delivery = .signed
        stored.status = .awaitingMerchantReview
        for id in ["", "AS12", "XX0000000001", "AS00000000O1"] {
            stored.caseID = id
            let error = #expect(throws: StoredCaseError.self) { try Case(stored: stored) }
            #expect(error?.field == "case_id")
        }
        stored.caseID = "AS0000000001"
        #expect(throws: Never.self) { try Case(stored: stored) }
    }

    @Test func requestIDIsReadFromTheHeadOfAnUndecodableEnvelope() {
        #expect(IncomingCall.leadingRequestID([0x08, 0x96, 0x01, 0xff]) == 150)
        #expect(IncomingCall.leadingRequestID([0x12, 0x00]) == 0)
        #expect(IncomingCall.leadingRequestID([]) == 0)
    }
}
