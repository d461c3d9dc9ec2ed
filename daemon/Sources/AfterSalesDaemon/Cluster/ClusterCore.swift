// A cluster member: the shards it owns, each a `DaemonCore` over its own store, deadlines
// and announcement stream, all driven by the one loop thread. Per turn:
//   1. each call is routed to its shard (CreateCase by its order line's hash, the rest by
//      the case id) and served there, or answered UNAVAILABLE with a redirect to the owner;
//   2. each served shard fires its due deadlines;
//   3. every shard's records of the turn go to PostgreSQL in ONE transaction, fenced by
//      each shard's epoch (group commit across shards); a fenced shard is dropped at once;
//   4. replies and announcements leave only after that commit.
// Between turns, once a second: the member renews its membership and its shards' leases,
// claims shards no live member owns (up to its even share), releases what is over it,
// and picks up shards the loader has rebuilt. A member that cannot renew stops serving
// its shards when its lease runs out on its own clock, before PostgreSQL's runs out.
import AfterSalesProto
import AfterSalesRPC
import CaseEngine
import Foundation
import Logging
import Postgres
import SwiftProtobuf
import ZeroMQ

/// A shard this member serves.
struct ServedShard {
    let core: DaemonCore
    let log: ShardLog
    let epoch: UInt64
}

final class ClusterCore: LoopDriver {
    let config: DaemonConfig
    let settings: ClusterSettings
    let clock: any DaemonClock
    let logger: Logger
    let wakeUp: WakeUpPipe
    /// This member's id in the ownership table: its name and a per-start suffix.
    let memberID: String
    let advertised: (rpc: String, pub: String)
    let shardCount: UInt64
    private let health: HealthBoard?
    private var database: ClusterDatabase?
    private var reconnectAt: Millis = 0
    private(set) var shards: [UInt64: ServedShard] = [:]
    /// Claimed shards being rebuilt by the loader, with the epoch they were claimed at.
    private var loading: [UInt64: UInt64] = [:]
    /// Owned shards whose load failed (PostgreSQL away): loaded again at the next round.
    private var retryLoads: [UInt64: UInt64] = [:]
    /// Where each shard is served, from the last read of the ownership table.
    private var owners: [UInt64: Aftersales_V1_Redirect] = [:]
    /// Until when (monotonic ns) this member may serve its shards without renewing.
    private var leaseValidUntil: UInt64 = 0
    private var leaseValid = false
    private var nextRoundAt: Millis = 0
    /// When the ownership table was last read for a redirect.
    private var mapReadAt: Millis = 0
    /// When announcements past their retention are next deleted.
    private var forgetAnnouncementsAt: Millis = 0
    private var liveMembers = 1
    private let loader: ShardLoader
    private let requestShape: RequestShape
    var access: AccessList?
    /// Replies made by the member itself (redirects, GetClusterMap, GetStats…).
    private var batch = Batch()
    /// Replies of dropped shards, sent with the next output.
    private var orphaned: [Batch.Reply] = []
    private var stats = MethodStatistics()
    var slowCalls: SlowCallLog
    var droppedFrames: UInt64 = 0
    var peerDisconnects: UInt64 = 0
    var zapRefusals: UInt64 = 0
    var tally: LoopTally?
    let startedAt: Millis
    /// TakeSnapshot calls waiting for every shard's snapshot.
    private var snapshotCalls: [(routing: ArraySlice<Frame>, requestID: UInt64, started: UInt64, waiting: Set<UInt64>,
                                 answer: Aftersales_V1_TakeSnapshotResponse)] = []

