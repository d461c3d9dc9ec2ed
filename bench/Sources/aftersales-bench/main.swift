// aftersales-bench: the benchmark driver behind `make bench` (bench/run.sh starts and
// stops the processes; this program only talks to them). Every subcommand is bounded in
// time and count and prints one JSON object on one line of stdout; progress goes to
// stderr. See bench/README.md for what each figure means.
import AfterSalesProto
import AfterSalesRPC
import AfterSalesTestSupport
import ArgumentParser
import Foundation
import Histogram
import ZeroMQ

#if canImport(Glibc)
import Glibc
#endif

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aftersales-bench",
        abstract: "Benchmarks for aftersalesd (driven by bench/run.sh).",
        subcommands: [Prepare.self, Latency.self, Throughput.self, Expiry.self, Burst.self, Scale.self, Refused.self, Failover.self, ClusterReady.self, FailoverNotices.self,
                      ClientLatency.self, ClientThroughput.self, SocketLatency.self]
    )
}

// MARK: - prepare

struct Prepare: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create one case with a proposal; print its id and the GetCase request/reply sizes.")
    @Option(help: "The daemon's RPC endpoint.") var endpoint: String
    @OptionGroup var curve: CurveOptions

    func run() throws {
        let context = try ZMQContext()
        let caller = try TestCaller(endpoint, context: context, receiveTimeoutMs: 60_000, curve: curve.credentials)
        // In a cluster the case is made on (and read from) the member that owns its shard.
        let proposal = Cases.proposal(order: runPrefix("lat"))
        var answer = try caller.callRaw(.createCase, proposal)
        var owner = endpoint
        if answer.code == .unavailable, answer.hasRedirect, !answer.redirect.rpcEndpoint.isEmpty {
            owner = answer.redirect.rpcEndpoint
            answer = try TestCaller(owner, context: context, receiveTimeoutMs: 60_000, curve: curve.credentials).callRaw(.createCase, proposal)
        }
        let created = try answer.decodedPayload(as: Aftersales_V1_CreateCaseResponse.self)
        let request = Cases.getCase(1, created.case.caseID)
        let req = try ZMQSocket(context, .req)
        try req.setReceiveTimeout(10_000)
        try curve.apply(to: req)
        try req.connect(owner)
        try req.send(request)
        guard let reply = try req.receive(), reply.count == 1 else { throw BenchError("no GetCase reply") }
        let env = try ResponseEnvelope(serializedBytes: reply[0])
        _ = try env.decodedPayload(as: Aftersales_V1_GetCaseResponse.self)
        emit(["case_id": created.case.caseID, "endpoint": owner, "request_bytes": request.count, "reply_bytes": reply[0].count])
    }
}

// MARK: - latency

struct Latency: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "GetCase round trips through a REQ socket, one at a time. The same request bytes go to the daemon or to the libzmq echo server.")
    @Option(help: "REQ endpoint (daemon or bench/echo server).") var endpoint: String
    @Option(help: "Label for the output: daemon or echo.") var target: String = "daemon"
    @Option(help: "The case to get (from `prepare`).") var caseId: String
    @Option(help: "Measured round trips (upper bound).") var count: Int = 20_000
    @Option(help: "Stop measuring after this many seconds.") var seconds: Double = 10
    @Option(help: "Unmeasured round trips first.") var warmup: Int = 2_000
    @Flag(help: "Encode the request and decode the answer (envelope and GetCaseResponse) on every call: the bare socket doing the protobuf work of a typed client call (daemon only).")
    var typed = false
    @OptionGroup var curve: CurveOptions

    func run() throws {
        let context = try ZMQContext()
        let req = try ZMQSocket(context, .req)
        try req.setReceiveTimeout(10_000)
        try curve.apply(to: req)
        try req.connect(endpoint)
        let request = Cases.getCase(1, caseId)
        var h = latencyHistogram()
        var replyBytes = 0
        // The reply is checked (decoded) on the first call only, on both targets, so the
        // client does the same work per call for the daemon and for the echo.
        try req.send(request)
        guard let first = try req.receive() else { throw BenchError("\(target): no reply") }
        replyBytes = first[0].count
        if target == "daemon" {
            let env = try ResponseEnvelope(serializedBytes: first[0])
            _ = try env.decodedPayload(as: Aftersales_V1_GetCaseResponse.self)
        }
        for _ in 0..<warmup {
            try req.send(request)
            guard try req.receive() != nil else { throw BenchError("\(target): reply timeout") }
        }
        let deadline = monoNanos() + UInt64(seconds * 1e9)
        var n = 0
        let began = monoNanos()
        let cpuBegan = processCPUNanos()
        while n < count {
            let t0 = monoNanos()
            try req.send(typed ? Cases.getCase(UInt64(n + 2), caseId) : request)
            guard let reply = try req.receive(), typed || reply[0].count == replyBytes else { throw BenchError("\(target): bad or missing reply") }
            if typed {
                let answer = try ResponseEnvelope(serializedBytes: reply[0]).decodedPayload(as: Aftersales_V1_GetCaseResponse.self)
                guard answer.case.caseID == caseId else { throw BenchError("\(target): another case") }
            }
            let t1 = monoNanos()
            _ = h.record(t1 - t0)
            n += 1
            if t1 > deadline { break }
        }
        var out = summary(h, "rtt")
        out["bench"] = "latency"
        out["target"] = target
        out["curve"] = curve.key != nil
        out["reply_bytes"] = replyBytes
        out["request_bytes"] = request.count
        if typed { out["typed"] = true }
        out["calls_per_s"] = (Double(n) / (Double(monoNanos() - began) / 1e9)).rounded()
        out["cpu_us_per_call"] = (Double(processCPUNanos() - cpuBegan) / 1e3 / Double(max(1, n))).rounded(toPlaces: 2)
        emit(out)
    }
}

