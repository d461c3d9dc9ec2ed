// Shared pieces of the benchmark driver: clocks, histograms, JSON output, request
// builders, a pipelined DEALER pool, an open-loop GetCase load and a subscriber.
import AfterSalesProto
import AfterSalesRPC
import AfterSalesTestSupport
import ArgumentParser
import Foundation
import Histogram
import SwiftProtobuf
import ZeroMQ

#if canImport(Glibc)
import Glibc
#endif

// MARK: - time

/// Monotonic nanoseconds (the ZeroMQ module's clock, under the bench's short name).
@inline(__always) func monoNanos() -> UInt64 { monotonicNanoseconds() }

/// CPU time of this whole process (every thread: the caller's, libzmq's I/O thread, a
/// client's own threads) in nanoseconds: what a call costs the caller's machine.
func processCPUNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// CPU time of another process (every thread) in nanoseconds, through its CPU-time clock;
/// nil when it cannot be read (no such process).
func processCPUNanos(pid: Int32) -> UInt64? {
    var clock = clockid_t()
    guard clock_getcpuclockid(pid, &clock) == 0 else { return nil }
    var ts = timespec()
    guard clock_gettime(clock, &ts) == 0 else { return nil }
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// One `/proc/…/stat` file: the command name, the parent's pid and the CPU time used
/// (user + system, ns); nil when it cannot be read.
private func procStat(_ path: String) -> (comm: Substring, ppid: Int32, cpuNanos: UInt64)? {
    guard let stat = try? String(contentsOfFile: path, encoding: .utf8),
          let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")") else { return nil }
    // After "pid (comm) ": state ppid … utime(12th) stime(13th).
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    guard fields.count > 13, let ppid = Int32(fields[1]) else { return nil }
    let ticks = (UInt64(fields[11]) ?? 0) + (UInt64(fields[12]) ?? 0)
    return (stat[stat.index(after: open)..<close], ppid, ticks * 1_000_000_000 / UInt64(sysconf(Int32(_SC_CLK_TCK))))
}

/// CPU time (user + system, ns) of the processes `pids` and of their children, from
/// /proc/N/stat: a daemon, or a PostgreSQL postmaster with its backends.
func processTreeCPUNanos(_ pids: [Int32]) -> UInt64 {
    let roots = Set(pids)
    var nanos: UInt64 = 0
    for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
        guard let pid = Int32(entry), let stat = procStat("/proc/\(entry)/stat") else { continue }
        if roots.contains(pid) || roots.contains(stat.ppid) { nanos += stat.cpuNanos }
    }
    return nanos
}

/// CPU time (user + system, ns) of each thread of process `pid`, by "tid comm", from
/// /proc/PID/task/*/stat.
func threadCPUNanos(_ pid: Int32) -> [String: UInt64] {
    var threads: [String: UInt64] = [:]
    for tid in (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? [] {
        guard let stat = procStat("/proc/\(pid)/task/\(tid)/stat") else { continue }
        threads["\(tid) \(stat.comm)"] = stat.cpuNanos
    }
    return threads
}

/// CLOCK_REALTIME in microseconds since the epoch (the daemon's expires_at_ms is on this clock).
@inline(__always)
func wallMicros() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1_000
}

func sleepNanos(_ ns: UInt64) {
    guard ns > 0 else { return }
    var ts = timespec(tv_sec: Int(ns / 1_000_000_000), tv_nsec: Int(ns % 1_000_000_000))
    var rest = timespec()
    while nanosleep(&ts, &rest) != 0 && errno == EINTR { ts = rest }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

// MARK: - histograms

/// Latencies in nanoseconds (1 ns .. 100 s, 3 significant digits).
func latencyHistogram() -> Histogram<UInt64> {
    Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 100_000_000_000, numberOfSignificantValueDigits: .three)
}

/// p50/p99/p99.9/max in microseconds (fractional), under `prefix`.
func summary(_ h: Histogram<UInt64>, _ prefix: String) -> [String: Any] {
    guard h.totalCount > 0 else { return ["\(prefix)_count": 0] }
    func us(_ v: UInt64) -> Double { (Double(v) / 1_000).rounded(toPlaces: 2) }
    return [
        "\(prefix)_count": h.totalCount,
        "\(prefix)_p50_us": us(h.valueAtPercentile(50)),
        "\(prefix)_p99_us": us(h.valueAtPercentile(99)),
        "\(prefix)_p999_us": us(h.valueAtPercentile(99.9)),
        "\(prefix)_max_us": us(h.max),
    ]
}

extension Double {
    func rounded(toPlaces places: Int) -> Double {
        let scale = Foundation.pow(10.0, Double(places))
        return (self * scale).rounded() / scale
    }
}

