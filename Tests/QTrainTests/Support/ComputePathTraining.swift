import XCTest

@testable import QTrainCheckpoint
@testable import QTrainCore
@testable import QTrainDist
@testable import QTrainTraining
@testable import QTrainWeights

/// Trains tiny (context 16, synthetic data) for 8 steps with `reference` compute and with
/// `tested`, asserting that each loss agrees to `tolerance` (relative), that a second run of
/// `tested` repeats the first bit for bit, and returns the tested trainer for further checks.
@discardableResult
func assertTrainingFollows(
    _ test: XCTestCase, mode: QuantMode, bits: Double? = nil, reference: ComputePath, tested: ComputePath,
    tolerance: Double, file: StaticString = #filePath, line: UInt = #line
) throws -> Trainer {
    let dir = temporaryDirectory(test)
    var c = try RunConfig.load(path: repositoryFile("configs/tiny.yaml"))
    c.data.dir = try makeSyntheticData(in: dir).path
    c.train.outDir = dir.appendingPathComponent("run").path
    c.model.seqLen = 16
    c.quant = Int8ComputeTests.quant(mode, bits: bits, compute: reference)
    let plain = try Trainer(config: c)
    c.quant.compute = tested
    let fast = try Trainer(config: c), twin = try Trainer(config: c)
    for s in 0..<8 {
        let a = try plain.trainStep().loss, b = try fast.trainStep().loss
        XCTAssertEqual(b, try twin.trainStep().loss, "same seed, same bits", file: file, line: line)
        XCTAssertEqual(
            a, b, accuracy: tolerance * a, "\(tested) \(mode) \(bits ?? 1.58) step \(s)", file: file, line: line)
    }
    XCTAssertEqual(
        ReplicaCheck.fingerprint(fast.model.weights), ReplicaCheck.fingerprint(twin.model.weights), file: file,
        line: line)
    return fast
}

/// Runs `bench` on tiny DQT with `quant.compute: compute` and oneDNN forced off, asserting that
/// it finishes and says in one line that it computes in fp32 instead; returns what it printed.
@discardableResult
func assertFallbackAnnounced(
    _ compute: String, file: StaticString = #filePath, line: UInt = #line
) throws
    -> CommandResult
{
    let r = try QTrainBinary.run(
        [
            "bench", "--config", repositoryFile("configs/tiny.yaml"), "--set", "quant.mode=dqt",
            "--set", "quant.compute=\(compute)", "--steps", "1", "--warmup", "0"
        ],
        environment: ["QTRAIN_DISABLE_ONEDNN": "1"])
    XCTAssertEqual(r.status, 0, r.stderr, file: file, line: line)
    XCTAssertTrue(
        r.stdout.contains(
            "notice: quant.compute \(compute) cannot run here (disabled by QTRAIN_DISABLE_ONEDNN); computing in fp32 instead"
        ), r.stdout, file: file, line: line)
    return r
}