// MARK: - throughput

struct Throughput: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Mutating calls (CreateCase, then MerchantAgree on it) from N DEALER callers, each with K calls in flight, on one client thread.")
    @Option(help: "The daemon's RPC endpoint.") var endpoint: String
    @Option(help: "Label for the output.") var label: String = "daemon"
    @Option(help: "DEALER sockets (callers).") var connections: Int = 50
    @Option(help: "Calls in flight per caller (1 = no pipelining).") var inflight: Int = 1
    @Option(help: "Measured seconds.") var seconds: Double = 5
    @Option(help: "Unmeasured seconds first.") var warmupSeconds: Double = 1
    @Flag(help: "Each caller creates on one socket and agrees on a second (as two services would: with CURVE, a consumer and a merchant key).")
    var splitRoles = false
    @Flag(help: "The endpoint is a cluster member: read GetClusterMap and send each call straight to its shard's owner (one socket per caller and member).")
    var cluster = false
    @Flag(help: "Every call is a CreateCase of a new order line (no MerchantAgree): the work of row 10's Redis+Lua and PostgreSQL peers.")
    var createOnly = false
    @Option(help: "A server process (repeatable; a process's children count with it, e.g. a PostgreSQL postmaster's backends): report their CPU time per call over the measured seconds (server_cpu_us_per_call).")
    var serverPid: [Int32] = []
    @Flag(help: "Speak ZMTP 3.0 from the driver's own thread instead of through libzmq (NULL mechanism, one endpoint): a lean load generator, as redis-benchmark is for Redis and pgbench for PostgreSQL.")
    var rawZmtp = false
    @OptionGroup var curve: CurveOptions

    func run() throws {
        let context = try ZMQContext()
        var sockets: [ZMQSocket] = []
        let split = splitRoles || curve.merchantKey != nil
        if rawZmtp && (split || cluster || curve.key != nil) {
            throw ValidationError("--raw-zmtp is one endpoint, one socket per caller, no CURVE")
        }
        // Members (one in the single-node case) and which serves each shard.
        var members = [endpoint]
        var ownerOfShard: [Int] = [0]
        if cluster {
            let map = try TestCaller(endpoint, context: context).call(RPCs.getClusterMap, .init())
            members = Array(Set(map.shards.map(\.rpcEndpoint).filter { !$0.isEmpty })).sorted()
            ownerOfShard = map.shards.sorted { $0.shard < $1.shard }.map { members.firstIndex(of: $0.rpcEndpoint) ?? 0 }
        }
        let shardCount = UInt64(ownerOfShard.count)
        let socketsPerCaller = (split ? 2 : 1) * members.count
        for index in 0..<(rawZmtp ? 0 : connections * socketsPerCaller) {
            let s = try ZMQSocket(context, .dealer)
            try s.setSendHighWaterMark(0)
            try s.setReceiveHighWaterMark(0)
            try curve.apply(to: s, merchant: split && (index % socketsPerCaller) >= members.count)
            try s.connect(members[index % members.count])
            sockets.append(s)
        }
        let callers: any CallerConnections = rawZmtp
            ? try ZMTPDealers(endpoint: endpoint, connections: connections)
            : try LibzmqDealers(sockets)
        // Let the connections come up before the clock starts.
        Thread.sleep(forTimeInterval: 0.3)
        let prefix = runPrefix("tp-\(label)")
        let slots = connections * inflight
        var sentAt = [UInt64](repeating: 0, count: slots)
        var pendingCase = [String?](repeating: nil, count: slots)
        var seq: UInt64 = 0
        var orderN = 0
        var outstanding = 0
        var h = latencyHistogram()
        var measured = 0, errors = 0, creates = 0, agrees = 0
        var firstError = ""

        func send(_ slot: Int) throws {
            seq += 1
            let id = (seq << 20) | UInt64(slot)
            let body: [UInt8]
            let shard: UInt64
            if let caseID = pendingCase[slot] {
                body = Cases.envelope(id, .merchantAgree, Aftersales_V1_MerchantAgreeRequest.with {
                    $0.caseID = caseID
                    $0.merchantID = "M-bench"
                    $0.note = "ok"
                })
                shard = ShardKey.shard(caseID: caseID, shardCount: shardCount) ?? 0
            } else {
                orderN += 1
                let request = Cases.plain(order: "\(prefix)-\(orderN)")
                body = Cases.envelope(id, .createCase, request)
                shard = ShardKey.shard(orderID: request.orderID, orderLineID: request.orderLineID, shardCount: shardCount)
            }
            sentAt[slot] = monoNanos()
            let agreeing = split && pendingCase[slot] != nil
            let socket = (slot / inflight) * socketsPerCaller + (agreeing ? members.count : 0) + ownerOfShard[Int(shard)]
            try callers.send(socket, body: body)
            outstanding += 1
        }

        let start = monoNanos()
        let measureFrom = start + UInt64(warmupSeconds * 1e9)
        let measureTo = measureFrom + UInt64(seconds * 1e9)
        var cpuAtFrom: UInt64?, cpuAtTo: UInt64?
        var serverCPUFrom: UInt64?, serverCPUTo: UInt64?
        var threadsFrom: [String: UInt64] = [:], threadsTo: [String: UInt64] = [:]
        for slot in 0..<slots { try send(slot) }
        var stopping = false
        let hardStop = measureTo + 10_000_000_000
        while outstanding > 0 {
            let now0 = monoNanos()
            if now0 >= measureFrom && cpuAtFrom == nil {
                cpuAtFrom = processCPUNanos()
                if !serverPid.isEmpty {
                    serverCPUFrom = processTreeCPUNanos(serverPid)
                    threadsFrom = threadCPUNanos(serverPid[0])
                }
            }
            if now0 >= measureTo && cpuAtTo == nil {
                cpuAtTo = processCPUNanos()
                if !serverPid.isEmpty {
                    serverCPUTo = processTreeCPUNanos(serverPid)
                    threadsTo = threadCPUNanos(serverPid[0])
                }
            }
            if now0 >= measureTo { stopping = true }
            if now0 > hardStop { throw BenchError("\(outstanding) calls unanswered 10 s after the end") }
            try callers.poll(timeoutMilliseconds: 100) { body in
                let now = monoNanos()
                outstanding -= 1
                guard let body, let env = try? ResponseEnvelope(serializedBytes: body) else {
                    errors += 1
                    return
                }
                let slot = Int(env.requestID & 0xFFFFF)
                let inWindow = sentAt[slot] >= measureFrom && now <= measureTo
                if env.code != .ok {
                    errors += 1
                    if firstError.isEmpty { firstError = "\(env.code.name): \(env.message)" }
                    pendingCase[slot] = nil
                } else if pendingCase[slot] == nil {
                    // A CreateCase answer: the next call on this slot agrees to it.
                    let created = try env.decodedPayload(as: Aftersales_V1_CreateCaseResponse.self)
                    pendingCase[slot] = createOnly ? nil : created.case.caseID
                    if inWindow { creates += 1 }
                } else {
                    pendingCase[slot] = nil
                    if inWindow { agrees += 1 }
                }
                if inWindow {
                    measured += 1
                    _ = h.record(now - sentAt[slot])
                }
                if !stopping { try send(slot) }
            }
        }
        var out = summary(h, "call")
        out["bench"] = "throughput"
        out["label"] = label
        out["curve"] = curve.key != nil
        out["connections"] = connections
        out["members"] = members.count
        out["inflight"] = inflight
        if createOnly { out["create_only"] = true }
        out["calls_per_s"] = (Double(measured) / seconds).rounded()
        if let cpuAtFrom, let cpuAtTo, measured > 0 {
            out["cpu_us_per_call"] = (Double(cpuAtTo - cpuAtFrom) / 1e3 / Double(measured)).rounded(toPlaces: 2)
        }
        if let serverCPUFrom, let serverCPUTo, measured > 0 {
            out["server_cpu_us_per_call"] = (Double(serverCPUTo - serverCPUFrom) / 1e3 / Double(measured)).rounded(toPlaces: 2)
            // How busy the server's busiest thread was (the daemon's loop, as a share of one
            // core): below 1, the calls/s are bounded by the round trips, not by its CPU.
            let busiest = threadsTo.map { ($0.key, Double($0.value - (threadsFrom[$0.key] ?? $0.value)) / (seconds * 1e9)) }
                .max { $0.1 < $1.1 }
            if let busiest {
                out["server_busiest_thread"] = busiest.0
                out["server_busiest_thread_share"] = busiest.1.rounded(toPlaces: 2)
            }
        }
        out["creates"] = creates
        out["agrees"] = agrees
        out["errors"] = errors
        if !firstError.isEmpty { out["first_error"] = firstError }
        emit(out)
    }
}

