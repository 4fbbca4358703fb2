import QKernels
import QTrainCore

/// Softmax cross-entropy over the vocabulary, fused with its backward as in llm.c: the
/// logits buffer is overwritten with dL/dlogits, since the logits are not needed again.
enum CrossEntropy {
    /// Writes per-token losses (N) and, when `gradScale` is non-zero, replaces logits (N, V)
    /// with gradScale · (softmax − onehot). Returns the mean loss.
    @discardableResult
    static func forwardBackward(
        logits: UnsafeMutablePointer<Float>, losses: UnsafeMutablePointer<Float>,
        targets: UnsafePointer<Int32>, rows: Int, V: Int, gradScale: Float
    ) -> Double {
        return OpProfile.shared.time("cross-entropy") {
            Threads.parallelFor(rows, minChunk: 4) { r in
                qk_xent_rows(
                    logits + r.lowerBound * V, Int64(r.count), Int64(V), Int64(V),
                    targets + r.lowerBound, losses + r.lowerBound, gradScale)
            }
            var sum = 0.0
            for i in 0..<rows { sum += Double(losses[i]) }
            return sum / Double(rows)
        }
    }
}
