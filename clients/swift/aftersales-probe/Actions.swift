import AfterSalesClient
import AfterSalesProto
import AfterSalesRPC
import ArgumentParser

// The steps that change a case: one subcommand per action of the contract. Each prints the
// case as it stands afterwards (or, with --json, the response message).

struct Create: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Open a case; prints it with the judgement made at creation.")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var step: StepOptions
    @Option(help: "The order id.") var order: String
    @Option(help: "The order line (optional).") var line: String = ""
    @Option(help: "The consumer id.") var consumer: String
    @Option(help: "The merchant id.") var merchant: String
    @Option(help: "The category code, e.g. apparel.") var category: String
    @Option(help: "What the consumer asks for (\(enumChoices(Aftersales_V1_CaseType.self))).") var type: CaseTypeArgument = .init(argument: "refund-only")!
    @Option(help: "Where the goods are (\(enumChoices(Aftersales_V1_DeliveryState.self))).") var delivery: DeliveryArgument = .init(argument: "signed")!
    // Signed amounts take the next word unconditionally: argument-parser would read "-5" as
    // an option, and the daemon, not the parser, should say why a negative amount is wrong.
    @Option(parsing: .unconditional, help: "What was paid, in minor units (cents).") var paid: Int64
    @Option(parsing: .unconditional, help: "What is asked back, in minor units (default: all of --paid).") var refund: Int64?
    @Option(help: "The consumer's reason.") var reason: String = ""
    @Option(help: "Evidence as KIND:TAG[,TAG...][:DESCRIPTION], e.g. photo:defect,damage (repeatable).") var evidence: [EvidenceArgument] = []
    @Option(help: "A logistics anomaly (\(enumChoices(Aftersales_V1_LogisticsAnomaly.self))); repeatable.") var anomaly: [AnomalyArgument] = []
    @Option(help: "The merchant's violations in the last 90 days.") var merchantViolations: UInt32 = 0
    @Option(help: "The merchant's complaint rate in basis points (150 = 1.5 %).") var complaintRateBp: UInt32 = 0
    @Option(help: "The consumer's refund-only requests in the last 30 days.") var refundOnlyCount: UInt32 = 0

    func run() async throws {
        var request = Aftersales_V1_CreateCaseRequest()
        request.orderID = order
        request.orderLineID = line
        request.consumerID = consumer
        request.merchantID = merchant
        request.category = category
        request.type = type.value
        request.delivery = delivery.value
        request.paidAmount = paid
        request.refundAmount = refund ?? paid
        request.reason = reason
        request.signals.evidence = evidence.map(\.evidence)
        request.signals.logisticsAnomalies = anomaly.map(\.value)
        request.signals.merchantViolations90D = merchantViolations
        request.signals.merchantComplaintRateBp = complaintRateBp
        request.signals.consumerRefundOnlyCount30D = refundOnlyCount
        try await global.step(RPCs.createCase, request, step) { describe($0.case, history: false) + "\n" + describe($0.judgement) }
    }
}

struct Evidence: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The consumer adds evidence; the judgement runs again.")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var step: StepOptions
    @Argument(help: "The case id.") var caseID: String
    @Option(help: "The case's consumer.") var consumer: String
    @Option(help: "The evidence as KIND:TAG[,TAG...][:DESCRIPTION].") var evidence: EvidenceArgument
    @Option(help: "Where the media is stored.") var uri: String = ""

    func run() async throws {
        var request = Aftersales_V1_AddEvidenceRequest()
        request.caseID = caseID
        request.consumerID = consumer
        request.evidence = evidence.evidence
        request.evidence.uri = uri
        request.expectedVersion = step.expectedVersion
        try await global.step(RPCs.addEvidence, request, step) { describe($0.case, history: false) + "\n" + describe($0.judgement) }
    }
}

