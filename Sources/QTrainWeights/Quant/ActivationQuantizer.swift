import QKernels
import QTrainCore

/// BitNet's input quantiser of every quantised linear layer: per token (row), absmax int8,
/// `x_q = clamp(round(x · 127 / max|x|), −128, 127) · max|x| / 127`, applied in place. The
/// backward pass uses the straight-through estimator, so nothing is kept for it; a matmul
/// backend that multiplies in integers may ask for the codes and per-row scales as well.
public enum ActivationQuantizer {
    /// Quantises `x` (rows × cols) in place.
    public static func apply(_ x: UnsafeMutablePointer<Float>, rows: Int, cols: Int) {
        OpProfile.shared.time("activation quant") {
            Threads.parallelFor(rows, minChunk: 16) { r in
                qk_act_quant_rows(x + r.lowerBound * cols, Int64(r.count), Int64(cols), Int64(cols))
            }
        }
    }

    /// Quantises `x` (rows × cols) in place and writes its int8 codes (rows × cols) and the
    /// value of one code step per row, so that `x == codes · scales` exactly.
    public static func apply(
        _ x: UnsafeMutablePointer<Float>, rows: Int, cols: Int,
        codes: UnsafeMutablePointer<Int8>, scales: UnsafeMutablePointer<Float>
    ) {
        OpProfile.shared.time("activation quant") {
            Threads.parallelFor(rows, minChunk: 16) { r in
                qk_act_quant_rows_codes(
                    x + r.lowerBound * cols, codes + r.lowerBound * cols, scales + r.lowerBound,
                    Int64(r.count), Int64(cols), Int64(cols))
            }
        }
    }
}
