@testable import AfterSalesDaemon
import AfterSalesProto
import AfterSalesTestSupport
import CaseEngine
import Foundation
import SwiftProtobuf
import Testing

/// The direct decoder start-up reads snapshots with must agree with SwiftProtobuf +
/// `Case(stored:)` on every input: the same case where they accept, a failure where
/// they refuse.
@Suite struct CaseWireDecoderTests {
    /// What the reference path makes of `bytes`: the case, or nil if it refuses them.
    func reference(_ bytes: [UInt8]) -> Case? {
        guard let message = try? Aftersales_V1_Case(serializedBytes: bytes) else { return nil }
        return try? Case(stored: message)
    }

    func direct(_ bytes: [UInt8]) -> Case? {
        bytes.withUnsafeBytes { try? CaseWireDecoder.decodeCase($0) }
    }

    @Test func decodesWhatTheEncoderWritesOnEveryPath() throws {
        for c in try WireEncodingTests().casesAlongEveryPath() {
            let bytes = EncodedCase(c).full
            #expect(direct(bytes) == c, "case \(c.caseID)")
        }
    }

    @Test func readsOtherValidEncodingsAsSwiftProtobufDoes() throws {
        let c = try WireEncodingTests().casesAlongEveryPath()[0]
        var message = Aftersales_V1_Case(c)
        // Unknown fields of every wire type, and an enum number this build does not know.
        let unknown = WireSamples.unknownFieldsOfEveryWireType
        message.signals.logisticsAnomalies.append(.UNRECOGNIZED(77))
        let swiftProtobufBytes: [UInt8] = try message.serializedBytes() + unknown
        #expect(reference(swiftProtobufBytes) == c)
        #expect(direct(swiftProtobufBytes) == c)

        // Unpacked repeated enum, fields out of order, a scalar repeated (the last wins)
        // and a message field split in two (merged).
        var reordered: [UInt8] = [0x68, 0x01]                    // status = 1 (overwritten below)
        reordered += try message.serializedBytes()
        reordered += [0x72, 0x02, 0x08, 0x03]                    // signals { logistics_anomalies: 3 } unpacked
        let expected = reference(reordered)
        #expect(expected != nil)
        #expect(direct(reordered) == expected)
    }

    @Test func refusesWhatTheReferenceRefuses() throws {
        var message = Aftersales_V1_Case(try WireEncodingTests().casesAlongEveryPath()[1])
        message.status = .UNRECOGNIZED(99)
        let unknownStatus: [UInt8] = try message.serializedBytes()
        #expect(reference(unknownStatus) == nil)
        #expect(throws: CaseWireDecoder.Failure.self) { try unknownStatus.withUnsafeBytes { try CaseWireDecoder.decodeCase($0) } }
        let invalidUTF8: [UInt8] = [0x0A, 0x02, 0xC3, 0x28]
        #expect(reference(invalidUTF8) == nil && direct(invalidUTF8) == nil)
        let elevenByteVarint: [UInt8] = [0x50] + [UInt8](repeating: 0xFF, count: 10) + [0x01]
        #expect(reference(elevenByteVarint) == nil && direct(elevenByteVarint) == nil)
    }

    /// Thousands of damaged encodings (bytes flipped, cut short, inserted): the direct
    /// decoder never crashes, and accepts exactly when the reference does, with the same case.
    @Test func agreesWithTheReferenceOnDamagedBytes() throws {
        var generator = SplitMix64(seed: 0xA5_7E_5A_1E)
        let originals = try WireEncodingTests().casesAlongEveryPath().map { EncodedCase($0).full }
        var accepted = 0, refused = 0
        for round in 0..<6_000 {
            let bytes = generator.damaged(originals[round % originals.count])
            let expected = reference(bytes)
            let actual = direct(bytes)
            #expect(actual == expected, "round \(round): bytes \(bytes.map { String($0, radix: 16) }.joined(separator: " "))")
            if expected == nil { refused += 1 } else { accepted += 1 }
            if actual != expected { break }
        }
        // Both outcomes must have been exercised for the comparison to mean something.
        #expect(accepted > 500 && refused > 500, "accepted \(accepted), refused \(refused)")
    }
}

extension CaseWireDecoderTests {
    /// Journal entries: the case read directly, the rest through SwiftProtobuf, must equal
    /// reading the whole entry through SwiftProtobuf — on valid and on damaged bytes.
    @Test func journalEntriesDecodeAsTheReferenceDoes() throws {
        let cases = try WireEncodingTests().casesAlongEveryPath()
        func referenceEntry(_ bytes: [UInt8]) -> (Case, Aftersales_Storage_V1_JournalEntry)? {
            guard var entry = try? Aftersales_Storage_V1_JournalEntry(serializedBytes: bytes),
                  let c = try? Case(stored: entry.case) else { return nil }
            entry.clearCase()
            return (c, entry)
        }
        func directEntry(_ bytes: [UInt8]) -> (Case, Aftersales_Storage_V1_JournalEntry)? {
            bytes.withUnsafeBytes { raw in
                (try? CaseWireDecoder.decodeJournalEntry(raw)).map { ($0.storedCase, $0.entry) }
            }
        }
        var originals: [[UInt8]] = []
        for (n, c) in cases.enumerated() {
            let entry = Aftersales_Storage_V1_JournalEntry.with {
                $0.timeMs = 1_700_000_000_000 + Int64(n)
                $0.case = Aftersales_V1_Case(c)
                $0.events = [.with { $0.seq = UInt64(n + 1); $0.topic = "case.updated"; $0.caseID = c.caseID }]
                $0.nextCaseNumber = UInt64(n + 2)
                if n % 2 == 0 { $0.answer = .with { $0.key = "k\(n)"; $0.method = "aftersales.v1.CaseService/CreateCase"; $0.payload = Data([1, 2]) } }
            }
            let bytes: [UInt8] = try entry.serializedBytes()
            let direct = try #require(directEntry(bytes))
            #expect(direct.0 == c)
            #expect(direct.1 == referenceEntry(bytes)?.1)
            originals.append(bytes)
        }
        var generator = SplitMix64(seed: 0x10_47_4E_A1)
        var accepted = 0, refused = 0
        for round in 0..<4_000 {
            let bytes = generator.damaged(originals[round % originals.count])
            let expected = referenceEntry(bytes)
            let actual = directEntry(bytes)
            #expect(actual?.0 == expected?.0 && actual?.1 == expected?.1, "round \(round)")
            if expected == nil { refused += 1 } else { accepted += 1 }
            if actual?.0 != expected?.0 || actual?.1 != expected?.1 { break }
        }
        #expect(accepted > 300 && refused > 300, "accepted \(accepted), refused \(refused)")
    }
}

extension SplitMix64 {
    /// `bytes` with one to three random edits: a bit flipped, a byte replaced, the tail
    /// cut off or a byte inserted (never left empty).
    mutating func damaged(_ original: [UInt8]) -> [UInt8] {
        var bytes = original
        for _ in 0...Int(next() % 3) {
            let at = Int(next() % UInt64(bytes.count))
            switch next() % 4 {
            case 0: bytes[at] ^= UInt8(truncatingIfNeeded: 1 << (next() % 8))
            case 1: bytes[at] = UInt8(truncatingIfNeeded: next())
            case 2: bytes.removeSubrange(at...)
            default: bytes.insert(UInt8(truncatingIfNeeded: next()), at: at)
            }
            if bytes.isEmpty { bytes = [0] }
        }
        return bytes
    }
}
