import Foundation
import QTrainCore

/// What is wrong with a command line whose first word is neither an option nor a command:
/// `train` is the default command and takes no positional argument, so such a word would end
/// in "Unexpected argument" without saying why. Says which command was probably meant, or that
/// a config file is given with `--config`.
enum CommandSuggestion {
    /// Words users type for our commands.
    static let synonyms = [
        "evaluate": "eval", "evaluation": "eval", "gen": "generate", "sample": "generate",
        "convert": "export", "info": "inspect", "benchmark": "bench", "plot": "report", "fit": "train"
    ]

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
        let scored = commands.map { ($0, editDistance(word, $0)) }.filter { $0.1 <= 2 }
        return scored.min { $0.1 < $1.1 }?.0
    }
}
