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

    public func initializeNormal(_ stream: RandomStream, std: Float) {
        let chunk = 1 << 16
        Threads.parallelFor((count + chunk - 1) / chunk) { blocks in
            for b in blocks {
                let start = b * chunk
                stream.normals(
                    into: self.pointer + start, start: start, count: min(chunk, self.count - start), std: std)
            }
        }
    }

    public func initializeOnes() { pointer.update(repeating: 1, count: count) }

    public func updateKernel(_ step: UpdateStep) -> UpdateKernel {
        let w = pointer
        return { e, n, g, m, v, p in
            qk_adamw(w + e, g, m, v, Int64(n), &p)
            return 0
        }
    }

    var base: UnsafeMutableRawPointer { UnsafeMutableRawPointer(pointer) }
    static var elementSize: Int { 4 }
    static var dtype: SafetensorsDType { .f32 }

    public func perturb() { pointer[0] += 0.01 }
}
