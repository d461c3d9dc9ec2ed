import AfterSalesTestSupport
import CaseEngine
import Testing

/// Long random command sequences; the invariants of SPEC.md hold after every step.
@Suite struct PropertyTests {
    static let consumers = ["c1", "c2", "c3"]
    static let merchants = ["m1", "m2"]
    static let categories = ["apparel", "electronics", "fresh_produce", "live_pets", "flowers_horticulture", ""]

    struct Run {
        let seed: UInt64
        var rng: SplitMix64
        var store = CaseStore()
        var now: Millis = Fixture.t0
        var versions: [String: UInt64] = [:]

        init(seed: UInt64) {
            self.seed = seed
            rng = SplitMix64(seed: seed)
        }

        mutating func pick<T>(_ items: [T]) -> T { items.randomElement(using: &rng)! }
        mutating func chance(_ percent: Int) -> Bool { Int.random(in: 0..<100, using: &rng) < percent }

        mutating func randomEvidence() -> Evidence {
            let tags = (0..<Int.random(in: 0...2, using: &rng)).map { _ in pick(IssueTag.allCases) }
            return Evidence(kind: pick(EvidenceKind.allCases), tags: tags, addedAt: 0)
        }

        mutating func randomCreate() -> Request {
            let paid = Int64.random(in: 0...20_000, using: &rng)
            let refund = chance(60) ? paid : Int64.random(in: -10...21_000, using: &rng)
            let signals = Signals(
                logisticsAnomalies: chance(30) ? [pick(LogisticsAnomaly.allCases)] : [],
                evidence: (0..<Int.random(in: 0...2, using: &rng)).map { _ in randomEvidence() },
                merchantViolations90d: UInt32.random(in: 0...5, using: &rng),
                merchantComplaintRateBasisPoints: UInt32.random(in: 0...600, using: &rng),
                consumerRefundOnlyCount30d: UInt32.random(in: 0...8, using: &rng))
            let new = NewCase(
                orderID: "o\(Int.random(in: 0..<8, using: &rng))", orderLineID: pick(["", "1", "2"]),
                consumerID: pick(Self.consumersList), merchantID: pick(Self.merchantsList), category: pick(PropertyTests.categories),
                type: chance(95) ? pick(CaseType.allCases) : nil,
                delivery: chance(95) ? pick(DeliveryState.allCases) : nil,
                paidAmount: paid, refundAmount: refund, signals: signals)
            let actorID = chance(90) ? new.consumerID : pick(Self.consumersList)
            return Request(caseID: nil, actor: chance(95) ? .consumer : pick(Party.allCases), actorID: actorID, command: .create(new))
        }

        static let consumersList = PropertyTests.consumers
        static let merchantsList = PropertyTests.merchants

        mutating func randomCommand() -> Command {
            switch Int.random(in: 0..<14, using: &rng) {
            case 0: return .addEvidence(NewEvidence(kind: chance(95) ? pick(EvidenceKind.allCases) : nil, tags: randomEvidence().tags))
            case 1: return .updateLogistics(delivery: chance(50) ? pick(DeliveryState.allCases) : nil,
                                            anomalies: chance(50) ? [pick(LogisticsAnomaly.allCases)] : [])
            case 2: return .respondToProposal(pick(Decision.allCases))
            case 3: return .merchantAgree(note: "")
            case 4: return .merchantReject(reason: chance(90) ? "no" : "")
            case 5:
                let type: CaseType? = chance(95) ? pick(CaseType.allCases) : nil
                return .merchantOffer(OfferTerms(type: type, refundAmount: Int64.random(in: -5...21_000, using: &rng),
                                                 returnShippingPayer: chance(80) ? pick(ShippingPayer.allCases) : nil))
            case 6: return .respondToOffer(pick(Decision.allCases))
            case 7: return .escalate(note: "")
            case 8: return .platformResolve(pick(Ruling.allCases), note: "")
            case 9: return .submitReturnShipment(carrier: chance(90) ? "SF" : "", trackingNumber: "T1")
            case 10: return .confirmReturnReceived
            case 11: return .cancel(note: "")
            default: return .fireDeadline(pick(DeadlineKind.allCases))
            }
        }

        mutating func randomRequest() -> Request {
            let ids = Array(store.cases.keys)
            let caseID = ids.isEmpty || chance(3) ? "AS9999999999" : pick(ids)
            let command = randomCommand()
            let subject = store[caseID]
            // Mostly the right party and id, so that the machine actually moves.
            var actor = command.requiredParty
            if chance(10) { actor = pick(Party.allCases) }
            var actorID: String
            switch actor {
            case .consumer: actorID = subject?.consumerID ?? "c1"
            case .merchant: actorID = subject?.merchantID ?? "m1"
            case .platform: actorID = "op"
            case .system: actorID = ""
            }
            if chance(8) { actorID = pick(Self.consumersList + Self.merchantsList) }
            var version: UInt64? = nil
            if chance(15), let subject { version = chance(70) ? subject.version : subject.version &- 1 }
            return Request(caseID: caseID, actor: actor, actorID: actorID, expectedVersion: version, command: command)
        }

