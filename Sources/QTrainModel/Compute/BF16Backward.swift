import QKernels
import QTrainCore
import QTrainWeights

/// The BF16 backward products of `quant.compute: int8-bf16` (and dW under `int8-int8bf16`) for
/// a layer whose input is on the int8 grid and whose weights are codes × one step per tensor:
///
///     dX = dY · W     = Σ_parts  bf16(dY[:, part] · s_part) · q_part
///     dW = dYᵀ · X    = bf16(diag(s_row) · dY)ᵀ · x_q
///
/// Both GEMMs take BF16 operands and accumulate in FP32 (oneDNN's matmul). Weight codes q and
/// input codes x_q are small integers, exact in BF16; the only rounding is of the incoming
/// gradient dY, once per product, stochastically unless `quant.backward_rounding: nearest`.
/// Each rounding is keyed by the seed ``Int8Matmul`` gives the layer and the element, so a
/// resumed run repeats it bit for bit.
///
/// Both go a block of `blockRows` output rows at a time: the scratch is one block of BF16
/// weight rows (for dX), one block of rounded gradient columns, and the input's codes (for dW).
package final class BF16Backward {
    let rounding: BackwardRounding
    let maxRows: Int
    let maxInner: Int
    let blockRows: Int
    private let weightRows: AlignedBuffer<UInt16>?  // (blockRows, K), when dX is BF16
    private let gradient: UnsafeMutablePointer<UInt16>  // (maxRows, blockRows), lent by the forward's buffer
    private let inputCodes: AlignedBuffer<UInt16>?  // (maxRows, K), when dW is BF16
    private let rowSteps: AlignedBuffer<Float>?  // (maxRows), when dW is BF16
    private var profile: OpProfile { Int8Matmul.profile }

    /// Bytes of scratch for products of `maxRows` rows and inner dimension `maxInner`.
    static func scratchBytes(
        maxRows: Double, maxInner: Double, blockRows: Double, inputGradient: Bool, weightGradient: Bool
    )
        -> Double
    {
        (inputGradient ? 2 * blockRows * maxInner : 0) + (weightGradient ? 2 * maxRows * maxInner + 4 * maxRows : 0)
    }

    /// - Parameters: gradient: room for maxRows × blockRows BF16 values, not used by anyone
    ///   else during a backward call; inputGradient, weightGradient: which products run in BF16.
    init(
        rounding: BackwardRounding, maxRows: Int, maxInner: Int, blockRows: Int, gradient: UnsafeMutablePointer<UInt16>,
        inputGradient: Bool, weightGradient: Bool, ledger: MemoryLedger?
    ) {
        self.rounding = rounding
        self.maxRows = maxRows
        self.maxInner = maxInner
        self.blockRows = blockRows
        weightRows =
            inputGradient ? AlignedBuffer(count: blockRows * maxInner, category: .scratch, ledger: ledger) : nil
        self.gradient = gradient
        inputCodes = weightGradient ? AlignedBuffer(count: maxRows * maxInner, category: .scratch, ledger: ledger) : nil
        rowSteps = weightGradient ? AlignedBuffer(count: maxRows, category: .scratch, ledger: ledger) : nil
    }

    /// dX (M × K) (+)= Σ over blocks of bf16(dY[:, block] · step) · q[block], `steps` the forward
    /// code step of each stacked part; rounding draws from `seed`.
    func inputGradient(
        dInput: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>, rows M: Int, weights: LinearWeights,
        steps: [Float], accumulate: Bool, seed: UInt64, unpacker: Int8Matmul
    ) {
        let w = weights.weights, N = weights.rows, K = weights.cols
        let stochastic: Int32 = rounding == .stochastic ? 1 : 0
        let wq = weightRows!.pointer, g = gradient, codes = unpacker.codes.pointer
        var first = true
        for (i, part) in weights.parts.enumerated() {
            let p = weights.matrix.params[i], step = steps[i]
            for r0 in stride(from: 0, to: part.rows.count, by: blockRows) {
                let n = min(blockRows, part.rows.count - r0), o0 = part.rows.lowerBound + r0
                profile.time("linear backward › unpack codes") {
                    unpacker.unpackCodes(of: p, rows: r0..<(r0 + n), cols: K, weights: w) { range in
                        qk_i8_to_bf16(wq + range.lowerBound, codes + range.lowerBound, Int64(range.count))
                    }
                }
                round(
                    dOut, columns: o0..<(o0 + n), of: N, rows: M, rowSteps: nil, scale: step, seed: seed,
                    stochastic: stochastic)
                let into: Int32 = (first && !accumulate) ? 0 : 1
                profile.time("linear backward › bf16 GEMM (dX)") {
                    check(
                        qk_bf16_matmul(
                            Int64(M), Int64(K), Int64(n), g, Int64(n), 1, wq, Int64(K), 1, dInput, Int64(K), into))
                }
                first = false
            }
        }
    }

    /// dW (N × K) += bf16(diag(s_row) · dY)ᵀ · x_q a block of rows at a time, each finished once
    /// final; rounding draws from `seed`.
    func weightGradient(
        dWeight: WeightGradient, dOut: UnsafePointer<Float>, input: LinearInput, rows M: Int, weights: LinearWeights,
        seed: UInt64
    ) throws {
        let N = weights.rows, K = weights.cols
        let stochastic: Int32 = rounding == .stochastic ? 1 : 0
        let x = input.values, xq = inputCodes!.pointer, sRow = rowSteps!.pointer, g = gradient
        profile.time("linear backward › input codes") {
            Threads.parallelFor(M, minChunk: 16) { r in
                qk_act_codes_bf16(
                    x + r.lowerBound * K, Int64(K), Int64(r.count), Int64(K), xq + r.lowerBound * K, Int64(K),
                    sRow + r.lowerBound)
            }
        }
        for part in weights.parts {
            for r0 in stride(from: 0, to: part.rows.count, by: blockRows) {
                let n = min(blockRows, part.rows.count - r0), o0 = part.rows.lowerBound + r0
                round(
                    dOut, columns: o0..<(o0 + n), of: N, rows: M, rowSteps: sRow, scale: 1, seed: seed,
                    stochastic: stochastic)
                let rows = o0..<(o0 + n)
                profile.time("linear backward › bf16 GEMM (dW)") {
                    check(
                        qk_bf16_matmul(
                            Int64(n), Int64(K), Int64(M), g, 1, Int64(n), xq, Int64(K), 1, dWeight.rows(rows),
                            Int64(K), 1))
                }
                try profile.time("linear backward › commit dW rows") { try dWeight.finish(rows) }
            }
        }
    }

    /// Rounds columns `columns` of dY (rows × N) times the row steps and `scale` into the
    /// gradient scratch (rows × columns.count); element (r, c) draws from counter r·N + c.
    private func round(
        _ dOut: UnsafePointer<Float>, columns: Range<Int>, of N: Int, rows M: Int,
        rowSteps: UnsafePointer<Float>?, scale: Float, seed: UInt64, stochastic: Int32
    ) {
        let n = columns.count, c0 = columns.lowerBound, g = gradient
        profile.time("linear backward › round dY") {
            Threads.parallelFor(M, minChunk: 16) { r in
                qk_round_bf16(
                    g + r.lowerBound * n, Int64(n), dOut + r.lowerBound * N + c0, Int64(N), Int64(r.count), Int64(n),
                    rowSteps.map { $0 + r.lowerBound }, scale, seed, UInt64(r.lowerBound * N + c0), Int64(N),
                    stochastic)
            }
        }
    }

    private func check(_ status: Int32) {
        // Checked in every build, also one made with QTRAIN_UNCHECKED=1 (-Ounchecked drops preconditions).
        if status != 0 { fatalError("oneDNN's BF16 matmul failed with status \(status)") }
    }
}