    /// Joins the cluster at `settings.url`: reads its shard count, registers this member and
    /// claims its first shards (loaded in the background). Throws when PostgreSQL cannot be
    /// reached or holds no cluster.
    init(config: DaemonConfig, settings: ClusterSettings, clock: any DaemonClock, logger: Logger, wakeUp: WakeUpPipe,
         access: AccessList?, advertised: (rpc: String, pub: String), health: HealthBoard? = nil) throws {
        self.config = config
        self.settings = settings
        self.clock = clock
        self.logger = logger
        self.wakeUp = wakeUp
        self.access = access
        self.advertised = advertised
        self.health = health
        memberID = "\(settings.memberName)#\(String(UInt32.random(in: 0...UInt32.max), radix: 36))"
        let database = try ClusterDatabase(url: settings.url)
        shardCount = try database.shardCount()
        try database.upgradeSchema()
        self.database = database
        requestShape = RequestShape(limits: config.engine.limits)
        slowCalls = SlowCallLog(thresholdMicroseconds: config.slowCallThresholdMicroseconds, capacity: config.slowCallLogSize)
        startedAt = clock.now()
        loader = ShardLoader(url: settings.url, config: config, shardCount: shardCount, logger: logger,
                             onDone: { wakeUp.signal(.shardLoaded) })
        logger.info("joined the cluster", metadata: ["member": "\(memberID)", "shards": "\(shardCount)",
                                                     "database": "\(database.target)", "rpc": "\(advertised.rpc)"])
        round(now: clock.now())
    }

    deinit { loader.stop() }

    // MARK: - the turn

    func startUp() throws -> TurnOutput { TurnOutput() }

    func pollTimeout(now: Millis) -> Int {
        var wakeAt = nextRoundAt
        for served in shards.values {
            wakeAt = min(wakeAt, now + Int64(served.core.pollTimeout(now: now)))
        }
        return Int(max(0, min(wakeAt - now, 1_000)))
    }

    func woken(_ reasons: WakeUpReason) {
        if reasons.contains(.snapshotDone) { for served in shards.values { served.core.finishBackgroundSnapshot() } }
        if reasons.contains(.reloadClients) { reloadClients() }
        if reasons.contains(.shardLoaded) { takeLoadedShards() }
    }

    func answerZAP(_ request: [Frame]) -> [Frame] {
        let (reply, refused) = ZAP.reply(to: request, access: access)
        if refused != nil { zapRefusals += 1 }
        return reply
    }

    func receive(_ frames: [Frame], caller: String?) {
        let started = monotonicNanoseconds()
        if batch.replies.isEmpty { leaseValid = started < leaseValidUntil }
        switch IncomingCall.parse(frames, maxMessageBytes: config.maxMessageBytes, shape: requestShape) {
        case .unaddressable:
            droppedFrames += 1
        case .refused(let routing, let requestID, let error):
            batch.reply(to: routing, requestID: requestID, method: nil, started: started, .failure(error))
        case .call(let routing, let envelope, let method):
            do throws(RPCError) {
                let identity = try access?.authorize(method, caller: caller)
                if let shard = try shard(of: method, envelope) {
                    if let served = shards[shard], leaseValid {
                        served.core.receive(method, envelope, routing: routing, client: caller, identity: identity, started: started)
                    } else {
                        redirect(shard, routing: routing, envelope: envelope, method: method, started: started)
                    }
                    return
                }
                let answer = try serveHere(method, envelope, routing: routing, scope: identity?.scope, started: started)
                if let answer {
                    batch.reply(to: routing, requestID: envelope.requestID, method: method, started: started, .success(answer),
                                request: envelope, client: caller)
                }
            } catch {
                batch.reply(to: routing, requestID: envelope.requestID, method: method, started: started, .failure(error),
                            request: envelope, client: caller)
            }
        }
    }

    /// The shard a call belongs to (RequestRouting: the rule clients send by); nil for
    /// calls the member answers itself.
    private func shard(of method: Method, _ envelope: RequestEnvelope) throws(RPCError) -> UInt64? {
        if let shard = RequestRouting.shard(of: method, payload: envelope.payload, shardCount: shardCount) { return shard }
        guard RequestRouting.namesACase(method) else { return nil }
        let caseID = RequestRouting.caseID(of: method, payload: envelope.payload) ?? ""
        if caseID.isEmpty { throw RPCError(.invalidArgument, "case_id: required") }
        throw RPCError(.notFound, "no case with case_id '\(caseID)'")
    }

