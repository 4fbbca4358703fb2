import Foundation
import QKernels

extension Trainer {
    /// Debug mode: every layer's output and input gradient is checked for NaN/Inf as it is made.
    func installDebugChecks() {
        let rank = comm.rank
        model.inspector = { [unowned self] label, x, n in
            for i in 0..<n where !x[i].isFinite {
                throw QTrainError(.numerics, "non-finite value \(x[i]) in \(label), element \(i), at step \(self.step + 1) on rank \(rank)",
                                  hint: "lower optim.lr or check the data")
            }
        }
    }

    /// Debug mode: the gradient norm of each block (after the all-reduce) in the log.
    func logBlockGradientNorms() throws {
        let g = model.gradients.pointer, layout = model.layout
        func norm(_ ids: [Int]) -> Double {
            ids.reduce(0.0) { acc, p in
                let s = layout.specs[p]
                return acc + pow(GradientClipping.norm(g + s.offset, count: s.count), 2)
            }.squareRoot() / Double(comm.worldSize)
        }
        var parts = [String(format: "embedding %.3g", norm([layout.embedding]))]
        for (l, b) in layout.blocks.enumerated() {
            parts.append(String(format: "block %d %.3g", l, norm([b.attnNorm, b.q, b.k, b.v, b.o, b.mlpNorm, b.gate, b.up, b.down])))
        }
        parts.append(String(format: "head %.3g", norm([layout.finalNorm, layout.head])))
        console.line("  gradient norms: " + parts.joined(separator: ", "))
    }
}
