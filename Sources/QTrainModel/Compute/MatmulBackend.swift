import QTrainCore
import QTrainWeights

/// The GEMMs of every linear layer go through a backend (DESIGN.md, "Compute paths"):
/// `quant.compute` picks one per run. A backend receives each operand in every form it may
/// want — FP32 rows, the tensors as stored (codes with their scale), and for a quantised
/// input the int8 activation codes with their per-row scales — and computes in whatever
/// arithmetic it implements. Every backend is tested against ``ReferenceGemm``.
public protocol MatmulBackend: AnyObject {
    /// A short name for logs, e.g. `fp32 (OpenBLAS)`.
    var name: String { get }
    /// What the backend needs from the model around it and computes with (its block rows,
    /// scratch, activation codes and arithmetic), known before one is built: see
    /// ``ComputeKind/needs``.
    var needs: BackendNeeds { get }

    /// out (M, N) = input (M, K) · Wᵀ, or out += … when `accumulate` (a residual add).
    func forward(
        out: UnsafeMutablePointer<Float>, input: LinearInput, rows M: Int, weights: LinearWeights,
        accumulate: Bool)

    /// dWeight (N, K) += dOutᵀ · input, piece by piece as ``WeightGradient`` hands out rows
    /// (each finished once final); dInput (M, K) = dOut · W, or += when `accumulate`.
    func backward(
        dInput: UnsafeMutablePointer<Float>, dWeight: WeightGradient, dOut: UnsafePointer<Float>,
        input: LinearInput, rows M: Int, weights: LinearWeights, accumulate: Bool) throws

    /// Called before each backward pass: a backend that rounds stochastically draws from
    /// `seed`, layer by layer in call order (the same seed repeats the same pass).
    func beginBackward(seed: UInt64)
}

extension MatmulBackend {
    public func beginBackward(seed: UInt64) {}

    /// ``backward(dInput:dWeight:dOut:input:rows:weights:accumulate:)`` adding dWeight into
    /// FP32 memory (N × K) in place.
    public func backward(
        dInput: UnsafeMutablePointer<Float>, dWeight: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>,
        input: LinearInput, rows M: Int, weights: LinearWeights, accumulate: Bool
    ) {
        // A direct destination has nothing to commit, so nothing can throw.
        try! backward(
            dInput: dInput, dWeight: .direct(dWeight, cols: weights.cols), dOut: dOut, input: input, rows: M,
            weights: weights, accumulate: accumulate)
    }
}

/// The input of a linear layer: its FP32 values (already fake-quantised when the layer
/// quantises its input) and, when the backend asked for them, the int8 codes they came from.
public struct LinearInput {
    /// (M, K) FP32 values, row-major.
    public let values: UnsafePointer<Float>
    /// (M, K) int8 codes with `values[r·K + c] == Float(codes[r·K + c]) · rowScales[r]` exactly.
    public let codes: UnsafePointer<Int8>?
    /// (M) the value of one code step in each row.
    public let rowScales: UnsafePointer<Float>?
    /// Whether every row of `values` is on the per-token int8 absmax grid (the layer quantises
    /// its input), so that a backend may recover the codes from the values alone.
    public let onCodeGrid: Bool

    public init(
        values: UnsafePointer<Float>, codes: UnsafePointer<Int8>? = nil, rowScales: UnsafePointer<Float>? = nil,
        onCodeGrid: Bool? = nil
    ) {
        self.values = values
        self.codes = codes
        self.rowScales = rowScales
        self.onCodeGrid = onCodeGrid ?? (codes != nil)
    }
}

/// The weight matrix (N × K) of a linear layer: parameter tensors stacked along rows, as the
/// forward pass uses them (FP32 row blocks) and as they are stored (one storage per part).
public struct LinearWeights {
    public let matrix: StackedMatrix
    public let weights: ModelWeights
    let scratch: UnsafeMutablePointer<Float>
    let scratchCount: Int