    /// UNAVAILABLE with where the shard is served (Redis Cluster's MOVED). When the map in
    /// hand has no other owner for it (it moved since the last round), the ownership table
    /// is read again first — at most every 20 ms, so a storm of misrouted calls costs little.
    private func redirect(_ shard: UInt64, routing: ArraySlice<Frame>, envelope: RequestEnvelope, method: Method, started: UInt64) {
        let known = owners[shard]
        if shards[shard] == nil, known == nil || known!.rpcEndpoint.isEmpty || known!.rpcEndpoint == advertised.rpc,
           let database, clock.now() >= mapReadAt + 20 {
            mapReadAt = clock.now()
            do { refreshOwners(try database.clusterMap()) } catch { connectionFailed(error) }
        }
        var target = owners[shard] ?? .with { $0.shard = UInt32(shard) }
        if shards[shard] == nil, target.rpcEndpoint == advertised.rpc { target.rpcEndpoint = ""; target.pubEndpoint = "" }
        target.shardCount = UInt32(shardCount)
        let message: String
        if shards[shard] != nil || loading[shard] != nil || retryLoads[shard] != nil {
            message = "shard \(shard) is owned by this member but not serving yet (loading, or its lease is being renewed); retry shortly"
            target.rpcEndpoint = advertised.rpc
            target.pubEndpoint = advertised.pub
        } else if target.rpcEndpoint.isEmpty {
            message = "shard \(shard) has no live owner at the moment (a member is taking it over); retry shortly or ask GetClusterMap"
        } else {
            message = "shard \(shard) is served by \(target.rpcEndpoint); send the call there (redirect in the envelope)"
        }
        var body = ResponseEnvelope.failure(requestID: envelope.requestID, RPCError(.unavailable, message))
        body.redirect = target
        batch.replies.append(Batch.Reply(routing: routing, body: try! body.serializedBytes(), method: method, code: .unavailable,
                                         started: started, request: envelope, client: nil))
    }

    /// The calls a member answers for itself. nil when the answer comes later (TakeSnapshot).
    private func serveHere(_ method: Method, _ envelope: RequestEnvelope, routing: ArraySlice<Frame>, scope: Scope?,
                           started: UInt64) throws(RPCError) -> [UInt8]? {
        switch method {
        case .ping:
            return try AdminService.ping(envelope.payload, now: clock.now())
        case .check:
            let serving = database != nil
            return try AdminService.check(envelope.payload, state: serving ? .serving : .storageFailed,
                                          detail: serving ? "" : "PostgreSQL unreachable; retrying")
        case .listServices:
            return try AdminService.listServices(envelope.payload)
        case .getDescriptors:
            return try AdminService.descriptors(envelope.payload)
        case .slowCalls:
            return try! slowCalls.answer(CaseService.decode(Aftersales_V1_SlowCallsRequest.self, envelope.payload)).serializedBytes()
        case .getStats:
            _ = try CaseService.decode(Aftersales_V1_GetStatsRequest.self, envelope.payload)
            return try! statistics().serializedBytes()
        case .getClusterMap:
            _ = try CaseService.decode(Aftersales_V1_GetClusterMapRequest.self, envelope.payload)
            guard let database else { throw RPCError(.unavailable, "this member cannot reach PostgreSQL at the moment; ask another member") }
            do {
                var map = try database.clusterMap()
                map.answeredBy = memberID
                return try! map.serializedBytes()
            } catch {
                connectionFailed(error)
                throw RPCError(.unavailable, "could not read the ownership table: \(error)")
            }
        case .replayEvents:
            return try replay(envelope.payload)
        case .listCases:
            let stores = shards.values.map(\.core.store)
            return try CaseService.listCases(envelope.payload, stores: stores, scope: scope)
        case .takeSnapshot:
            _ = try CaseService.decode(Aftersales_V1_TakeSnapshotRequest.self, envelope.payload)
            let served = Set(shards.keys)
            if served.isEmpty { return try! Aftersales_V1_TakeSnapshotResponse().serializedBytes() }
            for (shard, entry) in shards { entry.core.requestSnapshot(replyTo: Self.memberRouting(shard), requestID: 0) }
            snapshotCalls.append((routing, envelope.requestID, started, served, Aftersales_V1_TakeSnapshotResponse()))
            return nil
        default:
            preconditionFailure("\(method.fullName) is routed to a shard")
        }
    }

