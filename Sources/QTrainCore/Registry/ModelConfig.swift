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

    package enum CodingKeys: String, CodingKey, CaseIterable {
        case vocabSize = "vocab_size", dim, nLayers = "n_layers", nHeads = "n_heads"
        case ffnDim = "ffn_dim", seqLen = "seq_len", ropeTheta = "rope_theta"
        case normEps = "norm_eps", initStd = "init_std"
    }

    public init() {}

    package static let fields: [ConfigField<Self>] = [
        .init(.vocabSize, \.vocabSize), .init(.dim, \.dim), .init(.nLayers, \.nLayers), .init(.nHeads, \.nHeads),
        .init(.ffnDim, \.ffnDim), .init(.seqLen, \.seqLen), .init(.ropeTheta, \.ropeTheta), .init(.normEps, \.normEps),
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

    package func validate(path: String = "model") throws {
        let check = ConfigCheck(path: path)
        try check.require(vocabSize >= 2, "vocab_size", vocabSize, "at least 2")
        try check.require(dim >= 2, "dim", dim, "at least 2")
        try check.require(nLayers >= 1, "n_layers", nLayers, "at least 1")
        try check.require(nHeads >= 1 && dim % nHeads == 0, "n_heads", nHeads, "must divide dim (\(dim))")
        try check.require(headDim % 2 == 0, "n_heads", nHeads, "head size dim/n_heads must be even for RoPE")
        try check.require(ffnDim >= 0, "ffn_dim", ffnDim, "0 (automatic) or positive")
        try check.require(seqLen >= 1, "seq_len", seqLen, "at least 1")
        try check.require(ropeTheta > 0, "rope_theta", ropeTheta, "positive")
        try check.require(normEps > 0 && normEps < 1, "norm_eps", normEps, "between 0 and 1")
        try check.require(initStd > 0 && initStd < 1, "init_std", initStd, "between 0 and 1")
    }
}