// MARK: - expiry precision

struct Expiry: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create N proposals paced over a spread, then measure proposal.expired lateness (arrival − expires_at) on a SUB socket.")
    @Option(help: "The daemon's RPC endpoint.") var rpc: String
    @Option(help: "The daemon's PUB endpoint.") var pub: String
    @Option(help: "Proposals to create.") var count: Int = 1_000_000
    @Option(help: "Pace creation over this many seconds (so deadlines spread over it); 0 = as fast as possible.") var spreadSeconds: Double = 60
    @Option(help: "Give up waiting this many seconds after the last expires_at.") var graceSeconds: Double = 20
    @Option(help: "The daemon's --proposal-ttl in seconds (reported only).") var ttlSeconds: Double = 0
    @Option var connections: Int = 4
    @Option var inflight: Int = 64

    func run() throws {
        let subscriber = ExpirySubscriber()
        subscriber.start(endpoint: pub)
        subscriber.ready.wait()
        let context = try ZMQContext()
        let prefix = runPrefix("exp")
        var created = 0, withProposal = 0
        var minExp = Int64.max, maxExp = Int64.min
        log("expiry: creating \(count) proposals over ≥ \(spreadSeconds) s")
        let creation = try createPipelined(
            context: context, endpoint: rpc, count: count, connections: connections, inflight: inflight,
            ratePerSecond: spreadSeconds > 0 ? Double(count) / spreadSeconds : 0,
            build: { Cases.proposal(order: "\(prefix)-\($0)") },
            onCreated: { response in
                created += 1
                if response.case.status == .proposalPending {
                    withProposal += 1
                    minExp = min(minExp, response.case.proposal.expiresAtMs)
                    maxExp = max(maxExp, response.case.proposal.expiresAtMs)
                }
            })
        log("expiry: created \(created) (\(withProposal) proposals) in \(String(format: "%.1f", creation.seconds)) s; waiting for expiries")
        let giveUpUs = (maxExp + Int64(graceSeconds * 1000)) * 1000
        while subscriber.received < withProposal && wallMicros() < giveUpUs {
            Thread.sleep(forTimeInterval: 0.05)
        }
        subscriber.stop()
        subscriber.done.wait()
        let missing = withProposal - subscriber.seen.count
        var out = summary(subscriber.lateness, "lateness")
        out["bench"] = "expiry"
        out["proposals"] = withProposal
        out["create_errors"] = creation.errors
        if !creation.firstError.isEmpty { out["first_error"] = creation.firstError }
        out["create_seconds"] = creation.seconds.rounded(toPlaces: 2)
        out["create_per_s"] = (Double(created) / creation.seconds).rounded()
        if ttlSeconds > 0 { out["ttl_s"] = ttlSeconds }
        out["deadline_spread_s"] = (Double(maxExp - minExp) / 1000).rounded(toPlaces: 2)
        out["received"] = subscriber.received
        out["missing"] = missing
        out["duplicates"] = subscriber.duplicates
        out["late_flagged"] = subscriber.lateFlagged
        emit(out)
    }
}

