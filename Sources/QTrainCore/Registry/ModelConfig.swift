/// Shape of a LLaMA-structured model (the `model:` section of a config).
public struct ModelConfig: Codable, Equatable, Sendable, ConfigSection {
    /// Vocabulary size; must cover every token id in the data.
    public var vocabSize = 257
    /// Hidden size C.
    public var dim = 64
    /// Number of transformer blocks L.
    public var nLayers = 2
    /// Attention heads; `dim` must be divisible by it and the head size must be even (RoPE).
    public var nHeads = 4
    /// Key/value heads (grouped-query attention): each serves `n_heads / n_kv_heads` query heads;
    /// 0 means `n_heads` (multi-head attention).
    public var nKVHeads = 0
    /// SwiGLU hidden size F; 0 picks LLaMA's rule (8/3 · dim rounded up to a multiple of 64).
    public var ffnDim = 0
    /// Context length T of training sequences.
    public var seqLen = 64
    /// RoPE base frequency.
    public var ropeTheta = 10_000.0
    /// RMSNorm epsilon.
    public var normEps = 1e-5
    /// Standard deviation of the normal initialisation of every weight matrix.
    public var initStd = 0.02
    /// Whether the LM head is the embedding table itself (one tensor, as in SmolLM2 and LLaMA 3.2
    /// 1B): no `lm_head.weight`, and the table's gradient sums both uses.
    public var tieEmbeddings = false

    package enum CodingKeys: String, CodingKey, CaseIterable {
        case vocabSize = "vocab_size", dim, nLayers = "n_layers", nHeads = "n_heads"
        case nKVHeads = "n_kv_heads", tieEmbeddings = "tie_embeddings"
        case ffnDim = "ffn_dim", seqLen = "seq_len", ropeTheta = "rope_theta"
        case normEps = "norm_eps", initStd = "init_std"
    }

    public init() {}

    package static let fields: [ConfigField<Self>] = [
        .init(.vocabSize, \.vocabSize), .init(.dim, \.dim), .init(.nLayers, \.nLayers), .init(.nHeads, \.nHeads),
        .init(.nKVHeads, \.nKVHeads), .init(.tieEmbeddings, \.tieEmbeddings), .init(.ffnDim, \.ffnDim),
        .init(.seqLen, \.seqLen), .init(.ropeTheta, \.ropeTheta), .init(.normEps, \.normEps),
        .init(.initStd, \.initStd)
    ]

    /// F after applying the default rule.
    public var hiddenDim: Int {
        if ffnDim > 0 { return ffnDim }
        let f = (8 * dim + 2) / 3
        return (f + 63) / 64 * 64
    }

    /// Head size.
    public var headDim: Int { dim / max(nHeads, 1) }

    /// Key/value heads after applying the default (`n_kv_heads: 0` is `n_heads`).
    public var kvHeads: Int { nKVHeads > 0 ? nKVHeads : nHeads }

    /// Width of the keys (and of the values): kvHeads · headDim.
    public var kvDim: Int { kvHeads * headDim }

    /// Width of one row of the fused q|k|v projection: C + 2 · kvDim.
    public var qkvWidth: Int { dim + 2 * kvDim }

    /// The shape in one phrase, for logs: `d 576, 30 layers, 9 heads (3 key/value), ffn 1536,
    /// vocab 49152, context 2048, tied embeddings`; `contextLength` overrides the context shown.
    public func summary(contextLength: Int? = nil) -> String {
        let heads = kvHeads == nHeads ? "\(nHeads) heads" : "\(nHeads) heads (\(kvHeads) key/value)"
        return "d \(dim), \(nLayers) layers, \(heads), ffn \(hiddenDim), vocab \(vocabSize), "
            + "context \(contextLength ?? seqLen)" + (tieEmbeddings ? ", tied embeddings" : "")
    }

    package func validate(path: String = "model") throws {
        let check = ConfigCheck(path: path)
        try check.require(vocabSize >= 2, "vocab_size", vocabSize, "at least 2")
        try check.require(dim >= 2, "dim", dim, "at least 2")
        try check.require(nLayers >= 1, "n_layers", nLayers, "at least 1")
        try check.require(nHeads >= 1 && dim % nHeads == 0, "n_heads", nHeads, "must divide dim (\(dim))")
        try check.require(headDim % 2 == 0, "n_heads", nHeads, "head size dim/n_heads must be even for RoPE")
        try check.require(
            nKVHeads >= 0 && nKVHeads <= nHeads && nHeads % kvHeads == 0, "n_kv_heads", nKVHeads,
            "0 (= n_heads) or a divisor of n_heads (\(nHeads))")
        try check.require(ffnDim >= 0, "ffn_dim", ffnDim, "0 (automatic) or positive")
        try check.require(seqLen >= 1, "seq_len", seqLen, "at least 1")
        try check.require(ropeTheta > 0, "rope_theta", ropeTheta, "positive")
        try check.require(normEps > 0 && normEps < 1, "norm_eps", normEps, "between 0 and 1")
        try check.require(initStd > 0 && initStd < 1, "init_std", initStd, "between 0 and 1")
    }
}
