import AfterSalesProto
import AfterSalesRPC
import Foundation
import Synchronization
import ZeroMQ

/// What an `EventSubscriber` delivers.
public enum SubscriberEvent: Sendable, Equatable {
    /// One announcement whose topic matches the subscriber's prefixes, in sequence order,
    /// exactly once.
    case announcement(EventEnvelope)
    /// Announcements that are gone for good: the daemon's replay window no longer holds
    /// them (ReplayEvents answered OUT_OF_RANGE). Some of them may have matched the
    /// prefixes, so a consumer should re-read the cases it cares about. Delivery goes on
    /// from `oldestAvailableSeq`.
    case lost(fromSeq: UInt64, throughSeq: UInt64, oldestAvailableSeq: UInt64)
    /// Announcements already delivered are gone: the daemon started a new incarnation of
    /// its stream at `fromSeq` (storage lost what it had confirmed: a restored backup, a
    /// disk that lied), so `fromSeq...throughSeq` as delivered no longer exist and those
    /// numbers now belong to different announcements, which follow. Re-read the cases.
    case rewound(fromSeq: UInt64, throughSeq: UInt64, oldIncarnation: UInt64, newIncarnation: UInt64)
    /// The daemon stopped answering (it is restarting, or unreachable). The subscriber
    /// keeps trying with backoff; nothing is lost while the replay window holds the gap.
    case disconnected(reason: String)
    /// The daemon answers again. `restarted` when it is a new incarnation of the stream;
    /// the gap since is filled next, from ReplayEvents.
    case reconnected(incarnation: UInt64, restarted: Bool)

    /// The announcement, when this is one.
    public var announcement: EventEnvelope? {
        if case .announcement(let envelope) = self { return envelope }
        return nil
    }
}

/// The announcements of `aftersalesd` for a set of topic prefixes, as an `AsyncSequence`:
/// in sequence order, each exactly once, with missed ones fetched again.
///
/// Announcements come live from the daemon's PUB socket, which drops them for a subscriber
/// that is slow or disconnected. Each carries a sequence number that grows by exactly one
/// per announcement (of any topic), so the subscriber knows what it has seen. Because the
/// SUB socket only receives the matching topics, a jump in the numbers may just be other
/// topics — or lost announcements; either way the subscriber asks for the range through
/// `AdminService/ReplayEvents` and delivers the matching ones among them, so it always
/// knows it has seen everything up to its `lastSeq`. When nothing arrives for a while it
/// checks `GetStats.last_event_seq` to notice missed announcements at the tail.
///
/// Starting `from:` a sequence number is the guide's Clone pattern: subscribe first, then
/// fetch the past through ReplayEvents, then apply only live announcements newer than it.
///
/// The socket is read only while the consumer asks for the next element: a consumer that
/// pauses lets the socket's queue fill up to its high-water mark, after which the daemon
/// drops announcements for it — and the subscriber fills the gap when it resumes.
///
/// A subscriber is long-lived: when the daemon restarts or cannot be reached it reports
/// `disconnected`, retries with backoff (libzmq reconnects the SUB socket by itself),
/// reports `reconnected`, and fills the gap through ReplayEvents; only a gap the replay
/// window no longer holds is `lost`. Each start of the daemon is a new incarnation of
/// the stream; one that begins at or below a number already delivered is a `rewound`.
///
/// One consumer iterates it. The sequence ends (returns nil) after `close()`, and throws
/// an `RPCError` only for what retrying cannot mend (e.g. a malformed endpoint).
///
/// ```swift
/// let notices = EventSubscriber(client: client, endpoint: "tcp://127.0.0.1:7701",
///                               topics: ["proposal.expired"])
/// for try await case .announcement(let event) in notices {
///     print(event.seq, event.caseID)
/// }
/// ```
public final class EventSubscriber: AsyncSequence, Sendable {
    public typealias Element = SubscriberEvent

    /// Tuning of a subscriber.
    public struct Options: Sendable, Hashable {
        /// How often to check the daemon's last sequence number while nothing arrives
        /// (default 1 s); nil = never (only a later announcement reveals a tail gap).
        public var tailCheckInterval: Duration?
        /// The SUB socket's receive high-water mark, in messages (libzmq's default 1000).
        public var receiveHighWaterMark: Int32
        /// The kernel receive buffer of the SUB socket's connection in bytes (`ZMQ_RCVBUF`);
        /// nil = the system's default. Small values make a paused subscriber overflow sooner.
        public var receiveBufferBytes: Int32?
        /// How many announcements one ReplayEvents call asks for (1...10000).
        public var replayBatch: UInt32
        /// The deadline of each ReplayEvents / GetStats call.
        public var callDeadline: Duration
        /// The longest wait between two tries while the daemon does not answer (the wait
        /// doubles from 100 ms up to this).
        public var maxRetryInterval: Duration

