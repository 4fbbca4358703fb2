import Foundation
import QKernels
import XCTest

@testable import QTrainCheckpoint
@testable import QTrainCore
@testable import QTrainModel
@testable import QTrainOptim
@testable import QTrainWeights

/// `optim.state_dtype: int8`: block-wise 8-bit moments against the NumPy reference of the same
/// scheme (tools/make_state8_fixture.py), unbiased stochastic rounding, shard independence,
/// memory and checkpoints.
final class StateInt8Tests: XCTestCase {
    override func setUp() { Threads.configure(2) }

    struct Fixture: Decodable {
        struct Case: Decodable {
            let name: String
            let signed: Bool
            let first: Int
            let input: [Float]
            let codes: [UInt8]
            let scales: [Float]
            let decoded: [Float]
        }
        let block: Int
        let signed_table: [Float]
        let unsigned_table: [Float]
        let cases: [Case]
    }

    /// The maps, the codes (to nearest), the scales and the decoded values equal NumPy's exactly.
    func testBlockwiseCodesMatchTheNumPyReference() throws {
        let url = try XCTUnwrap(
            Bundle.module.url(forResource: "state8_blockwise", withExtension: "json", subdirectory: "Fixtures"))
        let f = try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
        XCTAssertEqual(f.block, StateSegments.block)
        for (signed, expected) in [(1, f.signed_table), (0, f.unsigned_table)] {
            var t = [Float](repeating: 0, count: 256)
            qk_state8_table(Int32(signed), &t)
            XCTAssertEqual(t, expected, "table signed=\(signed)")
        }
        for c in f.cases {
            var codes = [UInt8](repeating: 0, count: c.input.count),
                scales = [Float](repeating: -1, count: c.scales.count)
            qk_state8_encode(&codes, &scales, c.input, Int64(c.input.count), Int64(c.first), c.signed ? 1 : 0, 0, 0, 0)
            XCTAssertEqual(scales, c.scales, c.name)
            let wrong = zip(codes, c.codes).filter { $0 != $1 }.count
            XCTAssertEqual(wrong, 0, "\(c.name): \(wrong) codes differ")
            var out = [Float](repeating: .nan, count: c.input.count)
            qk_state8_decode(&out, c.codes, c.scales, Int64(out.count), Int64(c.first), c.signed ? 1 : 0)
            XCTAssertEqual(out, c.decoded, c.name)
            // Nearest rounding lands within half a step: 1/16 of the value, or half the smallest step.
            let smallest = Float(c.signed ? 0x1p-17 : 0x1p-33) / 1.875
            for (i, (x, y)) in zip(c.input, out).enumerated() {
                let scale = c.scales[(c.first + i) / f.block - c.first / f.block]
                XCTAssertLessThanOrEqual(abs(x - y), max(abs(x) / 16, smallest / 2 * scale) * 1.0001, c.name)
            }
        }
    }

    /// Stochastic rounding picks one of the two neighbouring map values with the probabilities
    /// that make its mean the value (normal and subnormal codes); it does not depend on how a
    /// range is split into calls.
    func testStochasticRoundingIsUnbiasedAndChunkIndependent() {
        let stream = RandomStream(seed: 4, purpose: .secondMoment, tensor: 2, step: 9)
        let n = 64 * StateSegments.block
        let seed = stream.word64(0)
        for (signed, x) in [(Int32(1), Float(-0.0123)), (1, 0.777), (0, 3.3e-6), (0, 0.51), (1, 1e-6), (0, 1e-11)] {
            // Every block holds 1.0 (its absmax) once, and x everywhere else.
            var input = [Float](repeating: x, count: n)
            for b in 0..<64 { input[b * StateSegments.block] = 1 }
            var codes = [UInt8](repeating: 0, count: n), scales = [Float](repeating: 0, count: 64)
            let shift: Int32 = signed == 1 ? 16 : 0
            qk_state8_encode(&codes, &scales, input, Int64(n), 0, signed, 1, seed, shift)
            var out = [Float](repeating: 0, count: n)
            qk_state8_decode(&out, codes, scales, Int64(n), 0, signed)
            let others = (0..<n).filter { $0 % StateSegments.block != 0 }.map { Double(out[$0]) }
            let distinct = Set(others)
            XCTAssertLessThanOrEqual(distinct.count, 2, "\(x)")
            let lo = distinct.min()!, hi = distinct.max()!
            XCTAssertTrue(lo <= Double(x) && Double(x) <= hi, "\(x) outside [\(lo), \(hi)]")
            let mean = others.reduce(0, +) / Double(others.count)
            let p = hi > lo ? (Double(x) - lo) / (hi - lo) : 0
            let stderr = (hi - lo) * (p * (1 - p) / Double(others.count)).squareRoot()
            XCTAssertEqual(mean, Double(x), accuracy: 4 * stderr + 1e-7 * abs(Double(x)), "\(x)")

            // Two calls split at a block boundary give the same bytes as one.
            var c2 = [UInt8](repeating: 0, count: n), s2 = [Float](repeating: 0, count: 64)
            let cut = 5 * StateSegments.block
            qk_state8_encode(&c2, &s2, input, Int64(cut), 0, signed, 1, seed, shift)
            input.withUnsafeBufferPointer { inp in
                c2.withUnsafeMutableBufferPointer { c in
                    s2.withUnsafeMutableBufferPointer { s in
                        qk_state8_encode(
                            c.baseAddress! + cut, s.baseAddress! + 5, inp.baseAddress! + cut, Int64(n - cut),
                            Int64(cut),
                            signed, 1, seed, shift)
                    }
                }
            }
            XCTAssertEqual(c2, codes)
            XCTAssertEqual(s2, scales)
        }
    }

