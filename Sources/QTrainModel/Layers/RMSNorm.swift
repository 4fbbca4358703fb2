import QKernels
import QTrainCore

/// RMSNorm without bias: y = x / sqrt(mean(x²) + eps) · w.
enum RMSNorm {
    /// Rows per chunk of the backward pass's weight-gradient partial sums. Fixed, so that the
    /// summation order (and so the bits) do not depend on the thread count.
    static let chunkRows = 64

    /// out (N, C), rstd (N) from input (N, C) and weight (C).
    static func forward(
        out: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>,
        input: UnsafePointer<Float>, weight: UnsafePointer<Float>, rows: Int, C: Int, eps: Float
    ) {
        OpProfile.shared.time("rmsnorm forward") {
            Threads.parallelFor(rows, minChunk: 32) { r in
                qk_rmsnorm_fwd(
                    out + r.lowerBound * C, rstd + r.lowerBound, input + r.lowerBound * C,
                    weight, Int64(r.count), Int64(C), eps)
            }
        }
    }

    /// Number of partial-sum rows of C floats that ``backward`` needs for `rows` rows.
    static func partialCount(rows: Int) -> Int { (rows + chunkRows - 1) / chunkRows }

    /// dInput (N, C) += ∂L/∂x; dWeight (C) += ∂L/∂w. `partials` holds partialCount × C floats.
    static func backward(
        dInput: UnsafeMutablePointer<Float>, dWeight: UnsafeMutablePointer<Float>,
        dOut: UnsafePointer<Float>, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
        rstd: UnsafePointer<Float>, rows: Int, C: Int, partials: UnsafeMutablePointer<Float>
    ) {
        OpProfile.shared.time("rmsnorm backward") {
            let chunks = partialCount(rows: rows)
            Threads.parallelFor(chunks) { range in
                for k in range {
                    let r0 = k * chunkRows, n = min(chunkRows, rows - r0)
                    let dw = partials + k * C
                    dw.initialize(repeating: 0, count: C)
                    qk_rmsnorm_bwd(
                        dInput + r0 * C, dw, dOut + r0 * C, input + r0 * C, weight, rstd + r0,
                        Int64(n), Int64(C))
                }
            }
            for k in 0..<chunks { qk_add(dWeight, partials + k * C, Int64(C)) }
        }
    }
}