        /// The defaults.
        public init(tailCheckInterval: Duration? = .seconds(1), receiveHighWaterMark: Int32 = 1000, receiveBufferBytes: Int32? = nil, replayBatch: UInt32 = 1000, callDeadline: Duration = .seconds(5), maxRetryInterval: Duration = .seconds(2)) {
            self.tailCheckInterval = tailCheckInterval
            self.receiveHighWaterMark = receiveHighWaterMark
            self.receiveBufferBytes = receiveBufferBytes
            self.replayBatch = replayBatch
            self.callDeadline = callDeadline
            self.maxRetryInterval = maxRetryInterval
        }
    }

    /// Figures about what the subscriber did, for tests and tools.
    public struct Counters: Sendable, Hashable {
        /// Announcements received live on the SUB socket.
        public var live = 0
        /// Live announcements dropped because they had been delivered (or skipped) already.
        public var duplicates = 0
        /// Jumps in the sequence numbers that were filled through ReplayEvents.
        public var gapsFilled = 0
        /// Announcements obtained through ReplayEvents (of any topic).
        public var replayed = 0
        /// Announcements delivered to the consumer.
        public var delivered = 0
        /// Times the daemon stopped answering and the subscriber waited for it.
        public var disconnects = 0
        /// Rewinds reported.
        public var rewinds = 0
    }

    /// The daemon's default PUB endpoint.
    public static let defaultEndpoint = "tcp://127.0.0.1:7701"

    private let core: SubscriberCore

    /// Subscribes to announcements whose topic starts with one of `topics` (empty = all)
    /// from the PUB socket at `endpoint`, using `client` for replays and tail checks.
    /// With `from`, delivery starts at that sequence number (≥ 1; earlier ones come from
    /// ReplayEvents); without it, at the first announcement after the subscription.
    /// The socket is opened at once on the subscriber's own thread.
    public init(client: AfterSalesClient, endpoint: String = EventSubscriber.defaultEndpoint, topics: [String] = [], from: UInt64? = nil, options: Options = Options(), context: ZMQContext? = nil) {
        core = SubscriberCore(client: client, endpoint: endpoint, topics: topics, from: from, options: options, context: context ?? ZMQContext.shared)
        core.start()
    }

    deinit { core.close() }

    /// Stops the subscriber: the consumer's pending `next()` returns nil. Idempotent.
    public func close() { core.close() }

    /// The highest sequence number the subscriber has accounted for (every one up to it
    /// was delivered, did not match the topics, or was reported `lost`); nil before it
    /// knows where the stream stands.
    public var lastSeq: UInt64? { core.lastSeq }

    /// What the subscriber did so far.
    public var counters: Counters { core.counters }

    public func makeAsyncIterator() -> Iterator { Iterator(core: core, owner: self) }

    /// Iterates the subscriber's events; keeps the subscriber alive while iterating.
    public struct Iterator: AsyncIteratorProtocol {
        let core: SubscriberCore
        let owner: EventSubscriber

        public mutating func next() async throws -> SubscriberEvent? {
            try await core.next()
        }
    }
}

/// libzmq's `ZMQ_RCVBUF` option number (zmq.h).
private let zmqReceiveBufferOption: Int32 = 12

/// The subscriber's state, shared by the consumer and the subscriber's thread.
final class SubscriberCore: Sendable {
    private struct Shared {
        var ready: [SubscriberEvent] = []
        var readyStart = 0
        var waiter: CheckedContinuation<SubscriberEvent?, any Error>?
        var failure: (any Error)?
        var closed = false
        var lastSeq: UInt64?
        var counters = EventSubscriber.Counters()

        var hasReady: Bool { readyStart < ready.count }

        mutating func popReady() -> SubscriberEvent? {
            guard hasReady else { return nil }
            let event = ready[readyStart]
            readyStart += 1
            if readyStart > 1024, readyStart * 2 > ready.count {
                ready.removeFirst(readyStart)
                readyStart = 0
            }
            return event
        }
    }

