import QKernels
import XCTest

@testable import QTrainCore
@testable import QTrainDist
@testable import QTrainModel
@testable import QTrainWeights

/// `optim.grad_dtype: bf16` and the gradient store's window: the BF16 all-reduce against a
/// widened FP32 reference, and a model's BF16 gradients against its FP32 ones.
final class GradientStoreTests: XCTestCase {
    override func setUp() { Threads.configure(2) }

    func widen(_ h: UInt16) -> Float { Float(bitPattern: UInt32(h) << 16) }

    /// Four in-process ranks sum BF16 buffers: every rank ends with the same bits, and each sum
    /// is within BF16 rounding of the FP32 sum of the same BF16 inputs (three additions, each
    /// rounded to nearest: at most 3 · 2⁻⁸ of the running magnitudes).
    func testBF16AllReduceMatchesAWidenedSumAndAgreesAcrossRanks() throws {
        let world = 4, n = 10_007
        var rng = TestRandom(41)
        let inputs: [[UInt16]] = (0..<world).map { _ in
            let x = rng.values(n, scale: 1).map(Float.init)
            var h = [UInt16](repeating: 0, count: n)
            qk_f32_to_bf16_array(&h, x, Int64(n))
            return h
        }
        let group = InProcessGroup(size: world)
        let buffers = inputs.map { h -> AlignedBuffer<UInt16> in
            let b = AlignedBuffer<UInt16>(count: n, category: .scratch, ledger: nil)
            b.pointer.update(from: h, count: n)
            return b
        }
        // One thread per rank (the ranks wait for each other, so they must all run at once).
        let done = DispatchGroup()
        for r in 0..<world {
            done.enter()
            Thread {
                defer { done.leave() }
                do { try group.communicator(rank: r).allReduceSumBF16(buffers[r].pointer, count: n) } catch {
                    group.abort("\(error)")
                }
            }.start()
        }
        XCTAssertEqual(done.wait(timeout: .now() + 60), .success, "the ranks did not finish")
        let results = buffers.map { Array(UnsafeBufferPointer(start: $0.pointer, count: n)) }
        for r in 1..<world { XCTAssertEqual(results[r], results[0], "rank \(r) differs") }
        var worst = 0.0
        for i in 0..<n {
            let terms = inputs.map { Double(widen($0[i])) }
            let exact = terms.reduce(0, +), magnitude = terms.map(abs).reduce(0, +)
            let got = Double(widen(results[0][i]))
            worst = max(worst, abs(got - exact) / (3 * 0x1p-8 * magnitude + 1e-30))
        }
        XCTAssertLessThanOrEqual(worst, 1.0)
        // The single-process communicator leaves the values alone.
        var one = inputs[0]
        try SingleProcessCommunicator().allReduceSumBF16(&one, count: n)
        XCTAssertEqual(one, inputs[0])
    }

    func model(_ gradients: GradientType, compute: ComputePath) -> Model {
        var c = ModelConfig()
        (c.vocabSize, c.dim, c.nLayers, c.nHeads, c.ffnDim, c.seqLen) = (300, 64, 2, 2, 128, 16)
        var q = QuantConfig()
        q.mode = .dqt
        q.compute = compute
        let store = GradientStore(
            dtype: gradients, layoutCount: ParameterLayout(c).count,
            windowFloats: GradientStore.windowFloats(c, blockRows: Int8Matmul.blockRows), ledger: nil)
        let m = Model(config: c, quant: q, batch: 2, ledger: nil, gradients: store)
        m.weights.initialize(seed: 5, std: 0.05)
        return m
    }

    /// BF16 gradients made through the window (two micro-batches accumulated) are the FP32
    /// gradients to within one BF16 step of each running sum (stochastic rounding after each
    /// micro-batch), on the FP32 and on the int8-bf16 compute path; they take half the bytes.
    func testBF16GradientsFollowFP32Gradients() throws {
        var rng = TestRandom(3)
        let tokens = rng.tokens(64, below: 300), targets = rng.tokens(64, below: 300)
        for compute in [ComputePath.fp32, .int8BF16] where compute == .fp32 || ProductArithmetic.bf16.isAvailable {
            let f32 = model(.fp32, compute: compute), b16 = model(.bf16, compute: compute)
            let n = f32.layout.count
            var first = [Float]()  // FP32 gradients after the first micro-batch
            for m in [f32, b16] {
                m.zeroGradients()
                m.backwardSeed = 9
                for micro in 0..<2 {
                    m.gradients.roundingSeed = UInt64(100 + micro)
                    _ = try m.forwardBackward(
                        tokens: Array(tokens[(micro * 32)...]), targets: Array(targets[(micro * 32)...]),
                        batch: 2, length: 16, lossScale: 0.5)
                    if m === f32 && micro == 0 {
                        first = Array(UnsafeBufferPointer(start: f32.gradients.pointer, count: n))
                    }
                }
            }
            var widened = [Float](repeating: 0, count: n)
            widened.withUnsafeMutableBufferPointer { out in
                let p = b16.gradients.floats(at: 0, count: n, scratch: out.baseAddress!)
                XCTAssertEqual(p, UnsafePointer(out.baseAddress!))
            }
            var far = 0, nonzero = 0
            for i in 0..<n {
                let a = Double(f32.gradients.pointer[i]), b = Double(widened[i])
                if a != 0 { nonzero += 1 }
                if abs(a - b) > 0x1p-7 * (abs(Double(first[i])) + abs(a)) * 1.01 + 1e-12 { far += 1 }
            }
            XCTAssertGreaterThan(nonzero, n / 2)
            XCTAssertEqual(far, 0, "\(compute): \(far) of \(n) gradients beyond two BF16 steps")
            XCTAssertEqual(
                b16.gradients.squaredNorm(), f32.gradients.squaredNorm(), accuracy: 0.02 * f32.gradients.squaredNorm())
        }
        let ledger = MemoryLedger(), layout = ParameterLayout(model(.fp32, compute: .fp32).config)
        let store = GradientStore(dtype: .bf16, layoutCount: layout.count, windowFloats: 1000, ledger: ledger)
        XCTAssertEqual(ledger.bytes(.gradients), 2 * layout.count + 4 * 1000)
        XCTAssertFalse(store.writesInPlace)
    }
}
