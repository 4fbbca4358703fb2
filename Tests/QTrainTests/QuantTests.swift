import QKernels
import XCTest

@testable import QTrainCore
@testable import QTrainModel
@testable import QTrainOptim
@testable import QTrainWeights

final class QuantTests: XCTestCase {
    static let allGrids: [QuantGrid] = [.ternary] + (2...8).map { try! QuantGrid(bits: Double($0)) }

    func testGridRanges() throws {
        XCTAssertEqual([QuantGrid.ternary.qn, QuantGrid.ternary.qp], [-1, 1])
        XCTAssertEqual([try QuantGrid(bits: 2).qn, try QuantGrid(bits: 2).qp], [-2, 1])
        XCTAssertEqual([try QuantGrid(bits: 8).qn, try QuantGrid(bits: 8).qp], [-128, 127])
        XCTAssertEqual(try QuantGrid(bits: 1.58), .ternary)
        for bad in [1.0, 1.5, 9, 2.5, 0, -3] { XCTAssertThrowsError(try QuantGrid(bits: bad), "\(bad)") }
        XCTAssertEqual(QuantGrid.ternary.packedBytes(1000), 200)  // five codes per byte
        XCTAssertEqual(try QuantGrid(bits: 3).packedBytes(1000), 375)
    }

    /// Every code of every width survives pack → unpack, at every alignment and length.
    func testPackingRoundTripsEveryCode() {
        for grid in Self.allGrids {
            let levels = grid.qp - grid.qn + 1
            for count in [1, 7, 39, 40, 41, 257, 4001, 12_345] {
                let q = QuantizedTensor(grid: grid, count: count, ledger: nil)
                let codes = (0..<count).map { Int8(grid.qn + ($0 * 7 + $0 / 3) % levels) }
                q.setCodes { codes[$0] }
                XCTAssertEqual(q.codes(), codes, "\(grid) count \(count)")
                // Dequantisation at arbitrary starts agrees with the codes.
                q.scale = 4
                for start in [0, 1, 5, 39, 41, count / 2] where start < count {
                    let n = min(97, count - start)
                    var out = [Float](repeating: .nan, count: n)
                    out.withUnsafeMutableBufferPointer { q.dequantize(into: $0.baseAddress!, from: start, count: n) }
                    XCTAssertEqual(out, (0..<n).map { Float(codes[start + $0]) / 4 }, "\(grid) start \(start)")
                }
                XCTAssertEqual(q.maxCode(), Int(codes.max()!))
            }
            // Every level appears in the test above at least once.
            XCTAssertGreaterThanOrEqual(12_345, levels)
        }
    }

    func testStochasticRoundingIsOnTheGridAndUnbiased() {
        var rng = TestRandom(21)
        for grid in [QuantGrid.ternary, try! QuantGrid(bits: 4), try! QuantGrid(bits: 8)] {
            let (qn, qp) = (Int32(grid.qn), Int32(grid.qp))
            // Values across the grid, including beyond and at the clip edges.
            let xs: [Float] =
                [
                    Float(grid.qn) - 0.7, Float(grid.qn), Float(grid.qn) + 0.01, -0.5, 0.25, 0.999,
                    Float(grid.qp) - 0.3, Float(grid.qp), Float(grid.qp) + 2
                ]
                + (0..<20).map { _ in
                    Float(Double(grid.qn) + rng.next() * Double(grid.qp - grid.qn))
                }
            let n = 40_000
            var u = [Float](repeating: 0, count: n)
            let stream = RandomStream(seed: 5, purpose: .stochasticRounding, tensor: 3, step: 1)
            u.withUnsafeMutableBufferPointer { stream.uniforms(into: $0.baseAddress!, start: 0, count: n) }
            for x in xs {
                var sum = 0.0
                for i in 0..<n {
                    let c = qk_stochastic_round(x, u[i], qn, qp)
                    XCTAssertTrue(c >= qn && c <= qp)
                    sum += Double(c)
                }
                let clipped = Double(min(max(x, Float(grid.qn)), Float(grid.qp)))
                let frac = clipped - clipped.rounded(.down)
                let stderr = max((frac * (1 - frac) / Double(n)).squareRoot(), 1e-12)
                XCTAssertLessThanOrEqual(abs(sum / Double(n) - clipped), 4 * stderr + 1e-6, "\(grid) x=\(x)")
            }
        }
    }