    /// 8-bit state takes a quarter of FP32's bytes plus one scale per 2048 values; its steps
    /// follow FP32 state's moments within the code's resolution; ZeRO-1 slices aligned to the
    /// blocks give the replicated run's bytes; v decays under zero gradients as in FP32.
    func testInt8StateFollowsFP32AndIsIndependentOfTheSplit() {
        var quant = QuantConfig()
        quant.mode = .dqt
        quant.bits = 4
        let reference = optimizerTestModel(quant), whole = optimizerTestModel(quant), split = optimizerTestModel(quant)
        var rng = TestRandom(23)
        let g = rng.values(whole.layout.count, scale: 1).map(Float.init)
        for mm in [reference, whole, split] { mm.gradients.pointer.update(from: g, count: g.count) }
        let ledger = MemoryLedger()
        let full = optimizerForTests(whole, .int8, ledger: ledger)
        let blocks = whole.layout.specs.reduce(0) { $0 + ($1.count + StateSegments.block - 1) / StateSegments.block }
        XCTAssertEqual(ledger.bytes(.optimizer), 2 * whole.layout.count + 2 * 4 * blocks)
        let fp32 = optimizerForTests(reference, .fp32)

        let codes = { (m: Model) in m.layout.specs.compactMap { m.weights.codes($0.index)?.codes() }.flatMap { $0 } }
        full.update(weights: whole.weights, gradients: whole.gradients.pointer, gradScale: 1, lr: 0.05, seed: 11)
        fp32.update(
            weights: reference.weights, gradients: reference.gradients.pointer, gradScale: 1, lr: 0.05, seed: 11)
        XCTAssertEqual(codes(whole), codes(reference), "the first step reads zero moments in both")
        // Stochastic rounding moves a value by less than one step: 1/8 of it, or the smallest step.
        var far = 0
        let a8 = full.m.values, a32 = fp32.m.values
        for s in full.m.segments.segments {
            var i = s.stateOffset
            while i < s.stateOffset + s.count {
                let end = min(
                    s.stateOffset + s.count,
                    i + StateSegments.block - (s.first + i - s.stateOffset) % StateSegments.block)
                let absmax = a32[i..<end].map(abs).max()!
                far += (i..<end).filter { abs(a8[$0] - a32[$0]) > (abs(a32[$0]) / 8 + 0x1p-17 * absmax) * 1.0001 }.count
                i = end
            }
        }
        XCTAssertEqual(far, 0, "m values further than one code step from FP32's")

        let plan = ShardPlan(layout: split.layout, world: 3, alignment: ShardPlan.alignment(for: .int8))
        XCTAssertTrue(plan.ranges.allSatisfy { !$0.isEmpty })
        let parts = plan.ranges.map { optimizerForTests(split, .int8, range: $0) }
        for p in parts {
            p.update(weights: split.weights, gradients: split.gradients.pointer, gradScale: 1, lr: 0.05, seed: 11)
        }
        for _ in 0..<3 {
            full.update(weights: whole.weights, gradients: whole.gradients.pointer, gradScale: 1, lr: 0.05, seed: 11)
            for p in parts {
                p.update(weights: split.weights, gradients: split.gradients.pointer, gradScale: 1, lr: 0.05, seed: 11)
            }
        }
        XCTAssertEqual(codes(split), codes(whole))
        XCTAssertEqual(parts.flatMap { $0.m.values }, full.m.values)
        XCTAssertEqual(parts.flatMap { $0.v.values }, full.v.values)

        // v = 1 everywhere, zero gradients: v decays by β2 per step on average.
        let m = optimizerTestModel(), o = optimizerForTests(m, .int8)
        let ones = [Float](repeating: 1, count: o.v.count)
        for s in o.v.segments.segments {
            ones.withUnsafeBufferPointer { o.v.assign(floats: $0.baseAddress!, count: s.count, at: s.stateOffset) }
        }
        for _ in 0..<200 {
            o.update(weights: m.weights, gradients: m.gradients.pointer, gradScale: 1, lr: 1e-3, seed: 1)
        }
        let mean = o.v.values.reduce(0.0) { $0 + Double($1) } / Double(o.v.count)
        XCTAssertEqual(mean, pow(0.999, 200), accuracy: 2e-3)
    }