    /// N.
    public var rows: Int { matrix.rows }
    /// K.
    public var cols: Int { matrix.cols }

    /// Each stacked tensor's rows of the matrix and its storage (codes and scale under DQT).
    public var parts: [(rows: Range<Int>, storage: TensorStorage)] {
        var r0 = 0
        return matrix.params.map { p in
            let n = weights.layout.specs[p].rows
            defer { r0 += n }
            return (r0..<(r0 + n), weights.storage[p])
        }
    }

    /// Whether the forward pass multiplies with the stored values unchanged (so codes / scale
    /// are exactly the weights; false under BitNet, whose forward ternarises latent weights).
    public var usesStoredValues: Bool { matrix.params.allSatisfy { weights.policy.usesStoredValues($0) } }

    /// Calls `body(rowStart, rowCount, rows)` over FP32 row blocks of the forward weights: in
    /// place when they are stored so, else materialised into scratch a block at a time.
    public func forEachRowBlock(
        _ body: (_ rowStart: Int, _ rowCount: Int, _ rows: UnsafePointer<Float>) throws -> Void
    ) rethrows {
        try weights.forEachRowBlock(matrix, scratch: scratch, scratchCount: scratchCount, body)
    }
}

/// What runs a `quant.compute` path on this machine.
public enum ComputeKind: Sendable, Equatable {
    case fp32, reference
    /// Every product in BF16 (``BF16Matmul``).
    case bf16
    /// int8 forward; the input and weight gradients in the arithmetic given (int8, BF16 or FP32
    /// for dX; BF16 or FP32 for dW).
    case int8(inputGradient: ProductArithmetic, weightGradient: ProductArithmetic)

    /// What the backend of this kind needs, before one is built (``MemoryPlan`` sizes a run from it).
    public var needs: BackendNeeds {
        switch self {
        case .fp32: return FP32Matmul<Gemm>.needs
        case .reference: return FP32Matmul<ReferenceGemm>.needs
        case .bf16: return BF16Matmul.needs
        case .int8(let dX, let dW): return Int8Matmul.needs(inputGradient: dX, weightGradient: dW)
        }
    }
}

/// The `quant.compute` choices this build has.
extension ComputePath {
    /// The kind that runs this path here, and a one-line notice when the path cannot run and
    /// another stands in (or when `auto` chose). `inputsAreCodes`: whether quantised layers
    /// take int8 inputs at all. ``makeBackend`` builds it; ``MemoryPlan`` sizes it.
    public func resolved(inputsAreCodes: Bool = true) -> (kind: ComputeKind, notice: String?) {
        // Without int8 inputs (quant.mode fp32, or activation_bits 0) there is no integer product to take.
        if usesInt8Forward && !inputsAreCodes {
            if self == .auto && ProductArithmetic.bf16OutpacesFP32 && ProductArithmetic.bf16.isAvailable {
                return (.bf16, "compute auto: bf16 products with fp32 master weights (AVX-512 BF16 through oneDNN)")
            }
            return (
                .fp32,
                self == .auto
                    ? nil
                    : "notice: quant.compute \(rawValue) needs int8 layer inputs (quant.mode bitnet or dqt, activation_bits 8); computing in fp32"
            )
        }
        switch self {
        case .fp32: return (.fp32, nil)
        case .reference: return (.reference, nil)
        case .bf16:
            if ProductArithmetic.bf16.isAvailable { return (.bf16, nil) }
            return (
                .fp32,
                "notice: quant.compute bf16 cannot run here (\(ProductArithmetic.bf16.unavailableReason ?? "unavailable")); computing in fp32 instead"
            )
        case .int8: return Self.firstAvailable(of: [(.fp32, .fp32)], asked: self)
        case .int8BF16: return Self.firstAvailable(of: [(.bf16, .bf16), (.fp32, .fp32)], asked: self)
        case .int8Int8: return Self.firstAvailable(of: [(.int8, .fp32)], asked: self)
        case .int8Int8BF16: return Self.firstAvailable(of: [(.int8, .bf16), (.int8, .fp32)], asked: self)
        case .auto:
            // BF16 products only where they outpace FP32 ones (bench's peaks show the two rates).
            let bf16 = ProductArithmetic.bf16OutpacesFP32
            return Self.firstAvailable(of: bf16 ? [(.bf16, .bf16), (.fp32, .fp32)] : [(.fp32, .fp32)], asked: self)
        }
    }

