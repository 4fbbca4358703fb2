import Foundation
import QTrainCore
import QTrainData

extension Trainer {
    /// The splits the ranks agree on: `train` and `validation` of `data.dir`, or each source's
    /// two splits of a mixture, named by path.
    static func agreedSplits(_ data: TrainingData) -> [(name: String, data: TokenDataset)] {
        guard data.isMixture else {
            return [("train", data.sources[0].train), ("validation", data.sources[0].validation)]
        }
        return data.sources.flatMap { [("\($0.name) train", $0.train), ("\($0.name) validation", $0.validation)] }
    }

    /// The start-of-run line about the data: its tokens and, for a mixture, each source's
    /// weight (normalised) and tokens.
    static func dataLine(_ data: TrainingData) -> String {
        guard data.isMixture else {
            let s = data.sources[0]
            return
                "data: \(formatCount(s.train.tokenCount)) train tokens, \(formatCount(s.validation.tokenCount)) validation tokens in \(s.directory.path)"
        }
        let n = data.sources.count
        return "data: a mixture of \(n) source\(n == 1 ? "" : "s"), each sequence drawn by weight: "
            + data.sources.map {
                String(format: "%@ (weight %.3f, ", $0.name, $0.weight)
                    + "\(formatCount($0.train.tokenCount)) train tokens, \(formatCount($0.validation.tokenCount)) validation tokens)"
            }.joined(separator: ", ")
    }

    /// `data/sotu` or `the mixture data/a: 0.7, data/b: 0.3` (weights as written).
    static func describe(_ data: DataConfig) -> String {
        guard let mix = data.mix else { return data.dir }
        return "the mixture " + mix.entries.map { "\($0.path): \($0.weight)" }.joined(separator: ", ")
    }
}
