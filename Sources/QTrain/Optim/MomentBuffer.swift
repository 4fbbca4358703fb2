import QKernels

/// One of AdamW's moments for the elements an optimizer owns, stored as `optim.state_dtype`.
///
/// The update always computes in FP32. BF16 storage is widened into per-thread scratch before
/// it and rounded back stochastically after it: round-to-nearest would freeze the second
/// moment, whose per-step change (1 - β2 = 0.1%) is below BF16's 8-bit mantissa.
public final class MomentBuffer {
    /// How the values are stored.
    public let dtype: StateType
    /// Number of values.
    public let count: Int
    /// Which moment this is (keys its rounding stream).
    let purpose: RandomPurpose
    private let f32: AlignedBuffer<Float>?
    private let bf16: AlignedBuffer<UInt16>?

    init(dtype: StateType, count: Int, purpose: RandomPurpose, ledger: MemoryLedger?) {
        self.dtype = dtype
        self.count = count
        self.purpose = purpose
        f32 = dtype == .fp32 ? AlignedBuffer(count: count, category: .optimizer, ledger: ledger) : nil
        bf16 = dtype == .bf16 ? AlignedBuffer(count: count, category: .optimizer, ledger: ledger) : nil
    }

    /// The stored bytes.
    public var rawPointer: UnsafeMutableRawPointer {
        f32.map { UnsafeMutableRawPointer($0.pointer) } ?? UnsafeMutableRawPointer(bf16!.pointer)
    }

    /// Size of the stored bytes.
    public var byteCount: Int { count * dtype.size }

    /// The FP32 values at `offset`, in place: the storage itself when it is FP32, else
    /// `scratch` (required then) filled with the widened values.
    func floats(at offset: Int, count n: Int, scratch: UnsafeMutablePointer<Float>?) -> UnsafeMutablePointer<Float> {
        if let f32 { return f32.pointer + offset }
        guard let scratch else { preconditionFailure("BF16 moments need scratch") }
        qk_bf16_to_f32_array(scratch, bf16!.pointer + offset, Int64(n))
        return scratch
    }

    /// Stores back values that ``floats(at:count:scratch:)`` returned and an update changed.
    /// BF16 rounds stochastically: value `element` of tensor `tensor` at step `step` takes
    /// its own Philox number, independent of threads, chunks and ZeRO-1 slices.
    func store(_ values: UnsafePointer<Float>, at offset: Int, count n: Int,
               seed: UInt64, tensor: Int, step: Int, element: Int) {
        guard let bf16 else { return }
        let stream = RandomStream(seed: seed, purpose: purpose, tensor: tensor, step: step)
        var key = (stream.key.0, stream.key.1)
        withUnsafePointer(to: &key) {
            $0.withMemoryRebound(to: UInt32.self, capacity: 2) { k in
                qk_f32_to_bf16_stochastic(bf16.pointer + offset, values, Int64(element), Int64(n), k, stream.c2, stream.c3)
            }
        }
    }

    /// Value `i`, widened to FP32.
    public subscript(i: Int) -> Float {
        get { f32?.pointer[i] ?? Float(bitPattern: UInt32(bf16!.pointer[i]) << 16) }
        set {
            if let f32 { f32.pointer[i] = newValue } else { qk_f32_to_bf16_array(bf16!.pointer + i, [newValue], 1) }
        }
    }

    /// All values, widened to FP32.
    public var values: [Float] { (0..<count).map { self[$0] } }

    /// Copies `n` values stored as `source` (F32 or BF16 bytes) into positions `offset...`,
    /// converting when the types differ (BF16 from F32 rounds to nearest).
    func assign(from raw: UnsafeRawPointer, as source: StateType, count n: Int, at offset: Int) {
        switch (source, dtype) {
        case (.fp32, .fp32), (.bf16, .bf16):
            (rawPointer + offset * dtype.size).copyMemory(from: raw, byteCount: n * dtype.size)
        case (.fp32, .bf16):
            qk_f32_to_bf16_array(bf16!.pointer + offset, raw.assumingMemoryBound(to: Float.self), Int64(n))
        case (.bf16, .fp32):
            qk_bf16_to_f32_array(f32!.pointer + offset, raw.assumingMemoryBound(to: UInt16.self), Int64(n))
        }
    }
}