/// One JSON object on one line of stdout: what run.sh collects.
func emit(_ fields: [String: Any]) {
    let data = try! JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys])
    FileHandle.standardOutput.write(data)
    FileHandle.standardOutput.write(Data("\n".utf8))
}

func log(_ text: String) {
    FileHandle.standardError.write(Data("[bench] \(text)\n".utf8))
}

// MARK: - requests

enum Cases {
    /// A case the platform proposes on at once (PROPOSAL_PENDING, one deadline in the queue):
    /// the tests' `interventionCase`, for the bench's consumer and merchant.
    static func proposal(order: String) -> Aftersales_V1_CreateCaseRequest {
        interventionCase(order: order, consumer: "C-bench", merchant: "M-bench")
    }

    /// The same case without evidence: no proposal, AWAITING_MERCHANT_REVIEW (48 h deadline).
    static func plain(order: String) -> Aftersales_V1_CreateCaseRequest {
        plainCase(order: order, consumer: "C-bench", merchant: "M-bench")
    }

    static func envelope(_ id: UInt64, _ method: Method, _ message: some SwiftProtobuf.Message) -> [UInt8] {
        try! RequestEnvelope(requestID: id, method: method, payload: try message.serializedBytes()).serializedBytes()
    }

    static func getCase(_ id: UInt64, _ caseID: String) -> [UInt8] {
        envelope(id, .getCase, Aftersales_V1_GetCaseRequest.with { $0.caseID = caseID })
    }
}

/// A unique prefix for order ids, so runs against the same daemon never collide.
func runPrefix(_ label: String) -> String {
    "\(label)-\(getpid())-\(monoNanos() % 1_000_000_000)"
}

// MARK: - blocking REQ / DEALER helpers

// MARK: - pipelined creation

/// Creates `count` cases through `connections` DEALERs with `inflight` calls each in
/// flight, optionally paced to `ratePerSecond`. Calls `onCreated` with each response.
/// Runs on the calling thread.
func createPipelined(
    context: ZMQContext, endpoint: String, count: Int, connections: Int = 4, inflight: Int = 64,
    ratePerSecond: Double = 0, build: (Int) -> Aftersales_V1_CreateCaseRequest,
    onCreated: (Aftersales_V1_CreateCaseResponse) -> Void
) throws -> (seconds: Double, errors: Int, firstError: String) {
    var sockets: [ZMQSocket] = []
    var poller = ZMQPoller()
    for _ in 0..<connections {
        let s = try ZMQSocket(context, .dealer)
        try s.setSendHighWaterMark(0)
        try s.setReceiveHighWaterMark(0)
        try s.connect(endpoint)
        sockets.append(s)
        _ = poller.add(s)
    }
    var outstanding = [Int](repeating: 0, count: connections)
    var sent = 0, done = 0, errors = 0
    var firstError = ""
    let started = monoNanos()
    var lastProgress = started
    func maySend() -> Bool {
        guard sent < count else { return false }
        if ratePerSecond > 0 {
            let allowed = Double(monoNanos() - started) / 1e9 * ratePerSecond
            return Double(sent) < allowed + 1
        }
        return true
    }
    while done < count {
        for i in 0..<connections {
            while outstanding[i] < inflight, maySend() {
                let body = Cases.envelope(UInt64(sent + 1), .createCase, build(sent))
                try sockets[i].send(WireFrames.dealerCall(body: body))
                outstanding[i] += 1
                sent += 1
            }
        }
        let timeout = ratePerSecond > 0 ? 1 : 1_000
        _ = try poller.poll(timeoutMilliseconds: timeout)
        for i in 0..<connections where poller.isReadable(i) {
            while let frames = try sockets[i].receive(dontWait: true) {
                outstanding[i] -= 1
                done += 1
                lastProgress = monoNanos()
                guard let body = WireFrames.dealerReply(frames), let env = try? ResponseEnvelope(serializedBytes: body) else {
                    errors += 1
                    continue
                }
                do {
                    onCreated(try env.decodedPayload(as: Aftersales_V1_CreateCaseResponse.self))
                } catch {
                    errors += 1
                    if firstError.isEmpty { firstError = "\(error)" }
                }
            }
        }
        if monoNanos() - lastProgress > 30_000_000_000 { throw BenchError("creation stalled at \(done)/\(count)") }
    }
    return (Double(monoNanos() - started) / 1e9, errors, firstError)
}

// MARK: - open-loop GetCase load

/// Thread-safe control and results of an open-loop load.
final class LoadControl: @unchecked Sendable {
    private let lock = NSLock()
    private var _paused = false
    private var _stop = false
    private var _idle = false
    /// (scheduled send time, latency) in monotonic ns; read after the thread ended.
    var samples: [(UInt64, UInt64)] = []
    var errors = 0
    let done = DispatchSemaphore(value: 0)

