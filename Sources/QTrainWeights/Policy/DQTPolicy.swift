import QKernels
import QTrainCore

/// `quant.mode: dqt` (Direct Quantized Training, PAPER.md): quantised tensors are packed codes
/// plus one scale and nothing else; the forward pass uses `code / scale`; the update is an
/// AdamW proposal rounded stochastically back onto the grid (the storage's kernel). Under the
/// authors' `quant.scale: rescale` rule the grid moves to `qp / max(W)` before each update.
public final class DQTPolicy: WeightPolicy {
    let quantized: [Bool]
    let grid: QuantGrid
    let rule: ScaleRule

    init(_ quant: QuantConfig, layout: ParameterLayout) {
        quantized = layout.specs.map { quant.quantizes($0.role) }
        grid = quant.grid
        rule = quant.scaleRule
    }

    public func storageKind(for spec: ParameterSpec) -> StorageKind {
        quantized[spec.index] ? .codes(grid) : .fp32
    }

    public func usesStoredValues(_ p: Int) -> Bool { !quantized[p] }

    public func forwardValues(
        _ w: ModelWeights, of p: Int, from start: Int, count n: Int, into out: UnsafeMutablePointer<Float>
    ) {
        storedValues(w, of: p, from: start, count: n, into: out)
    }

    public func forwardCodeStep(_ w: ModelWeights, of p: Int) -> Float? { w.codes(p).map { 1 / $0.scale } }

    public func forwardCodes(
        _ w: ModelWeights, of p: Int, from start: Int, count n: Int, into out: UnsafeMutablePointer<Int8>
    ) {
        let q = w.codes(p)!
        qk_unpack_i8(out, q.packed.pointer, Int32(q.grid.bits), Int32(q.grid.qn), Int64(start), Int64(n))
    }

    /// Every rank moves every scale, including those of tensors it owns no slice of (ZeRO-1):
    /// qp / max(W) over the whole tensor, W = codes / scale.
    public func prepareUpdate(_ w: ModelWeights) {
        guard rule == .rescale else { return }
        for spec in w.layout.specs {
            guard let q = w.codes(spec.index) else { continue }
            let maxCode = q.maxCode()
            q.pendingScale = maxCode > 0 ? q.scale * Float(q.grid.qp) / Float(maxCode) : q.scale
        }
    }

    /// Commits the scales the update rounded onto.
    public func refresh(_ w: ModelWeights) {
        for spec in w.layout.specs {
            guard let q = w.codes(spec.index), let next = q.pendingScale else { continue }
            q.scale = next
            q.pendingScale = nil
        }
    }
}
