// CaseService's handlers: a decoded request, the store and the time in; the answer, and
// the change to journal and announce, out. No sockets, no journal, no numbering of
// announcements: DaemonCore does those once for every change. The rules themselves live
// in CaseEngine; this file only translates between the wire and the engine.
import AfterSalesProto
import AfterSalesRPC
import CaseEngine
import Foundation
import SwiftProtobuf

/// A decoded mutating call, ready for the engine. Every mutating response carries the
/// case as field 1; those that run the judgement also carry it as field 2.
struct MutationCall {
    var request: CaseEngine.Request
    var reportsJudgement = false
}

/// The authenticated calling service of a call: its name (audit) and whom it acts for.
struct Caller: Sendable {
    let name: String
    let scope: Scope
}

/// A change one call or deadline made: journaled and announced once by the core.
struct Change {
    var outcome: Outcome
    var encoded: EncodedCase
    /// What a retry with the call's idempotency key will be answered from.
    var answer: Aftersales_Storage_V1_IdempotentAnswer?
    var at: Millis
}

enum CaseService {
    /// A state-changing call: idempotency and the engine. The change it made, with the
    /// answer to remember for its key, comes back for the core to journal, remember and
    /// announce once; nothing here touches the journal.
    static func mutate(_ method: Method, _ envelope: RequestEnvelope, store: inout CaseStore, idempotency: IdempotencyTable,
                       caller: Caller?, now: Millis) throws(RPCError) -> (answer: CallAnswer, change: Change?) {
        let requestKey = envelope.idempotencyKey
        if requestKey.utf8.count > maxIdempotencyKeyBytes {
            throw RPCError(.invalidArgument, "idempotency_key: \(requestKey.utf8.count) bytes; at most \(maxIdempotencyKeyBytes)")
        }
        // Each calling service has keys of its own: one cannot replay another's answers.
        let key = caller.map { requestKey.isEmpty ? "" : $0.name + "\u{0}" + requestKey } ?? requestKey
        var fingerprint = Data()
        if !key.isEmpty {
            fingerprint = RequestFingerprint.of(payload: envelope.payload)
            if let earlier = idempotency[key] {
                return (try answerAgain(earlier, key: requestKey, method: method, fingerprint: fingerprint, store: store), nil)
            }
        }
        var call = try mutation(method, envelope.payload)
        if let caller {
            guard caller.scope.allows(actor: call.request.actor, actorID: call.request.actorID) else {
                throw RPCError(.permissionDenied, "client '\(caller.name)' acts for \(caller.scope.description) only, "
                               + "not for \(call.request.actor.rawValue) '\(call.request.actorID)'; nothing was changed")
            }
            call.request.client = caller.name
        }
        let outcome: Outcome
        do {
            outcome = try store.apply(call.request, now: now)
        } catch {
            throw RPCError(error)
        }
        let encoded = EncodedCase(outcome.case)
        let judgement = call.reportsJudgement ? outcome.judgement.map(WireAssembly.judgement) : nil
        let payload = WireAssembly.mutationResponse(encoded, judgementBytes: judgement)
        var answer: Aftersales_Storage_V1_IdempotentAnswer?
        if !key.isEmpty {
            let remembered = Aftersales_Storage_V1_IdempotentAnswer.with {
                $0.key = key
                $0.method = method.fullName
                $0.code = .ok
                $0.answeredAtMs = now
                $0.fingerprint = fingerprint
                $0.caseID = outcome.case.caseID
                $0.caseVersion = outcome.case.version
                if let judgement { $0.judgement = Data(judgement) }
            }
            answer = remembered
        }
        return (.success(payload), Change(outcome: outcome, encoded: encoded, answer: answer, at: now))
    }

