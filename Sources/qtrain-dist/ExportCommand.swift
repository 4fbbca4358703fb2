import ArgumentParser
import Foundation
import QTrainCheckpoint
import QTrainExport

extension HuggingFaceExport.DType: ExpressibleByArgument {}

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write a Hugging Face LLaMA folder or a GGUF file for llama.cpp.",
        discussion: """
            --format hf writes a folder (config.json, model.safetensors with dequantised weights, \
            tokenizer files) that transformers loads as LlamaForCausalLM. --format gguf writes one \
            file that llama.cpp loads as a LLaMA model, keeping integer weights as codes: ternary as \
            TQ2_0, 2- to 4-bit as Q4_0, 5- to 8-bit as Q8_0 (rows that do not split into the type's \
            blocks fall back to Q8_0 or dense), norms in F32, the tokenizer in the metadata. Neither \
            format quantises activations: both compute what `eval --activation-quant off` does.
            """)

    @Argument(help: "A run directory or a checkpoint directory.")
    var checkpoint: String

    @Option(help: "Export format: hf (Hugging Face LlamaForCausalLM folder) or gguf (llama.cpp file).")
    var format: Format = .hf

    @Option(help: "Output directory (hf) or file (gguf).")
    var out: String

    @Option(help: "Dtype of dense weights: f32 or bf16 (gguf keeps integer codes and F32 norms either way).")
    var dtype: HuggingFaceExport.DType = .f32

    @Option(help: "stored, or ternary (re-quantised at export).")
    var weights: WeightChoice = .stored

    enum Format: String, CaseIterable, ExpressibleByArgument { case hf, gguf }

    func run() throws {
        try reportingErrors {
            let ckpt = try LoadedCheckpoint(path: URL(fileURLWithPath: checkpoint))
            let source = "\(ckpt.directory.path) (step \(ckpt.state.step), \(ckpt.config.quant.label))"
            switch format {
            case .hf:
                try HuggingFaceExport.write(ckpt, weights: weights, dtype: dtype, to: URL(fileURLWithPath: out))
                print("exported \(source) to \(out) as LlamaForCausalLM, \(dtype.rawValue)")
            case .gguf:
                let summary = try GGUFExport.write(ckpt, weights: weights, dense: dtype, to: URL(fileURLWithPath: out))
                let types = summary.types.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(
                    separator: ", ")
                print("exported \(source) to \(out) as GGUF for llama.cpp: \(types) tensors, \(summary.bytes) bytes")
                for note in summary.fallbacks { print("  \(note)") }
            }
        }
    }
}
