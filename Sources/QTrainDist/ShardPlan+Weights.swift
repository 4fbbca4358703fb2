import QTrainCore
import QTrainWeights

extension ShardPlan {
    /// Gives every rank the weights the other ranks updated: one all-gather per tensor of the
    /// bytes its storage keeps (packed codes, BF16 or FP32 values).
    public func allGather(_ w: ModelWeights, comm: Communicator) throws {
        for spec in w.layout.specs {
            let s = w.storage[spec.index]
            try comm.allGatherBytes(s.payload.baseAddress!, counts: s.payloadByteCounts(of: parts(of: spec)))
        }
        w.refreshDerivedState()
    }
}