// MARK: - burst

struct Burst: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "N proposals expiring together while an open-loop GetCase load runs: GetCase latency during the burst vs before it.")
    @Option(help: "The daemon's RPC endpoint.") var rpc: String
    @Option(help: "The daemon's PUB endpoint.") var pub: String
    @Option(help: "The daemon's pid (for --freeze).") var pid: Int32 = 0
    @Option(help: "Proposals in the burst.") var count: Int = 100_000
    @Option(help: "GetCase calls per second (open loop).") var rate: Double = 2_000
    @Option(help: "Longest baseline window, seconds.") var baselineSeconds: Double = 5
    @Flag(help: "Stop the daemon (SIGSTOP) from just before the first deadline until after the last, so every deadline is due at the same instant when it resumes.") var freeze = false
    @Option var connections: Int = 4
    @Option var inflight: Int = 64

    func run() throws {
        let context = try ZMQContext()
        let prefix = runPrefix(freeze ? "burstf" : "burst")
        // Cases for the GetCase load (no deadlines of interest).
        var probeIDs: [String] = []
        _ = try createPipelined(context: context, endpoint: rpc, count: 256, build: { Cases.plain(order: "\(prefix)-probe-\($0)") },
                                onCreated: { probeIDs.append($0.case.caseID) })
        let subscriber = ExpirySubscriber()
        subscriber.start(endpoint: pub)
        subscriber.ready.wait()
        var withProposal = 0
        var minExp = Int64.max, maxExp = Int64.min
        log("burst: creating \(count) proposals as fast as possible")
        let creation = try createPipelined(
            context: context, endpoint: rpc, count: count, connections: connections, inflight: inflight,
            build: { Cases.proposal(order: "\(prefix)-\($0)") },
            onCreated: { response in
                if response.case.status == .proposalPending {
                    withProposal += 1
                    minExp = min(minExp, response.case.proposal.expiresAtMs)
                    maxExp = max(maxExp, response.case.proposal.expiresAtMs)
                }
            })
        // Wall-clock ms → monotonic ns.
        let offset = Int64(monoNanos()) - wallMicros() * 1_000
        func mono(wallMs: Int64) -> UInt64 { UInt64(max(0, wallMs * 1_000_000 + offset)) }
        let firstDue = mono(wallMs: minExp)
        guard monoNanos() + 1_500_000_000 < firstDue else {
            throw BenchError("creating \(count) proposals took \(creation.seconds) s: longer than the proposal TTL allows for a baseline; raise --proposal-ttl")
        }
        log("burst: created \(withProposal) in \(String(format: "%.1f", creation.seconds)) s; deadlines spread over \(maxExp - minExp) ms; load at \(Int(rate))/s")
        let control = LoadControl()
        startOpenLoopGetCase(endpoint: rpc, caseIDs: probeIDs, ratePerSecond: rate, control: control)
        let loadStart = monoNanos()
        let baselineFrom = loadStart + 500_000_000
        let baselineTo = min(firstDue - 300_000_000, baselineFrom + UInt64(baselineSeconds * 1e9))
        var duringFrom = firstDue
        var stoppedMs = 0.0
        if freeze {
            sleepNanos(baselineTo > monoNanos() ? baselineTo - monoNanos() : 0)
            control.paused = true
            let limit = monoNanos() + 2_000_000_000
            while !control.idle && monoNanos() < limit { sleepNanos(1_000_000) }
            guard kill(pid, SIGSTOP) == 0 else { throw BenchError("cannot SIGSTOP \(pid)") }
            let stopAt = monoNanos()
            let resumeAt = mono(wallMs: maxExp) + 50_000_000
            sleepNanos(resumeAt > monoNanos() ? resumeAt - monoNanos() : 0)
            kill(pid, SIGCONT)
            duringFrom = monoNanos()
            stoppedMs = Double(duringFrom - stopAt) / 1e6
            control.paused = false
        }
        let giveUp = mono(wallMs: maxExp) + 30_000_000_000
        while subscriber.received < withProposal && monoNanos() < giveUp { sleepNanos(5_000_000) }
        let lastArrival = subscriber.lastArrivalMono
        sleepNanos(500_000_000)
        control.stopRequested = true
        control.done.wait()
        subscriber.stop()
        subscriber.done.wait()
        let duringTo = max(lastArrival, duringFrom + 1_000_000)
        let before = window(control.samples, from: baselineFrom, to: baselineTo)
        let during = window(control.samples, from: duringFrom, to: duringTo)
        var out = summary(before, "before")
        out.merge(summary(during, "during")) { a, _ in a }
        out["bench"] = freeze ? "burst_freeze" : "burst"
        out["proposals"] = withProposal
        out["received"] = subscriber.received
        out["missing"] = withProposal - subscriber.seen.count
        out["create_seconds"] = creation.seconds.rounded(toPlaces: 2)
        out["create_per_s"] = (Double(count) / creation.seconds).rounded()
        out["deadline_spread_ms"] = maxExp - minExp
        out["expiry_window_ms"] = (Double(duringTo - duringFrom) / 1e6).rounded(toPlaces: 1)
        out["stopped_ms"] = stoppedMs.rounded(toPlaces: 1)
        out["load_errors"] = control.errors
        out["rate"] = rate
        emit(out)
    }
}

