import AfterSalesProto
import AfterSalesRPC
import Foundation
import SwiftProtobuf
import Testing
import ZeroMQ

/// Where `swift test` put the products: next to the running test bundle.
let productsDirectory: URL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()

/// A fresh, empty directory for one daemon's data.
func temporaryDataDirectory() -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("aftersales-test-\(UUID().uuidString)").path
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// A real `aftersalesd` process on free loopback ports.
final class DaemonProcess {
    let process = Process()
    let dataDirectory: String
    private(set) var rpc = ""
    private(set) var pub = ""
    private let stdout = Pipe()
    private let stderrFile: URL

    /// Starts the daemon and waits (bounded) for its ready line.
    init(dataDirectory: String = temporaryDataDirectory(), arguments: [String] = [], fsync: String = "always") throws {
        self.dataDirectory = dataDirectory
        stderrFile = URL(fileURLWithPath: dataDirectory + ".stderr.log")
        _ = FileManager.default.createFile(atPath: stderrFile.path, contents: nil)
        process.executableURL = productsDirectory.appendingPathComponent("aftersalesd")
        process.arguments = ["--rpc", "tcp://127.0.0.1:*", "--pub", "tcp://127.0.0.1:*", "--data-dir", dataDirectory,
                             "--fsync", fsync, "--log-level", "info"] + arguments
        process.standardOutput = stdout
        process.standardError = try FileHandle(forWritingTo: stderrFile)
        try process.run()
        let line = try readLine(timeout: 20)
        guard let line, line.hasPrefix("aftersalesd ready ") else {
            process.terminate()
            throw DaemonTestError("aftersalesd did not become ready; stderr:\n\(stderr)")
        }
        for field in line.split(separator: " ") {
            if field.hasPrefix("rpc=") { rpc = String(field.dropFirst(4)) }
            if field.hasPrefix("pub=") { pub = String(field.dropFirst(4)) }
        }
    }

    /// Everything the daemon logged so far.
    var stderr: String { (try? String(contentsOf: stderrFile, encoding: .utf8)) ?? "" }

    private func readLine(timeout: TimeInterval) throws -> String? {
        let handle = stdout.fileHandleForReading
        let limit = Date().addingTimeInterval(timeout)
        var collected = Data()
        while Date() < limit {
            var pollFD = pollfd(fd: handle.fileDescriptor, events: Int16(POLLIN), revents: 0)
            if poll(&pollFD, 1, 100) > 0 {
                let chunk = handle.availableData
                if chunk.isEmpty { return nil }  // the process exited
                collected.append(chunk)
                if let newline = collected.firstIndex(of: 0x0a) {
                    return String(decoding: collected[..<newline], as: UTF8.self)
                }
            }
        }
        return nil
    }

    /// SIGTERM and wait (bounded); returns the exit status.
    @discardableResult
    func stop(timeout: TimeInterval = 20) -> Int32 {
        if process.isRunning { process.terminate() }
        return waitForExit(timeout: timeout)
    }

    /// SIGKILL: the crash the journal must survive.
    func kill() {
        if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
        _ = waitForExit(timeout: 20)
    }

    func waitForExit(timeout: TimeInterval) -> Int32 {
        let limit = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < limit { Thread.sleep(forTimeInterval: 0.01) }
        if process.isRunning {
            Foundation.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            return -1
        }
        return process.terminationStatus
    }

    deinit { if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) } }
}

struct DaemonTestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A plain DEALER caller: one call at a time unless the test sends several itself.
final class TestCaller {
    let socket: ZMQSocket
    private var nextID: UInt64 = 1

    init(_ endpoint: String, context: ZMQContext = ZMQContext.shared!) throws {
        socket = try ZMQSocket(context, .dealer)
        try socket.setReceiveTimeout(10_000)
        try socket.connect(endpoint)
    }

    /// Sends a raw frame list as is.
    func sendRaw(_ frames: [Frame]) throws { try socket.send(frames) }

