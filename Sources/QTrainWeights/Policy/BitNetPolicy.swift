import QKernels
import QTrainCore

/// `quant.mode: bitnet` (BitNet b1.58, the baseline DQT removes): quantised tensors keep FP32
/// (or, with `quant.latent_dtype: bf16`, BF16) latent weights; the forward pass uses their
/// absmean ternarisation `clamp(round(W/β), -1, 1) · β` with β = mean|W| per tensor, and the
/// straight-through estimator lets AdamW update W itself.
public final class BitNetPolicy: WeightPolicy {
    let quantized: [Bool]
    let latent: LatentType
    /// β of each tensor for the current latent weights.
    private(set) var beta: [Float]

    init(_ quant: QuantConfig, layout: ParameterLayout) {
        quantized = layout.specs.map { quant.quantizes($0.role) }
        latent = quant.latentType
        beta = [Float](repeating: 1, count: layout.specs.count)
    }

    public func storageKind(for spec: ParameterSpec) -> StorageKind {
        quantized[spec.index] && latent == .bf16 ? .bf16 : .fp32
    }

    public func usesStoredValues(_ p: Int) -> Bool { !quantized[p] }

    public func forwardValues(
        _ w: ModelWeights, of p: Int, from start: Int, count n: Int, into out: UnsafeMutablePointer<Float>
    ) {
        let s = w.storage[p]
        guard quantized[p] else { return s.readValues(from: start, count: n, into: out) }
        if let latent = s as? RealValuedStorage {
            return latent.ternarize(from: start, count: n, step: beta[p], into: out)
        }
        // Any other latent storage: widen in cache-sized pieces, then ternarise in place.
        for o in stride(from: 0, to: n, by: 4096) {
            let k = min(4096, n - o)
            s.readValues(from: start + o, count: k, into: out + o)
            qk_ternarize(out + o, out + o, Int64(k), beta[p])
        }
    }

    public func forwardCodeStep(_ w: ModelWeights, of p: Int) -> Float? {
        quantized[p] && w.storage[p] is RealValuedStorage ? beta[p] : nil
    }

    public func forwardCodes(
        _ w: ModelWeights, of p: Int, from start: Int, count n: Int, into out: UnsafeMutablePointer<Int8>
    ) {
        // forwardCodeStep promised codes only for real-valued latent weights.
        (w.storage[p] as! RealValuedStorage).ternaryCodes(from: start, count: n, step: beta[p], into: out)
    }

    public func refresh(_ w: ModelWeights) {
        for spec in w.layout.specs where quantized[spec.index] {
            beta[spec.index] = Float(max(w.storage[spec.index].absSum() / Double(spec.count), 1e-5))
        }
    }
}
