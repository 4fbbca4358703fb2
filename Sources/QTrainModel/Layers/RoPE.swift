import Foundation
import QKernels
import QTrainCore

/// Rotary position embedding in the rotate-half layout of Hugging Face LLaMA: for each head,
/// (x1, x2) = halves, out = (x1·cos − x2·sin, x2·cos + x1·sin), angle = pos · θ^(−2i/d).
struct RoPE {
    let T: Int
    let headDim: Int
    let cosTable: AlignedBuffer<Float>
    let sinTable: AlignedBuffer<Float>

    init(T: Int, headDim: Int, theta: Double, ledger: MemoryLedger?) {
        self.T = T
        self.headDim = headDim
        let half = headDim / 2
        cosTable = AlignedBuffer(count: T * half, category: .activations, ledger: ledger)
        sinTable = AlignedBuffer(count: T * half, category: .activations, ledger: ledger)
        for p in 0..<T {
            for i in 0..<half {
                let angle = Double(p) * pow(theta, -2.0 * Double(i) / Double(headDim))
                cosTable.pointer[p * half + i] = Float(cos(angle))
                sinTable.pointer[p * half + i] = Float(sin(angle))
            }
        }
    }

    /// Rotates the first `heads` heads of each of `rows` rows (row stride `ld`); row r is
    /// position `offset + r mod seqLen`. `inverse` applies the transpose (backward).
    func apply(
        _ x: UnsafeMutablePointer<Float>, ld: Int, rows: Int, seqLen: Int, offset: Int = 0,
        heads: Int, inverse: Bool
    ) {
        OpProfile.shared.time("rope") {
            Threads.parallelFor(rows, minChunk: 16) { r in
                qk_rope_rows(
                    x, Int64(ld), Int64(r.lowerBound), Int64(r.upperBound), Int64(seqLen),
                    Int64(offset), Int64(heads), Int64(headDim), cosTable.pointer, sinTable.pointer, inverse ? 1 : 0)
            }
        }
    }
}
