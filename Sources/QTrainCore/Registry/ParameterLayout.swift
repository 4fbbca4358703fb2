/// What a parameter tensor is, for quantisation scope, weight decay and per-type metrics.
public enum ParameterRole: String, CaseIterable, Sendable, Codable {
    case embedding, attention, mlp, norm, head

    /// Weight matrices (everything but the RMSNorm gains).
    public var isMatrix: Bool { self != .norm }
}

/// One tensor of the model: its Hugging Face name, shape and place in the flat layout.
public struct ParameterSpec: Sendable, Equatable {
    /// Name as in a Hugging Face LLaMA checkpoint, e.g. `model.layers.0.self_attn.q_proj.weight`.
    public let name: String
    /// Shape, outermost first: (rows, cols) for matrices, (C) for gains.
    public let shape: [Int]
    public let role: ParameterRole
    /// Block index, or nil for embedding, final norm and head.
    public let layer: Int?
    /// First element in the flat layout that gradients and AdamW moments share.
    public let offset: Int
    /// Position in ``ParameterLayout/specs``; also the tensor id of the random streams.
    public let index: Int

    public var count: Int { shape.reduce(1, *) }
    public var rows: Int { shape[0] }
    public var cols: Int { shape.count > 1 ? shape[1] : 1 }
}

/// The tensors of a model in one flat order (forward order: embedding, blocks, final norm,
/// head), as in llm.c: gradients, AdamW m and v are single buffers with this layout, so the
/// optimizer is one loop and gradient buckets are ranges. Backward finishes gradients from
/// the end of the layout towards its start.
public struct ParameterLayout: Sendable {
    /// Indices of one block's tensors, in layout order.
    public struct Block: Sendable {
        public let attnNorm, q, k, v, o, mlpNorm, gate, up, down: Int
    }

    public let specs: [ParameterSpec]
    public let embedding: Int
    public let blocks: [Block]
    public let finalNorm: Int
    /// The LM head's tensor: its own, or ``embedding`` when the embeddings are tied.
    public let head: Int
    /// Whether the head is the embedding table (`model.tie_embeddings`).
    public let tiedEmbeddings: Bool
    /// Total number of parameters.
    public let count: Int

    public init(_ config: ModelConfig) {
        var specs: [ParameterSpec] = []
        var offset = 0
        func add(_ name: String, _ shape: [Int], _ role: ParameterRole, _ layer: Int?) -> Int {
            let spec = ParameterSpec(
                name: name, shape: shape, role: role, layer: layer, offset: offset, index: specs.count)
            specs.append(spec)
            offset += spec.count
            return spec.index
        }
        let C = config.dim, F = config.hiddenDim, V = config.vocabSize, K = config.kvDim
        embedding = add("model.embed_tokens.weight", [V, C], .embedding, nil)
        var blocks: [Block] = []
        for l in 0..<config.nLayers {
            let p = "model.layers.\(l)."
            blocks.append(
                Block(
                    attnNorm: add(p + "input_layernorm.weight", [C], .norm, l),
                    q: add(p + "self_attn.q_proj.weight", [C, C], .attention, l),
                    k: add(p + "self_attn.k_proj.weight", [K, C], .attention, l),
                    v: add(p + "self_attn.v_proj.weight", [K, C], .attention, l),
                    o: add(p + "self_attn.o_proj.weight", [C, C], .attention, l),
                    mlpNorm: add(p + "post_attention_layernorm.weight", [C], .norm, l),
                    gate: add(p + "mlp.gate_proj.weight", [F, C], .mlp, l),
                    up: add(p + "mlp.up_proj.weight", [F, C], .mlp, l),
                    down: add(p + "mlp.down_proj.weight", [C, F], .mlp, l)))
        }
        self.blocks = blocks
        finalNorm = add("model.norm.weight", [C], .norm, nil)
        tiedEmbeddings = config.tieEmbeddings
        head = tiedEmbeddings ? embedding : add("lm_head.weight", [V, C], .head, nil)
        self.specs = specs
        self.count = offset
    }

    /// The spec named `name`, if any.
    public func spec(named name: String) -> ParameterSpec? { specs.first { $0.name == name } }

    /// Parameters that multiply activations in GEMMs (all but the embedding table, which is
    /// a lookup, unless it is also the head): the N of the 6·N FLOPs-per-token rule.
    public var matmulParameterCount: Int {
        specs.filter { $0.role != .norm && ($0.role != .embedding || tiedEmbeddings) }.reduce(0) { $0 + $1.count }
    }
}
