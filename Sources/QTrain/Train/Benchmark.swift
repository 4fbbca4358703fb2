import Foundation

/// Throughput, efficiency and memory of training steps (`qtrain-dist bench`).
///
/// Times `steps` full steps (after `warmup`) on synthetic tokens, split into forward (with
/// the loss), backward and optimizer; measures the SGEMM peak of this machine with the same
/// thread count in the same run; and reports MFU = achieved FLOP/s ÷ that peak, where a token
/// costs 6·N (N = parameters used in GEMMs: all but the embedding table, a lookup) plus
/// 12·L·T·C for attention (full T×T products, as computed).
public enum Benchmark {
    public struct Result: Sendable {
        public var label: String
        public var parameters: Int
        public var tokensPerStep: Int
        public var stepSeconds: Double
        public var phases: [String: Double]
        public var flopsPerToken: Double
        public var peakGFLOPS: Double
        public var memory: [String: Int]
        public var bytesPerParameter: Double
        public var peakRSS: Int
        public var threads: Int

        public var tokensPerSecond: Double { Double(tokensPerStep) / stepSeconds }
        public var gflops: Double { flopsPerToken * tokensPerSecond / 1e9 }
        public var mfu: Double { gflops / peakGFLOPS }

        public var table: String {
            var s = "\(label): \(formatCount(parameters)) parameters, \(tokensPerStep) tokens/step, \(threads) thread(s)\n"
            s += String(format: "  step %.3f s | %.0f tokens/s | %.1f GFLOP/s | peak %.1f GFLOP/s | MFU %.3f\n",
                        stepSeconds, tokensPerSecond, gflops, peakGFLOPS, mfu)
            s += "  phases: " + ["forward", "backward", "optimizer"].map {
                String(format: "%@ %.3f s (%.0f%%)", $0, phases[$0] ?? 0, 100 * (phases[$0] ?? 0) / stepSeconds)
            }.joined(separator: ", ") + "\n"
            s += String(format: "  memory: %.3f B/param without activations; peak RSS %@", bytesPerParameter, formatBytes(peakRSS))
            return s
        }

        public var json: [String: Any] {
            [
                "label": label, "parameters": parameters, "tokens_per_step": tokensPerStep, "threads": threads,
                "tokens_per_s": tokensPerSecond, "gflops": gflops, "peak_gflops": peakGFLOPS, "mfu": mfu,
                "step_s": stepSeconds, "phases": phases, "flops_per_token": flopsPerToken,
                "memory": [
                    "bytes_per_param": bytesPerParameter, "peak_rss_bytes": peakRSS,
                    "categories": memory,
                ] as [String: Any],
            ]
        }

        public var jsonLine: String {
            let data = (try? JSONSerialization.data(withJSONObject: json, options: [.sortedKeys])) ?? Data()
            return String(decoding: data, as: UTF8.self)
        }
    }

    /// Measures the best SGEMM rate over a few large square products, in GFLOP/s.
    public static func sgemmPeak(size n: Int = 2048, repeats: Int = 4) -> Double {
        let ledger = MemoryLedger()
        let a = AlignedBuffer<Float>(count: n * n, category: .scratch, ledger: ledger)
        let b = AlignedBuffer<Float>(count: n * n, category: .scratch, ledger: ledger)
        let c = AlignedBuffer<Float>(count: n * n, category: .scratch, ledger: ledger)
        for i in 0..<(n * n) {
            a.pointer[i] = Float(i % 7) * 0.01
            b.pointer[i] = Float(i % 5) * 0.01
        }
        var best = Double.infinity
        for _ in 0..<repeats {
            let t = Date()
            Gemm.multiply(m: n, n: n, k: n, a: a.pointer, lda: n, b: b.pointer, ldb: n, c: c.pointer, ldc: n)
            best = min(best, Date().timeIntervalSince(t))
        }
        return 2 * Double(n) * Double(n) * Double(n) / best / 1e9
    }

    /// Benchmarks `config` (its model, quantisation, micro-batch and threads).
    public static func run(config: RunConfig, steps: Int, warmup: Int, log: (String) -> Void) throws -> Result {
        let threads = config.train.threads > 0 ? config.train.threads : Threads.availableCores
        Threads.configure(threads)
        let B = config.train.microBatch, T = config.model.seqLen, V = config.model.vocabSize
        let ledger = MemoryLedger()
        let model = Model(config: config.model, quant: config.quant, batch: B, ledger: ledger)
        model.weights.initialize(seed: UInt64(config.train.seed), std: Float(config.model.initStd))
        let optimizer = Optimizer(config: config.optim, layout: model.layout, ledger: ledger)
        let tokens = AlignedBuffer<Int32>(count: B * T + 1, category: .activations, ledger: ledger)
        let stream = RandomStream(seed: 7, purpose: .dataSampling, tensor: 1, step: 0)
        for i in 0...(B * T) { tokens.pointer[i] = Int32(stream.word(i) % UInt32(V)) }
        log("bench: \(config.quant.label), \(formatCount(model.layout.count)) parameters, B=\(B), T=\(T), \(threads) thread(s), OpenBLAS \(BLASCore.name)")

        var phases = ["forward": 0.0, "backward": 0.0, "optimizer": 0.0]
        for s in 0..<(warmup + steps) {
            model.zeroGradients()
            let t0 = Date()
            let loss = try model.forward(tokens: tokens.pointer, targets: tokens.pointer + 1, batch: B, length: T,
                                         gradScale: 1 / Float(B * T))
            let t1 = Date()
            try model.backward()
            let t2 = Date()
            let norm = GradientClipping.norm(model.gradients.pointer, count: model.layout.count)
            let clip = GradientClipping.factor(norm: norm, maxNorm: config.optim.gradClip)
            optimizer.update(weights: model.weights, gradients: model.gradients.pointer, gradScale: clip,
                             lr: config.optim.lr, seed: UInt64(config.train.seed))
            let t3 = Date()
            if s >= warmup {
                phases["forward"]! += t1.timeIntervalSince(t0)
                phases["backward"]! += t2.timeIntervalSince(t1)
                phases["optimizer"]! += t3.timeIntervalSince(t2)
            }
            log(String(format: "  step %d%@: %.3f s, loss %.4f", s + 1, s < warmup ? " (warm-up)" : "",
                       t3.timeIntervalSince(t0), loss))
        }
        for k in phases.keys { phases[k]! /= Double(max(steps, 1)) }
        let stepSeconds = phases.values.reduce(0, +)
        let peak = sgemmPeak()
        let L = config.model.nLayers, C = config.model.dim
        let flops = 6 * Double(model.layout.matmulParameterCount) + 12 * Double(L * T * C)
        var memory: [String: Int] = [:]
        for c in MemoryCategory.allCases { memory[c.rawValue] = ledger.bytes(c) }
        return Result(
            label: config.quant.label, parameters: model.layout.count, tokensPerStep: B * T,
            stepSeconds: stepSeconds, phases: phases, flopsPerToken: flops, peakGFLOPS: peak, memory: memory,
            bytesPerParameter: MemoryReport.bytesPerParameter(ledger, parameters: model.layout.count),
            peakRSS: MemoryReport.peakResidentBytes(), threads: threads)
    }
}
