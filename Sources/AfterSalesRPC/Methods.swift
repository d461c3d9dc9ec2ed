import AfterSalesProto
import SwiftProtobuf

/// Every RPC of the contract, by its gRPC-style full name on the wire.
///
/// protoc-gen-swift ignores `service` blocks, so this table is written here and
/// `MethodTableTests` checks it against the services in a descriptor set that protoc
/// builds from proto/ at test time: a method added, renamed or retyped in the .proto
/// without this table following fails the tests.
public enum Method: String, CaseIterable, Sendable {
    case createCase = "aftersales.v1.CaseService/CreateCase"
    case getCase = "aftersales.v1.CaseService/GetCase"
    case listCases = "aftersales.v1.CaseService/ListCases"
    case addEvidence = "aftersales.v1.CaseService/AddEvidence"
    case updateLogistics = "aftersales.v1.CaseService/UpdateLogistics"
    case evaluateIntervention = "aftersales.v1.CaseService/EvaluateIntervention"
    case respondToProposal = "aftersales.v1.CaseService/RespondToProposal"
    case merchantAgree = "aftersales.v1.CaseService/MerchantAgree"
    case merchantReject = "aftersales.v1.CaseService/MerchantReject"
    case merchantOffer = "aftersales.v1.CaseService/MerchantOffer"
    case respondToOffer = "aftersales.v1.CaseService/RespondToOffer"
    case escalate = "aftersales.v1.CaseService/Escalate"
    case platformResolve = "aftersales.v1.CaseService/PlatformResolve"
    case submitReturnShipment = "aftersales.v1.CaseService/SubmitReturnShipment"
    case confirmReturnReceived = "aftersales.v1.CaseService/ConfirmReturnReceived"
    case cancelCase = "aftersales.v1.CaseService/CancelCase"
    case ping = "aftersales.v1.AdminService/Ping"
    case getStats = "aftersales.v1.AdminService/GetStats"
    case takeSnapshot = "aftersales.v1.AdminService/TakeSnapshot"
    case replayEvents = "aftersales.v1.AdminService/ReplayEvents"

    /// The full name on the wire, e.g. "aftersales.v1.CaseService/CreateCase".
    public var fullName: String { rawValue }

    /// The service part of the name, e.g. "aftersales.v1.CaseService".
    public var serviceName: Substring { rawValue[..<rawValue.firstIndex(of: "/")!] }

    /// The method part of the name, e.g. "CreateCase".
    public var methodName: Substring { rawValue[rawValue.index(after: rawValue.firstIndex(of: "/")!)...] }

    /// Looks a method up by its full wire name; nil for a name the contract does not have.
    public init?(fullName: String) { self.init(rawValue: fullName) }

    /// Looks a method up by its short name ("CreateCase") or full name, case-insensitively.
    public static func named(_ name: String) -> Method? {
        if let exact = Method(rawValue: name) { return exact }
        let wanted = name.lowercased()
        return allCases.first { $0.methodName.lowercased() == wanted || $0.rawValue.lowercased() == wanted }
    }

    /// Whether the call changes state (and so is journaled and honours idempotency keys).
    public var isMutating: Bool {
        switch self {
        case .getCase, .listCases, .evaluateIntervention, .ping, .getStats, .takeSnapshot, .replayEvents:
            return false
        default:
            return true
        }
    }

    /// The request message type.
    public var requestType: any SwiftProtobuf.Message.Type {
        switch self {
        case .createCase: Aftersales_V1_CreateCaseRequest.self
        case .getCase: Aftersales_V1_GetCaseRequest.self
        case .listCases: Aftersales_V1_ListCasesRequest.self
        case .addEvidence: Aftersales_V1_AddEvidenceRequest.self
        case .updateLogistics: Aftersales_V1_UpdateLogisticsRequest.self
        case .evaluateIntervention: Aftersales_V1_EvaluateInterventionRequest.self
        case .respondToProposal: Aftersales_V1_RespondToProposalRequest.self
        case .merchantAgree: Aftersales_V1_MerchantAgreeRequest.self
        case .merchantReject: Aftersales_V1_MerchantRejectRequest.self
        case .merchantOffer: Aftersales_V1_MerchantOfferRequest.self
        case .respondToOffer: Aftersales_V1_RespondToOfferRequest.self
        case .escalate: Aftersales_V1_EscalateRequest.self
        case .platformResolve: Aftersales_V1_PlatformResolveRequest.self
        case .submitReturnShipment: Aftersales_V1_SubmitReturnShipmentRequest.self
        case .confirmReturnReceived: Aftersales_V1_ConfirmReturnReceivedRequest.self
        case .cancelCase: Aftersales_V1_CancelCaseRequest.self
        case .ping: Aftersales_V1_PingRequest.self
        case .getStats: Aftersales_V1_GetStatsRequest.self
        case .takeSnapshot: Aftersales_V1_TakeSnapshotRequest.self
        case .replayEvents: Aftersales_V1_ReplayEventsRequest.self
        }
    }

