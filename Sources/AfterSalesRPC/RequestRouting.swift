import AfterSalesProto
import Foundation

/// Which shard a call belongs to, read from its serialized request: CreateCase by its
/// order line, a call naming a case by the case id, ReplayEvents by its shard field. The
/// one rule a cluster member routes by and a client sends by; field numbers come from the
/// contract's descriptors.
public enum RequestRouting {
    /// The call's shard in a cluster of `shardCount`; nil for calls any member answers
    /// (and for a case id no daemon made).
    public static func shard(of method: Method, payload: Data, shardCount: UInt64) -> UInt64? {
        switch method {
        case .createCase:
            let order = firstString(orderIDField, in: payload) ?? ""
            let line = firstString(orderLineIDField, in: payload) ?? ""
            return ShardKey.shard(orderID: order, orderLineID: line, shardCount: shardCount)
        default:
            guard let field = caseIDField[method], let caseID = firstString(field, in: payload) else { return nil }
            return ShardKey.shard(caseID: caseID, shardCount: shardCount)
        }
    }

    /// Whether the method's request names a case (and so belongs to that case's shard).
    public static func namesACase(_ method: Method) -> Bool { caseIDField[method] != nil }

    /// The case id a call names, if its request has one.
    public static func caseID(of method: Method, payload: Data) -> String? {
        caseIDField[method].flatMap { firstString($0, in: payload) }
    }

    private static let orderIDField = UInt64(Contract.requestFieldNumber("order_id", of: .createCase)!)
    private static let orderLineIDField = UInt64(Contract.requestFieldNumber("order_line_id", of: .createCase)!)
    private static let caseIDField: [Method: UInt64] = Dictionary(uniqueKeysWithValues: Method.allCases.compactMap { method in
        Contract.requestFieldNumber("case_id", of: method).map { (method, UInt64($0)) }
    })

    /// The first length-delimited field `wanted` of a serialized message, as text; nil when
    /// it is absent or the bytes do not parse.
    static func firstString(_ wanted: UInt64, in payload: Data) -> String? {
        let found = try? WireReader.reading(payload) { (reader: inout WireReader) throws(WireFailure) -> String? in
            while !reader.isAtEnd {
                let (field, wireType) = try reader.tag()
                if field == wanted, wireType == 2 { return String(decoding: try reader.lengthDelimited(), as: UTF8.self) }
                try reader.skip(field: field, wireType: wireType)
            }
            return nil
        }
        return found ?? nil
    }
}
