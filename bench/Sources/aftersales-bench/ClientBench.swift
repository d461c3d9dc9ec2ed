// Row 9 of the table (issue 18): what a call through AfterSalesClient costs next to a
// bare socket. `client-latency` is `latency` through the client (typed GetCase, async or
// blocking, one caller); `client-throughput` is `throughput` through the client (50 async
// callers on one client doing CreateCase then MerchantAgree). run.sh runs them in the
// same rounds as the bare `latency` (REQ) and `throughput` (50 DEALERs) on the same daemon.
import AfterSalesClient
import AfterSalesProto
import AfterSalesRPC
import ArgumentParser
import Foundation
import Histogram
import Synchronization
import ZeroMQ

/// Which of the client's two call forms a run uses.
enum CallForm: String, ExpressibleByArgument, CaseIterable {
    /// `try await client.getCase(...)` from a task.
    case async
    /// `try client.blocking.getCase(...)` from a plain thread.
    case blocking
    /// `try await client.getCase(...)` from a task on `client.taskExecutor`.
    case executor
}

/// Runs `body` on a task (preferring `executor`, if given) and blocks this
/// (non-cooperative) thread until it returns.
func runBlockingOnTask<T: Sendable>(executor: (any TaskExecutor)? = nil, _ body: @escaping @Sendable () async throws -> T) throws -> T {
    let box = Mutex<Result<T, any Error>?>(nil)
    let done = DispatchSemaphore(value: 0)
    Task(executorPreference: executor) {
        let result: Result<T, any Error>
        do { result = .success(try await body()) } catch { result = .failure(error) }
        box.withLock { $0 = result }
        done.signal()
    }
    done.wait()
    return try box.withLock { $0! }.get()
}

extension CurveOptions {
    /// The client's CURVE configuration for `--server-key`/`--key` (nil = plaintext).
    var clientCredentials: AfterSalesClient.CurveCredentials? {
        get throws {
            guard let serverKey, let key else { return nil }
            return try AfterSalesClient.CurveCredentials(serverKeyFile: serverKey, secretKeyFile: key)
        }
    }
}

// MARK: - client-latency

struct ClientLatency: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "client-latency",
        abstract: "GetCase round trips through AfterSalesClient, one caller, one call at a time (typed call: the request is encoded and the answer decoded on every call).")
    @Option(help: "The daemon's RPC endpoint.") var endpoint: String
    @Option(help: "The call form: async (a task awaits each call), blocking (a thread blocks in each call), executor (async, the task on client.taskExecutor).") var form: CallForm = .async
    @Option(help: "The case to get (from `prepare`).") var caseId: String
    @Option(help: "Measured round trips (upper bound).") var count: Int = 20_000
    @Option(help: "Stop measuring after this many seconds.") var seconds: Double = 10
    @Option(help: "Unmeasured round trips first.") var warmup: Int = 2_000
    @Flag(help: "Untyped calls (call(method:payload:) with the request bytes made once, the answer not decoded), to separate the client's hand-off from protobuf work.")
    var raw = false
    @Option(help: "Label for the output (default: client-FORM, or client-FORM-raw).") var target: String?
    @OptionGroup var curve: CurveOptions

    func run() throws {
        let client = try AfterSalesClient(endpoint: endpoint, configuration: .init(curve: try curve.clientCredentials))
        defer { client.close() }
        let request = Aftersales_V1_GetCaseRequest.with { $0.caseID = caseId }
        let requestBytes: [UInt8] = try request.serializedBytes()
        let first = try client.blocking.getCase(request)
        guard first.case.caseID == caseId else { throw BenchError("GetCase answered another case") }
        let (count, seconds, warmup, raw) = (count, seconds, warmup, raw)

        let cpuBegan = processCPUNanos()
        let result: (histogram: [UInt64], calls: Int, elapsed: UInt64)
        switch form {
        case .blocking:
            // One call; true when the answer is the case asked for.
            func once() throws -> Bool {
                if raw {
                    return try !client.callSync(method: .getCase, payload: requestBytes).isEmpty
                }
                return try client.blocking.getCase(request).case.caseID == caseId
            }
            result = try measure(count: count, seconds: seconds, warmup: warmup, once)
        case .async, .executor:
            result = try runBlockingOnTask(executor: form == .executor ? client.taskExecutor : nil) {
                var samples: [UInt64] = []
                samples.reserveCapacity(count)
                for _ in 0..<warmup {
                    if raw { _ = try await client.call(method: .getCase, payload: requestBytes) } else { _ = try await client.getCase(request) }
                }
                let deadline = monoNanos() + UInt64(seconds * 1e9)
                let began = monoNanos()
                while samples.count < count {
                    let t0 = monoNanos()
                    let ok = raw ? try await !client.call(method: .getCase, payload: requestBytes).isEmpty
                                 : try await client.getCase(request).case.caseID == caseId
                    let t1 = monoNanos()
                    guard ok else { throw BenchError("bad GetCase answer") }
                    samples.append(t1 - t0)
                    if t1 > deadline { break }
                }
                return (samples, samples.count, monoNanos() - began)
            }
        }
        var h = latencyHistogram()
        for sample in result.histogram { _ = h.record(sample) }
        var out = summary(h, "rtt")
        out["bench"] = "client_latency"
        out["target"] = target ?? "client-\(form.rawValue)\(raw ? "-raw" : "")"
        out["form"] = form.rawValue
        out["raw"] = raw
        out["curve"] = curve.key != nil
        out["calls_per_s"] = (Double(result.calls) / (Double(result.elapsed) / 1e9)).rounded()
        // The process's CPU time per call, warm-up calls included on both sides of the division.
        out["cpu_us_per_call"] = (Double(processCPUNanos() - cpuBegan) / 1e3 / Double(max(1, result.calls + warmup))).rounded(toPlaces: 2)
        emit(out)
    }

    /// The blocking measurement loop (the same shape as `latency`'s).
    private func measure(count: Int, seconds: Double, warmup: Int, _ once: () throws -> Bool) throws -> ([UInt64], Int, UInt64) {
        for _ in 0..<warmup { _ = try once() }
        var samples: [UInt64] = []
        samples.reserveCapacity(count)
        let deadline = monoNanos() + UInt64(seconds * 1e9)
        let began = monoNanos()
        while samples.count < count {
            let t0 = monoNanos()
            guard try once() else { throw BenchError("bad GetCase answer") }
            let t1 = monoNanos()
            samples.append(t1 - t0)
            if t1 > deadline { break }
        }
        return (samples, samples.count, monoNanos() - began)
    }
}

