import QKernels
import QTrainCore
import QTrainWeights

/// `quant.compute: int8`, `int8-bf16`, `int8-int8` and `int8-int8bf16`: the forward product of
/// every quantised linear layer in integers — int8 activation codes × the weights' integer
/// codes → int32 (oneDNN's GEMM, AVX-512 VNNI), then one multiply by the row's activation step
/// and the tensor's weight step. The product is exact; only the final rescale rounds. The
/// backward products run in the arithmetic the path names: dX in FP32 (``FP32Matmul``), BF16
/// (``BF16Backward``) or int8 (``Int8InputGradient``), dW in FP32 or BF16. Layers whose input or
/// weights are not codes run in FP32 both ways.
///
/// Weight codes reach the GEMMs as unpacked rows, a block at a time, in scratch: no
/// persistent copy of a tensor exists beside its packed codes.
public final class Int8Matmul: MatmulBackend {
    public var name: String {
        let int8 = String(cString: qk_int8_gemm_status()), bf16 = String(cString: qk_bf16_matmul_status())
        let forward = "int8 forward (\(int8)), "
        switch (inputGradient, weightGradient) {
        case (.fp32, .fp32): return forward + "fp32 backward (OpenBLAS)"
        case (.bf16, .bf16): return forward + "bf16 backward (\(bf16))"
        case (let dX, let dW):
            let describe = { (a: ProductArithmetic) in
                a == .fp32 ? "fp32 (OpenBLAS)" : a == .bf16 ? "bf16 (\(bf16))" : "int8 (\(int8))"
            }
            return forward + "\(describe(dX)) dX, \(describe(dW)) dW"
        }
    }
    /// Weight codes in blocks of ``blockRows`` rows, activation codes, int8 forward; the
    /// backward products in the arithmetic given.
    public static func needs(inputGradient: ProductArithmetic, weightGradient: ProductArithmetic) -> BackendNeeds {
        BackendNeeds(
            weightBlockRows: blockRows, gradientRows: blockRows, activationCodes: true, forward: .int8,
            inputGradient: inputGradient, weightGradient: weightGradient,
            scratchBytes: {
                scratchBytes(maxRows: $0, maxInner: $1, inputGradient: inputGradient, weightGradient: weightGradient)
            })
    }
    public var needs: BackendNeeds { Self.needs(inputGradient: inputGradient, weightGradient: weightGradient) }
    /// Where `bench --profile` adds the time of each piece of a product (nested under the layer's).
    static var profile: OpProfile { OpProfile.shared }
    let fp32 = FP32Matmul<Gemm>(name: "fp32 (OpenBLAS)")
    /// Weight rows per GEMM (a multiple of 40, so every block starts on a packing group).
    let blockRows: Int
    public static let blockRows = 1040
    let codes: AlignedBuffer<Int8>  // (blockRows, K) weight codes
    private let products: AlignedBuffer<Int32>  // (maxRows, blockRows)
    let maxRows: Int
    let maxInner: Int
    /// The arithmetic of the backward products of quantised layers.
    public let inputGradient: ProductArithmetic
    public let weightGradient: ProductArithmetic
    /// The BF16 backward products (when either is BF16).
    package let bf16: BF16Backward?
    /// The int8 input gradient (when dX is int8).
    package let int8Gradient: Int8InputGradient?
    private var seed: UInt64 = 0
    private var call: UInt64 = 0

