import QTrainCore
import QTrainWeights

/// Incremental decoding with a key/value cache, for `generate`: the training forward pass
/// (``Model/decode(_:count:cache:)``: the same layers, the same matmul seam) over one
/// sequence, a prompt in one pass and then one token per step, each costing one pass over the
/// weights instead of a pass over the whole prefix.
///
/// At one row per product, decoding is bound by reading the weights; its backend is
/// ``DecodeMatmul`` (integer codes by int8 inputs where the model has them, else FP32 on
/// OpenBLAS; a long prompt's rows in one integer GEMM). The decoder shares the given weights
/// and keeps no gradients.
public final class Generator {
    public let config: ModelConfig
    public let layout: ParameterLayout
    /// Whether linear-layer inputs are int8-fake-quantised as in training (bitnet, dqt).
    public let quantizesActivations: Bool
    /// The longest sequence the cache holds.
    public let maxLength: Int
    private let model: Model
    private let backend: DecodeMatmul
    private let cache: KeyValueCache

    /// Tokens in the cache.
    public var position: Int { cache.count }

    /// What the linear layers compute in, e.g. `ternary 2-bit (AVX-512 VNNI)` or `fp32 (OpenBLAS)`.
    public var computeName: String { backend.name }

    /// - Parameters: useInt8: multiply in integers where the weights and inputs allow it
    ///   (false: FP32 everywhere, the reference); gemmRows: the fewest rows of a prompt chunk
    ///   multiplied by one integer GEMM (nil: row by row; ``DecodeMatmul/gemmRows``).
    public init(
        weights source: ModelWeights, config: ModelConfig, quantizesActivations: Bool, maxLength: Int? = nil,
        useInt8: Bool = true, gemmRows: Int? = DecodeMatmul.gemmRows
    ) {
        self.config = config
        layout = source.layout
        self.quantizesActivations = quantizesActivations
        let T = maxLength ?? config.seqLen
        self.maxLength = T
        backend = DecodeMatmul(
            weights: source, config: config, codes: useInt8 && quantizesActivations, gemmRows: gemmRows)
        // One sequence of up to a context of new rows; one slot of per-block activations (a
        // decoder keeps none for a backward pass); no gradients.
        model = Model(
            config: config, quant: source.quant, batch: 1, ledger: nil, weights: source, backend: backend,
            gradients: .none(),
            recomputesBlocks: true, positions: T)
        model.quantizesActivations = quantizesActivations
        cache = KeyValueCache(config: config, capacity: T)
    }

    /// Forgets the cached prefix.
    public func reset() { cache.reset() }

    /// Feeds one token; returns the logits of the next (valid until the next call).
    public func step(_ token: Int32) -> UnsafeBufferPointer<Float> { feed([token]) }

    /// Feeds tokens (a prompt) in as few forward passes as the model's buffers allow (one for a
    /// prompt within the context); returns the logits after the last (valid until the next call).
    public func feed(_ tokens: [Int32]) -> UnsafeBufferPointer<Float> {
        precondition(!tokens.isEmpty, "feed at least one token")
        var logits = UnsafeBufferPointer<Float>(start: nil, count: 0)
        var chunk = 0
        while chunk < tokens.count {
            let part = Array(tokens[chunk..<min(tokens.count, chunk + model.decodeRows(after: cache.count))])
            chunk += part.count
            // The tokenizer that made the ids is the model's own: an id outside the vocabulary is a bug, not input.
            logits = part.withUnsafeBufferPointer {
                try! model.decode($0.baseAddress!, count: part.count, cache: cache)
            }
        }
        return logits
    }
}