// MARK: - client-throughput

struct ClientThroughput: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "client-throughput",
        abstract: "Mutating calls (CreateCase, then MerchantAgree on it) from N concurrent callers on ONE AfterSalesClient: the `throughput` workload through the client.")
    @Option(help: "The daemon's RPC endpoint.") var endpoint: String
    @Option(help: "Label for the output.") var label: String = "client"
    @Option(help: "Concurrent callers (tasks for async, threads for blocking).") var callers: Int = 50
    @Option(help: "The call form: async (tasks), blocking (threads), executor (tasks on client.taskExecutor).") var form: CallForm = .async
    @Option(help: "Measured seconds.") var seconds: Double = 5
    @Option(help: "Unmeasured seconds first.") var warmupSeconds: Double = 1
    @OptionGroup var curve: CurveOptions

    /// What one caller counted.
    struct Tally: Sendable {
        var latencies: [UInt64] = []
        var creates = 0, agrees = 0, errors = 0
        var firstError = ""
    }

    func run() throws {
        let client = try AfterSalesClient(endpoint: endpoint, configuration: .init(curve: try curve.clientCredentials))
        defer { client.close() }
        _ = try client.blocking.ping()
        let prefix = runPrefix("ctp-\(label)")
        let start = monoNanos()
        let measureFrom = start + UInt64(warmupSeconds * 1e9)
        let measureTo = measureFrom + UInt64(seconds * 1e9)
        let callers = callers

        // One caller's loop, for either form: `call` makes one call and says whether it was OK.
        @Sendable func request(_ caller: Int, _ n: Int) -> Aftersales_V1_CreateCaseRequest {
            Cases.plain(order: "\(prefix)-\(caller)-\(n)")
        }
        @Sendable func agree(_ caseID: String) -> Aftersales_V1_MerchantAgreeRequest {
            .with {
                $0.caseID = caseID
                $0.merchantID = "M-bench"
                $0.note = "ok"
            }
        }
        @Sendable func record(_ tally: inout Tally, _ sentAt: UInt64, creating: Bool, error: (any Error)?) {
            let now = monoNanos()
            if let error {
                tally.errors += 1
                if tally.firstError.isEmpty { tally.firstError = "\(error)" }
                return
            }
            guard sentAt >= measureFrom && now <= measureTo else { return }
            tally.latencies.append(now - sentAt)
            if creating { tally.creates += 1 } else { tally.agrees += 1 }
        }

        // The process's CPU time over the measured window, read by a thread of its own.
        let cpuWindow = Mutex<(from: UInt64, to: UInt64)>((0, 0))
        Thread {
            sleepNanos(measureFrom > monoNanos() ? measureFrom - monoNanos() : 0)
            let from = processCPUNanos()
            sleepNanos(measureTo > monoNanos() ? measureTo - monoNanos() : 0)
            let to = processCPUNanos()
            cpuWindow.withLock { $0 = (from, to) }
        }.start()
        let tallies: [Tally]
        switch form {
        case .async, .executor:
            // Child tasks inherit the executor preference.
            tallies = try runBlockingOnTask(executor: form == .executor ? client.taskExecutor : nil) {
                try await withThrowingTaskGroup(of: Tally.self) { group in
                    for caller in 0..<callers {
                        group.addTask {
                            var tally = Tally()
                            var n = 0
                            while monoNanos() < measureTo {
                                n += 1
                                var t0 = monoNanos()
                                do {
                                    let created = try await client.createCase(request(caller, n))
                                    record(&tally, t0, creating: true, error: nil)
                                    t0 = monoNanos()
                                    _ = try await client.merchantAgree(agree(created.case.caseID))
                                    record(&tally, t0, creating: false, error: nil)
                                } catch {
                                    record(&tally, t0, creating: false, error: error)
                                }
                            }
                            return tally
                        }
                    }
                    var all: [Tally] = []
                    for try await tally in group { all.append(tally) }
                    return all
                }
            }
        case .blocking:
            let results = Mutex<[Tally]>([])
            let group = DispatchGroup()
            for caller in 0..<callers {
                group.enter()
                let thread = Thread {
                    var tally = Tally()
                    var n = 0
                    while monoNanos() < measureTo {
                        n += 1
                        var t0 = monoNanos()
                        do {
                            let created = try client.blocking.createCase(request(caller, n))
                            record(&tally, t0, creating: true, error: nil)
                            t0 = monoNanos()
                            _ = try client.blocking.merchantAgree(agree(created.case.caseID))
                            record(&tally, t0, creating: false, error: nil)
                        } catch {
                            record(&tally, t0, creating: false, error: error)
                        }
                    }
                    results.withLock { $0.append(tally) }
                    group.leave()
                }
                thread.start()
            }
            group.wait()
            tallies = results.withLock { $0 }
        }

        var h = latencyHistogram()
        var creates = 0, agrees = 0, errors = 0
        var firstError = ""
        for tally in tallies {
            for sample in tally.latencies { _ = h.record(sample) }
            creates += tally.creates
            agrees += tally.agrees
            errors += tally.errors
            if firstError.isEmpty { firstError = tally.firstError }
        }
        var out = summary(h, "call")
        out["bench"] = "client_throughput"
        out["label"] = label
        out["form"] = form.rawValue
        out["curve"] = curve.key != nil
        out["callers"] = callers
        out["calls_per_s"] = (Double(creates + agrees) / seconds).rounded()
        let cpu = cpuWindow.withLock { $0 }
        if cpu.to > cpu.from, creates + agrees > 0 {
            out["cpu_us_per_call"] = (Double(cpu.to - cpu.from) / 1e3 / Double(creates + agrees)).rounded(toPlaces: 2)
        }
        out["creates"] = creates
        out["agrees"] = agrees
        out["errors"] = errors
        if !firstError.isEmpty { out["first_error"] = firstError }
        emit(out)
    }
}