struct Logistics: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Report a delivery change or logistics anomalies; the judgement runs again.")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var step: StepOptions
    @Argument(help: "The case id.") var caseID: String
    @Option(help: "The new delivery state.") var delivery: DeliveryArgument?
    @Option(help: "An anomaly to add; repeatable.") var anomaly: [AnomalyArgument] = []

    func run() async throws {
        var request = Aftersales_V1_UpdateLogisticsRequest()
        request.caseID = caseID
        request.delivery = delivery?.value ?? .unspecified
        request.anomalies = anomaly.map(\.value)
        request.expectedVersion = step.expectedVersion
        try await global.step(RPCs.updateLogistics, request, step) { describe($0.case, history: false) + "\n" + describe($0.judgement) }
    }
}

struct Evaluate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Dry run of the intervention judgement, with its reasons; changes nothing.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The case id.") var caseID: String

    func run() async throws {
        try await global.run { client in
            let response = try await client.evaluateIntervention(.with { $0.caseID = caseID })
            try global.emit(response) { describe(response.judgement) }
        }
    }
}

/// accept / reject as a command-line word.
enum Answer: String, ExpressibleByArgument, CaseIterable {
    case accept, reject
    var decision: Aftersales_V1_Decision { self == .accept ? .accept : .reject }
}

struct ProposalCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "proposal", abstract: "The consumer accepts or rejects the platform's proposal.")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var step: StepOptions
    @Argument(help: "accept or reject.") var answer: Answer
    @Argument(help: "The case id.") var caseID: String
    @Option(help: "The case's consumer.") var consumer: String

    func run() async throws {
        var request = Aftersales_V1_RespondToProposalRequest()
        request.caseID = caseID
        request.consumerID = consumer
        request.decision = answer.decision
        request.expectedVersion = step.expectedVersion
        try await global.step(RPCs.respondToProposal, request, step) { describe($0.case, history: false) }
    }
}

struct OfferCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "offer", abstract: "The consumer accepts or rejects the merchant's offer.")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var step: StepOptions
    @Argument(help: "accept or reject.") var answer: Answer
    @Argument(help: "The case id.") var caseID: String
    @Option(help: "The case's consumer.") var consumer: String

    func run() async throws {
        var request = Aftersales_V1_RespondToOfferRequest()
        request.caseID = caseID
        request.consumerID = consumer
        request.decision = answer.decision
        request.expectedVersion = step.expectedVersion
        try await global.step(RPCs.respondToOffer, request, step) { describe($0.case, history: false) }
    }
}

struct MerchantCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merchant", abstract: "The merchant's steps: agree, reject, offer.",
        subcommands: [Agree.self, Reject.self, Offer.self])

    struct Agree: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The merchant agrees to the original request.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var step: StepOptions
        @Argument(help: "The case id.") var caseID: String
        @Option(help: "The case's merchant.") var merchant: String
        @Option(help: "A note.") var note: String = ""

        func run() async throws {
            var request = Aftersales_V1_MerchantAgreeRequest()
            request.caseID = caseID
            request.merchantID = merchant
            request.note = note
            request.expectedVersion = step.expectedVersion
            try await global.step(RPCs.merchantAgree, request, step) { describe($0.case, history: false) }
        }
    }

    struct Reject: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The merchant rejects the request (refused while a proposal is pending).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var step: StepOptions
        @Argument(help: "The case id.") var caseID: String
        @Option(help: "The case's merchant.") var merchant: String
        @Option(help: "Why (required).") var reason: String

        func run() async throws {
            var request = Aftersales_V1_MerchantRejectRequest()
            request.caseID = caseID
            request.merchantID = merchant
            request.reason = reason
            request.expectedVersion = step.expectedVersion
            try await global.step(RPCs.merchantReject, request, step) { describe($0.case, history: false) }
        }
    }

    struct Offer: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The merchant offers something else (商家主动协商).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var step: StepOptions
        @Argument(help: "The case id.") var caseID: String
        @Option(help: "The case's merchant.") var merchant: String
        @Option(help: "What is offered (refund-only, return-and-refund).") var type: CaseTypeArgument
        @Option(parsing: .unconditional, help: "The refund offered, in minor units.") var refund: Int64
        @Option(help: "Who pays the return shipping (consumer, merchant); for return-and-refund.") var shippingPayer: ShippingPayerArgument?
        @Option(help: "A note.") var note: String = ""

        func run() async throws {
            var request = Aftersales_V1_MerchantOfferRequest()
            request.caseID = caseID
            request.merchantID = merchant
            request.type = type.value
            request.refundAmount = refund
            request.returnShippingPayer = shippingPayer?.value ?? .unspecified
            request.note = note
            request.expectedVersion = step.expectedVersion
            try await global.step(RPCs.merchantOffer, request, step) { describe($0.case, history: false) }
        }
    }
}

