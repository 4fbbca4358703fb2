import Foundation

/// What is wrong with a command line whose first word is neither an option nor a command:
/// `train` is the default command and takes no positional argument, so such a word would end
/// in "Unexpected argument" without saying why. Says which command was probably meant, or that
/// a config file is given with `--config`.
enum CommandSuggestion {
    /// Words users type for our commands.
    static let synonyms = ["evaluate": "eval", "evaluation": "eval", "gen": "generate", "sample": "generate",
                           "convert": "export", "info": "inspect", "benchmark": "bench", "plot": "report", "fit": "train"]

    static func problem(with arguments: [String], commands: [String]) -> String? {
        guard let word = arguments.first, !word.hasPrefix("-"), !commands.contains(word) else { return nil }
        if word.hasSuffix(".yaml") || word.hasSuffix(".yml") {
            return "'\(word)' looks like a config file; give it with --config: qtrain-dist train --config \(word)"
        }
        let list = commands.filter { $0 != "help" }.joined(separator: ", ")
        if let meant = synonyms[word.lowercased()] ?? closest(word.lowercased(), among: commands) {
            return "unknown command '\(word)'. Did you mean '\(meant)'? (commands: \(list))"
        }
        return "unknown command '\(word)' (commands: \(list); `qtrain-dist help COMMAND` describes one)"
    }

    /// The command within two edits (insertions, deletions, substitutions, swaps of neighbours).
    static func closest(_ word: String, among commands: [String]) -> String? {
        let scored = commands.map { ($0, distance(Array(word), Array($0))) }.filter { $0.1 <= 2 }
        return scored.min { $0.1 < $1.1 }?.0
    }

    /// Optimal-string-alignment distance.
    static func distance(_ a: [Character], _ b: [Character]) -> Int {
        if a.isEmpty || b.isEmpty { return max(a.count, b.count) }
        var d = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in 0...a.count { d[i][0] = i }
        for j in 0...b.count { d[0][j] = j }
        for i in 1...a.count {
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] { d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1) }
            }
        }
        return d[a.count][b.count]
    }
}
