@testable import AfterSalesDaemon
import AfterSalesProto
import AfterSalesRPC
import CaseEngine
import Foundation
import SwiftProtobuf
import Testing

/// The hot path's shortcuts (issue 17) must answer exactly as the general code does:
/// each is held to SwiftProtobuf or to the search it replaces.
@Suite struct HotPathCodecTests {
    /// A deterministic generator (SplitMix64), so a failure repeats.
    struct Random {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
        mutating func chance(_ percent: Int) -> Bool { below(100) < percent }
    }

    func randomEnvelope(_ r: inout Random) -> RequestEnvelope {
        var e = RequestEnvelope()
        if r.chance(90) { e.requestID = r.chance(30) ? r.next() : UInt64(r.below(1_000)) }
        if r.chance(95) {
            e.method = r.chance(90) ? Method.allCases[r.below(Method.allCases.count)].rawValue
                : ["aftersales.v1.CaseService/Nope", "", "aftersales.v1.CaseService/GetCas", "é/x"][r.below(4)]
        }
        if r.chance(90) { e.payload = Data((0..<r.below(40)).map { _ in UInt8(truncatingIfNeeded: r.next()) }) }
        if r.chance(40) { e.deadlineMs = UInt64(r.below(10_000)) }
        if r.chance(40) { e.idempotencyKey = ["k-1", "clé-2", String(repeating: "x", count: 40), ""][r.below(4)] }
        if r.chance(10) { e.metadata = ["caller": "test"] }
        return e
    }

    /// Valid envelopes, the same with a byte changed, cut, or an unknown field added: where
    /// the quick reader answers, SwiftProtobuf decodes the same envelope and method.
    @Test func quickEnvelopeAgreesWithSwiftProtobuf() throws {
        var r = Random(state: 17)
        var quick = 0
        var plainOnes = 0
        for round in 0..<20_000 {
            let original = randomEnvelope(&r)
            var bytes: [UInt8] = try original.serializedBytes()
            // The shape clients send, undamaged, always takes the quick way (it is not dead code).
            if round % 4 == 0, original.metadata.isEmpty, Method(fullName: original.method) != nil {
                plainOnes += 1
                #expect(QuickEnvelope.read(bytes) != nil)
            }
            switch round % 4 {
            case 1 where !bytes.isEmpty: bytes[r.below(bytes.count)] = UInt8(truncatingIfNeeded: r.next())
            case 2 where !bytes.isEmpty: bytes.removeLast(r.below(bytes.count) + 1)
            case 3: bytes += [UInt8(r.below(256)), UInt8(r.below(256)), UInt8(r.below(256))]
            default: break
            }
            guard let (envelope, method) = QuickEnvelope.read(bytes) else { continue }
            quick += 1
            let general = try RequestEnvelope(serializedBytes: bytes)
            #expect(envelope == general, "bytes \(bytes)")
            #expect(Method(fullName: general.method) == method)
        }
        #expect(plainOnes > 3_000 && quick >= plainOnes)
    }

    @Test func quickEnvelopeLeavesUnusualShapesToTheGeneralDecoder() throws {
        var plain = RequestEnvelope(requestID: 1, method: .getCase, payload: [1, 2], deadlineMilliseconds: 5, idempotencyKey: "k")
        #expect(QuickEnvelope.read(try plain.serializedBytes()) != nil)
        plain.metadata = ["caller": "x"]
        #expect(QuickEnvelope.read(try plain.serializedBytes()) == nil)
        var twice: [UInt8] = try RequestEnvelope(requestID: 1, method: .getCase, payload: [], deadlineMilliseconds: 0, idempotencyKey: "").serializedBytes()
        twice += [0x08, 0x02]   // request_id again: the last wins, which SwiftProtobuf decides
        #expect(QuickEnvelope.read(twice) == nil)
        #expect(try RequestEnvelope(serializedBytes: twice).requestID == 2)
        let unknownMethod: [UInt8] = try RequestEnvelope.with { $0.method = "aftersales.v1.CaseService/Nope" }.serializedBytes()
        #expect(QuickEnvelope.read(unknownMethod) == nil)
        let badKey: [UInt8] = [0x12, UInt8(Method.ping.rawValue.utf8.count)] + Array(Method.ping.rawValue.utf8) + [0x2A, 2, 0xC3, 0x28]
        #expect(QuickEnvelope.read(badKey) == nil)
        #expect(throws: (any Error).self) { try RequestEnvelope(serializedBytes: badKey) }
    }

    @Test func methodOrdinalsAreDeclarationOrder() {
        #expect(MemoryLayout<Method>.size == 1)
        for (index, method) in Method.allCases.enumerated() {
            #expect(method.ordinal == index)
            #expect(method == Method.allCases[index])
        }
        #expect(Set(Method.allCases).count == Method.allCases.count)
    }