// MARK: - scale

struct Scale: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fill the daemon with N open cases: RSS per case, snapshot duration, GetCase latency while the snapshot is written vs before, then a journal tail for the restart test.")
    @Option(help: "The daemon's RPC endpoint.") var rpc: String
    @Option(help: "The daemon's pid (for VmRSS).") var pid: Int32
    @Option(help: "Open cases to create.") var count: Int = 1_000_000
    @Option(help: "Cases created after the snapshot (the journal a restart replays).") var journalTail: Int = 50_000
    @Option(help: "GetCase calls per second (open loop).") var rate: Double = 2_000
    @Option(help: "Baseline window, seconds.") var baselineSeconds: Double = 5
    @Option var connections: Int = 4
    @Option var inflight: Int = 64

    func run() throws {
        let context = try ZMQContext()
        let prefix = runPrefix("scale")
        let rss0 = residentBytes(pid: pid)
        var ids: [String] = []
        ids.reserveCapacity(4096)
        var n = 0
        log("scale: creating \(count) open cases")
        let creation = try createPipelined(
            context: context, endpoint: rpc, count: count, connections: connections, inflight: inflight,
            build: { Cases.plain(order: "\(prefix)-\($0)") },
            onCreated: { response in
                n += 1
                if n % 251 == 0 && ids.count < 4096 { ids.append(response.case.caseID) }
            })
        Thread.sleep(forTimeInterval: 1.0)
        let rss1 = residentBytes(pid: pid)
        log("scale: created \(n) in \(String(format: "%.1f", creation.seconds)) s; RSS \(rss1 >> 20) MiB; snapshot under load")
        let control = LoadControl()
        startOpenLoopGetCase(endpoint: rpc, caseIDs: ids, ratePerSecond: rate, control: control)
        let baselineFrom = monoNanos() + 500_000_000
        let baselineTo = baselineFrom + UInt64(baselineSeconds * 1e9)
        sleepNanos(baselineTo - monoNanos())
        let admin = try TestCaller(rpc, context: context, receiveTimeoutMs: 300_000)
        let snapFrom = monoNanos()
        let snapshot = try admin.call(RPCs.takeSnapshot, .init())
        let snapTo = monoNanos()
        sleepNanos(1_000_000_000)
        let rssAfterSnapshot = residentBytes(pid: pid)
        control.stopRequested = true
        control.done.wait()
        let before = window(control.samples, from: baselineFrom, to: baselineTo)
        let during = window(control.samples, from: snapFrom, to: snapTo)
        log("scale: snapshot \(snapshot.durationMs) ms, \(snapshot.bytes >> 20) MiB; adding a journal tail of \(journalTail)")
        let tail = try createPipelined(
            context: context, endpoint: rpc, count: journalTail, connections: connections, inflight: inflight,
            build: { Cases.plain(order: "\(prefix)-tail-\($0)") }, onCreated: { _ in })
        let stats = try admin.call(RPCs.getStats, .init())
        var out = summary(before, "before")
        out.merge(summary(during, "during")) { a, _ in a }
        out["bench"] = "scale"
        out["cases"] = Int(stats.casesTotal)
        out["created"] = n
        out["create_errors"] = creation.errors + tail.errors
        out["create_per_s"] = (Double(count) / creation.seconds).rounded()
        out["rss_empty_bytes"] = rss0
        out["rss_bytes"] = rss1
        out["rss_after_snapshot_bytes"] = rssAfterSnapshot
        out["bytes_per_case"] = n > 0 ? (rss1 - rss0) / n : 0
        out["snapshot_ms_daemon"] = snapshot.durationMs
        out["snapshot_ms_client"] = (Double(snapTo - snapFrom) / 1e6).rounded(toPlaces: 1)
        out["snapshot_bytes"] = snapshot.bytes
        out["snapshot_cases"] = snapshot.cases
        out["journal_bytes"] = stats.journalBytes
        out["load_errors"] = control.errors
        emit(out)
    }
}

