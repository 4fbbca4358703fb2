import Foundation
import QTrainCore
import QTrainData
import QTrainModel

/// Validation loss over fixed windows of each source's validation split, split among ranks;
/// owns its cadence (`train.eval_every`, and always after the last step). A mixture's
/// headline loss is the mean of its sources' losses weighted as training draws them, so it
/// estimates the loss on the training distribution; each source's loss is reported too.
public final class Validator {
    /// What the validator has measured so far.
    public struct State: Codable, Sendable, Equatable {
        /// Loss before the first step, when the run started from scratch.
        public var firstLoss: Double?
        /// The latest loss, and the step it was measured after.
        public var lastLoss: Double?
        public var lastStep: Int?
    }

    /// One validation.
    public struct Result: Sendable, Equatable {
        /// Mean loss (nats per token): with a mixture, the weighted mean of the sources' losses.
        public var loss: Double
        /// Each source's mean loss by name (mixtures only).
        public var bySource: [String: Double]?
        /// Bits per byte, weighted like `loss`, when every source's tokens have known bytes.
        public var bitsPerByte: Double?
    }

    /// One source's validation split and the windows every evaluation sees.
    public struct Scored {
        public let name: String
        public let weight: Double
        public let data: TokenDataset
        /// Window starts (``TokenDataset/window(_:tokens:targets:)``'s numbering).
        public let windows: [Int]
        /// Bits per byte for each nat of loss over ``windows``: their target tokens ÷ (the
        /// UTF-8 bytes those tokens stand for × ln 2); nil when no byte is counted.
        var bitsPerBytePerNat: Double?
    }

    public let sources: [Scored]
    let isMixture: Bool
    public private(set) var state = State()
    let model: Model
    let comm: Communicator
    let cadence: Cadence
    let batch: Int
    let tokens: AlignedBuffer<Int32>
    let targets: AlignedBuffer<Int32>

    /// Validates on each source of `data` with `sequences` fixed windows each.
    init(
        data: TrainingData, sequences: Int, every: Int, lastStep: Int, model: Model, comm: Communicator, batch: Int,
        ledger: MemoryLedger?
    ) {
        let T = data.sources[0].validation.seqLen
        isMixture = data.isMixture
        cadence = Cadence(every: every, lastStep: lastStep)
        self.model = model
        self.comm = comm
        self.batch = batch
        tokens = AlignedBuffer(count: batch * T, category: .activations, ledger: ledger)
        targets = AlignedBuffer(count: batch * T, category: .activations, ledger: ledger)
        var scored = data.sources.map {
            Scored(
                name: $0.name, weight: $0.weight, data: $0.validation,
                windows: evaluationWindows($0.validation, count: sequences))
        }
        for i in scored.indices {
            scored[i].bitsPerBytePerNat = Self.bitsPerBytePerNat(
                scored[i], data.tokenizer, tokens: tokens.pointer, targets: targets.pointer)
        }
        sources = scored
    }

    private static func bitsPerBytePerNat(
        _ s: Scored, _ tokenizer: any Tokenizer, tokens: UnsafeMutablePointer<Int32>,
        targets: UnsafeMutablePointer<Int32>
    ) -> Double? {
        let T = s.data.seqLen
        var bytes = 0
        for w in s.windows {
            s.data.window(w, tokens: tokens, targets: targets)
            for t in 0..<T where targets[t] >= 0 && Int(targets[t]) < tokenizer.vocabSize {
                bytes += tokenizer.byteCount(of: targets[t])
            }
        }
        return bytes > 0 ? Double(s.windows.count * T) / (Double(bytes) * log(2)) : nil
    }

    /// Whether a validation is due after `step`.
    public func isDue(step: Int) -> Bool { cadence.isDue(step: step) }

    /// The losses over the windows after `step` (collective: every rank calls it).
    @discardableResult
    public func run(after step: Int) throws -> Result {
        var totals = [Double](repeating: 0, count: 2 * sources.count)
        for (i, s) in sources.enumerated() {
            let T = s.data.seqLen
            let mine = stride(from: comm.rank, to: s.windows.count, by: comm.worldSize).map { s.windows[$0] }
            for start in stride(from: 0, to: mine.count, by: batch) {
                let n = min(batch, mine.count - start)
                for b in 0..<n {
                    s.data.window(mine[start + b], tokens: tokens.pointer + b * T, targets: targets.pointer + b * T)
                }
                totals[2 * i] +=
                    try model.loss(tokens: tokens.pointer, targets: targets.pointer, batch: n, length: T) * Double(n)
            }
            totals[2 * i + 1] = Double(mine.count)
        }
        try comm.allReduceSum(&totals)
        let losses = sources.indices.map { totals[2 * $0] / max(totals[2 * $0 + 1], 1) }
        // With one source (weight 1) these sums are that source's loss and bits per byte exactly.
        var result = Result(loss: 0, bitsPerByte: 0)
        for (s, loss) in zip(sources, losses) {
            result.loss += s.weight * loss
            result.bitsPerByte = s.bitsPerBytePerNat.flatMap { f in
                result.bitsPerByte.map { $0 + s.weight * (loss * f) }
            }
        }
        if isMixture { result.bySource = Dictionary(uniqueKeysWithValues: zip(sources.map(\.name), losses)) }
        if step == 0 { state.firstLoss = result.loss }
        state.lastLoss = result.loss
        state.lastStep = step
        return result
    }
}
