import Foundation
import QKernels
import QTrainCheckpoint
import QTrainCore
import QTrainData
import QTrainWeights

/// Writes a checkpoint as a GGUF file that llama.cpp runs as a LLaMA model
/// (`qtrain-dist export --format gguf`). Integer weights keep their codes: ternary as TQ2_0,
/// 2- to 4-bit grids as Q4_0, 5- to 8-bit as Q8_0, each block's FP16 step the tensor's
/// 1/scale (BitNet's β). A tensor whose rows do not split into the type's blocks falls back to
/// Q8_0 (32 codes a block) or else to F32. FP32 and BF16 weights are written dense; norm gains
/// are always F32. Q and K rows are permuted from Hugging Face's rotate-half RoPE layout to the
/// interleaved pairs of llama.cpp's, as its own converter does. Tied embeddings write no
/// `output.weight`: llama.cpp then uses `token_embd.weight` as the head.
public enum GGUFExport {
    /// What was written, for the command's summary.
    public struct Summary {
        public var bytes = 0
        /// Tensor count per ggml type name.
        public var types: [String: Int] = [:]
        /// Tensors that could not use their natural type, with the reason.
        public var fallbacks: [String] = []
    }

    public static func write(
        _ ckpt: LoadedCheckpoint, weights: WeightChoice, dense: HuggingFaceExport.DType, to url: URL
    ) throws -> Summary {
        let model = try ckpt.model(batch: 1, weights: weights)
        let w = model.weights, layout = model.layout, m = ckpt.config.model
        var file = GGUFFile()
        var summary = Summary()
        var dominant: GGUFFile.TensorType?
        for spec in layout.specs {
            let plan = try tensorPlan(spec, w, dense: dense)
            if let why = plan.fallback { summary.fallbacks.append("\(spec.name): \(why)") }
            summary.types[plan.type.name, default: 0] += 1
            if spec.role.isMatrix, spec.role != .embedding { dominant = dominant ?? plan.type }
            let rows = spec.shape.count == 2 ? spec.rows : 1, cols = spec.shape.count == 2 ? spec.cols : spec.count
            let block = spec.layer.map { layout.blocks[$0] }
            let permuted = block?.q == spec.index || block?.k == spec.index
            let order =
                permuted ? GGUFFile.ropeRowOrder(rows: rows, heads: block?.k == spec.index ? m.kvHeads : m.nHeads) : nil
            file.tensors.append(
                .init(
                    name: GGUFFile.tensorName(spec, in: layout), dims: spec.shape.count == 2 ? [cols, rows] : [cols],
                    type: plan.type
                ) { sink in
                    try encode(spec, w, plan: plan, rows: rows, cols: cols, order: order, sink: sink)
                })
        }
        file.metadata = modelMetadata(ckpt, weights: weights, fileType: fileType(dominant ?? .f32))
        file.metadata += try tokenizerMetadata(ckpt.tokenizer, vocabSize: m.vocabSize)
        try file.write(to: url)
        summary.bytes = (try? FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int) ?? 0
        return summary
    }

    struct TensorPlan {
        var type: GGUFFile.TensorType
        /// The code step, for integer types.
        var step: UInt16?
        var fallback: String?
    }

    static func tensorPlan(
        _ spec: ParameterSpec, _ w: ModelWeights, dense: HuggingFaceExport.DType
    ) throws -> TensorPlan {
        let cols = spec.shape.count == 2 ? spec.cols : spec.count
        let denseType: GGUFFile.TensorType = dense == .bf16 && spec.role.isMatrix ? .bf16 : .f32
        guard spec.role.isMatrix, let d = w.policy.forwardCodeStep(w, of: spec.index) else {
            return TensorPlan(type: denseType)
        }
        guard let step = GGUFBlocks.step(d) else {
            return TensorPlan(
                type: denseType, fallback: "its code step \(d) has no FP16 value, written \(denseType.name)")
        }
        let grid = w.codes(spec.index)?.grid ?? .ternary
        let natural: GGUFFile.TensorType = grid.bits == 0 ? .tq2_0 : grid.bits <= 4 ? .q4_0 : .q8_0
        if cols % natural.blockSize == 0 { return TensorPlan(type: natural, step: step) }
        if cols % 32 == 0 {
            return TensorPlan(
                type: .q8_0, step: step,
                fallback:
                    "rows of \(cols) are not a multiple of \(natural.blockSize) for \(natural.name), written Q8_0 (exact)"
            )
        }
        return TensorPlan(
            type: denseType, fallback: "rows of \(cols) are not a multiple of 32, written \(denseType.name)")
    }

