import QTrainCore
import QTrainWeights

/// Every activation the forward pass keeps for the backward pass, and the backward pass's
/// temporaries, as named views into one allocation sized from (B, T) and the config
/// (llm.c's ActivationTensors). Shapes use N = B·T.
///
/// With activation checkpointing (`train.activation_checkpointing: blocks`) only the block
/// inputs (`residual`) are kept for every block; the other per-block views have one slot,
/// which the forward pass overwrites block after block and backward refills by recomputing
/// each block's forward just before its backward.
package final class Activations {
    let B: Int, T: Int, C: Int, F: Int, H: Int, L: Int, V: Int
    /// Blocks whose intermediate activations are kept at once: L, or 1 when blocks are recomputed.
    let slots: Int
    private let storage: AlignedBuffer<Float>
    private var offsets: [String: Int] = [:]

    // Kept by forward, per block l (strides below).
    let residual: UnsafeMutablePointer<Float>  // (L+1, N, C): input of block l; [L] is the final stream
    let ln1: UnsafeMutablePointer<Float>  // (L, N, C) attention-norm output (int8-fake-quantised in bitnet/dqt)
    let ln1Rstd: UnsafeMutablePointer<Float>  // (L, N)
    let qkv: UnsafeMutablePointer<Float>  // (L, N, W) [q | k | v], W = C + 2·kvDim, after RoPE on q and k
    let probs: UnsafeMutablePointer<Float>  // (L, B, H, T, T)
    let attOut: UnsafeMutablePointer<Float>  // (L, N, C) input of o_proj
    let residualMid: UnsafeMutablePointer<Float>  // (L, N, C) stream after attention
    let ln2: UnsafeMutablePointer<Float>  // (L, N, C)
    let ln2Rstd: UnsafeMutablePointer<Float>  // (L, N)
    let h13: UnsafeMutablePointer<Float>  // (L, N, 2F) [gate | up]
    let hact: UnsafeMutablePointer<Float>  // (L, N, F) silu(gate)·up, input of down_proj
    let lnf: UnsafeMutablePointer<Float>  // (N, C)
    let lnfRstd: UnsafeMutablePointer<Float>  // (N)
    let logits: UnsafeMutablePointer<Float>  // (N, V), replaced by dlogits in training
    let losses: UnsafeMutablePointer<Float>  // (N)

    // Backward temporaries, reused by every block.
    let dResidual: UnsafeMutablePointer<Float>  // (N, C)
    let dNorm: UnsafeMutablePointer<Float>  // (N, C)
    let dQKV: UnsafeMutablePointer<Float>  // (N, W)
    let dAttOut: UnsafeMutablePointer<Float>  // (N, C)
    let dH13: UnsafeMutablePointer<Float>  // (N, 2F)
    let dHact: UnsafeMutablePointer<Float>  // (N, F)
    let dScores: UnsafeMutablePointer<Float>  // (scoreSlots, T, T): one per attention thread
    let scoreSlots: Int
    let normPartials: UnsafeMutablePointer<Float>  // (chunks, C)

    // The int8 codes and per-row scales of the linear input just quantised, for a backend
    // that multiplies in integers (nil unless it asked); reused by every layer.
    let inputCodes: UnsafeMutablePointer<Int8>?  // (N, max(C, F))
    let inputScales: UnsafeMutablePointer<Float>?  // (N)

    init(
        config: ModelConfig, B: Int, T: Int, keepsInputCodes: Bool = false, recomputesBlocks: Bool = false,
        ledger: MemoryLedger?
    ) {
        self.B = B
        self.T = T
        C = config.dim
        F = config.hiddenDim
        H = config.nHeads
        L = config.nLayers
        V = config.vocabSize
        slots = recomputesBlocks ? 1 : config.nLayers
        let N = B * T
        scoreSlots = Self.scoreSlots
        let sizes = Self.floatCounts(
            config: config, B: B, T: T, keepsInputCodes: keepsInputCodes,
            recomputesBlocks: recomputesBlocks
        ).map { ($0.0, Int($0.1)) }
        var total = 0
        var offsets: [String: Int] = [:]
        for (name, n) in sizes {
            offsets[name] = total
            total += (n + 15) / 16 * 16  // keep every view 64-byte aligned
        }
        storage = AlignedBuffer(count: total, category: .activations, ledger: ledger)
        let base = storage.pointer
        func view(_ name: String) -> UnsafeMutablePointer<Float> { base + offsets[name]! }
        residual = view("residual")
        ln1 = view("ln1")
        ln1Rstd = view("ln1Rstd")
        qkv = view("qkv")
        probs = view("probs")
        attOut = view("attOut")
        residualMid = view("residualMid")
        ln2 = view("ln2")
        ln2Rstd = view("ln2Rstd")
        h13 = view("h13")
        hact = view("hact")
        lnf = view("lnf")
        lnfRstd = view("lnfRstd")
        logits = view("logits")
        losses = view("losses")
        dResidual = view("dResidual")
        dNorm = view("dNorm")
        dQKV = view("dQKV")
        dAttOut = view("dAttOut")
        dH13 = view("dH13")
        dHact = view("dHact")
        dScores = view("dScores")
        normPartials = view("normPartials")
        inputCodes =
            keepsInputCodes
            ? UnsafeMutableRawPointer(view("inputCodes")).bindMemory(to: Int8.self, capacity: N * max(C, F)) : nil
        inputScales = keepsInputCodes ? view("inputScales") : nil
        self.offsets = offsets
    }

    /// Attention's per-thread score buffers.
    static var scoreSlots: Int { max(Threads.count, Threads.availableCores) }

    /// The views of the arena in order, with their sizes in floats: what `init` allocates and
    /// ``MemoryPlan`` counts before anything is allocated. In Float64, so that a config no
    /// machine could hold cannot overflow the count.
    package static func floatCounts(
        config: ModelConfig, B: Int, T: Int, keepsInputCodes: Bool, recomputesBlocks: Bool = false
    )
        -> [(String, Double)]
    {
        let C = Double(config.dim), F = Double(config.hiddenDim), H = Double(config.nHeads)
        let W = Double(config.qkvWidth), V = Double(config.vocabSize), b = Double(B), t = Double(T), N = b * t
        let layers = Double(config.nLayers), L = recomputesBlocks ? 1 : layers
        return [
            ("residual", (layers + 1) * N * C), ("ln1", L * N * C), ("ln1Rstd", L * N), ("qkv", L * N * W),
            ("probs", L * b * H * t * t), ("attOut", L * N * C), ("residualMid", L * N * C), ("ln2", L * N * C),
            ("ln2Rstd", L * N), ("h13", L * N * 2 * F), ("hact", L * N * F), ("lnf", N * C), ("lnfRstd", N),
            ("logits", N * V), ("losses", N),
            ("dResidual", N * C), ("dNorm", N * C), ("dQKV", N * W), ("dAttOut", N * C),
            ("dH13", N * 2 * F), ("dHact", N * F), ("dScores", Double(scoreSlots) * t * t),
            ("normPartials", (N / Double(RMSNorm.chunkRows)).rounded(.up) * C),
            // int8 codes, four to a float
            ("inputCodes", keepsInputCodes ? ((N * max(C, F) + 3) / 4).rounded(.down) : 0),
            ("inputScales", keepsInputCodes ? N : 0)
        ]
    }

    /// Bytes of the one allocation.
    var bytes: Int { storage.count * 4 }
}

