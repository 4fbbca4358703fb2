import Foundation
import QKernels
import QTrainCore

/// A weight tensor stored only as packed integer codes plus one FP32 scale (DQT).
///
/// Codes are packed by ``QuantGrid`` rules (ternary five per byte, n-bit as an n-bit stream);
/// the value of code `q` is `q / scale`. No FP32 copy of the tensor is kept: callers
/// dequantise the rows they need into scratch (``dequantize(into:from:count:)``).
public final class QuantizedTensor: @unchecked Sendable {
    public let grid: QuantGrid
    /// Number of codes.
    public let count: Int
    /// The packed codes.
    public let packed: AlignedBuffer<UInt8>
    /// Codes per unit value: the grid step is 1/scale.
    public var scale: Float
    /// The scale the next update rounds onto when a scale rule moves it (``ScaleRule/rescale``):
    /// set before the update, committed to ``scale`` and cleared after it by the weight policy.
    /// Nil otherwise, so whoever sets ``scale`` needs to know nothing of it.
    public var pendingScale: Float?

    public init(grid: QuantGrid, count: Int, scale: Float = 1, ledger: MemoryLedger?) {
        self.grid = grid
        self.count = count
        self.scale = scale
        packed = AlignedBuffer(count: grid.packedBytes(count), category: .weights, ledger: ledger)
    }

    /// Quantises `values` with the absmean rule of DQT initialisation:
    /// `scale = qp / mean(|w|)`, `q = clamp(round(w · scale), qn, qp)`.
    public func initialize(absmean values: UnsafePointer<Float>) {
        let mean = qk_abs_sum(values, Int64(count)) / Double(max(count, 1))
        setCodes(rounding: values, scale: mean > 0 ? Float(Double(grid.qp) / mean) : 1)
    }

    /// Quantises `values` on the grid whose largest code is the largest |w| (``ImportScale/absmax``).
    public func initialize(absmax values: UnsafePointer<Float>) {
        var largest: Float = 0
        for i in 0..<count { largest = Swift.max(largest, abs(values[i])) }
        guard largest > 0 else { return initialize(absmean: values) }
        setCodes(rounding: values, scale: Float(grid.qp) / largest)
    }

    /// Quantises `values` with the scale that minimises Σ(w − q/scale)² (``ImportScale/search``):
    /// 64 steps spaced geometrically from the absmax step (nothing clipped) to a quarter of
    /// absmean's (on a sample of at most 2^18 elements), then alternating refinement on every
    /// element — codes for the step, then the least-squares step Σw·q / Σq² for the codes — while
    /// the error falls. Kept only if it beats absmean. Pretrained weights have outliers far past
    /// absmean's range (which clips at mean|w|): at 8 bits the best step keeps them.
    public func initialize(searched values: UnsafePointer<Float>) {
        let mean = qk_abs_sum(values, Int64(count)) / Double(max(count, 1))
        guard mean > 0 else { return initialize(absmean: values) }
        var largest: Float = 0
        for i in 0..<count { largest = Swift.max(largest, abs(values[i])) }
        let absmean = Float(Double(grid.qp) / mean), absmax = Float(grid.qp) / largest
        let lo = Swift.min(absmax, absmean), hi = 4 * absmean
        let sampleStride = Swift.max(1, count / (1 << 18))
        var best = (scale: absmean, error: roundingError(values, scale: absmean, stride: sampleStride).error)
        for k in 0..<64 {
            let s = lo * Float(pow(Double(hi / lo), Double(k) / 63))
            let e = roundingError(values, scale: s, stride: sampleStride).error
            if e < best.error { best = (s, e) }
        }
        var current = roundingError(values, scale: best.scale, stride: 1)
        var scale = best.scale
        for _ in 0..<20 {
            guard current.qq > 0 else { break }
            let refined = Float(current.qq / current.wq)
            guard refined.isFinite, refined > 0 else { break }
            let next = roundingError(values, scale: refined, stride: 1)
            guard next.error < current.error * (1 - 1e-6) else { break }
            (scale, current) = (refined, next)
        }
        if current.error > roundingError(values, scale: absmean, stride: 1).error { scale = absmean }
        setCodes(rounding: values, scale: scale)
    }