        mutating func step(_ index: Int) {
            let context = "seed \(seed) step \(index)"
            let before = store
            if chance(15) {
                now += Millis.random(in: 0...(30 * TimeSpan.hour), using: &rng)
                let outcomes = store.fireDueDeadlines(now: now)
                for outcome in outcomes {
                    #expect(outcome.case.history.last?.actor == .system, "\(context)")
                    #expect(!outcome.announcements.isEmpty, "\(context)")
                }
                #expect(store.cases.values.allSatisfy { ($0.deadline?.dueAt ?? .max) > now }, "\(context): a due deadline was left unfired")
                checkVersions(before: before, context: context)
                return
            }
            now += Millis.random(in: 0...TimeSpan.hour, using: &rng)
            let request = chance(12) ? randomCreate() : randomRequest()
            let previous = request.caseID.flatMap { store[$0] }
            do throws(CaseError) {
                let outcome = try store.apply(request, now: now)
                #expect(previous?.status.isTerminal != true, "\(context): terminal case accepted \(request.command.name)")
                if let previous {
                    if outcome.case == previous {
                        #expect(outcome.announcements.isEmpty, "\(context): no change, yet announced")
                    } else {
                        #expect(outcome.case.version == previous.version + 1, "\(context): version must step by one")
                        #expect(!outcome.announcements.isEmpty, "\(context): change without announcement")
                    }
                } else {
                    #expect(outcome.case.version == 1, "\(context)")
                }
                #expect(store[outcome.case.caseID] == outcome.case, "\(context)")
            } catch {
                #expect(store == before, "\(context): failed \(request.command.name) (\(error)) changed the store")
            }
            checkVersions(before: before, context: context)
        }

        /// Versions never go back, and move exactly when the case changed.
        mutating func checkVersions(before: CaseStore, context: String) {
            for (id, item) in store.cases {
                guard let old = before[id] else { continue }
                if old == item {
                    #expect(item.version == old.version, "\(context)")
                } else {
                    #expect(item.version == old.version + 1, "\(context): \(id) version \(old.version) -> \(item.version)")
                }
            }
        }

        func checkInvariants(_ index: Int) {
            let context = "seed \(seed) step \(index)"
            var openLines: [String: String] = [:]
            var byStatus: [CaseStatus: Set<String>] = [:]
            var byMerchant: [String: Set<String>] = [:]
            var earliest: Millis? = nil
            let queued = store.queuedDeadlines
            let liveQueued = Set(queued.filter(store.isLive))
            for (id, item) in store.cases {
                #expect(item.refundAmount > 0 && item.refundAmount <= item.paidAmount, "\(context): money of \(id)")
                #expect((item.pendingProposal != nil) == (item.status == .proposalPending), "\(context): proposal of \(id)")
                #expect((item.pendingOffer != nil) == (item.status == .merchantOfferPending), "\(context): offer of \(id)")
                #expect(item.deadline?.kind == item.status.deadlineKind, "\(context): deadline of \(id) in \(item.status)")
                #expect((item.pausedReviewRemaining != nil) == (item.status == .proposalPending), "\(context): paused clock of \(id)")
                #expect(item.history.last?.toStatus == item.status, "\(context): history of \(id)")
                #expect(item.status.isTerminal == (item.closeReason != nil || item.refundReason != nil), "\(context): end reason of \(id)")
                if let deadline = item.deadline {
                    #expect(liveQueued.contains(ScheduledDeadline(dueAt: deadline.dueAt, caseID: id, kind: deadline.kind)),
                            "\(context): deadline of \(id) is not queued")
                    earliest = min(earliest ?? .max, deadline.dueAt)
                }
                if !item.status.isTerminal {
                    #expect(openLines[item.orderLineKey] == nil, "\(context): two open cases on one order line")
                    openLines[item.orderLineKey] = id
                }
                byStatus[item.status, default: []].insert(id)
                byMerchant[item.merchantID, default: []].insert(id)
            }
            for entry in liveQueued {
                let owner = store[entry.caseID]
                #expect(owner?.status.deadlineKind == entry.kind, "\(context): live queue entry for a case in the wrong status")
            }
            #expect(store.nextDeadline == earliest, "\(context): nextDeadline")
            for status in CaseStatus.allCases {
                #expect(Set(store.caseIDs(in: status)) == byStatus[status] ?? [], "\(context): status index \(status)")
            }
            for merchant in PropertyTests.merchants {
                #expect(Set(store.caseIDs(merchantID: merchant)) == byMerchant[merchant] ?? [], "\(context): merchant index")
            }
            for (key, id) in openLines {
                let item = store[id]!
                #expect(store.openCaseID(orderID: item.orderID, orderLineID: item.orderLineID) == id, "\(context): order line index \(key)")
            }
            #expect(store.pendingProposalCount == store.cases.values.filter { $0.pendingProposal != nil }.count, "\(context)")
        }
    }

    @Test(arguments: [1, 42, 2024, 0xDEAD_BEEF, 987_654_321] as [UInt64])
    func invariantsHoldOverRandomSequences(seed: UInt64) {
        var run = Run(seed: seed)
        for index in 0..<3_000 {
            run.step(index)
            // Full brute-force recomputation is O(cases); do it often, not always, to keep
            // the test fast while still catching any drift within a few steps.
            if index % 7 == 0 || index > 2_900 { run.checkInvariants(index) }
        }
        run.checkInvariants(3_000)
        // The run must have exercised the machine, not just bounced off errors.
        let statuses = Set(run.store.cases.values.map(\.status))
        #expect(statuses.contains(.refunded) && statuses.contains(.closed), "seed \(seed): run too shallow: \(statuses)")
        #expect(run.store.cases.values.contains { $0.proposal != nil }, "seed \(seed): no proposal was ever issued")
        // A restore from the cases reproduces the store exactly.
        let restored = CaseStore(restoring: Array(run.store.cases.values), nextCaseNumber: run.store.nextCaseNumber)
        #expect(restored == run.store, "seed \(seed): restore differs")
    }
}
