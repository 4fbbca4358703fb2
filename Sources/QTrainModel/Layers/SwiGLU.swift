import QKernels
import QTrainCore

/// The LLaMA MLP activation: given h = [gate | up] (N, 2F), out = silu(gate) · up (N, F).
enum SwiGLU {
    static func forward(out: UnsafeMutablePointer<Float>, h: UnsafePointer<Float>, rows: Int, F: Int) {
        OpProfile.shared.time("swiglu forward") {
            Threads.parallelFor(rows, minChunk: 16) { r in
                qk_swiglu_fwd(out + r.lowerBound * F, h + r.lowerBound * 2 * F, Int64(r.count), Int64(F))
            }
        }
    }

    /// dh (N, 2F) = ∂L/∂[gate | up] from dOut (N, F) and the saved h.
    static func backward(
        dh: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>, h: UnsafePointer<Float>, rows: Int, F: Int
    ) {
        OpProfile.shared.time("swiglu backward") {
            Threads.parallelFor(rows, minChunk: 16) { r in
                qk_swiglu_bwd(
                    dh + r.lowerBound * 2 * F, dOut + r.lowerBound * F, h + r.lowerBound * 2 * F,
                    Int64(r.count), Int64(F))
            }
        }
    }
}