Bench.main()

// MARK: - cluster failover

struct Failover: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Cluster failover: a throwaway PostgreSQL, two members; kill -9 the owner of a shard and time until a call on that shard succeeds at another member; a new member replaces the killed one; N times.")
    @Option(help: "Kills.") var kills: Int = 10
    @Option(help: "Shards of the cluster.") var shards: UInt64 = 16
    @Option(help: "Members' lease TTL (their default is 5s).") var leaseTtl: String = "5s"

    func run() throws {
        let cluster = try ClusterFixture(shards: shards, members: 2, leaseTTL: leaseTtl)
        var servedBy = try cluster.waitUntilServed(within: .seconds(60))
        var times: [Double] = []
        for round in 1...kills {
            guard let (shard, victim) = servedBy.sorted(by: { $0.key < $1.key }).first(where: { $0.value === cluster.running.last }) else {
                throw BenchError("round \(round): no shard on the newest member")
            }
            let killedAt = monoNanos()
            victim.kill()
            var back: UInt64?
            while back == nil, monoNanos() - killedAt < 60_000_000_000 {
                if cluster.running.contains(where: { cluster.serves($0, shard: shard) }) { back = monoNanos() }
                else { usleep(10_000) }
            }
            guard let back else { throw BenchError("round \(round): shard \(shard) not served again within 60 s") }
            times.append(Double(back - killedAt) / 1e6)
            FileHandle.standardError.write(Data("[failover] round \(round): shard \(shard) answered again after \(Int(times.last!)) ms\n".utf8))
            try cluster.addMember()
            servedBy = try cluster.waitUntilServed(within: .seconds(60))
        }
        let sorted = times.sorted()
        emit(["bench": "failover", "kills": kills, "lease_ttl": leaseTtl, "shards": shards,
              "median_ms": sorted[sorted.count / 2].rounded(), "max_ms": sorted.last!.rounded(), "min_ms": sorted.first!.rounded()])
    }
}

