@testable import AfterSalesDaemon
import AfterSalesProto
import AfterSalesRPC
import AfterSalesTestSupport
import CaseEngine
import Foundation
import SwiftProtobuf
import Testing

/// The mutating requests are read straight off the wire (`CaseService.mutation` through the
/// generated `…RequestWire` skeletons). They must mean what SwiftProtobuf makes of the same
/// bytes: the same engine request where it accepts, INVALID_ARGUMENT where it refuses, the
/// same refusal (code and message) where the bytes parse but a field is out of range.
@Suite struct RequestWireDecoderTests {
    typealias Answer = Result<MutationCall.Comparable, RPCError>

    /// The reference: SwiftProtobuf's message, mapped to the engine as the daemon did before
    /// it read requests directly.
    func reference(_ method: Method, _ payload: Data) -> Answer {
        func parse<M: SwiftProtobuf.Message>(_: M.Type) throws(RPCError) -> M {
            do { return try M(serializedBytes: payload) } catch { throw RPCError(.invalidArgument, "does not parse") }
        }
        func known<P: SwiftProtobuf.Enum & CaseIterable, E: CaseIterable>(_ value: P, _ field: String, as _: E.Type) throws(RPCError) -> E?
        where P.RawValue == Int, E.AllCases == [E] {
            guard P.allCases.contains(value) else { throw RPCError(.invalidArgument, "\(field): unknown value \(value.rawValue)") }
            return EnumMapping.engine(value)
        }
        func tags(_ values: [Aftersales_V1_IssueTag], _ field: String) throws(RPCError) -> [IssueTag] {
            try values.enumerated().map { i, value throws(RPCError) -> IssueTag in
                guard let tag: IssueTag = EnumMapping.engine(value) else {
                    throw RPCError(.invalidArgument, "\(field)[\(i)]: unknown or unspecified value \(value.rawValue)")
                }
                return tag
            }
        }
        func decision(_ value: Aftersales_V1_Decision) throws(RPCError) -> Decision {
            guard let d: Decision = EnumMapping.engine(value) else { throw RPCError(.invalidArgument, "decision: must be DECISION_ACCEPT or DECISION_REJECT") }
            return d
        }
        func caseID(_ id: String) throws(RPCError) { if id.isEmpty { throw RPCError(.invalidArgument, "case_id: required") } }
        func version(_ v: UInt64) -> UInt64? { v == 0 ? nil : v }
        func request(_ id: String?, _ actor: Party, _ actorID: String, _ v: UInt64, _ command: Command) -> CaseEngine.Request {
            .init(caseID: id, actor: actor, actorID: actorID, expectedVersion: version(v), command: command)
        }
        func mapped() throws(RPCError) -> MutationCall {
            switch method {
            case .createCase:
                let r = try parse(Aftersales_V1_CreateCaseRequest.self)
                let type = try known(r.type, "type", as: CaseType.self)
                let delivery = try known(r.delivery, "delivery", as: DeliveryState.self)
                let s = r.signals
                for (i, a) in s.logisticsAnomalies.enumerated() where EnumMapping.engine(a, as: LogisticsAnomaly.self) == nil {
                    throw RPCError(.invalidArgument, "signals.logistics_anomalies[\(i)]: unknown or unspecified value \(a.rawValue)")
                }
                for (i, e) in s.evidence.enumerated() {
                    if EnumMapping.engine(e.kind, as: EvidenceKind.self) == nil {
                        throw RPCError(.invalidArgument, "signals.evidence[\(i)].kind: required (PHOTO, VIDEO or TEXT)")
                    }
                    _ = try tags(e.tags, "signals.evidence[\(i)].tags")
                }
                if s.merchantComplaintRateBp > 10_000 {
                    throw RPCError(.invalidArgument, "signals.merchant_complaint_rate_bp: \(s.merchantComplaintRateBp) is over 10000 (100 %)")
                }
                let new = NewCase(orderID: r.orderID, orderLineID: r.orderLineID, consumerID: r.consumerID, merchantID: r.merchantID,
                                  category: r.category, type: type, delivery: delivery, paidAmount: r.paidAmount,
                                  refundAmount: r.refundAmount, reason: r.reason, signals: Signals(stored: s))
                return MutationCall(request: request(nil, .consumer, r.consumerID, 0, .create(new)), reportsJudgement: true)
            case .addEvidence:
                let r = try parse(Aftersales_V1_AddEvidenceRequest.self)
                try caseID(r.caseID)
                guard r.hasEvidence else { throw RPCError(.invalidArgument, "evidence: required") }
                let e = NewEvidence(kind: EnumMapping.engine(r.evidence.kind), tags: try tags(r.evidence.tags, "evidence.tags"),
                                    description: r.evidence.description_p, uri: r.evidence.uri)
                return MutationCall(request: request(r.caseID, .consumer, r.consumerID, r.expectedVersion, .addEvidence(e)), reportsJudgement: true)
            case .updateLogistics:
                let r = try parse(Aftersales_V1_UpdateLogisticsRequest.self)
                try caseID(r.caseID)
                let delivery = try known(r.delivery, "delivery", as: DeliveryState.self)
                let anomalies = try r.anomalies.map { a throws(RPCError) -> LogisticsAnomaly in
                    guard let v: LogisticsAnomaly = EnumMapping.engine(a) else {
                        throw RPCError(.invalidArgument, "anomalies: unknown or unspecified value \(a.rawValue)")
                    }
                    return v
                }
                return MutationCall(request: request(r.caseID, .platform, "logistics", r.expectedVersion,
                                                     .updateLogistics(delivery: delivery, anomalies: anomalies)), reportsJudgement: true)
            case .respondToProposal:
                let r = try parse(Aftersales_V1_RespondToProposalRequest.self)
                try caseID(r.caseID)
                return MutationCall(request: request(r.caseID, .consumer, r.consumerID, r.expectedVersion, .respondToProposal(try decision(r.decision))))
            case .merchantAgree:
                let r = try parse(Aftersales_V1_MerchantAgreeRequest.self)
                try caseID(r.caseID)
                return MutationCall(request: request(r.caseID, .merchant, r.merchantID, r.expectedVersion, .merchantAgree(note: r.note)))
            case .merchantReject:
                let r = try parse(Aftersales_V1_MerchantRejectRequest.self)
                try caseID(r.caseID)
                return MutationCall(request: request(r.caseID, .merchant, r.merchantID, r.expectedVersion, .merchantReject(reason: r.reason)))
            case .merchantOffer:
                let r = try parse(Aftersales_V1_MerchantOfferRequest.self)
                try caseID(r.caseID)
                let type = try known(r.type, "type", as: CaseType.self)
                let payer = try known(r.returnShippingPayer, "return_shipping_payer", as: ShippingPayer.self)
                guard let type else { throw RPCError(.invalidArgument, "type: required: REFUND_ONLY or RETURN_AND_REFUND") }
                let terms = OfferTerms(type: type, refundAmount: r.refundAmount, returnShippingPayer: payer, note: r.note)
                return MutationCall(request: request(r.caseID, .merchant, r.merchantID, r.expectedVersion, .merchantOffer(terms)))
            case .respondToOffer:
                let r = try parse(Aftersales_V1_RespondToOfferRequest.self)
                try caseID(r.caseID)
                return MutationCall(request: request(r.caseID, .consumer, r.consumerID, r.expectedVersion, .respondToOffer(try decision(r.decision))))
            case .escalate:
                let r = try parse(Aftersales_V1_EscalateRequest.self)
                try caseID(r.caseID)
                return MutationCall(request: request(r.caseID, .consumer, r.consumerID, r.expectedVersion, .escalate(note: r.note)))
            case .platformResolve:
                let r = try parse(Aftersales_V1_PlatformResolveRequest.self)
                try caseID(r.caseID)
                guard let ruling: Ruling = EnumMapping.engine(r.ruling) else {
                    throw RPCError(.invalidArgument, "ruling: must be RULING_REFUND, RULING_RETURN_AND_REFUND or RULING_CLOSE_FOR_MERCHANT")
                }
                return MutationCall(request: request(r.caseID, .platform, r.operatorID, r.expectedVersion, .platformResolve(ruling, note: r.note)))
            case .submitReturnShipment:
                let r = try parse(Aftersales_V1_SubmitReturnShipmentRequest.self)
                try caseID(r.caseID)
                return MutationCall(request: request(r.caseID, .consumer, r.consumerID, r.expectedVersion,
                                                     .submitReturnShipment(carrier: r.carrier, trackingNumber: r.trackingNumber)))
            case .confirmReturnReceived:
                let r = try parse(Aftersales_V1_ConfirmReturnReceivedRequest.self)
                try caseID(r.caseID)
                return MutationCall(request: request(r.caseID, .merchant, r.merchantID, r.expectedVersion, .confirmReturnReceived))
            case .cancelCase:
                let r = try parse(Aftersales_V1_CancelCaseRequest.self)
                try caseID(r.caseID)
                return MutationCall(request: request(r.caseID, .consumer, r.consumerID, r.expectedVersion, .cancel(note: r.note)))
            default:
                preconditionFailure("\(method) is not a mutation")
            }
        }
        do { return .success(try mapped().comparable) } catch { return .failure(error) }
    }

