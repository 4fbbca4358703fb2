import Foundation
import QKernels
import QTrainCore

/// A weight matrix made of parameter tensors stacked along rows, e.g. q, k and v as one
/// (3C × C) matrix, so that one GEMM computes all of them.
public struct StackedMatrix: Sendable {
    public let params: [Int]
    public let rows: Int
    public let cols: Int

    package init(_ params: [Int], layout: ParameterLayout) {
        self.params = params
        rows = params.reduce(0) { $0 + layout.specs[$1].rows }
        cols = layout.specs[params[0]].cols
    }
}

/// The weights of one model replica: one ``TensorStorage`` per parameter tensor, chosen by
/// the run's ``WeightPolicy`` (`quant.mode`). FP32 and BF16 tensors are views into one arena
/// per element type, in layout order (so adjacent FP32 tensors such as q, k, v can feed one
/// GEMM in place); packed codes own their buffers.
public final class ModelWeights: @unchecked Sendable {
    public let layout: ParameterLayout
    public let quant: QuantConfig
    /// What `quant.mode` does with the stored weights.
    public let policy: WeightPolicy
    /// How each tensor is stored, in layout order.
    public let storage: [TensorStorage]
    /// The FP32 arena that FP32 tensors view.
    let dense: AlignedBuffer<Float>
    /// The BF16 arena that BF16 tensors view.
    let half: AlignedBuffer<UInt16>

    public init(layout: ParameterLayout, quant: QuantConfig, ledger: MemoryLedger?) {
        self.layout = layout
        self.quant = quant
        let policy = quant.mode.makePolicy(quant, layout: layout)
        self.policy = policy
        let kinds = layout.specs.map { policy.storageKind(for: $0) }
        let sizes = { (arena: StorageKind.ArenaType) in
            zip(kinds, layout.specs).reduce(0) { $0 + ($1.0.arena == arena ? $1.1.count : 0) }
        }
        dense = AlignedBuffer(count: sizes(.fp32), category: .weights, ledger: ledger)
        half = AlignedBuffer(count: sizes(.bf16), category: .weights, ledger: ledger)
        var next32 = 0, next16 = 0
        var storage: [TensorStorage] = []
        for (kind, spec) in zip(kinds, layout.specs) {
            switch kind {
            case .fp32:
                storage.append(FP32Storage(pointer: dense.pointer + next32, count: spec.count))
                next32 += spec.count
            case .bf16:
                storage.append(BF16Storage(pointer: half.pointer + next16, count: spec.count))
                next16 += spec.count
            case .codes(let grid):
                storage.append(QuantizedTensor(grid: grid, count: spec.count, ledger: ledger))
            }
        }
        self.storage = storage
    }

    /// Tensor `p`'s codes, when it is stored as codes.
    @inline(__always) public func codes(_ p: Int) -> QuantizedTensor? { storage[p] as? QuantizedTensor }

    /// Pointer to FP32 tensor `p`, which must be stored as FP32.
    public func densePointer(_ p: Int) -> UnsafeMutablePointer<Float> {
        guard let f = storage[p] as? FP32Storage else { fatalError("\(layout.specs[p].name) is not stored as FP32") }
        return f.pointer
    }

    // MARK: - Initialisation

    /// Draws every matrix from normal(0, std) and sets every gain to 1, from Philox streams
    /// keyed by (seed, tensor): the result depends only on the seed, whatever the storage.
    public func initialize(seed: UInt64, std: Float) {
        for spec in layout.specs {
            let stream = RandomStream(seed: seed, purpose: .initialisation, tensor: spec.index, step: 0)
            if spec.role.isMatrix {
                storage[spec.index].initializeNormal(stream, std: std)
            } else {
                storage[spec.index].initializeOnes()
            }
        }
        refreshDerivedState()
    }

    /// Sets tensor `p` from imported FP32 values, as its storage holds them: exactly (FP32),
    /// rounded (BF16), or as codes under the step `scale` picks. Call ``refreshDerivedState()``
    /// once every tensor is loaded.
    public func load(_ p: Int, values: UnsafePointer<Float>, scale: ImportScale) {
        storage[p].load(values, scale: scale)
    }

    /// Recomputes what the policy derives from the stored weights; call whenever they change.
    public func refreshDerivedState() { policy.refresh(self) }

    // MARK: - Access for computation

    /// Whether `matrix` can be used in place: all parts dense, untransformed and adjacent.
    private func contiguousDense(_ matrix: StackedMatrix) -> UnsafePointer<Float>? {
        var expected: UnsafeMutablePointer<Float>?
        for p in matrix.params {
            guard policy.usesStoredValues(p), let f = storage[p] as? FP32Storage else { return nil }
            if let e = expected, e != f.pointer { return nil }
            expected = f.pointer + f.count
        }
        return UnsafePointer(densePointer(matrix.params[0]))
    }

    /// Calls `body(rowStart, rowCount, rows)` over blocks of the FP32 values of `matrix`.
    /// Dense matrices come in one block, in place; quantised ones are dequantised (dqt) or
    /// ternarised (bitnet) into `scratch`, at most `scratchCount / cols` rows at a time, so
    /// that no FP32 copy of a quantised tensor outlives the GEMM that uses it.
    public func forEachRowBlock(
        _ matrix: StackedMatrix, scratch: UnsafeMutablePointer<Float>, scratchCount: Int,
        _ body: (_ rowStart: Int, _ rowCount: Int, _ rows: UnsafePointer<Float>) throws -> Void
    ) rethrows {
        if let w = contiguousDense(matrix) {
            try body(0, matrix.rows, w)
            return
        }
        let cols = matrix.cols
        let blockRows = max(1, min(matrix.rows, scratchCount / cols))
        for r0 in stride(from: 0, to: matrix.rows, by: blockRows) {
            let n = min(blockRows, matrix.rows - r0)
            Threads.parallelFor(n, minChunk: max(1, 16_384 / cols)) { rows in
                self.materialize(
                    matrix, rows: (r0 + rows.lowerBound)..<(r0 + rows.upperBound),
                    into: scratch + rows.lowerBound * cols)
            }
            try body(r0, n, scratch)
        }
    }

    /// Writes FP32 rows `rows` of `matrix` to `out`.
    func materialize(_ matrix: StackedMatrix, rows: Range<Int>, into out: UnsafeMutablePointer<Float>) {
        var base = 0
        for p in matrix.params {
            let spec = layout.specs[p]
            let lo = max(rows.lowerBound, base), hi = min(rows.upperBound, base + spec.rows)
            if lo < hi {
                let dst = out + (lo - rows.lowerBound) * spec.cols
                let start = (lo - base) * spec.cols, n = (hi - lo) * spec.cols
                writeValues(of: p, from: start, count: n, into: dst)
            }
            base += spec.rows
        }
    }

    /// FP32 values of elements [start, start+n) of tensor `p`, as the forward pass sees them.
    @inline(__always)
    public func writeValues(of p: Int, from start: Int, count n: Int, into out: UnsafeMutablePointer<Float>) {
        policy.forwardValues(self, of: p, from: start, count: n, into: out)
    }

    /// Tensor `p`'s forward values without a copy when the policy uses them as stored in FP32.
    public func valuesInPlace(_ p: Int) -> UnsafePointer<Float>? {
        guard policy.usesStoredValues(p), let f = storage[p] as? FP32Storage else { return nil }
        return UnsafePointer(f.pointer)
    }
}
