import ArgumentParser

// "Did you mean …?" for a mistyped name, as git and cargo answer one: the names within a
// couple of edits (a swap of two neighbours counts as one), or those the word begins.

/// The names in `choices` that `word` is probably a misspelling of, closest first.
func closeMatches(for word: String, in choices: [String]) -> [String] {
    let wanted = word.lowercased()
    // One slip in a short word, two in a longer one: beyond that, suggestions turn random.
    let allowed = wanted.count <= 3 ? 1 : 2
    let scored = choices.map { (name: $0, distance: editDistance(wanted, $0.lowercased())) }
    let close = scored.filter { $0.distance <= allowed || (wanted.count >= 3 && $0.name.lowercased().hasPrefix(wanted)) }
    guard let best = close.map(\.distance).min() else { return [] }
    return close.filter { $0.distance == best }.map(\.name)
}

/// "unknown command 'stast'; did you mean 'stats'?", or the whole list when nothing is close.
func unknownNameMessage(_ kind: String, _ word: String, choices: [String]) -> String {
    let matches = closeMatches(for: word, in: choices)
    if matches.isEmpty {
        return "unknown \(kind) '\(word)'; the \(kind)s are: \(choices.joined(separator: ", "))"
    }
    let quoted = matches.map { "'\($0)'" }
    return "unknown \(kind) '\(word)'; did you mean \(quoted.dropLast().joined(separator: ", "))\(quoted.count > 1 ? " or " : "")\(quoted.last!)?"
}

/// Edits (insert, delete, replace, swap two neighbours) that turn `a` into `b`: the optimal
/// string alignment distance.
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    guard !a.isEmpty, !b.isEmpty else { return max(a.count, b.count) }
    // d[i][j]: the distance between the first i characters of a and the first j of b.
    var d = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
    for i in 0...a.count { d[i][0] = i }
    for j in 0...b.count { d[0][j] = j }
    for i in 1...a.count {
        for j in 1...b.count {
            let cost = a[i - 1] == b[j - 1] ? 0 : 1
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
            if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
            }
        }
    }
    return d[a.count][b.count]
}

extension ParsableCommand {
    /// The first word of `arguments` that should name a subcommand of this command (or of a
    /// subcommand group under it) and does not, with the subcommands possible there and the
    /// group's own words ("merchant"). Options end the search: the parser reports those.
    static func unknownSubcommand(in arguments: [String]) -> (word: String, choices: [String], group: [String])? {
        var command: ParsableCommand.Type = self
        var group: [String] = []
        for word in arguments {
            let subcommands = command.configuration.subcommands
            guard !word.hasPrefix("-"), !subcommands.isEmpty else { return nil }
            // argument-parser's own `help SUBCOMMAND`.
            if word == "help" { return nil }
            guard let next = subcommands.first(where: { $0.commandNames.contains(word) }) else {
                return (word, subcommands.map { $0._commandName }, group)
            }
            command = next
            group.append(word)
        }
        return nil
    }

    /// The words that name this command: its name and its aliases.
    static var commandNames: [String] { [_commandName] + configuration.aliases }
}
