import Foundation
import QKernels

/// Storage of the gradients (`optim.grad_dtype`).
public enum GradientType: String, CaseIterable, Codable, Sendable, ConfigEnum {
    /// Four bytes per parameter, written in place by backward (the paper's setting).
    case fp32
    /// Two bytes per parameter: each layer's FP32 gradient is added into the BF16 sums with
    /// stochastic rounding; the all-reduce sums BF16 and moves half the bytes.
    case bf16

    /// Bytes per stored gradient.
    public var size: Int { self == .fp32 ? 4 : 2 }
}

/// The gradients of one rank, in layout order, and the place backward writes them.
///
/// Backward asks for an FP32 ``destination(_:)`` for a range of the layout, adds that range's
/// gradient into it, and then ``commit(_:)``s it. FP32 gradients held whole are written in
/// place (commit does nothing). Otherwise the destination is an FP32 *window* — a few row
/// blocks, not a full buffer — and commit moves it into storage: added to BF16 sums with
/// stochastic rounding, or under ZeRO-2 (`shards`) summed over ranks onto the rank that owns
/// each part, which alone keeps its slice. Every rank commits the same ranges in the same order.
public final class GradientStore {
    public let dtype: GradientType
    public let layoutCount: Int
    /// The layout elements this rank keeps: all, or its ZeRO-2 slice.
    public let held: Range<Int>
    /// ZeRO-2's split, when the gradients are sharded.
    public let shards: ShardPlan?
    let comm: Communicator?
    private let f32: AlignedBuffer<Float>?
    private let bf16: AlignedBuffer<UInt16>?
    private let window: AlignedBuffer<Float>?
    /// Keys the stochastic rounding of this micro-step's commits (the trainer sets one per
    /// step, micro-step and rank).
    public var roundingSeed: UInt64 = 0
    /// Seconds commits spent in collectives since the last ``zero()``.
    public private(set) var communicationSeconds = 0.0

    /// Floats of the window for a model: the largest row block a backend hands over
    /// (`blockRows` rows of the widest layer), or a gain vector.
    public static func windowFloats(_ config: ModelConfig, blockRows: Int) -> Int {
        Int(plannedWindowFloats(config, blockRows: blockRows))
    }

    /// The same in Float64, for plans of sizes that would overflow Int.
    public static func plannedWindowFloats(_ config: ModelConfig, blockRows: Int) -> Double {
        Double(blockRows) * Double(max(config.dim, config.hiddenDim))
    }

    /// - Parameters: shards/comm: ZeRO-2 (this rank keeps `shards.ranges[comm.rank]`);
    ///   windowFloats: the largest destination backward asks for (a window is allocated
    ///   unless the gradients are FP32 and held whole).
    public init(
        dtype: GradientType, layoutCount: Int, shards: ShardPlan? = nil, comm: Communicator? = nil,
        windowFloats: Int, ledger: MemoryLedger?
    ) {
        self.dtype = dtype
        self.layoutCount = layoutCount
        self.shards = shards
        self.comm = comm
        held = shards.map { $0.ranges[comm!.rank] } ?? 0..<layoutCount
        f32 = dtype == .fp32 ? AlignedBuffer(count: held.count, category: .gradients, ledger: ledger) : nil
        bf16 = dtype == .bf16 ? AlignedBuffer(count: held.count, category: .gradients, ledger: ledger) : nil
        window =
            dtype == .fp32 && shards == nil
            ? nil : AlignedBuffer(count: windowFloats, category: .gradients, ledger: ledger)
    }

    /// A store that keeps no gradients, for a model that only runs forward (evaluation,
    /// decoding, export): its backward stops with a message instead of writing anywhere.
    public static func none() -> GradientStore {
        GradientStore(dtype: .fp32, layoutCount: 0, windowFloats: 0, ledger: nil)
    }

    /// Whether backward writes straight into the stored gradients.
    public var writesInPlace: Bool { window == nil }

    /// The most elements one destination may span.
    public var maxDestination: Int { window?.count ?? layoutCount }

    /// The FP32 gradients held whole (`optim.grad_dtype: fp32` without ZeRO-2).
    public var pointer: UnsafeMutablePointer<Float> {
        guard let f32, window == nil else { preconditionFailure("the gradients are not FP32 held whole") }
        return f32.pointer
    }

    /// The stored BF16 gradients (`optim.grad_dtype: bf16` without ZeRO-2: all of the layout).
    package var bf16Pointer: UnsafeMutablePointer<UInt16>? { bf16?.pointer }

    /// Sets every held gradient to zero (at the start of a step).
    public func zero() {
        f32?.zero()
        if let bf16 { bf16.pointer.initialize(repeating: 0, count: held.count) }
        communicationSeconds = 0
    }

    /// FP32 memory for the gradients of layout elements `r`: the gradients themselves (backward
    /// adds to them), or the zeroed window.
    public func destination(_ r: Range<Int>) -> UnsafeMutablePointer<Float> {
        guard let window else { return f32!.pointer + r.lowerBound }
        guard r.count <= window.count else {
            fatalError("gradient range \(r) exceeds the \(window.count)-float window")
        }
        window.pointer.initialize(repeating: 0, count: r.count)
        return window.pointer
    }

