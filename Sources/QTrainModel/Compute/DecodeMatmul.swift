import Foundation
import QKernels
import QTrainCore
import QTrainWeights

/// The backend of decoding (`generate`, a few rows per product), where reading the weights is
/// the whole cost. Built once from a model's weights: inference may hold its own copy of them
/// (training never does). With `codes`, every linear layer whose weights are integer codes
/// times a step and whose input has int8 codes multiplies them exactly in int32
/// (``DecodeWeights``: ternary at 2 bits, other codes at one byte; AVX-512 VNNI where the CPU
/// has it), one matrix-vector product per row and one rescale, as the `int8` training path
/// computes; a product of ``gemmRows`` rows or more (a prompt) is one integer GEMM (oneDNN)
/// instead, with the same integers and the same rescale, when oneDNN's int8 GEMM can run here.
/// Everything else is FP32 on OpenBLAS, from the stored FP32 values in place or from one
/// dequantised copy. It computes no gradients.
public final class DecodeMatmul: MatmulBackend {
    private let int8: DecodeWeights?
    /// FP32 copies of the linear tensors that are neither held as codes nor FP32 in place, in
    /// layout order, so that stacked tensors stay adjacent.
    private let dense: AlignedBuffer<Float>
    private let denseOffset: [Int?]
    private let weights: ModelWeights
    /// One row of input codes, zero past its end: the ternary kernel reads whole blocks of 64.
    private let rowCodes: AlignedBuffer<Int8>
    private let products: AlignedBuffer<Int32>
    /// Products of at least this many rows go through the integer GEMM; nil: never.
    private let gemmFrom: Int?
    /// The GEMM's ternary weight rows, unpacked a block at a time (blockRows × K), and its
    /// products (maxRows × blockRows); allocated at the first GEMM.
    private var gemmCodes: AlignedBuffer<Int8>?
    private var gemmProducts: AlignedBuffer<Int32>?
    private let maxInner: Int

    /// The fewest rows a product multiplies with one integer GEMM instead of a matrix-vector
    /// product per row. Measured on a ternary 130M model (2 threads, AVX-512 VNNI): a GEMM
    /// chunk costs about 25 ms whatever its rows (unpacking the 2-bit weights, oneDNN packing
    /// them) plus 0.4 ms per row, a row by itself 1.1 ms, so they meet near 32 rows.
    public static let gemmRows = 32

    /// Starts loading oneDNN on another thread (tens of milliseconds of dynamic linking), so
    /// that it overlaps reading the checkpoint instead of delaying the prompt.
    public static func preload() {
        // Set here, before the other thread starts: the loader only adds it when unset.
        setenv("OMP_WAIT_POLICY", "PASSIVE", 0)
        Thread.detachNewThread { _ = qk_int8_gemm_available() }
    }

    /// - Parameters: codes: multiply codes by codes where the weights and inputs allow it
    ///   (false: FP32 everywhere, the reference); gemmRows: the fewest rows multiplied by one
    ///   integer GEMM (nil: every row by itself).
    public init(weights w: ModelWeights, config: ModelConfig, codes: Bool, gemmRows: Int? = DecodeMatmul.gemmRows) {
        weights = w
        let int8 = codes ? DecodeWeights(w) : nil
        self.int8 = int8
        maxInner = max(config.dim, config.hiddenDim)
        gemmFrom = gemmRows
        let l = w.layout
        let linear = l.blocks.flatMap { [$0.q, $0.k, $0.v, $0.o, $0.gate, $0.up, $0.down] } + [l.head]
        // All FP32 in place, or copies of all: a stacked matrix's parts must stay adjacent.
        let allInPlace = linear.allSatisfy { w.valuesInPlace($0) != nil }
        var offsets = [Int?](repeating: nil, count: l.specs.count), total = 0
        for p in linear.sorted() where int8?.holds(p) != true && !allInPlace {
            offsets[p] = total
            total += l.specs[p].count
        }
        denseOffset = offsets
        dense = AlignedBuffer(count: total, category: .weights, ledger: nil)
        for p in linear {
            if let at = offsets[p] { w.writeValues(of: p, from: 0, count: l.specs[p].count, into: dense.pointer + at) }
        }
        let widest = max(config.dim, config.hiddenDim)
        rowCodes = AlignedBuffer(count: (widest + 63) / 64 * 64, category: .activations, ledger: nil)
        products = AlignedBuffer(
            count: max(config.qkvWidth, 2 * config.hiddenDim, config.vocabSize), category: .activations,
            ledger: nil)
    }