    /// ReplayEvents from PostgreSQL: any member serves any shard's announcements, as far
    /// back as --event-retention keeps them, and only committed ones.
    private func replay(_ payload: Data) throws(RPCError) -> [UInt8] {
        let r = try AdminService.replayRequest(payload, shards: shardCount)
        guard let database else { throw RPCError(.unavailable, "this member cannot reach PostgreSQL at the moment; ask another member") }
        let found: (events: [(seq: UInt64, body: [UInt8])]?, oldest: UInt64, latest: UInt64)
        do {
            found = try database.announcements(shard: UInt64(r.shard), from: r.fromSeq, limit: Int(r.maxEvents))
        } catch {
            connectionFailed(error)
            throw RPCError(.unavailable, "could not read the announcements: \(error)")
        }
        guard let events = found.events else {
            throw RPCError(.outOfRange, "announcement \(r.fromSeq) of shard \(r.shard) is no longer kept (--event-retention); the oldest available is \(found.oldest). Re-read the cases you follow, then replay from \(found.oldest)")
        }
        return AdminService.replayAnswer(events.lazy.map(\.body), latest: found.latest, oldest: found.oldest)
    }

    /// The routing of a snapshot the member asked a shard for: no socket peer has an empty
    /// routing id, so these replies are told apart from callers' and never sent.
    private static func memberRouting(_ shard: UInt64) -> ArraySlice<Frame> { [] }

    func finishTurn(send: (TurnOutput) -> Void) throws {
        // One PostgreSQL transaction per turn: the calls and the deadlines commit together.
        send(finishTurn())
    }

    private func finishTurn() -> TurnOutput {
        if batch.replies.isEmpty { leaseValid = monotonicNanoseconds() < leaseValidUntil }
        if leaseValid {
            for served in shards.values { served.core.fireDueDeadlines() }
        }
        commitShards()
        return takeOutput()
    }

    /// One transaction for every shard's records of the turn; fenced shards are dropped and
    /// the rest committed without them; on a lost connection the touched shards are reloaded.
    private func commitShards() {
        var batches = shards.compactMap { shard, served in
            served.log.pending.isEmpty ? nil
                : ShardBatch(shard: shard, epoch: served.epoch, records: served.log.pending, events: served.core.announcements.waiting)
        }
        guard !batches.isEmpty else { return }
        guard let database else {
            for batch in batches { unload(batch.shard, because: "PostgreSQL is unreachable") }
            return
        }
        while !batches.isEmpty {
            do {
                _ = try database.commit(member: memberID, batches: batches)
                for batch in batches { shards[batch.shard]?.log.committed() }
                return
            } catch let fenced as FencedShards {
                for shard in fenced.shards {
                    drop(shard, error: RPCError(.unavailable, "shard \(shard) has been taken over by another member; nothing was applied here, send the call to its owner"))
                }
                batches.removeAll { fenced.shards.contains($0.shard) }
            } catch {
                connectionFailed(error)
                for batch in batches { unload(batch.shard, because: "the commit to PostgreSQL failed (\(error))") }
                return
            }
        }
    }

    private func takeOutput() -> TurnOutput {
        var output = TurnOutput()
        output.replies = batch.replies + orphaned
        batch.clear()
        orphaned.removeAll()
        for served in shards.values {
            let part = served.core.takeOutput()
            output.events += part.events
            output.replies += part.replies
        }
        output.replies = absorbSnapshotReplies(output.replies)
        account(for: output.replies, stats: &stats, tally: &tally, slowCalls: &slowCalls, clock: clock)
        return output
    }

