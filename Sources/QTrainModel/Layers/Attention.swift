import Foundation
import QKernels
import QTrainCore

/// Causal multi-head self-attention over a packed qkv buffer (N = B·T rows of [q | k | v],
/// each C wide, heads of size d = C/H side by side). Every product is a GEMM per (batch, head)
/// on strided views, so no transposed copies are made.
///
/// Queries go in blocks of `blockRows` rows (64), and a block multiplies only the keys at or
/// before its last row: the causal mask's upper triangle is never computed (about 40% less
/// work at T = 256). The (batch, head) pairs are shared among the threads, each running
/// single-threaded GEMMs: these products are too small for OpenBLAS's own threading to pay off.
enum Attention {
    /// out (B·T, C) = softmax(q kᵀ / √d, causal) v per head; probs (B, H, T, T) keeps the
    /// attention weights for the backward pass (zero above the diagonal).
    static func forward(
        out: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>,
        qkv: UnsafePointer<Float>, B: Int, T: Int, C: Int, H: Int, blockRows: Int = 64
    ) {
        OpProfile.shared.time("attention forward") {
            let d = C / H, ld = 3 * C
            let scale = Float(1 / Double(d).squareRoot())
            Threads.withSingleThreadedBLAS {
                Threads.parallelFor(B * H) { pairs in
                    for pair in pairs {
                        let b = pair / H, h = pair % H
                        let q = qkv + b * T * ld + h * d, k = q + C, v = q + 2 * C
                        let p = probs + (b * H + h) * T * T, o = out + b * T * C + h * d
                        for r0 in stride(from: 0, to: T, by: blockRows) {
                            let rows = min(blockRows, T - r0), keys = r0 + rows
                            // S = q kᵀ over the keys this block can see (the scale is applied in the softmax)
                            Gemm.multiply(transB: true, m: rows, n: keys, k: d, a: q + r0 * ld, lda: ld, b: k, ldb: ld,
                                          c: p + r0 * T, ldc: T)
                            qk_causal_softmax_rows(p, Int64(T), Int64(r0), Int64(keys), scale)
                            // O = P v
                            Gemm.multiply(m: rows, n: d, k: keys, a: p + r0 * T, lda: T, b: v, ldb: ld, c: o + r0 * C, ldc: C)
                        }
                    }
                }
            }
        }
    }

    /// dqkv (B·T, 3C) = gradients of q, k, v (overwritten) from dOut (B·T, C).
    /// `dScores` is T × T scratch for each of `slots` threads.
    static func backward(
        dqkv: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>, qkv: UnsafePointer<Float>,
        probs: UnsafePointer<Float>, B: Int, T: Int, C: Int, H: Int, dScores: UnsafeMutablePointer<Float>, slots: Int = 1,
        blockRows: Int = 64
    ) {
        OpProfile.shared.time("attention backward") {
            let d = C / H, ld = 3 * C
            let scale = Float(1 / Double(d).squareRoot())
            Threads.withSingleThreadedBLAS {
                Threads.parallelChunks(B * H, maxParts: slots) { thread, pairs in
                    let dS = dScores + thread * T * T
                    for pair in pairs {
                        let b = pair / H, h = pair % H
                        let q = qkv + b * T * ld + h * d, k = q + C, v = q + 2 * C
                        let dq = dqkv + b * T * ld + h * d, dk = dq + C, dv = dq + 2 * C
                        let p = probs + (b * H + h) * T * T
                        let dO = dOut + b * T * C + h * d
                        // dk and dv sum over the query blocks.
                        for t in 0..<T {
                            (dk + t * ld).initialize(repeating: 0, count: d)
                            (dv + t * ld).initialize(repeating: 0, count: d)
                        }
                        for r0 in stride(from: 0, to: T, by: blockRows) {
                            let rows = min(blockRows, T - r0), keys = r0 + rows
                            // O = P v:  dv += Pᵀ dO,  dP = dO vᵀ
                            Gemm.multiply(transA: true, m: keys, n: d, k: rows, a: p + r0 * T, lda: T, b: dO + r0 * C, ldb: C,
                                          beta: 1, c: dv, ldc: ld)
                            Gemm.multiply(transB: true, m: rows, n: keys, k: d, a: dO + r0 * C, lda: C, b: v, ldb: ld,
                                          c: dS + r0 * T, ldc: T)
                            // P = softmax(scale · S):  dS = scale · P ∘ (dP − rowsum(P ∘ dP))
                            qk_causal_softmax_bwd_rows(dS, p, Int64(T), Int64(r0), Int64(keys), scale)
                            // S = q kᵀ:  dq = dS k,  dk += dSᵀ q
                            Gemm.multiply(m: rows, n: d, k: keys, a: dS + r0 * T, lda: T, b: k, ldb: ld, c: dq + r0 * ld, ldc: ld)
                            Gemm.multiply(transA: true, m: keys, n: d, k: rows, a: dS + r0 * T, lda: T, b: q + r0 * ld, ldb: ld,
                                          beta: 1, c: dk, ldc: ld)
                        }
                    }
                }
            }
        }
    }
}