    /// Σ(w − q/scale)² over every `stride`-th element with q = clamp(round(w·scale)), and the
    /// sums Σw·q and Σq² that give the least-squares step for those codes. Blocks of 2^16
    /// elements are summed in parallel and added in order: the same result for any thread count.
    func roundingError(_ w: UnsafePointer<Float>, scale: Float, stride: Int) -> (error: Double, wq: Double, qq: Double)
    {
        let lo = Float(grid.qn), hi = Float(grid.qp), step = 1 / scale
        let block = 1 << 16, blocks = (count + block - 1) / block
        var sums = [(Double, Double, Double)](repeating: (0, 0, 0), count: blocks)
        sums.withUnsafeMutableBufferPointer { out in
            Threads.parallelFor(blocks) { range in
                for b in range {
                    var e = 0.0, a = 0.0, c = 0.0
                    // Past the block's start, the first index on the stride.
                    var i = (b * block + stride - 1) / stride * stride
                    let end = Swift.min(count, (b + 1) * block)
                    while i < end {
                        // Float sums over runs of 4096, added in Float64, keep long sums accurate.
                        var fe: Float = 0, fa: Float = 0, fc: Float = 0
                        let runEnd = Swift.min(end, i + 4096 * stride)
                        while i < runEnd {
                            let q = Swift.min(Swift.max((w[i] * scale).rounded(.toNearestOrEven), lo), hi)
                            let d = w[i] - q * step
                            fe += d * d
                            fa += w[i] * q
                            fc += q * q
                            i += stride
                        }
                        e += Double(fe)
                        a += Double(fa)
                        c += Double(fc)
                    }
                    out[b] = (e, a, c)
                }
            }
        }
        return sums.reduce((0, 0, 0)) { ($0.0 + $1.0, $0.1 + $1.1, $0.2 + $1.2) }
    }

    /// Sets ``scale`` and every code to clamp(round(w · scale)), ties to even.
    private func setCodes(rounding values: UnsafePointer<Float>, scale: Float) {
        self.scale = scale
        setCodes { i in
            let x = (values[i] * scale).rounded(.toNearestOrEven)
            return Int8(Swift.min(Swift.max(x, Float(grid.qn)), Float(grid.qp)))
        }
    }

    /// Writes every code from `code(i)` (values must lie on the grid).
    public func setCodes(_ code: (Int) -> Int8) {
        let chunk = 4000
        var tmp = [Int8](repeating: 0, count: chunk)
        var start = 0
        while start < count {
            let n = Swift.min(chunk, count - start)
            for j in 0..<n { tmp[j] = code(start + j) }
            qk_pack_i8(packed.pointer, tmp, Int32(grid.bits), Int32(grid.qn), Int64(start), Int64(n))
            start += n
        }
    }

    /// All codes, unpacked (tests, inspection, checkpoint conversion).
    public func codes() -> [Int8] {
        var out = [Int8](repeating: 0, count: count)
        out.withUnsafeMutableBufferPointer {
            qk_unpack_i8($0.baseAddress!, packed.pointer, Int32(grid.bits), Int32(grid.qn), 0, Int64(count))
        }
        return out
    }

    /// Writes values `q / scale` of codes [start, start+count) to `out`.
    public func dequantize(into out: UnsafeMutablePointer<Float>, from start: Int, count n: Int) {
        qk_dequant(out, packed.pointer, Int32(grid.bits), Int32(grid.qn), Int64(start), Int64(n), 1 / scale)
    }

    /// The largest code (for the rescale policy).
    public func maxCode() -> Int {
        Int(qk_max_code(packed.pointer, Int32(grid.bits), Int32(grid.qn), 0, Int64(count)))
    }
}
