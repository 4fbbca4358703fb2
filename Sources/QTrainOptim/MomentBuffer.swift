import QKernels
import QTrainCore

/// Storage of AdamW's moments m and v (`optim.state_dtype`).
public enum StateType: String, CaseIterable, Codable, Sendable, ConfigEnum {
    /// Four bytes per moment, as the paper.
    case fp32
    /// Two bytes per moment, rounded stochastically from the FP32 update (8 → 4 B/param).
    case bf16
    /// One byte per moment, block-wise with an FP32 absmax per 2048 values and a non-linear
    /// code, rounded stochastically (8 → 2.004 B/param).
    case int8

    /// Bytes per stored value (without the 8-bit blocks' scales).
    public var size: Int {
        switch self {
        case .fp32: return 4
        case .bf16: return 2
        case .int8: return 1
        }
    }

    /// Bytes per parameter of both moments, scales included.
    public var bytesPerParameter: Double { 2 * (Double(size) + (self == .int8 ? 4 / Double(StateSegments.block) : 0)) }
}

/// One of AdamW's moments for the elements an optimizer owns, stored as `optim.state_dtype`.
///
/// The update always computes in FP32. BF16 and 8-bit storage are widened into per-thread
/// scratch before it and rounded back stochastically after it: round-to-nearest would freeze
/// the second moment, whose per-step change (1 - β2 = 0.1%) is below BF16's 8-bit mantissa and
/// the 8-bit code's steps. 8-bit storage is block-wise (``StateSegments``): a code byte per
/// value on a non-linear map, signed for m and unsigned for v, and an FP32 absmax per block.
public final class MomentBuffer {
    /// How the values are stored.
    public let dtype: StateType
    /// Number of values.
    public let count: Int
    /// Which moment this is (keys its rounding stream; m is the signed one).
    let purpose: RandomPurpose
    /// The tensors' parts (8-bit blocks follow them).
    public let segments: StateSegments
    private let f32: AlignedBuffer<Float>?
    private let bf16: AlignedBuffer<UInt16>?
    private let codes: AlignedBuffer<UInt8>?
    private let scales: AlignedBuffer<Float>?
    private var isSigned: Int32 { purpose == .firstMoment ? 1 : 0 }

    init(dtype: StateType, segments: StateSegments, count: Int, purpose: RandomPurpose, ledger: MemoryLedger?) {
        self.dtype = dtype
        self.count = count
        self.purpose = purpose
        self.segments = segments
        f32 = dtype == .fp32 ? AlignedBuffer(count: count, category: .optimizer, ledger: ledger) : nil
        bf16 = dtype == .bf16 ? AlignedBuffer(count: count, category: .optimizer, ledger: ledger) : nil
        codes = dtype == .int8 ? AlignedBuffer(count: count, category: .optimizer, ledger: ledger) : nil
        scales = dtype == .int8 ? AlignedBuffer(count: segments.scaleCount, category: .optimizer, ledger: ledger) : nil
    }

    /// The stored buffers with their safetensors suffix and type: the values, then (8-bit) the
    /// block scales as `.scale`.
    public var stored: [(suffix: String, dtype: SafetensorsDType, pointer: UnsafeMutableRawPointer, count: Int)] {
        switch dtype {
        case .fp32: return [("", .f32, UnsafeMutableRawPointer(f32!.pointer), count)]
        case .bf16: return [("", .bf16, UnsafeMutableRawPointer(bf16!.pointer), count)]
        case .int8:
            return [
                ("", .u8, UnsafeMutableRawPointer(codes!.pointer), count),
                (".scale", .f32, UnsafeMutableRawPointer(scales!.pointer), segments.scaleCount)
            ]
        }
    }

    /// Size of the stored bytes.
    public var byteCount: Int { stored.reduce(0) { $0 + $1.count * $1.dtype.size } }

    /// The FP32 values at `offset`, in place: the storage itself when it is FP32, else
    /// `scratch` (required then) filled with the widened values. 8-bit ranges start on a block
    /// of their segment and stay inside it.
    func floats(at offset: Int, count n: Int, scratch: UnsafeMutablePointer<Float>?) -> UnsafeMutablePointer<Float> {
        if let f32 { return f32.pointer + offset }
        guard let scratch else { preconditionFailure("BF16 and 8-bit moments need scratch") }
        if let bf16 {
            qk_bf16_to_f32_array(scratch, bf16.pointer + offset, Int64(n))
        } else {
            let (s, e) = segments.locate(offset)
            qk_state8_decode(scratch, codes!.pointer + offset, scales!.pointer + s, Int64(n), Int64(e), isSigned)
        }
        return scratch
    }

