import QTrainCore

/// Which source and window a training sequence of a data mixture reads: sequence j of step s
/// comes from the source whose share of [0, 1) holds u = Philox(seed, data mixture, step s),
/// element j (shares in order of the mixture's paths, sized by the normalised weights), and
/// then from the window ``BatchSampler`` draws for (s, j) among that source's windows.
/// Stateless like ``BatchSampler``, so resume and any world size see the same global batch;
/// with one source no mixture number is drawn and the windows are ``BatchSampler``'s.
public struct MixtureSampler: Sendable {
    public let windows: BatchSampler
    /// The upper end of each source's share of [0, 1): the running sums of the normalised
    /// weights, the last set to exactly 1.
    public let bounds: [Double]

    public init(seed: UInt64, weights: [Double]) {
        precondition(!weights.isEmpty, "a mixture needs a source")
        windows = BatchSampler(seed: seed)
        let total = weights.reduce(0, +)
        var sum = 0.0
        var b = weights.map { w -> Double in
            sum += w / total
            return sum
        }
        b[b.count - 1] = 1
        bounds = b
    }

    /// The source of sequences `first ..< first + count` of step `step`, into `out`.
    public func sources(step: Int, first: Int, count: Int, into out: inout [Int]) {
        out = [Int](repeating: 0, count: count)
        guard bounds.count > 1, count > 0 else { return }
        var u = [Float](repeating: 0, count: count)
        RandomStream(seed: windows.seed, purpose: .dataMixture, tensor: 0, step: step)
            .uniforms(into: &u, start: first, count: count)
        for i in 0..<count {
            let x = Double(u[i])
            out[i] = bounds.firstIndex { x < $0 } ?? bounds.count - 1
        }
    }

    /// The source of sequence `j` of step `step`.
    public func source(step: Int, sequence j: Int) -> Int {
        var out: [Int] = []
        sources(step: step, first: j, count: 1, into: &out)
        return out[0]
    }

    /// How many of the first `sequences` sequences of step `step` (its global batch) each
    /// source gives.
    public func counts(step: Int, sequences: Int) -> [Int] {
        var picks: [Int] = []
        sources(step: step, first: 0, count: sequences, into: &picks)
        var n = [Int](repeating: 0, count: bounds.count)
        for p in picks { n[p] += 1 }
        return n
    }

    /// Fills a micro-batch of B sequences for `rank` of `world`, micro-step `micro`, from
    /// `sets` (one per source, in the mixture's order): sequences (micro · world + rank) · B ..< +B.
    public func fill(
        tokens: UnsafeMutablePointer<Int32>, targets: UnsafeMutablePointer<Int32>, from sets: [TokenDataset],
        step: Int, micro: Int, rank: Int, world: Int, batch B: Int
    ) {
        let T = sets[0].seqLen, first = (micro * world + rank) * B
        var picks: [Int] = []
        sources(step: step, first: first, count: B, into: &picks)
        for b in 0..<B {
            let data = sets[picks[b]]
            data.window(
                windows.window(step: step, sequence: first + b, windowCount: data.windowCount),
                tokens: tokens + b * T, targets: targets + b * T)
        }
    }
}
