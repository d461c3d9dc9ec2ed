// Encode once, splice everywhere. A change to a case is encoded once; the reply, the
// journal entry and the announcements are assembled from those bytes. This works because
// protobuf's wire format is a sequence of fields, in any order: a message field is its
// tag, its length and the nested message's bytes, and a repeated field may be written one
// element at a time. `WireEncodingTests` checks every assembly below against what
// SwiftProtobuf decodes.
import AfterSalesProto
import CaseEngine

/// One case, encoded once: the summary is a prefix of the full encoding, so GetCase and
/// snapshots (which need only `full`) copy nothing, and a change copies the summary once.
struct EncodedCase {
    /// The case with its history: the summary, then field 25 appended entry by entry.
    let full: [UInt8]
    /// Where the summary ends in `full`.
    private let summaryCount: Int

    init(_ c: Case) {
        var summaryCount = 0
        full = ProtoWriter.bytes(capacity: EncodedCase.expectedBytes(c)) { w in
            w.caseSummary(c)
            summaryCount = w.count
            w.caseHistory(c.history)
        }
        self.summaryCount = summaryCount
    }

    /// Room for a case: 1 KiB of stack holds all but the longest (an entry of the history
    /// is some 60 bytes); a case with long texts is written again with more.
    static func expectedBytes(_ c: Case) -> Int { max(1_024, 384 + 96 * c.history.count) }

    /// The case without its history: what announcements and list pages carry.
    var summary: [UInt8] { Array(summaryBytes) }

    /// The same, without a copy.
    var summaryBytes: ArraySlice<UInt8> { full[..<summaryCount] }

    /// Only the summary, for callers that never need the history.
    static func summary(of c: Case) -> [UInt8] {
        ProtoWriter.bytes(capacity: 1_024) { $0.caseSummary(c) }
    }
}

extension Aftersales_V1_HistoryEntry {
    init(_ h: HistoryEntry) {
        self.init()
        atMs = h.at
        actor = EnumMapping.proto(h.actor)
        actorID = h.actorID
        action = h.action
        fromStatus = EnumMapping.proto(h.fromStatus)
        toStatus = EnumMapping.proto(h.toStatus)
        note = h.note
        client = h.client
    }
}

enum WireAssembly {
    /// The answer to every mutating CaseService call: field 1 `case`, and for the calls
    /// that run the judgement, field 2 `judgement`.
    static func mutationResponse(_ encoded: EncodedCase, judgement: Judgement?) -> [UInt8] {
        mutationResponse(encoded, judgementBytes: judgement.map(Self.judgement))
    }

    /// The same, with the judgement already serialized.
    static func mutationResponse(_ encoded: EncodedCase, judgementBytes judgement: [UInt8]?) -> [UInt8] {
        ProtoWriter.bytes(capacity: encoded.full.count + (judgement?.count ?? 0) + 16) { w in
            w.bytesField(1, encoded.full)
            if let judgement { w.bytesField(2, judgement) }
        }
    }

    /// A serialized `Judgement`, as responses carry it and idempotent answers keep it.
    static func judgement(_ judgement: Judgement) -> [UInt8] {
        var room = 48
        for reason in judgement.reasons { room += reason.utf8.count + 3 }
        return ProtoWriter.bytes(capacity: room) { $0.judgement(judgement) }
    }

    /// A journal entry, written in one pass: the time, the announcements as they were
    /// published without the case (`events`), the case numbering, the answer to remember
    /// for an idempotency key, and the case once (field 2, last).
    static func journalEntry(timeMs: Millis, case encoded: EncodedCase, events: [ArraySlice<UInt8>], nextCaseNumber: UInt64,
                             answer: Aftersales_Storage_V1_IdempotentAnswer?) -> [UInt8] {
        var room = encoded.full.count + 64
        for event in events { room += event.count + 4 }
        return ProtoWriter.bytes(capacity: room) { w in
            w.int64Field(JournalEntryField.timeMs.rawValue, timeMs)
            for event in events {
                event.withUnsafeBytes { w.bytesField(JournalEntryField.events.rawValue, $0) }
            }
            w.varintField(JournalEntryField.nextCaseNumber.rawValue, nextCaseNumber)
            if let answer {
                w.messageField(JournalEntryField.answer.rawValue) { $0.idempotentAnswer(answer) }
            }
            w.bytesField(JournalEntryField.case.rawValue, encoded.full)
        }
    }

    /// A ResponseEnvelope: request_id (1), code (2), message (3), payload (4).
    static func responseEnvelope(requestID: UInt64, code: Aftersales_V1_StatusCode, message: String, payload: [UInt8]) -> [UInt8] {
        ProtoWriter.bytes(capacity: payload.count + message.utf8.count + 24) { w in
            w.varintField(1, requestID)
            w.varintField(2, UInt64(code.rawValue))
            w.stringField(3, message)
            if !payload.isEmpty { w.bytesField(4, payload) }
        }
    }

    /// GetCase's ResponseEnvelope (OK, payload: GetCaseResponse, field 1 `case`) around a
    /// case already encoded (`EncodedCase.full`).
    static func getCaseReply(requestID: UInt64, caseBytes: [UInt8]) -> [UInt8] {
        ProtoWriter.bytes(capacity: caseBytes.count + 32) { w in
            w.varintField(ResponseEnvelopeField.requestID.rawValue, requestID)
            w.messageField(ResponseEnvelopeField.payload.rawValue) { payload in
                payload.bytesField(GetCaseResponseField.case.rawValue, caseBytes)
            }
        }
    }
}

extension ProtoWriter {
    /// An `IdempotentAnswer`'s fields, in field-number order.
    mutating func idempotentAnswer(_ a: Aftersales_Storage_V1_IdempotentAnswer) {
        stringField(IdempotentAnswerField.key.rawValue, a.key)
        stringField(IdempotentAnswerField.method.rawValue, a.method)
        varintField(IdempotentAnswerField.code.rawValue, UInt64(bitPattern: Int64(a.code.rawValue)))
        stringField(IdempotentAnswerField.message.rawValue, a.message)
        if !a.payload.isEmpty { a.payload.withUnsafeBytes { bytesField(IdempotentAnswerField.payload.rawValue, $0) } }
        int64Field(IdempotentAnswerField.answeredAtMs.rawValue, a.answeredAtMs)
        if !a.fingerprint.isEmpty { a.fingerprint.withUnsafeBytes { bytesField(IdempotentAnswerField.fingerprint.rawValue, $0) } }
        stringField(IdempotentAnswerField.caseID.rawValue, a.caseID)
        varintField(IdempotentAnswerField.caseVersion.rawValue, a.caseVersion)
        if !a.judgement.isEmpty { a.judgement.withUnsafeBytes { bytesField(IdempotentAnswerField.judgement.rawValue, $0) } }
    }
}
