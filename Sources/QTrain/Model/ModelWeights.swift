import Foundation
import QKernels

/// A weight matrix made of parameter tensors stacked along rows, e.g. q, k and v as one
/// (3C × C) matrix, so that one GEMM computes all of them.
public struct StackedMatrix: Sendable {
    public let params: [Int]
    public let rows: Int
    public let cols: Int

    init(_ params: [Int], layout: ParameterLayout) {
        self.params = params
        rows = params.reduce(0) { $0 + layout.specs[$1].rows }
        cols = layout.specs[params[0]].cols
    }
}

/// The weights of one model replica under a weight policy (DESIGN.md, `quant.mode`).
///
/// - fp32: every tensor in ``dense``.
/// - bitnet: latent FP32 tensors in ``dense`` (or BF16 in ``latent16`` with
///   `quant.latent_dtype: bf16`); quantised roles are ternarised (absmean, per tensor) into
///   scratch whenever a GEMM needs them.
/// - dqt: quantised roles as ``QuantizedTensor`` (codes + scale) only; the rest in ``dense``.
public final class ModelWeights: @unchecked Sendable {
    public let layout: ParameterLayout
    public let quant: QuantConfig
    /// FP32 tensors, packed one after another in layout order.
    public let dense: AlignedBuffer<Float>
    /// Offset of each tensor in ``dense``, or nil when it is stored as codes.
    public let denseOffset: [Int?]
    /// Codes of each tensor stored quantised, or nil.
    public let quantized: [QuantizedTensor?]
    /// BitNet latent tensors stored as BF16, packed one after another.
    public let latent16: AlignedBuffer<UInt16>
    /// Offset of each tensor in ``latent16``, or nil.
    public let latent16Offset: [Int?]
    /// BitNet's per-tensor ternarisation scale β = mean|W| of the current latent weights.
    private(set) var bitnetBeta: [Float]

    public init(layout: ParameterLayout, quant: QuantConfig, ledger: MemoryLedger?) {
        self.layout = layout
        self.quant = quant
        var offsets: [Int?] = [], offsets16: [Int?] = []
        var quantized: [QuantizedTensor?] = []
        var denseCount = 0, count16 = 0
        for spec in layout.specs {
            offsets.append(nil)
            offsets16.append(nil)
            quantized.append(nil)
            if quant.mode == .dqt && quant.quantizes(spec.role) {
                quantized[spec.index] = QuantizedTensor(grid: quant.grid, count: spec.count, ledger: ledger)
            } else if quant.mode == .bitnet && quant.latentType == .bf16 && quant.quantizes(spec.role) {
                offsets16[spec.index] = count16
                count16 += spec.count
            } else {
                offsets[spec.index] = denseCount
                denseCount += spec.count
            }
        }
        denseOffset = offsets
        latent16Offset = offsets16
        self.quantized = quantized
        dense = AlignedBuffer(count: denseCount, category: .weights, ledger: ledger)
        latent16 = AlignedBuffer(count: count16, category: .weights, ledger: ledger)
        bitnetBeta = [Float](repeating: 1, count: layout.specs.count)
    }

    /// Whether tensor `p` is ternarised on the fly (bitnet).
    @inline(__always) func ternarizes(_ p: Int) -> Bool {
        quant.mode == .bitnet && quant.quantizes(layout.specs[p].role)
    }

    /// Pointer to BF16 latent tensor `p`, which must be stored so.
    @inline(__always) public func latent16Pointer(_ p: Int) -> UnsafeMutablePointer<UInt16> {
        latent16.pointer + latent16Offset[p]!
    }

    /// Pointer to FP32 tensor `p`, which must be stored dense.
    @inline(__always) public func densePointer(_ p: Int) -> UnsafeMutablePointer<Float> {
        dense.pointer + denseOffset[p]!
    }

    // MARK: - Initialisation

