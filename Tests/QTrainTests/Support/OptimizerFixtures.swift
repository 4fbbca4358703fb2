@testable import QTrainCore
@testable import QTrainModel
@testable import QTrainOptim
@testable import QTrainWeights

/// A one-block model (vocabulary 300, width 64) for optimizer-state tests, initialised with seed 3.
func optimizerTestModel(_ quant: QuantConfig = QuantConfig()) -> Model {
    var c = ModelConfig()
    (c.vocabSize, c.dim, c.nLayers, c.nHeads, c.ffnDim, c.seqLen) = (300, 64, 1, 2, 128, 8)
    let m = Model(config: c, quant: quant, batch: 1, ledger: nil)
    m.weights.initialize(seed: 3, std: 0.05)
    return m
}

/// AdamW with default settings and moments stored as `state`, over `range` of `m`'s layout.
func optimizerForTests(
    _ m: Model, _ state: StateType, range: Range<Int>? = nil, ledger: MemoryLedger? = nil
) -> Optimizer {
    var c = OptimConfig()
    c.stateDtype = state
    return Optimizer(config: c, layout: m.layout, range: range, ledger: ledger)
}