/// Waits until a cluster has settled: every shard owned and served, each member with its share.
struct ClusterReady: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Wait (bounded) until every shard of the cluster is served and spread evenly over N members.")
    @Option(help: "Any member's RPC endpoint.") var endpoint: String
    @Option(help: "Members expected.") var members: Int = 2
    @Option(help: "Give up after this many seconds.") var seconds: Double = 60

    func run() throws {
        let context = try ZMQContext()
        let deadline = monoNanos() + UInt64(seconds * 1e9)
        while monoNanos() < deadline {
            if let map = try? TestCaller(endpoint, context: context, receiveTimeoutMs: 2_000).call(RPCs.getClusterMap, .init()) {
                let owners = Dictionary(grouping: map.shards.filter { !$0.rpcEndpoint.isEmpty }, by: \.rpcEndpoint)
                let share = Int(map.shardCount) / members
                let settled = owners.count == members && owners.values.allSatisfy { $0.count >= share }
                    && map.shards.allSatisfy { shard in
                        let probe = "AS" + String(format: "%010d", 99_999 * Int(map.shardCount) + Int(shard.shard))
                        let answer = try? TestCaller(shard.rpcEndpoint, context: context, receiveTimeoutMs: 2_000)
                            .callRaw(.getCase, Aftersales_V1_GetCaseRequest.with { $0.caseID = probe })
                        return answer?.code == .notFound
                    }
                if settled {
                    emit(["bench": "cluster-ready", "members": members, "shards": map.shardCount])
                    return
                }
            }
            usleep(100_000)
        }
        throw BenchError("the cluster did not settle within \(seconds) s")
    }
}
