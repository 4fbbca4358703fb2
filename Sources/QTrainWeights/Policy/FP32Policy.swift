import QTrainCore

/// `quant.mode: fp32`: every tensor FP32, used as stored, plain AdamW.
public final class FP32Policy: WeightPolicy {
    public func storageKind(for spec: ParameterSpec) -> StorageKind { .fp32 }
    public func usesStoredValues(_ p: Int) -> Bool { true }
    public func forwardValues(
        _ w: ModelWeights, of p: Int, from start: Int, count n: Int, into out: UnsafeMutablePointer<Float>
    ) {
        storedValues(w, of: p, from: start, count: n, into: out)
    }
}