    let client: AfterSalesClient
    let endpoint: String
    let topics: [String]
    let from: UInt64?
    let options: EventSubscriber.Options
    let context: ZMQContext?
    private let shared = Mutex(Shared())
    private let wake: WakeUpPipe?
    private let finished = DispatchSemaphore(value: 0)

    init(client: AfterSalesClient, endpoint: String, topics: [String], from: UInt64?, options: EventSubscriber.Options, context: ZMQContext?) {
        self.client = client
        self.endpoint = endpoint
        self.topics = topics
        self.from = from
        self.options = options
        self.context = context
        self.wake = try? WakeUpPipe()
    }

    var lastSeq: UInt64? { shared.withLock { $0.lastSeq } }
    var counters: EventSubscriber.Counters { shared.withLock { $0.counters } }

    func start() {
        let thread = Thread { [self] in
            self.run()
            self.finished.signal()
        }
        thread.name = "EventSubscriber"
        thread.start()
    }

    func close() {
        let waiter = shared.withLock { shared -> CheckedContinuation<SubscriberEvent?, any Error>? in
            shared.closed = true
            defer { shared.waiter = nil }
            return shared.waiter
        }
        waiter?.resume(returning: nil)
        wake?.signal()
    }

    /// The consumer's side: the next ready event, or wait for the thread to produce one.
    func next() async throws -> SubscriberEvent? {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<SubscriberEvent?, any Error>) in
                enum Outcome { case event(SubscriberEvent), end, fail(any Error), wait }
                let outcome = shared.withLock { shared -> Outcome in
                    if let event = shared.popReady() {
                        shared.counters.delivered += event.announcement == nil ? 0 : 1
                        return .event(event)
                    }
                    if let failure = shared.failure { return .fail(failure) }
                    if shared.closed { return .end }
                    shared.waiter = continuation
                    return .wait
                }
                switch outcome {
                case .event(let event): continuation.resume(returning: event)
                case .end: continuation.resume(returning: nil)
                case .fail(let error): continuation.resume(throwing: error)
                case .wait: wake?.signal()
                }
            }
        } onCancel: {
            let waiter = shared.withLock { shared -> CheckedContinuation<SubscriberEvent?, any Error>? in
                defer { shared.waiter = nil }
                return shared.waiter
            }
            waiter?.resume(throwing: CancellationError())
        }
    }

    // MARK: the subscriber's thread

    private func matches(_ topic: String) -> Bool {
        topics.isEmpty || topics.contains { topic.hasPrefix($0) }
    }

    /// Thread-side state (never shared).
    private final class State {
        var lastSeq: UInt64?
        /// The daemon's incarnation as last seen, and its first sequence number.
        var incarnation: UInt64?
        var pending: [SubscriberEvent] = []
        var lastActivity = monotonicNanoseconds()
        /// Set while calls fail: the daemon is being waited for.
        var down = false
        /// An answer came after `down`; the next `observe` reports `reconnected`.
        var reconnecting = false
    }

    /// The subscriber was closed while waiting for the daemon.
    private struct Closed: Error {}

    private func run() {
        guard let wake, let context else {
            fail(RPCError(.unavailable, "cannot start the subscriber (no pipe or ZeroMQ context)"))
            return
        }
        let socket: ZMQSocket
        do {
            socket = try ZMQSocket(context, .sub)
            // The PUB socket admits the same keys as the RPC socket.
            try client.configuration.curve?.apply(to: socket)
            try socket.setReceiveHighWaterMark(options.receiveHighWaterMark)
            if let bytes = options.receiveBufferBytes { try socket.setOption(zmqReceiveBufferOption, bytes) }
            if topics.isEmpty {
                try socket.subscribe("")
            } else {
                for topic in topics { try socket.subscribe(topic) }
            }
            try socket.connect(endpoint)
        } catch {
            fail(RPCError(.invalidArgument, "cannot subscribe to \(endpoint): \(error)"))
            return
        }
        defer { socket.close() }
        var poller = ZMQPoller()
        let socketItem = poller.add(socket)
        let wakeItem = poller.add(fileDescriptor: wake.readDescriptor)

        let state = State()
        // Clone pattern: the SUB socket is subscribed before we learn where the stream stands.
        do {
            if let from {
                try replay(from: max(1, from), through: nil, state)
                if state.lastSeq == nil { state.lastSeq = max(1, from) - 1 }
            } else {
                let stats = try stats(state)
                observe(incarnation: stats.incarnation, startSeq: stats.incarnationStartSeq, state)
                state.lastSeq = stats.lastEventSeq
            }
        } catch is Closed {
            return
        } catch {
            fail(error)
            return
        }
        publish(state)

        while true {
            let (wanted, closed) = shared.withLock { ($0.waiter != nil && !$0.hasReady, $0.closed) }
            if closed { return }
            // Read the socket only while the consumer waits (backpressure).
            poller.setEvents(socketItem, wanted ? .readable : [])
            // Not reading still needs a look now and then: libzmq only runs a socket's
            // pending commands (such as re-sending the subscription after a reconnect) when
            // the owning thread touches the socket.
            var timeout = wanted ? -1 : 100
            if wanted, let interval = options.tailCheckInterval {
                timeout = pollTimeout(until: state.lastActivity + interval.nanoseconds, now: monotonicNanoseconds())
            }
            do {
                _ = try poller.poll(timeoutMilliseconds: timeout)
            } catch {
                fail(RPCError(.unavailable, "polling the subscription to \(endpoint) failed: \(error)"))
                return
            }
            if poller.isReadable(wakeItem) { wake.drain() }
            if !wanted { _ = try? socket.events }
            do {
                if wanted, poller.isReadable(socketItem) {
                    while let frames = try socket.receive(dontWait: true) {
                        try handleLive(frames, state)
                    }
                    state.lastActivity = monotonicNanoseconds()
                } else if wanted, let interval = options.tailCheckInterval,
                          monotonicNanoseconds() >= state.lastActivity + interval.nanoseconds {
                    // Quiet: did we miss announcements at the tail (or did the daemon restart)?
                    let stats = try stats(state)
                    observe(incarnation: stats.incarnation, startSeq: stats.incarnationStartSeq, state)
                    if let seen = state.lastSeq, stats.lastEventSeq > seen {
                        try replay(from: seen + 1, through: stats.lastEventSeq, state)
                        shared.withLock { $0.counters.gapsFilled += 1 }
                    }
                    state.lastActivity = monotonicNanoseconds()
                }
            } catch is Closed {
                publish(state)
                return
            } catch {
                publish(state)
                fail(error)
                return
            }
            publish(state)
        }
    }

    /// One live announcement: deliver it, drop it as a duplicate, or fill the gap before it.
    private func handleLive(_ frames: [Frame], _ state: State) throws {
        guard frames.count == 2, let event = try? EventEnvelope(serializedBytes: frames[1]) else { return }
        shared.withLock { $0.counters.live += 1 }
        // A live announcement is always of the daemon's current incarnation.
        observe(incarnation: event.incarnation, startSeq: event.incarnationStartSeq, state)
        let seen = state.lastSeq ?? (event.seq &- 1)
        if event.seq <= seen {
            shared.withLock { $0.counters.duplicates += 1 }
            return
        }
        if event.seq > seen + 1 {
            try replay(from: seen + 1, through: event.seq - 1, state)
            shared.withLock { $0.counters.gapsFilled += 1 }
            if let now = state.lastSeq, event.seq <= now { return }  // the replay went past it
        }
        if matches(event.topic) { state.pending.append(.announcement(event)) }
        state.lastSeq = event.seq
    }

    /// Fetches announcements `from` ... `through` (nil = up to the latest) and queues the
    /// matching ones; OUT_OF_RANGE becomes a `lost` event and replay goes on from the
    /// oldest the daemon still holds.
    private func replay(from start: UInt64, through end: UInt64?, _ state: State) throws {
        var next = start
        while end.map({ next <= $0 }) ?? true {
            var request = Aftersales_V1_ReplayEventsRequest()
            request.fromSeq = next
            let left = end.map { $0 - next + 1 } ?? UInt64(options.replayBatch)
            request.maxEvents = UInt32(min(UInt64(options.replayBatch), left))
            let response: Aftersales_V1_ReplayEventsResponse
            do {
                response = try call(state) { () throws(RPCError) in try client.blocking.replayEvents(request, deadline: options.callDeadline) }
            } catch let error as RPCError {
                guard error.code == .outOfRange else { throw error }
                let stats = try stats(state)
                let oldest = stats.oldestReplayableSeq
                guard oldest > next else { throw error }
                state.pending.append(.lost(fromSeq: next, throughSeq: oldest - 1, oldestAvailableSeq: oldest))
                state.lastSeq = oldest - 1
                next = oldest
                continue
            }
            // The events of a replay may be of older incarnations (made before a restart):
            // the answer itself says which incarnation the daemon is in now.
            if observe(incarnation: response.incarnation, startSeq: response.incarnationStartSeq, state) {
                // A rewind moved the position back: replay from there.
                next = (state.lastSeq ?? 0) + 1
                continue
            }
            shared.withLock { $0.counters.replayed += response.events.count }
            for event in response.events where event.seq >= next {
                if let end, event.seq > end { break }
                if matches(event.topic) { state.pending.append(.announcement(event)) }
                state.lastSeq = event.seq
                next = event.seq + 1
            }
            // Done when the daemon has nothing more (from_seq past its latest) or sent none.
            if response.events.isEmpty || next > response.lastSeq { break }
        }
    }

    /// Takes in the daemon's current incarnation. A new one that begins at or below what
    /// was delivered is a rewind: reported, and the position moves back to just before
    /// it so its announcements are delivered too. Returns whether it rewound.
    /// A change of incarnation, or the first answer after the daemon was unreachable, is
    /// also reported (`reconnected`).
    @discardableResult
    private func observe(incarnation: UInt64, startSeq: UInt64, _ state: State) -> Bool {
        guard incarnation != 0 else { return false }  // a daemon from before incarnations
        let known = state.incarnation
        state.incarnation = incarnation
        let restarted = known.map { $0 != incarnation } ?? false
        if restarted || state.reconnecting {
            state.reconnecting = false
            state.pending.append(.reconnected(incarnation: incarnation, restarted: restarted))
        }
        guard restarted, let known, let seen = state.lastSeq, startSeq >= 1, startSeq <= seen else { return false }
        state.pending.append(.rewound(fromSeq: startSeq, throughSeq: seen, oldIncarnation: known, newIncarnation: incarnation))
        shared.withLock { $0.counters.rewinds += 1 }
        state.lastSeq = startSeq - 1
        return true
    }

    /// GetStats, tried until answered (see `call`).
    private func stats(_ state: State) throws -> Aftersales_V1_GetStatsResponse {
        try call(state) { () throws(RPCError) in try client.blocking.getStats(deadline: options.callDeadline) }
    }

    /// One call to the daemon, tried until it is answered: while it is not (restarting,
    /// unreachable) the consumer hears `disconnected` once, the thread waits with backoff,
    /// and hears `reconnected` when an answer comes. An answer that is an error is the
    /// caller's to handle. Throws `Closed` when the subscriber is closed meanwhile.
    private func call<T>(_ state: State, _ body: () throws(RPCError) -> T) throws -> T {
        var wait = Duration.milliseconds(100)
        while true {
            let outcome = Result { () throws(RPCError) -> T in try body() }
            switch outcome {
            case .success(let value):
                if state.down {
                    // Reported by the `observe` of this answer, which knows whether it restarted.
                    state.down = false
                    state.reconnecting = true
                }
                return value
            case .failure(let error):
                guard error.code == .unavailable || error.code == .deadlineExceeded else { throw error }
                if !state.down {
                    state.down = true
                    shared.withLock { $0.counters.disconnects += 1 }
                    state.pending.append(.disconnected(reason: error.message))
                }
                publish(state)
                // Sleep on the wake-up pipe so that close() ends the wait at once.
                var poller = ZMQPoller()
                if let wake { _ = poller.add(fileDescriptor: wake.readDescriptor) }
                _ = try? poller.poll(timeoutMilliseconds: Int(wait.nanoseconds / 1_000_000))
                wake?.drain()
                if shared.withLock({ $0.closed }) { throw Closed() }
                wait = min(wait * 2, options.maxRetryInterval)
            }
        }
    }

    /// Moves what the thread prepared to the consumer, resuming a waiting `next()`.
    private func publish(_ state: State) {
        let pending = state.pending
        state.pending.removeAll(keepingCapacity: true)
        let resume = shared.withLock { shared -> (CheckedContinuation<SubscriberEvent?, any Error>, SubscriberEvent)? in
            shared.lastSeq = state.lastSeq
            shared.ready.append(contentsOf: pending)
            guard let waiter = shared.waiter, let event = shared.popReady() else { return nil }
            shared.waiter = nil
            if event.announcement != nil { shared.counters.delivered += 1 }
            return (waiter, event)
        }
        if let (waiter, event) = resume { waiter.resume(returning: event) }
    }

    private func fail(_ error: any Error) {
        let waiter = shared.withLock { shared -> CheckedContinuation<SubscriberEvent?, any Error>? in
            shared.failure = error
            defer { shared.waiter = nil }
            return shared.waiter
        }
        waiter?.resume(throwing: error)
    }
}
