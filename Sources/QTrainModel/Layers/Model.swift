import Foundation
import QKernels
import QTrainCore
import QTrainWeights

/// A LLaMA-structured language model with hand-written forward and backward passes over
/// preallocated buffers (DESIGN.md): embedding → L × (RMSNorm → attention with RoPE →
/// residual, RMSNorm → SwiGLU MLP → residual) → RMSNorm → LM head → cross-entropy.
///
/// Parameters live in ``weights`` under the weight policy; their gradients in one flat
/// buffer with the ``ParameterLayout``. Activations are sized once for at most `B` sequences
/// of `T` tokens; nothing is allocated inside a step.
public final class Model {
    public let config: ModelConfig
    public let layout: ParameterLayout
    public let weights: ModelWeights
    /// dLoss/dParameter, flat in layout order (FP32 or BF16, whole or a ZeRO-2 slice).
    /// Backward accumulates (+=); zero it per step.
    public let gradients: GradientStore
    /// Sequences per forward pass the activations were sized for.
    public let maxBatch: Int
    /// Whether every quantised linear layer fake-quantises its input to int8 per token
    /// (on by default in bitnet and dqt; `eval` can switch it off).
    public var quantizesActivations: Bool

    /// Computes every linear layer (`quant.compute`).
    public let backend: MatmulBackend
    /// Set when `quant.compute` could not run here (or `auto` chose): one line for the log.
    public let computeNotice: String?

    let acts: Activations
    let scratch: Scratch
    let rope: RoPE
    private let qkvMatrices: [LinearWeights]
    private let oMatrices: [LinearWeights]
    private let upMatrices: [LinearWeights]
    private let downMatrices: [LinearWeights]
    private let headMatrix: LinearWeights
    private let tokenCopy: AlignedBuffer<Int32>
    private var lastBatch = 0
    private var lastLength = 0

    /// The seed of the next backward pass's random draws (the int8-bf16 path's gradient
    /// rounding); the trainer sets one per step, micro-step and rank.
    public var backwardSeed: UInt64 = 0

    /// Called during backward with a layout offset once every gradient at or after it is final.
    public var onGradientsReady: ((Int) throws -> Void)?
    /// Called after every layer of forward and backward in debug mode, with a label and a
    /// buffer to check (NaN/Inf checks).
    public var inspector: ((String, UnsafePointer<Float>, Int) throws -> Void)?

    /// Whether backward recomputes each block's forward from its saved input (activation
    /// checkpointing) instead of keeping every block's activations.
    public let recomputesBlocks: Bool

    /// - Parameters: batch: the most sequences per forward pass; ledger: receives every
    ///   allocation; weights: another model's weights to compute with (a decoder's), by default
    ///   its own; backend: the matmul backend, by default the one `quant.compute` names;
    ///   gradients: where gradients go, by default FP32 in place; recomputesBlocks: activation
    ///   checkpointing; positions: the most positions a sequence may reach (RoPE's table; by
    ///   default the context length).
    public init(
        config: ModelConfig, quant: QuantConfig, batch: Int, ledger: MemoryLedger?, weights shared: ModelWeights? = nil,
        backend: MatmulBackend? = nil, gradients: GradientStore? = nil, recomputesBlocks: Bool = false,
        positions: Int? = nil
    ) {
        self.recomputesBlocks = recomputesBlocks
        self.config = config
        let weights = shared ?? ModelWeights(layout: ParameterLayout(config), quant: quant, ledger: ledger)
        layout = weights.layout
        self.weights = weights
        let quantizesInputs = quant.quantizesLayerInputs
        let chosen =
            backend.map { ($0, nil as String?) }
            ?? quant.compute.makeBackend(
                maxRows: batch * config.seqLen, maxInner: max(config.dim, config.hiddenDim),
                rounding: quant.backwardRounding, inputsAreCodes: quantizesInputs, ledger: ledger)
        let backend = chosen.0
        self.backend = backend
        computeNotice = chosen.1
        self.gradients =
            gradients
            ?? GradientStore(
                dtype: .fp32, layoutCount: layout.count,
                windowFloats: GradientStore.windowFloats(config, blockRows: backend.needs.gradientRows), ledger: ledger)
        maxBatch = batch
        acts = Activations(
            config: config, B: batch, T: config.seqLen,
            keepsInputCodes: quantizesInputs && backend.needs.activationCodes, recomputesBlocks: recomputesBlocks,
            ledger: ledger)
        let scratch = Scratch(
            config: config, weights: weights, blockRows: backend.needs.weightBlockRows, ledger: ledger)
        self.scratch = scratch
        rope = RoPE(
            T: max(positions ?? config.seqLen, config.seqLen), headDim: config.headDim, theta: config.ropeTheta,
            ledger: ledger)
        tokenCopy = AlignedBuffer(count: batch * config.seqLen, category: .activations, ledger: ledger)
        quantizesActivations = quantizesInputs
        let l = layout
        func linear(_ params: [Int]) -> LinearWeights {
            LinearWeights(StackedMatrix(params, layout: l), weights, scratch)
        }
        qkvMatrices = l.blocks.map { linear([$0.q, $0.k, $0.v]) }
        oMatrices = l.blocks.map { linear([$0.o]) }
        upMatrices = l.blocks.map { linear([$0.gate, $0.up]) }
        downMatrices = l.blocks.map { linear([$0.down]) }
        headMatrix = linear([l.head])
    }

