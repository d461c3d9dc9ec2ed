// A throwaway PostgreSQL for tests: scripts/pg-throwaway starts it in a fresh temporary
// directory on a free loopback port. If this test process dies without stopping it, the
// script's owner watch stops it and removes the directory within a second or so.
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// One running PostgreSQL server with the `aftersales` database, for one test or suite.
///
/// PostgreSQL must be installed (Debian's `postgresql`); without it `init` throws a
/// message saying `make test` installs it — the tests fail, they never skip.
public final class PostgresServer: @unchecked Sendable {
    // @unchecked: mutable state (pid, stopped) is touched only by the test that owns the
    // server; a suite that shares one server only reads `url`.
    /// `postgres://aftersales@127.0.0.1:PORT/aftersales`.
    public let url: String
    /// The port it listens on (127.0.0.1 only); the same after `restart()`.
    public let port: Int
    /// The directory holding its data, socket and log (`postgres.log`).
    public let directory: String
    /// The postmaster's process id; changes on `restart()`.
    public private(set) var pid: Int32
    private var stopped = false

    /// Starts a server in a new temporary directory and waits (bounded by the script:
    /// 30 s) until it accepts connections.
    public init() throws {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("aftersales-pg-\(UUID().uuidString.prefix(8))").path
        self.directory = directory
        do {
            let line = try Self.run(["start", "--owner-pid", String(getpid()), directory])
            (url, pid, port) = try Self.parse(line)
        } catch {
            // deinit will not run for a half-made server: clean up what the script left.
            _ = try? Self.run(["stop", directory])
            try? FileManager.default.removeItem(atPath: directory)
            throw error
        }
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Fast shutdown, then a start of the same data directory on the same port: every
    /// open connection is dropped, committed data stays.
    public func restart() throws {
        let line = try Self.run(["restart", directory])
        pid = try Self.parse(line).pid
    }

    /// SIGKILL to the server and all its processes (a crash). `start()` brings it back,
    /// through crash recovery.
    public func kill() throws {
        _ = try Self.run(["kill", directory])
    }

    /// Starts the server again after `kill()` or `stop()`, on the same port.
    public func start() throws {
        let line = try Self.run(["start", directory])
        pid = try Self.parse(line).pid
        stopped = false
    }

    /// Stops the server (fast shutdown; SIGKILL after 10 s). Idempotent.
    public func stop() {
        guard !stopped else { return }
        stopped = true
        _ = try? Self.run(["stop", directory])
    }

    /// Everything the server logged so far.
    public var log: String {
        (try? String(contentsOfFile: directory + "/postgres.log", encoding: .utf8)) ?? ""
    }

    // MARK: the script

    /// scripts/pg-throwaway of this package: AFTERSALES_PG_THROWAWAY if set, else found by
    /// walking up from the built products (`.build/<triple>/debug`) to the package root,
    /// else relative to this source file.
    public static var scriptPath: String {
        if let path = ProcessInfo.processInfo.environment["AFTERSALES_PG_THROWAWAY"] { return path }
        let relative = "scripts/pg-throwaway"
        var directory = productsDirectory
        for _ in 0..<6 {
            let candidate = directory.appendingPathComponent(relative).path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            directory = directory.deletingLastPathComponent()
        }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent(relative).path
    }

    /// Runs the script with `arguments` (bounded: 60 s) and returns the line it printed
    /// for the server (`postgres://…`); throws with everything it said when it fails.
    @discardableResult
    static func run(_ arguments: [String]) throws -> String {
        let script = scriptPath
        guard FileManager.default.isExecutableFile(atPath: script) else {
            throw TestSupportError("no executable \(script) (set AFTERSALES_PG_THROWAWAY to the script's path)")
        }
        // Its output goes to a file, not a pipe: nothing can block on a full pipe, and the
        // wait below stays bounded however the script behaves.
        let outputPath = FileManager.default.temporaryDirectory.appendingPathComponent("pg-throwaway-\(UUID().uuidString).out").path
        _ = FileManager.default.createFile(atPath: outputPath, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: outputPath) }
        guard let output = FileHandle(forWritingAtPath: outputPath) else {
            throw TestSupportError("cannot create \(outputPath)")
        }
        defer { try? output.close() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: script)
        process.arguments = arguments
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(60)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        let command = "scripts/pg-throwaway \(arguments.joined(separator: " "))"
        if process.isRunning {
            process.terminate()
            throw TestSupportError("\(command) did not finish within 60 s")
        }
        let said = ((try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        switch process.terminationStatus {
        case 0:
            return said.split(separator: "\n").last { $0.hasPrefix("postgres://") }.map(String.init) ?? ""
        case 69:
            throw TestSupportError("PostgreSQL is not installed, and these tests need it: `make test` (or `make deps`) installs it; by hand: apt-get install postgresql. The script said: \(said)")
        default:
            throw TestSupportError("\(command) failed (exit \(process.terminationStatus)): \(said)")
        }
    }

    /// Reads `postgres://… pid=N dir=…`.
    static func parse(_ line: String) throws -> (url: String, pid: Int32, port: Int) {
        let fields = line.split(separator: " ")
        guard let url = fields.first.map(String.init), url.hasPrefix("postgres://"),
              let pidField = fields.first(where: { $0.hasPrefix("pid=") }), let pid = Int32(pidField.dropFirst(4)),
              let portText = url.split(separator: ":").last?.split(separator: "/").first, let port = Int(portText)
        else { throw TestSupportError("unexpected output from scripts/pg-throwaway: '\(line)'") }
        return (url, pid, port)
    }
}