struct Escalate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The consumer escalates a rejected request to the platform.")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var step: StepOptions
    @Argument(help: "The case id.") var caseID: String
    @Option(help: "The case's consumer.") var consumer: String
    @Option(help: "A note.") var note: String = ""

    func run() async throws {
        var request = Aftersales_V1_EscalateRequest()
        request.caseID = caseID
        request.consumerID = consumer
        request.note = note
        request.expectedVersion = step.expectedVersion
        try await global.step(RPCs.escalate, request, step) { describe($0.case, history: false) }
    }
}

struct Resolve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The platform rules in arbitration.")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var step: StepOptions
    @Argument(help: "The case id.") var caseID: String
    @Option(help: "The operator making the ruling.") var `operator`: String
    @Option(help: "The ruling (\(enumChoices(Aftersales_V1_Ruling.self))).") var ruling: RulingArgument
    @Option(help: "A note.") var note: String = ""

    func run() async throws {
        var request = Aftersales_V1_PlatformResolveRequest()
        request.caseID = caseID
        request.operatorID = `operator`
        request.ruling = ruling.value
        request.note = note
        request.expectedVersion = step.expectedVersion
        try await global.step(RPCs.platformResolve, request, step) { describe($0.case, history: false) }
    }
}

struct ReturnCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "return", abstract: "The return of the goods: ship (consumer), receive (merchant).",
        subcommands: [Ship.self, Receive.self])

    struct Ship: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The consumer reports the return shipment.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var step: StepOptions
        @Argument(help: "The case id.") var caseID: String
        @Option(help: "The case's consumer.") var consumer: String
        @Option(help: "The carrier.") var carrier: String
        @Option(help: "The tracking number.") var tracking: String

        func run() async throws {
            var request = Aftersales_V1_SubmitReturnShipmentRequest()
            request.caseID = caseID
            request.consumerID = consumer
            request.carrier = carrier
            request.trackingNumber = tracking
            request.expectedVersion = step.expectedVersion
            try await global.step(RPCs.submitReturnShipment, request, step) { describe($0.case, history: false) }
        }
    }

    struct Receive: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The merchant confirms the goods arrived; the refund is made.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var step: StepOptions
        @Argument(help: "The case id.") var caseID: String
        @Option(help: "The case's merchant.") var merchant: String

        func run() async throws {
            var request = Aftersales_V1_ConfirmReturnReceivedRequest()
            request.caseID = caseID
            request.merchantID = merchant
            request.expectedVersion = step.expectedVersion
            try await global.step(RPCs.confirmReturnReceived, request, step) { describe($0.case, history: false) }
        }
    }
}

struct Cancel: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The consumer withdraws the request.")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var step: StepOptions
    @Argument(help: "The case id.") var caseID: String
    @Option(help: "The case's consumer.") var consumer: String
    @Option(help: "A note.") var note: String = ""

    func run() async throws {
        var request = Aftersales_V1_CancelCaseRequest()
        request.caseID = caseID
        request.consumerID = consumer
        request.note = note
        request.expectedVersion = step.expectedVersion
        try await global.step(RPCs.cancelCase, request, step) { describe($0.case, history: false) }
    }
}
