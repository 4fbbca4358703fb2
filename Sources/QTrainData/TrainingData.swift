import Foundation
import QTrainCore

/// The data a run trains and validates on: every source of `data.dir` or `data.mix` opened
/// (train and validation splits), each checked against its `tokenizer.json`, and all checked
/// to share one tokenizer (token ids of different tokenizers mean different things).
public final class TrainingData: @unchecked Sendable {
    /// One prepared directory of the run.
    public struct Source: @unchecked Sendable {
        /// The path as the config writes it: the source's name in logs and metrics.
        public let name: String
        /// Its share of the training sequences (normalised weight; 1 without a mixture).
        public let weight: Double
        public let directory: URL
        public let train: TokenDataset
        public let validation: TokenDataset
    }

    public let sources: [Source]
    /// The tokenizer every source was prepared with (the first source's `tokenizer.json`).
    public let tokenizer: any Tokenizer
    /// Whether the config names a mixture (`data.mix`), even of one source.
    public let isMixture: Bool

    /// Opens the sources of `config` with windows of `seqLen` + 1 tokens. Errors are
    /// ``QTrainError`` data errors naming the directories.
    public init(config: DataConfig, seqLen: Int) throws {
        isMixture = config.mix != nil
        let weights = config.mix?.normalizedWeights ?? [1]
        var opened: [Source] = []
        var first: (directory: URL, tokenizer: any Tokenizer)?
        for (entry, weight) in zip(config.sources, weights) {
            let dir = URL(fileURLWithPath: entry.path)
            let train = try TokenDataset(directory: dir, split: "train", seqLen: seqLen)
            let validation = try TokenDataset(directory: dir, split: "val", seqLen: seqLen)
            let tokenizer = try TokenizerLoader.load(from: dir)
            try train.checkSameTokenizer(as: validation, tokenizer: tokenizer)
            if let first, first.tokenizer.identityHash != tokenizer.identityHash {
                throw QTrainError.data(
                    "the data in \(first.directory.path) and \(dir.path) were prepared with different tokenizers (\(first.tokenizer.identity) and \(tokenizer.identity))",
                    hint: "prepare every directory of data.mix with the same `qtrain-dist prepare --tokenizer`")
            }
            if first == nil { first = (dir, tokenizer) }
            opened.append(
                Source(name: entry.path, weight: weight, directory: dir, train: train, validation: validation))
        }
        sources = opened
        tokenizer = first!.tokenizer
    }

    /// The vocabulary size the shards record (the same in every source).
    public var vocabSize: Int { sources[0].train.vocabSize }

    /// The sampler of training sequences for `seed` over these sources.
    public func sampler(seed: UInt64) -> MixtureSampler {
        MixtureSampler(seed: seed, weights: sources.map(\.weight))
    }
}
