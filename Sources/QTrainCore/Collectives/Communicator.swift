/// A collective operation that was started and may still be running.
public protocol PendingCollective: AnyObject {
    /// Blocks until the operation has finished.
    func wait() throws
}

/// The collectives data parallelism needs, over one group of ranks (DESIGN.md, Dist/).
///
/// Implementations: ``SingleProcessCommunicator`` (world of one), ``InProcessGroup`` (N
/// replicas as threads of one process, for `--debug --ranks N`) and the Open MPI one in the
/// QTrainMPI module. Every rank must call the same collectives in the same order.
public protocol Communicator: AnyObject {
    var rank: Int { get }
    var worldSize: Int { get }
    /// Rank among the processes on this node.
    var localRank: Int { get }
    /// Processes on this node.
    var localSize: Int { get }
    /// A short name for logs, e.g. `single process`, `in-process ×2`, `Open MPI 4.1.4`.
    var name: String { get }

    /// In-place sum over ranks of `count` floats.
    func allReduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws
    /// Starts an in-place sum; the buffer must not be touched until the result is waited for.
    func startAllReduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws -> PendingCollective
    /// Sums `count` floats over ranks into `root`'s buffer (in place); other ranks' buffers
    /// are unchanged.
    func reduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int, root: Int) throws
    /// Starts ``reduceSum(_:count:root:)``.
    func startReduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int, root: Int) throws -> PendingCollective
    /// In-place sum over ranks of `count` BF16 values: pairs are summed in FP32 and rounded to
    /// nearest (`optim.grad_dtype: bf16`), the same bits on every rank.
    func allReduceSumBF16(_ buffer: UnsafeMutablePointer<UInt16>, count: Int) throws
    /// ``reduceSum(_:count:root:)`` of BF16 values.
    func reduceSumBF16(_ buffer: UnsafeMutablePointer<UInt16>, count: Int, root: Int) throws
    /// Starts ``allReduceSumBF16(_:count:)``.
    func startAllReduceSumBF16(_ buffer: UnsafeMutablePointer<UInt16>, count: Int) throws -> PendingCollective
    /// Starts ``reduceSumBF16(_:count:root:)``.
    func startReduceSumBF16(_ buffer: UnsafeMutablePointer<UInt16>, count: Int, root: Int) throws -> PendingCollective
    /// In-place sum of doubles (small: losses, norms, counters).
    func allReduceSum(_ values: inout [Double]) throws
    /// In-place maximum of doubles.
    func allReduceMax(_ values: inout [Double]) throws
    /// Gathers rank r's `counts[r]` bytes (at offset Σ counts[<r]) to every rank, in place.
    func allGatherBytes(_ buffer: UnsafeMutableRawPointer, counts: [Int]) throws
    /// Each rank's value, on every rank.
    func allGather(_ value: UInt64) throws -> [UInt64]
    /// Copies `bytes` bytes from `root` to every rank.
    func broadcast(_ buffer: UnsafeMutableRawPointer, bytes: Int, root: Int) throws
    func barrier() throws
    /// Lets started non-blocking operations advance (MPI progresses them only inside calls).
    func progress() throws
}

extension Communicator {
    public func progress() throws {}

    public func startAllReduceSumBF16(_ buffer: UnsafeMutablePointer<UInt16>, count: Int) throws -> PendingCollective {
        try allReduceSumBF16(buffer, count: count)
        return CompletedCollective()
    }

    public func startReduceSumBF16(
        _ buffer: UnsafeMutablePointer<UInt16>, count: Int, root: Int
    ) throws -> PendingCollective {
        try reduceSumBF16(buffer, count: count, root: root)
        return CompletedCollective()
    }

    /// Byte offsets of the parts of an all-gather or reduce-scatter with per-rank `counts`.
    public func displacements(_ counts: [Int]) -> [Int] {
        var out: [Int] = []
        var o = 0
        for c in counts {
            out.append(o)
            o += c
        }
        return out
    }
}

/// A finished operation.
public final class CompletedCollective: PendingCollective {
    public init() {}
    public func wait() throws {}
}

/// The world of one process: every collective is the identity.
public final class SingleProcessCommunicator: Communicator {
    public init() {}
    public var rank: Int { 0 }
    public var worldSize: Int { 1 }
    public var localRank: Int { 0 }
    public var localSize: Int { 1 }
    public var name: String { "single process" }
    public func allReduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws {}
    public func startAllReduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws -> PendingCollective {
        CompletedCollective()
    }
    public func reduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int, root: Int) throws {}
    public func startReduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int, root: Int) throws -> PendingCollective
    {
        CompletedCollective()
    }
    public func allReduceSumBF16(_ buffer: UnsafeMutablePointer<UInt16>, count: Int) throws {}
    public func reduceSumBF16(_ buffer: UnsafeMutablePointer<UInt16>, count: Int, root: Int) throws {}
    public func allReduceSum(_ values: inout [Double]) throws {}
    public func allReduceMax(_ values: inout [Double]) throws {}
    public func allGatherBytes(_ buffer: UnsafeMutableRawPointer, counts: [Int]) throws {}
    public func allGather(_ value: UInt64) throws -> [UInt64] { [value] }
    public func broadcast(_ buffer: UnsafeMutableRawPointer, bytes: Int, root: Int) throws {}
    public func barrier() throws {}
}
