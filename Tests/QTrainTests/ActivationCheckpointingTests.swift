import XCTest

@testable import QTrainCore
@testable import QTrainModel
@testable import QTrainWeights

/// `train.activation_checkpointing: blocks`: backward recomputes each block from its input and
/// gives the same loss and gradients as keeping every block's activations, in a smaller arena.
final class ActivationCheckpointingTests: XCTestCase {
    override func setUp() { Threads.configure(2) }

    func model(recompute: Bool, mode: QuantMode, compute: ComputePath, ledger: MemoryLedger) -> Model {
        var c = ModelConfig()
        (c.vocabSize, c.dim, c.nLayers, c.nHeads, c.ffnDim, c.seqLen) = (300, 64, 3, 2, 128, 16)
        var q = QuantConfig()
        q.mode = mode
        q.compute = compute
        let m = Model(config: c, quant: q, batch: 2, ledger: ledger, recomputesBlocks: recompute)
        m.weights.initialize(seed: 8, std: 0.05)
        return m
    }

    func testRecomputedBlocksGiveTheSameLossAndGradients() throws {
        var rng = TestRandom(12)
        let tokens = rng.tokens(32, below: 300), targets = rng.tokens(32, below: 300)
        let cases: [(QuantMode, ComputePath)] = [(.fp32, .fp32), (.dqt, .fp32), (.bitnet, .fp32), (.dqt, .int8BF16)]
        for (mode, compute) in cases where compute == .fp32 || ProductArithmetic.bf16.isAvailable {
            let keepLedger = MemoryLedger(), recomputeLedger = MemoryLedger()
            let keep = model(recompute: false, mode: mode, compute: compute, ledger: keepLedger)
            let again = model(recompute: true, mode: mode, compute: compute, ledger: recomputeLedger)
            var losses: [Double] = []
            for m in [keep, again] {
                m.zeroGradients()
                m.backwardSeed = 77
                losses.append(try m.forwardBackward(tokens: tokens, targets: targets, batch: 2, length: 16))
            }
            XCTAssertEqual(losses[0], losses[1], "\(mode) \(compute)")
            let n = keep.layout.count
            let a = Array(UnsafeBufferPointer(start: keep.gradients.pointer, count: n))
            let b = Array(UnsafeBufferPointer(start: again.gradients.pointer, count: n))
            let worst = zip(a, b).map { abs($0 - $1) / (abs($0) + 1e-6) }.max()!
            XCTAssertLessThanOrEqual(worst, 1e-6, "\(mode) \(compute): gradients differ by \(worst)")
            XCTAssertLessThan(recomputeLedger.bytes(.activations), keepLedger.bytes(.activations) * 2 / 3)
        }
    }

    /// A training run with recomputed blocks logs the same losses as one without, and its
    /// start-of-run memory table shows the smaller arena.
    func testTrainingWithRecomputedBlocksMatches() throws {
        let dir = temporaryDirectory(self), data = try makeSyntheticData(in: dir)
        func run(_ name: String, _ extra: [String]) throws -> (CommandResult, [String]) {
            let out = dir.appendingPathComponent(name)
            let r = try QTrainBinary.run(
                [
                    "train", "--config", repositoryFile("configs/tiny.yaml"), "--set", "data.dir=\(data.path)",
                    "--set", "model.seq_len=16", "--set", "train.steps=6", "--set", "quant.mode=dqt",
                    "--set", "log.every=1", "--set", "train.out_dir=\(out.path)"
                ] + extra)
            XCTAssertEqual(r.status, 0, r.stderr)
            let lines = try String(contentsOf: out.appendingPathComponent("metrics.jsonl"), encoding: .utf8).split(
                separator: "\n")
            let losses = lines.compactMap {
                (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["loss"] as? Double
            }
            return (r, losses.map { String($0) })
        }
        let (plain, a) = try run("plain", [])
        let (ckpt, b) = try run("ckpt", ["--set", "train.activation_checkpointing=blocks"])
        XCTAssertEqual(a.count, 6)
        XCTAssertEqual(a, b)
        func activations(_ r: CommandResult) -> String? {
            r.stdout.split(separator: "\n").first { $0.trimmingCharacters(in: .whitespaces).hasPrefix("activations") }
                .map(String.init)
        }
        XCTAssertNotNil(activations(ckpt))
        XCTAssertNotEqual(activations(plain), activations(ckpt))
    }
}