    /// `matrix` as a linear layer's weights, with this model's scratch for materialised rows.
    func linearWeights(_ matrix: StackedMatrix) -> LinearWeights { LinearWeights(matrix, weights, scratch) }

    /// FP32 gain vector `p` for a norm layer (its forward values written into scratch when the
    /// policy does not use it as stored, as under `quant.scope: all`).
    private func gain(_ p: Int) -> UnsafePointer<Float> {
        if let g = weights.valuesInPlace(p) { return g }
        weights.writeValues(of: p, from: 0, count: config.dim, into: scratch.gain.pointer)
        return UnsafePointer(scratch.gain.pointer)
    }

    /// Quantises a linear layer's input in place (bitnet, dqt) and hands it on with its codes
    /// when the backend asked for them.
    private func quantizeInput(_ x: UnsafeMutablePointer<Float>, rows: Int, cols: Int) -> LinearInput {
        guard quantizesActivations else { return LinearInput(values: x) }
        if let codes = acts.inputCodes, let scales = acts.inputScales {
            ActivationQuantizer.apply(x, rows: rows, cols: cols, codes: codes, scales: scales)
            return LinearInput(values: x, codes: codes, rowScales: scales)
        }
        ActivationQuantizer.apply(x, rows: rows, cols: cols)
        return LinearInput(values: x)
    }

    /// A linear layer's saved input for its backward pass (quantised in place by the forward).
    private func backwardInput(_ x: UnsafePointer<Float>) -> LinearInput {
        LinearInput(values: x, onCodeGrid: quantizesActivations)
    }

    private func inspect(_ label: String, _ x: UnsafePointer<Float>, _ n: Int) throws {
        try inspector?(label, x, n)
    }

    // MARK: - Forward

    /// Mean cross-entropy of `targets` given `tokens` (both B × T, row-major), without gradients.
    public func loss(
        tokens: UnsafePointer<Int32>, targets: UnsafePointer<Int32>, batch B: Int, length T: Int
    ) throws
        -> Double
    {
        try forward(tokens: tokens, targets: targets, batch: B, length: T, gradScale: 0)
    }

    /// The cross-entropy of every position of the last forward pass (B·T, row-major).
    public var positionLosses: UnsafeBufferPointer<Float> {
        UnsafeBufferPointer(start: acts.losses, count: lastBatch * lastLength)
    }

    /// The logits (T × V, row-major) of one sequence of `T` tokens.
    public func logits(tokens: [Int32]) throws -> [Float] {
        let T = tokens.count, V = config.vocabSize
        _ = try forward(tokens: tokens, targets: tokens, batch: 1, length: T, gradScale: 0)
        return Array(UnsafeBufferPointer(start: acts.logits, count: T * V))
    }

    /// Forward, loss and backward: gradients of `lossScale ·` mean loss are added to ``gradients``.
    /// Returns the mean loss.
    public func forwardBackward(
        tokens: UnsafePointer<Int32>, targets: UnsafePointer<Int32>, batch B: Int, length T: Int,
        lossScale: Float = 1
    ) throws -> Double {
        let loss = try forward(
            tokens: tokens, targets: targets, batch: B, length: T,
            gradScale: lossScale / Float(B * T))
        try backward()
        return loss
    }

