import Foundation
import QKernels
import QTrainCore
import QTrainOptim
import QTrainWeights

/// Replica fingerprints: every rank hashes all its weights (codes, scales, FP32 and BF16
/// tensors); the ranks compare, and a mismatch names the step, the ranks and the first
/// differing tensor (DESIGN.md, "Every rank holds the same …").
public enum ReplicaCheck {
    /// One fingerprint per parameter tensor.
    public static func tensorFingerprints(_ w: ModelWeights) -> [UInt64] {
        w.layout.specs.map { w.storage[$0.index].fingerprint(seed: UInt64($0.index)) }
    }

    /// The fingerprint of a whole replica.
    public static func fingerprint(_ w: ModelWeights) -> UInt64 {
        var all = tensorFingerprints(w)
        return qk_fingerprint(&all, Int64(all.count * 8), 0x5154_5241_494E)
    }

    /// What a failed comparison found.
    public struct Mismatch: Error, CustomStringConvertible {
        public let step: Int
        public let ranks: [Int]
        public let tensor: String
        public var description: String {
            "replicas differ at step \(step): rank\(ranks.count == 1 ? "" : "s") \(ranks.map(String.init).joined(separator: ", ")) "
                + "disagree\(ranks.count == 1 ? "s" : "") with rank 0, first in \(tensor)"
        }
    }

    /// Compares all ranks' weights; nil when identical.
    public static func compare(_ w: ModelWeights, comm: Communicator, step: Int) throws -> Mismatch? {
        let all = try comm.allGather(fingerprint(w))
        if Set(all).count == 1 { return nil }
        // Find the first differing tensor: gather every rank's per-tensor fingerprints.
        let mine = tensorFingerprints(w), n = mine.count
        var table = [UInt64](repeating: 0, count: n * comm.worldSize)
        for i in 0..<n { table[comm.rank * n + i] = mine[i] }
        try table.withUnsafeMutableBytes {
            try comm.allGatherBytes($0.baseAddress!, counts: Array(repeating: n * 8, count: comm.worldSize))
        }
        let ranks = (1..<comm.worldSize).filter { all[$0] != all[0] }
        var first = "(scales)"
        outer: for i in 0..<n {
            for r in 1..<comm.worldSize where table[r * n + i] != table[i] {
                first = w.layout.specs[i].name
                break outer
            }
        }
        return Mismatch(step: step, ranks: ranks, tensor: first)
    }

    /// Copies rank 0's weights, and its optimizer state when replicated, to every rank.
    public static func resynchronize(_ w: ModelWeights, optimizer: Optimizer?, comm: Communicator) throws {
        for s in w.storage {
            try comm.broadcast(s.payload.baseAddress!, bytes: s.payload.count, root: 0)
            try s.withSideState { side in
                if !side.isEmpty { try comm.broadcast(side.baseAddress!, bytes: side.count, root: 0) }
            }
        }
        if let optimizer {
            for part in optimizer.m.stored + optimizer.v.stored {
                try comm.broadcast(part.pointer, bytes: part.count * part.dtype.size, root: 0)
            }
        }
        w.refreshDerivedState()
    }

    /// Test aid: changes one weight of this replica so that the next comparison fails.
    public static func corrupt(_ w: ModelWeights) {
        w.storage[w.layout.blocks[0].q].perturb()
    }
}
