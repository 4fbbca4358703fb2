import Foundation
import QTrainCore
import QTrainData

extension PretrainedModel {
    /// A GGUF file of a `llama` model, as llama.cpp's converter writes it: `llama.*` shape keys,
    /// `token_embd`/`blk.N.*`/`output_norm`/`output` tensors (no `output` when tied), Q and K
    /// rows in llama.cpp's interleaved RoPE order (put back into rotate-half order here).
    static func gguf(_ url: URL) throws -> PretrainedModel {
        let file = try GGUFReader(url: url)
        let meta = file.metadata
        func refuse(_ what: String, hint: String? = nil) -> QTrainError { Self.refuse(url, what, hint: hint) }
        let architecture = meta["general.architecture"]?.string ?? "unnamed"
        guard architecture == "llama" else {
            throw refuse(
                "it is a `\(architecture)` model (general.architecture); qtrain imports the `llama` architecture",
                hint:
                    "only LLaMA-structured models (SmolLM, TinyLlama, LLaMA 1/2, Mistral-7B-style without sliding window) fit qtrain's model"
            )
        }
        func count(_ key: String) throws -> Int {
            guard let v = meta["llama." + key]?.integer, v > 0 else {
                throw refuse("llama.\(key) is missing or not a positive integer")
            }
            return v
        }
        if let kind = meta["llama.rope.scaling.type"]?.string, kind != "none" {
            throw refuse(
                "it uses RoPE scaling (llama.rope.scaling.type = \(kind)), which qtrain's model does not implement")
        }
        if let factor = meta["llama.rope.scaling.factor"]?.double, factor != 0, factor != 1 {
            throw refuse(
                "it uses RoPE scaling (llama.rope.scaling.factor = \(factor)), which qtrain's model does not implement")
        }
        if let experts = meta["llama.expert_count"]?.integer, experts > 0 {
            throw refuse("it is a mixture of \(experts) experts, which qtrain's model does not implement")
        }
        if case .array = meta["llama.attention.head_count_kv"] {
            throw refuse("its key/value head count differs per layer, which qtrain's model does not implement")
        }
        guard let embedding = file.tensor("token_embd.weight"), embedding.dims.count == 2 else {
            throw refuse("it has no 2-D token_embd.weight")
        }
        var c = ModelConfig()
        c.nLayers = try count("block_count")
        c.dim = try count("embedding_length")
        c.ffnDim = try count("feed_forward_length")
        c.nHeads = try count("attention.head_count")
        c.nKVHeads = meta["llama.attention.head_count_kv"]?.integer ?? c.nHeads
        c.seqLen = try count("context_length")
        c.ropeTheta = meta["llama.rope.freq_base"]?.double ?? 10_000
        c.normEps = meta["llama.attention.layer_norm_rms_epsilon"]?.double ?? 1e-5
        c.vocabSize = embedding.dims[1]
        c.tieEmbeddings = file.tensor("output.weight") == nil
        c = try checked(c, url)
        if let rotated = meta["llama.rope.dimension_count"]?.integer, rotated != c.headDim {
            throw refuse(
                "RoPE rotates \(rotated) of each head's \(c.headDim) dimensions (llama.rope.dimension_count); qtrain rotates all of them"
            )
        }
        let layout = ParameterLayout(c)
        let known = Set(layout.specs.map { GGUFFile.tensorName($0, in: layout) })
        for t in file.tensors where !known.contains(t.name) {
            let why =
                t.name.hasSuffix(".bias")
                ? "it has biases (\(t.name)), which qtrain's model does not have"
                : t.name.hasPrefix("rope_freqs")
                    ? "it has RoPE frequency factors (\(t.name): RoPE scaling), which qtrain's model does not implement"
                    : "it has a tensor qtrain's model has no place for (\(t.name))"
            throw refuse(why)
        }
        var types: [String: String] = [:]
        var infos: [Int: GGUFReader.TensorInfo] = [:]
        for spec in layout.specs {
            let name = GGUFFile.tensorName(spec, in: layout)
            guard let t = file.tensor(name) else { throw refuse("it lacks the tensor \(name)") }
            guard t.dims == spec.shape.reversed() else {
                throw refuse("\(name) has shape \(t.dims.reversed()) where the model's shape needs \(spec.shape)")
            }
            types[spec.name] = try file.readableType(of: t).name
            infos[spec.index] = t
        }
        let heads = c.nHeads, kvHeads = c.kvHeads
        return PretrainedModel(
            url: url, format: .gguf, name: meta["general.name"]?.string, config: c, sourceTypes: types,
            reader: { spec, out in
                let t = infos[spec.index]!
                let block = spec.layer.map { layout.blocks[$0] }
                guard block?.q == spec.index || block?.k == spec.index else { return try file.decode(t, into: out) }
                // Q and K rows back from llama.cpp's interleaved pairs to rotate-half order.
                var rows = [Float](repeating: 0, count: spec.count)
                try rows.withUnsafeMutableBufferPointer { try file.decode(t, into: $0.baseAddress!) }
                let order = GGUFFile.ropeRowOrder(rows: spec.rows, heads: block?.q == spec.index ? heads : kvHeads)
                rows.withUnsafeBufferPointer { r in
                    for (i, source) in order.enumerated() {
                        (out + source * spec.cols).update(from: r.baseAddress! + i * spec.cols, count: spec.cols)
                    }
                }
            },
            tokenizerReader: { try BPETokenizer(gguf: file) })
    }
}