    /// e.g. `ternary 2-bit (AVX-512 VNNI), prompts by int8 GEMM (oneDNN …)` or `fp32 (OpenBLAS)`.
    public var name: String {
        guard let int8 else { return "fp32 (OpenBLAS)" }
        let status = String(cString: qk_int8_gemm_status())
        let gemm = gemmFrom != nil && qk_int8_gemm_available() != 0
        return int8.name + (gemm ? ", prompts by int8 GEMM (\(status))" : ", prompts row by row (\(status))")
    }

    public var needs: BackendNeeds {
        // No FP32 rows are materialised per product (the copies are made once), so the model's
        // weight scratch can be one row.
        BackendNeeds(
            weightBlockRows: 1, gradientRows: 1, activationCodes: int8 != nil, forward: int8 != nil ? .int8 : .fp32,
            inputGradient: .fp32, weightGradient: .fp32, scratchBytes: { _, _ in 0 })
    }

    public func forward(
        out: UnsafeMutablePointer<Float>, input: LinearInput, rows M: Int, weights: LinearWeights,
        accumulate: Bool
    ) {
        let params = weights.matrix.params, N = weights.rows, K = weights.cols
        if let int8, let codes = input.codes, let steps = input.rowScales, params.allSatisfy(int8.holds) {
            if let gemmFrom, M >= gemmFrom, qk_int8_gemm_available() != 0 {
                let (scratch, products) = gemmBuffers(rows: M)
                int8.multiply(
                    params, rows: M, codes: codes, steps: steps, into: out, scratch: scratch, products: products,
                    accumulate: accumulate)
                return
            }
            let padded = (K + 63) / 64 * 64
            for r in 0..<M {
                rowCodes.pointer.update(from: codes + r * K, count: K)
                (rowCodes.pointer + K).initialize(repeating: 0, count: padded - K)
                int8.multiply(
                    params, codes: rowCodes.pointer, step: steps[r], into: out + r * N, products: products.pointer,
                    accumulate: accumulate)
            }
            return
        }
        let first = params[0]
        let w = denseOffset[first].map { UnsafePointer(dense.pointer + $0) } ?? self.weights.valuesInPlace(first)!
        Gemm.multiply(
            transB: true, m: M, n: N, k: K, a: input.values, lda: K, b: w, ldb: K, beta: accumulate ? 1 : 0,
            c: out, ldc: N)
    }

    /// The GEMM's scratch for `M` rows, allocated (or grown) on first use: decoding one token
    /// at a time never needs it.
    private func gemmBuffers(rows M: Int) -> (UnsafeMutablePointer<Int8>, UnsafeMutablePointer<Int32>) {
        let b = DecodeWeights.blockRows
        if gemmCodes == nil {
            qk_int8_gemm_set_threads(Int32(Threads.count))
            gemmCodes = AlignedBuffer(count: b * maxInner, category: .scratch, ledger: nil)
        }
        if (gemmProducts?.count ?? 0) < M * b {
            gemmProducts = AlignedBuffer(count: M * b, category: .scratch, ledger: nil)
        }
        return (gemmCodes!.pointer, gemmProducts!.pointer)
    }

    public func backward(
        dInput: UnsafeMutablePointer<Float>, dWeight: WeightGradient, dOut: UnsafePointer<Float>,
        input: LinearInput, rows M: Int, weights: LinearWeights, accumulate: Bool
    ) throws {
        fatalError("the decoding backend computes no gradients")  // a decoder's Model is never trained
    }
}
