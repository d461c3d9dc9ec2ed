@_exported import AfterSalesTestSupport
import AfterSalesClient
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

// Helpers that run the real programs: the daemon (`aftersalesd`) on loopback ports it picks
// itself, with a temporary data directory, and the probe (`aftersales-probe`). Every wait
// here has a bound, so a broken daemon fails the test instead of hanging the run.

typealias HelperError = TestSupportError

extension DaemonProcess {
    /// A client of this daemon.
    func client(attemptTimeout: Duration = .seconds(3), maxAttempts: Int = 3) throws -> AfterSalesClient {
        try AfterSalesClient(endpoint: rpc, configuration: .init(attemptTimeout: attemptTimeout, maxAttempts: maxAttempts))
    }
}

/// Runs the test body with a fresh daemon and stops the daemon afterwards.
func withDaemon<T>(proposalTTL: String = "12h", extra: [String] = [], _ body: (DaemonProcess) async throws -> T) async throws -> T {
    let daemon = try DaemonProcess(arguments: extra, proposalTTL: proposalTTL)
    do {
        let result = try await body(daemon)
        let status = daemon.stop(removeData: true)
        #expect(status == 0, "aftersalesd should exit 0 on SIGTERM")
        return result
    } catch {
        daemon.stop(removeData: true)
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
    try waitForProbe(process, arguments, within: limit)
    let (stdout, stderr) = collected.wait()
    return ProbeRun(status: process.terminationStatus, stdout: stdout, stderr: stderr)
}

/// Waits for a probe to exit; kills it and throws when it takes longer than `limit`.
func waitForProbe(_ process: Process, _ arguments: [String], within limit: Duration) throws {
    let deadline = ContinuousClock.now + limit
    while process.isRunning, ContinuousClock.now < deadline { usleep(5_000) }
    if process.isRunning {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        throw HelperError("aftersales-probe \(arguments.joined(separator: " ")) did not finish within \(limit)")
    }
    process.waitUntilExit()
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
