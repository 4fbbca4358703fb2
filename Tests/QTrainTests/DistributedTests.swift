import XCTest

/// Real `mpirun` launches of the tiny config: replicas stay bit-identical, N ranks × B match one
/// process × N·B, debug ranks match MPI ranks, ZeRO-1 matches replication, desyncs are caught
/// and repaired, and failures end the job quickly.
final class DistributedTests: XCTestCase {
    static let mpiEnvironment = [
        "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
        "OMPI_MCA_rmaps_base_oversubscribe": "1"
    ]
    var dir: URL!
    var data: URL!

    override func setUpWithError() throws {
        dir = temporaryDirectory(self)
        data = try makeSyntheticData(in: dir)
    }

    func args(_ name: String, _ extra: [String]) -> [String] {
        [
            "train", "--config", repositoryFile("configs/tiny.yaml"), "--set", "data.dir=\(data.path)", "--set",
            "model.seq_len=16",
            "--set", "train.steps=20", "--set", "train.eval_every=0", "--set", "log.every=1", "--set",
            "log.progress=lines",
            "--set", "train.out_dir=\(dir.appendingPathComponent(name).path)"
        ] + extra
    }

    @discardableResult
    func mpirun(_ n: Int, _ name: String, _ extra: [String] = [], expectSuccess: Bool = true) throws -> CommandResult {
        let r = try runProgram(
            URL(fileURLWithPath: "/usr/bin/mpirun"), ["-n", "\(n)", QTrainBinary.url.path] + args(name, extra),
            environment: Self.mpiEnvironment, timeout: 300)
        if expectSuccess { XCTAssertEqual(r.status, 0, r.stdout + r.stderr) }
        return r
    }

    @discardableResult
    func single(_ name: String, _ extra: [String] = []) throws -> CommandResult {
        let r = try QTrainBinary.run(args(name, extra), timeout: 300)
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        return r
    }

