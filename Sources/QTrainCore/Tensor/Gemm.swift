import CBLAS

/// An FP32 matrix product with BLAS's row-major contract, `c (m×n) = alpha · op(a) · op(b) +
/// beta · c`: what ``FP32Matmul`` is generic over.
public protocol GemmKernel {
    static func multiply(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int)
}

/// Row-major matrix products through OpenBLAS.
///
/// `c (m×n) = alpha · op(a) · op(b) + beta · c`, where op transposes when asked; `lda`, `ldb`,
/// `ldc` are row strides of the matrices as stored.
public enum Gemm: GemmKernel {
    @inline(__always)
    public static func multiply(
        transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
        alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        if m == 0 || n == 0 { return }
        cblas_sgemm(
            CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

}
