import QKernels
import QTrainCore
import QTrainWeights

/// The backward pass of `quant.compute: int8-bf16` for a layer whose input is on the int8
/// grid and whose weights are codes × one step per tensor:
///
///     dX = dY · W     = Σ_parts  bf16(dY[:, part] · s_part) · q_part
///     dW = dYᵀ · X    = bf16(diag(s_row) · dY)ᵀ · x_q
///
/// Both GEMMs take BF16 operands and accumulate in FP32 (oneDNN's matmul). Weight codes q and
/// input codes x_q are small integers, exact in BF16; the only rounding is of the incoming
/// gradient dY, once per product, stochastically unless `quant.backward_rounding: nearest`.
/// Each rounding is keyed by the step's seed (``begin(seed:)``), the layer's place in the
/// backward order and the element, so a resumed run repeats it bit for bit.
///
/// The weight side goes a block of `blockRows` output rows at a time: the scratch is one
/// block of BF16 weight rows, one block of rounded gradient columns, and the input's codes.
package final class BF16Backward {
    let rounding: BackwardRounding
    let maxRows: Int
    let maxInner: Int
    let blockRows: Int
    private let weightRows: AlignedBuffer<UInt16>  // (blockRows, K)
    private let gradient: UnsafeMutablePointer<UInt16>  // (maxRows, blockRows), lent by the forward's buffer
    private let inputCodes: AlignedBuffer<UInt16>  // (maxRows, K)
    private let rowSteps: AlignedBuffer<Float>  // (maxRows)
    private var seed: UInt64 = 0
    private var call: UInt64 = 0

    /// - Parameter gradient: room for maxRows × blockRows BF16 values, not used by anyone
    ///   else during a backward call.
    init(
        rounding: BackwardRounding, maxRows: Int, maxInner: Int, blockRows: Int, gradient: UnsafeMutablePointer<UInt16>,
        ledger: MemoryLedger?
    ) {
        self.rounding = rounding
        self.maxRows = maxRows
        self.maxInner = maxInner
        self.blockRows = blockRows
        weightRows = AlignedBuffer(count: blockRows * maxInner, category: .scratch, ledger: ledger)
        self.gradient = gradient
        inputCodes = AlignedBuffer(count: maxRows * maxInner, category: .scratch, ledger: ledger)
        rowSteps = AlignedBuffer(count: maxRows, category: .scratch, ledger: ledger)
    }

    /// Starts a backward pass: its roundings draw from `seed`, layer by layer in call order.
    func begin(seed: UInt64) {
        self.seed = seed
        call = 0
    }

    /// Computes the layer's gradients and returns true, or returns false (changing nothing)
    /// when the layer is not one this path covers.
    func backward(
        dInput: UnsafeMutablePointer<Float>, dWeight: WeightGradient, dOut: UnsafePointer<Float>,
        input: LinearInput, rows M: Int, weights: LinearWeights, accumulate: Bool, unpacker: Int8Matmul
    ) throws -> Bool {
        let w = weights.weights, policy = w.policy
        let N = weights.rows, K = weights.cols
        let steps = weights.matrix.params.map { policy.forwardCodeStep(w, of: $0) }
        guard input.onCodeGrid, M <= maxRows, K <= maxInner, dWeight.maxRows >= blockRows || dWeight.maxRows >= N,
            steps.allSatisfy({ $0 != nil })
        else { return false }
        // Consecutive seeds of a SplitMix64 sequence (the kernel finishes the mix): one per layer.
        let layerSeed = seed &+ call &* 0x9E37_79B9_7F4A_7C15
        call += 1
        let stochastic: Int32 = rounding == .stochastic ? 1 : 0
        let x = input.values, xq = inputCodes.pointer, sRow = rowSteps.pointer, g = gradient
        Threads.parallelFor(M, minChunk: 16) { r in
            qk_act_codes_bf16(
                x + r.lowerBound * K, Int64(K), Int64(r.count), Int64(K), xq + r.lowerBound * K, Int64(K),
                sRow + r.lowerBound)
        }
        var first = true
        for (i, part) in weights.parts.enumerated() {
            let p = weights.matrix.params[i], step = steps[i]!
            for r0 in stride(from: 0, to: part.rows.count, by: blockRows) {
                let n = min(blockRows, part.rows.count - r0), o0 = part.rows.lowerBound + r0
                let wq = weightRows.pointer, codes = unpacker.codes.pointer
                unpacker.unpackCodes(of: p, rows: r0..<(r0 + n), cols: K, weights: w) { range in
                    qk_i8_to_bf16(wq + range.lowerBound, codes + range.lowerBound, Int64(range.count))
                }
                // dX (+)= bf16(dY[:, block] · step) · q[block]
                round(
                    dOut, columns: o0..<(o0 + n), of: N, rows: M, rowSteps: nil, scale: step,
                    seed: layerSeed, stochastic: stochastic)
                check(
                    qk_bf16_matmul(
                        Int64(M), Int64(K), Int64(n), g, Int64(n), 1, wq, Int64(K), 1, dInput, Int64(K),
                        (first && !accumulate) ? 0 : 1))
                first = false
                // dW[block] += bf16(diag(s_row) · dY[:, block])ᵀ · x_q
                round(
                    dOut, columns: o0..<(o0 + n), of: N, rows: M, rowSteps: sRow, scale: 1,
                    seed: ~layerSeed, stochastic: stochastic)
                let rows = o0..<(o0 + n)
                check(
                    qk_bf16_matmul(
                        Int64(n), Int64(K), Int64(M), g, 1, Int64(n), xq, Int64(K), 1, dWeight.rows(rows),
                        Int64(K), 1))
                try dWeight.finish(rows)
            }
        }
        return true
    }

    /// Rounds columns `columns` of dY (rows × N) times the row steps and `scale` into the
    /// gradient scratch (rows × columns.count); element (r, c) draws from counter r·N + c.
    private func round(
        _ dOut: UnsafePointer<Float>, columns: Range<Int>, of N: Int, rows M: Int,
        rowSteps: UnsafePointer<Float>?, scale: Float, seed: UInt64, stochastic: Int32
    ) {
        let n = columns.count, c0 = columns.lowerBound, g = gradient
        Threads.parallelFor(M, minChunk: 16) { r in
            qk_round_bf16(
                g + r.lowerBound * n, Int64(n), dOut + r.lowerBound * N + c0, Int64(N), Int64(r.count), Int64(n),
                rowSteps.map { $0 + r.lowerBound }, scale, seed, UInt64(r.lowerBound * N + c0), Int64(N),
                stochastic)
        }
    }

    private func check(_ status: Int32) {
        // Checked in every build, also one made with QTRAIN_UNCHECKED=1 (-Ounchecked drops preconditions).
        if status != 0 { fatalError("oneDNN's BF16 matmul failed with status \(status)") }
    }
}
