import CaseEngine
import Testing

/// Create-time validation (SPEC §2): INVALID_ARGUMENT naming the proto field; and the
/// one-open-case-per-order-line rule (ALREADY_EXISTS).
@Suite struct ValidationTests {
    static let cases: [(NewCase, CaseError)] = [
        (Fixture.newCase(order: ""), .invalidArgument(field: "order_id", message: "required, got an empty string")),
        (Fixture.newCase(category: ""), .invalidArgument(field: "category", message: "required, got an empty string")),
        (Fixture.newCase(type: nil), .invalidArgument(field: "type", message: "required: REFUND_ONLY or RETURN_AND_REFUND")),
        (Fixture.newCase(delivery: nil), .invalidArgument(field: "delivery", message: "required: NOT_SHIPPED, IN_TRANSIT, SIGNED or REFUSED")),
        (Fixture.newCase(paid: 0, refund: 0), .invalidArgument(field: "paid_amount", message: "must be > 0, got 0")),
        (Fixture.newCase(refund: 0), .invalidArgument(field: "refund_amount", message: "must be > 0, got 0")),
        (Fixture.newCase(refund: -5), .invalidArgument(field: "refund_amount", message: "must be > 0, got -5")),
        (Fixture.newCase(paid: 10_000, refund: 12_000),
         .invalidArgument(field: "refund_amount", message: "refund_amount 12000 exceeds paid_amount 10000")),
        (Fixture.newCase(signals: Signals(merchantComplaintRateBasisPoints: 10_001)),
         .invalidArgument(field: "signals.merchant_complaint_rate_bp", message: "must be 0..10000 basis points, got 10001")),
    ]

    @Test(arguments: 0..<cases.count)
    func invalidCreateIsRefused(index: Int) {
        let (new, expected) = Self.cases[index]
        var store = CaseStore()
        let error = caseError { () throws(CaseError) in try store.apply(Fixture.create(new), now: Fixture.t0) }
        #expect(error == expected)
        #expect(error?.grpcCode == 3)
        #expect(store == CaseStore())
        #expect(store.nextCaseNumber == 1)
    }

    @Test func emptyMerchantAndConsumerAreRefused() {
        var store = CaseStore()
        var new = Fixture.newCase()
        new.merchantID = ""
        #expect(caseError { () throws(CaseError) in try store.apply(Fixture.create(new), now: 0) }
            == .invalidArgument(field: "merchant_id", message: "required, got an empty string"))
        new = Fixture.newCase()
        new.consumerID = ""
        let request = Request(caseID: nil, actor: .consumer, actorID: "", command: .create(new))
        #expect(caseError { () throws(CaseError) in try store.apply(request, now: 0) }
            == .invalidArgument(field: "consumer_id", message: "required, got an empty string"))
    }

    @Test func createForSomeoneElseIsDenied() {
        var store = CaseStore()
        let request = Request(caseID: nil, actor: .consumer, actorID: "other", command: .create(Fixture.newCase()))
        guard case .permissionDenied = caseError({ () throws(CaseError) in try store.apply(request, now: 0) }) else {
            Issue.record("expected PERMISSION_DENIED")
            return
        }
    }

    @Test func secondOpenCaseOnSameOrderLineAlreadyExists() throws {
        var store = CaseStore()
        _ = try store.apply(Fixture.create(Fixture.newCase(order: "o-9", line: "2")), now: Fixture.t0)
        let before = store
        let error = caseError { () throws(CaseError) in try store.apply(Fixture.create(Fixture.newCase(order: "o-9", line: "2")), now: Fixture.t0 + 1) }
        #expect(error == .alreadyExists(
            "case AS0000000001 is already open for order_id 'o-9' order_line_id '2'; act on it or wait until it ends"))
        #expect(error?.grpcCode == 6)
        #expect(store == before)
        // Another line of the same order, and an empty line id, are distinct.
        #expect(try store.apply(Fixture.create(Fixture.newCase(order: "o-9", line: "3")), now: Fixture.t0 + 2).case.caseID == "AS0000000002")
        #expect(try store.apply(Fixture.create(Fixture.newCase(order: "o-9", line: "")), now: Fixture.t0 + 3).case.caseID == "AS0000000003")
    }

    @Test func stepArgumentsAreChecked() throws {
        var (store, id, now) = try Fixture.store(in: .awaitingMerchantReview)
        let original = store
        let refusals: [(Request, CaseError)] = [
            (Fixture.merchant(id, .merchantReject(reason: "")), .invalidArgument(field: "reason", message: "required, got an empty string")),
            (Fixture.merchant(id, .merchantOffer(OfferTerms(type: .refundOnly, refundAmount: 10_001))),
             .invalidArgument(field: "refund_amount", message: "refund_amount 10001 exceeds paid_amount 10000")),
            (Fixture.merchant(id, .merchantOffer(OfferTerms(type: nil, refundAmount: 1))),
             .invalidArgument(field: "type", message: "required: REFUND_ONLY or RETURN_AND_REFUND")),
            (Fixture.merchant(id, .merchantOffer(OfferTerms(type: .returnAndRefund, refundAmount: 1))),
             .invalidArgument(field: "return_shipping_payer", message: "required for a RETURN_AND_REFUND offer: CONSUMER or MERCHANT")),
            (Fixture.consumer(id, .addEvidence(NewEvidence(kind: nil, tags: [.defect]))),
             .invalidArgument(field: "evidence.kind", message: "required: PHOTO, VIDEO or TEXT")),
            (Fixture.platform(id, .updateLogistics(delivery: nil, anomalies: [])),
             .invalidArgument(field: "delivery", message: "give a new delivery state or at least one anomaly")),
        ]
        for (request, expected) in refusals {
            #expect(caseError { () throws(CaseError) in try store.apply(request, now: now) } == expected)
            #expect(store == original)
        }
        now += 1
        // Repeating known logistics facts is a no-op: same version, nothing announced.
        let noop = try store.apply(Fixture.platform(id, .updateLogistics(delivery: .signed, anomalies: [])), now: now)
        #expect(noop.announcements.isEmpty)
        #expect(noop.case == original[id])
        #expect(store == original)
    }

    @Test func returnShipmentNeedsCarrierAndTracking() throws {
        let (original, id, now) = try Fixture.store(in: .awaitingReturnShipment)
        var store = original
        #expect(caseError { () throws(CaseError) in try store.apply(Fixture.consumer(id, .submitReturnShipment(carrier: "", trackingNumber: "1")), now: now) }
            == .invalidArgument(field: "carrier", message: "required, got an empty string"))
        #expect(caseError { () throws(CaseError) in try store.apply(Fixture.consumer(id, .submitReturnShipment(carrier: "SF", trackingNumber: "")), now: now) }
            == .invalidArgument(field: "tracking_number", message: "required, got an empty string"))
        #expect(store == original)
    }

    @Test func isoFormatting() {
        #expect(ISO8601.format(0) == "1970-01-01T00:00:00.000Z")
        #expect(ISO8601.format(1_234_567_890_123) == "2009-02-13T23:31:30.123Z")
        #expect(ISO8601.format(-1) == "1969-12-31T23:59:59.999Z")
        #expect(ISO8601.format(951_782_400_000) == "2000-02-29T00:00:00.000Z")
        #expect(ISO8601.format(Fixture.t0 + 12 * TimeSpan.hour) == "2026-11-27T04:00:00.000Z")
    }
}
