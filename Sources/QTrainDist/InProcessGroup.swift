import Foundation
import QKernels
import QTrainCore

/// N data-parallel replicas as threads of one process (`--debug --ranks N`): the collectives
/// of ``Communicator`` over shared memory, so distributed logic can be debugged without MPI.
///
/// Sums are taken in rank order (r0 + r1 + …), so every rank gets identical bits, and with
/// two ranks the same bits as MPI's two-rank all-reduce. If one rank fails, ``abort(_:)``
/// wakes the others, whose next collective throws instead of waiting forever.
public final class InProcessGroup: @unchecked Sendable {
    public let size: Int
    private let cond = NSCondition()
    private var arrived = 0
    private var generation = 0
    private var failure: String?
    private var slots: [UnsafeMutableRawPointer?]
    private var values: [[Double]]

    public init(size: Int) {
        self.size = size
        slots = Array(repeating: nil, count: size)
        values = Array(repeating: [], count: size)
    }

    /// The communicator of `rank`.
    public func communicator(rank: Int) -> Communicator { InProcessCommunicator(group: self, rank: rank) }

    /// Marks the group failed: every rank waiting or arriving at a collective throws.
    public func abort(_ reason: String) {
        cond.lock()
        if failure == nil { failure = reason }
        cond.broadcast()
        cond.unlock()
    }

    func barrier() throws {
        cond.lock()
        defer { cond.unlock() }
        if let failure { throw PeerRankFailure(reason: failure) }
        let gen = generation
        arrived += 1
        if arrived == size {
            arrived = 0
            generation += 1
            cond.broadcast()
            return
        }
        while gen == generation && failure == nil { cond.wait() }
        if gen == generation, let failure { throw PeerRankFailure(reason: failure) }
    }

    /// Runs `body` holding the lock. Every access to `slots` and `values` goes through it:
    /// two ranks writing their own elements of one Swift array at the same time race on the
    /// array itself (a copy-on-write of a buffer another rank still holds a copy of).
    private func locked<T>(_ body: () -> T) -> T {
        cond.lock()
        defer { cond.unlock() }
        return body()
    }

    func publish(_ rank: Int, pointer: UnsafeMutableRawPointer?) throws {
        locked { slots[rank] = pointer }
        try barrier()
    }

    func slot(_ r: Int) -> UnsafeMutableRawPointer { locked { slots[r]! } }

    func exchange(_ rank: Int, _ v: [Double]) throws -> [[Double]] {
        locked { values[rank] = v }
        try barrier()
        let all = locked { values }
        try barrier()
        return all
    }
}

final class InProcessCommunicator: Communicator {
    let group: InProcessGroup
    let rank: Int
    var worldSize: Int { group.size }
    var localRank: Int { rank }
    var localSize: Int { group.size }
    var name: String { "in-process ×\(group.size)" }

    init(group: InProcessGroup, rank: Int) {
        self.group = group
        self.rank = rank
    }

    /// Rank r sums segment r over all ranks, in rank order, and writes it to every rank.
    func allReduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws {
        try group.publish(rank, pointer: UnsafeMutableRawPointer(buffer))
        let lo = count * rank / worldSize, hi = count * (rank + 1) / worldSize
        let ptrs = (0..<worldSize).map { group.slot($0).assumingMemoryBound(to: Float.self) }
        for i in lo..<hi {
            var s = ptrs[0][i]
            for r in 1..<worldSize { s += ptrs[r][i] }
            for r in 0..<worldSize { ptrs[r][i] = s }
        }
        try group.barrier()
    }

    func startAllReduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws -> PendingCollective {
        try allReduceSum(buffer, count: count)
        return CompletedCollective()
    }

    /// The root's part of an all-reduce.
    func reduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int, root: Int) throws {
        try allReduceSum(buffer, count: count)
    }

    func startReduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int, root: Int) throws -> PendingCollective {
        try reduceSum(buffer, count: count, root: root)
        return CompletedCollective()
    }

    /// Each rank sums its share of the elements over all ranks in rank order (FP32, rounded to
    /// nearest after each addition, as the MPI reduction does) and writes it to every rank.
    func allReduceSumBF16(_ buffer: UnsafeMutablePointer<UInt16>, count: Int) throws {
        try group.publish(rank, pointer: UnsafeMutableRawPointer(buffer))
        let lo = count * rank / worldSize, hi = count * (rank + 1) / worldSize
        let ptrs = (0..<worldSize).map { group.slot($0).assumingMemoryBound(to: UInt16.self) }
        if hi > lo {
            for r in 1..<worldSize { qk_bf16_sum_into(ptrs[0] + lo, ptrs[r] + lo, Int64(hi - lo)) }
            for r in 1..<worldSize { (ptrs[r] + lo).update(from: ptrs[0] + lo, count: hi - lo) }
        }
        try group.barrier()
    }

    func reduceSumBF16(_ buffer: UnsafeMutablePointer<UInt16>, count: Int, root: Int) throws {
        try allReduceSumBF16(buffer, count: count)
    }

    func allReduceSum(_ values: inout [Double]) throws {
        let all = try group.exchange(rank, values)
        for i in 0..<values.count { values[i] = all.reduce(0) { $0 + $1[i] } }
    }

    func allReduceMax(_ values: inout [Double]) throws {
        let all = try group.exchange(rank, values)
        for i in 0..<values.count { values[i] = all.map { $0[i] }.max()! }
    }

    func allGatherBytes(_ buffer: UnsafeMutableRawPointer, counts: [Int]) throws {
        try group.publish(rank, pointer: buffer)
        let off = displacements(counts)[rank]
        for r in 0..<worldSize where r != rank {
            (group.slot(r) + off).copyMemory(from: buffer + off, byteCount: counts[rank])
        }
        try group.barrier()
    }

    func allGather(_ value: UInt64) throws -> [UInt64] {
        try group.exchange(rank, [Double(bitPattern: value)]).map { $0[0].bitPattern }
    }

    func broadcast(_ buffer: UnsafeMutableRawPointer, bytes: Int, root: Int) throws {
        try group.publish(rank, pointer: buffer)
        if rank != root { buffer.copyMemory(from: group.slot(root), byteCount: bytes) }
        try group.barrier()
    }

    func barrier() throws { try group.barrier() }
}

/// What a collective of an in-process group throws once another rank has failed: an echo of
/// that rank's error (`reason`), not a cause of its own, so that whoever runs the ranks can
/// report the root cause.
public struct PeerRankFailure: Error, CustomStringConvertible {
    public let reason: String
    public var description: String { "another in-process rank failed: \(reason)" }

    public init(reason: String) { self.reason = reason }
}
