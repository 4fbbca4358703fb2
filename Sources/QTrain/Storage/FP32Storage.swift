import QKernels

/// FP32 values, viewed in the weights' FP32 arena (the fp32 policy, BitNet's FP32 latent
/// weights, and tensors a policy leaves unquantised).
public final class FP32Storage: TensorStorage {
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
                stream.normals(into: self.pointer + start, start: start, count: min(chunk, self.count - start), std: std)
            }
        }
    }

    public func initializeOnes() { pointer.update(repeating: 1, count: count) }

    public func updateKernel(_ step: UpdateStep) -> UpdateKernel {
        let w = pointer
        return { e, n, g, m, v, p in qk_adamw(w + e, g, m, v, Int64(n), &p); return 0 }
    }

    public var payload: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(start: pointer, count: count * 4) }
    public func payloadBytes(of elements: Range<Int>) -> Range<Int> { (elements.lowerBound * 4)..<(elements.upperBound * 4) }
    public func withSideState<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeMutableRawBufferPointer(start: nil, count: 0))
    }

    public func write(_ spec: ParameterSpec, to file: inout SafetensorsWriter) {
        file.tensors.append(.init(name: spec.name, dtype: .f32, shape: spec.shape, pointer: pointer))
    }

    public func read(_ spec: ParameterSpec, from file: SafetensorsFile) throws {
        let e = try file.entry(spec.name)
        guard e.dtype == .f32, e.shape == spec.shape else { throw storageMismatch(spec, e, in: file, expected: "F32 \(spec.shape)") }
        try file.withBytes(spec.name) { payload.copyMemory(from: $0) }
    }

    public func perturb() { pointer[0] += 0.01 }
}