    /// Shard snapshots the member asked for (TakeSnapshot) complete here, not on a socket.
    private func absorbSnapshotReplies(_ replies: [Batch.Reply]) -> [Batch.Reply] {
        guard !snapshotCalls.isEmpty else { return replies }
        var kept: [Batch.Reply] = []
        for reply in replies {
            guard reply.routing.isEmpty, reply.method == .takeSnapshot else {
                kept.append(reply)
                continue
            }
            let envelope = try? ResponseEnvelope(serializedBytes: reply.body)
            let part = (try? Aftersales_V1_TakeSnapshotResponse(serializedBytes: envelope?.payload ?? Data())) ?? .init()
            let shard = UInt64(part.path.split(separator: " ").dropFirst(2).first.flatMap { UInt64($0) } ?? UInt64.max)
            for i in snapshotCalls.indices where snapshotCalls[i].waiting.contains(shard) || shard == UInt64.max {
                snapshotCalls[i].waiting.remove(shard)
                snapshotCalls[i].answer.cases += part.cases
                snapshotCalls[i].answer.bytes += part.bytes
                snapshotCalls[i].answer.durationMs = max(snapshotCalls[i].answer.durationMs, part.durationMs)
                if envelope?.code != .ok { snapshotCalls[i].answer.path = "shard \(shard): \(envelope?.message ?? "failed")" }
                break
            }
        }
        snapshotCalls.removeAll { call in
            guard call.waiting.isEmpty else { return false }
            var answer = call.answer
            if answer.path.isEmpty { answer.path = "postgresql: \(shards.count) shards" }
            let result: CallAnswer = answer.path.hasPrefix("shard ")
                ? .failure(RPCError(.unavailable, "snapshot failed: \(answer.path)")) : .success(try! answer.serializedBytes())
            batch.reply(to: call.routing, requestID: call.requestID, method: .takeSnapshot, started: call.started, result)
            kept.append(batch.replies.removeLast())
            return true
        }
        return kept
    }

    // MARK: - between turns

    func housekeeping(now: Millis) -> TurnOutput? {
        if now >= nextRoundAt { round(now: now) }
        for served in shards.values { served.core.maybeStartSnapshot(now: now) }
        let hasOutput = !batch.replies.isEmpty || !orphaned.isEmpty || shards.values.contains { $0.core.hasOutput }
        return hasOutput ? takeOutput() : nil
    }

    /// Once a second: reconnect if needed, renew, learn the map, claim or release shards.
    private func round(now: Millis) {
        nextRoundAt = now + settings.renewIntervalMs
        if database == nil {
            guard now >= reconnectAt else { return }
            do {
                database = try ClusterDatabase(url: settings.url)
                logger.info("reconnected to PostgreSQL", metadata: ["database": "\(database!.target)"])
                health?.set(.serving)
            } catch {
                reconnectAt = now + 500
                return
            }
        }
        guard let database else { return }
        let began = monotonicNanoseconds()
        do {
            liveMembers = max(1, try database.renewMembership(member: memberID, rpc: advertised.rpc, pub: advertised.pub, ttlMs: settings.leaseTTLMs))
            var owned: [UInt64: UInt64] = [:]
            for (shard, served) in shards { owned[shard] = served.epoch }
            for (shard, epoch) in loading { owned[shard] = epoch }
            for (shard, epoch) in retryLoads { owned[shard] = epoch }
            let kept = try database.renewShards(member: memberID, owned: owned, ttlMs: settings.leaseTTLMs)
            // The lease runs from before the renewal was sent, on this member's clock.
            leaseValidUntil = began + UInt64(settings.leaseTTLMs) * 1_000_000
            for shard in owned.keys where !kept.contains(shard) {
                loading[shard] = nil
                retryLoads[shard] = nil
                drop(shard, error: RPCError(.unavailable, "shard \(shard) has been taken over by another member; send the call to its owner"))
            }
            for (shard, epoch) in retryLoads {
                loading[shard] = epoch
                loader.load(shard, epoch: epoch)
            }
            retryLoads.removeAll()
            try balance(database)
            refreshOwners(try database.clusterMap())
            if now >= forgetAnnouncementsAt {
                forgetAnnouncementsAt = now + min(60_000, max(1_000, settings.eventRetentionMs / 2))
                try database.forgetAnnouncements(shards: Array(shards.keys), olderThanMs: settings.eventRetentionMs)
            }
        } catch {
            connectionFailed(error)
        }
    }