    func losses(_ name: String) throws -> [Double] {
        try String(
            contentsOf: dir.appendingPathComponent(name).appendingPathComponent("metrics.jsonl"), encoding: .utf8
        )
        .split(separator: "\n").compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["loss"] as? Double
        }
    }

    func fingerprints(_ r: CommandResult) -> [String] {
        r.stdout.split(separator: "\n").filter { $0.hasPrefix("fingerprint ") }.map { String($0.dropFirst(12)) }
    }

    func assertMatch(
        _ a: String, _ b: String, tolerance: Double, file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let x = try losses(a), y = try losses(b)
        XCTAssertEqual(x.count, 20, file: file, line: line)
        XCTAssertEqual(y.count, 20, file: file, line: line)
        for (s, (p, q)) in zip(x, y).enumerated() {
            XCTAssertLessThanOrEqual(
                abs(p - q) / abs(p), tolerance, "step \(s + 1): \(p) vs \(q)", file: file, line: line)
        }
    }

    /// Ranks started with different settings (the cases that deadlocked or trained silently)
    /// all stop at start-up with exit 5, naming the differing keys and ranks; the same data in
    /// another directory with another tokenizer is named too.
    func testRanksThatDisagreeStopNamingTheDifference() throws {
        for (extra, named) in [
            (["--set", "checkpoint.every=3"], "checkpoint.every"),
            (["--set", "dist.check_every=2"], "dist.check_every"),
            (["--set", "dist.shard_optimizer=true"], "dist.shard_optimizer"),
            (["--set", "model.seq_len=8"], "model.seq_len"),
            (["--set", "train.grad_accum=2"], "train.grad_accum")
        ] {
            // One process per rank with its own options (Open MPI's colon syntax).
            let r = try runProgram(
                URL(fileURLWithPath: "/usr/bin/mpirun"),
                ["-n", "1", QTrainBinary.url.path] + args("a", []) + [":", "-n", "1", QTrainBinary.url.path]
                    + args("a", extra),
                environment: Self.mpiEnvironment, timeout: 120)
            XCTAssertEqual(r.status, 5, named)  // every rank exits with the distributed-error code
            XCTAssertTrue(
                r.stderr.contains("the ranks disagree on the run: \(named) (rank 1 differs from rank 0)"),
                r.stdout + r.stderr)
        }
        // Shards from another tokenizer: a second data directory prepared differently.
        let other = try makeSyntheticData(in: dir.appendingPathComponent("other"), documents: 14)
        let r = try runProgram(
            URL(fileURLWithPath: "/usr/bin/mpirun"),
            ["-n", "1", QTrainBinary.url.path] + args("b", []) + [":", "-n", "1", QTrainBinary.url.path]
                + args("b", ["--set", "data.dir=\(other.path)"]),
            environment: Self.mpiEnvironment, timeout: 120)
        XCTAssertEqual(r.status, 5)
        XCTAssertTrue(r.stderr.contains("data.dir (rank 1 differs from rank 0)"), r.stderr)
        XCTAssertTrue(r.stderr.contains("the train shards (rank 1 differs from rank 0)"), r.stderr)
    }

    /// A rank stopped with SIGSTOP (the case that left the others spinning forever) ends the
    /// job after dist.timeout_s with exit 5 and one line naming it.
    func testStoppedRankEndsTheJobNamingIt() throws {
        let run = dir.appendingPathComponent("stall")
        let job = try SpawnedProgram(
            URL(fileURLWithPath: "/usr/bin/mpirun"),
            ["-n", "2", QTrainBinary.url.path]
                + args(
                    "stall",
                    [
                        "--set", "train.steps=1000000",
                        "--set", "dist.timeout_s=4"
                    ]),
            environment: Self.mpiEnvironment)
        // Wait for both heartbeats, then stop rank 1 (its process carries OMPI_COMM_WORLD_RANK=1).
        let beats = run.appendingPathComponent(".heartbeat")
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, (try? FileManager.default.contentsOfDirectory(atPath: beats.path).count) ?? 0 < 2 {
            Thread.sleep(forTimeInterval: 0.2)
        }
        var stopped: pid_t = 0
        for entry in try FileManager.default.contentsOfDirectory(atPath: "/proc") {
            guard let pid = pid_t(entry),
                let cmd = try? String(contentsOfFile: "/proc/\(entry)/cmdline", encoding: .utf8),
                cmd.contains(run.path),
                !cmd.hasPrefix("/usr/bin/mpirun"),
                let env = try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(entry)/environ")),
                String(decoding: env, as: UTF8.self).split(separator: "\0").contains("OMPI_COMM_WORLD_RANK=1")
            else { continue }
            stopped = pid
        }
        XCTAssertGreaterThan(stopped, 0, "found rank 1")
        kill(stopped, SIGSTOP)
        defer { kill(stopped, SIGKILL) }
        let r = job.wait(timeout: 60)
        XCTAssertEqual(r.status, 5, r.stdout + r.stderr)
        XCTAssertTrue(r.stderr.contains("past dist.timeout_s = 4; not answering: rank 1 (silent for"), r.stderr)
    }

    func testFP32RanksMatchOneProcessWithTheWholeBatch() throws {
        try single("one", ["--set", "train.micro_batch=8"])
        let r2 = try mpirun(2, "mpi2")
        XCTAssertEqual(fingerprints(r2).count, 2)
        XCTAssertEqual(Set(fingerprints(r2)).count, 1, "ranks differ: \(fingerprints(r2))")
        try assertMatch("one", "mpi2", tolerance: 1e-4)
        let r4 = try mpirun(4, "mpi4", ["--set", "train.micro_batch=2"])
        XCTAssertEqual(Set(fingerprints(r4)).count, 1)
        XCTAssertEqual(fingerprints(r4).count, 4)
        try assertMatch("one", "mpi4", tolerance: 1e-4)
        // The communication-thread overlap with small buckets (several per step) agrees too.
        try mpirun(2, "thread", ["--set", "dist.overlap=thread", "--set", "dist.bucket_mb=0.05"])
        try assertMatch("one", "thread", tolerance: 1e-4)
    }

    func testDQTRanksDebugRanksAndZeRO() throws {
        let dqt = ["--set", "quant.mode=dqt"]
        try single("one", dqt + ["--set", "train.micro_batch=8"])
        let r2 = try mpirun(2, "mpi2", dqt)
        XCTAssertEqual(Set(fingerprints(r2)).count, 1)
        try assertMatch("one", "mpi2", tolerance: 0.01)
        let d2 = try single("debug2", dqt + ["--debug", "--ranks", "2"])
        XCTAssertEqual(Set(fingerprints(d2)).count, 1)
        XCTAssertEqual(fingerprints(d2).count, 2)
        try assertMatch("mpi2", "debug2", tolerance: 0.01)
        let z = try mpirun(2, "zero", dqt + ["--set", "dist.shard_optimizer=true"])
        XCTAssertEqual(Set(fingerprints(z)).count, 1)
        XCTAssertTrue(z.stdout.contains("ZeRO-1"))
        try assertMatch("mpi2", "zero", tolerance: 0.01)
        let z4 = try mpirun(4, "zero4", dqt + ["--set", "dist.shard_optimizer=true", "--set", "train.micro_batch=2"])
        XCTAssertEqual(Set(fingerprints(z4)).count, 1)
        try assertMatch("one", "zero4", tolerance: 0.01)
        // fp32 under ZeRO-1 matches the replicated run to the fp32 tolerance.
        try mpirun(2, "fp32", [])
        try mpirun(2, "fp32zero", ["--set", "dist.shard_optimizer=true"])
        try assertMatch("fp32", "fp32zero", tolerance: 1e-4)
        // BF16 optimizer state: replicas agree with and without ZeRO-1, and the curve stays
        // within the dqt tolerance of the FP32-state run.
        let bf16 = dqt + ["--set", "optim.state_dtype=bf16"]
        XCTAssertEqual(Set(fingerprints(try mpirun(2, "bf16", bf16))).count, 1)
        let zb = try mpirun(2, "bf16zero", bf16 + ["--set", "dist.shard_optimizer=true"])
        XCTAssertEqual(Set(fingerprints(zb)).count, 1)
        try assertMatch("bf16", "bf16zero", tolerance: 0.01)
        try assertMatch("mpi2", "bf16", tolerance: 0.01)
    }

    func testInjectedDesyncIsDetectedAndRepaired() throws {
        let common = [
            "--set", "quant.mode=dqt", "--set", "dist.check_every=2", "--set", "train.steps=8", "--inject-desync", "1@3"
        ]
        let stop = try mpirun(2, "stop", common, expectSuccess: false)
        XCTAssertEqual(stop.status, 5, stop.stderr)
        XCTAssertTrue(
            stop.stderr.contains(
                "replicas differ at step 4: rank 1 disagrees with rank 0, first in model.layers.0.self_attn.q_proj.weight"
            ),
            stop.stderr)
        let repaired = try mpirun(2, "resync", common + ["--set", "dist.on_desync=resync"])
        XCTAssertTrue(repaired.stdout.contains("resynchronised: replicas differ at step 4"), repaired.stdout)
        XCTAssertEqual(Set(fingerprints(repaired)).count, 1)
        // Debug ranks check every step: caught right after the step it happened.
        let debug = try QTrainBinary.run(args("debug", common + ["--debug", "--ranks", "2"]), timeout: 120)
        XCTAssertEqual(debug.status, 5)
        XCTAssertTrue(debug.stderr.contains("replicas differ at step 3"), debug.stderr)
    }

    /// BF16 gradients (all-reduced as BF16 through the user-defined MPI sum) keep replicas
    /// bit-identical at 2 and 4 ranks and follow the FP32-gradient curve; ZeRO-2 (gradients
    /// summed onto their owner as backward makes them) gives the replicated run's curve with
    /// FP32 and with BF16 gradients, with identical fingerprints at 2 and 4 ranks.
    func testBF16GradientsAndZeRO2() throws {
        let dqt = ["--set", "quant.mode=dqt"], bf16 = ["--set", "optim.grad_dtype=bf16"]
        let zero2 = ["--set", "dist.shard_optimizer=true", "--set", "dist.shard_gradients=true"]
        try mpirun(2, "fp32", dqt)
        let b2 = try mpirun(2, "bf16", dqt + bf16)
        XCTAssertEqual(fingerprints(b2).count, 2)
        XCTAssertEqual(Set(fingerprints(b2)).count, 1, "ranks differ: \(fingerprints(b2))")
        try assertMatch("fp32", "bf16", tolerance: 0.01)
        let b4 = try mpirun(4, "bf16-4", dqt + bf16 + ["--set", "train.micro_batch=2"])
        XCTAssertEqual(Set(fingerprints(b4)).count, 1)
        XCTAssertEqual(fingerprints(b4).count, 4)
        try assertMatch("fp32", "bf16-4", tolerance: 0.01)

        let z2 = try mpirun(2, "zero2", dqt + zero2)
        XCTAssertTrue(z2.stdout.contains("ZeRO-2"), z2.stdout)
        XCTAssertEqual(Set(fingerprints(z2)).count, 1)
        try assertMatch("fp32", "zero2", tolerance: 0.01)
        let z4 = try mpirun(
            4, "zero2-4", dqt + zero2 + ["--set", "train.grad_accum=2", "--set", "train.global_batch=16"])
        XCTAssertEqual(fingerprints(z4).count, 4)
        XCTAssertEqual(Set(fingerprints(z4)).count, 1)
        let zb = try mpirun(2, "zero2-bf16", dqt + zero2 + bf16 + ["--set", "optim.state_dtype=int8"])
        XCTAssertEqual(Set(fingerprints(zb)).count, 1)
        try assertMatch("fp32", "zero2-bf16", tolerance: 0.02)
        // Without ZeRO-1, ZeRO-2 is refused with the reason.
        let bad = try mpirun(2, "bad", dqt + ["--set", "dist.shard_gradients=true"], expectSuccess: false)
        XCTAssertEqual(bad.status, 2, bad.stderr)
        XCTAssertTrue(bad.stderr.contains("dist.shard_optimizer"), bad.stderr)
    }

    func testEightRanksReportPerRankMemory() throws {
        let r = try mpirun(8, "eight", ["--set", "train.steps=3", "--set", "train.micro_batch=1"])
        XCTAssertEqual(fingerprints(r).count, 8)
        XCTAssertEqual(Set(fingerprints(r)).count, 1)
        for rank in 0..<8 { XCTAssertTrue(r.stdout.contains("rank \(rank): memory table"), r.stdout) }
    }

    func testBadBatchLayoutsAndLaunches() throws {
        let notDivisible = try mpirun(4, "div", ["--set", "train.global_batch=6"], expectSuccess: false)
        XCTAssertNotEqual(notDivisible.status, 0)
        XCTAssertTrue(
            notDivisible.stderr.contains("train.global_batch = 6 is not divisible by world size 4"), notDivisible.stderr
        )
        let tooMany = try mpirun(4, "many", ["--set", "train.global_batch=2"], expectSuccess: false)
        XCTAssertTrue(tooMany.stderr.contains("more ranks than sequences"), tooMany.stderr)
        let ranksNoDebug = try QTrainBinary.run(args("x", ["--ranks", "2"]))
        XCTAssertNotEqual(ranksNoDebug.status, 0)
        XCTAssertTrue(ranksNoDebug.stderr.contains("--debug"), ranksNoDebug.stderr)
        let debugUnderMPI = try mpirun(2, "y", ["--debug", "--ranks", "2"], expectSuccess: false)
        XCTAssertEqual(debugUnderMPI.status, 2)
        XCTAssertTrue(debugUnderMPI.stderr.contains("do not launch it with mpirun"), debugUnderMPI.stderr)
        // global_batch that does divide decides the micro-batch.
        let ok = try mpirun(2, "ok", ["--set", "train.global_batch=8", "--set", "train.steps=2"])
        XCTAssertTrue(ok.stdout.contains("2 ranks × 4 sequences"), ok.stdout)
    }

    /// Starts a long two-rank run in the background and returns once it is training (its
    /// metrics file exists).
    func startLongRun(_ name: String) throws -> SpawnedProgram {
        let p = try SpawnedProgram(
            URL(fileURLWithPath: "/usr/bin/mpirun"),
            ["-n", "2", QTrainBinary.url.path]
                + args(name, ["--set", "train.steps=1000000", "--set", "log.every=100000"]),
            environment: Self.mpiEnvironment)
        let metrics = dir.appendingPathComponent("\(name)/metrics.jsonl")
        let deadline = Date().addingTimeInterval(60)
        while !FileManager.default.fileExists(atPath: metrics.path) && Date() < deadline { usleep(100_000) }
        usleep(500_000)
        return p
    }

    func testKilledRankEndsTheJobQuickly() throws {
        let p = try startLongRun("kill")
        let pids = try runProgram(
            URL(fileURLWithPath: "/usr/bin/pgrep"), ["-f", "train.out_dir=\(dir.appendingPathComponent("kill").path)"]
        )
        .stdout.split(separator: "\n").compactMap { Int32($0) }.filter { $0 != p.pid }
        XCTAssertGreaterThanOrEqual(pids.count, 2)
        let killedAt = Date()
        kill(pids.last!, SIGKILL)
        while p.isRunning && Date().timeIntervalSince(killedAt) < 30 { usleep(50_000) }
        XCTAssertFalse(p.isRunning, "the job was still running 30 s after a rank was killed")
        let r = p.wait(timeout: 10)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertLessThan(Date().timeIntervalSince(killedAt), 10)
    }

    func testSchedulerSignalStopsEveryRankCleanly() throws {
        let p = try startLongRun("signal")
        p.send(SIGUSR1)  // mpirun forwards SIGUSR1 to every rank
        let r = p.wait(timeout: 120)
        let text = r.stdout
        XCTAssertEqual(r.status, 0, text + r.stderr)
        XCTAssertTrue(text.contains("stopping after step"), text)
        XCTAssertEqual(
            text.components(separatedBy: "\nfingerprint ").count - 1 + (text.hasPrefix("fingerprint ") ? 1 : 0), 2, text
        )
    }
}
