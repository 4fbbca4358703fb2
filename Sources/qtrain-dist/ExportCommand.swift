import ArgumentParser
import Foundation
import QTrain

extension HuggingFaceExport.DType: ExpressibleByArgument {}

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export", abstract: "Write a Hugging Face LLaMA folder (config.json, model.safetensors, tokenizer files).")

    @Argument(help: "A run directory or a checkpoint directory.")
    var checkpoint: String

    @Option(help: "Export format (hf: Hugging Face LlamaForCausalLM).")
    var format: String = "hf"

    @Option(help: "Output directory.")
    var out: String

    @Option(help: "Weight dtype: f32 or bf16.")
    var dtype: HuggingFaceExport.DType = .f32

    @Option(help: "stored, or ternary (re-quantised at export).")
    var weights: WeightChoice = .stored

    func validate() throws {
        guard format == "hf" else { throw ValidationError("--format: only hf (Hugging Face LLaMA) is supported") }
    }

    func run() throws {
        try reportingErrors {
            let ckpt = try LoadedCheckpoint(path: URL(fileURLWithPath: checkpoint))
            try HuggingFaceExport.write(ckpt, weights: weights, dtype: dtype, to: URL(fileURLWithPath: out))
            print("exported \(ckpt.directory.path) (step \(ckpt.state.step), \(ckpt.config.quant.label)) to \(out) as LlamaForCausalLM, \(dtype.rawValue)")
        }
    }
}
