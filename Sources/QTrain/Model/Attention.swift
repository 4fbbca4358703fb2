import Foundation
import QKernels

/// Causal multi-head self-attention over a packed qkv buffer (N = B·T rows of [q | k | v],
/// each C wide, heads of size d = C/H side by side). Every product is a GEMM per (batch, head)
/// on strided views, so no transposed copies are made.
enum Attention {
    /// out (B·T, C) = softmax(q kᵀ / √d, causal) v per head; probs (B, H, T, T) keeps the
    /// attention weights for the backward pass (zero above the diagonal).
    static func forward(
        out: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>,
        qkv: UnsafePointer<Float>, B: Int, T: Int, C: Int, H: Int
    ) {
        let d = C / H, ld = 3 * C
        let scale = Float(1 / Double(d).squareRoot())
        for b in 0..<B {
            for h in 0..<H {
                let q = qkv + b * T * ld + h * d, k = q + C, v = q + 2 * C
                let p = probs + (b * H + h) * T * T
                // S = q kᵀ (the scale is applied inside the softmax)
                Gemm.multiply(transB: true, m: T, n: T, k: d, a: q, lda: ld, b: k, ldb: ld, c: p, ldc: T)
                qk_causal_softmax_rows(p, Int64(T), 0, Int64(T), scale)
                // O = P v
                Gemm.multiply(m: T, n: d, k: T, a: p, lda: T, b: v, ldb: ld, c: out + b * T * C + h * d, ldc: C)
            }
        }
    }

    /// dqkv (B·T, 3C) = gradients of q, k, v (overwritten) from dOut (B·T, C).
    /// `dScores` is T × T scratch.
    static func backward(
        dqkv: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>, qkv: UnsafePointer<Float>,
        probs: UnsafePointer<Float>, B: Int, T: Int, C: Int, H: Int, dScores: UnsafeMutablePointer<Float>
    ) {
        let d = C / H, ld = 3 * C
        let scale = Float(1 / Double(d).squareRoot())
        for b in 0..<B {
            for h in 0..<H {
                let q = qkv + b * T * ld + h * d, k = q + C, v = q + 2 * C
                let dq = dqkv + b * T * ld + h * d, dk = dq + C, dv = dq + 2 * C
                let p = probs + (b * H + h) * T * T
                let dO = dOut + b * T * C + h * d
                // O = P v:  dv = Pᵀ dO,  dP = dO vᵀ
                Gemm.multiply(transA: true, m: T, n: d, k: T, a: p, lda: T, b: dO, ldb: C, c: dv, ldc: ld)
                Gemm.multiply(transB: true, m: T, n: T, k: d, a: dO, lda: C, b: v, ldb: ld, c: dScores, ldc: T)
                // P = softmax(scale · S):  dS = scale · P ∘ (dP − rowsum(P ∘ dP))
                qk_causal_softmax_bwd_rows(dScores, p, Int64(T), 0, Int64(T), scale)
                // S = q kᵀ:  dq = dS k,  dk = dSᵀ q
                Gemm.multiply(m: T, n: d, k: T, a: dScores, lda: T, b: k, ldb: ld, c: dq, ldc: ld)
                Gemm.multiply(transA: true, m: T, n: d, k: T, a: dScores, lda: T, b: q, ldb: ld, c: dk, ldc: ld)
            }
        }
    }
}
