import ArgumentParser
import QTrainCheckpoint
import QTrainWeights

/// The checkpoint and how to compute with it: what eval and generate share.
struct InferenceOptions: ParsableArguments {
    @Argument(help: "A run directory (its newest valid checkpoint) or a checkpoint directory.")
    var checkpoint: String

    @Option(help: "stored, or ternary: re-quantise every quantised matrix to ternary (absmean) at load.")
    var weights: WeightChoice = .stored

    @Option(
        help: """
            on (as trained) or off: no int8 quantisation of linear-layer inputs, as a plain LLaMA (and the exported \
            Hugging Face and GGUF models) computes.
            """)
    var activationQuant: Switch = .on

    @Option(
        help: """
            The matmul path (quant.compute): fp32, reference, int8, int8-bf16 or auto (the default: int8 products \
            where the model has codes; no backward runs here).
            """)
    var compute: ComputePath = .auto
}