    /// Sends an envelope and returns its request id.
    @discardableResult
    func send(_ method: Method, _ request: some SwiftProtobuf.Message, deadlineMs: UInt64 = 0, key: String = "") throws -> UInt64 {
        let id = nextID
        nextID += 1
        let envelope = RequestEnvelope(requestID: id, method: method, payload: try request.serializedBytes(),
                                       deadlineMilliseconds: deadlineMs, idempotencyKey: key)
        try socket.send(WireFrames.dealerCall(body: try envelope.serializedBytes()))
        return id
    }

    /// The next answer (bounded by the receive timeout).
    func receive() throws -> ResponseEnvelope {
        guard let frames = try socket.receive() else { throw DaemonTestError("no answer within the receive timeout") }
        guard let body = WireFrames.dealerReply(frames) else { throw DaemonTestError("reply is not [delimiter, envelope]: \(frames.count) frames") }
        return try ResponseEnvelope(serializedBytes: body)
    }

    /// One call: the answer's envelope.
    func callRaw(_ method: Method, _ request: some SwiftProtobuf.Message, deadlineMs: UInt64 = 0, key: String = "") throws -> ResponseEnvelope {
        let id = try send(method, request, deadlineMs: deadlineMs, key: key)
        let answer = try receive()
        guard answer.requestID == id else { throw DaemonTestError("answer for request \(answer.requestID), expected \(id)") }
        return answer
    }

    /// One typed call that must succeed.
    func call<Req, Res>(_ rpc: RPC<Req, Res>, _ request: Req, key: String = "") throws -> Res {
        try callRaw(rpc.method, request, key: key).decodedPayload(as: Res.self)
    }

    /// One typed call that must fail; returns its error.
    func failure<Req, Res>(_ rpc: RPC<Req, Res>, _ request: Req) throws -> RPCError {
        let answer = try callRaw(rpc.method, request)
        guard answer.code != .ok else { throw DaemonTestError("\(rpc.method.fullName) succeeded but was expected to fail") }
        return RPCError(answer.code, answer.message)
    }

    func ping() throws -> Bool {
        (try? call(RPCs.ping, .init()).version.hasPrefix("aftersalesd")) ?? false
    }
}

/// A SUB socket on the daemon's announcements, with the slow-joiner handled.
final class TestSubscriber {
    let socket: ZMQSocket

    init(_ endpoint: String, prefixes: [String] = [""], context: ZMQContext = ZMQContext.shared!) throws {
        socket = try ZMQSocket(context, .sub)
        for prefix in prefixes { try socket.subscribe(prefix) }
        try socket.connect(endpoint)
        // ZeroMQ's slow joiner: give the subscription time to reach the publisher.
        Thread.sleep(forTimeInterval: 0.3)
    }

    /// The next announcement within `timeoutMs`, or nil.
    func next(timeoutMs: Int32 = 5_000) throws -> (topic: String, event: EventEnvelope)? {
        try socket.setReceiveTimeout(timeoutMs)
        guard let frames = try socket.receive(), frames.count == 2 else { return nil }
        return (String(decoding: frames[0], as: UTF8.self), try EventEnvelope(serializedBytes: frames[1]))
    }
}

/// A signed, full refund-only case with a photo of a defect: the platform proposes at once.
func interventionCase(order: String = "O-\(UUID().uuidString.prefix(8))", consumer: String = "C1", merchant: String = "M1",
                      category: String = "apparel") -> Aftersales_V1_CreateCaseRequest {
    .with {
        $0.orderID = order
        $0.orderLineID = "1"
        $0.consumerID = consumer
        $0.merchantID = merchant
        $0.category = category
        $0.type = .refundOnly
        $0.delivery = .signed
        $0.paidAmount = 12_900
        $0.refundAmount = 12_900
        $0.reason = "the zip broke on first use"
        $0.signals = .with {
            $0.evidence = [.with { $0.kind = .photo; $0.tags = [.defect]; $0.description_p = "broken zip" }]
        }
    }
}

/// A case the platform does not intervene in (nothing found).
func plainCase(order: String = "O-\(UUID().uuidString.prefix(8))", consumer: String = "C1", merchant: String = "M1") -> Aftersales_V1_CreateCaseRequest {
    var request = interventionCase(order: order, consumer: consumer, merchant: merchant)
    request.signals = .init()
    return request
}

func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
