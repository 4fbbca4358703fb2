import QKernels

/// Global-norm gradient clipping.
public enum GradientClipping {
    /// Elements per partial sum: fixed so that the norm does not depend on the thread count.
    static let block = 1 << 16

    /// The L2 norm of `g[0..<n]` times `scale`, summed in a fixed order (Double).
    public static func norm(_ g: UnsafePointer<Float>, count n: Int, scale: Float = 1) -> Double {
        sumOfSquares(count: n) { qk_sum_squares(g + $0, Int64($1)) }.squareRoot() * Double(scale)
    }

    /// Σ over `n` elements of `blockSum(start, count)` for blocks of ``block`` elements, the
    /// blocks on all threads and their sums added in order, so that the result does not depend
    /// on the thread count (whatever the element type `blockSum` reads).
    static func sumOfSquares(count n: Int, _ blockSum: (Int, Int) -> Double) -> Double {
        let blocks = (n + block - 1) / block
        var partial = [Double](repeating: 0, count: blocks)
        partial.withUnsafeMutableBufferPointer { p in
            Threads.parallelFor(blocks) { range in
                for b in range {
                    let s = b * block
                    p[b] = blockSum(s, min(block, n - s))
                }
            }
        }
        return partial.reduce(0, +)
    }

    /// The factor that brings a gradient of norm `norm` within `maxNorm` (1 when off or within).
    public static func factor(norm: Double, maxNorm: Double) -> Float {
        guard maxNorm > 0, norm.isFinite, norm > maxNorm else { return 1 }
        return Float(maxNorm / (norm + 1e-6))
    }
}
