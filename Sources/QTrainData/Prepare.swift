import Foundation
import QTrainCore

/// What `prepare` wrote.
public struct PreparedData: Codable, Sendable {
    public var source: String
    public var tokenizer: String
    public var vocabSize: Int
    public var trainDocuments: [String]
    public var valDocuments: [String]
    public var trainTokens: Int
    public var valTokens: Int
    /// Entropy of the unigram distribution of training tokens, in nats: the loss of a model
    /// that ignores context.
    public var unigramEntropy: Double

    enum CodingKeys: String, CodingKey {
        case source, tokenizer, vocabSize = "vocab_size", trainDocuments = "train_documents"
        case valDocuments = "val_documents", trainTokens = "train_tokens", valTokens = "val_tokens"
        case unigramEntropy = "unigram_entropy_nats"
    }
}

/// Corpus → tokenizer → token shards (`train_NNN.bin`, `val_NNN.bin`, `tokenizer.json`,
/// `meta.json`). The validation split takes whole documents: every `valEvery`-th document in
/// name order (offset valEvery/2), so it spreads over the corpus and is deterministic.
public enum DataPreparer {
    /// Tokens per shard file.
    public static let shardTokens = 50_000_000

    /// The training and validation documents, each in name order: every `valEvery`-th
    /// document (offset valEvery/2) is validation.
    public static func split(
        _ documents: [Document], valEvery: Int
    ) throws -> (train: [Document], validation: [Document]) {
        guard documents.count >= 2 else {
            throw QTrainError.data(
                "a corpus needs at least two documents to split into train and validation (got \(documents.count))")
        }
        guard valEvery >= 2 else { throw QTrainError.config("--val-every must be at least 2") }
        var train: [Document] = [], validation: [Document] = []
        for (i, doc) in documents.enumerated() {
            if i % valEvery == valEvery / 2 { validation.append(doc) } else { train.append(doc) }
        }
        // An empty split would only surface later, as train asking for the prepare that just ran.
        guard !validation.isEmpty else {
            throw QTrainError.data(
                "\(documents.count) documents with --val-every \(valEvery) leave no document for validation (document \(valEvery / 2) of every \(valEvery) goes there)",
                hint: "use --val-every \(max(2, min(valEvery, 2 * (documents.count - 1)))) or fewer, or a larger corpus"
            )
        }
        return (train, validation)
    }

    public static func prepare(
        documents: [Document], source: String, tokenizer: any Tokenizer, valEvery: Int, to out: URL,
        log: (String) -> Void
    ) throws -> PreparedData {
        let (trainDocs, valDocs) = try split(documents, valEvery: valEvery)
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        // Remove shards of an earlier run so that stale files are never mixed in.
        for name in (try? FileManager.default.contentsOfDirectory(atPath: out.path)) ?? []
        where (name.hasPrefix("train_") || name.hasPrefix("val_")) && name.hasSuffix(".bin") {
            try FileManager.default.removeItem(at: out.appendingPathComponent(name))
        }
        func tokens(_ docs: [Document]) -> [Int32] {
            docs.flatMap { tokenizer.encode($0.text) + [tokenizer.endOfText] }
        }
        let train = tokens(trainDocs), val = tokens(valDocs)
        let trainNames = trainDocs.map(\.name), valNames = valDocs.map(\.name)
        let hash = tokenizer.identityHash
        for (split, tokens) in [("train", train), ("val", val)] {
            var k = 0
            for start in stride(from: 0, to: tokens.count, by: shardTokens) {
                let part = Array(tokens[start..<min(start + shardTokens, tokens.count)])
                let url = out.appendingPathComponent(String(format: "%@_%03d.bin", split, k))
                try ShardWriter.write(part, vocabSize: tokenizer.vocabSize, tokenizerHash: hash, to: url)
                k += 1
            }
        }
        try tokenizer.save(to: out)
        var counts = [Int](repeating: 0, count: tokenizer.vocabSize)
        for t in train { counts[Int(t)] += 1 }
        let total = Double(train.count)
        var entropy = 0.0
        for c in counts where c > 0 {
            let p = Double(c) / total
            entropy -= p * Foundation.log(p)
        }
        let meta = PreparedData(
            source: source, tokenizer: tokenizer.identity, vocabSize: tokenizer.vocabSize, trainDocuments: trainNames,
            valDocuments: valNames, trainTokens: train.count, valTokens: val.count, unigramEntropy: entropy)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(meta).write(to: out.appendingPathComponent("meta.json"), options: .atomic)
        log(
            "wrote \(train.count) train tokens (\(trainNames.count) documents) and \(val.count) validation tokens (\(valNames.count) documents) to \(out.path)"
        )
        log(
            String(
                format: "unigram entropy of the training tokens: %.4f nats (%.4f bits)", entropy,
                entropy / Foundation.log(2.0)))
        return meta
    }
}
