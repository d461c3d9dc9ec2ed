import AfterSalesClient
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

// Helpers that run the real programs: the daemon (`aftersalesd`) on loopback ports it picks
// itself, with a temporary data directory, and the probe (`aftersales-probe`). Every wait
// here has a bound, so a broken daemon fails the test instead of hanging the run.

/// Where the built products are: next to the running test bundle (`swift test` builds every
/// product into the same directory), unless AFTERSALES_BIN_DIR says otherwise.
func productPath(_ name: String) -> String {
    if let dir = ProcessInfo.processInfo.environment["AFTERSALES_BIN_DIR"] { return dir + "/" + name }
    let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    return URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent(name).path
}

/// Thrown when a helper gives up.
struct HelperError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// One running `aftersalesd`, started for one test.
final class DaemonProcess: @unchecked Sendable {
    // @unchecked: the Process is touched only by the test that owns this value.
    let process: Process
    /// The RPC endpoint the daemon bound, e.g. tcp://127.0.0.1:40123.
    let rpc: String
    /// The PUB endpoint the daemon bound.
    let pub: String
    let dataDir: String
    let logPath: String

    /// Starts the daemon on free loopback ports and waits (at most `readyWithin`) for its
    /// ready line.
    /// `endpoints` binds the given ones instead (a restart on the ports of an earlier run).
    init(proposalTTL: String = "12h", extra: [String] = [], dataDir existing: String? = nil,
         endpoints: (rpc: String, pub: String)? = nil, readyWithin: Duration = .seconds(20)) throws {
        let path = productPath("aftersalesd")
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw HelperError("no aftersalesd at \(path) (build it, or set AFTERSALES_BIN_DIR)")
        }
        let dir: String
        if let existing { dir = existing } else {
            var template = Array((NSTemporaryDirectory() + "/aftersales-client-test-XXXXXX").utf8CString)
            guard let made = mkdtemp(&template) else { throw HelperError("mkdtemp failed") }
            dir = String(cString: made)
        }
        dataDir = dir
        logPath = dir + "/daemon.log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)

        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = [
            "--rpc", endpoints?.rpc ?? "tcp://127.0.0.1:*", "--pub", endpoints?.pub ?? "tcp://127.0.0.1:*", "--data-dir", dir,
            "--fsync", "always", "--proposal-ttl", proposalTTL,
        ] + extra
        let stdout = Pipe()
        process.standardOutput = stdout
        process.standardError = FileHandle(forWritingAtPath: logPath)
        process.standardInput = FileHandle.nullDevice
        try process.run()
        self.process = process

        let line: String
        do {
            line = try readLine(from: stdout.fileHandleForReading.fileDescriptor, within: readyWithin)
        } catch {
            process.terminate()
            let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
            throw HelperError("aftersalesd did not get ready: \(error); its log:\n\(log.suffix(2000))")
        }
        var fields: [String: String] = [:]
        for part in line.split(separator: " ") {
            if let eq = part.firstIndex(of: "=") { fields[String(part[..<eq])] = String(part[part.index(after: eq)...]) }
        }
        guard line.hasPrefix("aftersalesd ready"), let rpc = fields["rpc"], let pub = fields["pub"] else {
            process.terminate()
            throw HelperError("unexpected ready line: \(line)")
        }
        self.rpc = rpc
        self.pub = pub
    }

    /// A client of this daemon.
    func client(attemptTimeout: Duration = .seconds(3), maxAttempts: Int = 3) throws -> AfterSalesClient {
        try AfterSalesClient(endpoint: rpc, configuration: .init(attemptTimeout: attemptTimeout, maxAttempts: maxAttempts))
    }

    /// SIGTERM, then waits (bounded) for the exit; SIGKILL if it does not come. Returns the
    /// exit status (nil when it had to be killed).
    @discardableResult
    func stop(removeData: Bool = true) -> Int32? {
        var status: Int32? = nil
        if process.isRunning {
            process.terminate()
            let deadline = ContinuousClock.now + .seconds(10)
            while process.isRunning, ContinuousClock.now < deadline { usleep(10_000) }
            if process.isRunning {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
            } else {
                status = process.terminationStatus
            }
        } else {
            status = process.terminationStatus
        }
        if removeData { try? FileManager.default.removeItem(atPath: dataDir) }
        return status
    }

    deinit { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
}

