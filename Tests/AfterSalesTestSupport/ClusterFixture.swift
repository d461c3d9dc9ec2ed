// A cluster for tests and benchmarks: a throwaway PostgreSQL with a cluster created in
// it, members started as real aftersalesd processes on loopback, and a caller that
// follows redirects the way a cluster-aware client does.
import AfterSalesProto
import AfterSalesRPC
import Foundation
import SwiftProtobuf
import ZeroMQ

#if canImport(Glibc)
import Glibc
#endif

/// PostgreSQL, `aftersalesd cluster init`, and members.
public final class ClusterFixture: @unchecked Sendable {
    public let postgres: PostgresServer
    public let shardCount: UInt64
    public let leaseTTL: String
    /// Members started so far (killed ones stay in the list).
    public private(set) var members: [DaemonProcess] = []
    private let memberArguments: [String]

    /// A cluster of `shards` shards with `members` members (leases of `leaseTTL`).
    public init(shards: UInt64 = 8, members: Int = 2, leaseTTL: String = "2s", arguments: [String] = []) throws {
        postgres = try PostgresServer()
        shardCount = shards
        self.leaseTTL = leaseTTL
        memberArguments = arguments
        let created = try runDaemon(["cluster", "init", "--shards", String(shards), postgres.url])
        guard created.status == 0 else { throw TestSupportError("cluster init failed (\(created.status)): \(created.stderr)") }
        for _ in 0..<members { try addMember() }
    }

    /// Starts one more member.
    @discardableResult
    public func addMember(arguments: [String] = []) throws -> DaemonProcess {
        let member = try DaemonProcess(arguments: ["--cluster", postgres.url, "--lease-ttl", leaseTTL, "--member-name", "m\(members.count)"]
                                       + memberArguments + arguments)
        members.append(member)
        return member
    }

    /// The members still running.
    public var running: [DaemonProcess] { members.filter { $0.process.isRunning } }

    /// The ownership table as a running member reads it.
    public func map() throws -> Aftersales_V1_GetClusterMapResponse {
        var lastError: (any Error)?
        for member in running {
            do {
                let caller = try TestCaller(member.rpc, receiveTimeoutMs: 3_000)
                return try caller.call(RPCs.getClusterMap, .init())
            } catch {
                lastError = error
            }
        }
        throw lastError ?? TestSupportError("no member is running")
    }

    /// An id no case has, in `shard`: a GetCase for it is NOT_FOUND exactly when the shard is served.
    public func probeCaseID(shard: UInt64) -> String {
        let number = 99_999 * shardCount + shard
        return "AS" + String(repeating: "0", count: max(0, 10 - String(number).count)) + String(number)
    }

    /// Whether `member` serves `shard` now (answers NOT_FOUND for a case id of it).
    public func serves(_ member: DaemonProcess, shard: UInt64) -> Bool {
        guard let caller = try? TestCaller(member.rpc, receiveTimeoutMs: 2_000),
              let answer = try? caller.callRaw(.getCase, Aftersales_V1_GetCaseRequest.with { $0.caseID = probeCaseID(shard: shard) }) else { return false }
        return answer.code == .notFound
    }

    /// Waits (bounded) until every shard is served by a running member and each running
    /// member serves at least its even share (floor(S / members)); returns shard → member.
    @discardableResult
    public func waitUntilServed(within timeout: Duration = .seconds(30)) throws -> [UInt64: DaemonProcess] {
        let deadline = ContinuousClock.now + timeout
        while true {
            var servedBy: [UInt64: DaemonProcess] = [:]
            let members = running
            for shard in 0..<shardCount {
                if let member = members.first(where: { serves($0, shard: shard) }) { servedBy[shard] = member }
            }
            let share = Int(shardCount) / max(1, members.count)
            let balanced = members.allSatisfy { member in servedBy.values.filter { $0 === member }.count >= share }
            if servedBy.count == Int(shardCount), balanced { return servedBy }
            guard ContinuousClock.now < deadline else {
                throw TestSupportError("after \(timeout) only \(servedBy.count) of \(shardCount) shards are served; logs:\n"
                                       + running.map { String($0.stderr.suffix(1500)) }.joined(separator: "\n---\n"))
            }
            usleep(50_000)
        }
    }

    deinit {
        for member in members where member.process.isRunning { member.kill() }
    }
}

/// Sends each call to any member and follows UNAVAILABLE redirects (at most a few hops),
/// retrying while a shard is between owners — what a cluster-aware client does.
public final class ClusterCaller {
    private var callers: [String: TestCaller] = [:]
    private var entry: [String]
    private let receiveTimeoutMs: Int32

    /// Starts from `endpoints` (any members).
    public init(_ endpoints: [String], receiveTimeoutMs: Int32 = 3_000) {
        entry = endpoints
        self.receiveTimeoutMs = receiveTimeoutMs
    }

    private func caller(_ endpoint: String) throws -> TestCaller {
        if let existing = callers[endpoint] { return existing }
        let made = try TestCaller(endpoint, receiveTimeoutMs: receiveTimeoutMs)
        callers[endpoint] = made
        return made
    }

    /// One call, following redirects and retrying UNAVAILABLE until `within` has passed.
    /// Returns the last answer and the member that gave it.
    public func call(_ method: Method, _ request: some SwiftProtobuf.Message, key: String = "",
                     within timeout: Duration = .seconds(15)) throws -> (answer: ResponseEnvelope, endpoint: String) {
        let deadline = ContinuousClock.now + timeout
        var endpoint = entry[0]
        var rotation = 0
        while true {
            var answer: ResponseEnvelope?
            do {
                answer = try caller(endpoint).callRaw(method, request, key: key)
            } catch {
                // No answer (a member that died): forget the socket, try another member.
                callers[endpoint] = nil
                rotation += 1
                endpoint = entry[rotation % entry.count]
            }
            if let answer {
                if answer.code != .unavailable { return (answer, endpoint) }
                if answer.hasRedirect, !answer.redirect.rpcEndpoint.isEmpty, answer.redirect.rpcEndpoint != endpoint {
                    endpoint = answer.redirect.rpcEndpoint
                    continue
                }
                guard ContinuousClock.now < deadline else { return (answer, endpoint) }
                if answer.hasRedirect, answer.redirect.rpcEndpoint.isEmpty {
                    rotation += 1
                    endpoint = entry[rotation % entry.count]
                }
            }
            guard ContinuousClock.now < deadline else { throw TestSupportError("\(method.fullName): no answer within \(timeout)") }
            usleep(50_000)
        }
    }

    /// Replaces the members to start from (after one was killed, say).
    public func use(_ endpoints: [String]) { entry = endpoints }
}
