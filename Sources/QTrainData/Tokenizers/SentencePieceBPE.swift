/// SentencePiece's BPE over one stretch of normalized text: split it into characters (or
/// user-defined pieces, which never merge), then repeatedly merge the adjacent pair whose
/// concatenation is the highest-scoring piece, the leftmost pair on ties. Characters left
/// outside the vocabulary become byte pieces (`byte_fallback`) or one `<unk>` per run.
///
/// The buffers are reused from call to call, so merging a word allocates nothing.
struct SentencePieceBPE {
    private let tok: SentencePieceTokenizer

    /// Symbols: byte range in the text, neighbours in the list, whether they may merge.
    private var start: [Int32] = []
    private var length: [Int32] = []
    private var prev: [Int32] = []
    private var next: [Int32] = []
    private var frozen: [Bool] = []
    private var queue = PairQueue()
    /// How UNUSED pieces split back into the pair that formed them (SentencePiece re-segments
    /// them): piece id → (left start, left length, right length), the pair queued last.
    private var unusedSplits: [Int32: (Int32, Int32, Int32)] = [:]

    init(_ tokenizer: SentencePieceTokenizer) {
        tok = tokenizer
    }

    /// BPE over `base[from..<to]`, appending the ids to `out`.
    mutating func merge(_ base: UnsafePointer<UInt8>, _ from: Int, _ to: Int, into out: inout [Int32]) {
        split(base, from, to)
        let n = start.count
        if n == 0 { return }
        if n > 1 {
            queue.removeAll()
            for i in 1..<n { pushPair(base, Int32(i - 1), Int32(i)) }
            while let top = queue.pop() {
                let l = Int(top.left), r = Int(top.right)
                // Stale: one side has merged since the pair was queued (lengths only grow or drop to 0).
                if length[l] == 0 || length[r] == 0 || length[l] + length[r] != top.size { continue }
                length[l] += length[r]
                length[r] = 0
                next[l] = next[r]
                if next[r] >= 0 { prev[Int(next[r])] = top.left }
                pushPair(base, prev[l], top.left)
                pushPair(base, top.left, next[l])
            }
        }
        var index: Int32 = 0
        var previousUnknown = false
        while index >= 0 {
            emit(base, start[Int(index)], length[Int(index)], previousUnknown: &previousUnknown, into: &out)
            index = next[Int(index)]
        }
    }

    /// Characters, or the longest user-defined piece where one starts.
    private mutating func split(_ base: UnsafePointer<UInt8>, _ from: Int, _ to: Int) {
        start.removeAll(keepingCapacity: true)
        length.removeAll(keepingCapacity: true)
        prev.removeAll(keepingCapacity: true)
        next.removeAll(keepingCapacity: true)
        frozen.removeAll(keepingCapacity: true)
        var p = from
        while p < to {
            var size = min(to - p, utf8SequenceLength(base[p]))
            var isUserDefined = false
            if tok.userDefinedLeads[Int(base[p])], let match = tok.longestUserDefined(base + p, to - p) {
                size = match
                isUserDefined = true
            }
            let i = Int32(start.count)
            start.append(Int32(p))
            length.append(Int32(size))
            prev.append(i - 1)
            p += size
            next.append(p < to ? i + 1 : -1)
            frozen.append(isUserDefined)
        }
    }

    @inline(__always)
    private mutating func pushPair(_ base: UnsafePointer<UInt8>, _ l: Int32, _ r: Int32) {
        if l < 0 || r < 0 || frozen[Int(l)] || frozen[Int(r)] { return }
        let size = length[Int(l)] + length[Int(r)]
        guard let id = tok.pieces.value(base + Int(start[Int(l)]), Int(size)), tok.mergeable[Int(id)] else { return }
        queue.push(PairQueue.Pair(score: tok.scores[Int(id)], left: l, right: r, size: size))
        if tok.hasUnusedPieces && tok.types[Int(id)] == .unused {
            unusedSplits[id] = (start[Int(l)], length[Int(l)], length[Int(r)])
        }
    }

    /// The ids of one final symbol: its piece, the pieces an UNUSED piece splits into, or
    /// the unknown-character fallback.
    private mutating func emit(
        _ base: UnsafePointer<UInt8>, _ s: Int32, _ n: Int32, previousUnknown: inout Bool, into out: inout [Int32]
    ) {
        let id = tok.pieces.value(base + Int(s), Int(n)) ?? tok.unkID
        if tok.hasUnusedPieces && tok.types[Int(id)] == .unused, let (ls, ln, rn) = unusedSplits[id] {
            emit(base, ls, ln, previousUnknown: &previousUnknown, into: &out)
            emit(base, ls + ln, rn, previousUnknown: &previousUnknown, into: &out)
            return
        }
        if id != tok.unkID {
            out.append(id)
            previousUnknown = false
            return
        }
        if tok.byteFallback {
            for k in Int(s)..<Int(s + n) { out.append(tok.byteIDs[Int(base[k])]) }
        } else if !previousUnknown {
            out.append(id)
        }
        previousUnknown = true
    }
}

/// Bytes in the UTF-8 sequence that `lead` starts (1 for a stray continuation byte).
@inline(__always)
func utf8SequenceLength(_ lead: UInt8) -> Int {
    if lead < 0xC0 { return 1 }
    if lead < 0xE0 { return 2 }
    if lead < 0xF0 { return 3 }
    return 4
}

/// A binary max-heap of candidate merges: higher score first, then the leftmost pair.
struct PairQueue {
    struct Pair {
        var score: Float
        var left: Int32
        var right: Int32
        /// Byte length of the merged piece, to recognize stale entries.
        var size: Int32
    }

    private var heap: [Pair] = []

    mutating func removeAll() { heap.removeAll(keepingCapacity: true) }

    @inline(__always)
    private static func before(_ a: Pair, _ b: Pair) -> Bool {
        a.score > b.score || (a.score == b.score && a.left < b.left)
    }

    mutating func push(_ pair: Pair) {
        heap.append(pair)
        var i = heap.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            if !Self.before(pair, heap[parent]) { break }
            heap[i] = heap[parent]
            i = parent
        }
        heap[i] = pair
    }

    mutating func pop() -> Pair? {
        guard let top = heap.first else { return nil }
        let last = heap.removeLast()
        if heap.isEmpty { return top }
        var i = 0
        let n = heap.count
        while true {
            var child = 2 * i + 1
            if child >= n { break }
            if child + 1 < n && Self.before(heap[child + 1], heap[child]) { child += 1 }
            if !Self.before(heap[child], last) { break }
            heap[i] = heap[child]
            i = child
        }
        heap[i] = last
        return top
    }
}
