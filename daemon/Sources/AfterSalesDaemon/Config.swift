import CaseEngine

/// Everything `aftersalesd` can be told at start-up. Defaults are the embedded ones
/// `make run` uses: loopback only, data under var/.
public struct DaemonConfig: Sendable {
    /// ROUTER endpoint for calls; "tcp://127.0.0.1:*" picks a free port (see `Daemon.waitUntilReady`).
    public var rpcEndpoint = "tcp://127.0.0.1:7700"
    /// PUB endpoint for announcements.
    public var pubEndpoint = "tcp://127.0.0.1:7701"
    /// Where the journal and snapshots live.
    public var dataDirectory = "var/aftersales"
    /// When a batch is made durable before its replies go out.
    public var fsync: FsyncPolicy = .always
    /// How often a snapshot is taken when something changed (ms); 0 = only on demand and at shutdown.
    public var snapshotIntervalMs: Int64 = 60_000
    /// Rules, windows and judgement weights.
    public var engine = EngineConfig()
    /// Largest call the daemon answers (bytes); larger calls get RESOURCE_EXHAUSTED.
    public var maxMessageBytes = 1 << 20
    /// How many recent announcements ReplayEvents can serve.
    public var replayWindow = 100_000
    /// How many idempotency keys are remembered (oldest forgotten first).
    public var idempotencyCapacity = 100_000
    /// Most calls one turn takes from the socket before it is committed and answered
    /// (the ceiling of `TurnSize`).
    public var maxBatch = 128
    /// CPU time one turn of the loop may spend firing deadlines (µs): a burst of expiries
    /// is worked off between batches of calls instead of stalling them.
    public var deadlineBudgetMicroseconds: UInt64 = 250
    /// Most deadlines fired per second while calls arrive: a burst due together is worked
    /// off at this rate instead of holding the machine. 0 = as fast as the loop can.
    public var deadlineRatePerSecond = 15_000
    /// Announcements published per turn of the loop, at least (or twice what the loop
    /// announced since the last turn, when more): a sync that makes a burst of expiries
    /// durable at once releases them a slice per turn, between batches of calls, instead
    /// of holding every caller while tens of thousands go out.
    public var maxPublishedPerTurn = 256
    /// Announcements queued per subscriber before libzmq drops (subscribers then replay the gap).
    public var pubHighWaterMark: Int32 = 1_000_000
    /// The daemon's CURVE secret key (40 Z85 characters): both sockets become CURVE
    /// servers and only the clients in `clientsFile` are admitted. nil = plaintext, for
    /// loopback development only.
    public var curveSecretKey: String?
    /// Who may connect and what each may do (`NAME ROLE PUBLIC_KEY [SCOPE…]` lines); read
    /// at start-up and again on `Daemon.reloadClients()` (SIGHUP).
    public var clientsFile: String?
    /// Where /metrics, /healthz and /readyz are served over HTTP ("127.0.0.1:9464"); nil = off.
    public var metricsListen: String?
    /// How often the loop moves its counts into the metrics registry (ms): what /metrics
    /// shows is at most this old.
    public var metricsPublishIntervalMs: Int64 = 1_000
    /// Calls that take at least this long (µs, receipt to reply) go into the slow-call
    /// log (AdminService/SlowCalls); 0 = off. 10 ms by default, as Redis' slowlog.
    public var slowCallThresholdMicroseconds: UInt64 = 10_000
    /// How many slow calls the log keeps (newest first).
    public var slowCallLogSize = 128
    /// Called on the recovery thread before the data directory is read: tests use it to
    /// hold recovery back and watch the daemon answer NOT_SERVING meanwhile.
    public var beforeRecovery: (@Sendable () -> Void)?
    /// Cluster mode: the member's PostgreSQL and its ownership settings; nil = a daemon
    /// on its own with its journal in `dataDirectory`.
    public var cluster: ClusterSettings?
    /// What everysec's background sync runs instead of fdatasync(fd) — for tests that
    /// hold a sync back or make the disk lie; nil = fdatasync.
    public var backgroundSyncOverride: (@Sendable (_ fd: Int32, _ path: String) throws -> Void)?

    /// The embedded defaults.
    public init() {}
}

/// How a daemon takes part in a cluster (`--cluster postgres://…`).
public struct ClusterSettings: Sendable {
    /// The cluster's PostgreSQL.
    public var url: String
    /// This member's name in the ownership table (a random suffix is added per start, so a
    /// restarted member never mistakes its old shards for loaded ones).
    public var memberName: String
    /// The endpoints other members and clients reach this member at; nil = as bound.
    public var advertiseRPC: String?
    public var advertisePub: String?
    /// A shard's lease (ms): how long after its owner's last renewal another member may take it.
    public var leaseTTLMs: Int64 = 5_000
    /// How often leases are renewed and the spread of shards looked at (ms).
    public var renewIntervalMs: Int64 = 1_000
    /// Most shards this member owns; nil = its even share.
    public var maxShards: Int?
    /// How long announcements are kept in PostgreSQL for ReplayEvents (ms); 7 days.
    public var eventRetentionMs: Int64 = 7 * 86_400_000

    /// A member of the cluster at `url`.
    public init(url: String, memberName: String) {
        self.url = url
        self.memberName = memberName
    }

    /// `url` without its password, for logs.
    public static func redacted(_ url: String) -> String {
        guard let at = url.firstIndex(of: "@"), let scheme = url.range(of: "://"), scheme.upperBound < at else { return url }
        let credentials = url[scheme.upperBound..<at]
        guard let colon = credentials.firstIndex(of: ":") else { return url }
        return String(url[..<colon]) + ":***" + String(url[at...])
    }
}
