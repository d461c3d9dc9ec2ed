// One typed method per RPC, async and blocking: thin wrappers over `call(_:_:options:)`.
// The list follows `RPCs` in Sources/AfterSalesRPC/Methods.swift, one line each.

import AfterSalesProto
import AfterSalesRPC

extension AfterSalesClient {
    /// Opens a case (and runs the intervention judgement at once). `deadline` overrides `options.deadline`.
    public func createCase(_ request: Aftersales_V1_CreateCaseRequest = Aftersales_V1_CreateCaseRequest(), deadline: Duration? = nil, options: CallOptions = CallOptions()) async throws(RPCError) -> Aftersales_V1_CreateCaseResponse {
        try await call(RPCs.createCase, request, options: options.with(deadline: deadline))
    }

    /// Reads one case with its history. `deadline` overrides `options.deadline`.
    public func getCase(_ request: Aftersales_V1_GetCaseRequest = Aftersales_V1_GetCaseRequest(), deadline: Duration? = nil, options: CallOptions = CallOptions()) async throws(RPCError) -> Aftersales_V1_GetCaseResponse {
        try await call(RPCs.getCase, request, options: options.with(deadline: deadline))
    }

    /// Lists cases by filter, in case_id order, paged. `deadline` overrides `options.deadline`.
    public func listCases(_ request: Aftersales_V1_ListCasesRequest = Aftersales_V1_ListCasesRequest(), deadline: Duration? = nil, options: CallOptions = CallOptions()) async throws(RPCError) -> Aftersales_V1_ListCasesResponse {
        try await call(RPCs.listCases, request, options: options.with(deadline: deadline))
    }

    /// The consumer adds evidence; the judgement runs again while the case is eligible. `deadline` overrides `options.deadline`.
    public func addEvidence(_ request: Aftersales_V1_AddEvidenceRequest = Aftersales_V1_AddEvidenceRequest(), deadline: Duration? = nil, options: CallOptions = CallOptions()) async throws(RPCError) -> Aftersales_V1_AddEvidenceResponse {
        try await call(RPCs.addEvidence, request, options: options.with(deadline: deadline))
    }

    /// The logistics service reports a delivery change or anomalies. `deadline` overrides `options.deadline`.
    public func updateLogistics(_ request: Aftersales_V1_UpdateLogisticsRequest = Aftersales_V1_UpdateLogisticsRequest(), deadline: Duration? = nil, options: CallOptions = CallOptions()) async throws(RPCError) -> Aftersales_V1_UpdateLogisticsResponse {
        try await call(RPCs.updateLogistics, request, options: options.with(deadline: deadline))
    }

    /// Dry run of the judgement on the case as it stands; changes nothing. `deadline` overrides `options.deadline`.
    public func evaluateIntervention(_ request: Aftersales_V1_EvaluateInterventionRequest = Aftersales_V1_EvaluateInterventionRequest(), deadline: Duration? = nil, options: CallOptions = CallOptions()) async throws(RPCError) -> Aftersales_V1_EvaluateInterventionResponse {
        try await call(RPCs.evaluateIntervention, request, options: options.with(deadline: deadline))
    }

    /// The consumer accepts or rejects the platform's proposal. `deadline` overrides `options.deadline`.
    public func respondToProposal(_ request: Aftersales_V1_RespondToProposalRequest = Aftersales_V1_RespondToProposalRequest(), deadline: Duration? = nil, options: CallOptions = CallOptions()) async throws(RPCError) -> Aftersales_V1_RespondToProposalResponse {
        try await call(RPCs.respondToProposal, request, options: options.with(deadline: deadline))
    }

    /// The merchant agrees to the original request. `deadline` overrides `options.deadline`.
    public func merchantAgree(_ request: Aftersales_V1_MerchantAgreeRequest = Aftersales_V1_MerchantAgreeRequest(), deadline: Duration? = nil, options: CallOptions = CallOptions()) async throws(RPCError) -> Aftersales_V1_MerchantAgreeResponse {
        try await call(RPCs.merchantAgree, request, options: options.with(deadline: deadline))
    }

    /// The merchant rejects the request. `deadline` overrides `options.deadline`.
    public func merchantReject(_ request: Aftersales_V1_MerchantRejectRequest = Aftersales_V1_MerchantRejectRequest(), deadline: Duration? = nil, options: CallOptions = CallOptions()) async throws(RPCError) -> Aftersales_V1_MerchantRejectResponse {
        try await call(RPCs.merchantReject, request, options: options.with(deadline: deadline))
    }

