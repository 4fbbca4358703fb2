import Foundation

/// What `prepare` wrote (`meta.json`, written last: its presence marks a finished data set).
public struct PreparedData: Codable, Sendable {
    public var source: String
    public var tokenizer: String
    public var vocabSize: Int
    public var trainDocumentCount: Int
    public var valDocumentCount: Int
    /// The first few validation documents' names (file, or file:line), for people to read.
    public var valDocumentSample: [String]
    public var trainTokens: Int
    public var valTokens: Int
    /// Entropy of the unigram distribution of training tokens, in nats: the loss of a model
    /// that ignores context.
    public var unigramEntropy: Double
    /// The files read, in order.
    public var inputs: [String]
    public var valEvery: Int
    public var shardTokens: Int
    /// Records or documents skipped, by reason (``ProblemLog/Kind``).
    public var skipped: [String: Int]

    enum CodingKeys: String, CodingKey {
        case source, tokenizer, vocabSize = "vocab_size", trainDocumentCount = "train_documents"
        case valDocumentCount = "val_documents", valDocumentSample = "val_document_sample"
        case trainTokens = "train_tokens", valTokens = "val_tokens", unigramEntropy = "unigram_entropy_nats"
        case inputs, valEvery = "val_every", shardTokens = "shard_tokens", skipped
    }

    public init(
        source: String, tokenizer: String, vocabSize: Int, trainDocumentCount: Int, valDocumentCount: Int,
        valDocumentSample: [String], trainTokens: Int, valTokens: Int, unigramEntropy: Double, inputs: [String],
        valEvery: Int, shardTokens: Int, skipped: [String: Int]
    ) {
        self.source = source
        self.tokenizer = tokenizer
        self.vocabSize = vocabSize
        self.trainDocumentCount = trainDocumentCount
        self.valDocumentCount = valDocumentCount
        self.valDocumentSample = valDocumentSample
        self.trainTokens = trainTokens
        self.valTokens = valTokens
        self.unigramEntropy = unigramEntropy
        self.inputs = inputs
        self.valEvery = valEvery
        self.shardTokens = shardTokens
        self.skipped = skipped
    }

    /// Also reads the `meta.json` of earlier versions, which listed every document's name.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        source = try c.decode(String.self, forKey: .source)
        tokenizer = try c.decode(String.self, forKey: .tokenizer)
        vocabSize = try c.decode(Int.self, forKey: .vocabSize)
        if let names = try? c.decode([String].self, forKey: .trainDocumentCount) {
            trainDocumentCount = names.count
        } else {
            trainDocumentCount = try c.decode(Int.self, forKey: .trainDocumentCount)
        }
        if let names = try? c.decode([String].self, forKey: .valDocumentCount) {
            valDocumentCount = names.count
            valDocumentSample = Array(names.prefix(8))
        } else {
            valDocumentCount = try c.decode(Int.self, forKey: .valDocumentCount)
            valDocumentSample = try c.decodeIfPresent([String].self, forKey: .valDocumentSample) ?? []
        }
        trainTokens = try c.decode(Int.self, forKey: .trainTokens)
        valTokens = try c.decode(Int.self, forKey: .valTokens)
        unigramEntropy = try c.decode(Double.self, forKey: .unigramEntropy)
        inputs = try c.decodeIfPresent([String].self, forKey: .inputs) ?? []
        valEvery = try c.decodeIfPresent(Int.self, forKey: .valEvery) ?? 20
        shardTokens = try c.decodeIfPresent(Int.self, forKey: .shardTokens) ?? DataPreparer.defaultShardTokens
        skipped = try c.decodeIfPresent([String: Int].self, forKey: .skipped) ?? [:]
    }
}
