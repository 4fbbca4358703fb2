import QKernels

/// `quant.compute: int8`: the forward product of every quantised linear layer in integers —
/// int8 activation codes × the weights' integer codes → int32 (oneDNN's GEMM, AVX-512 VNNI),
/// then one multiply by the row's activation step and the tensor's weight step. The product is
/// exact; only the final rescale rounds. The backward pass stays FP32 (``FP32Matmul``), as do
/// layers whose input or weights are not codes.
///
/// Weight codes reach the GEMM as unpacked int8 rows, a block at a time, in scratch: no
/// persistent copy of a tensor exists beside its packed codes.
public final class Int8Matmul: MatmulBackend {
    public var name: String { "int8 forward (" + String(cString: qk_int8_gemm_status()) + "), fp32 backward (OpenBLAS)" }
    public var wantsActivationCodes: Bool { true }
    let fp32 = FP32Matmul<Gemm>(name: "fp32 (OpenBLAS)")
    /// Weight rows per GEMM (a multiple of 40, so every block starts on a packing group).
    let blockRows: Int
    private let codes: AlignedBuffer<Int8>  // (blockRows, K) weight codes
    private let products: AlignedBuffer<Int32>  // (maxRows, blockRows)
    private let maxRows: Int

    /// Whether this machine can run the path; when not, ``unavailableReason`` says why.
    public static var isAvailable: Bool { qk_int8_gemm_available() != 0 }
    public static var unavailableReason: String? { isAvailable ? nil : String(cString: qk_int8_gemm_status()) }

    /// - Parameters: maxRows: the most rows (tokens) of one product; maxInner: the largest K.
    public init(maxRows: Int, maxInner: Int, ledger: MemoryLedger?) {
        self.maxRows = maxRows
        blockRows = 1040
        qk_int8_gemm_set_threads(Int32(Threads.count))
        codes = AlignedBuffer(count: blockRows * maxInner, category: .scratch, ledger: ledger)
        products = AlignedBuffer(count: maxRows * blockRows, category: .scratch, ledger: ledger)
    }

    public func forward(out: UnsafeMutablePointer<Float>, input: LinearInput, rows M: Int, weights: LinearWeights,
                        accumulate: Bool) {
        let policy = weights.weights.policy, w = weights.weights
        let steps = weights.matrix.params.map { policy.forwardCodeStep(w, of: $0) }
        guard let a = input.codes, let rowSteps = input.rowScales, M <= maxRows, weights.cols * blockRows <= codes.count,
              steps.allSatisfy({ $0 != nil })
        else { return fp32.forward(out: out, input: input, rows: M, weights: weights, accumulate: accumulate) }
        let N = weights.rows, K = weights.cols
        for (i, part) in weights.parts.enumerated() {
            let p = weights.matrix.params[i], step = steps[i]!
            let rows = part.rows.count
            for r0 in stride(from: 0, to: rows, by: blockRows) {
                let n = min(blockRows, rows - r0)
                // Unpack in pieces of whole packing groups, one per thread (blocks start at a
                // multiple of 40 rows, so at a multiple of 40 codes).
                let total = n * K, groups = (total + 39) / 40
                Threads.parallelFor(groups, minChunk: 256) { g in
                    let lo = g.lowerBound * 40, hi = min(total, g.upperBound * 40)
                    policy.forwardCodes(w, of: p, from: r0 * K + lo, count: hi - lo, into: self.codes.pointer + lo)
                }
                let status = qk_int8_gemm_nt(Int64(M), Int64(n), Int64(K), a, Int64(K), codes.pointer, Int64(K),
                                             products.pointer, Int64(n))
                // Checked in every build (this module compiles with -Ounchecked, which drops preconditions).
                if status != 0 { fatalError("oneDNN's int8 GEMM failed with status \(status)") }
                let dst = out + part.rows.lowerBound + r0
                Threads.parallelFor(M, minChunk: 16) { r in
                    qk_rescale_i32(dst + r.lowerBound * N, Int64(N), self.products.pointer + r.lowerBound * n, Int64(n),
                                   Int64(r.count), Int64(n), rowSteps + r.lowerBound, step, accumulate ? 1 : 0)
                }
            }
        }
    }

    public func backward(dInput: UnsafeMutablePointer<Float>, dWeight: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>,
                         input: LinearInput, rows M: Int, weights: LinearWeights, accumulate: Bool) {
        fp32.backward(dInput: dInput, dWeight: dWeight, dOut: dOut, input: input, rows: M, weights: weights, accumulate: accumulate)
    }
}
