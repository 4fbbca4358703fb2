import QKernels

/// BitNet's input quantiser of every quantised linear layer: per token (row), absmax int8,
/// `x_q = clamp(round(x · 127 / max|x|), −128, 127) · max|x| / 127`, applied in place. The
/// backward pass uses the straight-through estimator, so no state is kept.
public enum ActivationQuantizer {
    public static func apply(_ x: UnsafeMutablePointer<Float>, rows: Int, cols: Int) {
        OpProfile.shared.time("activation quant") {
            Threads.parallelFor(rows, minChunk: 16) { r in
                qk_act_quant_rows(x + r.lowerBound * cols, Int64(r.count), Int64(cols), Int64(cols))
            }
        }
    }
}
