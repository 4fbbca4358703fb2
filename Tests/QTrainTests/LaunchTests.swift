import XCTest

/// The launch scripts, run for real.
final class LaunchTests: XCTestCase {
    /// launch/slurm.sbatch on a real one-node Slurm: the pre-timeout signal makes the job
    /// checkpoint, requeue itself, resume and finish (launch/test-slurm.sh does the work).
    func testSlurmBatchScriptRequeuesAndResumes() throws {
        guard getuid() == 0 else { throw XCTSkip("a local Slurm needs root") }
        let dir = temporaryDirectory(self)
        let data = try makeSyntheticData(in: dir)
        let r = try runProgram(
            URL(fileURLWithPath: repositoryFile("launch/test-slurm.sh")), [],
            in: URL(fileURLWithPath: repositoryFile("launch")).deletingLastPathComponent(),
            environment: ["QTRAIN_BIN": QTrainBinary.url.path, "QTRAIN_DATA": data.path], timeout: 600)
        if r.status == 77 { throw XCTSkip(r.stdout) }
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.contains("PASS"), r.stdout)
    }

    func testLocalLauncherBuildsTheRightCommand() throws {
        let root = URL(fileURLWithPath: repositoryFile("launch")).deletingLastPathComponent()
        let script = URL(fileURLWithPath: repositoryFile("launch/local.sh"))
        let env = ["DRY_RUN": "1", "QTRAIN_BIN": QTrainBinary.url.path]
        let two = try runProgram(
            script, ["2", "configs/tiny.yaml", "--set", "optim.lr=1e-3"], in: root, environment: env)
        XCTAssertEqual(two.status, 0, two.stderr)
        XCTAssertTrue(two.stdout.hasPrefix("mpirun -n 2 --bind-to none"), two.stdout)
        XCTAssertTrue(two.stdout.contains("train --config configs/tiny.yaml --set optim.lr=1e-3"), two.stdout)
        let many = try runProgram(script, ["64", "configs/tiny.yaml"], in: root, environment: env)
        XCTAssertTrue(many.stdout.contains("--oversubscribe"), many.stdout)
        XCTAssertTrue(many.stderr.contains("oversubscribing"), many.stderr)
        let bad = try runProgram(script, ["two", "configs/tiny.yaml"], in: root, environment: env)
        XCTAssertEqual(bad.status, 2)
        let missing = try runProgram(script, ["2", "configs/none.yaml"], in: root, environment: env)
        XCTAssertEqual(missing.status, 2)
        XCTAssertTrue(missing.stderr.contains("does not exist"), missing.stderr)
    }
}