    /// Draws every matrix from normal(0, std) and sets every gain to 1, from Philox streams
    /// keyed by (seed, tensor): the result depends only on the seed. DQT tensors then take the
    /// absmean grid; their FP32 values are generated twice in chunks (once for the mean, once
    /// to quantise) so no full FP32 copy ever exists.
    public func initialize(seed: UInt64, std: Float) {
        let chunk = 1 << 16
        for spec in layout.specs {
            let stream = RandomStream(seed: seed, purpose: .initialisation, tensor: spec.index, step: 0)
            if let q = quantized[spec.index] {
                let n = spec.count
                if !spec.role.isMatrix {
                    q.scale = Float(q.grid.qp)
                    q.setCodes { _ in Int8(q.grid.qp) }
                    continue
                }
                var tmp = [Float](repeating: 0, count: chunk)
                var absSum = 0.0
                for start in stride(from: 0, to: n, by: chunk) {
                    let m = min(chunk, n - start)
                    tmp.withUnsafeMutableBufferPointer {
                        stream.normals(into: $0.baseAddress!, start: start, count: m, std: std)
                        absSum += qk_abs_sum($0.baseAddress!, Int64(m))
                    }
                }
                let mean = absSum / Double(n)
                q.scale = mean > 0 ? Float(Double(q.grid.qp) / mean) : 1
                let scale = q.scale, lo = Float(q.grid.qn), hi = Float(q.grid.qp)
                var codes = [Int8](repeating: 0, count: chunk)
                for start in stride(from: 0, to: n, by: chunk) {
                    let m = min(chunk, n - start)
                    tmp.withUnsafeMutableBufferPointer { t in
                        stream.normals(into: t.baseAddress!, start: start, count: m, std: std)
                        for j in 0..<m {
                            codes[j] = Int8(min(max((t[j] * scale).rounded(.toNearestOrEven), lo), hi))
                        }
                    }
                    qk_pack_i8(q.packed.pointer, codes, Int32(q.grid.bits), Int32(q.grid.qn), Int64(start), Int64(m))
                }
            } else if latent16Offset[spec.index] != nil {
                let w = latent16Pointer(spec.index)
                Threads.parallelFor((spec.count + chunk - 1) / chunk) { blocks in
                    var tmp = [Float](repeating: 0, count: chunk)
                    for b in blocks {
                        let start = b * chunk, m = min(chunk, spec.count - start)
                        tmp.withUnsafeMutableBufferPointer {
                            stream.normals(into: $0.baseAddress!, start: start, count: m, std: std)
                            qk_f32_to_bf16_array(w + start, $0.baseAddress!, Int64(m))
                        }
                    }
                }
            } else {
                let w = densePointer(spec.index)
                if spec.role.isMatrix {
                    Threads.parallelFor((spec.count + chunk - 1) / chunk) { blocks in
                        for b in blocks {
                            let start = b * chunk
                            stream.normals(into: w + start, start: start, count: min(chunk, spec.count - start), std: std)
                        }
                    }
                } else {
                    for i in 0..<spec.count { w[i] = 1 }
                }
            }
        }
        refreshDerivedState()
    }

    /// Recomputes what depends on the stored weights (BitNet's β); call after every update.
    public func refreshDerivedState() {
        guard quant.mode == .bitnet else { return }
        for spec in layout.specs where ternarizes(spec.index) {
            let sum = latent16Offset[spec.index] != nil
                ? qk_abs_sum_bf16(latent16Pointer(spec.index), Int64(spec.count))
                : qk_abs_sum(densePointer(spec.index), Int64(spec.count))
            let mean = sum / Double(spec.count)
            bitnetBeta[spec.index] = Float(max(mean, 1e-5))
        }
    }

    // MARK: - Access for computation

    /// Whether `matrix` can be used in place: all parts dense, untransformed and adjacent.
    private func contiguousDense(_ matrix: StackedMatrix) -> UnsafePointer<Float>? {
        var expected: Int?
        for p in matrix.params {
            guard let off = denseOffset[p], !ternarizes(p) else { return nil }
            if let e = expected, e != off { return nil }
            expected = off + layout.specs[p].count
        }
        return UnsafePointer(dense.pointer + denseOffset[matrix.params[0]]!)
    }

    /// Calls `body(rowStart, rowCount, rows)` over blocks of the FP32 values of `matrix`.
    /// Dense matrices come in one block, in place; quantised ones are dequantised (dqt) or
    /// ternarised (bitnet) into `scratch`, at most `scratchCount / cols` rows at a time, so
    /// that no FP32 copy of a quantised tensor outlives the GEMM that uses it.
    public func forEachRowBlock(
        _ matrix: StackedMatrix, scratch: UnsafeMutablePointer<Float>, scratchCount: Int,
        _ body: (_ rowStart: Int, _ rowCount: Int, _ rows: UnsafePointer<Float>) -> Void
    ) {
        if let w = contiguousDense(matrix) {
            body(0, matrix.rows, w)
            return
        }
        let cols = matrix.cols
        let blockRows = max(1, min(matrix.rows, scratchCount / cols))
        for r0 in stride(from: 0, to: matrix.rows, by: blockRows) {
            let n = min(blockRows, matrix.rows - r0)
            Threads.parallelFor(n, minChunk: max(1, 16_384 / cols)) { rows in
                self.materialize(matrix, rows: (r0 + rows.lowerBound)..<(r0 + rows.upperBound),
                                 into: scratch + rows.lowerBound * cols)
            }
            body(r0, n, scratch)
        }
    }

    /// Writes FP32 rows `rows` of `matrix` to `out`.
    func materialize(_ matrix: StackedMatrix, rows: Range<Int>, into out: UnsafeMutablePointer<Float>) {
        var base = 0
        for p in matrix.params {
            let spec = layout.specs[p]
            let lo = max(rows.lowerBound, base), hi = min(rows.upperBound, base + spec.rows)
            if lo < hi {
                let dst = out + (lo - rows.lowerBound) * spec.cols
                let start = (lo - base) * spec.cols, n = (hi - lo) * spec.cols
                writeValues(of: p, from: start, count: n, into: dst)
            }
            base += spec.rows
        }
    }

    /// FP32 values of elements [start, start+n) of tensor `p`, as the forward pass sees them.
    @inline(__always)
    public func writeValues(of p: Int, from start: Int, count n: Int, into out: UnsafeMutablePointer<Float>) {
        if let q = quantized[p] {
            q.dequantize(into: out, from: start, count: n)
        } else if latent16Offset[p] != nil {
            qk_ternarize_bf16(out, latent16Pointer(p) + start, Int64(n), bitnetBeta[p])
        } else if ternarizes(p) {
            qk_ternarize(out, densePointer(p) + start, Int64(n), bitnetBeta[p])
        } else {
            out.update(from: densePointer(p) + start, count: n)
        }
    }
}
