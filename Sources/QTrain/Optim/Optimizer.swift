import Foundation
import QKernels

/// How many codes an update changed, per parameter role (the paper studies this fraction).
public struct CodeChangeStats: Sendable {
    public var changed: [ParameterRole: Int] = [:]
    public var total: [ParameterRole: Int] = [:]

    /// Changed / total over all quantised tensors, or nil when none is quantised.
    public var fraction: Double? {
        let t = total.values.reduce(0, +)
        return t == 0 ? nil : Double(changed.values.reduce(0, +)) / Double(t)
    }

    /// The fraction for each role that has quantised tensors.
    public var fractionByRole: [ParameterRole: Double] {
        var out: [ParameterRole: Double] = [:]
        for (role, t) in total where t > 0 { out[role] = Double(changed[role, default: 0]) / Double(t) }
        return out
    }

    mutating func add(_ other: CodeChangeStats) {
        for (k, v) in other.changed { changed[k, default: 0] += v }
        for (k, v) in other.total { total[k, default: 0] += v }
    }
}

/// AdamW over the flat parameter layout, with the DQT update for tensors stored as codes.
///
/// Holds the moments m and v for the elements `range` of the layout (all of them, or one
/// rank's slice under ZeRO-1). Dense tensors take the plain AdamW step; DQT tensors take the
/// fused pass of PAPER.md: AdamW proposal, then stochastic rounding onto the grid with
/// Philox keyed by (seed, tensor) and counted by (step, element).
public final class Optimizer {
    public let config: OptimConfig
    public let layout: ParameterLayout
    /// The elements of the layout this optimizer owns.
    public let range: Range<Int>
    /// First moment, one per owned element.
    public let m: AlignedBuffer<Float>
    /// Second moment.
    public let v: AlignedBuffer<Float>
    /// Updates applied so far.
    public var step = 0

    public init(config: OptimConfig, layout: ParameterLayout, range: Range<Int>? = nil, ledger: MemoryLedger?) {
        self.config = config
        self.layout = layout
        self.range = range ?? 0..<layout.count
        m = AlignedBuffer(count: self.range.count, category: .optimizer, ledger: ledger)
        v = AlignedBuffer(count: self.range.count, category: .optimizer, ledger: ledger)
    }

    /// Applies one update to the owned elements of `weights`.
    ///
    /// - Parameters:
    ///   - gradients: gradients in layout order (only owned elements are read), summed over ranks.
    ///   - gradScale: multiplies every gradient first (1/world size × clipping factor).
    ///   - lr: this step's learning rate.
    ///   - seed: the run seed (keys stochastic rounding).
    /// - Returns: how many codes changed.
    @discardableResult
    public func update(
        weights: ModelWeights, gradients: UnsafePointer<Float>, gradScale: Float, lr: Double, seed: UInt64
    ) -> CodeChangeStats {
        step += 1
        let t = Double(step)
        var stats = CodeChangeStats()
        for spec in layout.specs {
            // Every rank moves every scale, including of tensors it owns no slice of (ZeRO-1).
            let q = weights.quantized[spec.index]
            let scaleOld = q?.scale ?? 1
            let scaleNew = q.map { newScale($0, rule: weights.quant.scaleRule) } ?? 1
            defer { q?.scale = scaleNew }
            let lo = max(spec.offset, range.lowerBound), hi = min(spec.offset + spec.count, range.upperBound)
            guard lo < hi else { continue }
            var p = qk_adamw_params(
                lr: Float(lr), beta1: Float(config.beta1), beta2: Float(config.beta2), eps: Float(config.eps),
                weightDecay: spec.role.isMatrix ? Float(config.weightDecay) : 0,
                biasCorr1: Float(1 - pow(config.beta1, t)), biasCorr2: Float(1 - pow(config.beta2, t)),
                gradScale: gradScale)
            let local = lo - spec.offset, n = hi - lo
            let g = gradients + lo
            let mp = m.pointer + (lo - range.lowerBound), vp = v.pointer + (lo - range.lowerBound)
            if let q {
                let changed = updateCodes(q, scaleOld: scaleOld, scaleNew: scaleNew, spec: spec, elements: local..<(local + n),
                                          g: g, m: mp, v: vp, params: &p, seed: seed)
                stats.changed[spec.role, default: 0] += changed
                stats.total[spec.role, default: 0] += n
            } else if weights.latent16Offset[spec.index] != nil {
                let w = weights.latent16Pointer(spec.index) + local
                Self.inChunks(n) { s, len in qk_adamw_bf16(w + s, g + s, mp + s, vp + s, Int64(len), &p) }
            } else {
                let w = weights.densePointer(spec.index) + local
                Self.inChunks(n) { s, len in qk_adamw(w + s, g + s, mp + s, vp + s, Int64(len), &p) }
            }
        }
        weights.refreshDerivedState()
        return stats
    }

    /// The fused DQT pass over elements `elements` of tensor `q`; returns changed codes.
    private func updateCodes(
        _ q: QuantizedTensor, scaleOld: Float, scaleNew: Float, spec: ParameterSpec, elements: Range<Int>,
        g: UnsafePointer<Float>,
        m: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>, params: inout qk_adamw_params, seed: UInt64
    ) -> Int {
        precondition(elements.lowerBound % 40 == 0, "DQT update slices must start at a multiple of 40")
        let stream = RandomStream(seed: seed, purpose: .stochasticRounding, tensor: spec.index, step: step)
        var key = [stream.key.0, stream.key.1]
        let chunk = 40_000
        let n = elements.count
        let blocks = (n + chunk - 1) / chunk
        var changed = [Int](repeating: 0, count: blocks)
        let (qn, qp, bits) = (Int32(q.grid.qn), Int32(q.grid.qp), Int32(q.grid.bits))
        let p = params
        changed.withUnsafeMutableBufferPointer { counts in
            key.withUnsafeMutableBufferPointer { k in
                Threads.parallelFor(blocks) { range in
                    var pp = p
                    for b in range {
                        let s = b * chunk, len = min(chunk, n - s)
                        counts[b] = Int(qk_dqt_update(
                            q.packed.pointer, bits, qn, qp, Int64(elements.lowerBound + s), Int64(len),
                            g + s, m + s, v + s, scaleOld, scaleNew, &pp, k.baseAddress!, stream.c2, stream.c3))
                    }
                }
            }
        }
        return changed.reduce(0, +)
    }

    /// Runs `body(start, count)` over `0..<n` in chunks of `chunk` elements, on all threads.
    static func inChunks(_ n: Int, chunk: Int = 1 << 16, _ body: (Int, Int) -> Void) {
        Threads.parallelFor((n + chunk - 1) / chunk) { blocks in
            for b in blocks { body(b * chunk, min(chunk, n - b * chunk)) }
        }
    }

    /// The scale of this step: unchanged under `fixed`; under the authors' `rescale` rule,
    /// qp / max(W) over the whole tensor with W = codes / scale (the same on every rank).
    private func newScale(_ q: QuantizedTensor, rule: ScaleRule) -> Float {
        guard rule == .rescale else { return q.scale }
        let maxCode = q.maxCode()
        return maxCode > 0 ? q.scale * Float(q.grid.qp) / Float(maxCode) : q.scale
    }

}
