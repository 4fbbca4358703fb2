import QTrainCore

/// How weights are stored and updated (`quant.mode`).
public enum QuantMode: String, CaseIterable, Codable, Sendable, ConfigEnum {
    /// FP32 weights, plain AdamW.
    case fp32
    /// BitNet b1.58: FP32 latent weights, absmean ternary in the forward pass, straight-through.
    case bitnet
    /// Direct Quantized Training: packed codes only, AdamW proposal then stochastic rounding.
    case dqt
}

/// Which tensors a quantising mode covers (`quant.scope`).
public enum QuantScope: String, CaseIterable, Codable, Sendable, ConfigEnum {
    /// Every weight matrix (attention, MLP, embedding, LM head); RMSNorm gains stay FP32.
    case matrices
    /// Everything, gains included (as the authors' code does).
    case all
}

/// How a DQT tensor's scale evolves (`quant.scale`).
public enum ScaleRule: String, CaseIterable, Codable, Sendable, ConfigEnum {
    /// Absmean at initialisation, stored with the codes, never changed.
    case fixed
    /// The authors' rule: before each update, `scale = qp / max(W)` (signed maximum).
    case rescale
}

/// How imported weights (`train.init_from`, `qtrain-dist import`) get a DQT tensor's grid step
/// (`quant.import_scale`).
public enum ImportScale: String, CaseIterable, Codable, Sendable, ConfigEnum {
    /// The rule that gave the lowest loss on SmolLM2-135M: absmax at 6 bits and more (outliers
    /// matter more than rounding error), absmean for ternary (BitNet's), search otherwise.
    case auto
    /// Absmean, as at random initialisation: `scale = qp / mean(|w|)` (clips at mean|w|).
    case absmean
    /// Absmax: `scale = qp / max(|w|)`, nothing clipped.
    case absmax
    /// The step that minimises the tensor's squared rounding error Σ(w − q/scale)²: a search
    /// over steps around absmean's, then alternating least-squares refinement; never worse than
    /// absmean.
    case search
}

/// Storage of BitNet's latent weights (`quant.latent_dtype`, bitnet only).
public enum LatentType: String, CaseIterable, Codable, Sendable, ConfigEnum {
    case fp32, bf16
}

/// Which matmul backend computes the linear layers (`quant.compute`, DESIGN.md "Compute paths").
public enum ComputePath: String, CaseIterable, Codable, Sendable, ConfigEnum {
    /// FP32 GEMMs on OpenBLAS (quantised weights dequantised block by block): the default.
    case fp32
    /// The textbook triple loop with Float64 sums: the correctness reference, far slower.
    case reference
    /// Forward of every quantised layer as int8 activation codes × integer weight codes →
    /// int32 (oneDNN, AVX-512 VNNI), one rescale; backward FP32. Falls back to fp32 with a notice.
    case int8
    /// As `int8`, and both backward GEMMs of every quantised layer in BF16 with FP32
    /// accumulation (oneDNN, AVX-512 BF16): weight and input codes are exact in BF16, only the
    /// incoming gradient is rounded (`quant.backward_rounding`). Falls back with a notice.
    case int8BF16 = "int8-bf16"
    /// As `int8`, and the input gradient of every quantised layer in integers too (as in
    /// SwitchBack): the incoming gradient rounded to int8 per row (`quant.backward_rounding`),
    /// times the weight codes in oneDNN's int8 GEMM, one rescale; the weight gradient in FP32.
    case int8Int8 = "int8-int8"
    /// As `int8-int8`, with the weight gradient in BF16 as under `int8-bf16`.
    case int8Int8BF16 = "int8-int8bf16"
    /// Every GEMM of every linear layer in BF16 with FP32 accumulation (oneDNN, AVX-512 BF16),
    /// FP32 master weights and optimizer: mixed-precision training for `quant.mode: fp32`.
    case bf16
    /// The fastest path this machine supports: int8-bf16 where BF16 products outpace FP32 ones
    /// (AMD's AVX-512 BF16, AMX), else int8, else fp32.
    case auto

    /// Whether the forward pass of quantised layers runs on int8 codes.
    package var usesInt8Forward: Bool { self != .fp32 && self != .reference && self != .bf16 }
}

/// How the int8-bf16 path rounds the incoming gradient to BF16 (`quant.backward_rounding`).
public enum BackwardRounding: String, CaseIterable, Codable, Sendable, ConfigEnum {
    /// Up with probability (the dropped bits) / 2^16, so the rounded gradient is unbiased; the
    /// draws are keyed by seed, step, micro-step, rank and layer, so a resumed run repeats them.
    case stochastic
    /// To nearest, ties to even.
    case nearest
}