    /// `protoNumber(of:)` reads the enum's stored index; held here to the search it replaces.
    @Test func enumProtoNumbersAreDeclarationOrderPlusOne() {
        func check<E: CaseIterable & Equatable>(_: E.Type) where E.AllCases == [E] {
            for (index, value) in E.allCases.enumerated() { #expect(protoNumber(of: value) == UInt64(index + 1), "\(value)") }
        }
        check(CaseType.self); check(DeliveryState.self); check(CaseStatus.self); check(Party.self)
        check(ShippingPayer.self); check(ProposalState.self); check(IssueKind.self); check(OfferState.self)
        check(DeadlineKind.self); check(CloseReason.self); check(RefundReason.self); check(EvidenceKind.self)
        check(IssueTag.self); check(LogisticsAnomaly.self); check(Decision.self); check(Ruling.self)
    }

    /// Nested lengths of one, two and three bytes, and content that overflows the first guess.
    @Test func protoWriterWidensLengthsAndGrows() throws {
        for size in [0, 1, 127, 128, 300, 16_383, 16_384, 70_000] {
            let text = String(repeating: "é", count: size / 2) + (size % 2 == 1 ? "x" : "")
            let bytes = ProtoWriter.bytes(capacity: 16) { w in
                w.varintField(1, 7)
                w.messageField(4) { inner in inner.stringField(3, text) }
            }
            let envelope = try ResponseEnvelope(serializedBytes: bytes)
            #expect(envelope.requestID == 7)
            #expect(try Aftersales_V1_ResponseEnvelope(serializedBytes: envelope.payload).message == text)
        }
    }

    /// The directly written Judgement is SwiftProtobuf's byte for byte, over every field's
    /// default and non-default values (the reasons the policy gives included).
    @Test func judgementsAreWrittenAsSwiftProtobufWritesThem() throws {
        var r = Random(state: 17)
        let kinds: [IssueKind?] = [nil] + IssueKind.allCases
        let reasons = ["NO_ISSUE_DETECTED", "LOGISTICS_DAMAGED_IN_TRANSIT", "EVIDENCE_DEFECT_PHOTO", "理由", ""]
        for _ in 0..<500 {
            let j = Judgement(eligible: r.chance(50), intervene: r.chance(50), issueKind: kinds[r.below(kinds.count)],
                              score: Int32(r.below(200)) - 50, threshold: r.chance(20) ? 0 : Int32(r.below(100)),
                              reasons: (0..<r.below(4)).map { _ in reasons[r.below(reasons.count)] })
            let direct = WireAssembly.judgement(j)
            #expect(direct == (try Aftersales_V1_Judgement(j).serializedBytes() as [UInt8]), "\(j)")
        }
    }

    @Test func getCaseReplyIsTheEnvelopeOfTheCase() throws {
        for c in try WireEncodingTests().casesAlongEveryPath() {
            let reply = try ResponseEnvelope(serializedBytes: WireAssembly.getCaseReply(requestID: 99, caseBytes: EncodedCase(c).full))
            #expect(reply.requestID == 99 && reply.code == .ok && reply.message.isEmpty)
            #expect(try Aftersales_V1_GetCaseResponse(serializedBytes: reply.payload).case == Aftersales_V1_Case(c))
        }
    }

    /// The reply around cached bytes is the reply around the case freshly encoded, byte for byte;
    /// the cache answers a case at the version it holds and re-encodes one that changed.
    @Test func getCaseRepliesFromTheCacheAreTheCaseAtItsVersion() throws {
        var cache = EncodedCaseCache()
        for c in try WireEncodingTests().casesAlongEveryPath() {
            #expect(WireAssembly.getCaseReply(requestID: 7, caseBytes: cache.encoded(c)) == WireAssembly.getCaseReply(requestID: 7, caseBytes: EncodedCase(c).full))
        }
        var c = try #require(try WireEncodingTests().casesAlongEveryPath().first)
        let first = cache.encoded(c)
        cache.keep(c, EncodedCase(c))
        #expect(cache.encoded(c) == first)
        c.version += 1
        c.orderID = "changed"
        #expect(try Aftersales_V1_Case(serializedBytes: cache.encoded(c)).orderID == "changed", "a newer version is encoded afresh")
        // Another case on the same slot replaces it; the first is encoded again, correctly.
        var neighbour = c
        neighbour.caseID = "AS" + String(format: "%010d", (CaseStore.caseNumber(of: c.caseID) ?? 0) + UInt64(EncodedCaseCache.slotCount))
        #expect(try Aftersales_V1_Case(serializedBytes: cache.encoded(neighbour)).caseID == neighbour.caseID)
        #expect(try Aftersales_V1_Case(serializedBytes: cache.encoded(c)).caseID == c.caseID)
    }

    @Test func getCaseRequestReadOffTheWireOrDecoded() throws {
        let plain: [UInt8] = try Aftersales_V1_GetCaseRequest.with { $0.caseID = "AS0000000042" }.serializedBytes()
        #expect(try CaseService.caseIDOfGetCase(Data(plain)) == "AS0000000042")
        // An unknown field too: decoded the general way, same answer.
        #expect(try CaseService.caseIDOfGetCase(Data(plain + [0x10, 0x01])) == "AS0000000042")
        #expect(try CaseService.caseIDOfGetCase(Data()) == "")
        #expect(throws: RPCError.self) { try CaseService.caseIDOfGetCase(Data([0x0A, 0x02, 0xC3, 0x28])) }
    }

    @Test func caseNumbersAndOrderLineKeys() {
        #expect(CaseStore.caseNumber(of: "AS0000000042") == 42)
        #expect(CaseStore.caseNumber(of: CaseStore.caseID(number: 9_876_543_210)) == 9_876_543_210)
        for bad in ["AS000000004", "AS00000000421", "XS0000000042", "AS+000000042", "AS00000000 2", "", "ÅS000000004"] {
            #expect(CaseStore.caseNumber(of: bad) == nil, "\(bad)")
        }
        #expect(CaseStore.orderLineKey(orderID: "O-1", orderLineID: "行2") == "O-1\u{0}行2")
        #expect(CaseStore.orderLineKey(orderID: "", orderLineID: "") == "\u{0}")
    }
}
