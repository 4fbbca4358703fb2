import Foundation
import QKernels
import QTrainCore

/// Causal multi-head self-attention over a packed qkv buffer (N = B·T rows of [q | k | v]:
/// H query heads then G key and G value heads, each d = C/H wide, W = C + 2·G·d in all). With
/// grouped-query attention (G < H) query head h reads key/value head h / (H/G). Every product
/// is a GEMM per (batch, head) on strided views, so no transposed copies are made.
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
        qkv: UnsafePointer<Float>, B: Int, T: Int, C: Int, H: Int, G: Int, blockRows: Int = 64
    ) {
        let K = G * (C / H), W = C + 2 * K
        forward(
            out: out, probs: probs, queries: qkv, keys: qkv + C, values: qkv + C + K, ld: W, keysLD: W,
            B: B, T: T, start: 0, C: C, H: H, G: G, blockRows: blockRows)
    }

    /// The same for `T` queries per sequence at positions `start ..< start + T` whose keys and
    /// values for positions `0 ..< start + T` are elsewhere (a decoder's key/value cache, row
    /// stride `keysLD`, sequence b's at `b · (start + T) · keysLD`); probs is (B, H, T, start + T).
    /// One query row per sequence (decoding a token) takes vectorised dot products in place of
    /// GEMMs (`qk_attend_row`): at that size the GEMMs' call overhead would cost more than their
    /// arithmetic.
    static func forward(
        out: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>, queries: UnsafePointer<Float>,
        keys: UnsafePointer<Float>, values: UnsafePointer<Float>, ld: Int, keysLD: Int, B: Int, T: Int, start: Int,
        C: Int, H: Int, G: Int, blockRows: Int = 64
    ) {
        OpProfile.shared.time("attention forward") {
            let d = C / H, S = start + T, group = H / G
            let scale = Float(1 / Double(d).squareRoot())
            if T == 1 {
                // No GEMMs, so OpenBLAS's threads stay as they are; decoding's spinning pool.
                Threads.parallelForSpinning(B * H) { pairs in
                    for pair in pairs {
                        let b = pair / H, h = pair % H, kv = (h / group) * d
                        qk_attend_row(
                            out + b * C + h * d, probs + (b * H + h) * S, queries + b * ld + h * d,
                            keys + b * S * keysLD + kv, values + b * S * keysLD + kv, Int64(keysLD), Int64(S), Int64(d),
                            scale)
                    }
                }
                return
            }
            Threads.withSingleThreadedBLAS {
                Threads.parallelFor(B * H) { pairs in
                    for pair in pairs {
                        let b = pair / H, h = pair % H, kv = (h / group) * d
                        let q = queries + b * T * ld + h * d
                        let k = keys + b * S * keysLD + kv, v = values + b * S * keysLD + kv
                        let p = probs + (b * H + h) * T * S, o = out + b * T * C + h * d
                        // Row i of this sequence is position start + i: seen as row start + i of a
                        // (S × S) causal softmax whose first `start` rows are not stored.
                        let rowsFromZero = p - start * S
                        for r0 in stride(from: 0, to: T, by: blockRows) {
                            let rows = min(blockRows, T - r0), seen = start + r0 + rows
                            // S = q kᵀ over the keys this block can see (the scale is applied in the softmax)
                            Gemm.multiply(
                                transB: true, m: rows, n: seen, k: d, a: q + r0 * ld, lda: ld, b: k, ldb: keysLD,
                                c: p + r0 * S, ldc: S)
                            qk_causal_softmax_rows(rowsFromZero, Int64(S), Int64(start + r0), Int64(seen), scale)
                            // O = P v
                            Gemm.multiply(
                                m: rows, n: d, k: seen, a: p + r0 * S, lda: S, b: v, ldb: keysLD, c: o + r0 * C, ldc: C)
                        }
                    }
                }
            }
        }
    }

    /// dqkv (B·T, W) = gradients of q, k, v (overwritten) from dOut (B·T, C).
    /// `dScores` is T × T scratch for each of `slots` threads.
    static func backward(
        dqkv: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>, qkv: UnsafePointer<Float>,
        probs: UnsafePointer<Float>, B: Int, T: Int, C: Int, H: Int, G: Int, dScores: UnsafeMutablePointer<Float>,
        slots: Int = 1,
        blockRows: Int = 64
    ) {
        OpProfile.shared.time("attention backward") {
            let d = C / H, K = G * d, ld = C + 2 * K, group = H / G
            let scale = Float(1 / Double(d).squareRoot())
            Threads.withSingleThreadedBLAS {
                // A thread owns whole key/value heads: their gradients sum over the query heads of
                // the group, which it visits in order.
                Threads.parallelChunks(B * G, maxParts: slots) { thread, pairs in
                    let dS = dScores + thread * T * T
                    for pair in pairs {
                        let b = pair / G, g = pair % G
                        let k = qkv + b * T * ld + C + g * d, v = k + K
                        let dk = dqkv + b * T * ld + C + g * d, dv = dk + K
                        // dk and dv sum over the query blocks and the group's heads.
                        for t in 0..<T {
                            (dk + t * ld).initialize(repeating: 0, count: d)
                            (dv + t * ld).initialize(repeating: 0, count: d)
                        }
                        for h in (g * group)..<((g + 1) * group) {
                            let q = qkv + b * T * ld + h * d, dq = dqkv + b * T * ld + h * d
                            let p = probs + (b * H + h) * T * T
                            let dO = dOut + b * T * C + h * d
                            for r0 in stride(from: 0, to: T, by: blockRows) {
                                let rows = min(blockRows, T - r0), keys = r0 + rows
                                // O = P v:  dv += Pᵀ dO,  dP = dO vᵀ
                                Gemm.multiply(
                                    transA: true, m: keys, n: d, k: rows, a: p + r0 * T, lda: T, b: dO + r0 * C, ldb: C,
                                    beta: 1, c: dv, ldc: ld)
                                Gemm.multiply(
                                    transB: true, m: rows, n: keys, k: d, a: dO + r0 * C, lda: C, b: v, ldb: ld,
                                    c: dS + r0 * T, ldc: T)
                                // P = softmax(scale · S):  dS = scale · P ∘ (dP − rowsum(P ∘ dP))
                                qk_causal_softmax_bwd_rows(dS, p, Int64(T), Int64(r0), Int64(keys), scale)
                                // S = q kᵀ:  dq = dS k,  dk += dSᵀ q
                                Gemm.multiply(
                                    m: rows, n: d, k: keys, a: dS + r0 * T, lda: T, b: k, ldb: ld, c: dq + r0 * ld,
                                    ldc: ld)
                                Gemm.multiply(
                                    transA: true, m: keys, n: d, k: rows, a: dS + r0 * T, lda: T, b: q + r0 * ld,
                                    ldb: ld,
                                    beta: 1, c: dk, ldc: ld)
                            }
                        }
                    }
                }
            }
        }
    }
}
