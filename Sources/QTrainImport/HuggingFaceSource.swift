import Foundation
import QTrainCore
import QTrainData

extension PretrainedModel {
    /// A Hugging Face folder of a `LlamaForCausalLM`: `config.json`, `model.safetensors` or shards
    /// listed in `model.safetensors.index.json` (F32, F16 or BF16), and `tokenizer.json` or
    /// `tokenizer.model`. Tensor names and layouts are qtrain's own.
    static func huggingFace(_ dir: URL) throws -> PretrainedModel {
        func refuse(_ what: String, hint: String? = nil) -> QTrainError { Self.refuse(dir, what, hint: hint) }
        let configURL = dir.appendingPathComponent("config.json")
        guard let data = try? Data(contentsOf: configURL),
            let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else {
            throw refuse(
                "it has no readable config.json", hint: "give a GGUF file or a Hugging Face model folder")
        }
        let architectures = json["architectures"] as? [String] ?? []
        guard
            architectures.contains("LlamaForCausalLM")
                || (architectures.isEmpty && json["model_type"] as? String == "llama")
        else {
            let what =
                architectures.isEmpty
                ? (json["model_type"] as? String ?? "unnamed") : architectures.joined(separator: ", ")
            throw refuse("it is a \(what) model (config.json); qtrain imports LlamaForCausalLM")
        }
        func int(_ key: String, default value: Int? = nil) throws -> Int {
            if let v = json[key] as? Int, v > 0 { return v }
            if json[key] == nil || json[key] is NSNull, let value { return value }
            throw refuse("config.json's \(key) is missing or not a positive integer")
        }
        // RoPE: `rope_theta` and `rope_scaling` (transformers 4), or `rope_parameters` (5).
        let rope = json["rope_parameters"] as? [String: Any] ?? json["rope_scaling"] as? [String: Any] ?? [:]
        let ropeType = rope["rope_type"] as? String ?? rope["type"] as? String ?? "default"
        if ropeType != "default" {
            let factor = (rope["factor"] as? Double).map { ", factor \($0)" } ?? ""
            throw refuse(
                "it uses RoPE scaling (config.json: \(ropeType)\(factor)), which qtrain's model does not implement")
        }
        for key in ["attention_bias", "mlp_bias"] where json[key] as? Bool == true {
            throw refuse("it has biases (config.json \(key) = true), which qtrain's model does not have")
        }
        if let act = json["hidden_act"] as? String, act != "silu" {
            throw refuse("its MLP uses \(act) (config.json hidden_act); qtrain's SwiGLU uses silu")
        }
        var c = ModelConfig()
        c.dim = try int("hidden_size")
        c.nLayers = try int("num_hidden_layers")
        c.nHeads = try int("num_attention_heads")
        c.nKVHeads = try int("num_key_value_heads", default: c.nHeads)
        c.ffnDim = try int("intermediate_size")
        c.vocabSize = try int("vocab_size")
        c.seqLen = try int("max_position_embeddings", default: 2048)
        c.ropeTheta = (json["rope_theta"] as? Double) ?? (rope["rope_theta"] as? Double) ?? 10_000
        c.normEps = (json["rms_norm_eps"] as? Double) ?? 1e-6
        c.tieEmbeddings = json["tie_word_embeddings"] as? Bool ?? false
        c = try checked(c, dir)
        if let headDim = json["head_dim"] as? Int, headDim != c.headDim {
            throw refuse(
                "its heads are \(headDim) wide (config.json head_dim) but hidden_size / num_attention_heads is \(c.headDim); qtrain's model needs them equal"
            )
        }
        let files = try safetensorsFiles(dir, refuse: refuse)
        let layout = ParameterLayout(c)
        var fileOf: [String: SafetensorsFile] = [:]
        for f in files { for name in f.entries.keys { fileOf[name] = f } }
        // Saved alongside by some versions; qtrain computes them (and a tied head is the table).
        var ignored: Set<String> = []
        for name in fileOf.keys where name.hasSuffix("rotary_emb.inv_freq") { ignored.insert(name) }
        if c.tieEmbeddings { ignored.insert("lm_head.weight") }
        let names = Set(layout.specs.map(\.name))
        for name in fileOf.keys.sorted() where !names.contains(name) && !ignored.contains(name) {
            throw refuse(
                name.hasSuffix(".bias")
                    ? "it has biases (\(name)), which qtrain's model does not have"
                    : "it has a tensor qtrain's model has no place for (\(name))")
        }
        var types: [String: String] = [:]
        for spec in layout.specs {
            guard let f = fileOf[spec.name], let e = f.entries[spec.name] else {
                throw refuse("it lacks the tensor \(spec.name)")
            }
            guard e.shape == spec.shape else {
                throw refuse("\(spec.name) has shape \(e.shape) where the model's shape needs \(spec.shape)")
            }
            guard [.f32, .f16, .bf16].contains(e.dtype) else {
                throw refuse("\(spec.name) is stored as \(e.dtype.rawValue); qtrain reads F32, F16 and BF16 weights")
            }
            types[spec.name] = e.dtype.rawValue
        }
        return PretrainedModel(
            url: dir, format: .huggingFace, name: json["_name_or_path"] as? String, config: c, sourceTypes: types,
            reader: { spec, out in
                let values = try fileOf[spec.name]!.floats(spec.name)
                out.update(from: values, count: spec.count)
            },
            tokenizerReader: { try TokenizerChoice.file(dir).make(training: [], cache: dir, log: { _ in }) })
    }

    /// `model.safetensors`, or the shards `model.safetensors.index.json` lists.
    private static func safetensorsFiles(
        _ dir: URL, refuse: (String, String?) -> QTrainError
    ) throws -> [SafetensorsFile] {
        let index = dir.appendingPathComponent("model.safetensors.index.json")
        guard FileManager.default.fileExists(atPath: index.path) else {
            let single = dir.appendingPathComponent("model.safetensors")
            guard FileManager.default.fileExists(atPath: single.path) else {
                throw refuse(
                    "it has neither model.safetensors nor model.safetensors.index.json",
                    "qtrain reads safetensors weights (convert .bin weights with transformers' save_pretrained)")
            }
            return [try SafetensorsFile(url: single)]
        }
        guard let data = try? Data(contentsOf: index),
            let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let map = json["weight_map"] as? [String: String]
        else { throw refuse("model.safetensors.index.json has no weight_map", nil) }
        return try Set(map.values).sorted().map { shard in
            guard !shard.contains("/") else { throw refuse("the shard name \(shard) is not a file in the folder", nil) }
            return try SafetensorsFile(url: dir.appendingPathComponent(shard))
        }
    }
}
