import Foundation
import QKernels
import QTrainCore
import QTrainWeights

/// How many codes an update changed, per parameter role (the paper studies this fraction).
public struct CodeChangeStats: Sendable {
    public var changed: [ParameterRole: Int] = [:]
    public var total: [ParameterRole: Int] = [:]

    public init() {}

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
/// rank's slice under ZeRO-1), in FP32 or BF16 (`optim.state_dtype`). Each tensor's storage
/// supplies its update kernel: the plain AdamW step for FP32 and BF16 values, the fused pass
/// of PAPER.md for codes (AdamW proposal, then stochastic rounding onto the grid with Philox
/// keyed by (seed, tensor) and counted by (step, element)).
public final class Optimizer {
    public let config: OptimConfig
    public let layout: ParameterLayout
    /// The elements of the layout this optimizer owns.
    public let range: Range<Int>
    /// First moment, one per owned element.
    public let m: MomentBuffer
    /// Second moment.
    public let v: MomentBuffer
    /// Updates applied so far.
    public var step = 0
    /// FP32 working copies of m and v, one pair per thread (BF16 state only).
    private let scratch: AlignedBuffer<Float>?
    /// Widened BF16 gradients, one chunk per thread.
    private let gradientScratch: AlignedBuffer<Float>?
    private let scratchSlots: Int

    /// Elements per unit of work. Chunks start at tensor-local multiples of it, which are
    /// multiples of 40 (a DQT packing group) and of the 8-bit state's block.
    static let chunk = 40_960

    public init(config: OptimConfig, layout: ParameterLayout, range: Range<Int>? = nil, ledger: MemoryLedger?) {
        self.config = config
        self.layout = layout
        self.range = range ?? 0..<layout.count
        let segments = StateSegments(layout: layout, range: self.range)
        m = MomentBuffer(
            dtype: config.stateDtype, segments: segments, count: self.range.count, purpose: .firstMoment, ledger: ledger
        )
        v = MomentBuffer(
            dtype: config.stateDtype, segments: segments, count: self.range.count, purpose: .secondMoment,
            ledger: ledger)
        scratchSlots = max(Threads.count, Threads.availableCores)
        scratch =
            config.stateDtype == .fp32
            ? nil
            : AlignedBuffer(count: 2 * Self.chunk * scratchSlots, category: .scratch, ledger: ledger)
        gradientScratch =
            config.gradDtype == .bf16
            ? AlignedBuffer(count: Self.chunk * scratchSlots, category: .scratch, ledger: ledger) : nil
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
        update(weights: weights, gradScale: gradScale, lr: lr, seed: seed) { offset, _, _ in gradients + offset }
    }

    /// Applies one update with the gradients of `store` (which holds at least the owned elements).
    @discardableResult
    public func update(
        weights: ModelWeights, gradients store: GradientStore, gradScale: Float, lr: Double, seed: UInt64
    )
        -> CodeChangeStats
    {
        update(weights: weights, gradScale: gradScale, lr: lr, seed: seed) { offset, n, scratch in
            store.floats(at: offset, count: n, scratch: scratch)
        }
    }

    /// Gradients of layout elements offset ..< offset + n as FP32, using the per-thread scratch if needed.
    typealias GradientReader = (_ offset: Int, _ n: Int, _ scratch: UnsafeMutablePointer<Float>?) -> UnsafePointer<
        Float
    >

    private func update(
        weights: ModelWeights, gradScale: Float, lr: Double, seed: UInt64, gradients: GradientReader
    )
        -> CodeChangeStats
    {
        step += 1
        let t = Double(step)
        var stats = CodeChangeStats()
        weights.policy.prepareUpdate(weights)
        for spec in layout.specs {
            let lo = max(spec.offset, range.lowerBound), hi = min(spec.offset + spec.count, range.upperBound)
            guard lo < hi else { continue }
            let p = qk_adamw_params(
                lr: Float(lr), beta1: Float(config.beta1), beta2: Float(config.beta2), eps: Float(config.eps),
                weightDecay: spec.role.isMatrix ? Float(config.weightDecay) : 0,
                biasCorr1: Float(1 - pow(config.beta1, t)), biasCorr2: Float(1 - pow(config.beta2, t)),
                gradScale: gradScale)
            let local = lo - spec.offset
            let storage = weights.storage[spec.index]
            let kernel = storage.updateKernel(UpdateStep(seed: seed, tensor: spec.index, step: step))
            let changed = run(
                kernel, elements: local..<(local + hi - lo), of: spec, layoutOffset: lo, gradients: gradients,
                stateOffset: lo - range.lowerBound, params: p, seed: seed)
            if storage.isQuantized {
                stats.changed[spec.role, default: 0] += changed
                stats.total[spec.role, default: 0] += hi - lo
            }
        }
        weights.refreshDerivedState()
        return stats
    }

    /// Runs `kernel` over `elements` of tensor `spec` in chunks on all threads, widening and
    /// storing BF16 or 8-bit moments around each chunk; returns the kernel's summed count.
    private func run(
        _ kernel: UpdateKernel, elements: Range<Int>, of spec: ParameterSpec, layoutOffset: Int,
        gradients: GradientReader,
        stateOffset: Int, params: qk_adamw_params, seed: UInt64
    ) -> Int {
        let chunk = Self.chunk
        // Chunk boundaries at tensor-local multiples of `chunk` (the first and last may be short).
        let firstBoundary = (elements.lowerBound / chunk + 1) * chunk
        var starts = [elements.lowerBound]
        var b = firstBoundary
        while b < elements.upperBound {
            starts.append(b)
            b += chunk
        }
        var counts = [Int](repeating: 0, count: starts.count)
        counts.withUnsafeMutableBufferPointer { counts in
            Threads.parallelChunks(starts.count, maxParts: scratchSlots) { slot, range in
                var p = params
                let sm = scratch.map { $0.pointer + 2 * chunk * slot }
                for b in range {
                    let e = starts[b], len = (b + 1 < starts.count ? starts[b + 1] : elements.upperBound) - e
                    let s = e - elements.lowerBound, o = stateOffset + s
                    let mp = m.floats(at: o, count: len, scratch: sm)
                    let vp = v.floats(at: o, count: len, scratch: sm.map { $0 + chunk })
                    let g = gradients(layoutOffset + s, len, gradientScratch.map { $0.pointer + chunk * slot })
                    counts[b] = kernel(e, len, g, mp, vp, &p)
                    m.store(mp, at: o, count: len, seed: seed, tensor: spec.index, step: step, element: e)
                    v.store(vp, at: o, count: len, seed: seed, tensor: spec.index, step: step, element: e)
                }
            }
        }
        return counts.reduce(0, +)
    }

}
