import QKernels
import QTrainCore
import QTrainWeights

/// The linear layers' weights as the decoding backend (``DecodeMatmul``) multiplies them one row at a
/// time, where reading the weights is the whole cost: ternary tensors at 2 bits per weight
/// (unpacked inside the dot product), other integer codes at one byte, each tensor with its
/// step. Every product is exact in int32 before the one rescale (AVX-512 VNNI where the CPU
/// has it, portable C otherwise).
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
        for p in linear {
            let spec = l.specs[p]
            // Unpack once; ternary codes are then packed at 2 bits and the int8 copy dropped.
            let c = AlignedBuffer<Int8>(count: spec.count, category: .weights, ledger: nil)
            let groups = (spec.count + 39) / 40  // whole packing groups per piece (start a multiple of 40)
            Threads.parallelFor(groups, minChunk: 1024) { g in
                let lo = g.lowerBound * 40, hi = min(spec.count, g.upperBound * 40)
                w.policy.forwardCodes(w, of: p, from: lo, count: hi - lo, into: c.pointer + lo)
            }
            let step = w.policy.forwardCodeStep(w, of: p)!
            if UnsafeBufferPointer(start: c.pointer, count: spec.count).allSatisfy({ (-1...1).contains($0) }) {
                let rowBytes = (spec.cols + 63) / 64 * 16
                let packed = AlignedBuffer<UInt8>(count: rowBytes * spec.rows, category: .weights, ledger: nil)
                Threads.parallelFor(spec.rows, minChunk: 64) { r in
                    for i in r {
                        qk_ternary_pack2(packed.pointer + i * rowBytes, c.pointer + i * spec.cols, Int64(spec.cols))
                    }
                }
                tensors[p] = Tensor(
                    packed: packed, codes: nil, rowSums: nil, rows: spec.rows, cols: spec.cols, step: step)
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
        Threads.parallelFor(starts.last!, minChunk: 256) { range in
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
                let scale = xStep * t.step
                for j in lo..<hi {
                    let v = Float(products[j]) * scale
                    y[j] = accumulate ? y[j] + v : v
                }
            }
        }
    }
}
