import QKernels
import QTrainCore
import QTrainWeights

/// The linear layers' weights as the decoding backend (``DecodeMatmul``) multiplies them: one
/// row at a time, where reading the weights is the whole cost, with ternary tensors at 2 bits
/// per weight (unpacked inside the dot product) and other integer codes at one byte, each
/// tensor with its step; or a prompt's rows at once in one integer GEMM per block of weight
/// rows (oneDNN), ternary blocks unpacked into scratch first. Every product is exact in int32
/// before the one rescale, the same in both, so a row's result does not depend on the path.
final class DecodeWeights {
    /// One tensor: 2-bit ternary rows (`packed`) or int8 rows with their code sums.
    private struct Tensor {
        let packed: AlignedBuffer<UInt8>?
        let codes: AlignedBuffer<Int8>?
        let rowSums: AlignedBuffer<Int32>?
        let rows: Int
        let cols: Int
        let step: Float
        var ternary: Bool { packed != nil }
        var rowBytes: Int { ternary ? (cols + 63) / 64 * 16 : cols }
    }

    private var tensors: [Int: Tensor] = [:]

    /// Nil unless every linear layer's forward weights are integer codes times one step.
    init?(_ w: ModelWeights) {
        let l = w.layout
        let linear = l.blocks.flatMap { [$0.q, $0.k, $0.v, $0.o, $0.gate, $0.up, $0.down] } + [l.head]
        guard linear.allSatisfy({ w.policy.forwardCodeStep(w, of: $0) != nil }) else { return nil }
        // Ternary tensors unpack into one reused buffer; an int8 tensor keeps the one it unpacked into.
        var spare: AlignedBuffer<Int8>?
        for p in linear {
            let spec = l.specs[p]
            // Unpack once; ternary codes are then packed at 2 bits and the int8 copy dropped.
            let c =
                spare.flatMap { $0.count >= spec.count ? $0 : nil }
                ?? AlignedBuffer<Int8>(count: spec.count, category: .weights, ledger: nil)
            if c === spare { spare = nil }
            let groups = (spec.count + 39) / 40  // whole packing groups per piece (start a multiple of 40)
            Threads.parallelFor(groups, minChunk: 1024) { g in
                let lo = g.lowerBound * 40, hi = min(spec.count, g.upperBound * 40)
                w.policy.forwardCodes(w, of: p, from: lo, count: hi - lo, into: c.pointer + lo)
            }
            let step = w.policy.forwardCodeStep(w, of: p)!
            // The range by a min/max reduction, which vectorises (allSatisfy stops at each element).
            var lo: Int8 = 0, hi: Int8 = 0
            for x in UnsafeBufferPointer(start: c.pointer, count: spec.count) {
                lo = min(lo, x)
                hi = max(hi, x)
            }
            if lo >= -1 && hi <= 1 {
                let rowBytes = (spec.cols + 63) / 64 * 16
                let packed = AlignedBuffer<UInt8>(count: rowBytes * spec.rows, category: .weights, ledger: nil)
                Threads.parallelFor(spec.rows, minChunk: 64) { r in
                    for i in r {
                        qk_ternary_pack2(packed.pointer + i * rowBytes, c.pointer + i * spec.cols, Int64(spec.cols))
                    }
                }
                tensors[p] = Tensor(
                    packed: packed, codes: nil, rowSums: nil, rows: spec.rows, cols: spec.cols, step: step)
                if spare == nil || spare!.count < c.count { spare = c }
            } else {
                let sums = AlignedBuffer<Int32>(count: spec.rows, category: .weights, ledger: nil)
                qk_int8_row_sums(sums.pointer, c.pointer, Int64(spec.cols), Int64(spec.rows), Int64(spec.cols))
                tensors[p] = Tensor(packed: nil, codes: c, rowSums: sums, rows: spec.rows, cols: spec.cols, step: step)
            }
        }
    }

    /// e.g. `ternary 2-bit and int8 (AVX-512 VNNI)`.
    var name: String {
        let kinds = Set(tensors.values.map(\.ternary))
        let what = kinds == [true] ? "ternary 2-bit" : kinds == [false] ? "int8" : "ternary 2-bit and int8"
        return what + (qk_int8_gemv_uses_vnni() != 0 ? " (AVX-512 VNNI)" : " (portable C)")
    }