    /// Runs the forward pass; with a non-zero gradScale the logits are replaced by
    /// gradScale · dLoss_sum/dlogits, ready for ``backward()``.
    package func forward(
        tokens: UnsafePointer<Int32>, targets: UnsafePointer<Int32>, batch B: Int, length T: Int,
        gradScale: Float
    ) throws -> Double {
        if !(1...maxBatch).contains(B) || !(1...config.seqLen).contains(T) {
            fatalError("batch \(B)×\(T) exceeds the model's buffers")  // kept in every build, -Ounchecked too
        }
        let N = B * T, C = config.dim, V = config.vocabSize
        let eps = Float(config.normEps)
        let a = acts
        lastBatch = B
        lastLength = T
        tokenCopy.pointer.update(from: tokens, count: N)
        for i in 0..<N where tokens[i] < 0 || Int(tokens[i]) >= V || targets[i] < 0 || Int(targets[i]) >= V {
            throw QTrainError.data(
                "token id \(max(tokens[i], targets[i])) is outside the model's vocabulary (model.vocab_size = \(V))",
                hint: "set model.vocab_size to at least the tokenizer's vocabulary size")
        }

        Embedding.forward(out: a.residual, tokens: tokens, count: N, weights: weights, param: layout.embedding, C: C)
        for l in 0..<config.nLayers {
            try blockForward(l, B: B, T: T, writesOutput: true)
        }
        let final = a.residual + config.nLayers * N * C
        RMSNorm.forward(
            out: a.lnf, rstd: a.lnfRstd, input: final, weight: gain(layout.finalNorm), rows: N, C: C, eps: eps)
        let headInput = quantizeInput(a.lnf, rows: N, cols: C)
        Linear.forward(out: a.logits, input: headInput, rows: N, weights: headMatrix, backend: backend)
        try inspect("logits", a.logits, N * V)
        return CrossEntropy.forwardBackward(
            logits: a.logits, losses: a.losses, targets: targets, rows: N, V: V,
            gradScale: gradScale)
    }

    /// Decoding: `n` tokens of one sequence at the cache's next positions go through the same
    /// layers as training (one forward of `n` rows), their keys and values join the cache, and
    /// the logits of the last come back (V floats, valid until the next call).
    public func decode(
        _ tokens: UnsafePointer<Int32>, count n: Int, cache: KeyValueCache
    ) throws -> UnsafeBufferPointer<Float> {
        let C = config.dim, V = config.vocabSize, L = config.nLayers
        // Kept in every build, -Ounchecked too.
        if !(1...decodeRows(after: cache.count)).contains(n) {
            fatalError("\(n) tokens after \(cache.count) cached ones exceed the model's buffers")
        }
        if cache.count + n > min(cache.capacity, rope.T) {
            fatalError(
                "the key/value cache is full (\(cache.count) of \(min(cache.capacity, rope.T)) positions); reset it")
        }
        for i in 0..<n where tokens[i] < 0 || Int(tokens[i]) >= V {
            throw QTrainError.data(
                "token id \(tokens[i]) is outside the model's vocabulary (model.vocab_size = \(V))",
                hint: "decode with the tokenizer the model was trained with")
        }
        let a = acts
        Embedding.forward(out: a.residual, tokens: tokens, count: n, weights: weights, param: layout.embedding, C: C)
        for l in 0..<L {
            try blockForward(l, B: 1, T: n, writesOutput: true, cache: cache)
        }
        cache.count += n
        // Only the last position's logits are asked for: the head multiplies one row.
        let last = a.residual + L * n * C + (n - 1) * C
        RMSNorm.forward(
            out: a.lnf, rstd: a.lnfRstd, input: last, weight: gain(layout.finalNorm), rows: 1, C: C,
            eps: Float(config.normEps))
        Linear.forward(
            out: a.logits, input: quantizeInput(a.lnf, rows: 1, cols: C), rows: 1, weights: headMatrix, backend: backend
        )
        return UnsafeBufferPointer(start: a.logits, count: V)
    }

    /// The most tokens one ``decode(_:count:cache:)`` call takes after `start` cached positions:
    /// their rows must fit the activations, and their attention weights (n × (start + n) per
    /// head) one block's slot of them (B × T × T per head).
    public func decodeRows(after start: Int) -> Int {
        let T = config.seqLen, room = maxBatch * T * T
        var n = max(1, min(maxBatch * T, room / (start + 1)))
        while n > 1 && n * (start + n) > room { n -= 1 }
        return n
    }

    /// The activation views of block `l` (its slot: `l`, or the one slot under activation
    /// checkpointing; the block input always its own).
    private struct BlockViews {
        let x, ln1, ln1Rstd, qkv, probs, att, mid, ln2, ln2Rstd, h13, hact, out: UnsafeMutablePointer<Float>
    }