// MARK: - socket-latency (diagnostic)

/// Where the client's time goes, one step at a time: the bare socket patterns the client
/// is built from, measured like `latency`.
struct SocketLatency: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "socket-latency",
        abstract: "Diagnostic: GetCase round trips over bare socket patterns (req, dealer, dealer-fd = poll(2) on ZMQ_FD and drain, as the client's leader does; -env builds and reads an envelope per call; -decode adds the typed decode).",
        shouldDisplay: false)
    @Option var endpoint: String
    @Option var caseId: String
    @Option var mode: String = "req"
    @Option var count: Int = 20_000
    @Option var seconds: Double = 10
    @Option var warmup: Int = 2_000

    func run() throws {
        if mode.hasPrefix("hop") { return try runHop() }
        let context = try ZMQContext()
        let type: SocketType = mode == "req" ? .req : .dealer
        let socket = try ZMQSocket(context, type)
        try socket.setReceiveTimeout(10_000)
        try socket.connect(endpoint)
        let fd = try socket.fileDescriptor
        let decode = mode.hasSuffix("-decode")
        let envelope = mode.contains("-env")
        let fdMode = mode.hasPrefix("dealer-fd")
        var nextID: UInt64 = 1
        func once() throws {
            let request: [UInt8]
            if envelope {
                nextID += 1
                request = try RequestEnvelope(requestID: nextID, method: .getCase,
                                              payload: try Aftersales_V1_GetCaseRequest.with { $0.caseID = caseId }.serializedBytes(),
                                              deadlineMilliseconds: 2000, idempotencyKey: "").serializedBytes()
            } else {
                request = Cases.getCase(1, caseId)
            }
            var reply: [Frame]?
            if type == .req {
                try socket.send(request)
                reply = try socket.receive()
            } else {
                try socket.send(WireFrames.dealerCall(body: request))
                if fdMode {
                    // As the client does after a send: look for what may already be there.
                    reply = try socket.receive(dontWait: true)
                    while reply == nil {
                        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                        _ = poll(&p, 1, 10_000)
                        reply = try socket.receive(dontWait: true)
                    }
                    while try socket.receive(dontWait: true) != nil {}
                } else {
                    reply = try socket.receive()
                }
            }
            guard let reply else { throw BenchError("no reply") }
            if envelope || decode {
                let env = try ResponseEnvelope(serializedBytes: reply.last!)
                if decode { _ = try Aftersales_V1_GetCaseResponse(serializedBytes: Array(env.payload)) }
            }
        }
        for _ in 0..<warmup { try once() }
        var h = latencyHistogram()
        let deadline = monoNanos() + UInt64(seconds * 1e9)
        var n = 0
        let cpuBegan = processCPUNanos()
        while n < count {
            let t0 = monoNanos()
            try once()
            let t1 = monoNanos()
            _ = h.record(t1 - t0)
            n += 1
            if t1 > deadline { break }
        }
        var out = summary(h, "rtt")
        out["bench"] = "socket_latency"
        out["target"] = mode
        out["cpu_us_per_call"] = (Double(processCPUNanos() - cpuBegan) / 1e3 / Double(max(1, n))).rounded(toPlaces: 2)
        emit(out)
    }
}

