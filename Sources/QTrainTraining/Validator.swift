import Foundation
import QTrainCore
import QTrainData
import QTrainModel

/// Validation loss over fixed windows of the validation split, split among ranks; owns its
/// cadence (`train.eval_every`, and always after the last step).
public final class Validator {
    /// What the validator has measured so far.
    public struct State: Codable, Sendable, Equatable {
        /// Loss before the first step, when the run started from scratch.
        public var firstLoss: Double?
        /// The latest loss, and the step it was measured after.
        public var lastLoss: Double?
        public var lastStep: Int?
    }

    public let data: TokenDataset
    /// Window starts of the validation split that every evaluation sees.
    public let windows: [Int]
    public private(set) var state = State()
    let model: Model
    let comm: Communicator
    let cadence: Cadence
    let batch: Int
    let tokens: AlignedBuffer<Int32>
    let targets: AlignedBuffer<Int32>

    init(
        data: TokenDataset, sequences: Int, every: Int, lastStep: Int, model: Model, comm: Communicator, batch: Int,
        ledger: MemoryLedger?
    ) {
        self.data = data
        windows = evaluationWindows(data, count: sequences)
        cadence = Cadence(every: every, lastStep: lastStep)
        self.model = model
        self.comm = comm
        self.batch = batch
        tokens = AlignedBuffer(count: batch * data.seqLen, category: .activations, ledger: ledger)
        targets = AlignedBuffer(count: batch * data.seqLen, category: .activations, ledger: ledger)
    }

    /// Bits per byte for each nat of loss over ``windows``: their target tokens ÷ (the UTF-8
    /// bytes those tokens stand for × ln 2); nil when no byte is counted.
    public func bitsPerBytePerNat(_ tokenizer: any Tokenizer) -> Double? {
        let T = data.seqLen
        var bytes = 0
        for w in windows {
            data.window(w, tokens: tokens.pointer, targets: targets.pointer)
            for t in 0..<T where targets.pointer[t] >= 0 && Int(targets.pointer[t]) < tokenizer.vocabSize {
                bytes += tokenizer.byteCount(of: targets.pointer[t])
            }
        }
        return bytes > 0 ? Double(windows.count * T) / (Double(bytes) * log(2)) : nil
    }

    /// Whether a validation is due after `step`.
    public func isDue(step: Int) -> Bool { cadence.isDue(step: step) }

    /// Mean loss over the windows after `step` (collective: every rank calls it).
    @discardableResult
    public func run(after step: Int) throws -> Double {
        let T = data.seqLen
        let mine = stride(from: comm.rank, to: windows.count, by: comm.worldSize).map { windows[$0] }
        var sum = 0.0
        for start in stride(from: 0, to: mine.count, by: batch) {
            let n = min(batch, mine.count - start)
            for b in 0..<n {
                data.window(mine[start + b], tokens: tokens.pointer + b * T, targets: targets.pointer + b * T)
            }
            sum += try model.loss(tokens: tokens.pointer, targets: targets.pointer, batch: n, length: T) * Double(n)
        }
        var totals = [sum, Double(mine.count)]
        try comm.allReduceSum(&totals)
        let loss = totals[0] / max(totals[1], 1)
        if step == 0 { state.firstLoss = loss }
        state.lastLoss = loss
        state.lastStep = step
        return loss
    }
}
