import Foundation
import QKernels
import QTrainCore
import QTrainWeights

/// Incremental decoding with a key/value cache, for `generate`.
///
/// Inference holds its own copy of the weights (made once at load; this is not training,
/// where no such copy may live), plus the keys and values of every position so far, so each
/// new token costs one pass over the weights instead of a pass over the whole prefix. The
/// arithmetic is the training forward pass's, one row at a time.
///
/// At one row per product, decoding is bound by reading the weights. When every linear layer
/// multiplies int8 inputs by integer weight codes (bitnet, dqt), the copy is those codes
/// (``DecodeWeights``: 2 bits per ternary weight, otherwise one byte) and each product is an
/// exact integer matrix-vector product with one rescale, as the `int8` training path computes
/// it; otherwise it is FP32 on OpenBLAS. Only the tensors read as FP32 (embedding, gains, and
/// all of them without codes) get an FP32 copy.
public final class Generator {
    public let config: ModelConfig
    public let layout: ParameterLayout
    /// Whether linear-layer inputs are int8-fake-quantised as in training (bitnet, dqt).
    public let quantizesActivations: Bool
    /// The linear layers' weights as int8 codes, or nil when they are FP32.
    private let int8: DecodeWeights?
    private let weights: AlignedBuffer<Float>  // the tensors read as FP32, in layout order, packed
    private let denseOffset: [Int?]  // per parameter: its place in `weights`
    private let keys: AlignedBuffer<Float>  // (L, maxLength, C)
    private let values: AlignedBuffer<Float>  // (L, maxLength, C)
    private let rope: RoPE
    private let x, h, qkv, att, h13, act, rstd, scores, logitsBuffer: AlignedBuffer<Float>
    /// Tokens in the cache.
    public private(set) var position = 0
    /// The longest sequence the cache holds.
    public let maxLength: Int

    /// What the linear layers compute in, e.g. `ternary 2-bit (AVX-512 VNNI)` or `fp32 (OpenBLAS)`.
    public var computeName: String {
        int8.map { $0.name } ?? "fp32 (OpenBLAS)"
    }

    /// - Parameters: useInt8: multiply in integers where the weights and inputs allow it
    ///   (false: FP32 everywhere, the reference).
    public init(weights source: ModelWeights, config: ModelConfig, quantizesActivations: Bool, maxLength: Int? = nil,
                useInt8: Bool = true) {
        self.config = config
        layout = source.layout
        self.quantizesActivations = quantizesActivations
        let T = maxLength ?? config.seqLen
        self.maxLength = T
        let C = config.dim, F = config.hiddenDim, L = config.nLayers
        let int8 = useInt8 && quantizesActivations ? DecodeWeights(source) : nil
        self.int8 = int8
        var offsets = [Int?](repeating: nil, count: layout.specs.count), dense = 0
        for spec in layout.specs where int8?.holds(spec.index) != true || spec.index == layout.embedding {
            offsets[spec.index] = dense
            dense += spec.count
        }
        denseOffset = offsets
        weights = AlignedBuffer(count: dense, category: .weights, ledger: nil)
        for spec in layout.specs {
            if let at = offsets[spec.index] { source.writeValues(of: spec.index, from: 0, count: spec.count, into: weights.pointer + at) }
        }
        keys = AlignedBuffer(count: L * T * C, category: .activations, ledger: nil)
        values = AlignedBuffer(count: L * T * C, category: .activations, ledger: nil)
        rope = RoPE(T: T, headDim: config.headDim, theta: config.ropeTheta, ledger: nil)
        func buf(_ n: Int) -> AlignedBuffer<Float> { AlignedBuffer(count: n, category: .activations, ledger: nil) }
        x = buf(C); h = buf(C); qkv = buf(3 * C); att = buf(C); h13 = buf(2 * F); act = buf(F); rstd = buf(1)
        scores = buf(T); logitsBuffer = buf(config.vocabSize)
        inputCodes = AlignedBuffer(count: (max(C, F) + 63) / 64 * 64, category: .activations, ledger: nil)
        products = AlignedBuffer(count: max(3 * C, 2 * F, config.vocabSize), category: .activations, ledger: nil)
    }

    private let inputCodes: AlignedBuffer<Int8>
    private let products: AlignedBuffer<Int32>

    /// Forgets the cached prefix.
    public func reset() { position = 0 }

    private func w(_ p: Int) -> UnsafeMutablePointer<Float> { weights.pointer + denseOffset[p]! }

