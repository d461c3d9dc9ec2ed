import AfterSalesProto
import AfterSalesRPC
import Foundation
import Testing

/// The article's scenarios, end to end over real sockets against a real aftersalesd.
@Suite(.serialized) struct ScenarioTests {
    @Test func proposalIssuedOnCreateThenAccepted() throws {
        let daemon = try DaemonProcess(arguments: ["--proposal-ttl", "30s"])
        defer { daemon.stop() }
        let caller = try TestCaller(daemon.rpc)
        let created = try caller.call(RPCs.createCase, interventionCase())
        #expect(created.case.status == .proposalPending)
        #expect(created.judgement.intervene && created.judgement.issueKind == .quality)
        #expect(created.case.proposal.expiresAtMs - created.case.proposal.issuedAtMs == 30_000)
        #expect(created.case.caseID.hasPrefix("AS"))

        let accepted = try caller.call(RPCs.respondToProposal, .with {
            $0.caseID = created.case.caseID
            $0.consumerID = "C1"
            $0.decision = .accept
        })
        #expect(accepted.case.status == .awaitingReturnShipment)
        #expect(accepted.case.type == .returnAndRefund)
        #expect(accepted.case.returnShippingPayer == .merchant)
        #expect(accepted.case.proposal.state == .accepted)
    }

    @Test func proposalRejectedThenMerchantReviews() throws {
        let daemon = try DaemonProcess()
        defer { daemon.stop() }
        let caller = try TestCaller(daemon.rpc)
        let created = try caller.call(RPCs.createCase, interventionCase())
        let rejected = try caller.call(RPCs.respondToProposal, .with {
            $0.caseID = created.case.caseID
            $0.consumerID = "C1"
            $0.decision = .reject
        })
        #expect(rejected.case.status == .awaitingMerchantReview)
        #expect(rejected.case.proposal.state == .rejected)
        let reviewed = try caller.call(RPCs.merchantReject, .with {
            $0.caseID = created.case.caseID
            $0.merchantID = "M1"
            $0.reason = "item was used"
        })
        #expect(reviewed.case.status == .merchantRejected)
    }

    @Test func merchantMayOnlyAgreeWhileProposalPending() throws {
        let daemon = try DaemonProcess()
        defer { daemon.stop() }
        let caller = try TestCaller(daemon.rpc)
        let created = try caller.call(RPCs.createCase, interventionCase())
        let id = created.case.caseID

        let reject = try caller.failure(RPCs.merchantReject, .with { $0.caseID = id; $0.merchantID = "M1"; $0.reason = "no" })
        #expect(reject.code == .failedPrecondition)
        #expect(reject.message.contains("pending until"))
        let offer = try caller.failure(RPCs.merchantOffer, .with {
            $0.caseID = id; $0.merchantID = "M1"; $0.type = .refundOnly; $0.refundAmount = 5_000
        })
        #expect(offer.code == .failedPrecondition)
        let wrongMerchant = try caller.failure(RPCs.merchantAgree, .with { $0.caseID = id; $0.merchantID = "M2" })
        #expect(wrongMerchant.code == .permissionDenied)
        #expect(try caller.call(RPCs.getCase, .with { $0.caseID = id }).case.version == created.case.version)

        let agreed = try caller.call(RPCs.merchantAgree, .with { $0.caseID = id; $0.merchantID = "M1" })
        #expect(agreed.case.status == .refunded)
        #expect(agreed.case.proposal.state == .superseded)
        let late = try caller.failure(RPCs.cancelCase, .with { $0.caseID = id; $0.consumerID = "C1" })
        #expect(late.code == .failedPrecondition)
    }

    @Test func expiryNoticeReachesSubscribersAtTheDeadline() throws {
        let daemon = try DaemonProcess(arguments: ["--proposal-ttl", "300ms"])
        defer { daemon.stop() }
        let subscriber = try TestSubscriber(daemon.pub, prefixes: ["proposal."])
        let caller = try TestCaller(daemon.rpc)
        let created = try caller.call(RPCs.createCase, interventionCase())
        let expiresAt = created.case.proposal.expiresAtMs

        var issued: EventEnvelope?
        var expired: EventEnvelope?
        var arrival: Int64 = 0
        while expired == nil, let (topic, event) = try subscriber.next(timeoutMs: 3_000) {
            if topic == "proposal.issued" { issued = event }
            if topic == "proposal.expired" {
                arrival = nowMs()
                expired = event
            }
        }
        let notice = try #require(expired, "no proposal.expired within 3 s")
        #expect(notice.caseID == created.case.caseID)
        #expect(notice.case.status == .awaitingMerchantReview)
        #expect(notice.case.proposal.state == .expired)
        #expect(!notice.late)
        #expect(arrival >= expiresAt)
        #expect(arrival - expiresAt <= 50, "expiry notice arrived \(arrival - expiresAt) ms after expires_at")
        if let issued { #expect(notice.seq > issued.seq) }

        // After expiry the merchant reviews the original request as usual.
        let reviewed = try caller.call(RPCs.merchantAgree, .with { $0.caseID = created.case.caseID; $0.merchantID = "M1" })
        #expect(reviewed.case.status == .refunded)
    }

    @Test func noInterventionForExcludedCategoriesAndEvaluateExplainsWhy() throws {
        let daemon = try DaemonProcess()
        defer { daemon.stop() }
        let caller = try TestCaller(daemon.rpc)
        let created = try caller.call(RPCs.createCase, interventionCase(category: "live_pets"))
        #expect(created.case.status == .awaitingMerchantReview)
        #expect(!created.judgement.intervene)
        #expect(created.judgement.reasons.contains("EXCLUDED_CATEGORY"))
        let evaluated = try caller.call(RPCs.evaluateIntervention, .with { $0.caseID = created.case.caseID })
        #expect(evaluated.judgement.reasons.contains("EXCLUDED_CATEGORY"))
        #expect(try caller.call(RPCs.getCase, .with { $0.caseID = created.case.caseID }).case.version == created.case.version)
    }

    @Test func listCasesFiltersAndPages() throws {
        let daemon = try DaemonProcess()
        defer { daemon.stop() }
        let caller = try TestCaller(daemon.rpc)
        for i in 0..<7 { _ = try caller.call(RPCs.createCase, plainCase(order: "L\(i)", merchant: i % 2 == 0 ? "ME" : "MO")) }
        var seen: [String] = []
        var token = ""
        repeat {
            let page = try caller.call(RPCs.listCases, .with { $0.merchantID = "ME"; $0.pageSize = 2; $0.pageToken = token })
            #expect(page.cases.allSatisfy { $0.merchantID == "ME" && $0.history.isEmpty })
            seen += page.cases.map(\.caseID)
            token = page.nextPageToken
        } while !token.isEmpty
        #expect(seen.count == 4 && seen == seen.sorted())
        let bad = try caller.failure(RPCs.listCases, .with { $0.pageSize = 5_000 })
        #expect(bad.code == .invalidArgument && bad.message.contains("page_size"))
    }
}