    /// The answer to a retry: the same method and request get the first answer again,
    /// rebuilt from the case in the store; anything else reusing the key is refused.
    static func answerAgain(_ earlier: IdempotencyTable.Answer, key: String, method: Method, fingerprint: Data,
                            store: CaseStore) throws(RPCError) -> CallAnswer {
        // Answers remembered by older daemons have no fingerprint: the method must match.
        guard earlier.method == method.fullName, earlier.fingerprint.isEmpty || earlier.fingerprint == fingerprint else {
            let what = earlier.method == method.fullName ? "with a different request" : "for \(earlier.method)"
            throw RPCError(.invalidArgument, "idempotency_key '\(key)' was already used at \(ISO8601.format(earlier.answeredAtMs)) \(what); "
                           + "a retry must repeat its request exactly — use a new key for this \(method.fullName) call")
        }
        if !earlier.payload.isEmpty { return .replayed(Array(earlier.payload), message: earlier.message) }
        guard let current = store[earlier.caseID] else {
            throw RPCError(.internal, "idempotency_key '\(key)' answered case \(earlier.caseID), which this daemon no longer holds")
        }
        let payload = WireAssembly.mutationResponse(EncodedCase(current), judgementBytes: earlier.judgement.isEmpty ? nil : Array(earlier.judgement))
        if current.version == earlier.caseVersion { return .success(payload) }
        return .replayed(payload, message: "idempotency_key '\(key)' was answered at \(ISO8601.format(earlier.answeredAtMs)) with case \(earlier.caseID) "
                         + "at version \(earlier.caseVersion); the case has changed since and is shown as it stands now, at version \(current.version)")
    }

    /// The read-only CaseService calls, answered from the store as it stands.
    /// A caller with a scope sees only its parties' cases: another party's case is
    /// NOT_FOUND, as if it did not exist (it learns nothing of cases it may not see).
    /// (`inout` only so that the store is read in place rather than copied: nothing changes
    /// it.) GetCase answers with the case's bytes from `encoded`, which keeps them.
    static func query(_ method: Method, _ payload: Data, store: inout CaseStore, encoded: inout EncodedCaseCache,
                      scope: Scope? = nil) throws(RPCError) -> CallAnswer {
        let response: any SwiftProtobuf.Message
        switch method {
        case .getCase:
            let caseID = try caseIDOfGetCase(payload)
            try requireCaseID(caseID)
            guard let found = store[caseID], scope?.allows(found) ?? true else { throw RPCError(.notFound, "no case \(caseID)") }
            return .found(encoded.encoded(found))
        case .listCases:
            return .success(try listCases(payload, stores: [store], scope: scope))
        case .evaluateIntervention:
            let r = try decode(Aftersales_V1_EvaluateInterventionRequest.self, payload)
            try requireCaseID(r.caseID)
            if let scope, let found = store[r.caseID], !scope.allows(found) { throw RPCError(.notFound, "no case \(r.caseID)") }
            do {
                let judgement = try store.evaluate(caseID: r.caseID)
                response = Aftersales_V1_EvaluateInterventionResponse.with { $0.judgement = .init(judgement) }
            } catch {
                throw RPCError(error)
            }
        default:
            preconditionFailure("\(method.fullName) is not a CaseService query")
        }
        do {
            return .success(try response.serializedBytes())
        } catch {
            throw RPCError(.internal, "could not encode the answer: \(error)")
        }
    }

    /// GetCaseRequest's case_id, read off the wire when the request is that one field
    /// (what every client sends), else decoded by SwiftProtobuf, whose errors say what is wrong.
    static func caseIDOfGetCase(_ payload: Data) throws(RPCError) -> String {
        let alone: String? = payload.withUnsafeBytes { bytes in
            var reader = WireReader(bytes)
            guard let (field, wireType) = try? reader.tag(), field == getCaseIDField, wireType == 2,
                  let text = try? reader.string(), reader.isAtEnd else { return nil }
            return text
        }
        if let alone { return alone }
        return try decode(Aftersales_V1_GetCaseRequest.self, payload).caseID
    }

    private static let getCaseIDField = UInt64(Contract.requestFieldNumber("case_id", of: .getCase)!)

