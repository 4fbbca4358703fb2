import QTrainCore

/// The keys and values of every position a decoder has seen, per block, so that each new token
/// costs one pass over the weights instead of a pass over the whole prefix (``Model/decode(_:count:cache:)``).
public final class KeyValueCache {
    /// The most positions it holds.
    public let capacity: Int
    /// Positions held: the next token's position.
    public internal(set) var count = 0
    /// Width of one position's keys (and values): kvHeads · headDim.
    let K: Int
    /// Width of a packed [q | k | v] row.
    let W: Int
    private let keys: AlignedBuffer<Float>  // (L, capacity, K), after RoPE
    private let values: AlignedBuffer<Float>  // (L, capacity, K)

    public init(config: ModelConfig, capacity: Int, ledger: MemoryLedger? = nil) {
        self.capacity = capacity
        K = config.kvDim
        W = config.qkvWidth
        keys = AlignedBuffer(count: config.nLayers * capacity * K, category: .activations, ledger: ledger)
        values = AlignedBuffer(count: config.nLayers * capacity * K, category: .activations, ledger: ledger)
    }

    /// Forgets every position.
    public func reset() { count = 0 }

    /// Block `l`'s keys (capacity × K) and values: only the key/value heads, so grouped-query
    /// attention shrinks the cache by n_heads / n_kv_heads.
    func keys(_ l: Int) -> UnsafeMutablePointer<Float> { keys.pointer + l * capacity * K }
    func values(_ l: Int) -> UnsafeMutablePointer<Float> { values.pointer + l * capacity * K }

    /// Stores the keys and values of `n` new positions from packed rows of [q | k | v] (W wide).
    func append(_ l: Int, qkv: UnsafePointer<Float>, rows n: Int) {
        let k = keys(l) + count * K, v = values(l) + count * K, C = W - 2 * K
        for r in 0..<n {
            (k + r * K).update(from: qkv + r * W + C, count: K)
            (v + r * K).update(from: qkv + r * W + C + K, count: K)
        }
    }
}
