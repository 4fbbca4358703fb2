import QTrainCore

/// A bias-free linear layer y = x · Wᵀ over a stacked weight matrix (N × K), computed by the
/// run's ``MatmulBackend``.
///
/// In bitnet and dqt the input has already been quantised per token in place by the caller
/// (``ActivationQuantizer``); the straight-through estimator passes dx unchanged.
enum Linear {
    /// out (M, N) = input (M, K) · Wᵀ, or out += … when `accumulate` (a residual add).
    static func forward(
        out: UnsafeMutablePointer<Float>, input: LinearInput, rows M: Int, weights: LinearWeights,
        backend: MatmulBackend, accumulate: Bool = false
    ) {
        OpProfile.shared.time("linear forward") {
            backend.forward(out: out, input: input, rows: M, weights: weights, accumulate: accumulate)
        }
    }

    /// dWeight (N, K) += dOutᵀ · input, into the gradients of the stacked tensors (adjacent in
    /// the layout); dInput (M, K) = dOut · W, or += when `accumulate`.
    static func backward(
        dInput: UnsafeMutablePointer<Float>, gradients: GradientStore,
        dOut: UnsafePointer<Float>, input: LinearInput, rows M: Int, weights: LinearWeights,
        backend: MatmulBackend, accumulate: Bool = false
    ) throws {
        try OpProfile.shared.time("linear backward") {
            let offset = weights.weights.layout.specs[weights.matrix.params[0]].offset
            try backend.backward(
                dInput: dInput, dWeight: .stored(in: gradients, offset: offset, cols: weights.cols), dOut: dOut,
                input: input, rows: M, weights: weights, accumulate: accumulate)
        }
    }
}