    /// y (n) = x (k) · Wᵀ for the stacked tensors `params` (n × k in all, adjacent in the
    /// layout); accumulates when asked. x has been through ``quantize(_:_:)``.
    private func matvec(_ y: UnsafeMutablePointer<Float>, _ x: UnsafeMutablePointer<Float>, _ params: [Int], n: Int, k: Int,
                        accumulate: Bool = false) {
        OpProfile.shared.time("decode linear layers") { multiply(y, x, params, n: n, k: k, accumulate: accumulate) }
    }

    private func multiply(_ y: UnsafeMutablePointer<Float>, _ x: UnsafeMutablePointer<Float>, _ params: [Int], n: Int, k: Int,
                          accumulate: Bool) {
        guard let int8, params.allSatisfy(int8.holds) else {
            Gemm.multiply(transB: true, m: 1, n: n, k: k, a: x, lda: k, b: w(params[0]), ldb: k, beta: accumulate ? 1 : 0,
                          c: y, ldc: n)
            return
        }
        int8.multiply(params, codes: inputCodes.pointer, step: inputStep, into: y, products: products.pointer,
                      accumulate: accumulate)
    }

    private var inputStep: Float = 0

    private func quantize(_ v: UnsafeMutablePointer<Float>, _ n: Int) {
        guard quantizesActivations else { return }
        if int8 != nil {
            qk_act_quant_rows_codes(v, inputCodes.pointer, &inputStep, 1, Int64(n), Int64(n))
            // The ternary kernel reads whole blocks of 64 codes: zero past n.
            (inputCodes.pointer + n).initialize(repeating: 0, count: (n + 63) / 64 * 64 - n)
        } else {
            qk_act_quant_rows(v, 1, Int64(n), Int64(n))
        }
    }

    /// Feeds one token; returns the logits of the next (valid until the next call).
    public func step(_ token: Int32) -> UnsafeBufferPointer<Float> {
        // Checked in every build, also one made with QTRAIN_UNCHECKED=1 (-Ounchecked drops preconditions).
        if position >= maxLength { fatalError("the key/value cache is full (\(maxLength) positions); call reset()") }
        let C = config.dim, F = config.hiddenDim, H = config.nHeads, d = config.headDim, V = config.vocabSize, T = maxLength
        let eps = Float(config.normEps), p = position
        x.pointer.update(from: w(layout.embedding) + Int(token) * C, count: C)
        for (l, blk) in layout.blocks.enumerated() {
            qk_rmsnorm_fwd(h.pointer, rstd.pointer, x.pointer, w(blk.attnNorm), 1, Int64(C), eps)
            quantize(h.pointer, C)
            matvec(qkv.pointer, h.pointer, [blk.q, blk.k, blk.v], n: 3 * C, k: C)
            qk_rope_rows(qkv.pointer, Int64(3 * C), 0, 1, 1, Int64(p), Int64(2 * H), Int64(d), rope.cosTable.pointer,
                         rope.sinTable.pointer, 0)
            let kc = keys.pointer + (l * T + p) * C, vc = values.pointer + (l * T + p) * C
            kc.update(from: qkv.pointer + C, count: C)
            vc.update(from: qkv.pointer + 2 * C, count: C)
            let scale = Float(1 / Double(d).squareRoot())
            OpProfile.shared.time("decode attention") {
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
            }
            quantize(att.pointer, C)
            matvec(x.pointer, att.pointer, [blk.o], n: C, k: C, accumulate: true)
            qk_rmsnorm_fwd(h.pointer, rstd.pointer, x.pointer, w(blk.mlpNorm), 1, Int64(C), eps)
            quantize(h.pointer, C)
            matvec(h13.pointer, h.pointer, [blk.gate, blk.up], n: 2 * F, k: C)
            qk_swiglu_fwd(act.pointer, h13.pointer, 1, Int64(F))
            quantize(act.pointer, F)
            matvec(x.pointer, act.pointer, [blk.down], n: C, k: F, accumulate: true)
        }
        qk_rmsnorm_fwd(h.pointer, rstd.pointer, x.pointer, w(layout.finalNorm), 1, Int64(C), eps)
        quantize(h.pointer, C)
        matvec(logitsBuffer.pointer, h.pointer, [layout.head], n: V, k: C)
        position += 1
        return UnsafeBufferPointer(start: logitsBuffer.pointer, count: V)
    }
}
