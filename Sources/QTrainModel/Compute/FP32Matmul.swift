import QTrainCore

/// A backend that computes every linear layer in FP32 with one GEMM kernel: OpenBLAS
/// (`quant.compute: fp32`, the default and the reference for speed) or the textbook loop
/// (`quant.compute: reference`, the reference for correctness). Quantised weights reach the
/// GEMM as FP32 rows, dequantised (or ternarised) block by block into scratch.
public final class FP32Matmul<Kernel: GemmKernel>: MatmulBackend {
    public let name: String
    /// Whole matrices in FP32, no scratch of its own; gradient rows in the int8 path's blocks, so
    /// that every path commits the same gradient windows.
    public static var needs: BackendNeeds {
        BackendNeeds(
            weightBlockRows: nil, gradientRows: Int8Matmul.blockRows, activationCodes: false, forward: .fp32,
            inputGradient: .fp32, weightGradient: .fp32, scratchBytes: { _, _ in 0 })
    }
    public var needs: BackendNeeds { Self.needs }

    public init(name: String) { self.name = name }

    public func forward(
        out: UnsafeMutablePointer<Float>, input: LinearInput, rows M: Int, weights: LinearWeights,
        accumulate: Bool
    ) {
        let N = weights.rows, K = weights.cols
        weights.forEachRowBlock { r0, n, w in
            Kernel.multiply(
                transA: false, transB: true, m: M, n: n, k: K, alpha: 1, a: input.values, lda: K, b: w, ldb: K,
                beta: accumulate ? 1 : 0, c: out + r0, ldc: N)
        }
    }

    public func backward(
        dInput: UnsafeMutablePointer<Float>, dWeight: WeightGradient, dOut: UnsafePointer<Float>,
        input: LinearInput, rows M: Int, weights: LinearWeights, accumulate: Bool
    ) throws {
        try weightGradient(dWeight: dWeight, dOut: dOut, input: input, rows: M, weights: weights)
        inputGradient(dInput: dInput, dOut: dOut, rows: M, weights: weights, accumulate: accumulate)
    }

    /// dWeight (N × K) += dOutᵀ · input, piece by piece.
    func weightGradient(
        dWeight: WeightGradient, dOut: UnsafePointer<Float>, input: LinearInput, rows M: Int, weights: LinearWeights
    ) throws {
        let N = weights.rows, K = weights.cols
        try dWeight.forEachPiece(rows: N) { r, dst in
            Kernel.multiply(
                transA: true, transB: false, m: r.count, n: K, k: M, alpha: 1, a: dOut + r.lowerBound, lda: N,
                b: input.values, ldb: K, beta: 1, c: dst, ldc: K)
        }
    }

    /// dInput (M × K) = dOut · W, or += when `accumulate`.
    func inputGradient(
        dInput: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>, rows M: Int, weights: LinearWeights,
        accumulate: Bool
    ) {
        let N = weights.rows, K = weights.cols
        var first = true
        weights.forEachRowBlock { r0, n, w in
            Kernel.multiply(
                transA: false, transB: false, m: M, n: K, k: n, alpha: 1, a: dOut + r0, lda: N, b: w, ldb: K,
                beta: (first && !accumulate) ? 0 : 1, c: dInput, ldc: K)
            first = false
        }
    }
}
