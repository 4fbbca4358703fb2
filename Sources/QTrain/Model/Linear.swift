import QKernels

/// A bias-free linear layer y = x · Wᵀ over a stacked weight matrix (N × K).
///
/// In bitnet and dqt the input has already been quantised per token in place by the caller
/// (``ActivationQuantizer``); the straight-through estimator passes dx unchanged.
enum Linear {
    /// out (M, N) = input (M, K) · Wᵀ, or out += … when `accumulate` (a residual add).
    static func forward(
        out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, rows M: Int,
        matrix: StackedMatrix, weights: ModelWeights, scratch: Scratch, accumulate: Bool = false
    ) {
        OpProfile.shared.time("linear forward") {
            let N = matrix.rows, K = matrix.cols
            weights.forEachRowBlock(matrix, scratch: scratch.weights.pointer, scratchCount: scratch.weights.count) {
                r0, n, w in
                Gemm.multiply(transB: true, m: M, n: n, k: K, a: input, lda: K, b: w, ldb: K,
                              beta: accumulate ? 1 : 0, c: out + r0, ldc: N)
            }
        }
    }

    /// dWeight (N, K) += dOutᵀ · input, into the gradients of the stacked tensors (adjacent in
    /// the layout); dInput (M, K) = dOut · W, or += when `accumulate`.
    static func backward(
        dInput: UnsafeMutablePointer<Float>, gradients: UnsafeMutablePointer<Float>,
        dOut: UnsafePointer<Float>, input: UnsafePointer<Float>, rows M: Int,
        matrix: StackedMatrix, weights: ModelWeights, scratch: Scratch, accumulate: Bool = false
    ) {
        OpProfile.shared.time("linear backward") {
            let N = matrix.rows, K = matrix.cols
            let dW = gradients + weights.layout.specs[matrix.params[0]].offset
            Gemm.multiply(transA: true, m: N, n: K, k: M, a: dOut, lda: N, b: input, ldb: K,
                          beta: 1, c: dW, ldc: K)
            var first = true
            weights.forEachRowBlock(matrix, scratch: scratch.weights.pointer, scratchCount: scratch.weights.count) {
                r0, n, w in
                Gemm.multiply(m: M, n: K, k: n, a: dOut + r0, lda: N, b: w, ldb: K,
                              beta: (first && !accumulate) ? 0 : 1, c: dInput, ldc: K)
                first = false
            }
        }
    }
}
