import Foundation
import QKernels
import QTrainCore

/// The arithmetic a product runs in, which decides the peak rate its time is measured against.
public enum ProductArithmetic: String, Sendable, CaseIterable {
    /// FP32 SGEMM (OpenBLAS).
    case fp32
    /// int8 × int8 → int32 (oneDNN's GEMM on AVX-512 VNNI).
    case int8
    /// BF16 × BF16 with FP32 accumulation (oneDNN's matmul on AVX-512 BF16).
    case bf16

    /// Whether this machine runs products in this arithmetic; when not, ``unavailableReason`` says why.
    public var isAvailable: Bool {
        switch self {
        case .fp32: return true
        case .int8: return qk_int8_gemm_available() != 0
        case .bf16: return qk_int8_gemm_available() != 0 && qk_bf16_matmul_available() != 0
        }
    }

    /// Whether BF16 products outpace FP32 ones on this CPU (AMD's AVX-512 BF16, AMX tiles), so
    /// that `quant.compute: auto` takes them: on Intel's AVX-512 BF16 alone they run at half
    /// OpenBLAS's SGEMM rate (bench measures both).
    public static var bf16OutpacesFP32: Bool { qk_cpu_bf16_outpaces_fp32() != 0 }

    /// Why ``isAvailable`` is false (the library or instruction that is missing).
    public var unavailableReason: String? {
        switch self {
        case .fp32: return nil
        case .int8: return isAvailable ? nil : String(cString: qk_int8_gemm_status())
        case .bf16:
            return isAvailable
                ? nil : ProductArithmetic.int8.unavailableReason ?? String(cString: qk_bf16_matmul_status())
        }
    }

    /// The machine's best rate in this arithmetic over large square products with the current
    /// threads, in GFLOP/s (GOP/s for int8; a multiply-add is 2 operations), measured now; nil
    /// where it cannot run.
    public func measurePeak(size n: Int = 2048, repeats: Int = 3) -> Double? {
        guard isAvailable else { return nil }
        switch self {
        case .fp32:
            let a = AlignedBuffer<Float>(count: n * n, category: .scratch, ledger: nil)
            let b = AlignedBuffer<Float>(count: n * n, category: .scratch, ledger: nil)
            let c = AlignedBuffer<Float>(count: n * n, category: .scratch, ledger: nil)
            for i in 0..<(n * n) {
                a.pointer[i] = Float(i % 7) * 0.01
                b.pointer[i] = Float(i % 5) * 0.01
            }
            return Self.bestRate(n: n, repeats: repeats, warmUp: false) {
                Gemm.multiply(m: n, n: n, k: n, a: a.pointer, lda: n, b: b.pointer, ldb: n, c: c.pointer, ldc: n)
            }
        case .int8:
            let a = AlignedBuffer<Int8>(count: n * n, category: .scratch, ledger: nil)
            let b = AlignedBuffer<Int8>(count: n * n, category: .scratch, ledger: nil)
            let c = AlignedBuffer<Int32>(count: n * n, category: .scratch, ledger: nil)
            for i in 0..<(n * n) {
                a.pointer[i] = Int8(i % 255 - 127)
                b.pointer[i] = Int8(i % 3 - 1)
            }
            return Self.bestRate(n: n, repeats: repeats) {
                _ = qk_int8_gemm_nt(
                    Int64(n), Int64(n), Int64(n), a.pointer, Int64(n), b.pointer, Int64(n), c.pointer, Int64(n))
            }
        case .bf16:
            let a = AlignedBuffer<UInt16>(count: n * n, category: .scratch, ledger: nil)
            let b = AlignedBuffer<UInt16>(count: n * n, category: .scratch, ledger: nil)
            let c = AlignedBuffer<Float>(count: n * n, category: .scratch, ledger: nil)
            for i in 0..<(n * n) {
                a.pointer[i] = 0x3F80 + UInt16(i % 64)  // 1 + small fractions
                b.pointer[i] = 0x3C00 + UInt16(i % 32)
            }
            return Self.bestRate(n: n, repeats: repeats) {
                _ = qk_bf16_matmul(
                    Int64(n), Int64(n), Int64(n), a.pointer, Int64(n), 1, b.pointer, Int64(n), 1, c.pointer,
                    Int64(n), 0)
            }
        }
    }

    private static func bestRate(n: Int, repeats: Int, warmUp: Bool = true, _ product: () -> Void) -> Double {
        if warmUp { product() }  // primitive creation and first-touch are not the rate
        var best = Double.infinity
        for _ in 0..<repeats {
            let t = DispatchTime.now().uptimeNanoseconds
            product()
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t) * 1e-9)
        }
        return 2 * Double(n) * Double(n) * Double(n) / best / 1e9
    }
}

/// What a matmul backend needs from the model around it and what it computes with, known
/// before one is built: the memory plan sizes a run from it, the model its weight scratch,
/// activation arena and gradient window, bench the peaks a step is measured against. Each
/// backend declares its own (``MatmulBackend/needs``); nothing asks a backend's concrete type.
public struct BackendNeeds: Sendable {
    /// Weight rows per product of a quantised layer when the backend takes the weights a row
    /// block at a time (it unpacks their codes into its own scratch), so the model materialises
    /// FP32 weight rows in blocks of this many; nil: the model materialises whole matrices.
    public var weightBlockRows: Int?
    /// Rows of a weight gradient the backend hands over at once: the gradient window (when
    /// gradients are not FP32 in place) holds this many rows of the widest layer.
    public var gradientRows: Int
    /// Whether the backend reads the int8 codes of quantised layers' inputs
    /// (``LinearInput/codes``), which the activation arena then keeps.
    public var activationCodes: Bool
    /// The arithmetic of quantised layers' forward product.
    public var forward: ProductArithmetic
    /// The arithmetic of quantised layers' input-gradient product (dX = dY · W).
    public var inputGradient: ProductArithmetic
    /// The arithmetic of quantised layers' weight-gradient product (dW = dYᵀ · X).
    public var weightGradient: ProductArithmetic
    /// Bytes of its own scratch for products of at most `maxRows` rows and inner dimension
    /// `maxInner` (Float64, so plans of absurd sizes cannot overflow).
    public var scratchBytes: @Sendable (_ maxRows: Double, _ maxInner: Double) -> Double
}
