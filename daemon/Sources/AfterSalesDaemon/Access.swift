// Who is calling, and what they may do. With CURVE on, the ZAP handler admits only the
// public keys in the clients file and names each connection after its line (the ZAP
// User-Id); every call is then checked against the *current* file: the caller's role
// (the `(roles)` option of each method in the .proto) and its scope (the merchants or
// consumers it may act for). Identity comes from the key, never from an id in a request.
import AfterSalesProto
import AfterSalesRPC
import CaseEngine
import Foundation
import ZeroMQ

/// The parties one calling service may act for; nil = any.
struct Scope: Sendable, Equatable {
    var merchants: Set<String>?
    var consumers: Set<String>?

    var isUnlimited: Bool { merchants == nil && consumers == nil }

    /// Whether a step by `actor` `actorID` is within the scope.
    func allows(actor: Party, actorID: String) -> Bool {
        switch actor {
        case .merchant: merchants.map { $0.contains(actorID) } ?? true
        case .consumer: consumers.map { $0.contains(actorID) } ?? true
        default: true
        }
    }

    /// Whether the case is one of the scope's parties' (merchant or consumer side).
    func allows(_ c: Case) -> Bool {
        (merchants.map { $0.contains(c.merchantID) } ?? true) && (consumers.map { $0.contains(c.consumerID) } ?? true)
    }

    var description: String {
        [merchants.map { "merchants=" + $0.sorted().joined(separator: ",") },
         consumers.map { "consumers=" + $0.sorted().joined(separator: ",") }].compactMap { $0 }.joined(separator: " ")
    }
}

/// One line of the clients file: a calling service.
struct AllowedClient: Sendable, Equatable {
    let name: String
    let role: Role
    /// The 32-byte CURVE public key.
    let publicKey: [UInt8]
    let scope: Scope
}

/// The clients file, parsed: `NAME ROLE PUBLIC_KEY [merchants=A,B] [consumers=C]`, one a
/// line; a line starting with `#` is a comment (only a whole line: Z85 keys contain '#').
struct AccessList: Sendable {
    let path: String
    private(set) var byName: [String: AllowedClient] = [:]
    private(set) var byKey: [[UInt8]: AllowedClient] = [:]

    /// Reads and checks `path`; throws with the line number of the first mistake.
    init(path: String) throws {
        self.path = path
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw AccessError("cannot read the clients file \(path): \(error.localizedDescription)")
        }
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let words = raw.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }).map(String.init)
            // A comment is a whole line: Z85 keys may hold '#' themselves.
            if words.isEmpty || words[0].hasPrefix("#") { continue }
            let at = "\(path):\(index + 1)"
            guard words.count >= 3 else { throw AccessError("\(at): expected NAME ROLE PUBLIC_KEY [merchants=…] [consumers=…]") }
            guard let role = Role(rawValue: words[1]) else {
                throw AccessError("\(at): role '\(words[1])' is not one of \(Role.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            guard let key = Z85.decode(words[2]) else {
                throw AccessError("\(at): '\(words[2])' is not a CURVE public key (40 Z85 characters, as `aftersalesd keygen` writes)")
            }
            var scope = Scope()
            for word in words.dropFirst(3) {
                let parts = word.split(separator: "=", maxSplits: 1).map(String.init)
                let ids = parts.count == 2 ? Set(parts[1].split(separator: ",").map(String.init)) : []
                switch parts.first {
                case "merchants" where !ids.isEmpty: scope.merchants = ids
                case "consumers" where !ids.isEmpty: scope.consumers = ids
                default: throw AccessError("\(at): scope '\(word)' is not merchants=ID[,ID…] or consumers=ID[,ID…]")
                }
            }
            let client = AllowedClient(name: words[0], role: role, publicKey: key, scope: scope)
            guard byName[client.name] == nil else { throw AccessError("\(at): client '\(client.name)' is named twice") }
            guard byKey[key] == nil else { throw AccessError("\(at): this key is already \(byKey[key]!.name)'s") }
            byName[client.name] = client
            byKey[key] = client
        }
    }

    var count: Int { byName.count }
}

/// A clients file or key that cannot be used.
public struct AccessError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// The ZAP handler's side (ZeroMQ RFC 27): one request in, one reply out.
enum ZAP {
    /// The reply to a ZAP request: 200 with the client's name as User-Id when its key is in
    /// `access`, 400 otherwise; `refused` names the refused key's first characters.
    static func reply(to request: [Frame], access: AccessList?) -> (reply: [Frame], refused: (key: String, address: String)?) {
        // version, request id, domain, address, identity, mechanism, credentials…
        guard request.count >= 6 else { return ([Array("1.0".utf8), [], Array("500".utf8), Array("malformed ZAP request".utf8), [], []], nil) }
        let version = request[0], requestID = request[1]
        let address = String(decoding: request[3], as: UTF8.self)
        let mechanism = String(decoding: request[5], as: UTF8.self)
        if mechanism == "CURVE", request.count >= 7, let client = access?.byKey[request[6]] {
            return ([version, requestID, Array("200".utf8), Array("OK".utf8), Array(client.name.utf8), []], nil)
        }
        let key = request.count >= 7 ? (Z85.encode(request[6]) ?? "?") : "(\(mechanism))"
        return ([version, requestID, Array("400".utf8), Array("key not in the clients file".utf8), [], []],
                (String(key.prefix(8)), address))
    }
}

extension AccessList {
    /// The calling service of a call: who it is (the ZAP User-Id) and what it may do, by
    /// this clients file. UNAUTHENTICATED for a key no longer listed, PERMISSION_DENIED for
    /// a method its role may not call.
    func authorize(_ method: Method, caller: String?) throws(RPCError) -> Caller {
        guard let caller, let client = byName[caller] else {
            throw RPCError(.unauthenticated, "this connection's key \(caller.map { "('\($0)')" } ?? "")is no longer in the clients file; "
                           + "ask the operator to add it back (then reconnect)")
        }
        guard method.roles.contains(client.role) else {
            let allowed = Method.allCases.filter { $0.roles.contains(client.role) }.map { String($0.methodName) }
            throw RPCError(.permissionDenied, "client '\(client.name)' (role \(client.role.rawValue)) may not call \(method.fullName); "
                           + "\(client.role.rawValue) may call \(allowed.joined(separator: ", "))")
        }
        return Caller(name: client.name, scope: client.scope)
    }
}