    /// Stores the gradients of `r` that backward wrote into ``destination(_:)``.
    public func commit(_ r: Range<Int>) throws {
        guard let window, !r.isEmpty else { return }
        guard let shards, let comm else { return accumulate(window.pointer, into: r) }
        let t = DispatchTime.now().uptimeNanoseconds
        for (owner, slice) in shards.ranges.enumerated() {
            let lo = max(r.lowerBound, slice.lowerBound), hi = min(r.upperBound, slice.upperBound)
            guard lo < hi else { continue }
            try comm.reduceSum(window.pointer + (lo - r.lowerBound), count: hi - lo, root: owner)
            if owner == comm.rank { accumulate(window.pointer + (lo - r.lowerBound), into: lo..<hi) }
        }
        communicationSeconds += Double(DispatchTime.now().uptimeNanoseconds - t) * 1e-9
    }

    /// Adds FP32 values for held layout elements `r` into storage.
    private func accumulate(_ x: UnsafeMutablePointer<Float>, into r: Range<Int>) {
        let o = r.lowerBound - held.lowerBound
        Threads.parallelFor(r.count, minChunk: 1 << 16) { part in
            let p = x + part.lowerBound, n = Int64(part.count), at = o + part.lowerBound
            if let f32 = self.f32 {
                qk_add(f32.pointer + at, p, n)
            } else {
                let acc = self.bf16!.pointer + at
                qk_bf16_widen_add(p, acc, n)
                // Element e of the layout draws counter e of this micro-step's stream.
                qk_round_bf16(
                    acc, n, p, n, 1, n, nil, 1, self.roundingSeed,
                    UInt64(r.lowerBound + part.lowerBound), 0, 1)
            }
        }
    }

    /// The FP32 gradients of held layout elements `offset ..< offset + n`: in place for FP32,
    /// else widened into `scratch` (n floats).
    public func floats(at offset: Int, count n: Int, scratch: UnsafeMutablePointer<Float>?) -> UnsafePointer<Float> {
        let o = offset - held.lowerBound
        if let f32 { return UnsafePointer(f32.pointer + o) }
        guard let scratch else { preconditionFailure("BF16 gradients need scratch") }
        qk_bf16_to_f32_array(scratch, bf16!.pointer + o, Int64(n))
        return UnsafePointer(scratch)
    }

    /// Σ g² over layout elements `r` (held), in a fixed order (blocks of 2^16, then in order).
    public func squaredNorm(_ r: Range<Int>? = nil) -> Double {
        let r = r ?? held
        let o = r.lowerBound - held.lowerBound
        if let f32 = f32?.pointer {
            return FixedOrderSum.sum(count: r.count) { qk_sum_squares(f32 + o + $0, Int64($1)) }
        }
        let h = bf16!.pointer
        return FixedOrderSum.sum(count: r.count) { qk_sum_squares_bf16(h + o + $0, Int64($1)) }
    }
}

/// Where a linear layer's weight gradient (N × K, rows of stacked tensors adjacent in the
/// layout) goes: FP32 rows that a backend adds its product into, handed out at most
/// ``maxRows`` rows at a time, and committed when final.
public struct WeightGradient {
    /// K.
    public let cols: Int
    /// The most rows one piece may have.
    public let maxRows: Int
    /// The whole N × K gradient, when it is written in place.
    public let directPointer: UnsafeMutablePointer<Float>?
    private let place: (Range<Int>) -> UnsafeMutablePointer<Float>
    private let done: (Range<Int>) throws -> Void

    /// Rows written straight into `pointer` (N × K, row-major), nothing to commit.
    public static func direct(_ pointer: UnsafeMutablePointer<Float>, cols: Int) -> WeightGradient {
        WeightGradient(
            cols: cols, maxRows: Int.max, directPointer: pointer, place: { pointer + $0.lowerBound * cols },
            done: { _ in })
    }

    /// The gradient of the matrix whose row 0 is layout element `offset`, in `store`.
    public static func stored(in store: GradientStore, offset: Int, cols: Int) -> WeightGradient {
        if store.writesInPlace { return direct(store.pointer + offset, cols: cols) }
        return WeightGradient(
            cols: cols, maxRows: max(store.maxDestination / cols, 1), directPointer: nil,
            place: { store.destination((offset + $0.lowerBound * cols)..<(offset + $0.upperBound * cols)) },
            done: { try store.commit((offset + $0.lowerBound * cols)..<(offset + $0.upperBound * cols)) })
    }

    /// FP32 memory (rows.count × K) to add the gradient of `rows` into.
    public func rows(_ rows: Range<Int>) -> UnsafeMutablePointer<Float> { place(rows) }

    /// The gradient of `rows` is final.
    public func finish(_ rows: Range<Int>) throws { try done(rows) }

    /// Runs `body` on each piece of rows `0..<n` (at most ``maxRows`` each, starting at
    /// multiples of `align` rows past the first), then finishes it.
    public func forEachPiece(rows n: Int, _ body: (Range<Int>, UnsafeMutablePointer<Float>) throws -> Void) throws {
        var r0 = 0
        while r0 < n {
            let r = r0..<min(n, r0 + maxRows)
            try body(r, rows(r))
            try finish(r)
            r0 = r.upperBound
        }
    }
}