    func holds(_ p: Int) -> Bool { tensors[p] != nil }

    /// y (the stacked rows of `params`) = (or +=) x codes · Wᵀ · xStep · each tensor's step,
    /// exact before the rescale; one parallel pass over all the rows. `x` holds whole blocks
    /// of 64 codes, zero past K.
    func multiply(
        _ params: [Int], codes x: UnsafePointer<Int8>, step xStep: Float, into y: UnsafeMutablePointer<Float>,
        products: UnsafeMutablePointer<Int32>, accumulate: Bool
    ) {
        let parts = params.map { tensors[$0]! }
        var starts = [0]
        for t in parts { starts.append(starts.last! + t.rows) }
        Threads.parallelForSpinning(starts.last!, minChunk: 256) { range in
            for (i, t) in parts.enumerated() {
                let lo = max(range.lowerBound, starts[i]), hi = min(range.upperBound, starts[i + 1])
                guard lo < hi else { continue }
                let r0 = lo - starts[i], n = hi - lo
                if let packed = t.packed {
                    qk_ternary_gemv2(
                        products + lo, packed.pointer + r0 * t.rowBytes, Int64(t.rowBytes), x, Int64(n), Int64(t.cols))
                } else {
                    qk_int8_gemv(
                        products + lo, t.codes!.pointer + r0 * t.cols, Int64(t.cols), x, Int64(n), Int64(t.cols),
                        t.rowSums!.pointer + r0)
                }
                withUnsafePointer(to: xStep) {
                    qk_rescale_i32(
                        y + lo, Int64(n), products + lo, Int64(n), 1, Int64(n), $0, t.step, accumulate ? 1 : 0)
                }
            }
        }
    }

    /// Weight rows per integer GEMM of ``multiply(_:rows:codes:steps:into:scratch:products:accumulate:)``.
    static let blockRows = 1024

    /// y (M × the stacked rows of `params`) = (or +=) X codes (M × K) · Wᵀ · each row's step ·
    /// each tensor's step, for a prompt: one integer GEMM (oneDNN; it must be available) per
    /// block of ``blockRows`` weight rows, int8 rows read in place and ternary ones unpacked
    /// into `scratch` (blockRows × K), products in `products` (M × blockRows); then the rescale
    /// of the row-by-row path, so every row equals it bit for bit.
    func multiply(
        _ params: [Int], rows M: Int, codes X: UnsafePointer<Int8>, steps: UnsafePointer<Float>,
        into y: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Int8>, products: UnsafeMutablePointer<Int32>,
        accumulate: Bool
    ) {
        let parts = params.map { tensors[$0]! }, N = parts.reduce(0) { $0 + $1.rows }
        var first = 0
        for t in parts {
            for r0 in stride(from: 0, to: t.rows, by: Self.blockRows) {
                let n = min(Self.blockRows, t.rows - r0), K = t.cols
                let w: UnsafePointer<Int8>
                if let packed = t.packed {
                    Threads.parallelFor(n, minChunk: 64) { r in
                        qk_ternary_unpack2(
                            scratch + r.lowerBound * K, Int64(K), packed.pointer + (r0 + r.lowerBound) * t.rowBytes,
                            Int64(t.rowBytes), Int64(r.count), Int64(K))
                    }
                    w = UnsafePointer(scratch)
                } else {
                    w = UnsafePointer(t.codes!.pointer + r0 * K)
                }
                let status = qk_int8_gemm_nt(Int64(M), Int64(n), Int64(K), X, Int64(K), w, Int64(K), products, Int64(n))
                // Checked in every build, also one made with QTRAIN_UNCHECKED=1 (-Ounchecked drops preconditions).
                if status != 0 { fatalError("oneDNN's int8 GEMM failed with status \(status)") }
                let dst = y + first + r0
                Threads.parallelFor(M, minChunk: 16) { r in
                    qk_rescale_i32(
                        dst + r.lowerBound * N, Int64(N), products + r.lowerBound * n, Int64(n), Int64(r.count),
                        Int64(n), steps + r.lowerBound, t.step, accumulate ? 1 : 0)
                }
            }
            first += t.rows
        }
    }
}
