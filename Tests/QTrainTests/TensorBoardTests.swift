import XCTest

@testable import QTrainTraining

/// `log.tensorboard: true`: the event files, read back with the `tensorboard` package, hold
/// every number of every `metrics.jsonl` record at its step, across a resume.
final class TensorBoardTests: XCTestCase {
    func testEventFilesHoldEveryMetric() throws {
        guard TestPython.has(["tensorboard"]) else {
            throw XCTSkip("no Python with the tensorboard package (launch/test.sh installs it)")
        }
        let dir = temporaryDirectory(self)
        let data = try makeSyntheticData(in: dir)
        let run = dir.appendingPathComponent("run")
        func train(_ steps: Int) throws {
            let r = try QTrainBinary.run([
                "train", "--config", repositoryFile("configs/tiny.yaml"), "--set", "data.dir=\(data.path)",
                "--set", "quant.mode=dqt", "--set", "model.seq_len=16", "--set", "train.steps=\(steps)",
                "--set", "train.eval_every=10", "--set", "train.eval_sequences=4", "--set", "log.every=5",
                "--set", "log.tensorboard=true", "--set", "train.out_dir=\(run.path)"
            ])
            XCTAssertEqual(r.status, 0, r.stderr)
        }
        try train(10)
        try train(20)  // resumes from step 10: a second event file
        let files = try FileManager.default.contentsOfDirectory(atPath: run.appendingPathComponent("tensorboard").path)
        XCTAssertEqual(files.filter { $0.hasPrefix("events.out.tfevents.") }.count, 2, "\(files)")
        let r = try TestPython.run(
            """
            import sys, json
            from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
            ea = EventAccumulator(sys.argv[1] + "/tensorboard", size_guidance={"scalars": 0})
            ea.Reload()
            out = {tag: [[e.step, e.value] for e in ea.Scalars(tag)] for tag in ea.Tags()["scalars"]}
            print(json.dumps(out))
            """, [run.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let events = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: [[Double]]])
        // What metrics.jsonl says, read as plain JSON and flattened here (nested keys as `outer/inner`).
        func flatten(_ obj: [String: Any], prefix: String = "") -> [(String, Double)] {
            obj.flatMap { key, value -> [(String, Double)] in
                if prefix.isEmpty && key == "step" { return [] }
                let tag = prefix.isEmpty ? key : prefix + "/" + key
                if let nested = value as? [String: Any] { return flatten(nested, prefix: tag) }
                return (value as? NSNumber).map { [(tag, $0.doubleValue)] } ?? []
            }
        }
        var expected: [String: [(Int, Double)]] = [:]
        for line in try String(contentsOf: run.appendingPathComponent("metrics.jsonl"), encoding: .utf8).split(
            separator: "\n")
        {
            let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let step = try XCTUnwrap(obj["step"] as? Int)
            for (tag, value) in flatten(obj) { expected[tag, default: []].append((step, value)) }
        }
        for tag in [
            "loss", "val_loss", "lr", "grad_norm", "tokens_per_s", "rss_bytes", "code_change",
            "code_change_by_role/mlp",
            "code_change_by_role/attention", "code_change_by_role/embedding", "code_change_by_role/head"
        ] {
            XCTAssertNotNil(expected[tag], tag)
        }
        XCTAssertEqual(Set(events.keys), Set(expected.keys))
        for (tag, points) in expected {
            let got = try XCTUnwrap(events[tag], tag)
            XCTAssertEqual(got.map { Int($0[0]) }, points.map(\.0), tag)
            for (g, e) in zip(got, points) {
                XCTAssertEqual(g[1], Double(Float(e.1)), accuracy: abs(e.1) * 1e-6, "\(tag) at step \(e.0)")
            }
        }
        XCTAssertEqual(expected["loss"]?.map(\.0), [5, 10, 15, 20])
        XCTAssertEqual(expected["val_loss"]?.map(\.0), [0, 10, 20])
    }

    /// The record framing and checksum of TensorFlow's record files (CRC-32C's check value).
    func testCRC32C() {
        XCTAssertEqual(CRC32C.checksum(Array("123456789".utf8)), 0xE306_9283)
    }
}