/// Reads one line from `fd`, waiting at most `limit`.
func readLine(from fd: Int32, within limit: Duration) throws -> String {
    let deadline = ContinuousClock.now + limit
    var bytes: [UInt8] = []
    while true {
        let left = deadline - ContinuousClock.now
        guard left > .zero else { throw HelperError("no line within \(limit); got '\(String(decoding: bytes, as: UTF8.self))'") }
        var item = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let ms = Int32(left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000) + 1
        let ready = poll(&item, 1, ms)
        if ready < 0 && errno == EINTR { continue }
        guard ready > 0 else { continue }
        var byte: UInt8 = 0
        let n = read(fd, &byte, 1)
        if n <= 0 { throw HelperError("end of output before a full line; got '\(String(decoding: bytes, as: UTF8.self))'") }
        if byte == UInt8(ascii: "\n") { return String(decoding: bytes, as: UTF8.self) }
        bytes.append(byte)
    }
}

/// Runs the test body with a fresh daemon and stops the daemon afterwards.
func withDaemon<T>(proposalTTL: String = "12h", extra: [String] = [], _ body: (DaemonProcess) async throws -> T) async throws -> T {
    let daemon = try DaemonProcess(proposalTTL: proposalTTL, extra: extra)
    do {
        let result = try await body(daemon)
        let status = daemon.stop()
        #expect(status == 0, "aftersalesd should exit 0 on SIGTERM")
        return result
    } catch {
        daemon.stop()
        throw error
    }
}

/// Runs `body`, failing with a timeout error if it takes longer than `limit` (the body is
/// cancelled; client calls and subscribers honour cancellation).
func within<T: Sendable>(_ limit: Duration, _ what: String = "operation", _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try? await Task.sleep(for: limit)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else {
            throw HelperError("\(what) did not finish within \(limit)")
        }
        return value
    }
}

/// A free loopback TCP port (bound and released), for "nothing listens here" endpoints.
func freePort() throws -> UInt16 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Bool in
            bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
        }
    }
    guard bound else { throw HelperError("cannot find a free port") }
    return UInt16(bigEndian: address.sin_port)
}

// MARK: running the probe

/// What a finished probe run printed and returned.
struct ProbeRun: Sendable {
    let status: Int32
    let stdout: String
    let stderr: String
    var lines: [String] { stdout.split(separator: "\n").map(String.init) }
}

/// Runs the built `aftersales-probe` with `arguments`; kills it after `limit`.
func runProbe(_ arguments: [String], environment: [String: String] = [:], within limit: Duration = .seconds(30)) throws -> ProbeRun {
    let path = productPath("aftersales-probe")
    guard FileManager.default.isExecutableFile(atPath: path) else { throw HelperError("no aftersales-probe at \(path)") }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    var env = ProcessInfo.processInfo.environment
    env.removeValue(forKey: "AFTERSALES_ENDPOINT")
    env.removeValue(forKey: "AFTERSALES_EVENTS_ENDPOINT")
    env.merge(environment) { _, new in new }
    process.environment = env
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = FileHandle.nullDevice
    let collected = OutputCollector()
    let outReader = Thread { collected.set(out: out.fileHandleForReading.readDataToEndOfFile()) }
    let errReader = Thread { collected.set(err: err.fileHandleForReading.readDataToEndOfFile()) }
    try process.run()
    outReader.start()
    errReader.start()
    let deadline = ContinuousClock.now + limit
    while process.isRunning, ContinuousClock.now < deadline { usleep(5_000) }
    if process.isRunning {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        throw HelperError("aftersales-probe \(arguments.joined(separator: " ")) did not finish within \(limit)")
    }
    process.waitUntilExit()
    let (stdout, stderr) = collected.wait()
    return ProbeRun(status: process.terminationStatus, stdout: stdout, stderr: stderr)
}

/// Collects a child's two output streams from reader threads.
final class OutputCollector: @unchecked Sendable {
    private let lock = NSCondition()
    private var out: Data?
    private var err: Data?

    func set(out data: Data) { lock.lock(); out = data; lock.broadcast(); lock.unlock() }
    func set(err data: Data) { lock.lock(); err = data; lock.broadcast(); lock.unlock() }

    /// Both streams (waits at most 5 s after the child exited).
    func wait() -> (String, String) {
        lock.lock()
        defer { lock.unlock() }
        let deadline = Date().addingTimeInterval(5)
        while out == nil || err == nil, lock.wait(until: deadline) {}
        return (String(decoding: out ?? Data(), as: UTF8.self), String(decoding: err ?? Data(), as: UTF8.self))
    }
}

/// Runs blocking work on a new thread (not on Swift concurrency's few cooperative threads).
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}