    /// The fused update against a Float64 transcription of PAPER.md's rule, element by element.
    func testDQTUpdateMatchesReference() {
        for grid in [QuantGrid.ternary, try! QuantGrid(bits: 3), try! QuantGrid(bits: 8)] {
            var rng = TestRandom(22)
            let n = 10_007, levels = grid.qp - grid.qn + 1
            let q = QuantizedTensor(grid: grid, count: n, ledger: nil)
            let codes0 = (0..<n).map { _ in Int8(grid.qn + Int(rng.next() * Double(levels))) }
            q.setCodes { codes0[$0] }
            q.scale = 30
            let g = rng.values(n, scale: 0.01).map(Float.init), m0 = rng.values(n, scale: 0.001).map(Float.init)
            let v0 = rng.values(n, scale: 1e-5).map { Float(abs($0)) }
            var m = m0, v = v0
            let lr: Float = 0.02, gs: Float = 0.5, step = 4
            var p = qk_adamw_params(
                lr: lr, beta1: 0.9, beta2: 0.999, eps: 1e-6, weightDecay: 0.1,
                biasCorr1: 1 - pow(0.9, 4), biasCorr2: 1 - pow(0.999, 4), gradScale: gs)
            let stream = RandomStream(seed: 77, purpose: .stochasticRounding, tensor: 9, step: step)
            var key = [stream.key.0, stream.key.1]
            let changed = qk_dqt_update(
                q.packed.pointer, Int32(grid.bits), Int32(grid.qn), Int32(grid.qp), 0, Int64(n), g, &m, &v,
                30, 30, &p, &key, stream.c2, stream.c3)
            let codes1 = q.codes()
            var differing = 0, borderline = 0
            for i in 0..<n {
                // The hyper-parameters as the kernel receives them (Float32).
                let b1 = Double(p.beta1), b2 = Double(p.beta2)
                let gi = Double(g[i]) * Double(gs)
                let mi = b1 * Double(m0[i]) + (1 - b1) * gi, vi = b2 * Double(v0[i]) + (1 - b2) * gi * gi
                // Float32 arithmetic: tolerance relative to the terms, which can cancel.
                XCTAssertEqual(Double(m[i]), mi, accuracy: 1e-6 * (abs(b1 * Double(m0[i])) + abs((1 - b1) * gi)))
                XCTAssertEqual(Double(v[i]), vi, accuracy: 1e-6 * (abs(b2 * Double(v0[i])) + abs((1 - b2) * gi * gi)))
                let w = Double(codes0[i]) / 30
                let adam = (mi / Double(p.biasCorr1)) / ((vi / Double(p.biasCorr2)).squareRoot() + 1e-6)
                let x = min(max((w - Double(lr) * (adam + 0.1 * w)) * 30, Double(grid.qn)), Double(grid.qp))
                let u = Double(stream.word(i) >> 8) * 0x1p-24
                let expected = Int(x.rounded(.down)) + ((x - x.rounded(.down)) > u ? 1 : 0)
                if abs((x - x.rounded(.down)) - u) < 1e-4 {
                    borderline += 1
                    continue
                }
                if Int(codes1[i]) != expected { differing += 1 }
            }
            XCTAssertEqual(
                differing, 0, "\(grid): \(differing) codes differ from the reference (\(borderline) borderline skipped)"
            )
            XCTAssertEqual(Int(changed), zip(codes0, codes1).filter { $0 != $1 }.count)
            XCTAssertGreaterThan(changed, 0)
        }
    }