    /// The first int8-forward kind whose backward arithmetic (dX, dW) runs here, else fp32, with
    /// the notice for a stand-in (or, under `auto`, for the choice).
    private static func firstAvailable(
        of backwards: [(ProductArithmetic, ProductArithmetic)], asked: ComputePath
    ) -> (kind: ComputeKind, notice: String?) {
        func describe(_ dX: ProductArithmetic, _ dW: ProductArithmetic) -> String {
            dX == dW ? "\(dX.rawValue) backward" : "\(dX.rawValue) dX, \(dW.rawValue) dW backward"
        }
        let missing = { (a: ProductArithmetic) in a.unavailableReason ?? "unavailable" }
        guard ProductArithmetic.int8.isAvailable else {
            let why = missing(.int8)
            return (
                .fp32,
                asked == .auto
                    ? "compute auto: fp32 (int8 unavailable: \(why))"
                    : "notice: quant.compute \(asked.rawValue) cannot run here (\(why)); computing in fp32 instead"
            )
        }
        let wanted = backwards[0]
        for (dX, dW) in backwards where dX.isAvailable && dW.isAvailable {
            let kind = ComputeKind.int8(inputGradient: dX, weightGradient: dW)
            if asked == .auto {
                let how =
                    dX == .bf16
                    ? "AVX-512 VNNI and BF16 through oneDNN"
                    : !ProductArithmetic.bf16.isAvailable
                        ? "bf16 unavailable: \(missing(.bf16))"
                        : "AVX-512 VNNI through oneDNN; bf16 products are no faster than fp32 on this CPU"
                return (kind, "compute auto: int8 forward, \(describe(dX, dW)) (\(how))")
            }
            if (dX, dW) == wanted { return (kind, nil) }
            let unavailable = [wanted.0, wanted.1].first { !$0.isAvailable }!
            return (
                kind,
                "notice: quant.compute \(asked.rawValue) cannot run its \(unavailable.rawValue) products here (\(missing(unavailable))); \(describe(dX, dW)) instead"
            )
        }
        return (.fp32, nil)  // unreachable: an int8 forward with an FP32 backward always runs where int8 does
    }

    /// The backend that runs this path for products of at most `maxRows` rows and inner
    /// dimension `maxInner` (`rounding`: of the incoming gradient under int8-bf16), with
    /// ``resolved(inputsAreCodes:)``'s notice.
    public func makeBackend(
        maxRows: Int, maxInner: Int, rounding: BackwardRounding = .stochastic, inputsAreCodes: Bool = true,
        ledger: MemoryLedger?
    ) -> (MatmulBackend, notice: String?) {
        let (kind, notice) = resolved(inputsAreCodes: inputsAreCodes)
        switch kind {
        case .fp32: return (FP32Matmul<Gemm>(name: "fp32 (OpenBLAS)"), notice)
        case .reference: return (FP32Matmul<ReferenceGemm>(name: "reference (triple loop, Float64 sums)"), notice)
        case .bf16: return (BF16Matmul(maxRows: maxRows, maxInner: maxInner, ledger: ledger), notice)
        case .int8(let dX, let dW):
            return (
                Int8Matmul(
                    maxRows: maxRows, maxInner: maxInner, inputGradient: dX, weightGradient: dW, rounding: rounding,
                    ledger: ledger), notice
            )
        }
    }
}
