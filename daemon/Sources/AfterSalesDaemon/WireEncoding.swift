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
        var encoder = CaseWireEncoder()
        encoder.encodeSummary(c)
        summaryCount = encoder.bytes.count
        encoder.encodeHistory(c.history)
        full = encoder.bytes
    }

    /// The case without its history: what announcements and list pages carry.
    var summary: [UInt8] { Array(full[..<summaryCount]) }

    /// Only the summary, for callers that never need the history.
    static func summary(of c: Case) -> [UInt8] {
        var encoder = CaseWireEncoder()
        encoder.encodeSummary(c)
        return encoder.bytes
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
        var bytes: [UInt8] = []
        bytes.reserveCapacity(encoded.full.count + 64)
        ProtoWire.appendField(1, encoded.full, to: &bytes)
        if let judgement { ProtoWire.appendField(2, judgement, to: &bytes) }
        return bytes
    }

    /// A serialized `Judgement`, as responses carry it and idempotent answers keep it.
    static func judgement(_ judgement: Judgement) -> [UInt8] {
        try! Aftersales_V1_Judgement(judgement).serializedBytes()
    }

    /// GetCaseResponse: field 1 `case`.
    static func getCaseResponse(_ encoded: EncodedCase) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(encoded.full.count + 6)
        ProtoWire.appendField(1, encoded.full, to: &bytes)
        return bytes
    }

    /// A journal entry: everything but the case through SwiftProtobuf, then field 2 `case`.
    static func journalEntry(_ entry: Aftersales_Storage_V1_JournalEntry, case encoded: EncodedCase) -> [UInt8] {
        var bytes: [UInt8] = try! entry.serializedBytes()
        bytes.reserveCapacity(bytes.count + encoded.full.count + 6)
        ProtoWire.appendField(2, encoded.full, to: &bytes)
        return bytes
    }

    /// A ResponseEnvelope: request_id (1), code (2), message (3), payload (4).
    static func responseEnvelope(requestID: UInt64, code: Aftersales_V1_StatusCode, message: String, payload: some Collection<UInt8>) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(payload.count + message.utf8.count + 24)
        ProtoWire.appendVarintField(1, requestID, to: &bytes)
        ProtoWire.appendVarintField(2, UInt64(code.rawValue), to: &bytes)
        if !message.isEmpty { ProtoWire.appendField(3, Array(message.utf8), to: &bytes) }
        if !payload.isEmpty {
            ProtoWire.appendVarint(4 << 3 | 2, to: &bytes)
            ProtoWire.appendVarint(UInt64(payload.count), to: &bytes)
            bytes.append(contentsOf: payload)
        }
        return bytes
    }
}
