import Foundation
import QKernels
import QTrainCore

extension Trainer {
    /// Debug mode: every layer's output and input gradient is checked for NaN/Inf as it is made.
    func installDebugChecks() {
        let rank = comm.rank
        model.inspector = { [unowned self] label, x, n in
            for i in 0..<n where !x[i].isFinite {
                throw QTrainError(
                    .numerics,
                    "non-finite value \(x[i]) in \(label), element \(i), at step \(self.step + 1) on rank \(rank)",
                    hint: "lower optim.lr or check the data")
            }
        }
    }

    /// Debug mode: the gradient norm of each block (after the all-reduce) in the log.
    func logBlockGradientNorms() throws {
        let g = model.gradients, layout = model.layout
        // Under ZeRO-2 each rank holds a slice: a block's norm adds the ranks' parts.
        var squares: [Double] = []
        // A tied head's gradient is the embedding's: the head group is then the final norm alone.
        let head = layout.tiedEmbeddings ? [layout.finalNorm] : [layout.finalNorm, layout.head]
        let groups =
            [[layout.embedding]]
            + layout.blocks.map { b in [b.attnNorm, b.q, b.k, b.v, b.o, b.mlpNorm, b.gate, b.up, b.down] }
            + [head]
        for ids in groups {
            squares.append(
                ids.reduce(0.0) { acc, p in
                    let s = layout.specs[p]
                    let lo = max(s.offset, g.held.lowerBound), hi = min(s.offset + s.count, g.held.upperBound)
                    return acc + (lo < hi ? g.squaredNorm(lo..<hi) : 0)
                })
        }
        if g.shards != nil { try comm.allReduceSum(&squares) }
        var next = 0
        func norm(_ ids: [Int]) -> Double {
            defer { next += 1 }
            return squares[next].squareRoot() / Double(comm.worldSize)
        }
        var parts = [String(format: "embedding %.3g", norm([layout.embedding]))]
        for (l, b) in layout.blocks.enumerated() {
            parts.append(
                String(
                    format: "block %d %.3g", l, norm([b.attnNorm, b.q, b.k, b.v, b.o, b.mlpNorm, b.gate, b.up, b.down]))
            )
        }
        parts.append(String(format: "head %.3g", norm(head)))
        console.line("  gradient norms: " + parts.joined(separator: ", "))
    }
}