/// Scratch the weights need when they are not plain FP32: room for a block of dequantised or
/// ternarised rows, and for one dequantised gain vector.
package final class Scratch {
    let weights: AlignedBuffer<Float>
    let gain: AlignedBuffer<Float>

    /// - Parameter blockRows: when set, FP32 weight rows are materialised at most this many at
    ///   a time (a backend that multiplies codes directly needs FP32 rows only as a fallback).
    init(config: ModelConfig, weights w: ModelWeights, blockRows: Int? = nil, ledger: MemoryLedger?) {
        let C = config.dim
        let largest = Self.weightFloats(config: config, blockRows: blockRows)
        let specs = w.layout.specs
        let matricesInPlace = specs.allSatisfy { !$0.role.isMatrix || w.valuesInPlace($0.index) != nil }
        let gainsInPlace = specs.allSatisfy { $0.role.isMatrix || w.valuesInPlace($0.index) != nil }
        weights = AlignedBuffer(count: matricesInPlace ? 0 : largest, category: .scratch, ledger: ledger)
        gain = AlignedBuffer(count: gainsInPlace ? 0 : C, category: .scratch, ledger: ledger)
    }

    /// Floats of FP32 weight scratch: the largest block matrix (gate|up: 2F × C, q|k|v: W × C; the head and
    /// embedding go in blocks of at most that many floats), or `blockRows` rows of the widest.
    static func weightFloats(config: ModelConfig, blockRows: Int?) -> Int {
        Int(plannedWeightFloats(config: config, blockRows: blockRows))
    }

    /// The same in Float64, for plans of sizes that would overflow Int.
    package static func plannedWeightFloats(config: ModelConfig, blockRows: Int?) -> Double {
        let C = Double(config.dim), F = Double(config.hiddenDim), W = Double(config.qkvWidth)
        let largest = max(2 * F * C, W * C, C * F)
        return blockRows.map { min(largest, Double($0) * max(C, F)) } ?? largest
    }
}