/// The `quant:` section.
public struct QuantConfig: Codable, Equatable, Sendable, ConfigSection {
    public var mode: QuantMode = .fp32
    /// Weight bits for dqt: 1.58 (ternary) or 2...8. Default 1.58.
    public var bits: Double?
    public var scope: QuantScope = .matrices
    /// dqt only; default fixed.
    public var scale: ScaleRule?
    /// bitnet only; default fp32.
    public var latentDtype: LatentType?
    /// Bits of the per-token absmax quantisation of every quantised linear layer's input
    /// (bitnet and dqt); 0 switches it off.
    public var activationBits = 8
    /// The matmul backend; it changes how fast, not what is trained (checkpoints do not depend on it).
    public var compute: ComputePath = .auto
    /// How `int8-bf16` rounds the incoming gradient of a quantised layer to BF16.
    public var backwardRounding: BackwardRounding = .stochastic

    /// With the defaults its mode resolves written out (dqt: bits 1.58, scale fixed; bitnet:
    /// latent dtype fp32), so that an omitted key and its default compare equal.
    public var resolved: QuantConfig {
        var q = self
        switch mode {
        case .dqt:
            q.bits = q.bits ?? 1.58
            q.scale = q.scale ?? .fixed
        case .bitnet:
            q.latentDtype = q.latentDtype ?? .fp32
        case .fp32:
            break
        }
        return q
    }

    package enum CodingKeys: String, CodingKey, CaseIterable {
        case mode, bits, scope, scale, latentDtype = "latent_dtype", activationBits = "activation_bits", compute
        case backwardRounding = "backward_rounding"
    }

    public init() {}

    package static let fields: [ConfigField<Self>] = [
        .init(.mode, \.mode), .init(.bits, \.bits), .init(.scope, \.scope), .init(.scale, \.scale),
        .init(.latentDtype, \.latentDtype), .init(.activationBits, \.activationBits), .init(.compute, \.compute),
        .init(.backwardRounding, \.backwardRounding)
    ]

    /// The grid of dqt weights (ternary unless `bits` says otherwise). Reading it with bits that
    /// ``validate(path:)`` would reject is a programming error, not a silent ternary run.
    public var grid: QuantGrid {
        guard let bits else { return .ternary }
        do { return try QuantGrid(bits: bits) } catch {
            fatalError("quant.bits = \(bits) was used without validation: \(error)")
        }
    }
    public var scaleRule: ScaleRule { scale ?? .fixed }
    public var latentType: LatentType { latentDtype ?? .fp32 }

    /// Whether every quantised linear layer's input is quantised to int8 per token.
    public var quantizesLayerInputs: Bool { mode != .fp32 && activationBits > 0 }

    /// Whether tensors of `role` are quantised (ternarised in bitnet, coded in dqt).
    public func quantizes(_ role: ParameterRole) -> Bool {
        mode != .fp32 && (role.isMatrix || scope == .all)
    }

    /// Bytes a weight matrix's element is stored in (what the memory plan counts per parameter).
    public var storedBytesPerWeight: Double {
        switch mode {
        case .fp32: return 4
        case .bitnet: return latentType == .bf16 ? 2 : 4
        case .dqt: return grid.storageBitsPerCode / 8
        }
    }

    /// A short label such as `dqt ternary` or `bitnet`.
    public var label: String {
        switch mode {
        case .fp32: return "fp32"
        case .bitnet: return latentType == .bf16 ? "bitnet (bf16 latent)" : "bitnet"
        case .dqt: return "dqt \(grid)"
        }
    }

    package func validate(path: String = "quant") throws {
        if let bits {
            _ = try QuantGrid(bits: bits)
            if mode != .dqt {
                throw QTrainError.config(
                    "config key 'quant.bits' applies only to quant.mode dqt (mode is \(mode.rawValue))",
                    hint: "remove it or set quant.mode: dqt")
            }
        }
        if scale != nil && mode != .dqt {
            throw QTrainError.config(
                "config key 'quant.scale' applies only to quant.mode dqt (mode is \(mode.rawValue))",
                hint: "remove it or set quant.mode: dqt")
        }
        if latentDtype != nil && mode != .bitnet {
            throw QTrainError.config(
                "config key 'quant.latent_dtype' applies only to quant.mode bitnet (mode is \(mode.rawValue))",
                hint: "dqt keeps no latent weights; remove the key")
        }
        try ConfigCheck(path: path).require(
            activationBits == 0 || activationBits == 8, "activation_bits", activationBits, "8, or 0 to switch it off")
    }
}