    private func views(_ l: Int, B: Int, T: Int) -> BlockViews {
        let a = acts, N = B * T, C = config.dim, F = config.hiddenDim, H = config.nHeads
        let s = l % a.slots
        return BlockViews(
            x: a.residual + l * N * C, ln1: a.ln1 + s * N * C, ln1Rstd: a.ln1Rstd + s * N,
            qkv: a.qkv + s * N * config.qkvWidth, probs: a.probs + s * B * H * T * T, att: a.attOut + s * N * C,
            mid: a.residualMid + s * N * C, ln2: a.ln2 + s * N * C, ln2Rstd: a.ln2Rstd + s * N,
            h13: a.h13 + s * N * 2 * F, hact: a.hact + s * N * F, out: a.residual + (l + 1) * N * C)
    }

    /// Block `l`'s forward from its input `residual[l]`; `writesOutput`: also the down
    /// projection into `residual[l + 1]` (a recomputation for backward needs all but that).
    private func blockForward(_ l: Int, B: Int, T: Int, writesOutput: Bool, cache: KeyValueCache? = nil) throws {
        let N = B * T, C = config.dim, F = config.hiddenDim, H = config.nHeads, G = config.kvHeads
        let W = config.qkvWidth, eps = Float(config.normEps)
        let blk = layout.blocks[l], v = views(l, B: B, T: T)
        RMSNorm.forward(out: v.ln1, rstd: v.ln1Rstd, input: v.x, weight: gain(blk.attnNorm), rows: N, C: C, eps: eps)
        let qkvInput = quantizeInput(v.ln1, rows: N, cols: C)
        Linear.forward(out: v.qkv, input: qkvInput, rows: N, weights: qkvMatrices[l], backend: backend)
        if let cache {
            // Decoding one sequence: its new positions follow the cached ones and see them all.
            let start = cache.count
            rope.apply(v.qkv, ld: W, rows: N, seqLen: T, offset: start, heads: H + G, inverse: false)
            cache.append(l, qkv: v.qkv, rows: N)
            // The weights are not kept (no backward): every block uses the first slot, which
            // decodeRows sized them for.
            Attention.forward(
                out: v.att, probs: acts.probs, queries: v.qkv, keys: cache.keys(l), values: cache.values(l),
                ld: W, keysLD: config.kvDim, B: 1, T: T, start: start, C: C, H: H, G: G)
        } else {
            rope.apply(v.qkv, ld: W, rows: N, seqLen: T, heads: H + G, inverse: false)
            Attention.forward(out: v.att, probs: v.probs, qkv: v.qkv, B: B, T: T, C: C, H: H, G: G)
        }
        let oInput = quantizeInput(v.att, rows: N, cols: C)
        v.mid.update(from: v.x, count: N * C)
        Linear.forward(out: v.mid, input: oInput, rows: N, weights: oMatrices[l], backend: backend, accumulate: true)
        RMSNorm.forward(out: v.ln2, rstd: v.ln2Rstd, input: v.mid, weight: gain(blk.mlpNorm), rows: N, C: C, eps: eps)
        let upInput = quantizeInput(v.ln2, rows: N, cols: C)
        Linear.forward(out: v.h13, input: upInput, rows: N, weights: upMatrices[l], backend: backend)
        SwiGLU.forward(out: v.hact, h: v.h13, rows: N, F: F)
        let downInput = quantizeInput(v.hact, rows: N, cols: F)
        guard writesOutput else { return }
        v.out.update(from: v.mid, count: N * C)
        Linear.forward(
            out: v.out, input: downInput, rows: N, weights: downMatrices[l], backend: backend, accumulate: true)
        try inspect("forward block \(l) output", v.out, N * C)
    }

    // MARK: - Backward

