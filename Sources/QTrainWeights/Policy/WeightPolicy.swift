import QTrainCore

/// How a `quant.mode` stores, uses and updates the weights (DESIGN.md, "Weight policies").
///
/// One file per policy: ``FP32Policy``, ``BitNetPolicy``, ``DQTPolicy``. A policy chooses each
/// tensor's ``StorageKind``, says what values the forward pass multiplies with, and keeps
/// whatever it derives from the stored weights (BitNet's β, DQT's next scale) in step with
/// them. A new policy is one file here plus one case of ``QuantMode``.
public protocol WeightPolicy: AnyObject {
    /// How tensor `spec` is stored.
    func storageKind(for spec: ParameterSpec) -> StorageKind
    /// Whether the forward pass multiplies with tensor `p`'s stored values unchanged (so an
    /// FP32 tensor can be used in place).
    func usesStoredValues(_ p: Int) -> Bool
    /// Writes the FP32 values the forward pass uses for elements [start, start+n) of tensor `p`.
    func forwardValues(
        _ w: ModelWeights, of p: Int, from start: Int, count n: Int, into out: UnsafeMutablePointer<Float>)
    /// The value of one integer code of tensor `p`'s forward weights, when they are integer
    /// codes times one step (DQT: 1/scale; BitNet: β); nil when they are not.
    func forwardCodeStep(_ w: ModelWeights, of p: Int) -> Float?
    /// Writes the int8 codes of elements [start, start+n) of tensor `p`'s forward weights
    /// (`start` a multiple of 40); only for tensors with a ``forwardCodeStep(_:of:)``.
    func forwardCodes(_ w: ModelWeights, of p: Int, from start: Int, count n: Int, into out: UnsafeMutablePointer<Int8>)
    /// Called before an optimizer step, on every rank, with the weights complete.
    func prepareUpdate(_ w: ModelWeights)
    /// Called whenever the stored weights changed (after an update, an all-gather, a load or a
    /// broadcast) to recompute what the policy derives from them.
    func refresh(_ w: ModelWeights)
}

extension WeightPolicy {
    public func forwardCodeStep(_ w: ModelWeights, of p: Int) -> Float? { nil }
    public func forwardCodes(
        _ w: ModelWeights, of p: Int, from start: Int, count n: Int, into out: UnsafeMutablePointer<Int8>
    ) {
        fatalError("\(w.layout.specs[p].name) has no integer codes under this policy")
    }
    public func prepareUpdate(_ w: ModelWeights) {}
    public func refresh(_ w: ModelWeights) {}

    /// Stored values unchanged: the default forward of a policy that transforms nothing.
    func storedValues(
        _ w: ModelWeights, of p: Int, from start: Int, count n: Int, into out: UnsafeMutablePointer<Float>
    ) {
        w.storage[p].readValues(from: start, count: n, into: out)
    }
}

extension QuantMode {
    /// The policy of this mode for the tensors of `layout`.
    func makePolicy(_ quant: QuantConfig, layout: ParameterLayout) -> WeightPolicy {
        switch self {
        case .fp32: return FP32Policy()
        case .bitnet: return BitNetPolicy(quant, layout: layout)
        case .dqt: return DQTPolicy(quant, layout: layout)
        }
    }
}
