import QKernels
import QTrainCore
import QTrainWeights

/// `quant.compute: int8` and `int8-bf16`: the forward product of every quantised linear layer
/// in integers — int8 activation codes × the weights' integer codes → int32 (oneDNN's GEMM,
/// AVX-512 VNNI), then one multiply by the row's activation step and the tensor's weight step.
/// The product is exact; only the final rescale rounds. The backward pass is FP32
/// (``FP32Matmul``) under `int8`, BF16 under `int8-bf16` (``BF16Backward``); layers whose input
/// or weights are not codes run in FP32 both ways.
///
/// Weight codes reach the GEMMs as unpacked rows, a block at a time, in scratch: no
/// persistent copy of a tensor exists beside its packed codes.
public final class Int8Matmul: MatmulBackend {
    public var name: String {
        "int8 forward (" + String(cString: qk_int8_gemm_status()) + "), "
            + (bf16 != nil
                ? "bf16 backward (" + String(cString: qk_bf16_matmul_status()) + ")" : "fp32 backward (OpenBLAS)")
    }
    /// Weight codes in blocks of ``blockRows`` rows, activation codes, int8 forward; BF16
    /// backward when `bf16`, else FP32.
    public static func needs(bf16: Bool) -> BackendNeeds {
        BackendNeeds(
            weightBlockRows: blockRows, gradientRows: blockRows, activationCodes: true, forward: .int8,
            backward: bf16 ? .bf16 : .fp32,
            scratchBytes: { scratchBytes(maxRows: $0, maxInner: $1, bf16: bf16) })
    }
    public var needs: BackendNeeds { Self.needs(bf16: bf16 != nil) }
    let fp32 = FP32Matmul<Gemm>(name: "fp32 (OpenBLAS)")
    /// Weight rows per GEMM (a multiple of 40, so every block starts on a packing group).
    let blockRows: Int
    public static let blockRows = 1040
    let codes: AlignedBuffer<Int8>  // (blockRows, K) weight codes
    private let products: AlignedBuffer<Int32>  // (maxRows, blockRows)
    let maxRows: Int
    /// The BF16 backward pass (`int8-bf16`), or nil for FP32.
    package let bf16: BF16Backward?

    /// - Parameters: maxRows: the most rows (tokens) of one product; maxInner: the largest K;
    ///   backward: how to round the incoming gradient for a BF16 backward pass, nil for FP32.
    public init(maxRows: Int, maxInner: Int, backward: BackwardRounding? = nil, ledger: MemoryLedger?) {
        self.maxRows = maxRows
        let blockRows = Self.blockRows
        self.blockRows = blockRows
        qk_int8_gemm_set_threads(Int32(Threads.count))
        codes = AlignedBuffer(count: blockRows * maxInner, category: .scratch, ledger: ledger)
        let products = AlignedBuffer<Int32>(count: maxRows * blockRows, category: .scratch, ledger: ledger)
        self.products = products
        bf16 = backward.map {
            // The rounded gradient block lives in the forward's product buffer (twice its size).
            let gradient = UnsafeMutableRawPointer(products.pointer).bindMemory(
                to: UInt16.self, capacity: 2 * maxRows * blockRows)
            return BF16Backward(
                rounding: $0, maxRows: maxRows, maxInner: maxInner, blockRows: blockRows, gradient: gradient,
                ledger: ledger)
        }
    }

    public func beginBackward(seed: UInt64) { bf16?.begin(seed: seed) }

    /// Bytes of scratch the path allocates for products of `maxRows` rows and inner dimension
    /// `maxInner` (Float64, for plans of sizes that would overflow Int).
    static func scratchBytes(maxRows: Double, maxInner: Double, bf16: Bool) -> Double {
        let b = Double(blockRows)
        let forward = b * maxInner + 4 * maxRows * b
        return forward + (bf16 ? 2 * b * maxInner + 2 * maxRows * maxInner + 4 * maxRows : 0)
    }

    public func forward(
        out: UnsafeMutablePointer<Float>, input: LinearInput, rows M: Int, weights: LinearWeights,
        accumulate: Bool
    ) {
        let policy = weights.weights.policy, w = weights.weights
        let steps = weights.matrix.params.map { policy.forwardCodeStep(w, of: $0) }
        guard let a = input.codes, let rowSteps = input.rowScales, M <= maxRows,
            weights.cols * blockRows <= codes.count,
            steps.allSatisfy({ $0 != nil })
        else { return fp32.forward(out: out, input: input, rows: M, weights: weights, accumulate: accumulate) }
        let N = weights.rows, K = weights.cols
        for (i, part) in weights.parts.enumerated() {
            let p = weights.matrix.params[i], step = steps[i]!
            let rows = part.rows.count
            for r0 in stride(from: 0, to: rows, by: blockRows) {
                let n = min(blockRows, rows - r0)
                unpackCodes(of: p, rows: r0..<(r0 + n), cols: K, weights: w)
                let status = qk_int8_gemm_nt(
                    Int64(M), Int64(n), Int64(K), a, Int64(K), codes.pointer, Int64(K),
                    products.pointer, Int64(n))
                // Checked in every build, also one made with QTRAIN_UNCHECKED=1 (-Ounchecked drops preconditions).
                if status != 0 { fatalError("oneDNN's int8 GEMM failed with status \(status)") }
                let dst = out + part.rows.lowerBound + r0
                Threads.parallelFor(M, minChunk: 16) { r in
                    qk_rescale_i32(
                        dst + r.lowerBound * N, Int64(N), self.products.pointer + r.lowerBound * n, Int64(n),
                        Int64(r.count), Int64(n), rowSteps + r.lowerBound, step, accumulate ? 1 : 0)
                }
            }
        }
    }

    public func backward(
        dInput: UnsafeMutablePointer<Float>, dWeight: WeightGradient, dOut: UnsafePointer<Float>,
        input: LinearInput, rows M: Int, weights: LinearWeights, accumulate: Bool
    ) throws {
        if let bf16,
            try bf16.backward(
                dInput: dInput, dWeight: dWeight, dOut: dOut, input: input, rows: M, weights: weights,
                accumulate: accumulate, unpacker: self)
        {
            return
        }
        try fp32.backward(
            dInput: dInput, dWeight: dWeight, dOut: dOut, input: input, rows: M, weights: weights,
            accumulate: accumulate)
    }

    /// Unpacks the int8 codes of rows `rows` of tensor `p` (K columns) into ``codes``, in
    /// pieces of whole packing groups, one per thread (`rows` starts at a multiple of 40, so
    /// at a multiple of 40 codes), then hands each piece to `then` (its code range).
    func unpackCodes(
        of p: Int, rows: Range<Int>, cols K: Int, weights w: ModelWeights,
        then: ((Range<Int>) -> Void)? = nil
    ) {
        let total = rows.count * K, groups = (total + 39) / 40, policy = w.policy
        Threads.parallelFor(groups, minChunk: 256) { g in
            let lo = g.lowerBound * 40, hi = min(total, g.upperBound * 40)
            policy.forwardCodes(w, of: p, from: rows.lowerBound * K + lo, count: hi - lo, into: self.codes.pointer + lo)
            then?(lo..<hi)
        }
    }
}
