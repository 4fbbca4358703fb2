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

    public func initializeNormal(_ stream: RandomStream, std: Float) {
        let chunk = 1 << 16
        Threads.parallelFor((count + chunk - 1) / chunk) { blocks in
            var tmp = [Float](repeating: 0, count: chunk)
            for b in blocks {
                let start = b * chunk, m = min(chunk, self.count - start)
                tmp.withUnsafeMutableBufferPointer {
                    stream.normals(into: $0.baseAddress!, start: start, count: m, std: std)
                    qk_f32_to_bf16_array(self.pointer + start, $0.baseAddress!, Int64(m))
                }
            }
        }
    }

    public func initializeOnes() { pointer.update(repeating: 0x3F80, count: count) }

    public func updateKernel(_ step: UpdateStep) -> UpdateKernel {
        let w = pointer
        return { e, n, g, m, v, p in
            qk_adamw_bf16(w + e, g, m, v, Int64(n), &p)
            return 0
        }
    }

    var base: UnsafeMutableRawPointer { UnsafeMutableRawPointer(pointer) }
    static var elementSize: Int { 2 }
    static var dtype: SafetensorsDType { .bf16 }

    public func perturb() { pointer[0] ^= 0x0100 }
}
