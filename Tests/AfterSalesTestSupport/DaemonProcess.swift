// Running the real programs in tests and benchmarks: the daemon on loopback ports it picks
// itself (or ones given, for a restart), with a temporary data directory. Every wait here
// has a bound, so a broken daemon fails the test instead of hanging the run.
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Thrown when a helper gives up.
public struct TestSupportError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Where the built products are: next to the running test bundle (`swift test` builds every
/// product into the same directory), unless AFTERSALES_BIN_DIR says otherwise.
public func productPath(_ name: String) -> String {
    if let dir = ProcessInfo.processInfo.environment["AFTERSALES_BIN_DIR"] { return dir + "/" + name }
    let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    return URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent(name).path
}

/// The directory of `productPath`.
public var productsDirectory: URL { URL(fileURLWithPath: productPath("aftersalesd")).deletingLastPathComponent() }

/// A fresh, empty directory for one daemon's data.
public func temporaryDataDirectory() -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("aftersales-test-\(UUID().uuidString)").path
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// One running `aftersalesd`, started for one test.
public final class DaemonProcess: @unchecked Sendable {
    // @unchecked: the Process is touched only by the test that owns this value.
    public let process: Process
    /// The RPC endpoint the daemon bound, e.g. tcp://127.0.0.1:40123.
    public let rpc: String
    /// The PUB endpoint the daemon bound.
    public let pub: String
    public let dataDirectory: String
    /// Where its standard error goes (beside the data directory).
    public let logPath: String

    /// Starts the daemon on free loopback ports (or on `endpoints`: a restart on the ports of
    /// an earlier run) and waits (at most `readyWithin`) for its ready line. `arguments` come
    /// last, so they override the defaults.
    public init(dataDirectory: String = temporaryDataDirectory(), arguments: [String] = [], fsync: String = "always",
                proposalTTL: String? = nil, endpoints: (rpc: String, pub: String)? = nil,
                environment: [String: String] = [:], readyWithin: Duration = .seconds(20)) throws {
        let path = productPath("aftersalesd")
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw TestSupportError("no aftersalesd at \(path) (build it, or set AFTERSALES_BIN_DIR)")
        }
        self.dataDirectory = dataDirectory
        logPath = dataDirectory + ".log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)

        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = ["--rpc", endpoints?.rpc ?? "tcp://127.0.0.1:*", "--pub", endpoints?.pub ?? "tcp://127.0.0.1:*",
                             "--data-dir", dataDirectory, "--fsync", fsync, "--log-level", "info"]
            + (proposalTTL.map { ["--proposal-ttl", $0] } ?? []) + arguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        }
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
            throw TestSupportError("aftersalesd did not get ready: \(error); its log:\n\(log.suffix(2000))")
        }
        var fields: [String: String] = [:]
        for part in line.split(separator: " ") {
            if let eq = part.firstIndex(of: "=") { fields[String(part[..<eq])] = String(part[part.index(after: eq)...]) }
        }
        guard line.hasPrefix("aftersalesd ready"), let rpc = fields["rpc"], let pub = fields["pub"] else {
            process.terminate()
            throw TestSupportError("unexpected ready line: \(line)")
        }
        self.rpc = rpc
        self.pub = pub
    }

    /// Everything the daemon logged so far.
    public var stderr: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// SIGTERM, then waits (bounded) for the exit; SIGKILL if it does not come. Returns the
    /// exit status (nil when it had to be killed). `removeData` deletes the data and the log.
    @discardableResult
    public func stop(removeData: Bool = false, timeout: Duration = .seconds(20)) -> Int32? {
        if process.isRunning { process.terminate() }
        let status = waitForExit(timeout: timeout)
        if removeData {
            try? FileManager.default.removeItem(atPath: dataDirectory)
            try? FileManager.default.removeItem(atPath: logPath)
        }
        return status
    }

    /// SIGKILL: the crash the journal must survive (no final snapshot).
    public func kill() {
        if process.isRunning { Glibc.kill(process.processIdentifier, SIGKILL) }
        _ = waitForExit(timeout: .seconds(20))
    }

    /// The exit status, waiting at most `timeout`; nil when it had to be killed.
    public func waitForExit(timeout: Duration) -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning, ContinuousClock.now < deadline { usleep(10_000) }
        if process.isRunning {
            Glibc.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            return nil
        }
        return process.terminationStatus
    }

    deinit { if process.isRunning { Glibc.kill(process.processIdentifier, SIGKILL) } }
}

/// Runs aftersalesd to its exit (bounded: 20 s), returning the status and its stderr.
public func runDaemon(_ arguments: [String]) throws -> (status: Int32, stderr: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: productPath("aftersalesd"))
    process.arguments = arguments
    let errors = Pipe()
    process.standardError = errors
    process.standardOutput = Pipe()
    try process.run()
    let limit = Date().addingTimeInterval(20)
    while process.isRunning && Date() < limit { Thread.sleep(forTimeInterval: 0.02) }
    if process.isRunning { process.terminate() }
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))
}

/// Reads one line from `fd`, waiting at most `limit`.
public func readLine(from fd: Int32, within limit: Duration) throws -> String {
    let deadline = ContinuousClock.now + limit
    var bytes: [UInt8] = []
    while true {
        let left = deadline - ContinuousClock.now
        guard left > .zero else { throw TestSupportError("no line within \(limit); got '\(String(decoding: bytes, as: UTF8.self))'") }
        var item = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let ms = Int32(left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000) + 1
        let ready = poll(&item, 1, ms)
        if ready < 0 && errno == EINTR { continue }
        guard ready > 0 else { continue }
        var byte: UInt8 = 0
        let n = read(fd, &byte, 1)
        if n <= 0 { throw TestSupportError("end of output before a full line; got '\(String(decoding: bytes, as: UTF8.self))'") }
        if byte == UInt8(ascii: "\n") { return String(decoding: bytes, as: UTF8.self) }
        bytes.append(byte)
    }
}

/// A free loopback TCP port (bound and released), for "nothing listens here" endpoints.
public func freePort() throws -> UInt16 {
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
    guard bound else { throw TestSupportError("cannot find a free port") }
    return UInt16(bigEndian: address.sin_port)
}
