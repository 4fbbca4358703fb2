import Foundation
import QKernels

/// Incremental decoding with a key/value cache, for `generate`.
///
/// Inference holds its own FP32 copy of the weights (dequantised once at load; this is not
/// training, where no such copy may live), plus the keys and values of every position so far,
/// so each new token costs one pass over the weights instead of a pass over the whole prefix.
/// The arithmetic is the training forward pass's, one row at a time.
public final class Generator {
    public let config: ModelConfig
    public let layout: ParameterLayout
    /// Whether linear-layer inputs are int8-fake-quantised as in training (bitnet, dqt).
    public let quantizesActivations: Bool
    private let weights: AlignedBuffer<Float>  // layout order, FP32
    private let keys: AlignedBuffer<Float>  // (L, maxLength, C)
    private let values: AlignedBuffer<Float>  // (L, maxLength, C)
    private let rope: RoPE
    private let x, h, qkv, att, h13, act, rstd, scores, logitsBuffer: AlignedBuffer<Float>
    /// Tokens in the cache.
    public private(set) var position = 0
    /// The longest sequence the cache holds.
    public let maxLength: Int

    public init(weights source: ModelWeights, config: ModelConfig, quantizesActivations: Bool, maxLength: Int? = nil) {
        self.config = config
        layout = source.layout
        self.quantizesActivations = quantizesActivations
        let T = maxLength ?? config.seqLen
        self.maxLength = T
        let C = config.dim, F = config.hiddenDim, L = config.nLayers
        weights = AlignedBuffer(count: layout.count, category: .weights, ledger: nil)
        for spec in layout.specs {
            source.writeValues(of: spec.index, from: 0, count: spec.count, into: weights.pointer + spec.offset)
        }
        keys = AlignedBuffer(count: L * T * C, category: .activations, ledger: nil)
        values = AlignedBuffer(count: L * T * C, category: .activations, ledger: nil)
        rope = RoPE(T: T, headDim: config.headDim, theta: config.ropeTheta, ledger: nil)
        func buf(_ n: Int) -> AlignedBuffer<Float> { AlignedBuffer(count: n, category: .activations, ledger: nil) }
        x = buf(C); h = buf(C); qkv = buf(3 * C); att = buf(C); h13 = buf(2 * F); act = buf(F); rstd = buf(1)
        scores = buf(T); logitsBuffer = buf(config.vocabSize)
    }

    /// Forgets the cached prefix.
    public func reset() { position = 0 }

    private func w(_ p: Int) -> UnsafeMutablePointer<Float> { weights.pointer + layout.specs[p].offset }

    /// y (n) = x (k) · Wᵀ for W (n × k) starting at `matrix`; accumulates when asked.
    private func matvec(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ matrix: UnsafePointer<Float>, n: Int, k: Int,
                        accumulate: Bool = false) {
        Gemm.multiply(transB: true, m: 1, n: n, k: k, a: x, lda: k, b: matrix, ldb: k, beta: accumulate ? 1 : 0, c: y, ldc: n)
    }

    private func quantize(_ v: UnsafeMutablePointer<Float>, _ n: Int) {
        if quantizesActivations { qk_act_quant_rows(v, 1, Int64(n), Int64(n)) }
    }

    /// Feeds one token; returns the logits of the next (valid until the next call).
    public func step(_ token: Int32) -> UnsafeBufferPointer<Float> {
        precondition(position < maxLength, "the key/value cache is full")
        let C = config.dim, F = config.hiddenDim, H = config.nHeads, d = config.headDim, V = config.vocabSize, T = maxLength
        let eps = Float(config.normEps), p = position
        x.pointer.update(from: w(layout.embedding) + Int(token) * C, count: C)
        for (l, blk) in layout.blocks.enumerated() {
            qk_rmsnorm_fwd(h.pointer, rstd.pointer, x.pointer, w(blk.attnNorm), 1, Int64(C), eps)
            quantize(h.pointer, C)
            matvec(qkv.pointer, h.pointer, w(blk.q), n: 3 * C, k: C)  // q, k, v are adjacent in the layout
            qk_rope_rows(qkv.pointer, Int64(3 * C), 0, 1, 1, Int64(p), Int64(2 * H), Int64(d), rope.cosTable.pointer,
                         rope.sinTable.pointer, 0)
            let kc = keys.pointer + (l * T + p) * C, vc = values.pointer + (l * T + p) * C
            kc.update(from: qkv.pointer + C, count: C)
            vc.update(from: qkv.pointer + 2 * C, count: C)
            let scale = Float(1 / Double(d).squareRoot())
            for head in 0..<H {
                let q = qkv.pointer + head * d
                for j in 0...p {
                    let k = keys.pointer + (l * T + j) * C + head * d
                    var s: Float = 0
                    for e in 0..<d { s += q[e] * k[e] }
                    scores.pointer[j] = s
                }
                qk_softmax(scores.pointer, Int64(p + 1), scale)
                let o = att.pointer + head * d
                o.initialize(repeating: 0, count: d)
                let probs = scores.pointer
                for j in 0...p {
                    let v = values.pointer + (l * T + j) * C + head * d, pj = probs[j]
                    for e in 0..<d { o[e] += pj * v[e] }
                }
            }
            quantize(att.pointer, C)
            matvec(x.pointer, att.pointer, w(blk.o), n: C, k: C, accumulate: true)
            qk_rmsnorm_fwd(h.pointer, rstd.pointer, x.pointer, w(blk.mlpNorm), 1, Int64(C), eps)
            quantize(h.pointer, C)
            matvec(h13.pointer, h.pointer, w(blk.gate), n: 2 * F, k: C)  // gate and up are adjacent
            qk_swiglu_fwd(act.pointer, h13.pointer, 1, Int64(F))
            quantize(act.pointer, F)
            matvec(x.pointer, act.pointer, w(blk.down), n: C, k: F, accumulate: true)
        }
        qk_rmsnorm_fwd(h.pointer, rstd.pointer, x.pointer, w(layout.finalNorm), 1, Int64(C), eps)
        quantize(h.pointer, C)
        matvec(logitsBuffer.pointer, h.pointer, w(layout.head), n: V, k: C)
        position += 1
        return UnsafeBufferPointer(start: logitsBuffer.pointer, count: V)
    }
}