    var paused: Bool {
        get { lock.withLock { _paused } }
        set { lock.withLock { _paused = newValue; if newValue { _idle = false } } }
    }
    var stopRequested: Bool {
        get { lock.withLock { _stop } }
        set { lock.withLock { _stop = newValue } }
    }
    /// True once the load saw `paused` and has no call in flight.
    var idle: Bool {
        get { lock.withLock { _idle } }
        set { lock.withLock { _idle = newValue } }
    }
}

/// Sends GetCase on a fixed schedule (open loop: latency is measured from the time the
/// call was due, so a stalled daemon shows up as the whole stall, not one slow sample).
/// Runs on a thread of its own until `control.stopRequested`.
func startOpenLoopGetCase(endpoint: String, caseIDs: [String], ratePerSecond: Double, control: LoadControl) {
    let thread = Thread {
        defer { control.done.signal() }
        do {
            let context = try ZMQContext()
            let socket = try ZMQSocket(context, .dealer)
            try socket.setReceiveHighWaterMark(0)
            try socket.setSendHighWaterMark(0)
            try socket.connect(endpoint)
            let fd = try socket.fileDescriptor
            let interval = UInt64(1e9 / ratePerSecond)
            let requests = (0..<min(caseIDs.count, 4096)).map { i in (caseIDs[i * 7919 % caseIDs.count]) }
            var scheduled: [UInt64: UInt64] = [:]  // request id -> due time
            var nextID: UInt64 = 1
            var nextDue = monoNanos()
            var samples: [(UInt64, UInt64)] = []
            samples.reserveCapacity(200_000)
            var errors = 0
            while !control.stopRequested {
                // Drain replies.
                while let frames = try socket.receive(dontWait: true) {
                    let now = monoNanos()
                    guard let body = WireFrames.dealerReply(frames), let env = try? ResponseEnvelope(serializedBytes: body),
                          let due = scheduled.removeValue(forKey: env.requestID) else { errors += 1; continue }
                    if env.code != .ok { errors += 1 }
                    samples.append((due, now - due))
                }
                if control.paused {
                    if scheduled.isEmpty { control.idle = true }
                    sleepNanos(200_000)
                    nextDue = monoNanos()
                    continue
                }
                let now = monoNanos()
                if now >= nextDue {
                    let id = nextID
                    nextID += 1
                    scheduled[id] = nextDue
                    try socket.send(WireFrames.dealerCall(body: Cases.getCase(id, requests[Int(id) % requests.count])))
                    nextDue += interval
                    continue
                }
                if try socket.events.contains(.readable) { continue }
                let wait = nextDue - now
                waitReadable(fd, nanoseconds: wait)
            }
            // Whatever is still in flight after the stop is not counted.
            control.samples = samples
            control.errors = errors
        } catch {
            log("open-loop load failed: \(error)")
        }
    }
    thread.start()
}

/// The latencies of samples scheduled within [from, to).
func window(_ samples: [(UInt64, UInt64)], from: UInt64, to: UInt64) -> Histogram<UInt64> {
    var h = latencyHistogram()
    for (due, latency) in samples where due >= from && due < to { _ = h.record(max(1, latency)) }
    return h
}

/// select(2) on one descriptor with a microsecond timeout (zmq_poll and poll(2) only
/// take milliseconds, too coarse for a schedule of one call every 500 µs).
func waitReadable(_ fd: Int32, nanoseconds: UInt64) {
    var set = fd_set()
    withUnsafeMutableBytes(of: &set) { bytes in
        let words = bytes.bindMemory(to: UInt.self)
        words[Int(fd) / UInt.bitWidth] |= 1 << (UInt(fd) % UInt(UInt.bitWidth))
    }
    var tv = timeval(tv_sec: Int(nanoseconds / 1_000_000_000), tv_usec: Int((nanoseconds % 1_000_000_000) / 1_000))
    _ = select(fd + 1, &set, nil, nil, &tv)
}

// MARK: - subscriber

/// The three fields of an EventEnvelope the expiry benchmarks check, read off the wire.
/// Decoding the whole envelope (the case and its history) with SwiftProtobuf costs the
/// subscriber ~15 µs a notice: at 100 000 notices a second that is a core of this
/// 2-core machine, taken from the daemon and the GetCase load the benchmark measures.
struct ExpiryNotice {
    var caseID = ""
    var late = false
    var expiresAtMs: Int64 = 0

    private static let path = Contract.fieldPath(["case", "proposal", "expires_at_ms"], in: EventEnvelope.protoMessageName)!.map { UInt64($0.number) }
    private static let caseIDField = UInt64(Contract.fieldPath(["case_id"], in: EventEnvelope.protoMessageName)![0].number)
    private static let lateField = UInt64(Contract.fieldPath(["late"], in: EventEnvelope.protoMessageName)![0].number)

