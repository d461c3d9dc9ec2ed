import ArgumentParser
import Foundation

/// `repl`: one probe command a line, like redis-cli's prompt.
struct Repl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "An interactive prompt, like redis-cli without a command: each line is a probe command.",
        discussion: """
            The global options given to repl (--endpoint, --timeout, --json, …) apply to every line; a line \
            may set its own. Quote words as in a shell: call GetCase '{"caseId":"AS0000000001"}'. \
            `help [COMMAND]` explains, `history` lists the lines so far, `quit` or Ctrl-D leaves.
            """)
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let interactive = isatty(STDIN_FILENO) != 0
        var history: [String] = []
        while true {
            if interactive {
                print("\(global.endpoint)> ", terminator: "")
                fflush(nil)
            }
            guard let line = readLine() else { break }
            let words: [String]
            do {
                words = try shellWords(line)
            } catch {
                printError("\(error)")
                continue
            }
            guard let first = words.first else { continue }
            history.append(line)
            switch first {
            case "quit", "exit":
                return
            case "history":
                for (number, entry) in history.enumerated() { print("\(number + 1)  \(entry)") }
            case "help":
                await report { try await Probe.execute(Array(words.dropFirst()) + ["--help"]) }
            case "repl":
                printError("already in the repl")
            default:
                await report { try await Probe.execute(words + inheritedOptions(missingFrom: words)) }
            }
            fflush(nil)
        }
    }

    /// The global options this repl was started with that the line does not set itself.
    private func inheritedOptions(missingFrom words: [String]) -> [String] {
        var options: [(name: String, value: String?)] = [
            ("--endpoint", global.endpoint), ("--events-endpoint", global.eventsEndpoint),
            ("--timeout", global.timeout), ("--attempts", "\(global.attempts)"),
        ]
        if global.json { options.append(("--json", nil)) }
        if global.emitDefaults { options.append(("--emit-defaults", nil)) }
        if let serverKey = global.serverKey, let key = global.key { options += [("--server-key", serverKey), ("--key", key)] }
        let given = Set(words.map { String($0.split(separator: "=", maxSplits: 1).first ?? "") })
        return options.filter { !given.contains($0.name) }.flatMap { [$0.name] + ($0.value.map { [$0] } ?? []) }
    }

    /// Runs one line's command; what would end the process (help, a usage error, an exit
    /// code) is printed instead, and the prompt comes back.
    private func report(_ command: () async throws -> Void) async {
        do {
            try await command()
        } catch let code as ExitCode {
            if code != .success { printError("(exit \(code.rawValue))") }
        } catch {
            let message = Probe.fullMessage(for: error)
            let code = Probe.exitCode(for: error)
            if code == .success {
                print(message)
            } else {
                printError(message + "\n(exit \(code.rawValue))")
            }
        }
    }
}

/// Why a line cannot be split into words.
struct UnclosedQuoteError: Error, CustomStringConvertible {
    /// The quote left open.
    let quote: Character
    var description: String { "a \(quote) quote is not closed" }
}

/// Splits a line into words as a POSIX shell would: blanks separate, '…' keeps everything
/// as it is, "…" and a backslash keep the next character.
func shellWords(_ line: String) throws(UnclosedQuoteError) -> [String] {
    var words: [String] = []
    var word: String?
    var quote: Character?
    var escaped = false
    for character in line {
        if escaped {
            word = (word ?? "") + String(character)
            escaped = false
        } else if character == "\\", quote != "'" {
            escaped = true
        } else if let open = quote {
            if character == open { quote = nil } else { word = (word ?? "") + String(character) }
        } else if character == "'" || character == "\"" {
            quote = character
            word = word ?? ""
        } else if character.isWhitespace {
            if let done = word { words.append(done) }
            word = nil
        } else {
            word = (word ?? "") + String(character)
        }
    }
    if let quote { throw UnclosedQuoteError(quote: quote) }
    if let word { words.append(word) }
    return words
}