    /// The forward pass reversed. Requires a preceding forward with a non-zero gradScale.
    package func backward() throws {
        let B = lastBatch, T = lastLength
        let N = B * T, C = config.dim, F = config.hiddenDim, H = config.nHeads, G = config.kvHeads
        let a = acts, g = gradients
        if g.layoutCount != layout.count {
            fatalError(
                "this model keeps no gradients (it was built for evaluation, decoding or export); it cannot run backward"
            )
        }
        backend.beginBackward(seed: backwardSeed)
        /// RMSNorm backward with its gain's gradient in the store.
        func normBackward(
            _ p: Int, dOut: UnsafePointer<Float>, input: UnsafePointer<Float>, rstd: UnsafePointer<Float>
        ) throws {
            let range = layout.specs[p].offset..<(layout.specs[p].offset + C)
            RMSNorm.backward(
                dInput: a.dResidual, dWeight: g.destination(range), dOut: dOut, input: input, weight: gain(p),
                rstd: rstd, rows: N, C: C, partials: a.normPartials)
            try g.commit(range)
        }

        // logits = lnf · headᵀ;  final = RMSNorm(residual[L])
        try Linear.backward(
            dInput: a.dNorm, gradients: g, dOut: a.logits, input: backwardInput(a.lnf), rows: N, weights: headMatrix,
            backend: backend)
        // A tied head is the embedding table: its gradient is final only after the lookup's.
        if !layout.tiedEmbeddings { try onGradientsReady?(layout.specs[layout.head].offset) }
        a.dResidual.initialize(repeating: 0, count: N * C)
        let final = a.residual + config.nLayers * N * C
        try normBackward(layout.finalNorm, dOut: a.dNorm, input: final, rstd: a.lnfRstd)
        try onGradientsReady?(layout.specs[layout.finalNorm].offset)

        for l in stride(from: config.nLayers - 1, through: 0, by: -1) {
            let blk = layout.blocks[l]
            if recomputesBlocks { try blockForward(l, B: B, T: T, writesOutput: false) }
            let v = views(l, B: B, T: T)
            let x = v.x, ln1 = v.ln1, qkv = v.qkv, probs = v.probs, att = v.att, mid = v.mid, ln2 = v.ln2
            let h13 = v.h13, hact = v.hact

            // out = mid + hact · downᵀ: dResidual is d(out) and, through the skip, d(mid)
            try Linear.backward(
                dInput: a.dHact, gradients: g, dOut: a.dResidual, input: backwardInput(hact), rows: N,
                weights: downMatrices[l], backend: backend)
            SwiGLU.backward(dh: a.dH13, dOut: a.dHact, h: h13, rows: N, F: F)
            try Linear.backward(
                dInput: a.dNorm, gradients: g, dOut: a.dH13, input: backwardInput(ln2), rows: N,
                weights: upMatrices[l], backend: backend)
            try normBackward(blk.mlpNorm, dOut: a.dNorm, input: mid, rstd: v.ln2Rstd)
            // mid = x + att · oᵀ: dResidual is now d(mid), and d(x) through the skip
            try Linear.backward(
                dInput: a.dAttOut, gradients: g, dOut: a.dResidual, input: backwardInput(att), rows: N,
                weights: oMatrices[l], backend: backend)
            Attention.backward(
                dqkv: a.dQKV, dOut: a.dAttOut, qkv: qkv, probs: probs, B: B, T: T, C: C, H: H, G: G,
                dScores: a.dScores, slots: a.scoreSlots)
            rope.apply(a.dQKV, ld: config.qkvWidth, rows: N, seqLen: T, heads: H + G, inverse: true)
            try Linear.backward(
                dInput: a.dNorm, gradients: g, dOut: a.dQKV, input: backwardInput(ln1), rows: N,
                weights: qkvMatrices[l], backend: backend)
            try normBackward(blk.attnNorm, dOut: a.dNorm, input: x, rstd: v.ln1Rstd)
            try inspect("backward block \(l) input gradient", a.dResidual, N * C)
            try onGradientsReady?(layout.specs[blk.attnNorm].offset)
        }
        // The table's gradient a window of rows at a time (one piece when written in place).
        let table = layout.specs[layout.embedding]
        let pieceRows = max(1, min(table.rows, g.maxDestination / C))
        for r0 in stride(from: 0, to: table.rows, by: pieceRows) {
            let rows = r0..<min(table.rows, r0 + pieceRows)
            let range = (table.offset + rows.lowerBound * C)..<(table.offset + rows.upperBound * C)
            Embedding.backward(
                dTable: g.destination(range), dOut: a.dResidual, tokens: tokenCopy.pointer, count: N, C: C,
                rows: pieceRows == table.rows ? nil : rows)
            try g.commit(range)
        }
        try onGradientsReady?(0)
    }

    /// Sets every gradient to zero.
    public func zeroGradients() { gradients.zero() }
}

extension LinearWeights {
    /// `matrix` of `weights`, materialising rows into `scratch` when they are not stored as FP32.
    init(_ matrix: StackedMatrix, _ weights: ModelWeights, _ scratch: Scratch) {
        self.init(
            matrix: matrix, weights: weights, scratch: scratch.weights.pointer, scratchCount: scratch.weights.count)
    }
}