    /// The merchant offers something else (merchant-initiated negotiation). `deadline` overrides `options.deadline`.
    public func merchantOffer(_ request: Aftersales_V1_MerchantOfferRequest = Aftersales_V1_MerchantOfferRequest(), deadline: Duration? = nil, options: CallOptions = CallOptions()) async throws(RPCError) -> Aftersales_V1_MerchantOfferResponse {
        try await call(RPCs.merchantOffer, request, options: options.with(deadline: deadline))
    }

    /// The consumer accepts or rejects the merchant's offer. `deadline` overrides `options.deadline`.
    public func respondToOffer(_ request: Aftersales_V1_RespondToOfferRequest = Aftersales_V1_RespondToOfferRequest(), deadline: Duration? = nil, options: CallOptions = CallOptions()) async throws(RPCError) -> Aftersales_V1_RespondToOfferResponse {
        try await call(RPCs.respondToOffer, request, options: options.with(deadline: deadline))
    }

    /// The consumer escalates a rejected request to the platform. `deadline` overrides `options.deadline`.
    public func escalate(_ request: Aftersales_V1_EscalateRequest = Aftersales_V1_EscalateRequest(), deadline: Duration? = nil, options: CallOptions = CallOptions()) async throws(RPCError) -> Aftersales_V1_EscalateResponse {
        try await call(RPCs.escalate, request, options: options.with(deadline: deadline))
    }

    /// The platform rules in arbitration. `deadline` overrides `options.deadline`.
    public func platformResolve(_ request: Aftersales_V1_PlatformResolveRequest = Aftersales_V1_PlatformResolveRequest(), deadline: Duration? = nil, options: CallOptions = CallOptions()) async throws(RPCError) -> Aftersales_V1_PlatformResolveResponse {
        try await call(RPCs.platformResolve, request, options: options.with(deadline: deadline))
    }

    /// The consumer reports the return shipment. `deadline` overrides `options.deadline`.
    public func submitReturnShipment(_ request: Aftersales_V1_SubmitReturnShipmentRequest = Aftersales_V1_SubmitReturnShipmentRequest(), deadline: Duration? = nil, options: CallOptions = CallOptions()) async throws(RPCError) -> Aftersales_V1_SubmitReturnShipmentResponse {
        try await call(RPCs.submitReturnShipment, request, options: options.with(deadline: deadline))
    }

    /// The merchant confirms the returned goods arrived; the refund is made. `deadline` overrides `options.deadline`.
    public func confirmReturnReceived(_ request: Aftersales_V1_ConfirmReturnReceivedRequest = Aftersales_V1_ConfirmReturnReceivedRequest(), deadline: Duration? = nil, options: CallOptions = CallOptions()) async throws(RPCError) -> Aftersales_V1_ConfirmReturnReceivedResponse {
        try await call(RPCs.confirmReturnReceived, request, options: options.with(deadline: deadline))
    }

    /// The consumer withdraws the request. `deadline` overrides `options.deadline`.
    public func cancelCase(_ request: Aftersales_V1_CancelCaseRequest = Aftersales_V1_CancelCaseRequest(), deadline: Duration? = nil, options: CallOptions = CallOptions()) async throws(RPCError) -> Aftersales_V1_CancelCaseResponse {
        try await call(RPCs.cancelCase, request, options: options.with(deadline: deadline))
    }

    /// Liveness and round-trip time. `deadline` overrides `options.deadline`.
    public func ping(_ request: Aftersales_V1_PingRequest = Aftersales_V1_PingRequest(), deadline: Duration? = nil, options: CallOptions = CallOptions()) async throws(RPCError) -> Aftersales_V1_PingResponse {
        try await call(RPCs.ping, request, options: options.with(deadline: deadline))
    }

    /// The daemon's figures. `deadline` overrides `options.deadline`.
    public func getStats(_ request: Aftersales_V1_GetStatsRequest = Aftersales_V1_GetStatsRequest(), deadline: Duration? = nil, options: CallOptions = CallOptions()) async throws(RPCError) -> Aftersales_V1_GetStatsResponse {
        try await call(RPCs.getStats, request, options: options.with(deadline: deadline))
    }

    /// Writes a snapshot now; answered when it is on disk. `deadline` overrides `options.deadline`.
    public func takeSnapshot(_ request: Aftersales_V1_TakeSnapshotRequest = Aftersales_V1_TakeSnapshotRequest(), deadline: Duration? = nil, options: CallOptions = CallOptions()) async throws(RPCError) -> Aftersales_V1_TakeSnapshotResponse {
        try await call(RPCs.takeSnapshot, request, options: options.with(deadline: deadline))
    }

