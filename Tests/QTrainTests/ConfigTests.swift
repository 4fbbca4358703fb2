import XCTest

@testable import QTrainCheckpoint
@testable import QTrainCore
@testable import QTrainData
@testable import QTrainDist
@testable import QTrainOptim
@testable import QTrainWeights

final class ConfigTests: XCTestCase {
    /// Every section reads every key it writes (its field table lists each coding key once).
    func testEverySectionReadsEveryKey() {
        func keys<S: ConfigSection>(_: S.Type) -> (read: [String], known: [String]) {
            (S.fields.map(\.key.rawValue), S.CodingKeys.allCases.map(\.rawValue))
        }
        for (name, k) in [
            ("model", keys(ModelConfig.self)), ("quant", keys(QuantConfig.self)), ("optim", keys(OptimConfig.self)),
            ("data", keys(DataConfig.self)), ("train", keys(TrainSection.self)), ("log", keys(LogSection.self)),
            ("dist", keys(DistConfig.self)), ("checkpoint", keys(CheckpointConfig.self)), ("run", keys(RunConfig.self))
        ] {
            XCTAssertEqual(k.read, k.known, name)
        }
    }

    func write(_ yaml: String) -> String {
        let dir = temporaryDirectory(self)
        let url = dir.appendingPathComponent("c.yaml")
        try! yaml.write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }

    func error(_ yaml: String, overrides: [String] = []) -> QTrainError? {
        do {
            _ = try RunConfig.load(path: write(yaml), overrides: overrides)
            return nil
        } catch let e as QTrainError {
            return e
        } catch {
            XCTFail("unexpected error type \(error)")
            return nil
        }
    }

    func testShippedConfigsLoad() throws {
        for name in ["tiny", "small", "130m"] {
            let c = try RunConfig.load(path: repositoryFile("configs/\(name).yaml"))
            XCTAssertGreaterThan(c.model.dim, 0)
        }
        let c = try RunConfig.load(path: repositoryFile("configs/130m.yaml"))
        XCTAssertEqual(
            [c.model.dim, c.model.nLayers, c.model.nHeads, c.model.hiddenDim, c.model.seqLen, c.model.vocabSize],
            [768, 12, 12, 2048, 512, 32002])
        XCTAssertEqual(c.optim.lr, 5e-4)
        XCTAssertEqual(c.optim.eps, 1e-6)
    }

    func testDefaultsAreThePapers() {
        let o = OptimConfig()
        XCTAssertEqual([o.lr, o.beta1, o.beta2, o.eps, o.weightDecay, o.gradClip], [5e-4, 0.9, 0.999, 1e-6, 0.01, 1.0])
        XCTAssertEqual(o.warmupSteps, 2000)
        XCTAssertEqual(o.schedule, .cosine)
        XCTAssertEqual(o.stateDtype, .fp32)
    }

    func testUnknownKeyNamesKeyAndNearest() {
        let e = error("optim:\n  lrr: 0.1\n")
        XCTAssertEqual(e?.kind, .config)
        XCTAssertTrue(e?.description.contains("'optim.lrr'") ?? false, e?.description ?? "")
        XCTAssertTrue(e?.description.contains("did you mean 'optim.lr'") ?? false, e?.description ?? "")
        let s = error("modle:\n  dim: 8\n")
        XCTAssertTrue(s?.description.contains("'modle'") ?? false)
        XCTAssertTrue(s?.description.contains("did you mean 'model'") ?? false, s?.description ?? "")
    }

    func testWrongTypeNamesKeyAndValue() {
        let e = error("optim:\n  lr: fast\n")
        XCTAssertEqual(e?.description, "config key 'optim.lr' expects a number, got 'fast'")
        let m = error("quant:\n  mode: dqq\n")
        XCTAssertTrue(m?.description.contains("quant.mode") ?? false, m?.description ?? "")
        XCTAssertTrue(m?.description.contains("fp32, bitnet, dqt") ?? false, m?.description ?? "")
        let s = error("optim:\n  state_dtype: int4\n")
        XCTAssertTrue(s?.description.contains("optim.state_dtype") ?? false, s?.description ?? "")
        XCTAssertTrue(s?.description.contains("fp32, bf16, int8") ?? false, s?.description ?? "")
    }

    func testOutOfRangeValues() {
        XCTAssertTrue(error("model:\n  dim: 32\n  n_heads: 5\n")?.description.contains("model.n_heads") ?? false)
        XCTAssertTrue(error("optim:\n  lr: -1\n")?.description.contains("optim.lr") ?? false)
        XCTAssertTrue(error("train:\n  micro_batch: 0\n")?.description.contains("train.micro_batch") ?? false)
        XCTAssertTrue(error("optim:\n  beta2: 1.5\n")?.description.contains("optim.beta2") ?? false)
    }