    /// ListCases over one store, or a cluster member's shards merged in case id order
    /// (ids of every shard are numbers of one sequence, so the page token is still the last id).
    static func listCases(_ payload: Data, stores: [CaseStore], scope: Scope?) throws(RPCError) -> [UInt8] {
        let r = try decode(Aftersales_V1_ListCasesRequest.self, payload)
        if let scope {
            if let merchants = scope.merchants, !merchants.contains(r.merchantID) {
                throw RPCError(.permissionDenied, "merchant_id: pass one of the merchants this client acts for (\(merchants.sorted().joined(separator: ", ")))")
            }
            if let consumers = scope.consumers, !consumers.contains(r.consumerID) {
                throw RPCError(.permissionDenied, "consumer_id: pass one of the consumers this client acts for (\(consumers.sorted().joined(separator: ", ")))")
            }
        }
        let pageSize = r.pageSize == 0 ? 50 : Int(r.pageSize)
        guard pageSize <= 1_000 else {
            throw RPCError(.invalidArgument, "page_size: \(r.pageSize) is over the maximum of 1000")
        }
        let status: CaseStatus? = EnumMapping.engine(r.status)
        if status == nil, r.status != .unspecified {
            throw RPCError(.invalidArgument, "status: unknown value \(r.status.rawValue)")
        }
        var after: String?
        if !r.pageToken.isEmpty {
            guard CaseStore.caseNumber(of: r.pageToken) != nil else {
                throw RPCError(.invalidArgument, "page_token: '\(r.pageToken)' is not a token this daemon issued; pass next_page_token from the previous page")
            }
            after = r.pageToken
        }
        var found: [Case] = []
        var more = false
        for store in stores {
            let page = store.list(status: status, merchantID: r.merchantID.isEmpty ? nil : r.merchantID,
                                  consumerID: r.consumerID.isEmpty ? nil : r.consumerID, after: after, limit: pageSize)
            found += page.cases
            more = more || page.nextAfter != nil
        }
        if stores.count > 1 { found.sort { $0.caseID < $1.caseID } }
        more = more || found.count > pageSize
        let page = found.prefix(pageSize)
        let response = Aftersales_V1_ListCasesResponse.with {
            $0.cases = page.map { Aftersales_V1_Case($0, includeHistory: r.includeHistory) }
            $0.nextPageToken = more ? page.last?.caseID ?? "" : ""
        }
        do {
            return try response.serializedBytes()
        } catch {
            throw RPCError(.internal, "could not encode the answer: \(error)")
        }
    }

    /// Decodes a call's payload as its method's request type; INVALID_ARGUMENT when it does not parse.
    static func decode<M: SwiftProtobuf.Message>(_ type: M.Type, _ payload: Data) throws(RPCError) -> M {
        do {
            return try M(serializedBytes: payload)
        } catch {
            throw RPCError(.invalidArgument, "payload does not parse as \(M.protoMessageName): \(error)")
        }
    }

    static func decision(_ number: Int) throws(RPCError) -> Decision {
        guard let decision: Decision = engine(number) else {
            throw RPCError(.invalidArgument, "decision: must be DECISION_ACCEPT or DECISION_REJECT")
        }
        return decision
    }

    static func version(_ expected: UInt64) -> UInt64? { expected == 0 ? nil : expected }

    static func requireCaseID(_ id: String) throws(RPCError) {
        if id.isEmpty { throw RPCError(.invalidArgument, "case_id: required") }
    }