    /// Announcements again, by sequence number (OUT_OF_RANGE when too old). `deadline` overrides `options.deadline`.
    public func replayEvents(_ request: Aftersales_V1_ReplayEventsRequest = Aftersales_V1_ReplayEventsRequest(), deadline: Duration? = nil, options: CallOptions = CallOptions()) async throws(RPCError) -> Aftersales_V1_ReplayEventsResponse {
        try await call(RPCs.replayEvents, request, options: options.with(deadline: deadline))
    }
}

extension AfterSalesClient.Blocking {
    /// Opens a case (and runs the intervention judgement at once). Blocks until the answer.
    public func createCase(_ request: Aftersales_V1_CreateCaseRequest = Aftersales_V1_CreateCaseRequest(), deadline: Duration? = nil, options: CallOptions = CallOptions()) throws(RPCError) -> Aftersales_V1_CreateCaseResponse {
        try client.callSync(RPCs.createCase, request, options: options.with(deadline: deadline))
    }

    /// Reads one case with its history. Blocks until the answer.
    public func getCase(_ request: Aftersales_V1_GetCaseRequest = Aftersales_V1_GetCaseRequest(), deadline: Duration? = nil, options: CallOptions = CallOptions()) throws(RPCError) -> Aftersales_V1_GetCaseResponse {
        try client.callSync(RPCs.getCase, request, options: options.with(deadline: deadline))
    }

    /// Lists cases by filter, in case_id order, paged. Blocks until the answer.
    public func listCases(_ request: Aftersales_V1_ListCasesRequest = Aftersales_V1_ListCasesRequest(), deadline: Duration? = nil, options: CallOptions = CallOptions()) throws(RPCError) -> Aftersales_V1_ListCasesResponse {
        try client.callSync(RPCs.listCases, request, options: options.with(deadline: deadline))
    }

    /// The consumer adds evidence; the judgement runs again while the case is eligible. Blocks until the answer.
    public func addEvidence(_ request: Aftersales_V1_AddEvidenceRequest = Aftersales_V1_AddEvidenceRequest(), deadline: Duration? = nil, options: CallOptions = CallOptions()) throws(RPCError) -> Aftersales_V1_AddEvidenceResponse {
        try client.callSync(RPCs.addEvidence, request, options: options.with(deadline: deadline))
    }

    /// The logistics service reports a delivery change or anomalies. Blocks until the answer.
    public func updateLogistics(_ request: Aftersales_V1_UpdateLogisticsRequest = Aftersales_V1_UpdateLogisticsRequest(), deadline: Duration? = nil, options: CallOptions = CallOptions()) throws(RPCError) -> Aftersales_V1_UpdateLogisticsResponse {
        try client.callSync(RPCs.updateLogistics, request, options: options.with(deadline: deadline))
    }

    /// Dry run of the judgement on the case as it stands; changes nothing. Blocks until the answer.
    public func evaluateIntervention(_ request: Aftersales_V1_EvaluateInterventionRequest = Aftersales_V1_EvaluateInterventionRequest(), deadline: Duration? = nil, options: CallOptions = CallOptions()) throws(RPCError) -> Aftersales_V1_EvaluateInterventionResponse {
        try client.callSync(RPCs.evaluateIntervention, request, options: options.with(deadline: deadline))
    }

    /// The consumer accepts or rejects the platform's proposal. Blocks until the answer.
    public func respondToProposal(_ request: Aftersales_V1_RespondToProposalRequest = Aftersales_V1_RespondToProposalRequest(), deadline: Duration? = nil, options: CallOptions = CallOptions()) throws(RPCError) -> Aftersales_V1_RespondToProposalResponse {
        try client.callSync(RPCs.respondToProposal, request, options: options.with(deadline: deadline))
    }

    /// The merchant agrees to the original request. Blocks until the answer.
    public func merchantAgree(_ request: Aftersales_V1_MerchantAgreeRequest = Aftersales_V1_MerchantAgreeRequest(), deadline: Duration? = nil, options: CallOptions = CallOptions()) throws(RPCError) -> Aftersales_V1_MerchantAgreeResponse {
        try client.callSync(RPCs.merchantAgree, request, options: options.with(deadline: deadline))
    }

    /// The merchant rejects the request. Blocks until the answer.
    public func merchantReject(_ request: Aftersales_V1_MerchantRejectRequest = Aftersales_V1_MerchantRejectRequest(), deadline: Duration? = nil, options: CallOptions = CallOptions()) throws(RPCError) -> Aftersales_V1_MerchantRejectResponse {
        try client.callSync(RPCs.merchantReject, request, options: options.with(deadline: deadline))
    }

    /// The merchant offers something else (merchant-initiated negotiation). Blocks until the answer.
    public func merchantOffer(_ request: Aftersales_V1_MerchantOfferRequest = Aftersales_V1_MerchantOfferRequest(), deadline: Duration? = nil, options: CallOptions = CallOptions()) throws(RPCError) -> Aftersales_V1_MerchantOfferResponse {
        try client.callSync(RPCs.merchantOffer, request, options: options.with(deadline: deadline))
    }

