/// The textbook triple loop with the same contract as ``Gemm/multiply(transA:transB:m:n:k:alpha:a:lda:b:ldb:beta:c:ldc:)-(_,_,_,_,_,Float,_,_,_,_,_,_,_)``.
/// Kept beside the OpenBLAS path as its test reference; accumulates in Double.
public enum ReferenceGemm: GemmKernel {
    public static func multiply(
        transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
        alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        for i in 0..<m {
            for j in 0..<n {
                var s = 0.0
                for p in 0..<k {
                    let av = transA ? a[p * lda + i] : a[i * lda + p]
                    let bv = transB ? b[j * ldb + p] : b[p * ldb + j]
                    s += Double(av) * Double(bv)
                }
                let old = beta == 0 ? 0 : Double(beta) * Double(c[i * ldc + j])
                c[i * ldc + j] = Float(Double(alpha) * s + old)
            }
        }
    }
}
