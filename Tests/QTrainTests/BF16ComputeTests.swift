import Foundation
import XCTest

@testable import QTrainCheckpoint
@testable import QTrainCore
@testable import QTrainDist
@testable import QTrainModel
@testable import QTrainTraining
@testable import QTrainWeights

/// `quant.compute: bf16` (mixed precision for unquantised models): each product within the
/// bound of rounding its two operands to BF16, training beside FP32 compute, bitwise repeatable.
final class BF16ComputeTests: XCTestCase {
    override func setUpWithError() throws {
        try XCTSkipUnless(ProductArithmetic.bf16.isAvailable, ProductArithmetic.bf16.unavailableReason ?? "")
    }

    /// In a real forward and backward pass of tiny and small FP32 models, every output element is
    /// within 2% of the FP32 path's largest and every dX and dW element within (2⁻⁷ + 2⁻¹⁶ +
    /// 2⁻²⁰) · Σ|terms| of the Float64 product: both factors rounded to nearest BF16 (a relative
    /// 2⁻⁸ each).
    func testProductsWithinBF16Bound() throws {
        for file in ["configs/tiny.yaml", "configs/small.yaml"] {
            var config = try RunConfig.load(path: repositoryFile(file)).model
            config.seqLen = min(config.seqLen, 32)
            let maxInner = max(config.dim, config.hiddenDim)
            let quant = Int8ComputeTests.quant(.fp32, compute: .bf16)
            let forward = ComparingBackend(BF16Matmul(maxRows: config.seqLen, maxInner: maxInner, ledger: nil))
            let backward = BackwardProbe(
                BF16Matmul(maxRows: config.seqLen, maxInner: maxInner, ledger: nil), u: 0x1p-7 + 0x1p-16)
            let tokens = (0..<config.seqLen).map { Int32(($0 * 31 + 3) % config.vocabSize) }
            for backend in [forward, backward] as [MatmulBackend] {
                let model = Model(config: config, quant: quant, batch: 1, ledger: nil, backend: backend)
                model.weights.initialize(seed: 5, std: Float(config.initStd))
                _ = try model.forwardBackward(
                    tokens: tokens, targets: tokens.reversed(), batch: 1, length: tokens.count)
            }
            XCTAssertEqual(forward.calls, 4 * config.nLayers + 1, file)
            XCTAssertLessThan(forward.worst, 0.02, file)
            XCTAssertGreaterThan(forward.worst, 0, "\(file): the forward rounded to BF16")
            XCTAssertEqual(backward.calls, 4 * config.nLayers + 1, file)
            XCTAssertLessThanOrEqual(backward.worst, 1, file)
            XCTAssertGreaterThan(backward.worstUse, 1e-3, "\(file): the backward rounded to BF16")
        }
    }

    /// Training tiny in FP32 weights with bf16 compute follows fp32 compute, two runs with one
    /// seed are bit-identical, and `quant.compute: bf16` resolves to it (not to an int8 path).
    func testBF16TrainingFollowsFP32() throws {
        XCTAssertEqual(ComputePath.bf16.resolved(inputsAreCodes: false).kind, .bf16)
        let fast = try assertTrainingFollows(self, mode: .fp32, reference: .fp32, tested: .bf16, tolerance: 5e-3)
        XCTAssertTrue(fast.model.backend is BF16Matmul)
    }
}