    /// - Parameters: maxRows: the most rows (tokens) of one product; maxInner: the largest K;
    ///   inputGradient: FP32, BF16 or int8; weightGradient: FP32 or BF16; rounding: how a
    ///   low-precision backward rounds the incoming gradient.
    public init(
        maxRows: Int, maxInner: Int, inputGradient: ProductArithmetic = .fp32,
        weightGradient: ProductArithmetic = .fp32,
        rounding: BackwardRounding = .stochastic, ledger: MemoryLedger?
    ) {
        precondition(weightGradient != .int8, "the weight gradient runs in FP32 or BF16")
        self.maxRows = maxRows
        self.maxInner = maxInner
        self.inputGradient = inputGradient
        self.weightGradient = weightGradient
        let blockRows = Self.blockRows
        self.blockRows = blockRows
        qk_int8_gemm_set_threads(Int32(Threads.count))
        codes = AlignedBuffer(count: blockRows * maxInner, category: .scratch, ledger: ledger)
        let products = AlignedBuffer<Int32>(count: maxRows * blockRows, category: .scratch, ledger: ledger)
        self.products = products
        // The rounded gradient blocks of the backward products live in the forward's product
        // buffer (a BF16 block fills it, an int8 block a quarter); they are used one after another.
        let lent = UnsafeMutableRawPointer(products.pointer)
        bf16 =
            inputGradient == .bf16 || weightGradient == .bf16
            ? BF16Backward(
                rounding: rounding, maxRows: maxRows, maxInner: maxInner, blockRows: blockRows,
                gradient: lent.bindMemory(to: UInt16.self, capacity: 2 * maxRows * blockRows),
                inputGradient: inputGradient == .bf16, weightGradient: weightGradient == .bf16, ledger: ledger)
            : nil
        int8Gradient =
            inputGradient == .int8
            ? Int8InputGradient(
                rounding: rounding, maxRows: maxRows, maxInner: maxInner, blockRows: blockRows,
                gradient: lent.bindMemory(to: Int8.self, capacity: 4 * maxRows * blockRows), ledger: ledger)
            : nil
    }

    /// Starts a backward pass: its roundings draw from `seed`, layer by layer in call order.
    public func beginBackward(seed: UInt64) {
        self.seed = seed
        call = 0
    }

    /// Bytes of scratch the path allocates for products of `maxRows` rows and inner dimension
    /// `maxInner` (Float64, for plans of sizes that would overflow Int).
    static func scratchBytes(
        maxRows: Double, maxInner: Double, inputGradient: ProductArithmetic, weightGradient: ProductArithmetic
    ) -> Double {
        let b = Double(blockRows)
        let forward = b * maxInner + 4 * maxRows * b
        let bf16 = BF16Backward.scratchBytes(
            maxRows: maxRows, maxInner: maxInner, blockRows: b, inputGradient: inputGradient == .bf16,
            weightGradient: weightGradient == .bf16)
        let int8 = inputGradient == .int8 ? Int8InputGradient.scratchBytes(maxRows: maxRows, maxInner: maxInner) : 0
        return forward + bf16 + int8
    }

    public func forward(
        out: UnsafeMutablePointer<Float>, input: LinearInput, rows M: Int, weights: LinearWeights,
        accumulate: Bool
    ) {
        let policy = weights.weights.policy, w = weights.weights
        let steps = weights.matrix.params.map { policy.forwardCodeStep(w, of: $0) }
        guard let a = input.codes, let rowSteps = input.rowScales, M <= maxRows,
            weights.cols * blockRows <= codes.count,
            steps.allSatisfy({ $0 != nil })
        else { return fp32.forward(out: out, input: input, rows: M, weights: weights, accumulate: accumulate) }
        let N = weights.rows, K = weights.cols
        for (i, part) in weights.parts.enumerated() {
            let p = weights.matrix.params[i], step = steps[i]!
            let rows = part.rows.count
            for r0 in stride(from: 0, to: rows, by: blockRows) {
                let n = min(blockRows, rows - r0)
                Self.profile.time("linear forward › unpack codes") {
                    unpackCodes(of: p, rows: r0..<(r0 + n), cols: K, weights: w)
                }
                let status = Self.profile.time("linear forward › int8 GEMM") {
                    qk_int8_gemm_nt(
                        Int64(M), Int64(n), Int64(K), a, Int64(K), codes.pointer, Int64(K), products.pointer, Int64(n))
                }
                // Checked in every build, also one made with QTRAIN_UNCHECKED=1 (-Ounchecked drops preconditions).
                if status != 0 { fatalError("oneDNN's int8 GEMM failed with status \(status)") }
                let dst = out + part.rows.lowerBound + r0
                Self.profile.time("linear forward › rescale") {
                    Threads.parallelFor(M, minChunk: 16) { r in
                        qk_rescale_i32(
                            dst + r.lowerBound * N, Int64(N), self.products.pointer + r.lowerBound * n, Int64(n),
                            Int64(r.count), Int64(n), rowSteps + r.lowerBound, step, accumulate ? 1 : 0)
                    }
                }
            }
        }
    }