extension SocketLatency {
    /// `hop`: a DEALER whose answers a second thread receives (poll(2) on ZMQ_FD, the socket
    /// under a lock) and hands to the caller, which sends and then waits: on a semaphore
    /// (`hop`, the shape of a blocking call served by another thread) or in a task on a
    /// continuation (`hop-task`, the shape of an async call): the cost of one thread hop.
    func runHop() throws {
        final class Shared: @unchecked Sendable {
            // @unchecked: the socket and `waiter` are used only under `lock`.
            let lock = NSLock()
            let socket: ZMQSocket
            let fd: Int32
            let answered = DispatchSemaphore(value: 0)
            var waiter: CheckedContinuation<Void, Never>?
            init(_ socket: ZMQSocket) throws { self.socket = socket; fd = try socket.fileDescriptor }

            /// Under the lock: takes the waiting answers; returns how to hand them over.
            func takeAnswers() -> (() -> Void)? {
                var got = 0
                while let _ = try? socket.receive(dontWait: true) { got += 1 }
                guard got > 0 else { return nil }
                if let waiter { self.waiter = nil; return { waiter.resume() } }
                return { [answered] in answered.signal() }
            }
        }
        let context = try ZMQContext()
        let shared = try Shared(try ZMQSocket(context, .dealer))
        try shared.socket.connect(endpoint)
        let request = Cases.getCase(1, caseId)
        Thread {
            while true {
                var p = pollfd(fd: shared.fd, events: Int16(POLLIN), revents: 0)
                _ = poll(&p, 1, 1_000)
                let handOver = shared.lock.withLock { shared.takeAnswers() }
                handOver?()
            }
        }.start()
        /// Sends (with the continuation to resume, for `hop-task`) and takes what is there.
        @Sendable func send(_ waiter: CheckedContinuation<Void, Never>?) {
            let handOver = shared.lock.withLock {
                shared.waiter = waiter
                _ = try? shared.socket.send(WireFrames.dealerCall(body: request))
                return shared.takeAnswers()
            }
            handOver?()
        }
        let (count, seconds, warmup) = (count, seconds, warmup)
        let cpuBegan = processCPUNanos()
        let samples: [UInt64]
        if mode == "hop-task" {
            samples = try runBlockingOnTask {
                var samples: [UInt64] = []
                let deadline = monoNanos() + UInt64(seconds * 1e9)
                for i in 0..<(warmup + count) {
                    let t0 = monoNanos()
                    await withCheckedContinuation { send($0) }
                    let t1 = monoNanos()
                    if i >= warmup { samples.append(t1 - t0) }
                    if i >= warmup && t1 > deadline { break }
                }
                return samples
            }
        } else {
            var out: [UInt64] = []
            let deadline = monoNanos() + UInt64(seconds * 1e9)
            for i in 0..<(warmup + count) {
                let t0 = monoNanos()
                send(nil)
                shared.answered.wait()
                let t1 = monoNanos()
                if i >= warmup { out.append(t1 - t0) }
                if i >= warmup && t1 > deadline { break }
            }
            samples = out
        }
        var h = latencyHistogram()
        for sample in samples { _ = h.record(sample) }
        var out = summary(h, "rtt")
        out["bench"] = "socket_latency"
        out["target"] = mode
        out["cpu_us_per_call"] = (Double(processCPUNanos() - cpuBegan) / 1e3 / Double(max(1, samples.count + warmup))).rounded(toPlaces: 2)
        emit(out)
    }
}
