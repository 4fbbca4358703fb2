import QKernels
import QTrainCore

/// Real values viewed in one of the weights' arenas: FP32 (the fp32 policy, BitNet's FP32
/// latent weights, tensors a policy leaves unquantised) or BF16 (BitNet with
/// `quant.latent_dtype: bf16`, updates computed in FP32 and stored back rounded to nearest).
public final class ArenaStorage<Element: ArenaElement>: ElementStorage, RealValuedStorage {
    /// The first value.
    public let pointer: UnsafeMutablePointer<Element>
    public let count: Int
    public var isQuantized: Bool { false }

    init(pointer: UnsafeMutablePointer<Element>, count: Int) {
        self.pointer = pointer
        self.count = count
    }

    public func readValues(from start: Int, count n: Int, into out: UnsafeMutablePointer<Float>) {
        Element.widen(pointer + start, count: n, into: out)
    }

    /// Runs `body` on FP32 copies of the values in blocks of 4096 (in place for FP32), then
    /// narrows them back when `writes`.
    private func inFP32Blocks(
        from start: Int, count n: Int, writes: Bool,
        _ body: (_ offset: Int, _ values: UnsafeMutablePointer<Float>, _ k: Int) -> Void
    ) {
        if Element.self == Float.self {
            let p = UnsafeMutableRawPointer(pointer + start).assumingMemoryBound(to: Float.self)
            return body(0, p, n)
        }
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 4096) { block in
            for o in stride(from: 0, to: n, by: 4096) {
                let k = min(4096, n - o)
                Element.widen(pointer + start + o, count: k, into: block.baseAddress!)
                body(o, block.baseAddress!, k)
                if writes { Element.narrow(block.baseAddress!, count: k, into: pointer + start + o) }
            }
        }
    }

    public func absSum() -> Double {
        var total = 0.0
        inFP32Blocks(from: 0, count: count, writes: false) { _, x, k in total += qk_abs_sum(x, Int64(k)) }
        return total
    }

    func store(_ values: UnsafePointer<Float>, at start: Int, count n: Int) {
        Element.narrow(values, count: n, into: pointer + start)
    }

    public func initializeOnes() { pointer.update(repeating: Element.one, count: count) }

    func adamw(
        from start: Int, count n: Int, _ g: UnsafePointer<Float>, _ m: UnsafeMutablePointer<Float>,
        _ v: UnsafeMutablePointer<Float>, _ params: inout qk_adamw_params
    ) {
        var p = params
        inFP32Blocks(from: start, count: n, writes: true) { o, w, k in qk_adamw(w, g + o, m + o, v + o, Int64(k), &p) }
    }

    public func ternarize(from start: Int, count n: Int, step: Float, into out: UnsafeMutablePointer<Float>) {
        readValues(from: start, count: n, into: out)
        qk_ternarize(out, out, Int64(n), step)
    }

    public func ternaryCodes(from start: Int, count n: Int, step: Float, into out: UnsafeMutablePointer<Int8>) {
        inFP32Blocks(from: start, count: n, writes: false) { o, w, k in qk_ternary_codes(out + o, w, Int64(k), step) }
    }

    var base: UnsafeMutableRawPointer { UnsafeMutableRawPointer(pointer) }
    static var dtype: SafetensorsDType { Element.dtype }

    public func perturb() {
        var x: Float = 0
        Element.widen(pointer, count: 1, into: &x)
        x += Element.self == Float.self ? 0.01 : 0.03125
        Element.narrow(&x, count: 1, into: pointer)
    }
}

/// FP32 values in the weights' FP32 arena.
public typealias FP32Storage = ArenaStorage<Float>
/// BF16 values (their bits) in the weights' BF16 arena.
public typealias BF16Storage = ArenaStorage<UInt16>

/// Real-valued storage that BitNet's forward pass ternarises (absmean step) without a copy.
public protocol RealValuedStorage: TensorStorage {
    /// out = clamp(round(w / step), −1, 1) · step for `n` values from `start`.
    func ternarize(from start: Int, count n: Int, step: Float, into out: UnsafeMutablePointer<Float>)
    /// The ternary codes of the same.
    func ternaryCodes(from start: Int, count n: Int, step: Float, into out: UnsafeMutablePointer<Int8>)
}

/// The element of an arena: how its values widen to FP32 and narrow back. Everything else
/// (update, ternarisation, sums) computes on FP32: exact for FP32, and for BF16 the same bits as
/// computing on the widened values and rounding the result to nearest.
public protocol ArenaElement {
    static var dtype: SafetensorsDType { get }
    /// 1.0 as an element.
    static var one: Self { get }
    static func widen(_ x: UnsafePointer<Self>, count n: Int, into out: UnsafeMutablePointer<Float>)
    static func narrow(_ values: UnsafePointer<Float>, count n: Int, into x: UnsafeMutablePointer<Self>)
}

extension Float: ArenaElement {
    public static var dtype: SafetensorsDType { .f32 }
    public static var one: Float { 1 }
    public static func widen(_ x: UnsafePointer<Float>, count n: Int, into out: UnsafeMutablePointer<Float>) {
        out.update(from: x, count: n)
    }
    public static func narrow(_ values: UnsafePointer<Float>, count n: Int, into x: UnsafeMutablePointer<Float>) {
        x.update(from: values, count: n)
    }
}

/// BF16 bits; narrowing rounds to nearest.
extension UInt16: ArenaElement {
    public static var dtype: SafetensorsDType { .bf16 }
    public static var one: UInt16 { 0x3F80 }
    public static func widen(_ x: UnsafePointer<UInt16>, count n: Int, into out: UnsafeMutablePointer<Float>) {
        qk_bf16_to_f32_array(out, x, Int64(n))
    }
    public static func narrow(_ values: UnsafePointer<Float>, count n: Int, into x: UnsafeMutablePointer<UInt16>) {
        qk_f32_to_bf16_array(x, values, Int64(n))
    }
}