    static func encode(
        _ spec: ParameterSpec, _ w: ModelWeights, plan: TensorPlan, rows: Int, cols: Int, order: [Int]?,
        sink: (UnsafeRawBufferPointer) throws -> Void
    ) throws {
        var out: [UInt8] = []
        out.reserveCapacity(cols / plan.type.blockSize * plan.type.blockBytes + 64)
        if let step = plan.step {
            var codes = [Int8](repeating: 0, count: spec.count)
            codes.withUnsafeMutableBufferPointer {
                w.policy.forwardCodes(w, of: spec.index, from: 0, count: spec.count, into: $0.baseAddress!)
            }
            try codes.withUnsafeBufferPointer { all in
                for r in 0..<rows {
                    let row = all.baseAddress! + (order?[r] ?? r) * cols
                    out.removeAll(keepingCapacity: true)
                    switch plan.type {
                    case .tq2_0: GGUFBlocks.tq2_0(row, count: cols, step: step, into: &out)
                    case .q4_0: GGUFBlocks.q4_0(row, count: cols, step: step, into: &out)
                    default: GGUFBlocks.q8_0(row, count: cols, step: step, into: &out)
                    }
                    try out.withUnsafeBytes { try sink($0) }
                }
            }
            return
        }
        var values = [Float](repeating: 0, count: spec.count)
        values.withUnsafeMutableBufferPointer {
            w.writeValues(of: spec.index, from: 0, count: spec.count, into: $0.baseAddress!)
        }
        var half = [UInt16](repeating: 0, count: cols)
        for r in 0..<rows {
            try values.withUnsafeBufferPointer { all in
                let row = all.baseAddress! + (order?[r] ?? r) * cols
                if plan.type == .bf16 {
                    qk_f32_to_bf16_array(&half, row, Int64(cols))
                    try half.withUnsafeBytes { try sink($0) }
                } else {
                    try sink(UnsafeRawBufferPointer(start: row, count: cols * 4))
                }
            }
        }
    }

    /// llama.cpp's file type ("mostly …") for the type of the block matrices.
    static func fileType(_ t: GGUFFile.TensorType) -> UInt32 {
        switch t {
        case .f32: return 0
        case .f16: return 1
        case .q4_0: return 2
        case .q4_1: return 3
        case .q8_0: return 7
        case .bf16: return 32
        case .tq2_0: return 37
        }
    }

    static func modelMetadata(
        _ ckpt: LoadedCheckpoint, weights: WeightChoice, fileType: UInt32
    ) -> [(String, GGUFFile.Value)] {
        let m = ckpt.config.model
        return [
            ("general.architecture", .string("llama")),
            ("general.name", .string(ckpt.directory.deletingLastPathComponent().lastPathComponent)),
            ("general.file_type", .uint32(fileType)),
            ("general.quantization_version", .uint32(2)),
            ("llama.context_length", .uint32(UInt32(m.seqLen))),
            ("llama.embedding_length", .uint32(UInt32(m.dim))),
            ("llama.block_count", .uint32(UInt32(m.nLayers))),
            ("llama.feed_forward_length", .uint32(UInt32(m.hiddenDim))),
            ("llama.attention.head_count", .uint32(UInt32(m.nHeads))),
            ("llama.attention.head_count_kv", .uint32(UInt32(m.kvHeads))),
            ("llama.rope.dimension_count", .uint32(UInt32(m.headDim))),
            ("llama.rope.freq_base", .float32(Float(m.ropeTheta))),
            ("llama.attention.layer_norm_rms_epsilon", .float32(Float(m.normEps))),
            ("llama.vocab_size", .uint32(UInt32(m.vocabSize))),
            ("qtrain.step", .uint64(UInt64(ckpt.state.step))),
            ("qtrain.quant", .string(ckpt.config.quant.label)),
            ("qtrain.weights", .string(weights.rawValue)),
            ("qtrain.fingerprint", .string(ckpt.state.fingerprint))
        ]
    }

    /// GGUF's tokenizer keys: a SentencePiece model as `llama` (pieces, scores, piece types),
    /// byte-level BPE as `gpt2` (byte-level token strings, merges, GPT-2's split pattern).
    /// Ids past the tokenizer's (a model vocabulary rounded up) are unused pad tokens.
    static func tokenizerMetadata(_ tokenizer: any Tokenizer, vocabSize: Int) throws -> [(String, GGUFFile.Value)] {
        let vocabulary = tokenizer.vocabulary
        var tokens = vocabulary.tokens, types = vocabulary.types.map(\.rawValue), scores = vocabulary.scores
        var out: [(String, GGUFFile.Value)] = [("tokenizer.ggml.model", .string(vocabulary.model.rawValue))]
        switch vocabulary.model {
        case .sentencePiece:
            if let unknown = vocabulary.unknown {
                out.append(("tokenizer.ggml.unknown_token_id", .uint32(UInt32(unknown))))
            }
            if let beginning = vocabulary.beginning {
                out.append(("tokenizer.ggml.bos_token_id", .uint32(UInt32(beginning))))
            }
            out.append(("tokenizer.ggml.add_space_prefix", .bool(vocabulary.addsSpacePrefix ?? true)))
        case .byteLevelBPE:
            out.append(("tokenizer.ggml.pre", .string(vocabulary.preTokenizer ?? "gpt-2")))
            out.append(("tokenizer.ggml.merges", .strings(vocabulary.merges)))
            out.append(("tokenizer.ggml.bos_token_id", .uint32(UInt32(tokenizer.endOfText))))
        }
        guard tokens.count <= vocabSize else {
            throw QTrainError(
                .checkpoint, "the tokenizer has \(tokens.count) tokens but the model only \(vocabSize) embeddings")
        }
        for i in tokens.count..<vocabSize {
            tokens.append("[PAD\(i)]")
            types.append(5)
            scores?.append(-1e9)
        }
        out.insert(("tokenizer.ggml.tokens", .strings(tokens)), at: 1)
        out.insert(("tokenizer.ggml.token_type", .int32s(types)), at: 2)
        if let scores { out.insert(("tokenizer.ggml.scores", .float32s(scores)), at: 3) }
        out += [
            ("tokenizer.ggml.eos_token_id", .uint32(UInt32(tokenizer.endOfText))),
            ("tokenizer.ggml.add_bos_token", .bool(false)),
            ("tokenizer.ggml.add_eos_token", .bool(false))
        ]
        return out
    }
}