    /// 8-bit moments survive a checkpoint byte for byte, and load into FP32 state (and FP32
    /// into 8-bit) under another split.
    func testInt8StateRoundTripsThroughCheckpointFiles() throws {
        let m = optimizerTestModel()
        var rng = TestRandom(7)
        let g = rng.values(m.layout.count, scale: 1).map(Float.init)
        m.gradients.pointer.update(from: g, count: g.count)
        let o = optimizerForTests(m, .int8)
        for _ in 0..<3 { o.update(weights: m.weights, gradients: m.gradients.pointer, gradScale: 1, lr: 1e-3, seed: 5) }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qtrain-state8-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("optimizer.safetensors")
        _ = try CheckpointFormat.optimizerWriter(o).write(to: url)

        let back = optimizerForTests(m, .int8)
        try CheckpointFormat.loadOptimizer(back, from: [try SafetensorsFile(url: url)])
        XCTAssertEqual(back.step, 3)
        for (a, b) in zip(o.m.stored + o.v.stored, back.m.stored + back.v.stored) {
            XCTAssertEqual(memcmp(a.pointer, b.pointer, a.count * a.dtype.size), 0, "\(a.suffix)")
        }
        // Into FP32 state split in two: the same values.
        let plan = ShardPlan(layout: m.layout, world: 2)
        let halves = try plan.ranges.map { r -> Optimizer in
            let h = optimizerForTests(m, .fp32, range: r)
            try CheckpointFormat.loadOptimizer(h, from: [try SafetensorsFile(url: url)])
            return h
        }
        XCTAssertEqual(halves.flatMap { $0.m.values }, o.m.values)
        XCTAssertEqual(halves.flatMap { $0.v.values }, o.v.values)
        // And those halves back into one 8-bit state: re-encoding the decoded values is exact.
        var urls: [URL] = []
        for (i, h) in halves.enumerated() {
            let u = dir.appendingPathComponent("half\(i).safetensors")
            _ = try CheckpointFormat.optimizerWriter(h).write(to: u)
            urls.append(u)
        }
        let again = optimizerForTests(m, .int8)
        try CheckpointFormat.loadOptimizer(again, from: try urls.map { try SafetensorsFile(url: $0) })
        XCTAssertEqual(again.m.values, o.m.values)
        XCTAssertEqual(again.v.values, o.v.values)
    }

    /// Damaged 8-bit state is refused with the file named: a NaN scale (same range: the byte
    /// copy path), a scale count that does not match the blocks and a missing block size (another
    /// range: the decoding path).
    func testDamagedInt8StateIsRefused() throws {
        let m = optimizerTestModel()
        var rng = TestRandom(9)
        let g = rng.values(m.layout.count, scale: 1).map(Float.init)
        m.gradients.pointer.update(from: g, count: g.count)
        let o = optimizerForTests(m, .int8)
        o.update(weights: m.weights, gradients: m.gradients.pointer, gradScale: 1, lr: 1e-3, seed: 5)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("qtrain-state8-bad-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        func load(_ edit: (inout SafetensorsWriter) -> Void, into target: Optimizer) -> String {
            var w = CheckpointFormat.optimizerWriter(o)
            edit(&w)
            let url = dir.appendingPathComponent("optimizer.safetensors")
            do {
                _ = try w.write(to: url)
                try CheckpointFormat.loadOptimizer(target, from: [try SafetensorsFile(url: url)])
                return ""
            } catch { return "\(error)" }
        }
        let scales = o.m.stored[1].pointer.assumingMemoryBound(to: Float.self)
        let saved = scales[2]
        scales[2] = .nan
        XCTAssertTrue(load({ _ in }, into: optimizerForTests(m, .int8)).contains("m.scale in"), "NaN scale")
        scales[2] = saved
        let half = ShardPlan(layout: m.layout, world: 2).ranges[1]
        let short = load(
            { w in
                w.tensors = w.tensors.map {
                    $0.name == "v.scale"
                        ? .init(name: "v.scale", dtype: .f32, shape: [3], values: [Float](repeating: 1, count: 3)) : $0
                }
            }, into: optimizerForTests(m, .fp32, range: half))
        XCTAssertTrue(short.contains("v.scale") && short.contains("does not match its 8-bit blocks"), short)
        let noBlock = load({ $0.metadata["state_block"] = nil }, into: optimizerForTests(m, .fp32, range: half))
        XCTAssertTrue(noBlock.contains("does not match its 8-bit blocks"), noBlock)
        XCTAssertEqual(load({ _ in }, into: optimizerForTests(m, .fp32, range: half)), "")
    }
}
