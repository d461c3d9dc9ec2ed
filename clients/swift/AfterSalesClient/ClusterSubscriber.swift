import AfterSalesProto
import AfterSalesRPC
import Foundation
import Synchronization
import ZeroMQ

/// What a `ClusterSubscriber` delivers.
public enum ClusterSubscriberEvent: Sendable, Equatable {
    /// One announcement whose topic matches, in sequence order within its shard, exactly once.
    case announcement(EventEnvelope)
    /// Announcements of `shard` that are gone for good (older than the cluster's
    /// --event-retention): re-read the cases you follow; delivery goes on from `oldestAvailableSeq`.
    case lost(shard: UInt32, fromSeq: UInt64, throughSeq: UInt64, oldestAvailableSeq: UInt64)
}

/// The announcements of a whole cluster (or of a daemon on its own: a cluster of one
/// shard) for a set of topic prefixes, each exactly once, while members die and shards
/// move. One SUB socket is connected to every member's PUB socket (and to new members as
/// the map shows them); each shard numbers its announcements on its own, so the
/// subscriber keeps one position per shard, fills every jump through ReplayEvents — which
/// any member serves from PostgreSQL — and drops what it has seen (by shard and sequence).
/// Once a second it also asks each shard for what came after its position, so a notice
/// published by a member that died before it reached the socket is still delivered.
public final class ClusterSubscriber: AsyncSequence, Sendable {
    public typealias Element = ClusterSubscriberEvent
    public typealias AsyncIterator = AsyncStream<ClusterSubscriberEvent>.Iterator

    private let stream: AsyncStream<ClusterSubscriberEvent>
    private let runner: Runner

    /// Subscribes through the members at `seeds` (RPC endpoints) to `topics` (prefixes;
    /// empty = all). Without `from`, delivery starts at each shard's next announcement;
    /// with it, at the given sequence number of each shard named (others: next).
    public init(seeds: [String], topics: [String] = [], from: [UInt32: UInt64] = [:],
                configuration: AfterSalesClient.Configuration = .init(), context: ZMQContext? = nil) {
        var continuation: AsyncStream<ClusterSubscriberEvent>.Continuation!
        stream = AsyncStream(bufferingPolicy: .unbounded) { continuation = $0 }
        runner = Runner(seeds: seeds, topics: topics, from: from, configuration: configuration,
                        context: context ?? ZMQContext.shared, output: continuation)
        runner.start()
    }

    deinit { runner.stop() }

    /// Stops the subscriber; iteration ends. Idempotent.
    public func close() { runner.stop() }

    /// Each shard's position: every announcement up to it was delivered or did not match.
    public var positions: [UInt32: UInt64] { runner.positions }

    public func makeAsyncIterator() -> AsyncStream<ClusterSubscriberEvent>.Iterator { stream.makeAsyncIterator() }

    /// The subscriber's thread and its state.
    final class Runner: @unchecked Sendable {
        // @unchecked: everything below but `shared` and `stopping` is touched by the thread only.
        let seeds: [String]
        let topics: [String]
        let configuration: AfterSalesClient.Configuration
        let context: ZMQContext?
        let output: AsyncStream<ClusterSubscriberEvent>.Continuation
        private let shared = Mutex([UInt32: UInt64]())
        private let stopping = Atomic<Bool>(false)
        private var startAt: [UInt32: UInt64]
        private var last: [UInt32: UInt64] = [:]
        private var clients: [String: AfterSalesClient] = [:]
        private var members: [String] = []
        private var connected: Set<String> = []
        private var shardCount: UInt32 = 0
        /// Members that did not answer, and until when (monotonic ns) they are asked last.
        private var silentUntil: [String: UInt64] = [:]

        init(seeds: [String], topics: [String], from: [UInt32: UInt64], configuration: AfterSalesClient.Configuration,
             context: ZMQContext?, output: AsyncStream<ClusterSubscriberEvent>.Continuation) {
            (self.seeds, self.topics, self.startAt, self.configuration, self.context, self.output) = (seeds, topics, from, configuration, context, output)
        }

        var positions: [UInt32: UInt64] { shared.withLock { $0 } }

        func start() {
            let thread = Thread { [self] in
                run()
                output.finish()
            }
            thread.name = "ClusterSubscriber"
            thread.start()
        }

        func stop() { stopping.store(true, ordering: .relaxed) }

        private var stopped: Bool { stopping.load(ordering: .relaxed) }

        private func matches(_ topic: String) -> Bool { topics.isEmpty || topics.contains { topic.hasPrefix($0) } }

        private func run() {
            guard let context, let socket = try? ZMQSocket(context, .sub) else { return }
            defer { socket.close() }
            do {
                try configuration.curve?.apply(to: socket)
                if topics.isEmpty { try socket.subscribe("") } else { for topic in topics { try socket.subscribe(topic) } }
            } catch {
                return
            }
            // Clone pattern: subscribed first, then each shard's position, then the gap.
            while !stopped, !refreshMap(socket) { Thread.sleep(forTimeInterval: 0.2) }
            for shard in 0..<shardCount where !stopped {
                if let from = startAt[shard] {
                    last[shard] = Swift.max(1, from) - 1
                } else {
                    while !stopped, last[shard] == nil {
                        if let latest = latestSeq(shard) { last[shard] = latest } else { Thread.sleep(forTimeInterval: 0.2) }
                    }
                }
            }
            publishPositions()
            var poller = ZMQPoller()
            let item = poller.add(socket)
            var nextTailCheck = monotonicNanoseconds()
            var nextMapCheck = monotonicNanoseconds() + 2_000_000_000
            while !stopped {
                _ = try? poller.poll(timeoutMilliseconds: 100)
                if poller.isReadable(item) {
                    while let frames = try? socket.receive(dontWait: true), frames.count == 2,
                          let event = try? EventEnvelope(serializedBytes: frames[1]) {
                        take(event)
                    }
                }
                let now = monotonicNanoseconds()
                if now >= nextTailCheck {
                    nextTailCheck = now + 1_000_000_000
                    for shard in 0..<shardCount where !stopped { fill(shard, through: nil) }
                }
                if now >= nextMapCheck {
                    nextMapCheck = now + 2_000_000_000
                    _ = refreshMap(socket)
                }
            }
        }

