import QTrainData

/// The tokens a data mixture's training has drawn from each source since step 0, for the
/// metrics. Recounted from the stateless draws of ``MixtureSampler`` (not stored in
/// checkpoints): a resumed run replays the draws of the steps already done, at this run's
/// global batch (a run that changed its global batch on resume counts the earlier steps at
/// the new size).
final class DataTally {
    let names: [String]
    let sampler: MixtureSampler
    let sequencesPerStep: Int
    let seqLen: Int
    private(set) var tokens: [Int]
    private(set) var steps = 0

    init(names: [String], sampler: MixtureSampler, sequencesPerStep: Int, seqLen: Int) {
        self.names = names
        self.sampler = sampler
        self.sequencesPerStep = sequencesPerStep
        self.seqLen = seqLen
        tokens = [Int](repeating: 0, count: names.count)
    }

    /// Counts the global batches of every step before `step` not counted yet.
    func count(upTo step: Int) {
        while steps < step {
            let n = sampler.counts(step: steps, sequences: sequencesPerStep)
            for i in tokens.indices { tokens[i] += n[i] * seqLen }
            steps += 1
        }
    }

    /// Tokens drawn by source path.
    var byName: [String: Int] { Dictionary(uniqueKeysWithValues: zip(names, tokens)) }
}
