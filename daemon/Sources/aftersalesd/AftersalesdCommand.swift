import AfterSalesDaemon
import AfterSalesRPC
import ArgumentParser
import CaseEngine
import Dispatch
import Foundation
import Logging
import ZeroMQ

/// `aftersalesd`: every flag can also come from an AFTERSALES_… environment variable
/// (flag wins), so a systemd unit can keep its settings in an EnvironmentFile.
@main
struct AftersalesdCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aftersalesd",
        abstract: "The after-sales case daemon: protobuf over ZeroMQ, deadlines on time, every change announced and journaled.",
        discussion: """
            Calls arrive on a ROUTER socket (--rpc), announcements leave on a PUB socket (--pub).
            When bound it prints one line on standard output:
              aftersalesd ready rpc=ENDPOINT pub=ENDPOINT
            Durations accept ms, s, m, h and d suffixes (500ms, 30s, 12h, 7d).
            SIGTERM or SIGINT: finish the batch in hand, write a final snapshot, exit 0.
            Exit codes: 0 stopped cleanly; 64 a malformed option or endpoint (nothing touched);
            70 a runtime failure such as a journal write (a restart recovers); 73 an endpoint
            that cannot be bound (address in use, not this machine's); 78 a data directory
            that is damaged or held by another daemon.
            """,
        version: Daemon.version,
        subcommands: [Keygen.self, Cluster.self]
    )

    @Option(help: "The daemon's CURVE secret key file (aftersalesd keygen): both sockets become CURVE servers and only the keys in --clients are admitted. (env AFTERSALES_CURVE_SECRET_KEY)")
    var curveSecretKey: String?
    @Option(help: "Who may connect, one per line: NAME ROLE PUBLIC_KEY [merchants=ID,…] [consumers=ID,…]; SIGHUP reads it again. (env AFTERSALES_CLIENTS)")
    var clients: String?
    @Flag(help: "Serve without CURVE on an endpoint other than loopback (anyone who reaches it may act as anyone).")
    var insecurePlaintext = false
    @Option(help: "ROUTER endpoint for calls; port * picks a free one. (env AFTERSALES_RPC, default tcp://127.0.0.1:7700)")
    var rpc: String?
    @Option(help: "PUB endpoint for announcements. (env AFTERSALES_PUB, default tcp://127.0.0.1:7701)")
    var pub: String?
    @Option(help: "Directory for the journal and snapshots. (env AFTERSALES_DATA_DIR, default var/aftersales)")
    var dataDir: String?
    @Option(help: "always: no reply before its batch is on disk; everysec: sync once a second on a background thread (a crash may lose the last second); never: leave it to the OS. (env AFTERSALES_FSYNC, default always)")
    var fsync: String?
    @Option(help: "Snapshot this often when something changed; 0 = only on TakeSnapshot and at shutdown. (env AFTERSALES_SNAPSHOT_INTERVAL, default 60s)")
    var snapshotInterval: String?
    @Option(help: "How long a platform proposal stays valid. (env AFTERSALES_PROPOSAL_TTL, default 12h)")
    var proposalTtl: String?
    @Option(help: "Merchant review window, then the request is auto-agreed. (env AFTERSALES_MERCHANT_REVIEW_WINDOW, default 48h)")
    var merchantReviewWindow: String?
    @Option(help: "Consumer's time to answer a merchant offer. (env AFTERSALES_OFFER_ANSWER_WINDOW, default 48h)")
    var offerAnswerWindow: String?
    @Option(help: "Consumer's time to escalate after a rejection. (env AFTERSALES_ESCALATION_WINDOW, default 7d)")
    var escalationWindow: String?
    @Option(help: "Consumer's time to ship a return. (env AFTERSALES_RETURN_SHIPMENT_WINDOW, default 7d)")
    var returnShipmentWindow: String?
    @Option(help: "Merchant's time to confirm a return, then auto-refund. (env AFTERSALES_MERCHANT_RECEIPT_WINDOW, default 10d)")
    var merchantReceiptWindow: String?
    @Option(help: "Comma-separated categories the platform never intervenes in. (env AFTERSALES_EXCLUDED_CATEGORIES, default fresh_produce,flowers_horticulture,live_pets)")
    var excludedCategories: String?
    @Option(help: "Largest call answered, in bytes; larger ones get RESOURCE_EXHAUSTED. (env AFTERSALES_MAX_MESSAGE_BYTES, default 1048576)")
    var maxMessageBytes: Int?
    @Option(help: "Announcements kept for ReplayEvents. (env AFTERSALES_REPLAY_WINDOW, default 100000)")
    var replayWindow: Int?
    @Option(help: "Idempotency keys remembered. (env AFTERSALES_IDEMPOTENCY_KEYS, default 100000)")
    var idempotencyKeys: Int?
    @Option(help: "Announcements queued per subscriber before libzmq drops them (the subscriber then replays the gap). (env AFTERSALES_PUB_HWM, default 1000000)")
    var pubHwm: Int?
    @Option(help: "Run as a member of the cluster whose journal, snapshots and shard ownership are in this PostgreSQL (created by `aftersalesd cluster init`); --data-dir is then unused. (env AFTERSALES_CLUSTER)")
    var cluster: String?
    @Option(help: "This member's name in the cluster's ownership table. (env AFTERSALES_MEMBER_NAME, default HOST:RPC-PORT)")
    var memberName: String?
    @Option(help: "The RPC endpoint other members' redirects send callers to, when it differs from --rpc (e.g. behind NAT). (env AFTERSALES_ADVERTISE_RPC)")
    var advertiseRpc: String?
    @Option(help: "The PUB endpoint to advertise, when it differs from --pub. (env AFTERSALES_ADVERTISE_PUB)")
    var advertisePub: String?
    @Option(help: "How long a shard stays this member's without renewal; another member takes it over after that. (env AFTERSALES_LEASE_TTL, default 5s)")
    var leaseTtl: String?
    @Option(help: "Most shards this member serves; by default its even share of the cluster's. (env AFTERSALES_MAX_SHARDS)")
    var maxShards: Int?
    @Option(help: "Cluster mode: how long announcements stay in PostgreSQL for ReplayEvents. (env AFTERSALES_EVENT_RETENTION, default 7d)")
    var eventRetention: String?
    @Option(help: "Serve Prometheus /metrics, /healthz and /readyz over HTTP on HOST:PORT (e.g. 127.0.0.1:9464); off when unset. (env AFTERSALES_METRICS_LISTEN)")
    var metricsListen: String?
    @Option(help: "Log calls that take at least this long (receipt to reply; 500us, 10ms, 1s) for AdminService/SlowCalls; 0 = off. (env AFTERSALES_SLOW_CALL_THRESHOLD, default 10ms)")
    var slowCallThreshold: String?
    @Option(help: "Most time one turn of the loop spends firing due deadlines before it answers calls again (50us–100ms): a burst of expiries is worked off in slices between batches of calls. (env AFTERSALES_DEADLINE_SLICE, default 250us)")
    var deadlineSlice: String?
    @Option(help: "Most deadlines fired per second while calls arrive: what comes due more slowly fires on time, a burst due together (a sale's proposals expiring, a daemon that was paused) is worked off at this rate so that calls, subscribers and libzmq keep the machine; a call on an overdue case fires its deadline first; with no calls deadlines fire as fast as they can. 0 = no limit. (env AFTERSALES_DEADLINE_RATE, default 15000)")
    var deadlineRate: Int?
    @Option(help: "Most calls one turn takes from the socket before it is made durable (one journal write; one fdatasync under --fsync always) and answered, 1–4096. While a turn empties the socket the next takes half as many (not under 32), so that few callers' next calls overlap the loop's work; while calls queue it doubles back up to this. (env AFTERSALES_MAX_BATCH, default 128)")
    var maxBatch: Int?
    @Option(help: "Slow calls kept, newest first. (env AFTERSALES_SLOW_CALL_LOG_SIZE, default 128)")
    var slowCallLogSize: Int?
    @Option(help: "trace, debug, info, notice, warning, error or critical. (env AFTERSALES_LOG_LEVEL, default info)")
    var logLevel: String?
    @Option(help: "text (one readable line per event, values with spaces quoted) or json (one JSON object per line). (env AFTERSALES_LOG_FORMAT, default text)")
    var logFormat: String?

    func run() throws {
        let environment = ProcessInfo.processInfo.environment
        func setting(_ flag: String?, _ name: String) -> String? { flag ?? environment["AFTERSALES_\(name)"] }
        func duration(_ flag: String?, _ name: String, _ option: String, into target: inout Int64, allowZero: Bool = false) throws {
            guard let text = setting(flag, name) else { return }
            if allowZero, text.trimmingCharacters(in: .whitespaces) == "0" {
                target = 0
                return
            }
            guard let ms = DurationText.milliseconds(text), ms > 0 else {
                throw ValidationError("--\(option): '\(text)' is not a duration like 500ms, 30s, 12h or 7d")
            }
            target = ms
        }
        func integer(_ flag: Int?, _ name: String, _ option: String) throws -> Int? {
            if let flag { return flag }
            guard let text = environment["AFTERSALES_\(name)"] else { return nil }
            guard let value = Int(text) else { throw ValidationError("AFTERSALES_\(name): '\(text)' is not a whole number (--\(option))") }
            return value
        }

        var config = DaemonConfig()
        if let v = setting(rpc, "RPC") { config.rpcEndpoint = v }
        if let v = setting(pub, "PUB") { config.pubEndpoint = v }
        for (option, endpoint) in [("rpc", config.rpcEndpoint), ("pub", config.pubEndpoint)] {
            if let problem = BindEndpoint.problem(endpoint) { throw ValidationError("--\(option): \(problem)") }
        }
        if config.rpcEndpoint == config.pubEndpoint, !config.rpcEndpoint.hasSuffix(":*"), !config.rpcEndpoint.hasSuffix(":0") {
            throw ValidationError("--rpc and --pub are both \(config.rpcEndpoint); the two sockets need two endpoints")
        }
        let keyFile = setting(curveSecretKey, "CURVE_SECRET_KEY")
        config.clientsFile = setting(clients, "CLIENTS")
        if keyFile != nil, config.clientsFile == nil {
            throw ValidationError("--curve-secret-key needs --clients: the file of the client keys to admit (NAME ROLE PUBLIC_KEY per line)")
        }
        if keyFile == nil, config.clientsFile != nil {
            throw ValidationError("--clients needs --curve-secret-key: clients are known by their CURVE keys")
        }
        if keyFile == nil, !insecurePlaintext && environment["AFTERSALES_INSECURE_PLAINTEXT"] != "1" {
            for (option, endpoint) in [("rpc", config.rpcEndpoint), ("pub", config.pubEndpoint)] where !BindEndpoint.isLocal(endpoint) {
                throw ValidationError("--\(option) \(endpoint) is reachable from other machines, and without CURVE anyone who reaches it may act as any merchant or consumer. "
                    + "Make keys (aftersalesd keygen), pass --curve-secret-key and --clients, or bind to 127.0.0.1; --insecure-plaintext if you really mean it")
            }
        }
        if let v = setting(dataDir, "DATA_DIR") { config.dataDirectory = v }
        if let v = setting(fsync, "FSYNC") {
            guard let policy = FsyncPolicy(rawValue: v) else { throw ValidationError("--fsync: '\(v)' must be always, everysec or never") }
            config.fsync = policy
        }
        try duration(snapshotInterval, "SNAPSHOT_INTERVAL", "snapshot-interval", into: &config.snapshotIntervalMs, allowZero: true)
        try duration(proposalTtl, "PROPOSAL_TTL", "proposal-ttl", into: &config.engine.proposalValidity)
        try duration(merchantReviewWindow, "MERCHANT_REVIEW_WINDOW", "merchant-review-window", into: &config.engine.merchantReviewWindow)
        try duration(offerAnswerWindow, "OFFER_ANSWER_WINDOW", "offer-answer-window", into: &config.engine.offerAnswerWindow)
        try duration(escalationWindow, "ESCALATION_WINDOW", "escalation-window", into: &config.engine.escalationWindow)
        try duration(returnShipmentWindow, "RETURN_SHIPMENT_WINDOW", "return-shipment-window", into: &config.engine.returnShipmentWindow)
        try duration(merchantReceiptWindow, "MERCHANT_RECEIPT_WINDOW", "merchant-receipt-window", into: &config.engine.merchantReceiptWindow)
        if let v = setting(excludedCategories, "EXCLUDED_CATEGORIES") {
            config.engine.excludedCategories = Set(v.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty })
        }
        if let v = try integer(maxMessageBytes, "MAX_MESSAGE_BYTES", "max-message-bytes") {
            guard v >= 1_024 else { throw ValidationError("--max-message-bytes: \(v) is below the minimum of 1024") }
            config.maxMessageBytes = v
        }
        if let v = try integer(replayWindow, "REPLAY_WINDOW", "replay-window") {
            guard v >= 1 else { throw ValidationError("--replay-window: must be at least 1") }
            config.replayWindow = v
        }
        if let v = try integer(idempotencyKeys, "IDEMPOTENCY_KEYS", "idempotency-keys") {
            guard v >= 1 else { throw ValidationError("--idempotency-keys: must be at least 1") }
            config.idempotencyCapacity = v
        }
        if let v = try integer(pubHwm, "PUB_HWM", "pub-hwm") {
            guard v >= 1, v <= Int(Int32.max) else { throw ValidationError("--pub-hwm: must be between 1 and \(Int32.max)") }
            config.pubHighWaterMark = Int32(v)
        }
        if let url = setting(cluster, "CLUSTER") {
            guard url.hasPrefix("postgres://") || url.hasPrefix("postgresql://") else {
                throw ValidationError("--cluster: '\(ClusterSettings.redacted(url))' is not a postgres:// URL")
            }
            let port = config.rpcEndpoint.split(separator: ":").last.map(String.init) ?? "0"
            var settings = ClusterSettings(url: url, memberName: setting(memberName, "MEMBER_NAME") ?? "\(ProcessInfo.processInfo.hostName):\(port)")
            settings.advertiseRPC = setting(advertiseRpc, "ADVERTISE_RPC")
            settings.advertisePub = setting(advertisePub, "ADVERTISE_PUB")
            try duration(leaseTtl, "LEASE_TTL", "lease-ttl", into: &settings.leaseTTLMs)
            guard settings.leaseTTLMs >= 1_000 else { throw ValidationError("--lease-ttl: at least 1s (leases are renewed every second)") }
            settings.renewIntervalMs = min(1_000, settings.leaseTTLMs / 3)
            try duration(eventRetention, "EVENT_RETENTION", "event-retention", into: &settings.eventRetentionMs)
            if let v = try integer(maxShards, "MAX_SHARDS", "max-shards") {
                guard v >= 1 else { throw ValidationError("--max-shards: at least 1") }
                settings.maxShards = v
            }
            config.cluster = settings
        }
        config.metricsListen = setting(metricsListen, "METRICS_LISTEN")
        if let listen = config.metricsListen {
            guard let colon = listen.lastIndex(of: ":"), UInt16(listen[listen.index(after: colon)...]) != nil else {
                throw ValidationError("--metrics-listen: '\(listen)' is not HOST:PORT, e.g. 127.0.0.1:9464")
            }
            let host = String(listen[..<colon])
            if !insecurePlaintext && environment["AFTERSALES_INSECURE_PLAINTEXT"] != "1", !BindEndpoint.isLocal("tcp://\(host):0") {
                throw ValidationError("--metrics-listen \(listen) is reachable from other machines and has no authentication; "
                    + "bind it to 127.0.0.1 (scrape through a local agent) or pass --insecure-plaintext if you really mean it")
            }
        }
        if let text = setting(slowCallThreshold, "SLOW_CALL_THRESHOLD") {
            if text.trimmingCharacters(in: .whitespaces) == "0" {
                config.slowCallThresholdMicroseconds = 0
            } else if let us = DurationText.microseconds(text) {
                config.slowCallThresholdMicroseconds = UInt64(us)
            } else {
                throw ValidationError("--slow-call-threshold: '\(text)' is not a duration like 500us, 10ms or 1s (0 turns the log off)")
            }
        }
        if let text = setting(deadlineSlice, "DEADLINE_SLICE") {
            guard let us = DurationText.microseconds(text), us >= 50, us <= 100_000 else {
                throw ValidationError("--deadline-slice: '\(text)' is not a duration between 50us and 100ms (e.g. 250us, 1ms)")
            }
            config.deadlineBudgetMicroseconds = UInt64(us)
        }
        if let v = try integer(deadlineRate, "DEADLINE_RATE", "deadline-rate") {
            guard v >= 0, v <= 10_000_000 else { throw ValidationError("--deadline-rate: \(v) is not a rate between 0 (no limit) and 10000000 deadlines a second") }
            config.deadlineRatePerSecond = v
        }
        if let v = try integer(maxBatch, "MAX_BATCH", "max-batch") {
            guard v >= 1, v <= 4096 else { throw ValidationError("--max-batch: \(v) is not between 1 and 4096 calls a turn") }
            config.maxBatch = v
        }
        if let v = try integer(slowCallLogSize, "SLOW_CALL_LOG_SIZE", "slow-call-log-size") {
            guard v >= 1, v <= 100_000 else { throw ValidationError("--slow-call-log-size: must be between 1 and 100000") }
            config.slowCallLogSize = v
        }
        var level = Logger.Level.info
        if let v = setting(logLevel, "LOG_LEVEL") {
            guard let parsed = Logger.Level(rawValue: v) else { throw ValidationError("--log-level: '\(v)' is not one of trace, debug, info, notice, warning, error, critical") }
            level = parsed
        }

        let format = setting(logFormat, "LOG_FORMAT") ?? "text"
        guard format == "text" || format == "json" else { throw ValidationError("--log-format: '\(format)' is not text or json") }
        let chosenLevel = level
        LoggingSystem.bootstrap { label in
            if format == "json" {
                var handler = JSONLogHandler(label: label)
                handler.logLevel = chosenLevel
                return handler
            }
            var handler = TextLogHandler(label: label)
            handler.logLevel = chosenLevel
            return handler
        }
        let logger = Logger(label: "aftersalesd")
        if let keyFile {
            do {
                config.curveSecretKey = try SecretKeyFile.read(keyFile)
            } catch {
                logger.critical("cannot start", metadata: ["error": "\(error)"])
                throw ExitCode(78)  // EX_CONFIG
            }
        }

        let daemon: Daemon
        do {
            daemon = try Daemon(config: config, logger: logger)
        } catch {
            logger.critical("cannot start", metadata: ["error": "\(error)"])
            throw ExitCode(78)  // EX_CONFIG: the data directory or configuration is the problem
        }

        // Signals go to one watcher thread, which asks the loop to stop; the loop itself
        // never sees EINTR surprises from the handlers.
        signal(SIGTERM, SIG_IGN)
        signal(SIGINT, SIG_IGN)
        signal(SIGPIPE, SIG_IGN)
        let signalQueue = DispatchQueue(label: "aftersalesd.signals")
        signal(SIGHUP, SIG_IGN)
        let watchers = [SIGTERM, SIGINT, SIGHUP].map { number in
            let source = DispatchSource.makeSignalSource(signal: number, queue: signalQueue)
            source.setEventHandler {
                if number == SIGHUP {
                    logger.info("SIGHUP: reading the clients file again")
                    daemon.reloadClients()
                    return
                }
                logger.info("signal received; stopping", metadata: ["signal": "\(number == SIGTERM ? "SIGTERM" : "SIGINT")"])
                daemon.stop()
            }
            source.resume()
            return source
        }

        let announcer = Thread {
            if let endpoints = daemon.waitUntilReady() {
                FileHandle.standardOutput.write(Data("aftersalesd ready rpc=\(endpoints.rpc) pub=\(endpoints.pub)\n".utf8))
            }
        }
        announcer.start()
        do {
            try daemon.run()
        } catch let error as BindFailure {
            logger.critical("cannot serve", metadata: ["error": "\(error)"])
            throw ExitCode(73)  // EX_CANTCREAT: the endpoint cannot be made; a person must look
        } catch let error as RecoveryFailure {
            logger.critical("cannot start", metadata: ["error": "\(error)"])
            throw ExitCode(78)  // EX_CONFIG: the data directory is the problem
        } catch {
            logger.critical("stopped on error", metadata: ["error": "\(error)"])
            throw ExitCode(70)  // EX_SOFTWARE
        }
        withExtendedLifetime(watchers) {}
    }
}

