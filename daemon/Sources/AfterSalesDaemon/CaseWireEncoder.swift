// A direct protobuf encoder for the engine's `Case`, the daemon's hottest path: every
// GetCase, every change and every snapshot record encodes a case. Going through the
// generated `Aftersales_V1_Case` costs a conversion into class-backed storage, a size pass
// and a write pass per nesting level (≈ 40 % of the daemon's instructions in callgrind);
// this writes the bytes in one pass with no intermediate objects. Field numbers are those
// of proto/aftersales/v1/case.proto; `WireEncodingTests` decodes its output with
// SwiftProtobuf and compares it with the generated mapping, so a field added to the proto
// and not here fails the tests.
import AfterSalesProto
import CaseEngine

struct CaseWireEncoder {
    private(set) var bytes: [UInt8] = []

    init(capacity: Int = 512) {
        bytes.reserveCapacity(capacity)
    }

    /// Case fields 1–24: everything but the history.
    mutating func encodeSummary(_ c: Case) {
        string(1, c.caseID)
        string(2, c.orderID)
        string(3, c.orderLineID)
        string(4, c.consumerID)
        string(5, c.merchantID)
        string(6, c.category)
        string(7, c.reason)
        enumeration(8, c.type)
        enumeration(9, c.delivery)
        int64(10, c.paidAmount)
        int64(11, c.refundAmount)
        enumeration(12, c.returnShippingPayer)
        enumeration(13, c.status)
        message(14) { $0.signals(c.signals) }
        if let p = c.proposal {
            message(15) { e in
                e.int64(1, p.issuedAt)
                e.int64(2, p.expiresAt)
                e.enumeration(3, p.state)
                e.enumeration(4, p.issueKind)
                for reason in p.reasons { e.string(5, reason, always: true) }
                e.int64(6, Int64(p.score))
                e.int64(7, p.decidedAt ?? 0)
            }
        }
        if let o = c.merchantOffer {
            message(16) { e in
                e.enumeration(1, o.type)
                e.int64(2, o.refundAmount)
                e.enumeration(3, o.returnShippingPayer)
                e.string(4, o.note)
                e.int64(5, o.offeredAt)
                e.int64(6, o.expiresAt)
                e.enumeration(7, o.state)
            }
        }
        if let d = c.deadline {
            message(17) { e in
                e.enumeration(1, d.kind)
                e.int64(2, d.dueAt)
            }
        }
        int64(18, c.pausedReviewRemaining ?? 0)
        if let r = c.returnShipment {
            message(19) { e in
                e.string(1, r.carrier)
                e.string(2, r.trackingNumber)
                e.int64(3, r.shippedAt)
            }
        }
        enumeration(20, c.closeReason)
        enumeration(21, c.refundReason)
        int64(22, c.createdAt)
        int64(23, c.updatedAt)
        varintField(24, c.version)
    }

    /// Case field 25, one entry at a time (a repeated field may be written anywhere).
    mutating func encodeHistory(_ history: [HistoryEntry]) {
        for h in history {
            message(25) { e in
                e.int64(1, h.at)
                e.enumeration(2, h.actor)
                e.string(3, h.actorID)
                e.string(4, h.action)
                e.enumeration(5, h.fromStatus)
                e.enumeration(6, h.toStatus)
                e.string(7, h.note)
            }
        }
    }

    private mutating func signals(_ s: Signals) {
        packedEnumerations(1, s.logisticsAnomalies)
        for item in s.evidence {
            message(2) { e in
                e.enumeration(1, item.kind)
                e.packedEnumerations(2, item.tags)
                e.string(3, item.description)
                e.string(4, item.uri)
                e.int64(5, item.addedAt)
            }
        }
        varintField(3, UInt64(s.merchantViolations90d))
        varintField(4, UInt64(s.merchantComplaintRateBasisPoints))
        varintField(5, UInt64(s.consumerRefundOnlyCount30d))
    }

    // MARK: wire primitives (proto3: zero scalars and empty strings are left out)

    private mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    private mutating func tag(_ field: UInt64, _ wireType: UInt64) { varint(field << 3 | wireType) }

    private mutating func varintField(_ field: UInt64, _ value: UInt64) {
        guard value != 0 else { return }
        tag(field, 0)
        varint(value)
    }

    /// int64 and int32 alike: negative values are sign-extended to ten bytes, as protobuf does.
    private mutating func int64(_ field: UInt64, _ value: Int64) {
        varintField(field, UInt64(bitPattern: value))
    }

    private mutating func string(_ field: UInt64, _ value: String, always: Bool = false) {
        guard always || !value.isEmpty else { return }
        tag(field, 2)
        var text = value
        text.withUTF8 { utf8 in
            varint(UInt64(utf8.count))
            bytes.append(contentsOf: utf8)
        }
    }

    /// An engine enum as its proto number: declaration order + 1 (0 = unset), as EnumMapping.
    private mutating func enumeration<E: CaseIterable & Equatable>(_ field: UInt64, _ value: E?) where E.AllCases == [E] {
        guard let value, let index = E.allCases.firstIndex(of: value) else { return }
        varintField(field, UInt64(index + 1))
    }

    private mutating func packedEnumerations<E: CaseIterable & Equatable>(_ field: UInt64, _ values: [E]) where E.AllCases == [E] {
        guard !values.isEmpty else { return }
        message(field) { e in
            for value in values { e.varint(UInt64(E.allCases.firstIndex(of: value)! + 1)) }
        }
    }

    /// A length-delimited field whose content `body` writes in place; the length is
    /// reserved as one byte and widened afterwards in the rare case the body is ≥ 128 bytes.
    private mutating func message(_ field: UInt64, _ body: (inout CaseWireEncoder) -> Void) {
        tag(field, 2)
        let lengthAt = bytes.count
        bytes.append(0)
        body(&self)
        let length = bytes.count - lengthAt - 1
        if length < 0x80 {
            bytes[lengthAt] = UInt8(length)
        } else {
            var prefix: [UInt8] = []
            var v = UInt64(length)
            while v >= 0x80 {
                prefix.append(UInt8(truncatingIfNeeded: v) | 0x80)
                v >>= 7
            }
            prefix.append(UInt8(v))
            bytes.replaceSubrange(lengthAt...lengthAt, with: prefix)
        }
    }
}
