import AfterSalesClient
import AfterSalesProto
import AfterSalesRPC
import Foundation
import Testing

/// Runs `body` expecting an `RPCError` with `code`; returns it.
@discardableResult
func expectError<T>(_ code: StatusCode, sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> T) async -> RPCError? {
    do {
        _ = try await body()
        Issue.record("expected \(code.name), got success", sourceLocation: sourceLocation)
        return nil
    } catch let error as RPCError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        return error
    } catch {
        Issue.record("expected RPCError \(code.name), got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

@Suite("AfterSalesClient against a real aftersalesd", .serialized, .timeLimit(.minutes(2)))
struct ClientTests {
    @Test("every RPC of both services, typed, async and blocking")
    func everyRPC() async throws {
        try await withDaemon { daemon in
            let client = try daemon.client()
            defer { client.close() }

            // Admin: ping echoes, stats answer.
            var ping = Aftersales_V1_PingRequest()
            ping.payload = Data("hello".utf8)
            let pong = try await client.ping(ping, deadline: .seconds(2))
            #expect(pong.payload == Data("hello".utf8))
            #expect(!pong.version.isEmpty)
            #expect(try client.blocking.getStats().casesTotal == 0)

            // A: intervened at creation → proposal accepted → return shipped → received.
            let a = try await client.createCase(createRequest("o-a", damaged: true))
            #expect(a.judgement.intervene)
            #expect(a.case.status == .proposalPending)
            #expect(a.case.proposal.state == .pending)
            let judged = try await client.evaluateIntervention(.with { $0.caseID = a.case.caseID })
            #expect(!judged.judgement.reasons.isEmpty)
            // The merchant may not reject while the proposal is pending.
            let refused = await expectError(.failedPrecondition) {
                try await client.merchantReject(.with { $0.caseID = a.case.caseID; $0.merchantID = "m-1"; $0.reason = "no" })
            }
            #expect(refused?.message.isEmpty == false)
            let accepted = try await client.respondToProposal(.with {
                $0.caseID = a.case.caseID; $0.consumerID = "c-1"; $0.decision = .accept
            })
            #expect(accepted.case.status == .awaitingReturnShipment)
            #expect(accepted.case.type == .returnAndRefund)
            #expect(accepted.case.returnShippingPayer == .merchant)
            let shipped = try client.blocking.submitReturnShipment(.with {
                $0.caseID = a.case.caseID; $0.consumerID = "c-1"; $0.carrier = "SF"; $0.trackingNumber = "SF123"
            })
            #expect(shipped.case.status == .awaitingMerchantReceipt)
            let received = try await client.confirmReturnReceived(.with { $0.caseID = a.case.caseID; $0.merchantID = "m-1" })
            #expect(received.case.status == .refunded)

            // B: evidence makes the platform intervene; the merchant agrees (proposal superseded).
            let b = try await client.createCase(createRequest("o-b", consumer: "c-2"))
            #expect(b.case.status == .awaitingMerchantReview)
            var evidence = Aftersales_V1_Evidence()
            evidence.kind = .photo
            evidence.tags = [.defect, .damage]
            let evidenced = try await client.addEvidence(.with {
                $0.caseID = b.case.caseID; $0.consumerID = "c-2"; $0.evidence = evidence
            })
            #expect(evidenced.case.signals.evidence.count == 1)
            let agreed = try await client.merchantAgree(.with { $0.caseID = b.case.caseID; $0.merchantID = "m-1" })
            #expect(agreed.case.status == .refunded)
            if evidenced.case.status == .proposalPending {
                #expect(agreed.case.proposal.state == .superseded)
            }

            // C: not shipped yet; logistics update; offer rejected; merchant rejects; escalate; ruling.
            let c = try await client.createCase(createRequest("o-c", consumer: "c-3", delivery: .inTransit))
            let updated = try await client.updateLogistics(.with { $0.caseID = c.case.caseID; $0.delivery = .signed })
            #expect(updated.case.delivery == .signed)
            let offered = try await client.merchantOffer(.with {
                $0.caseID = c.case.caseID; $0.merchantID = "m-1"; $0.type = .refundOnly; $0.refundAmount = 5_000
            })
            #expect(offered.case.status == .merchantOfferPending)
            let declined = try await client.respondToOffer(.with {
                $0.caseID = c.case.caseID; $0.consumerID = "c-3"; $0.decision = .reject
            })
            #expect(declined.case.merchantOffer.state == .rejected)
            let rejected = try await client.merchantReject(.with {
                $0.caseID = c.case.caseID; $0.merchantID = "m-1"; $0.reason = "used goods"
            })
            #expect(rejected.case.status == .merchantRejected)
            let escalated = try await client.escalate(.with { $0.caseID = c.case.caseID; $0.consumerID = "c-3" })
            #expect(escalated.case.status == .platformArbitration)
            let ruled = try await client.platformResolve(.with {
                $0.caseID = c.case.caseID; $0.operatorID = "op-1"; $0.ruling = .closeForMerchant
            })
            #expect(ruled.case.status == .closed)

            // D: cancelled by the consumer; the wrong party is refused first.
            let d = try await client.createCase(createRequest("o-d", consumer: "c-4"))
            await expectError(.permissionDenied) {
                try await client.cancelCase(.with { $0.caseID = d.case.caseID; $0.consumerID = "someone-else" })
            }
            let cancelled = try await client.cancelCase(.with { $0.caseID = d.case.caseID; $0.consumerID = "c-4" })
            #expect(cancelled.case.status == .closed)
            #expect(cancelled.case.closeReason == .cancelledByConsumer)

            // Reads.
            let got = try await client.getCase(.with { $0.caseID = a.case.caseID })
            #expect(got.case.history.count >= 4)
            let listed = try await client.listCases(.with { $0.merchantID = "m-1" })
            #expect(listed.cases.map(\.caseID) == [a, b, c, d].map(\.case.caseID).sorted())
            let refunded = try client.blocking.listCases(.with { $0.status = .refunded })
            #expect(Set(refunded.cases.map(\.caseID)) == [a.case.caseID, b.case.caseID])
            await expectError(.notFound) { try await client.getCase(.with { $0.caseID = "AS9999999999" }) }
            await expectError(.invalidArgument) { try await client.createCase(Aftersales_V1_CreateCaseRequest()) }

            // Snapshot and replay.
            let snapshot = try await client.takeSnapshot()
            #expect(!snapshot.path.isEmpty)
            #expect(snapshot.cases == 4)
            let replay = try await client.replayEvents(.with { $0.fromSeq = 1 })
            #expect(!replay.events.isEmpty)
            #expect(replay.events.map(\.seq) == Array(1...UInt64(replay.events.count)))
            #expect(replay.lastSeq == UInt64(replay.events.count))

            // Health, reflection, the slow-call log.
            #expect(try await client.check().status == .serving)
            #expect(try await client.listServices().services.contains("aftersales.v1.CaseService"))
            #expect(try await client.getDescriptors().protoDigest == protoSourceDigest)
            #expect(try await client.slowCalls().thresholdUs == 10_000)
            let map = try await client.getClusterMap()
            #expect(map.shardCount == 1 && map.shards.first?.rpcEndpoint.hasPrefix("tcp://127.0.0.1:") == true)

            // The daemon saw every method of the contract.
            let stats = try await client.getStats()
            let called = Set(stats.methods.filter { $0.calls > 0 }.map(\.method))
            let missing = Method.allCases.map(\.fullName).filter { !called.contains($0) && !called.contains(String($0.split(separator: "/").last!)) }
            #expect(missing.isEmpty, "methods never called: \(missing)")
            #expect(stats.casesTotal == 4)

            // The raw form works too (what the probe's `call` uses).
            let raw = try await client.call(method: .getCase, payload: try Aftersales_V1_GetCaseRequest.with { $0.caseID = d.case.caseID }.serializedBytes())
            #expect(try Aftersales_V1_GetCaseResponse(serializedBytes: raw).case.status == .closed)
        }
    }

    @Test("1000 concurrent calls from many tasks (and blocking threads) each get their own answer")
    func thousandConcurrentCalls() async throws {
        try await withDaemon { daemon in
            let client = try daemon.client(attemptTimeout: .seconds(20), maxAttempts: 1)
            defer { client.close() }
            let results = try await within(.seconds(60), "1000 calls") {
                try await withThrowingTaskGroup(of: (Int, String, String).self) { group in
                    for index in 0..<1000 {
                        group.addTask {
                            let response = try await client.createCase(createRequest("order-\(index)", consumer: "c-\(index % 37)"))
                            return (index, response.case.orderID, response.case.caseID)
                        }
                    }
                    var all: [(Int, String, String)] = []
                    for try await result in group { all.append(result) }
                    return all
                }
            }
            #expect(results.count == 1000)
            #expect(results.allSatisfy { "order-\($0.0)" == $0.1 })
            #expect(Set(results.map(\.2)).count == 1000)

            // Blocking callers on plain threads, interleaved, also matched by request id.
            let mismatches = try await within(.seconds(30), "blocking pings") {
                await withCheckedContinuation { (continuation: CheckedContinuation<Int, Never>) in
                    let counter = Counter()
                    let group = DispatchGroup()
                    for thread in 0..<8 {
                        group.enter()
                        Thread {
                            for index in 0..<50 {
                                let payload = Data("t\(thread)-\(index)".utf8)
                                let pong = try? client.blocking.ping(.with { $0.payload = payload })
                                if pong?.payload != payload { counter.add() }
                            }
                            group.leave()
                        }.start()
                    }
                    group.notify(queue: .global()) { continuation.resume(returning: counter.value) }
                }
            }
            #expect(mismatches == 0)
            #expect(try await client.getStats().casesTotal == 1000)
        }
    }

    @Test("a create whose answer is lost is resent with the same idempotency key and applied once")
    func retriedCreateAppliedOnce() async throws {
        try await withDaemon { daemon in
            let proxy = try TCPProxy(to: daemon.rpc)
            defer { proxy.stop() }
            proxy.dropReplies(onNext: 1)
            let client = try AfterSalesClient(endpoint: proxy.endpoint, configuration: .init(attemptTimeout: .milliseconds(500), maxAttempts: 3))
            defer { client.close() }
            let direct = try daemon.client()
            defer { direct.close() }

            let created = try await within(.seconds(10)) { try await client.createCase(createRequest("o-retry", consumer: "c-retry")) }
            #expect(created.case.orderID == "o-retry")
            #expect(proxy.swallowedFrames >= 1, "the first answer should have been dropped")
            #expect(proxy.accepted >= 2, "the Lazy Pirate should have reopened the socket")

            let cases = try await direct.listCases(.with { $0.consumerID = "c-retry" })
            #expect(cases.cases.count == 1)
            #expect(cases.cases.first?.caseID == created.case.caseID)
            let stats = try await direct.getStats()
            let creates = stats.methods.first { $0.method.hasSuffix("CreateCase") }?.calls ?? 0
            #expect(creates >= 2, "the daemon should have seen the create twice")
            #expect(stats.casesTotal == 1)

            // A caller-chosen key: a second call with it gets the first answer again.
            let key = makeIdempotencyKey()
            let first = try await direct.createCase(createRequest("o-key", consumer: "c-key"), options: .init(idempotencyKey: key))
            let again = try await direct.createCase(createRequest("o-key", consumer: "c-key"), options: .init(idempotencyKey: key))
            #expect(first.case.caseID == again.case.caseID)
            #expect(try await direct.getStats().casesTotal == 2)
        }
    }

    @Test("deadlines: exceeded, no answer after N attempts, cancellation")
    func deadlines() async throws {
        try await withDaemon { daemon in
            let proxy = try TCPProxy(to: daemon.rpc)
            defer { proxy.stop() }
            proxy.dropReplies(onNext: 100)  // the daemon answers, the client never hears it
            let client = try AfterSalesClient(endpoint: proxy.endpoint, configuration: .init(attemptTimeout: .milliseconds(250), maxAttempts: 3))
            defer { client.close() }

            // The overall deadline passes first: DEADLINE_EXCEEDED, on time.
            var start = ContinuousClock.now
            await expectError(.deadlineExceeded) {
                try await client.getCase(.with { $0.caseID = "AS0000000001" }, deadline: .milliseconds(400))
            }
            var elapsed = ContinuousClock.now - start
            #expect(elapsed >= .milliseconds(380) && elapsed < .seconds(2), "took \(elapsed)")

            // No overall deadline: three attempts of 250 ms, then UNAVAILABLE.
            start = ContinuousClock.now
            let error = await expectError(.unavailable) { try client.blocking.getStats() }
            elapsed = ContinuousClock.now - start
            #expect(error?.isNoAnswer == true)
            #expect(error?.message == "no answer from \(proxy.endpoint) within 250ms after 3 attempts")
            #expect(elapsed >= .milliseconds(700) && elapsed < .seconds(3), "took \(elapsed)")

            // A mutating call without an idempotency key is never resent: the daemon answers
            // (and the proxy swallows) exactly one request. (Counted rather than timed: a
            // loaded machine once took 1.26 s over what three attempts would take.)
            let swallowedBefore = proxy.swallowedFrames
            let once = await expectError(.unavailable) {
                try await client.createCase(createRequest("o-nokey"), options: .init(idempotencyKey: ""))
            }
            #expect(once?.message == "no answer from \(proxy.endpoint) within 250ms")
            try await Task.sleep(for: .milliseconds(300))  // a resend would have been answered by now
            #expect(proxy.swallowedFrames - swallowedBefore == 2, "one reply: its delimiter and its envelope")

            // Nothing listens at all.
            let nowhere = try AfterSalesClient(endpoint: "tcp://127.0.0.1:\(try freePort())", configuration: .init(attemptTimeout: .milliseconds(200), maxAttempts: 2))
            defer { nowhere.close() }
            let absent = await expectError(.unavailable) { try await nowhere.ping() }
            #expect(absent?.isNoAnswer == true)

            // Cancelling the calling task ends the call at once with CANCELLED. (A client of
            // its own with attempts enough for 30 s: under a loaded test run the 100 ms
            // sleep once outlasted the three attempts of `client`.)
            let patient = try AfterSalesClient(endpoint: proxy.endpoint, configuration: .init(attemptTimeout: .milliseconds(250), maxAttempts: 120))
            defer { patient.close() }
            let slow = Task { try await patient.ping(deadline: .seconds(30)) }
            try await Task.sleep(for: .milliseconds(100))
            start = ContinuousClock.now
            slow.cancel()
            await expectError(.cancelled) { try await slow.value }
            #expect(ContinuousClock.now - start < .seconds(1))

            // A closed client fails calls at once.
            client.close()
            await expectError(.cancelled) { try await client.ping() }
        }
    }
}

/// A thread-safe counter.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func add() { lock.withLock { count += 1 } }
    var value: Int { lock.withLock { count } }
}
