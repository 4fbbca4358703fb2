import QTrainCore

/// The keys and values of every position a decoder has seen, per block, so that each new token
/// costs one pass over the weights instead of a pass over the whole prefix (``Model/decode(_:count:cache:)``).
public final class KeyValueCache {
    /// The most positions it holds.
    public let capacity: Int
    /// Positions held: the next token's position.
    public internal(set) var count = 0
    let C: Int
    private let keys: AlignedBuffer<Float>  // (L, capacity, C), after RoPE
    private let values: AlignedBuffer<Float>  // (L, capacity, C)

    public init(config: ModelConfig, capacity: Int, ledger: MemoryLedger? = nil) {
        self.capacity = capacity
        C = config.dim
        keys = AlignedBuffer(count: config.nLayers * capacity * C, category: .activations, ledger: ledger)
        values = AlignedBuffer(count: config.nLayers * capacity * C, category: .activations, ledger: ledger)
    }

    /// Forgets every position.
    public func reset() { count = 0 }

    /// Block `l`'s keys (capacity × C) and values.
    func keys(_ l: Int) -> UnsafeMutablePointer<Float> { keys.pointer + l * capacity * C }
    func values(_ l: Int) -> UnsafeMutablePointer<Float> { values.pointer + l * capacity * C }

    /// Stores the keys and values of `n` new positions from packed rows of [q | k | v] (3C wide).
    func append(_ l: Int, qkv: UnsafePointer<Float>, rows n: Int) {
        let k = keys(l) + count * C, v = values(l) + count * C
        for r in 0..<n {
            (k + r * C).update(from: qkv + r * 3 * C + C, count: C)
            (v + r * C).update(from: qkv + r * 3 * C + 2 * C, count: C)
        }
    }
}