    public func backward(
        dInput: UnsafeMutablePointer<Float>, dWeight: WeightGradient, dOut: UnsafePointer<Float>,
        input: LinearInput, rows M: Int, weights: LinearWeights, accumulate: Bool
    ) throws {
        let w = weights.weights, policy = w.policy
        let N = weights.rows, K = weights.cols
        let steps = weights.matrix.params.compactMap { policy.forwardCodeStep(w, of: $0) }
        // BF16 dW recovers the input's codes from its values and hands over whole blocks.
        let weightSideFits =
            weightGradient != .bf16 || (input.onCodeGrid && (dWeight.maxRows >= blockRows || dWeight.maxRows >= N))
        guard inputGradient != .fp32 || weightGradient != .fp32, M <= maxRows, K <= maxInner,
            steps.count == weights.matrix.params.count, weightSideFits
        else {
            return try fp32.backward(
                dInput: dInput, dWeight: dWeight, dOut: dOut, input: input, rows: M, weights: weights,
                accumulate: accumulate)
        }
        // Consecutive seeds of a SplitMix64 sequence (the kernels finish the mix): one per layer.
        let layerSeed = seed &+ call &* 0x9E37_79B9_7F4A_7C15
        call += 1
        if let bf16, weightGradient == .bf16 {
            try bf16.weightGradient(
                dWeight: dWeight, dOut: dOut, input: input, rows: M, weights: weights, seed: ~layerSeed)
        } else {
            try Self.profile.time("linear backward › sgemm (dW)") {
                try fp32.weightGradient(dWeight: dWeight, dOut: dOut, input: input, rows: M, weights: weights)
            }
        }
        switch inputGradient {
        case .int8:
            int8Gradient!.inputGradient(
                dInput: dInput, dOut: dOut, rows: M, weights: weights, codeSteps: steps, accumulate: accumulate,
                seed: layerSeed ^ 0x1D8E_4E27_C47D_124F, unpacker: self)
        case .bf16:
            bf16!.inputGradient(
                dInput: dInput, dOut: dOut, rows: M, weights: weights, steps: steps, accumulate: accumulate,
                seed: layerSeed, unpacker: self)
        case .fp32:
            Self.profile.time("linear backward › weights to fp32 and sgemm (dX)") {
                fp32.inputGradient(dInput: dInput, dOut: dOut, rows: M, weights: weights, accumulate: accumulate)
            }
        }
    }

    /// Unpacks the int8 codes of rows `rows` of tensor `p` (K columns) into ``codes``, in
    /// pieces of whole packing groups, one per thread (`rows` starts at a multiple of 40, so
    /// at a multiple of 40 codes), then hands each piece to `then` (its code range).
    func unpackCodes(
        of p: Int, rows: Range<Int>, cols K: Int, weights w: ModelWeights,
        then: ((Range<Int>) -> Void)? = nil
    ) {
        let total = rows.count * K, groups = (total + 39) / 40, policy = w.policy
        Threads.parallelFor(groups, minChunk: 256) { g in
            let lo = g.lowerBound * 40, hi = min(total, g.upperBound * 40)
            policy.forwardCodes(w, of: p, from: rows.lowerBound * K + lo, count: hi - lo, into: self.codes.pointer + lo)
            then?(lo..<hi)
        }
    }
}
