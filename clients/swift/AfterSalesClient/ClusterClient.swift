import AfterSalesProto
import AfterSalesRPC
import Foundation
import SwiftProtobuf
import Synchronization
import ZeroMQ

/// Calls a cluster of daemons, or a daemon on its own, without the caller knowing where a
/// case lives: it reads GetClusterMap from a seed, sends each call to its shard's owner
/// (`RequestRouting`: CreateCase by the order line, the rest by the case id), follows the
/// redirects a member answers with, and retries through a failover — the same
/// idempotency key each time — until the call's deadline. A daemon on its own answers
/// GetClusterMap with itself, so the same code serves both.
public final class ClusterClient: Sendable {
    /// The defaults for calls (as `AfterSalesClient`'s), and the deadline a call retries
    /// within when none is given: `failoverDeadline`.
    public let configuration: AfterSalesClient.Configuration
    /// How long a call keeps retrying through a failover when it has no deadline of its own.
    public let failoverDeadline: Duration
    private let seeds: [String]
    private let context: ZMQContext?
    private let state = Mutex(State())

    private struct State {
        var shardCount: UInt64 = 0
        var owners: [UInt64: String] = [:]
        var members: [String] = []
        var clients: [String: AfterSalesClient] = [:]
    }

    /// A client of the cluster any of `seeds` belongs to (RPC endpoints of members). Nothing
    /// is connected until the first call.
    public init(seeds: [String], configuration: AfterSalesClient.Configuration = .init(), failoverDeadline: Duration = .seconds(15),
                context: ZMQContext? = nil) throws(RPCError) {
        guard !seeds.isEmpty else { throw RPCError(.invalidArgument, "seeds: give at least one member's RPC endpoint") }
        self.seeds = seeds
        self.configuration = configuration
        self.failoverDeadline = failoverDeadline
        self.context = context
    }

    /// Closes every member's connection.
    public func close() {
        let clients = state.withLock { state in
            defer { state.clients.removeAll() }
            return Array(state.clients.values)
        }
        for client in clients { client.close() }
    }

    deinit { close() }

    /// The map as last read (shard count 0 before the first call).
    public var shardCount: UInt64 { state.withLock { $0.shardCount } }

