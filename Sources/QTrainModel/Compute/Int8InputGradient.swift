import QKernels
import QTrainCore
import QTrainWeights

/// The input gradient of a quantised layer in integers (`quant.compute: int8-int8` and
/// `int8-int8bf16`; as SwitchBack, Wortsman et al. 2023, does for its backward):
///
///     dX = dY · W = Σ_parts  diag(s_part) · (dY_q,part · q_part) · step_part
///
/// where dY_q,part = round(dY[:, part] / s_part) row by row, s_part = absmax / 127 of the row
/// over the part's columns, stochastically unless `quant.backward_rounding: nearest`. Products
/// are exact in int32 (oneDNN's int8 GEMM), summed over a part's blocks in int32 and rescaled
/// once. The rounding of dY is the only error: element (r, k) is off by at most
/// s_r · Σ_n |W[n, k]| (half that to nearest), and stochastic rounding makes it unbiased.
/// Draws are keyed by the layer's seed and the element (r · N + c), so a resumed run repeats them.
package final class Int8InputGradient {
    let rounding: BackwardRounding
    let maxRows: Int
    let maxInner: Int
    let blockRows: Int
    private let sums: AlignedBuffer<Int32>  // (maxRows, maxInner)
    private let steps: AlignedBuffer<Float>  // (maxRows): s of each row over the current part
    private let inverse: AlignedBuffer<Float>  // (maxRows): 1 / s, 0 for a zero row
    private let gradient: UnsafeMutablePointer<Int8>  // (maxRows, blockRows), lent by the forward's buffer
    private var profile: OpProfile { Int8Matmul.profile }
    /// Rows of a part whose int32 sums cannot overflow: 127 · 128 · rows < 2³¹.
    static let rowsPerSum = 132_000

    /// Bytes of scratch for products of `maxRows` rows and inner dimension `maxInner`.
    static func scratchBytes(maxRows: Double, maxInner: Double) -> Double { 4 * maxRows * maxInner + 8 * maxRows }

    /// - Parameter gradient: room for maxRows × blockRows int8 values, not used by anyone else
    ///   during a backward call.
    init(
        rounding: BackwardRounding, maxRows: Int, maxInner: Int, blockRows: Int, gradient: UnsafeMutablePointer<Int8>,
        ledger: MemoryLedger?
    ) {
        self.rounding = rounding
        self.maxRows = maxRows
        self.maxInner = maxInner
        self.blockRows = blockRows
        self.gradient = gradient
        sums = AlignedBuffer(count: maxRows * maxInner, category: .scratch, ledger: ledger)
        steps = AlignedBuffer(count: maxRows, category: .scratch, ledger: ledger)
        inverse = AlignedBuffer(count: maxRows, category: .scratch, ledger: ledger)
    }

    /// dX (M × K) (+)= dY · W, `codeSteps` the forward code step of each stacked part;
    /// rounding draws from `seed`.
    func inputGradient(
        dInput: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>, rows M: Int, weights: LinearWeights,
        codeSteps: [Float], accumulate: Bool, seed: UInt64, unpacker: Int8Matmul
    ) {
        let w = weights.weights, N = weights.rows, K = weights.cols
        let stochastic: Int32 = rounding == .stochastic ? 1 : 0
        let s = steps.pointer, inv = inverse.pointer, g = gradient, acc = sums.pointer
        var written = accumulate
        for (i, part) in weights.parts.enumerated() {
            let p = weights.matrix.params[i], c0 = part.rows.lowerBound, width = part.rows.count
            profile.time("linear backward › round dY") {
                Threads.parallelFor(M, minChunk: 16) { r in
                    qk_rows_absmax(
                        s + r.lowerBound, dOut + r.lowerBound * N + c0, Int64(N), Int64(r.count), Int64(width))
                    for j in r {
                        let a = s[j]
                        // A non-finite row keeps a non-finite step, so dX shows it (NaN) instead of zeros.
                        inv[j] = a > 0 && a.isFinite ? 127 / a : 0
                        s[j] = a / 127
                    }
                }
            }
            var pending = 0
            let flush = {
                let into = written
                self.profile.time("linear backward › rescale") {
                    Threads.parallelFor(M, minChunk: 16) { r in
                        qk_rescale_i32(
                            dInput + r.lowerBound * K, Int64(K), acc + r.lowerBound * K, Int64(K), Int64(r.count),
                            Int64(K), s + r.lowerBound, codeSteps[i], into ? 1 : 0)
                    }
                }
                written = true
            }
            for r0 in stride(from: 0, to: width, by: blockRows) {
                let n = min(blockRows, width - r0), o0 = c0 + r0
                if pending + n > Self.rowsPerSum {
                    flush()
                    pending = 0
                }
                profile.time("linear backward › unpack codes") {
                    unpacker.unpackCodes(of: p, rows: r0..<(r0 + n), cols: K, weights: w)
                }
                profile.time("linear backward › round dY") {
                    Threads.parallelFor(M, minChunk: 16) { r in
                        qk_round_i8(
                            g + r.lowerBound * n, Int64(n), dOut + r.lowerBound * N + o0, Int64(N), Int64(r.count),
                            Int64(n), inv + r.lowerBound, seed, UInt64(r.lowerBound * N + o0), Int64(N), stochastic)
                    }
                }
                let status = profile.time("linear backward › int8 GEMM (dX)") {
                    qk_int8_gemm_nn(
                        Int64(M), Int64(K), Int64(n), g, Int64(n), unpacker.codes.pointer, Int64(K), acc, Int64(K),
                        pending > 0 ? 1 : 0)
                }
                // Checked in every build, also one made with QTRAIN_UNCHECKED=1 (-Ounchecked drops preconditions).
                if status != 0 { fatalError("oneDNN's int8 GEMM failed with status \(status)") }
                pending += n
            }
            flush()
        }
    }
}
