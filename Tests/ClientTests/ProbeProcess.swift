import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

// A probe that a test talks to while it runs: reads its output line by line as it comes,
// feeds it standard input, interrupts it as Ctrl-C would. Every wait has a bound.

/// One `aftersales-probe` running in the background.
final class RunningProbe: @unchecked Sendable {
    // @unchecked: used by the one test that started it, from one thread at a time.
    private let process = Process()
    private let output = Pipe()
    private let errors = Pipe()
    private let arguments: [String]

    /// Starts the probe with `arguments`; `input` (then end of file) is its standard input.
    init(_ arguments: [String], input: String? = nil) throws {
        let path = productPath("aftersales-probe")
        guard FileManager.default.isExecutableFile(atPath: path) else { throw HelperError("no aftersales-probe at \(path)") }
        self.arguments = arguments
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment.removeValue(forKey: "AFTERSALES_ENDPOINT")
        environment.removeValue(forKey: "AFTERSALES_EVENTS_ENDPOINT")
        process.environment = environment
        process.standardOutput = output
        process.standardError = errors
        let stdin = Pipe()
        process.standardInput = input == nil ? FileHandle.nullDevice : stdin
        try process.run()
        if let input {
            stdin.fileHandleForWriting.write(Data(input.utf8))
            try stdin.fileHandleForWriting.close()
        }
    }

    /// The next line it prints, waiting at most `limit`.
    func nextLine(within limit: Duration = .seconds(10)) throws -> String {
        try readLine(from: output.fileHandleForReading.fileDescriptor, within: limit)
    }

    /// What Ctrl-C on its terminal sends.
    func interrupt() {
        kill(process.processIdentifier, SIGINT)
    }

    /// Waits for it to exit (killing it after `limit`): its status, the output not yet read
    /// by `nextLine`, and its standard error.
    func finish(within limit: Duration = .seconds(10)) throws -> ProbeRun {
        try waitForProbe(process, arguments, within: limit)
        let rest = output.fileHandleForReading.readDataToEndOfFile()
        let stderr = errors.fileHandleForReading.readDataToEndOfFile()
        return ProbeRun(status: process.terminationStatus, stdout: String(decoding: rest, as: UTF8.self),
                        stderr: String(decoding: stderr, as: UTF8.self))
    }
}

/// An endpoint where nothing listens, and a short timeout, for the probe's offline paths.
func unreachable() throws -> [String] {
    ["--endpoint", "tcp://127.0.0.1:\(try freePort())", "--timeout", "200ms"]
}
