import Foundation
import QTrainCore

/// Chooses the next token from logits: greedy at temperature 0, otherwise softmax at the
/// temperature, restricted to the top-k and then to the smallest set of mass ≥ top-p, drawn
/// with a Philox stream keyed by the seed (so a seed reproduces a sample).
public struct TokenSampler {
    public var temperature: Double
    public var topK: Int
    public var topP: Double
    let stream: RandomStream
    private var draws = 0

    public init(temperature: Double, topK: Int, topP: Double, seed: UInt64) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        stream = RandomStream(seed: seed, purpose: .generation, tensor: 0, step: 0)
    }

    public mutating func next(_ logits: UnsafeBufferPointer<Float>) -> Int32 {
        if temperature <= 0 {
            var best = 0
            for i in 1..<logits.count where logits[i] > logits[best] { best = i }
            return Int32(best)
        }
        var order = Array(0..<logits.count)
        order.sort { logits[$0] > logits[$1] }
        if topK > 0 && topK < order.count { order.removeSubrange(topK...) }
        let mx = Double(logits[order[0]])
        var probs = order.map { exp((Double(logits[$0]) - mx) / temperature) }
        let total = probs.reduce(0, +)
        probs = probs.map { $0 / total }
        if topP < 1 {
            var mass = 0.0, keep = 0
            while keep < probs.count && mass < topP {
                mass += probs[keep]
                keep += 1
            }
            probs.removeSubrange(keep...)
            order.removeSubrange(keep...)
            let m = probs.reduce(0, +)
            probs = probs.map { $0 / m }
        }
        let u = Double(stream.word(draws) >> 8) * 0x1p-24
        draws += 1
        var acc = 0.0
        for (i, p) in probs.enumerated() {
            acc += p
            if u < acc { return Int32(order[i]) }
        }
        return Int32(order[probs.count - 1])
    }
}
