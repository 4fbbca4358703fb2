import Foundation
import QKernels
import QTrainCheckpoint
import QTrainCore

/// Writes a Hugging Face LLaMA folder (`qtrain-dist export --format hf`): `config.json` for
/// `LlamaForCausalLM`, `model.safetensors` with dequantised weights, tokenizer files and a
/// generation config. Our RoPE already uses Hugging Face's rotate-half layout and our tensor
/// names are theirs, so no weight is permuted. A plain LLaMA has no activation quantisation:
/// the exported model computes what `eval --activation-quant off` computes.
public enum HuggingFaceExport {
    public enum DType: String, CaseIterable, Sendable { case f32, bf16 }

    public static func write(_ ckpt: LoadedCheckpoint, weights: WeightChoice, dtype: DType, to dir: URL) throws {
        let model = try ckpt.model(batch: 1, weights: weights)
        let m = ckpt.config.model
        do {
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        } catch {
            throw QTrainError(.io, "cannot create \(dir.path): \(error.localizedDescription)")
        }
        var writer = SafetensorsWriter()
        writer.metadata["format"] = "pt"
        for spec in model.layout.specs {
            let w = model.weights, index = spec.index, count = spec.count
            writer.tensors.append(
                .init(name: spec.name, dtype: dtype == .f32 ? .f32 : .bf16, shape: spec.shape) { sink in
                    var values = [Float](repeating: 0, count: count)
                    values.withUnsafeMutableBufferPointer {
                        w.writeValues(of: index, from: 0, count: count, into: $0.baseAddress!)
                    }
                    if dtype == .f32 {
                        try values.withUnsafeBytes { try sink($0) }
                    } else {
                        var half = [UInt16](repeating: 0, count: count)
                        qk_f32_to_bf16_array(&half, values, Int64(count))
                        try half.withUnsafeBytes { try sink($0) }
                    }
                })
        }
        let tmp = dir.appendingPathComponent("model.safetensors.tmp")
        try writer.write(to: tmp)
        try rename(tmp, to: dir.appendingPathComponent("model.safetensors"))
        let eos = Int(ckpt.tokenizer.endOfText)
        let config: [String: Any] = [
            "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": m.dim,
            "intermediate_size": m.hiddenDim, "num_attention_heads": m.nHeads, "num_key_value_heads": m.kvHeads,
            "num_hidden_layers": m.nLayers, "head_dim": m.headDim, "vocab_size": m.vocabSize,
            "max_position_embeddings": m.seqLen, "rms_norm_eps": m.normEps, "rope_theta": m.ropeTheta,
            "rope_scaling": NSNull(),
            "hidden_act": "silu", "tie_word_embeddings": m.tieEmbeddings, "attention_bias": false, "mlp_bias": false,
            "initializer_range": m.initStd, "pretraining_tp": 1, "use_cache": true, "bos_token_id": NSNull(),
            "eos_token_id": eos,
            "torch_dtype": dtype == .f32 ? "float32" : "bfloat16"
        ]
        let generation: [String: Any] = [
            "_from_model_config": true, "eos_token_id": eos, "do_sample": true, "temperature": 0.8, "top_k": 50
        ]
        let provenance: [String: Any] = [
            "source_checkpoint": ckpt.directory.path, "step": ckpt.state.step, "quant": ckpt.config.quant.label,
            "weights": weights.rawValue, "fingerprint": ckpt.state.fingerprint,
            "note":
                "dequantised weights; the trained model also int8-quantised linear inputs, which a plain LLaMA does not"
        ]
        for (name, obj) in [
            ("config.json", config), ("generation_config.json", generation), ("qtrain_export.json", provenance)
        ] {
            try writeJSON(obj, to: dir.appendingPathComponent(name))
        }
        try ckpt.tokenizer.saveForHuggingFace(to: dir)
    }
}