    /// Stores back values that ``floats(at:count:scratch:)`` returned and an update changed.
    /// Rounding is stochastic: value `element` of tensor `tensor` at step `step` takes its own
    /// Philox number, independent of threads, chunks and ZeRO-1 slices. 8-bit moments round
    /// with a counter hash instead (cheaper, and vectorised inside the encoder; measured 0.5 ns
    /// an element less than Philox): one 32-bit word per element keyed by the first moment's
    /// stream, m taking its high 16 bits and v its low 16.
    func store(
        _ values: UnsafePointer<Float>, at offset: Int, count n: Int,
        seed: UInt64, tensor: Int, step: Int, element: Int
    ) {
        guard dtype != .fp32 else { return }
        if dtype == .int8 {
            let key = RandomStream(seed: seed, purpose: .firstMoment, tensor: tensor, step: step).word64(0)
            let s = segments.locate(offset).scale
            qk_state8_encode(
                codes!.pointer + offset, scales!.pointer + s, values, Int64(n), Int64(element), isSigned,
                1, key, purpose == .firstMoment ? 16 : 0)
            return
        }
        let stream = RandomStream(seed: seed, purpose: purpose, tensor: tensor, step: step)
        var key = (stream.key.0, stream.key.1)
        withUnsafePointer(to: &key) {
            $0.withMemoryRebound(to: UInt32.self, capacity: 2) { k in
                qk_f32_to_bf16_stochastic(
                    bf16!.pointer + offset, values, Int64(element), Int64(n), k, stream.c2, stream.c3)
            }
        }
    }

    /// Value `i`, widened to FP32. Setting one 8-bit value re-encodes its block (to nearest).
    public subscript(i: Int) -> Float {
        get {
            if let f32 { return f32.pointer[i] }
            if let bf16 { return Float(bitPattern: UInt32(bf16.pointer[i]) << 16) }
            var x: Float = 0
            let (s, e) = segments.locate(i)
            qk_state8_decode(&x, codes!.pointer + i, scales!.pointer + s, 1, Int64(e), isSigned)
            return x
        }
        set {
            if let f32 {
                f32.pointer[i] = newValue
                return
            }
            if let bf16 {
                qk_f32_to_bf16_array(bf16.pointer + i, [newValue], 1)
                return
            }
            let seg = segments.segment(containing: i), e = seg.first + i - seg.stateOffset
            let lo = max(seg.first, e / StateSegments.block * StateSegments.block)
            let hi = min(seg.first + seg.count, lo - lo % StateSegments.block + StateSegments.block)
            let start = seg.stateOffset + lo - seg.first
            var block = (start..<(start + hi - lo)).map { self[$0] }
            block[i - start] = newValue
            assign(floats: block, count: block.count, at: start)
        }
    }

    /// All values, widened to FP32.
    public var values: [Float] {
        var out = [Float](repeating: 0, count: count)
        out.withUnsafeMutableBufferPointer { o in
            for s in segments.segments where s.count > 0 {
                let p = floats(at: s.stateOffset, count: s.count, scratch: o.baseAddress! + s.stateOffset)
                if p != o.baseAddress! + s.stateOffset {
                    (o.baseAddress! + s.stateOffset).update(from: p, count: s.count)
                }
            }
        }
        return out
    }

    /// Stores `n` FP32 values at positions `offset...` (rounded to nearest for BF16 and 8-bit
    /// storage). 8-bit ranges must be whole segments or whole blocks of one.
    package func assign(floats values: UnsafePointer<Float>, count n: Int, at offset: Int) {
        switch dtype {
        case .fp32: (f32!.pointer + offset).update(from: values, count: n)
        case .bf16: qk_f32_to_bf16_array(bf16!.pointer + offset, values, Int64(n))
        case .int8:
            let (s, e) = segments.locate(offset)
            qk_state8_encode(
                codes!.pointer + offset, scales!.pointer + s, values, Int64(n), Int64(e), isSigned, 0, 0, 0)
        }
    }
}