    /// The same (seed, tensor, step) gives bit-identical codes and moments with 1 and 2 threads.
    func testUpdateIsIndependentOfThreadCount() throws {
        func run(threads: Int, state: StateType) throws -> ([Int8], [Float]) {
            Threads.configure(threads)
            var c = ModelConfig()
            (c.vocabSize, c.dim, c.nLayers, c.nHeads, c.ffnDim, c.seqLen) = (300, 64, 1, 2, 128, 8)
            var quant = QuantConfig()
            quant.mode = .dqt
            let model = Model(config: c, quant: quant, batch: 1, ledger: nil)
            model.weights.initialize(seed: 3, std: 0.02)
            var optim = OptimConfig()
            optim.stateDtype = state
            let opt = Optimizer(config: optim, layout: model.layout, ledger: nil)
            var rng = TestRandom(23)
            for i in 0..<model.layout.count { model.gradients.pointer[i] = Float(rng.values(1, scale: 1)[0]) }
            for s in 0..<3 {
                opt.update(weights: model.weights, gradients: model.gradients.pointer, gradScale: 1, lr: 0.05, seed: 11)
                _ = s
            }
            let codes = model.layout.specs.compactMap { model.weights.codes($0.index)?.codes() }.flatMap { $0 }
            return (codes, opt.m.values + opt.v.values)
        }
        for state in StateType.allCases {
            let one = try run(threads: 1, state: state), two = try run(threads: 2, state: state)
            XCTAssertEqual(one.0, two.0, state.rawValue)
            XCTAssertEqual(one.1, two.1, state.rawValue)
        }
        Threads.configure(2)
    }

    func testActivationQuantizerIsPerTokenInt8() {
        // Rows 1, 2 (all zero) and 3.
        var x: [Float] = [0.5, -1.0, 0.25, 0.0, 0, 0, 0, 0, 3, 1e-3, -2, 1]
        x.withUnsafeMutableBufferPointer { ActivationQuantizer.apply($0.baseAddress!, rows: 3, cols: 4) }
        let s1: Float = 127 / 1.0
        XCTAssertEqual(Array(x[0..<4]), [(0.5 * s1).rounded() / s1, -1, (0.25 * s1).rounded() / s1, 0])
        XCTAssertEqual(Array(x[4..<8]), [0, 0, 0, 0])
        let s3: Float = 127 / 3
        XCTAssertEqual(x[8], 3, accuracy: 1e-6)
        XCTAssertEqual(x[9], 0)  // below half a step
        XCTAssertEqual(x[10], (-2 * s3).rounded() / s3, accuracy: 1e-6)
    }

    func testAbsmeanInitialisation() {
        for grid in [QuantGrid.ternary, try! QuantGrid(bits: 8)] {
            var c = ModelConfig()
            (c.vocabSize, c.dim, c.nLayers, c.nHeads, c.ffnDim) = (500, 64, 1, 2, 128)
            var quant = QuantConfig()
            quant.mode = .dqt
            quant.bits = grid.configValue
            let model = Model(config: c, quant: quant, batch: 1, ledger: nil)
            model.weights.initialize(seed: 1, std: 0.02)
            let emb = model.weights.codes(model.layout.embedding)!
            // mean|W0| of normal(0, 0.02) is 0.02·√(2/π); the scale is qp over it.
            XCTAssertEqual(
                Double(emb.scale), Double(grid.qp) / (0.02 * (2 / Double.pi).squareRoot()),
                accuracy: Double(emb.scale) * 0.02)
            let codes = emb.codes()
            XCTAssertTrue(codes.allSatisfy { Int($0) >= grid.qn && Int($0) <= grid.qp })
            XCTAssertNil(model.weights.codes(model.layout.finalNorm), "gains stay FP32 under scope matrices")
            XCTAssertEqual(model.weights.densePointer(model.layout.finalNorm)[0], 1)
        }
    }
}
