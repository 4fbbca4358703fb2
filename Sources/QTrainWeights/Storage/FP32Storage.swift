import QKernels
import QTrainCore

/// FP32 values, viewed in the weights' FP32 arena (the fp32 policy, BitNet's FP32 latent
/// weights, and tensors a policy leaves unquantised).
public final class FP32Storage: ElementStorage {
    /// The first value.
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int
    public var isQuantized: Bool { false }

    init(pointer: UnsafeMutablePointer<Float>, count: Int) {
        self.pointer = pointer
        self.count = count
    }

    public func readValues(from start: Int, count n: Int, into out: UnsafeMutablePointer<Float>) {
        out.update(from: pointer + start, count: n)
    }

    public func absSum() -> Double { qk_abs_sum(pointer, Int64(count)) }

    func store(_ values: UnsafePointer<Float>, at start: Int, count n: Int) {
        (pointer + start).update(from: values, count: n)
    }

    public func initializeOnes() { pointer.update(repeating: 1, count: count) }

    func adamw(
        from start: Int, count n: Int, _ g: UnsafePointer<Float>, _ m: UnsafeMutablePointer<Float>,
        _ v: UnsafeMutablePointer<Float>, _ params: inout qk_adamw_params
    ) { qk_adamw(pointer + start, g, m, v, Int64(n), &params) }

    var base: UnsafeMutableRawPointer { UnsafeMutableRawPointer(pointer) }
    static var dtype: SafetensorsDType { .f32 }

    public func perturb() { pointer[0] += 0.01 }
}