    /// The engine command for a mutating CaseService call, read straight off the wire into
    /// the generated read skeletons (`…RequestWire`): SwiftProtobuf's message would be built
    /// only to be copied into the engine's types (~7 000 instructions a CreateCase).
    static func mutation(_ method: Method, _ payload: Data) throws(RPCError) -> MutationCall {
        switch method {
        case .createCase:
            let r = try read(CreateCaseRequestWire.self, payload)
            let new = NewCase(
                orderID: r.orderID, orderLineID: r.orderLineID, consumerID: r.consumerID, merchantID: r.merchantID,
                category: r.category, type: try known(r.type, field: "type"), delivery: try known(r.delivery, field: "delivery"),
                paidAmount: r.paidAmount, refundAmount: r.refundAmount, reason: r.reason,
                signals: try signals(r.signals ?? SignalsWire()))
            return MutationCall(request: .init(caseID: nil, actor: .consumer, actorID: r.consumerID, expectedVersion: nil, command: .create(new)), reportsJudgement: true)
        case .addEvidence:
            let r = try read(AddEvidenceRequestWire.self, payload)
            try requireCaseID(r.caseID)
            guard let e = r.evidence else { throw RPCError(.invalidArgument, "evidence: required") }
            let evidence = NewEvidence(kind: engine(e.kind), tags: try tags(e.tags, field: "evidence.tags"), description: e.description, uri: e.uri)
            return MutationCall(request: .init(caseID: r.caseID, actor: .consumer, actorID: r.consumerID, expectedVersion: version(r.expectedVersion), command: .addEvidence(evidence)), reportsJudgement: true)
        case .updateLogistics:
            let r = try read(UpdateLogisticsRequestWire.self, payload)
            try requireCaseID(r.caseID)
            let delivery: DeliveryState? = try known(r.delivery, field: "delivery")
            let anomalies = try r.anomalies.map { value throws(RPCError) -> LogisticsAnomaly in
                guard let anomaly: LogisticsAnomaly = engine(value) else {
                    throw RPCError(.invalidArgument, "anomalies: unknown or unspecified value \(value)")
                }
                return anomaly
            }
            return MutationCall(request: .init(caseID: r.caseID, actor: .platform, actorID: "logistics", expectedVersion: version(r.expectedVersion),
                                               command: .updateLogistics(delivery: delivery, anomalies: anomalies)), reportsJudgement: true)
        case .respondToProposal:
            let r = try read(RespondToProposalRequestWire.self, payload)
            try requireCaseID(r.caseID)
            return MutationCall(request: .init(caseID: r.caseID, actor: .consumer, actorID: r.consumerID, expectedVersion: version(r.expectedVersion),
                                               command: .respondToProposal(try decision(r.decision))))
        case .merchantAgree:
            let r = try read(MerchantAgreeRequestWire.self, payload)
            try requireCaseID(r.caseID)
            return MutationCall(request: .init(caseID: r.caseID, actor: .merchant, actorID: r.merchantID, expectedVersion: version(r.expectedVersion),
                                               command: .merchantAgree(note: r.note)))
        case .merchantReject:
            let r = try read(MerchantRejectRequestWire.self, payload)
            try requireCaseID(r.caseID)
            return MutationCall(request: .init(caseID: r.caseID, actor: .merchant, actorID: r.merchantID, expectedVersion: version(r.expectedVersion),
                                               command: .merchantReject(reason: r.reason)))
        case .merchantOffer:
            let r = try read(MerchantOfferRequestWire.self, payload)
            try requireCaseID(r.caseID)
            let type: CaseType? = try known(r.type, field: "type")
            let payer: ShippingPayer? = try known(r.returnShippingPayer, field: "return_shipping_payer")
            guard let type else { throw RPCError(.invalidArgument, "type: required: REFUND_ONLY or RETURN_AND_REFUND") }
            let terms = OfferTerms(type: type, refundAmount: r.refundAmount, returnShippingPayer: payer, note: r.note)
            return MutationCall(request: .init(caseID: r.caseID, actor: .merchant, actorID: r.merchantID, expectedVersion: version(r.expectedVersion),
                                               command: .merchantOffer(terms)))
        case .respondToOffer:
            let r = try read(RespondToOfferRequestWire.self, payload)
            try requireCaseID(r.caseID)
            return MutationCall(request: .init(caseID: r.caseID, actor: .consumer, actorID: r.consumerID, expectedVersion: version(r.expectedVersion),
                                               command: .respondToOffer(try decision(r.decision))))
        case .escalate:
            let r = try read(EscalateRequestWire.self, payload)
            try requireCaseID(r.caseID)
            return MutationCall(request: .init(caseID: r.caseID, actor: .consumer, actorID: r.consumerID, expectedVersion: version(r.expectedVersion),
                                               command: .escalate(note: r.note)))
        case .platformResolve:
            let r = try read(PlatformResolveRequestWire.self, payload)
            try requireCaseID(r.caseID)
            guard let ruling: Ruling = engine(r.ruling) else {
                throw RPCError(.invalidArgument, "ruling: must be RULING_REFUND, RULING_RETURN_AND_REFUND or RULING_CLOSE_FOR_MERCHANT")
            }
            return MutationCall(request: .init(caseID: r.caseID, actor: .platform, actorID: r.operatorID, expectedVersion: version(r.expectedVersion),
                                               command: .platformResolve(ruling, note: r.note)))
        case .submitReturnShipment:
            let r = try read(SubmitReturnShipmentRequestWire.self, payload)
            try requireCaseID(r.caseID)
            return MutationCall(request: .init(caseID: r.caseID, actor: .consumer, actorID: r.consumerID, expectedVersion: version(r.expectedVersion),
                                               command: .submitReturnShipment(carrier: r.carrier, trackingNumber: r.trackingNumber)))
        case .confirmReturnReceived:
            let r = try read(ConfirmReturnReceivedRequestWire.self, payload)
            try requireCaseID(r.caseID)
            return MutationCall(request: .init(caseID: r.caseID, actor: .merchant, actorID: r.merchantID, expectedVersion: version(r.expectedVersion),
                                               command: .confirmReturnReceived))
        case .cancelCase:
            let r = try read(CancelCaseRequestWire.self, payload)
            try requireCaseID(r.caseID)
            return MutationCall(request: .init(caseID: r.caseID, actor: .consumer, actorID: r.consumerID, expectedVersion: version(r.expectedVersion),
                                               command: .cancel(note: r.note)))
        default:  // the read-only methods (`isMutating` is false: generated from the .proto)
            preconditionFailure("\(method.fullName) is not a mutation")
        }
    }

