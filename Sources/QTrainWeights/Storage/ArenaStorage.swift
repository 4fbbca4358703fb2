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
        Element.read(pointer + start, count: n, into: out)
    }

    public func absSum() -> Double { Element.absSum(pointer, count: count) }

    func store(_ values: UnsafePointer<Float>, at start: Int, count n: Int) {
        Element.store(values, count: n, into: pointer + start)
    }

    public func initializeOnes() { pointer.update(repeating: Element.one, count: count) }

    func adamw(
        from start: Int, count n: Int, _ g: UnsafePointer<Float>, _ m: UnsafeMutablePointer<Float>,
        _ v: UnsafeMutablePointer<Float>, _ params: inout qk_adamw_params
    ) { Element.adamw(pointer + start, g, m, v, count: n, &params) }

    public func ternarize(from start: Int, count n: Int, step: Float, into out: UnsafeMutablePointer<Float>) {
        Element.ternarize(pointer + start, count: n, step: step, into: out)
    }

    public func ternaryCodes(from start: Int, count n: Int, step: Float, into out: UnsafeMutablePointer<Int8>) {
        Element.ternaryCodes(pointer + start, count: n, step: step, into: out)
    }

    var base: UnsafeMutableRawPointer { UnsafeMutableRawPointer(pointer) }
    static var dtype: SafetensorsDType { Element.dtype }

    public func perturb() { Element.perturb(&pointer[0]) }
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

/// The element of an arena: how FP32 values are read from, stored in and updated in it.
public protocol ArenaElement {
    static var dtype: SafetensorsDType { get }
    /// 1.0 as an element.
    static var one: Self { get }
    static func read(_ x: UnsafePointer<Self>, count n: Int, into out: UnsafeMutablePointer<Float>)
    static func store(_ values: UnsafePointer<Float>, count n: Int, into x: UnsafeMutablePointer<Self>)
    /// Σ|x| summed in a fixed order.
    static func absSum(_ x: UnsafePointer<Self>, count n: Int) -> Double
    static func adamw(
        _ w: UnsafeMutablePointer<Self>, _ g: UnsafePointer<Float>, _ m: UnsafeMutablePointer<Float>,
        _ v: UnsafeMutablePointer<Float>, count n: Int, _ params: inout qk_adamw_params)
    static func ternarize(_ w: UnsafePointer<Self>, count n: Int, step: Float, into out: UnsafeMutablePointer<Float>)
    static func ternaryCodes(_ w: UnsafePointer<Self>, count n: Int, step: Float, into out: UnsafeMutablePointer<Int8>)
    /// A small change of one value (the desync test aid).
    static func perturb(_ x: inout Self)
}

extension Float: ArenaElement {
    public static var dtype: SafetensorsDType { .f32 }
    public static var one: Float { 1 }
    public static func read(_ x: UnsafePointer<Float>, count n: Int, into out: UnsafeMutablePointer<Float>) {
        out.update(from: x, count: n)
    }
    public static func store(_ values: UnsafePointer<Float>, count n: Int, into x: UnsafeMutablePointer<Float>) {
        x.update(from: values, count: n)
    }
    public static func absSum(_ x: UnsafePointer<Float>, count n: Int) -> Double { qk_abs_sum(x, Int64(n)) }
    public static func adamw(
        _ w: UnsafeMutablePointer<Float>, _ g: UnsafePointer<Float>, _ m: UnsafeMutablePointer<Float>,
        _ v: UnsafeMutablePointer<Float>, count n: Int, _ params: inout qk_adamw_params
    ) { qk_adamw(w, g, m, v, Int64(n), &params) }
    public static func ternarize(
        _ w: UnsafePointer<Float>, count n: Int, step: Float, into out: UnsafeMutablePointer<Float>
    ) { qk_ternarize(out, w, Int64(n), step) }
    public static func ternaryCodes(
        _ w: UnsafePointer<Float>, count n: Int, step: Float, into out: UnsafeMutablePointer<Int8>
    ) { qk_ternary_codes(out, w, Int64(n), step) }
    public static func perturb(_ x: inout Float) { x += 0.01 }
}

/// BF16 bits.
extension UInt16: ArenaElement {
    public static var dtype: SafetensorsDType { .bf16 }
    public static var one: UInt16 { 0x3F80 }
    public static func read(_ x: UnsafePointer<UInt16>, count n: Int, into out: UnsafeMutablePointer<Float>) {
        qk_bf16_to_f32_array(out, x, Int64(n))
    }
    /// Rounded to nearest.
    public static func store(_ values: UnsafePointer<Float>, count n: Int, into x: UnsafeMutablePointer<UInt16>) {
        qk_f32_to_bf16_array(x, values, Int64(n))
    }
    public static func absSum(_ x: UnsafePointer<UInt16>, count n: Int) -> Double { qk_abs_sum_bf16(x, Int64(n)) }
    /// Computed in FP32, stored back rounded to nearest.
    public static func adamw(
        _ w: UnsafeMutablePointer<UInt16>, _ g: UnsafePointer<Float>, _ m: UnsafeMutablePointer<Float>,
        _ v: UnsafeMutablePointer<Float>, count n: Int, _ params: inout qk_adamw_params
    ) { qk_adamw_bf16(w, g, m, v, Int64(n), &params) }
    public static func ternarize(
        _ w: UnsafePointer<UInt16>, count n: Int, step: Float, into out: UnsafeMutablePointer<Float>
    ) { qk_ternarize_bf16(out, w, Int64(n), step) }
    public static func ternaryCodes(
        _ w: UnsafePointer<UInt16>, count n: Int, step: Float, into out: UnsafeMutablePointer<Int8>
    ) { qk_ternary_codes_bf16(out, w, Int64(n), step) }
    public static func perturb(_ x: inout UInt16) { x ^= 0x0100 }
}
