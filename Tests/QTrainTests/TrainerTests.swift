import XCTest

@testable import QTrainCheckpoint
@testable import QTrainReport
@testable import QTrainTraining

final class TrainerTests: XCTestCase {
    func tinyConfig(_ dir: URL, data: URL) throws -> RunConfig {
        var c = try RunConfig.load(path: repositoryFile("configs/tiny.yaml"))
        c.data.dir = data.path
        c.train.outDir = dir.appendingPathComponent("run").path
        c.model.seqLen = 16
        c.train.steps = 30
        c.train.evalEvery = 15
        c.log.progress = .lines
        return c
    }

    func testTrainingLowersValidationLossAndWritesMetrics() throws {
        let dir = temporaryDirectory(self)
        let data = try makeSyntheticData(in: dir)
        let trainer = try Trainer(config: try tinyConfig(dir, data: data))
        let summary = try trainer.run()
        let first = try XCTUnwrap(summary.firstValLoss), last = try XCTUnwrap(summary.finalValLoss)
        XCTAssertLessThan(last, first - 1.5, "val loss \(first) → \(last)")
        let lines = try String(
            contentsOf: trainer.runDirectory.appendingPathComponent("metrics.jsonl"), encoding: .utf8
        )
        .split(separator: "\n")
        let records = lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        XCTAssertEqual(records.count, lines.count)
        XCTAssertEqual(records.first?["step"] as? Int, 0)
        let last3 = try XCTUnwrap(records.last)
        for key in ["step", "loss", "lr", "grad_norm", "tokens_per_s", "val_loss", "rss_bytes"] {
            XCTAssertNotNil(last3[key], "metrics.jsonl lacks \(key)")
        }
        XCTAssertEqual(last3["step"] as? Int, 30)
        XCTAssertTrue(
            FileManager.default.fileExists(atPath: trainer.runDirectory.appendingPathComponent("config.yaml").path))
        // A finished run says so (batch scripts stop requeueing on it).
        XCTAssertTrue(FileManager.default.fileExists(atPath: trainer.runDirectory.appendingPathComponent("DONE").path))

        // The loss curves draw from metrics.jsonl.
        let series = try Report.Series(runDirectory: trainer.runDirectory)
        XCTAssertEqual(series.valLoss.first?.0, 0)
        XCTAssertEqual(series.valLoss.last?.0, 30)
        XCTAssertEqual(series.loss.map(\.0), [10, 15, 20, 30])  // log.every 10, and the evaluation at 15
        let svg = Report.svg([series], title: "t")
        XCTAssertTrue(svg.hasPrefix("<svg") && svg.contains("run (fp32)") && svg.contains("<path"), svg)
        XCTAssertTrue(Report.html([series], title: "t").contains(String(format: "%.4f", last)))
        let out = dir.appendingPathComponent("curves.svg")
        let r = try QTrainBinary.run(["report", trainer.runDirectory.path, "--out", out.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(try String(contentsOf: out, encoding: .utf8).contains("</svg>"))
        XCTAssertNotEqual(try QTrainBinary.run(["report", dir.appendingPathComponent("none").path]).status, 0)
    }

    /// Same seed, same data: the same losses bit for bit; another seed differs.
    func testRunsAreDeterministic() throws {
        let dir = temporaryDirectory(self)
        let data = try makeSyntheticData(in: dir)
        var c = try tinyConfig(dir, data: data)
        c.train.steps = 5
        func losses(_ c: RunConfig) throws -> [Double] {
            let t = try Trainer(config: c)
            return try (0..<5).map { _ in try t.trainStep().loss }
        }
        XCTAssertEqual(try losses(c), try losses(c))
        var other = c
        other.train.seed = 99
        XCTAssertNotEqual(try losses(c), try losses(other))
    }

    func testGradientAccumulationMatchesLargerBatch() throws {
        let dir = temporaryDirectory(self)
        let data = try makeSyntheticData(in: dir)
        var big = try tinyConfig(dir, data: data)
        big.train.microBatch = 4
        var accum = big
        accum.train.microBatch = 2
        accum.train.gradAccum = 2
        let a = try Trainer(config: big), b = try Trainer(config: accum)
        for s in 0..<4 {
            let la = try a.trainStep().loss, lb = try b.trainStep().loss
            XCTAssertEqual(la, lb, accuracy: 1e-5 * la, "step \(s)")
        }
    }
}