    init?(_ bytes: [UInt8]) {
        var notice = ExpiryNotice(uninitialized: ())
        // The envelope's case id and `late`, its case's proposal's expires_at_ms: three
        // levels read with the shared WireReader, nothing else decoded.
        func walk(_ reader: inout WireReader, depth: Int) throws(WireFailure) {
            while !reader.isAtEnd {
                let (field, wireType) = try reader.tag()
                switch (depth, field, wireType) {
                case (0, Self.lateField, 0): notice.late = try reader.varint() != 0
                case (0, Self.caseIDField, 2): notice.caseID = try reader.string()
                case (2, Self.path[2], 0): notice.expiresAtMs = try reader.int64()
                case (0, Self.path[0], 2), (1, Self.path[1], 2):
                    var inner = try reader.message()
                    try walk(&inner, depth: depth + 1)
                default: try reader.skip(field: field, wireType: wireType)
                }
            }
        }
        guard (try? WireReader.reading(bytes) { (reader: inout WireReader) throws(WireFailure) in try walk(&reader, depth: 0) }) != nil else {
            return nil
        }
        self = notice
    }

    private init(uninitialized: Void) {}
}

/// Counts `proposal.expired` announcements and their lateness (arrival − expires_at_ms).
final class ExpirySubscriber: @unchecked Sendable {
    private let lock = NSLock()
    private var _received = 0
    private var _stop = false
    var lateness = latencyHistogram()  // ns; read after `done`
    var seen = Set<String>()
    var duplicates = 0
    var lateFlagged = 0
    var lastArrivalMono: UInt64 = 0
    var firstArrivalMono: UInt64 = 0
    let ready = DispatchSemaphore(value: 0)
    let done = DispatchSemaphore(value: 0)

    var received: Int { lock.withLock { _received } }
    func stop() { lock.withLock { _stop = true } }
    private var stopRequested: Bool { lock.withLock { _stop } }

    func start(endpoint: String, topic: String = "proposal.expired") {
        let thread = Thread { [self] in
            defer { done.signal() }
            do {
                let context = try ZMQContext()
                let socket = try ZMQSocket(context, .sub)
                try socket.setReceiveHighWaterMark(0)
                try socket.subscribe(topic)
                try socket.setReceiveTimeout(100)
                try socket.connect(endpoint)
                Thread.sleep(forTimeInterval: 0.5)  // ZeroMQ's slow joiner
                ready.signal()
                while !stopRequested {
                    guard let frames = try socket.receive() else { continue }
                    let arrival = wallMicros()
                    let mono = monoNanos()
                    guard frames.count == 2, let event = ExpiryNotice(frames[1]) else { continue }
                    let expiresUs = event.expiresAtMs * 1_000
                    _ = lateness.record(UInt64(max(1, (arrival - expiresUs) * 1_000)))
                    if !seen.insert(event.caseID).inserted { duplicates += 1 }
                    if event.late { lateFlagged += 1 }
                    if firstArrivalMono == 0 { firstArrivalMono = mono }
                    lastArrivalMono = mono
                    lock.withLock { _received += 1 }
                }
            } catch {
                log("subscriber failed: \(error)")
                ready.signal()
            }
        }
        thread.start()
    }
}

// MARK: - process

/// VmRSS of `pid` in bytes (0 when unreadable).
func residentBytes(pid: Int32) -> Int {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return 0 }
    for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        let kb = line.split(separator: " ").compactMap { Int($0) }.first ?? 0
        return kb * 1024
    }
    return 0
}

// MARK: - CURVE

/// The daemon's public key and the bench's client keys, for a daemon with CURVE on.
struct CurveOptions: ParsableArguments {
    @Option(help: "CURVE: the daemon's public key file (with --key).") var serverKey: String?
    @Option(help: "CURVE: the secret key file the bench calls with (a consumer-gateway client).") var key: String?
    @Option(help: "CURVE: a merchant-gateway client's secret key file, for the agreeing side of throughput.") var merchantKey: String?

    private func read(_ path: String) throws -> String {
        try String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Makes `socket` a CURVE client with `--key` (or `--merchant-key`); nothing without keys.
    func apply(to socket: ZMQSocket, merchant: Bool = false) throws {
        guard let serverKey, let secret = merchant ? (merchantKey ?? key) : key else { return }
        try socket.makeCurveClient(serverKey: try read(serverKey), keys: try CurveKeyPair(secretKey: try read(secret)))
    }

    /// The server key and the consumer-side keys, for helpers that take them as values.
    var credentials: (serverKey: String, keys: CurveKeyPair)? {
        guard let serverKey, let key, let server = try? read(serverKey), let secret = try? read(key),
              let keys = try? CurveKeyPair(secretKey: secret) else { return nil }
        return (server, keys)
    }
}
