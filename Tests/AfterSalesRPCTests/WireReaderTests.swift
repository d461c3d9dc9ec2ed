import AfterSalesProto
import AfterSalesRPC
import AfterSalesTestSupport
import Foundation
import SwiftProtobuf
import Testing

/// The shared wire reader reads what SwiftProtobuf writes and refuses what it refuses.
@Suite struct WireReaderTests {
    func read<T>(_ bytes: [UInt8], _ body: (inout WireReader) throws(WireFailure) -> T) -> T? {
        bytes.withUnsafeBytes { raw in
            var reader = WireReader(raw)
            return try? body(&reader)
        }
    }

    @Test func varintsOfEveryWidth() throws {
        for value: UInt64 in [0, 1, 127, 128, 300, 16_383, 16_384, UInt64(UInt32.max), 1 << 56, .max] {
            var message = Aftersales_V1_ResponseEnvelope()
            message.requestID = value
            let bytes: [UInt8] = try message.serializedBytes()
            let got = read(bytes) { (r: inout WireReader) throws(WireFailure) -> UInt64 in
                let (field, wireType) = try r.tag()
                #expect(field == 1 && wireType == 0)
                let v = try r.varint()
                #expect(r.isAtEnd && r.position == bytes.count)
                return v
            }
            #expect(got == value || (value == 0 && got == nil), "\(value)")
        }
    }

    @Test func refusesWhatSwiftProtobufRefuses() {
        let eleven: [UInt8] = [0x08] + [UInt8](repeating: 0xFF, count: 10) + [0x01]
        #expect(read(eleven) { (r: inout WireReader) throws(WireFailure) in _ = try r.tag(); return try r.varint() } == nil)
        let truncated: [UInt8] = [0x08, 0x80]
        #expect(read(truncated) { (r: inout WireReader) throws(WireFailure) in _ = try r.tag(); return try r.varint() } == nil)
        let pastTheEnd: [UInt8] = [0x1A, 0x05, 0x41]
        #expect(read(pastTheEnd) { (r: inout WireReader) throws(WireFailure) in _ = try r.tag(); return try r.string() } == nil)
        let invalidUTF8: [UInt8] = [0x1A, 0x02, 0xC3, 0x28]
        #expect(read(invalidUTF8) { (r: inout WireReader) throws(WireFailure) in _ = try r.tag(); return try r.string() } == nil)
        #expect(read([0x00]) { (r: inout WireReader) throws(WireFailure) in try r.tag() } == nil)   // field 0
        #expect(read([0x0E]) { (r: inout WireReader) throws(WireFailure) in try r.tag() } == nil)   // wire type 6
        for bytes in [eleven, truncated, pastTheEnd, invalidUTF8, [0x00]] {
            #expect((try? Aftersales_V1_ResponseEnvelope(serializedBytes: bytes)) == nil)
        }
    }

    @Test func skipsUnknownFieldsOfEveryWireTypeAndGroups() {
        let bytes = WireSamples.unknownFieldsOfEveryWireType + [0x1A, 0x02, 0x6F, 0x6B]   // then field 3 "ok"
        let text = read(bytes) { (r: inout WireReader) throws(WireFailure) -> String in
            while !r.isAtEnd {
                let (field, wireType) = try r.tag()
                if field == 3 { return try r.string() }
                try r.skip(field: field, wireType: wireType)
            }
            return ""
        }
        #expect(text == "ok")
        let misclosed: [UInt8] = [0xCB, 0x1F, 0x08, 0x01, 0xD4, 0x1F]    // group 505 closed as 506
        let skipped = read(misclosed) { (r: inout WireReader) throws(WireFailure) -> Bool in
            let (field, wireType) = try r.tag()
            try r.skip(field: field, wireType: wireType)
            return true
        }
        #expect(skipped == nil)
    }

    @Test func routingReadsTheCaseIDAsTheDecoderDoes() throws {
        let request = Aftersales_V1_MerchantAgreeRequest.with { $0.caseID = "AS0000000042"; $0.merchantID = "M-1" }
        var bytes = WireSamples.unknownFields[0]   // an unknown field first
        bytes += try request.serializedBytes()
        #expect(RequestRouting.caseID(of: .merchantAgree, payload: Data(bytes)) == "AS0000000042")
        #expect(RequestRouting.caseID(of: .merchantAgree, payload: Data([0x0A, 0x05, 0x41])) == nil)
    }
}