/// `aftersalesd keygen`: a CURVE key pair for the daemon or for a client.
struct Keygen: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a CURVE key pair: DIR/NAME.key (the secret, mode 0600) and DIR/NAME.pub (the public key to hand out).",
        discussion: "The daemon takes its .key with --curve-secret-key; a client's .pub goes into the daemon's --clients file.")
    @Option(help: "Directory for the key files (created if missing).") var out: String = "."
    @Argument(help: "The key's name: the daemon's, or the client's as in the clients file.") var name: String

    func run() throws {
        guard !name.isEmpty, !name.contains("/") else { throw ValidationError("NAME: a plain name, no '/'") }
        let keys = try CurveKeyPair.generate()
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let secretPath = out + "/" + name + ".key", publicPath = out + "/" + name + ".pub"
        try SecretKeyFile.write(keys.secretKey, to: secretPath)
        try Data((keys.publicKey + "\n").utf8).write(to: URL(fileURLWithPath: publicPath), options: .withoutOverwriting)
        print("\(secretPath)  secret (mode 0600)\n\(publicPath)  public: \(keys.publicKey)")
    }
}

/// `aftersalesd cluster …`: creating a cluster's tables in PostgreSQL.
struct Cluster: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Cluster mode: members keep their journal, snapshots and shard ownership in PostgreSQL.",
        subcommands: [Init.self])

    /// `aftersalesd cluster init --shards 64 postgres://…`.
    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a cluster's tables and its shards in an empty PostgreSQL database (refused when one exists).",
            discussion: "The shard count is fixed for the cluster's life: a case lives in shard hash(order line) mod S, and its id says which.")
        @Option(help: "How many shards the cases are spread over (1…4096); at least a few per member you will ever run.") var shards: Int = 64
        @Argument(help: "postgres://USER@HOST:PORT/DATABASE") var url: String

        func run() throws {
            guard (1...4096).contains(shards) else { throw ValidationError("--shards: between 1 and 4096") }
            do {
                let target = try ClusterSetup.initialize(url: url, shards: shards)
                print("created a cluster of \(shards) shards in \(target)")
            } catch {
                FileHandle.standardError.write(Data("aftersalesd cluster init: \(error)\n".utf8))
                throw ExitCode(78)
            }
        }
    }
}
