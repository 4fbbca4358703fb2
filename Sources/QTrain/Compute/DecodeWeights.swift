import QKernels

/// The linear layers' weights as the decoder (``Generator``) multiplies them one token at a
/// time, where reading the weights is the whole cost: ternary tensors at 2 bits per weight
/// (unpacked inside the dot product), other integer codes at one byte, each tensor with its
/// step. Every product is exact in int32 before the one rescale (AVX-512 VNNI where the CPU
/// has it, portable C otherwise).
final class DecodeWeights {
    private struct Tensor {
        let ternary: Bool
        let offset: Int  // into bytes
        let rowBytes: Int
        let sums: Int  // into rowSums (int8 tensors)
        let rows: Int
        let cols: Int
        let step: Float
    }

    private let bytes: AlignedBuffer<UInt8>
    private let rowSums: AlignedBuffer<Int32>
    private var tensors: [Int: Tensor] = [:]
    /// Bytes the codes take.
    var byteCount: Int { bytes.count }

    /// Nil unless every linear layer's forward weights are integer codes times one step.
    init?(_ w: ModelWeights) {
        let l = w.layout
        let linear = l.blocks.flatMap { [$0.q, $0.k, $0.v, $0.o, $0.gate, $0.up, $0.down] } + [l.head]
        var steps: [Int: Float] = [:]
        for p in linear {
            guard let s = w.policy.forwardCodeStep(w, of: p) else { return nil }
            steps[p] = s
        }
        // Unpack each tensor once to see whether its codes are ternary, then lay it out.
        var codes: [Int: AlignedBuffer<Int8>] = [:]
        var offset = 0, sums = 0
        for p in linear {
            let spec = l.specs[p]
            let c = AlignedBuffer<Int8>(count: spec.count, category: .scratch, ledger: nil)
            let groups = (spec.count + 39) / 40  // whole packing groups per piece (start a multiple of 40)
            Threads.parallelFor(groups, minChunk: 1024) { g in
                let lo = g.lowerBound * 40, hi = min(spec.count, g.upperBound * 40)
                w.policy.forwardCodes(w, of: p, from: lo, count: hi - lo, into: c.pointer + lo)
            }
            let ternary = UnsafeBufferPointer(start: c.pointer, count: spec.count).allSatisfy { (-1...1).contains($0) }
            let rowBytes = ternary ? (spec.cols + 63) / 64 * 16 : spec.cols
            tensors[p] = Tensor(ternary: ternary, offset: offset, rowBytes: rowBytes, sums: sums, rows: spec.rows,
                                cols: spec.cols, step: steps[p]!)
            offset += (rowBytes * spec.rows + 63) / 64 * 64
            if !ternary { sums += spec.rows }
            codes[p] = c
        }
        bytes = AlignedBuffer(count: offset, category: .weights, ledger: nil)
        rowSums = AlignedBuffer(count: sums, category: .weights, ledger: nil)
        for (p, t) in tensors {
            let c = codes[p]!.pointer, dst = bytes.pointer + t.offset
            if t.ternary {
                Threads.parallelFor(t.rows, minChunk: 64) { r in
                    for i in r { qk_ternary_pack2(dst + i * t.rowBytes, c + i * t.cols, Int64(t.cols)) }
                }
            } else {
                UnsafeMutableRawPointer(dst).copyMemory(from: c, byteCount: t.rows * t.cols)
                qk_int8_row_sums(rowSums.pointer + t.sums, c, Int64(t.cols), Int64(t.rows), Int64(t.cols))
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
    func multiply(_ params: [Int], codes x: UnsafePointer<Int8>, step xStep: Float, into y: UnsafeMutablePointer<Float>,
                  products: UnsafeMutablePointer<Int32>, accumulate: Bool) {
        let parts = params.map { tensors[$0]! }
        var starts = [0]
        for t in parts { starts.append(starts.last! + t.rows) }
        let base = bytes.pointer, sums = rowSums.pointer
        Threads.parallelFor(starts.last!, minChunk: 256) { range in
            for (i, t) in parts.enumerated() {
                let lo = max(range.lowerBound, starts[i]), hi = min(range.upperBound, starts[i + 1])
                guard lo < hi else { continue }
                let r0 = lo - starts[i], n = hi - lo, w = base + t.offset + r0 * t.rowBytes
                if t.ternary {
                    qk_ternary_gemv2(products + lo, w, Int64(t.rowBytes), x, Int64(n), Int64(t.cols))
                } else {
                    qk_int8_gemv(products + lo, UnsafeRawPointer(w).assumingMemoryBound(to: Int8.self), Int64(t.rowBytes), x,
                                 Int64(n), Int64(t.cols), sums + t.sums + r0)
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
