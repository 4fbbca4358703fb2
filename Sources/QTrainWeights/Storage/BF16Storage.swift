import QKernels
import QTrainCore

/// BF16 values, viewed in the weights' BF16 arena (BitNet with `quant.latent_dtype: bf16`).
/// Updates compute in FP32 and store back rounded to nearest.
public final class BF16Storage: ElementStorage {
    /// The first value's bits.
    public let pointer: UnsafeMutablePointer<UInt16>
    public let count: Int
    public var isQuantized: Bool { false }

    init(pointer: UnsafeMutablePointer<UInt16>, count: Int) {
        self.pointer = pointer
        self.count = count
    }

    public func readValues(from start: Int, count n: Int, into out: UnsafeMutablePointer<Float>) {
        qk_bf16_to_f32_array(out, pointer + start, Int64(n))
    }

    public func absSum() -> Double { qk_abs_sum_bf16(pointer, Int64(count)) }

    /// Rounded to nearest.
    func store(_ values: UnsafePointer<Float>, at start: Int, count n: Int) {
        qk_f32_to_bf16_array(pointer + start, values, Int64(n))
    }

    public func initializeOnes() { pointer.update(repeating: 0x3F80, count: count) }

    /// Computed in FP32, stored back rounded to nearest.
    func adamw(
        from start: Int, count n: Int, _ g: UnsafePointer<Float>, _ m: UnsafeMutablePointer<Float>,
        _ v: UnsafeMutablePointer<Float>, _ params: inout qk_adamw_params
    ) { qk_adamw_bf16(pointer + start, g, m, v, Int64(n), &params) }

    var base: UnsafeMutableRawPointer { UnsafeMutableRawPointer(pointer) }
    static var dtype: SafetensorsDType { .bf16 }

    public func perturb() { pointer[0] ^= 0x0100 }
}