    func direct(_ method: Method, _ payload: Data) -> Answer {
        do { return .success(try CaseService.mutation(method, payload).comparable) } catch { return .failure(error) }
    }

    /// Whether the two answers agree: the same call, or the same refusal. Bytes that do not
    /// parse are refused with different wording by the two readers; the code must agree.
    func agree(_ a: Answer, _ b: Answer) -> Bool {
        switch (a, b) {
        case (.success(let x), .success(let y)): return x == y
        case (.failure(let x), .failure(let y)):
            return x.code == y.code && (x.message == "does not parse" ? y.message.hasPrefix("payload does not parse as") : x.message == y.message)
        default: return false
        }
    }

    static let mutatingMethods = Method.allCases.filter(\.isMutating).filter { $0.serviceName == "aftersales.v1.CaseService" }

    @Test func everyMutatingCaseServiceMethodIsReadDirectly() {
        // The generator makes a skeleton for each; this holds the switch to all of them.
        #expect(Self.mutatingMethods.count == 13)
        var r = SplitMix64(seed: 1)
        for method in Self.mutatingMethods {
            let payload = Self.randomPayload(method, &r)
            #expect(agree(reference(method, payload), direct(method, payload)), "\(method)")
        }
    }

    /// Random requests of every mutating method — known, unspecified and unknown enum
    /// numbers, empty and non-ASCII texts, signals with evidence, unknown fields appended —
    /// and thousands of damaged copies: the direct reader never crashes and agrees.
    @Test func agreesWithSwiftProtobufOnRandomAndDamagedRequests() {
        var r = SplitMix64(seed: 0x5EED_2026)
        var accepted = 0, refusedAsMalformed = 0, refusedForAField = 0
        for round in 0..<8_000 {
            let method = Self.mutatingMethods[Int(r.next() % UInt64(Self.mutatingMethods.count))]
            var payload = Self.randomPayload(method, &r)
            if round % 2 == 1, !payload.isEmpty { payload = Data(r.damaged([UInt8](payload))) }
            let expected = reference(method, payload), actual = direct(method, payload)
            #expect(agree(expected, actual), "round \(round) \(method): \(payload.map { String($0, radix: 16) }.joined(separator: " ")) → \(expected) vs \(actual)")
            switch expected {
            case .success: accepted += 1
            case .failure(let e) where e.message == "does not parse": refusedAsMalformed += 1
            case .failure: refusedForAField += 1
            }
            if !agree(expected, actual) { break }
        }
        // Every outcome must have been exercised for the comparison to mean something.
        #expect(accepted > 1_000 && refusedAsMalformed > 500 && refusedForAField > 500,
                "accepted \(accepted), malformed \(refusedAsMalformed), refused for a field \(refusedForAField)")
    }

    // MARK: random requests

    static func randomPayload(_ method: Method, _ r: inout SplitMix64) -> Data {
        func text() -> String { ["", "C-1", "m-42", "商家甲", "ä", String(repeating: "x", count: 140), "note with spaces"][Int(r.next() % 7)] }
        func number<E: SwiftProtobuf.Enum>(_: E.Type) -> E where E.RawValue == Int {
            // Mostly known values, sometimes UNSPECIFIED or a number this build does not know.
            let pick = Int(r.next() % 8)
            return E(rawValue: pick < 6 ? pick : (pick == 6 ? 77 : -3))!
        }
        func int64() -> Int64 { r.next() % 3 == 0 ? -Int64(r.next() % 1000) : Int64(r.next() % 100_000) }
        func version() -> UInt64 { r.next() % 2 == 0 ? 0 : r.next() % 50 }
        func evidence() -> Aftersales_V1_Evidence {
            .with {
                $0.kind = number(Aftersales_V1_EvidenceKind.self)
                $0.tags = (0..<Int(r.next() % 3)).map { _ in number(Aftersales_V1_IssueTag.self) }
                $0.description_p = text(); $0.uri = text(); $0.addedAtMs = int64()
            }
        }
        var message: any SwiftProtobuf.Message
        switch method {
        case .createCase:
            message = Aftersales_V1_CreateCaseRequest.with {
                $0.orderID = text(); $0.orderLineID = text(); $0.consumerID = text(); $0.merchantID = text(); $0.category = text()
                $0.type = number(Aftersales_V1_CaseType.self); $0.delivery = number(Aftersales_V1_DeliveryState.self)
                $0.paidAmount = int64(); $0.refundAmount = int64(); $0.reason = text()
                if r.next() % 4 != 0 {
                    $0.signals = .with {
                        $0.logisticsAnomalies = (0..<Int(r.next() % 3)).map { _ in number(Aftersales_V1_LogisticsAnomaly.self) }
                        $0.evidence = (0..<Int(r.next() % 3)).map { _ in evidence() }
                        $0.merchantViolations90D = UInt32(r.next() % 5)
                        $0.merchantComplaintRateBp = UInt32(r.next() % 12_000)
                        $0.consumerRefundOnlyCount30D = UInt32(r.next() % 5)
                    }
                }
            }
        case .addEvidence:
            message = Aftersales_V1_AddEvidenceRequest.with {
                $0.caseID = text(); $0.consumerID = text(); $0.expectedVersion = version()
                if r.next() % 4 != 0 { $0.evidence = evidence() }
            }
        case .updateLogistics:
            message = Aftersales_V1_UpdateLogisticsRequest.with {
                $0.caseID = text(); $0.delivery = number(Aftersales_V1_DeliveryState.self); $0.expectedVersion = version()
                $0.anomalies = (0..<Int(r.next() % 3)).map { _ in number(Aftersales_V1_LogisticsAnomaly.self) }
            }
        case .respondToProposal:
            message = Aftersales_V1_RespondToProposalRequest.with {
                $0.caseID = text(); $0.consumerID = text(); $0.decision = number(Aftersales_V1_Decision.self); $0.expectedVersion = version()
            }
        case .merchantAgree:
            message = Aftersales_V1_MerchantAgreeRequest.with { $0.caseID = text(); $0.merchantID = text(); $0.note = text(); $0.expectedVersion = version() }
        case .merchantReject:
            message = Aftersales_V1_MerchantRejectRequest.with { $0.caseID = text(); $0.merchantID = text(); $0.reason = text(); $0.expectedVersion = version() }
        case .merchantOffer:
            message = Aftersales_V1_MerchantOfferRequest.with {
                $0.caseID = text(); $0.merchantID = text(); $0.type = number(Aftersales_V1_CaseType.self); $0.refundAmount = int64()
                $0.returnShippingPayer = number(Aftersales_V1_ShippingPayer.self); $0.note = text(); $0.expectedVersion = version()
            }
        case .respondToOffer:
            message = Aftersales_V1_RespondToOfferRequest.with {
                $0.caseID = text(); $0.consumerID = text(); $0.decision = number(Aftersales_V1_Decision.self); $0.expectedVersion = version()
            }
        case .escalate:
            message = Aftersales_V1_EscalateRequest.with { $0.caseID = text(); $0.consumerID = text(); $0.note = text(); $0.expectedVersion = version() }
        case .platformResolve:
            message = Aftersales_V1_PlatformResolveRequest.with {
                $0.caseID = text(); $0.operatorID = text(); $0.ruling = number(Aftersales_V1_Ruling.self); $0.note = text(); $0.expectedVersion = version()
            }
        case .submitReturnShipment:
            message = Aftersales_V1_SubmitReturnShipmentRequest.with {
                $0.caseID = text(); $0.consumerID = text(); $0.carrier = text(); $0.trackingNumber = text(); $0.expectedVersion = version()
            }
        case .confirmReturnReceived:
            message = Aftersales_V1_ConfirmReturnReceivedRequest.with { $0.caseID = text(); $0.merchantID = text(); $0.expectedVersion = version() }
        case .cancelCase:
            message = Aftersales_V1_CancelCaseRequest.with { $0.caseID = text(); $0.consumerID = text(); $0.note = text(); $0.expectedVersion = version() }
        default:
            preconditionFailure("\(method) is not a mutation")
        }
        var bytes: [UInt8] = (try? message.serializedBytes()) ?? []
        // Sometimes an unknown field (of any wire type), which both readers must skip.
        let pick = Int(r.next() % UInt64(WireSamples.unknownFields.count + 1))
        if pick < WireSamples.unknownFields.count { bytes += WireSamples.unknownFields[pick] }
        return Data(bytes)
    }
}

extension MutationCall {
    /// What the engine receives, compared field by field.
    struct Comparable: Equatable {
        let request: CaseEngine.Request
        let reportsJudgement: Bool
    }

    var comparable: Comparable { Comparable(request: request, reportsJudgement: reportsJudgement) }
}