    func testOverridesApplyAndAreChecked() throws {
        let path = write("optim:\n  lr: 0.01\n")
        let c = try RunConfig.load(
            path: path, overrides: ["optim.lr=3e-4", "model.dim=48", "quant.mode=dqt", "quant.bits=8"])
        XCTAssertEqual(c.optim.lr, 3e-4)
        XCTAssertEqual(c.model.dim, 48)
        XCTAssertEqual(c.quant.grid, try QuantGrid(bits: 8))
        XCTAssertThrowsError(try RunConfig.load(path: path, overrides: ["optim.lrr=1"])) {
            XCTAssertTrue("\($0)".contains("did you mean 'optim.lr'"))
        }
        XCTAssertThrowsError(try RunConfig.load(path: path, overrides: ["lr=1"]))
        XCTAssertThrowsError(try RunConfig.load(path: path, overrides: ["optim.lr"]))
    }

    func testMissingFileAndBadYAML() {
        XCTAssertThrowsError(try RunConfig.load(path: "/nonexistent/x.yaml")) {
            XCTAssertTrue("\($0)".contains("does not exist"))
        }
        XCTAssertTrue(error("model: [1, 2\n")?.description.contains("not valid YAML") ?? false)
        XCTAssertTrue(error("- a\n- b\n")?.description.contains("mapping") ?? false)
    }

    func testYAMLRoundTrip() throws {
        var c = RunConfig()
        c.optim.lr = 1.25e-3
        c.quant.mode = .dqt
        c.quant.bits = 4
        let path = write(c.yaml())
        // The file spells out the defaults the mode resolves (quant.scale: fixed).
        var resolved = c
        resolved.quant = c.quant.resolved
        XCTAssertEqual(resolved.quant.scale, .fixed)
        XCTAssertEqual(try RunConfig.load(path: path), resolved)
        XCTAssertEqual(try RunConfig.load(path: path).yaml(), c.yaml())
    }

    /// `data.mix` reads as a mapping sorted by path, whatever the written order, and saves
    /// without `data.dir`, so the saved config reads back as the same run.
    func testDataMixIsParsedSortedAndRoundTrips() throws {
        let c = try RunConfig.load(path: write("data:\n  mix:\n    data/sotu: 0.7\n    data/shakespeare: 0.3\n"))
        let mix = try XCTUnwrap(c.data.mix)
        XCTAssertEqual(mix.entries.map(\.path), ["data/shakespeare", "data/sotu"])
        XCTAssertEqual(mix.entries.map(\.weight), [0.3, 0.7])
        XCTAssertEqual(c.data.sources, mix.entries)
        XCTAssertEqual(c.data.firstDirectory, "data/shakespeare")
        let reordered = try RunConfig.load(path: write("data:\n  mix: {data/shakespeare: 3, data/sotu: 7}\n"))
        XCTAssertEqual(reordered.data.mix?.normalizedWeights, [0.3, 0.7])
        XCTAssertTrue(c.yaml().contains("data:\n  mix:\n    data/shakespeare: 0.3\n    data/sotu: 0.7\n"), c.yaml())
        XCTAssertFalse(c.yaml().contains("\n  dir:"), c.yaml())
        XCTAssertEqual(try RunConfig.parse(yaml: c.yaml()), c)
        // On the command line, after clearing a file's data.dir.
        let set = try RunConfig.load(
            path: repositoryFile("configs/tiny.yaml"), overrides: ["data.dir=null", "data.mix={a: 1, b: 2}"])
        XCTAssertEqual(set.data.mix, DataMix(["a": 1, "b": 2]))
        // Without a mix, data.dir as before (written or not).
        XCTAssertEqual(RunConfig().data.sources, [DataMix.Entry(path: "data/sotu", weight: 1)])
        XCTAssertEqual(try RunConfig.parse(yaml: RunConfig().yaml()).data, RunConfig().data)
    }

    func testBadDataMixIsRefusedNamingTheKey() {
        let negative = error("data:\n  mix:\n    data/a: -1\n    data/b: 1\n")
        XCTAssertEqual(negative?.kind, .config)
        XCTAssertEqual(
            negative?.description, "config key 'data.mix.data/a' = -1.0 is out of range: a weight > 0 and finite")
        XCTAssertTrue(error("data:\n  mix:\n    data/a: 0\n")?.description.contains("'data.mix.data/a'") ?? false)
        XCTAssertTrue(error("data:\n  mix:\n    data/a: .nan\n")?.description.contains("'data.mix.data/a'") ?? false)
        let word = error("data:\n  mix:\n    data/a: lots\n")
        XCTAssertTrue(
            word?.description.contains("'data.mix.data/a' expects a number") ?? false, "\(String(describing: word))")
        let list = error("data:\n  mix: [data/a, data/b]\n")
        XCTAssertTrue(
            list?.description.contains("'data.mix' expects a mapping") ?? false, "\(String(describing: list))")
        XCTAssertTrue(error("data:\n  mix: {}\n")?.description.contains("at least one") ?? false)
        let both = error("data:\n  dir: data/sotu\n  mix:\n    data/a: 1\n")
        XCTAssertEqual(both?.kind, .config)
        XCTAssertTrue(both?.description.contains("'data.dir' and 'data.mix' are both set") ?? false)
        XCTAssertTrue(both?.description.contains("--set data.dir=null") ?? false)
    }
}