    /// Calls `method` with a serialized request; returns the serialized response.
    public func call(method: Method, payload: [UInt8], options: CallOptions = CallOptions()) async throws(RPCError) -> [UInt8] {
        var options = options
        // One key for every attempt at every member: a retry after a failover is the same call.
        if options.idempotencyKey == nil, method.isMutating { options.idempotencyKey = UUID().uuidString }
        let deadline = ContinuousClock.now + (options.deadline ?? configuration.deadline ?? failoverDeadline)
        var backoff = Duration.milliseconds(25)
        var lastError = RPCError(.unavailable, "no member answered")
        while true {
            if shardCount == 0 { try? await refreshMap() }
            let shard = shardCount == 0 ? nil : RequestRouting.shard(of: method, payload: Data(payload), shardCount: shardCount)
            let endpoint = target(for: shard)
            var attempt = options
            let left = deadline - ContinuousClock.now
            if left <= .zero { throw lastError }
            attempt.deadline = min(left, options.deadline ?? left)
            do {
                return try await client(endpoint).call(method: method, payload: payload, options: attempt)
            } catch {
                guard error.code == .unavailable else { throw error }
                lastError = error
                if let redirect = error.redirect, !redirect.rpcEndpoint.isEmpty, redirect.rpcEndpoint != endpoint {
                    learn(shard: UInt64(redirect.shard), owner: redirect.rpcEndpoint, shardCount: UInt64(redirect.shardCount))
                    continue
                }
                // Between owners, or the member is gone: look again after a pause.
                if ContinuousClock.now + backoff >= deadline { throw lastError }
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .milliseconds(400))
                try? await refreshMap(avoiding: error.redirect == nil ? endpoint : nil)
            }
        }
    }

    /// Calls one RPC with a typed request; returns its typed response.
    public func call<Request, Response>(_ rpc: RPC<Request, Response>, _ request: Request, options: CallOptions = CallOptions()) async throws(RPCError) -> Response {
        let payload: [UInt8]
        do { payload = try request.serializedBytes() } catch {
            throw RPCError(.invalidArgument, "the \(Request.protoMessageName) request does not serialize: \(error)")
        }
        let bytes = try await call(method: rpc.method, payload: payload, options: options)
        do { return try Response(serializedBytes: bytes) } catch {
            throw RPCError(.internal, "the answer does not parse as \(Response.protoMessageName): \(error)")
        }
    }

    /// ListCases over the whole cluster: each member lists its own shards after the page
    /// token, and the pages are merged in case id order. Case ids of all shards are numbers
    /// of one sequence, so the last id returned is each shard's position, and the page
    /// token stays a case id.
    public func listCases(_ request: Aftersales_V1_ListCasesRequest, options: CallOptions = CallOptions()) async throws(RPCError) -> Aftersales_V1_ListCasesResponse {
        if shardCount == 0 { try await refreshMap() }
        let pageSize = request.pageSize == 0 ? 50 : Int(request.pageSize)
        var cases: [Aftersales_V1_Case] = []
        var more = false
        for member in state.withLock({ $0.members }) {
            let page = try await client(member).call(RPCs.listCases, request, options: options)
            cases += page.cases
            more = more || !page.nextPageToken.isEmpty
        }
        cases.sort { $0.caseID < $1.caseID }
        more = more || cases.count > pageSize
        let page = Array(cases.prefix(pageSize))
        return .with {
            $0.cases = page
            $0.nextPageToken = more ? page.last?.caseID ?? "" : ""
        }
    }

    /// Reads GetClusterMap again (from a member other than `avoiding` when there is one).
    public func refreshMap(avoiding unreachable: String? = nil) async throws(RPCError) {
        let known = state.withLock { $0.members }
        var candidates = (known + seeds).filter { $0 != unreachable }
        if candidates.isEmpty { candidates = seeds }
        var lastError = RPCError(.unavailable, "no member answered GetClusterMap")
        var seen: Set<String> = []
        for endpoint in candidates where seen.insert(endpoint).inserted {
            do {
                let map = try await client(endpoint).call(RPCs.getClusterMap, .init(),
                                                          options: CallOptions(deadline: .seconds(2), attemptTimeout: .milliseconds(700), maxAttempts: 2))
                apply(map)
                return
            } catch {
                lastError = error
            }
        }
        throw lastError
    }

    private func apply(_ map: Aftersales_V1_GetClusterMapResponse) {
        state.withLock { state in
            state.shardCount = UInt64(map.shardCount)
            state.owners = [:]
            for owner in map.shards where !owner.rpcEndpoint.isEmpty { state.owners[UInt64(owner.shard)] = owner.rpcEndpoint }
            let members = Set(map.members.map(\.rpcEndpoint).filter { !$0.isEmpty }).union(state.owners.values)
            state.members = members.sorted()
        }
    }

    private func learn(shard: UInt64, owner: String, shardCount: UInt64) {
        state.withLock { state in
            if shardCount > 0 { state.shardCount = shardCount }
            state.owners[shard] = owner
            if !state.members.contains(owner) { state.members.append(owner) }
        }
    }

    /// The member a call for `shard` goes to: its owner when known, else any member.
    private func target(for shard: UInt64?) -> String {
        state.withLock { state in
            if let shard, let owner = state.owners[shard] { return owner }
            return state.members.first ?? seeds[0]
        }
    }

    /// The client of one member, made on first use.
    private func client(_ endpoint: String) throws(RPCError) -> AfterSalesClient {
        if let existing = state.withLock({ $0.clients[endpoint] }) { return existing }
        let made: AfterSalesClient
        do {
            made = try AfterSalesClient(endpoint: endpoint, configuration: configuration, context: context)
        } catch let error as RPCError {
            throw error
        } catch {
            throw RPCError(.invalidArgument, "cannot use endpoint \(endpoint): \(error)")
        }
        return state.withLock { state in
            if let raced = state.clients[endpoint] { return raced }
            state.clients[endpoint] = made
            return made
        }
    }
}