    /// The consumer accepts or rejects the merchant's offer. Blocks until the answer.
    public func respondToOffer(_ request: Aftersales_V1_RespondToOfferRequest = Aftersales_V1_RespondToOfferRequest(), deadline: Duration? = nil, options: CallOptions = CallOptions()) throws(RPCError) -> Aftersales_V1_RespondToOfferResponse {
        try client.callSync(RPCs.respondToOffer, request, options: options.with(deadline: deadline))
    }

    /// The consumer escalates a rejected request to the platform. Blocks until the answer.
    public func escalate(_ request: Aftersales_V1_EscalateRequest = Aftersales_V1_EscalateRequest(), deadline: Duration? = nil, options: CallOptions = CallOptions()) throws(RPCError) -> Aftersales_V1_EscalateResponse {
        try client.callSync(RPCs.escalate, request, options: options.with(deadline: deadline))
    }

    /// The platform rules in arbitration. Blocks until the answer.
    public func platformResolve(_ request: Aftersales_V1_PlatformResolveRequest = Aftersales_V1_PlatformResolveRequest(), deadline: Duration? = nil, options: CallOptions = CallOptions()) throws(RPCError) -> Aftersales_V1_PlatformResolveResponse {
        try client.callSync(RPCs.platformResolve, request, options: options.with(deadline: deadline))
    }

    /// The consumer reports the return shipment. Blocks until the answer.
    public func submitReturnShipment(_ request: Aftersales_V1_SubmitReturnShipmentRequest = Aftersales_V1_SubmitReturnShipmentRequest(), deadline: Duration? = nil, options: CallOptions = CallOptions()) throws(RPCError) -> Aftersales_V1_SubmitReturnShipmentResponse {
        try client.callSync(RPCs.submitReturnShipment, request, options: options.with(deadline: deadline))
    }

    /// The merchant confirms the returned goods arrived; the refund is made. Blocks until the answer.
    public func confirmReturnReceived(_ request: Aftersales_V1_ConfirmReturnReceivedRequest = Aftersales_V1_ConfirmReturnReceivedRequest(), deadline: Duration? = nil, options: CallOptions = CallOptions()) throws(RPCError) -> Aftersales_V1_ConfirmReturnReceivedResponse {
        try client.callSync(RPCs.confirmReturnReceived, request, options: options.with(deadline: deadline))
    }

    /// The consumer withdraws the request. Blocks until the answer.
    public func cancelCase(_ request: Aftersales_V1_CancelCaseRequest = Aftersales_V1_CancelCaseRequest(), deadline: Duration? = nil, options: CallOptions = CallOptions()) throws(RPCError) -> Aftersales_V1_CancelCaseResponse {
        try client.callSync(RPCs.cancelCase, request, options: options.with(deadline: deadline))
    }

    /// Liveness and round-trip time. Blocks until the answer.
    public func ping(_ request: Aftersales_V1_PingRequest = Aftersales_V1_PingRequest(), deadline: Duration? = nil, options: CallOptions = CallOptions()) throws(RPCError) -> Aftersales_V1_PingResponse {
        try client.callSync(RPCs.ping, request, options: options.with(deadline: deadline))
    }

    /// The daemon's figures. Blocks until the answer.
    public func getStats(_ request: Aftersales_V1_GetStatsRequest = Aftersales_V1_GetStatsRequest(), deadline: Duration? = nil, options: CallOptions = CallOptions()) throws(RPCError) -> Aftersales_V1_GetStatsResponse {
        try client.callSync(RPCs.getStats, request, options: options.with(deadline: deadline))
    }

    /// Writes a snapshot now; answered when it is on disk. Blocks until the answer.
    public func takeSnapshot(_ request: Aftersales_V1_TakeSnapshotRequest = Aftersales_V1_TakeSnapshotRequest(), deadline: Duration? = nil, options: CallOptions = CallOptions()) throws(RPCError) -> Aftersales_V1_TakeSnapshotResponse {
        try client.callSync(RPCs.takeSnapshot, request, options: options.with(deadline: deadline))
    }

    /// Announcements again, by sequence number (OUT_OF_RANGE when too old). Blocks until the answer.
    public func replayEvents(_ request: Aftersales_V1_ReplayEventsRequest = Aftersales_V1_ReplayEventsRequest(), deadline: Duration? = nil, options: CallOptions = CallOptions()) throws(RPCError) -> Aftersales_V1_ReplayEventsResponse {
        try client.callSync(RPCs.replayEvents, request, options: options.with(deadline: deadline))
    }
}