        /// A live announcement: delivered when it is the next of its shard, after the gap
        /// before it is filled; dropped when already seen.
        private func take(_ event: EventEnvelope) {
            let shard = event.shard
            guard let position = last[shard] else { return }
            if event.seq <= position { return }
            if event.seq > position + 1 { fill(shard, through: event.seq - 1) }
            guard let now = last[shard], event.seq == now + 1 else { return }
            if matches(event.topic) { output.yield(.announcement(event)) }
            last[shard] = event.seq
            publishPositions()
        }

        /// Fetches shard `shard`'s announcements after its position (up to `through`, or all
        /// there are) through ReplayEvents on any member, and delivers the matching ones.
        private func fill(_ shard: UInt32, through: UInt64?) {
            while !stopped, let position = last[shard], through.map({ position < $0 }) ?? true {
                let request = Aftersales_V1_ReplayEventsRequest.with {
                    $0.shard = shard
                    $0.fromSeq = position + 1
                    $0.maxEvents = UInt32(Swift.min(10_000, through.map { $0 - position } ?? 1_000))
                }
                guard let answer = callAnyMember(RPCs.replayEvents, request) else { return }
                switch answer {
                case .success(let page):
                    guard let first = page.events.first else { return }
                    if first.seq > position + 1 {
                        output.yield(.lost(shard: shard, fromSeq: position + 1, throughSeq: first.seq - 1, oldestAvailableSeq: first.seq))
                    }
                    for event in page.events where event.seq > last[shard]! {
                        if matches(event.topic) { output.yield(.announcement(event)) }
                        last[shard] = event.seq
                    }
                    publishPositions()
                case .failure(let error):
                    guard error.code == StatusCode.outOfRange, let oldest = Self.oldest(in: error.message) else { return }
                    output.yield(.lost(shard: shard, fromSeq: position + 1, throughSeq: oldest - 1, oldestAvailableSeq: oldest))
                    last[shard] = oldest - 1
                }
            }
        }

        /// The latest sequence number of a shard (0 when it has announced nothing).
        private func latestSeq(_ shard: UInt32) -> UInt64? {
            let probe = Aftersales_V1_ReplayEventsRequest.with {
                $0.shard = shard
                $0.fromSeq = UInt64(Int64.max)
                $0.maxEvents = 1
            }
            guard case .success(let answer)? = callAnyMember(RPCs.replayEvents, probe) else { return nil }
            return answer.lastSeq
        }

        /// Reads the map; connects the SUB socket to members not connected yet.
        private func refreshMap(_ socket: ZMQSocket) -> Bool {
            guard case .success(let map)? = callAnyMember(RPCs.getClusterMap, .init()) else { return false }
            shardCount = map.shardCount
            members = Array(Set(map.members.map(\.rpcEndpoint) + map.shards.map(\.rpcEndpoint)).filter { !$0.isEmpty }).sorted()
            for pub in Set(map.members.map(\.pubEndpoint) + map.shards.map(\.pubEndpoint)) where !pub.isEmpty && !connected.contains(pub) {
                if (try? socket.connect(pub)) != nil { connected.insert(pub) }
            }
            return true
        }

        /// One call to the first member that answers (members from the map, then the seeds;
        /// one that did not answer lately is asked last, so a dead member costs one timeout,
        /// not one per call).
        private func callAnyMember<Request, Response>(_ rpc: RPC<Request, Response>, _ request: Request) -> Result<Response, RPCError>? {
            var seen: Set<String> = []
            let now = monotonicNanoseconds()
            let candidates = (members + seeds).filter { seen.insert($0).inserted }
            let ordered = candidates.filter { (silentUntil[$0] ?? 0) <= now } + candidates.filter { (silentUntil[$0] ?? 0) > now }
            for endpoint in ordered where !stopped {
                guard let client = client(endpoint) else { continue }
                do {
                    let answer = try client.callSync(rpc, request, options: CallOptions(deadline: .seconds(2), attemptTimeout: .milliseconds(700), maxAttempts: 2))
                    silentUntil[endpoint] = nil
                    return .success(answer)
                } catch where error.code == .unavailable {
                    if error.redirect == nil { silentUntil[endpoint] = monotonicNanoseconds() + 10_000_000_000 }
                    continue
                } catch {
                    return .failure(error)
                }
            }
            return nil
        }

        private func client(_ endpoint: String) -> AfterSalesClient? {
            if let existing = clients[endpoint] { return existing }
            let made = try? AfterSalesClient(endpoint: endpoint, configuration: configuration, context: context)
            clients[endpoint] = made
            return made
        }

        private func publishPositions() {
            let snapshot = last
            shared.withLock { $0 = snapshot }
        }

        /// The oldest kept sequence number in an OUT_OF_RANGE message ("… the oldest available is N …").
        private static func oldest(in message: String) -> UInt64? {
            guard let range = message.range(of: "the oldest available is ") else { return nil }
            return UInt64(message[range.upperBound...].prefix { $0.isNumber })
        }
    }
}
