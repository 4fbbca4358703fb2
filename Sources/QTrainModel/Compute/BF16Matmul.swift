import QKernels
import QTrainCore
import QTrainWeights

/// `quant.compute: bf16`: mixed-precision training as it is done everywhere — FP32 master
/// weights and optimizer, every GEMM of every linear layer in BF16 with FP32 accumulation
/// (oneDNN's matmul): the input, the weights (a block of rows at a time, from their FP32
/// values) and the incoming gradient rounded to nearest BF16, once per product. Meant for
/// `quant.mode: fp32` (the unquantised baseline); quantised layers are better served by the
/// int8 paths. Error per element: within 2⁻⁸ · Σ|terms| of each operand rounded (relative
/// 2⁻⁸ per rounded factor) plus FP32 accumulation.
public final class BF16Matmul: MatmulBackend {
    public var name: String { "bf16 (" + String(cString: qk_bf16_matmul_status()) + ")" }
    public static let blockRows = Int8Matmul.blockRows
    public static var needs: BackendNeeds {
        BackendNeeds(
            weightBlockRows: blockRows, gradientRows: blockRows, activationCodes: false, forward: .bf16,
            inputGradient: .bf16, weightGradient: .bf16, scratchBytes: { scratchBytes(maxRows: $0, maxInner: $1) })
    }
    public var needs: BackendNeeds { Self.needs }
    let maxRows: Int
    let maxInner: Int
    private let input: AlignedBuffer<UInt16>  // (maxRows, maxInner): the layer's input in BF16
    private let weightRows: AlignedBuffer<UInt16>  // (blockRows, maxInner)
    private let gradient: AlignedBuffer<UInt16>  // (maxRows, blockRows): dY's columns of one block
    private let fp32 = FP32Matmul<Gemm>(name: "fp32 (OpenBLAS)")

    static func scratchBytes(maxRows: Double, maxInner: Double) -> Double {
        let b = Double(blockRows)
        return 2 * maxRows * maxInner + 2 * b * maxInner + 2 * maxRows * b
    }

    public init(maxRows: Int, maxInner: Int, ledger: MemoryLedger?) {
        self.maxRows = maxRows
        self.maxInner = maxInner
        input = AlignedBuffer(count: maxRows * maxInner, category: .scratch, ledger: ledger)
        weightRows = AlignedBuffer(count: Self.blockRows * maxInner, category: .scratch, ledger: ledger)
        gradient = AlignedBuffer(count: maxRows * Self.blockRows, category: .scratch, ledger: ledger)
    }

    public func forward(
        out: UnsafeMutablePointer<Float>, input x: LinearInput, rows M: Int, weights: LinearWeights, accumulate: Bool
    ) {
        let N = weights.rows, K = weights.cols
        guard M <= maxRows, K <= maxInner else {
            return fp32.forward(out: out, input: x, rows: M, weights: weights, accumulate: accumulate)
        }
        convert(x.values, count: M * K, into: input.pointer)
        forEachBF16Block(weights) { r0, n, w in
            // out[:, r0 ..< r0+n] = x · wᵀ: w (n × K) read as its transpose (K × n).
            check(
                qk_bf16_matmul(
                    Int64(M), Int64(n), Int64(K), self.input.pointer, Int64(K), 1, w, 1, Int64(K), out + r0, Int64(N),
                    accumulate ? 1 : 0))
        }
    }

    public func backward(
        dInput: UnsafeMutablePointer<Float>, dWeight: WeightGradient, dOut: UnsafePointer<Float>,
        input x: LinearInput, rows M: Int, weights: LinearWeights, accumulate: Bool
    ) throws {
        let N = weights.rows, K = weights.cols
        guard M <= maxRows, K <= maxInner, dWeight.maxRows >= Self.blockRows || dWeight.maxRows >= N else {
            return try fp32.backward(
                dInput: dInput, dWeight: dWeight, dOut: dOut, input: x, rows: M, weights: weights,
                accumulate: accumulate)
        }
        convert(x.values, count: M * K, into: input.pointer)
        let g = gradient.pointer
        var first = true
        // Block by block of output rows (ascending, as the gradient windows commit): dY's columns
        // rounded once, then both products.
        try forEachBF16Block(weights) { r0, n, w in
            Threads.parallelFor(M, minChunk: 16) { r in
                for t in r { qk_f32_to_bf16_array(g + t * n, dOut + t * N + r0, Int64(n)) }
            }
            // dX (+)= dY[:, block] · w
            check(
                qk_bf16_matmul(
                    Int64(M), Int64(K), Int64(n), g, Int64(n), 1, w, Int64(K), 1, dInput, Int64(K),
                    (first && !accumulate) ? 0 : 1))
            first = false
            // dW[block] += dY[:, block]ᵀ · x
            let rows = r0..<(r0 + n)
            check(
                qk_bf16_matmul(
                    Int64(n), Int64(K), Int64(M), g, 1, Int64(n), input.pointer, Int64(K), 1, dWeight.rows(rows),
                    Int64(K), 1))
            try dWeight.finish(rows)
        }
    }

    /// Calls `body(rowStart, rowCount, rows)` over the weights as BF16 row blocks of at most
    /// ``blockRows`` rows.
    private func forEachBF16Block(
        _ weights: LinearWeights,
        _ body: (_ rowStart: Int, _ rowCount: Int, _ rows: UnsafePointer<UInt16>) throws -> Void
    ) rethrows {
        let K = weights.cols, w = weightRows.pointer
        try weights.forEachRowBlock { b0, rows, values in
            for r0 in stride(from: 0, to: rows, by: Self.blockRows) {
                let n = min(Self.blockRows, rows - r0)
                convert(values + r0 * K, count: n * K, into: w)
                try body(b0 + r0, n, w)
            }
        }
    }

    private func convert(_ from: UnsafePointer<Float>, count: Int, into: UnsafeMutablePointer<UInt16>) {
        Threads.parallelFor(count, minChunk: 1 << 15) { r in
            qk_f32_to_bf16_array(into + r.lowerBound, from + r.lowerBound, Int64(r.count))
        }
    }

    private func check(_ status: Int32) {
        // Checked in every build, also one made with QTRAIN_UNCHECKED=1 (-Ounchecked drops preconditions).
        if status != 0 { fatalError("oneDNN's BF16 matmul failed with status \(status)") }
    }
}
