import XCTest

@testable import QTrainModel

final class BenchTests: XCTestCase {
    func testBenchJSONHasTheDocumentedKeys() throws {
        let r = try QTrainBinary.run([
            "bench", "--config", repositoryFile("configs/tiny.yaml"), "--steps", "2", "--json"
        ])
        XCTAssertEqual(r.status, 0, r.stderr)
        let last = try XCTUnwrap(r.stdout.split(separator: "\n").last)
        let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any])
        for key in ["tokens_per_s", "gflops", "peak_gflops", "mfu", "step_s", "phases", "memory"] {
            XCTAssertNotNil(obj[key], "bench --json lacks \(key)")
        }
        let phases = try XCTUnwrap(obj["phases"] as? [String: Double])
        XCTAssertEqual(Set(phases.keys), ["forward", "backward", "optimizer"])
        let memory = try XCTUnwrap(obj["memory"] as? [String: Any])
        XCTAssertEqual(memory["bytes_per_param"] as? Double ?? 0, 16, accuracy: 1e-9)
        XCTAssertGreaterThan(memory["peak_rss_bytes"] as? Int ?? 0, 0)
        XCTAssertGreaterThan(obj["peak_gflops"] as? Double ?? 0, 1)
        let mfu = try XCTUnwrap(obj["phase_path_mfu"] as? [String: Double])
        XCTAssertEqual(Set(mfu.keys), ["forward", "backward"])
        XCTAssertTrue(mfu.values.allSatisfy { $0 > 0 && $0 < 1.5 }, "\(mfu)")
    }

    /// `bench --profile` on an int8 path lists the pieces of each product under its layer, and
    /// the phases carry their path MFU.
    func testProfileShowsThePiecesOfEachProduct() throws {
        try XCTSkipUnless(ProductArithmetic.int8.isAvailable, ProductArithmetic.int8.unavailableReason ?? "")
        let r = try QTrainBinary.run([
            "bench", "--config", repositoryFile("configs/tiny.yaml"), "--set", "quant.mode=dqt",
            "--set", "quant.compute=int8-int8", "--steps", "1", "--warmup", "0", "--profile"
        ])
        XCTAssertEqual(r.status, 0, r.stderr)
        for piece in [
            "linear backward", "  · int8 GEMM (dX)", "  · sgemm (dW)", "  · round dY", "linear forward",
            "  · int8 GEMM ", "path MFU"
        ] {
            XCTAssertTrue(r.stdout.contains(piece), "no '\(piece)' in\n\(r.stdout)")
        }
    }

    /// `bench --checkpoint` writes and verifies a real checkpoint (both files, checksums
    /// included) in the run directory and leaves nothing behind.
    func testBenchTimesACheckpointAndCleansUp() throws {
        let dir = temporaryDirectory(self)
        let r = try QTrainBinary.run([
            "bench", "--config", repositoryFile("configs/tiny.yaml"), "--set", "quant.mode=dqt",
            "--set", "train.out_dir=\(dir.path)", "--steps", "1", "--warmup", "0", "--checkpoint", "--json"
        ])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("checkpoint: "), r.stdout)
        let obj = try XCTUnwrap(
            try JSONSerialization.jsonObject(with: Data(r.stdout.split(separator: "\n").last!.utf8)) as? [String: Any])
        let timing = try XCTUnwrap(obj["checkpoint"] as? [String: Any])
        // The codes, the norms and AdamW's two moments: more than 8 bytes per parameter.
        let parameters = try XCTUnwrap(obj["parameters"] as? Int)
        XCTAssertGreaterThan(timing["bytes"] as? Int ?? 0, 8 * parameters)
        XCTAssertGreaterThan(timing["write_s"] as? Double ?? 0, 0)
        XCTAssertGreaterThan(timing["verify_s"] as? Double ?? 0, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("bench-checkpoint").path))
    }

    /// A short run of the 130M model at B=4, T=256, each mode in its own process: dqt ternary
    /// peaks at ≤ 3.0 GB and below bitnet by at least 80% of the latent-minus-codes bytes.
    func testPeakResidentMemoryAt130M() throws {
        let r = try QTrainBinary.run(
            [
                "bench", "--config", repositoryFile("configs/130m.yaml"), "--set", "model.seq_len=256", "--set",
                "train.grad_accum=1",
                "--modes", "dqt,bitnet", "--steps", "1", "--warmup", "0", "--json"
            ], timeout: 600)
        XCTAssertEqual(r.status, 0, r.stderr)
        let obj = try XCTUnwrap(
            try JSONSerialization.jsonObject(with: Data(r.stdout.split(separator: "\n").last!.utf8)) as? [String: Any])
        let modes = try XCTUnwrap(obj["modes"] as? [[String: Any]])
        func memory(_ i: Int) -> [String: Any] { modes[i]["memory"] as? [String: Any] ?? [:] }
        let dqtPeak = memory(0)["peak_rss_bytes"] as? Int ?? .max, bitnetPeak = memory(1)["peak_rss_bytes"] as? Int ?? 0
        let dqtWeights = (memory(0)["categories"] as? [String: Int])?["weights"] ?? 0
        let bitnetWeights = (memory(1)["categories"] as? [String: Int])?["weights"] ?? 0
        let saving = bitnetWeights - dqtWeights
        XCTAssertGreaterThan(saving, 450_000_000)
        XCTAssertLessThanOrEqual(dqtPeak, 3_000_000_000, "dqt ternary peak RSS \(dqtPeak)")
        XCTAssertGreaterThanOrEqual(
            bitnetPeak - dqtPeak, saving * 8 / 10, "peaks \(dqtPeak) vs \(bitnetPeak), saving \(saving)")
    }
}