    /// The response message type.
    public var responseType: any SwiftProtobuf.Message.Type {
        switch self {
        case .createCase: Aftersales_V1_CreateCaseResponse.self
        case .getCase: Aftersales_V1_GetCaseResponse.self
        case .listCases: Aftersales_V1_ListCasesResponse.self
        case .addEvidence: Aftersales_V1_AddEvidenceResponse.self
        case .updateLogistics: Aftersales_V1_UpdateLogisticsResponse.self
        case .evaluateIntervention: Aftersales_V1_EvaluateInterventionResponse.self
        case .respondToProposal: Aftersales_V1_RespondToProposalResponse.self
        case .merchantAgree: Aftersales_V1_MerchantAgreeResponse.self
        case .merchantReject: Aftersales_V1_MerchantRejectResponse.self
        case .merchantOffer: Aftersales_V1_MerchantOfferResponse.self
        case .respondToOffer: Aftersales_V1_RespondToOfferResponse.self
        case .escalate: Aftersales_V1_EscalateResponse.self
        case .platformResolve: Aftersales_V1_PlatformResolveResponse.self
        case .submitReturnShipment: Aftersales_V1_SubmitReturnShipmentResponse.self
        case .confirmReturnReceived: Aftersales_V1_ConfirmReturnReceivedResponse.self
        case .cancelCase: Aftersales_V1_CancelCaseResponse.self
        case .ping: Aftersales_V1_PingResponse.self
        case .getStats: Aftersales_V1_GetStatsResponse.self
        case .takeSnapshot: Aftersales_V1_TakeSnapshotResponse.self
        case .replayEvents: Aftersales_V1_ReplayEventsResponse.self
        }
    }
}

/// A method with its request and response types bound, for typed clients.
public struct RPC<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>: Sendable {
    /// The method this describes.
    public let method: Method

    init(_ method: Method) {
        precondition(method.requestType == Request.self && method.responseType == Response.self,
                     "RPC table types disagree with Method for \(method.rawValue)")
        self.method = method
    }
}

/// The typed form of every method, so a client cannot pair a request with the wrong method.
public enum RPCs {
    public static let createCase = RPC<Aftersales_V1_CreateCaseRequest, Aftersales_V1_CreateCaseResponse>(.createCase)
    public static let getCase = RPC<Aftersales_V1_GetCaseRequest, Aftersales_V1_GetCaseResponse>(.getCase)
    public static let listCases = RPC<Aftersales_V1_ListCasesRequest, Aftersales_V1_ListCasesResponse>(.listCases)
    public static let addEvidence = RPC<Aftersales_V1_AddEvidenceRequest, Aftersales_V1_AddEvidenceResponse>(.addEvidence)
    public static let updateLogistics = RPC<Aftersales_V1_UpdateLogisticsRequest, Aftersales_V1_UpdateLogisticsResponse>(.updateLogistics)
    public static let evaluateIntervention = RPC<Aftersales_V1_EvaluateInterventionRequest, Aftersales_V1_EvaluateInterventionResponse>(.evaluateIntervention)
    public static let respondToProposal = RPC<Aftersales_V1_RespondToProposalRequest, Aftersales_V1_RespondToProposalResponse>(.respondToProposal)
    public static let merchantAgree = RPC<Aftersales_V1_MerchantAgreeRequest, Aftersales_V1_MerchantAgreeResponse>(.merchantAgree)
    public static let merchantReject = RPC<Aftersales_V1_MerchantRejectRequest, Aftersales_V1_MerchantRejectResponse>(.merchantReject)
    public static let merchantOffer = RPC<Aftersales_V1_MerchantOfferRequest, Aftersales_V1_MerchantOfferResponse>(.merchantOffer)
    public static let respondToOffer = RPC<Aftersales_V1_RespondToOfferRequest, Aftersales_V1_RespondToOfferResponse>(.respondToOffer)
    public static let escalate = RPC<Aftersales_V1_EscalateRequest, Aftersales_V1_EscalateResponse>(.escalate)
    public static let platformResolve = RPC<Aftersales_V1_PlatformResolveRequest, Aftersales_V1_PlatformResolveResponse>(.platformResolve)
    public static let submitReturnShipment = RPC<Aftersales_V1_SubmitReturnShipmentRequest, Aftersales_V1_SubmitReturnShipmentResponse>(.submitReturnShipment)
    public static let confirmReturnReceived = RPC<Aftersales_V1_ConfirmReturnReceivedRequest, Aftersales_V1_ConfirmReturnReceivedResponse>(.confirmReturnReceived)
    public static let cancelCase = RPC<Aftersales_V1_CancelCaseRequest, Aftersales_V1_CancelCaseResponse>(.cancelCase)
    public static let ping = RPC<Aftersales_V1_PingRequest, Aftersales_V1_PingResponse>(.ping)
    public static let getStats = RPC<Aftersales_V1_GetStatsRequest, Aftersales_V1_GetStatsResponse>(.getStats)
    public static let takeSnapshot = RPC<Aftersales_V1_TakeSnapshotRequest, Aftersales_V1_TakeSnapshotResponse>(.takeSnapshot)
    public static let replayEvents = RPC<Aftersales_V1_ReplayEventsRequest, Aftersales_V1_ReplayEventsResponse>(.replayEvents)
}