    /// A request read by the direct codec; what SwiftProtobuf refuses, it refuses.
    static func read<M: WireMessage>(_: M.Type, _ payload: Data) throws(RPCError) -> M {
        do {
            return try M(reading: payload)
        } catch {
            throw RPCError(.invalidArgument, "payload does not parse as \(M.messageName): \(error)")
        }
    }

    /// An optional enum field: nil for UNSPECIFIED (0), refused when this build does not
    /// know the number — before anything looks at the case, so a malformed request is
    /// INVALID_ARGUMENT whether or not its case exists.
    static func known<E: CaseIterable>(_ number: Int, field: String) throws(RPCError) -> E? where E.AllCases == [E] {
        if number == 0 { return nil }
        guard let value: E = engine(number) else { throw RPCError(.invalidArgument, "\(field): unknown value \(number)") }
        return value
    }

    /// Signals from a create call, rejecting enum numbers this build does not know.
    static func signals(_ p: SignalsWire) throws(RPCError) -> Signals {
        for (i, anomaly) in p.logisticsAnomalies.enumerated() where engine(anomaly, as: LogisticsAnomaly.self) == nil {
            throw RPCError(.invalidArgument, "signals.logistics_anomalies[\(i)]: unknown or unspecified value \(anomaly)")
        }
        for (i, e) in p.evidence.enumerated() {
            if engine(e.kind, as: EvidenceKind.self) == nil {
                throw RPCError(.invalidArgument, "signals.evidence[\(i)].kind: required (PHOTO, VIDEO or TEXT)")
            }
            _ = try tags(e.tags, field: "signals.evidence[\(i)].tags")
        }
        if p.merchantComplaintRateBp > 10_000 {
            throw RPCError(.invalidArgument, "signals.merchant_complaint_rate_bp: \(p.merchantComplaintRateBp) is over 10000 (100 %)")
        }
        return p.build()
    }

    static func tags(_ values: [Int], field: String) throws(RPCError) -> [IssueTag] {
        try values.enumerated().map { i, value throws(RPCError) -> IssueTag in
            guard let tag: IssueTag = engine(value) else {
                throw RPCError(.invalidArgument, "\(field)[\(i)]: unknown or unspecified value \(value)")
            }
            return tag
        }
    }
}

extension RPCError {
    /// The wire form of an engine refusal: the engine's error kinds are gRPC's codes one-to-one.
    init(_ error: CaseError) {
        self.init(StatusCode(rawValue: Int(error.grpcCode)) ?? .unknown, error.message)
    }
}