    /// Claims up to this member's share of the shards (ceil(S / live members), or
    /// --max-shards), releases what is over it so newcomers get theirs.
    private func balance(_ database: ClusterDatabase) throws {
        let share = Int((shardCount + UInt64(liveMembers) - 1) / UInt64(liveMembers))
        let target = min(settings.maxShards ?? share, share)
        let owned = shards.count + loading.count
        if owned < target {
            for (shard, epoch) in try database.claimShards(member: memberID, rpc: advertised.rpc, pub: advertised.pub,
                                                            count: target - owned, ttlMs: settings.leaseTTLMs) {
                logger.info("claimed a shard", metadata: ["shard": "\(shard)", "epoch": "\(epoch)"])
                loading[shard] = epoch
                loader.load(shard, epoch: epoch)
            }
        } else if owned > target {
            let spare = shards.filter { $0.value.core.snapshots.inFlight == nil && $0.value.log.pending.isEmpty }.keys.sorted().suffix(owned - target)
            for shard in spare {
                guard let served = shards[shard] else { continue }
                try database.releaseShard(shard, member: memberID, epoch: served.epoch)
                logger.info("released a shard for another member", metadata: ["shard": "\(shard)", "epoch": "\(served.epoch)"])
                drop(shard, error: RPCError(.unavailable, "shard \(shard) moved to another member; ask GetClusterMap"))
            }
        }
    }

    private func refreshOwners(_ map: Aftersales_V1_GetClusterMapResponse) {
        for owner in map.shards {
            owners[UInt64(owner.shard)] = .with {
                $0.shard = owner.shard
                $0.rpcEndpoint = owner.rpcEndpoint
                $0.pubEndpoint = owner.pubEndpoint
                $0.epoch = owner.epoch
                $0.shardCount = map.shardCount
            }
        }
    }

    /// Shards the loader has rebuilt start serving (their missed deadlines fire, late).
    private func takeLoadedShards() {
        for result in loader.takeFinished() {
            switch result {
            case .success(let loaded):
                guard loading[loaded.shard] == loaded.epoch else { continue }  // given up meanwhile
                loading[loaded.shard] = nil
                let log = ShardLog(nextSequence: loaded.recovered.journalPosition + UInt64(loaded.records))
                do {
                    let core = try DaemonCore(config: config, clock: clock, logger: logger, recovered: loaded.recovered, journal: log,
                                              wakeUp: wakeUp, access: access,
                                              snapshotTarget: .shard(PostgresShardSnapshots(url: settings.url, shard: loaded.shard,
                                                                                             member: memberID, epoch: loaded.epoch)))
                    core.recordsCalls = false
                    core.fireDueDeadlines(missedWhileDown: true)
                    shards[loaded.shard] = ServedShard(core: core, log: log, epoch: loaded.epoch)
                    owners[loaded.shard] = .with {
                        $0.shard = UInt32(loaded.shard)
                        $0.rpcEndpoint = advertised.rpc
                        $0.pubEndpoint = advertised.pub
                        $0.epoch = loaded.epoch
                        $0.shardCount = UInt32(shardCount)
                    }
                    logger.info("serving a shard", metadata: ["shard": "\(loaded.shard)", "epoch": "\(loaded.epoch)", "cases": "\(core.store.count)",
                                                             "journal_records": "\(loaded.records)", "ms": "\(loaded.milliseconds)"])
                } catch {
                    logger.error("could not start a loaded shard", metadata: ["shard": "\(loaded.shard)", "error": "\(error)"])
                }
            case .failure(let failure):
                guard loading[failure.shard] == failure.epoch else { continue }
                loading[failure.shard] = nil
                retryLoads[failure.shard] = failure.epoch
                logger.warning("could not load a shard; trying again", metadata: ["shard": "\(failure.shard)", "reason": "\(failure.reason)"])
            }
        }
    }

    /// Stops serving `shard` at once: its calls in hand are refused with `error` (and where
    /// it went), its memory released. Its records in PostgreSQL are untouched.
    private func drop(_ shard: UInt64, error: RPCError) {
        guard let served = shards.removeValue(forKey: shard) else { return }
        logger.warning("stopped serving a shard", metadata: ["shard": "\(shard)", "epoch": "\(served.epoch)", "reason": "\(error.message)"])
        served.core.batch.refuseAll(error, redirect: owners[shard])
        orphaned += served.core.takeOutput().replies
        snapshotCalls = snapshotCalls.map { call in
            var call = call
            call.waiting.remove(shard)
            return call
        }
    }

