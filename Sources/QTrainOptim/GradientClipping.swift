import QKernels
import QTrainCore

/// Global-norm gradient clipping.
public enum GradientClipping {
    /// The L2 norm of `g[0..<n]` times `scale`, summed in a fixed order (Double).
    public static func norm(_ g: UnsafePointer<Float>, count n: Int, scale: Float = 1) -> Double {
        FixedOrderSum.sum(count: n) { qk_sum_squares(g + $0, Int64($1)) }.squareRoot() * Double(scale)
    }

    /// The factor that brings a gradient of norm `norm` within `maxNorm` (1 when off or within).
    public static func factor(norm: Double, maxNorm: Double) -> Float {
        guard maxNorm > 0, norm.isFinite, norm > maxNorm else { return 1 }
        return Float(maxNorm / (norm + 1e-6))
    }
}