    /// Drops a shard whose turn could not be committed and loads it again from
    /// PostgreSQL (it is still this member's unless its lease runs out meanwhile).
    private func unload(_ shard: UInt64, because reason: String) {
        guard let served = shards[shard] else { return }
        drop(shard, error: RPCError(.unavailable, "\(reason); nothing of this call was applied, retry it (with its idempotency key)"))
        retryLoads[shard] = served.epoch
    }

    private func connectionFailed(_ error: any Error) {
        guard database != nil else { return }
        logger.error("lost PostgreSQL; shards stop serving when their lease runs out", metadata: ["error": "\(error)"])
        database?.connection.close()
        database = nil
        reconnectAt = clock.now() + 500
        health?.set(.storageFailed, detail: "PostgreSQL unreachable: \(error)")
    }

    private func reloadClients() {
        guard let path = config.clientsFile else { return }
        do {
            access = try AccessList(path: path)
            for served in shards.values { served.core.access = access }
            logger.info("clients file reloaded", metadata: ["path": "\(path)"])
        } catch {
            logger.error("clients file not reloaded; the previous list stays in force", metadata: ["error": "\(error)"])
        }
    }

    // MARK: - figures and stopping

    /// GetStats for the member: its shards' figures summed.
    func statistics() -> Aftersales_V1_GetStatsResponse {
        let now = clock.now()
        let cores = shards.values.map(\.core)
        var counts: [CaseStatus: Int] = [:]
        for core in cores { counts.merge(core.store.countsByStatus, uniquingKeysWith: +) }
        return .with {
            $0.version = Daemon.version
            $0.startedAtMs = startedAt
            $0.uptimeMs = now - startedAt
            $0.casesTotal = UInt64(cores.reduce(0) { $0 + $1.store.count })
            $0.casesByStatus = CaseStatus.allCases.map { status in
                .with {
                    $0.status = EnumMapping.proto(status)
                    $0.count = UInt64(counts[status] ?? 0)
                }
            }
            $0.pendingProposals = UInt64(cores.reduce(0) { $0 + $1.store.pendingProposalCount })
            $0.nextDeadlineAtMs = cores.compactMap(\.store.nextDeadline).min() ?? 0
            $0.methods = stats.report
            $0.journalBytes = cores.reduce(0) { $0 + $1.journal.bytesOnDisk }
            $0.fsyncPolicy = "postgresql"
            $0.lastSnapshotAtMs = cores.map(\.snapshots.completedAt).max() ?? 0
            $0.droppedFrames = droppedFrames
            $0.idempotencyKeys = UInt64(cores.reduce(0) { $0 + $1.idempotency.count })
            $0.unpublishedEvents = UInt64(cores.reduce(0) { $0 + $1.announcements.unpublishedCount })
            $0.peerDisconnects = peerDisconnects
            $0.zapRefusals = zapRefusals
        }
    }

    func publish(to metrics: DaemonMetrics, now: Millis) {
        guard tally != nil else { return }
        metrics.publish(&tally!, cores: shards.values.map(\.core), droppedFrames: droppedFrames, peerDisconnects: peerDisconnects,
                        zapRefusals: zapRefusals, slowCalls: slowCalls.totalLogged, now: now)
    }

    /// Stopping: each shard's final snapshot, then its ownership released so another member
    /// takes it at once instead of after the lease.
    func shutdown(send: (TurnOutput) -> Void) throws {
        loader.stop()
        for (shard, served) in shards.sorted(by: { $0.key < $1.key }) {
            do {
                try served.core.shutdown(send: { _ in })
                try database?.releaseShard(shard, member: memberID, epoch: served.epoch)
            } catch {
                logger.warning("shard not released cleanly; another member takes it when its lease ends",
                               metadata: ["shard": "\(shard)", "error": "\(error)"])
            }
        }
        send(takeOutput())
        shards.removeAll()
        try? database?.leave(member: memberID)
        logger.info("left the cluster", metadata: ["member": "\(memberID)"])
    }
}
