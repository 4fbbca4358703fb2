import CMPI
import Foundation
import QKernels
import QTrainCore

/// The ``Communicator`` over Open MPI's COMM_WORLD. Every MPI call's status is checked; a
/// failure becomes a ``QTrainError`` of kind `distributed` carrying MPI's own error string.
public final class MPICommunicator: Communicator {
    public let rank: Int
    public let worldSize: Int
    public let localRank: Int
    public let localSize: Int
    public let name: String
    private let comm: MPI_Comm
    private var outstanding: [MPIRequest] = []
    /// The BF16 sum (a user-defined, commutative operation on MPI_UINT16_T).
    private var bf16Sum: MPI_Op? = nil

    /// Initialises MPI (with `MPI_THREAD_SERIALIZED`: a communication thread may make the calls
    /// while the main thread computes, never both at once).
    public init() throws {
        var provided: Int32 = 0
        var argc: Int32 = 0
        let rc = MPI_Init_thread(&argc, nil, qt_mpi_thread_serialized(), &provided)
        guard rc == qt_mpi_success() else {
            throw QTrainError(
                .distributed, "MPI_Init_thread failed: \(MPICommunicator.describe(rc))",
                hint: "launch with mpirun (or srun with PMIx) and check the Open MPI installation")
        }
        guard provided >= qt_mpi_thread_serialized() else {
            throw QTrainError(
                .distributed, "this MPI library provides thread level \(provided); qtrain needs MPI_THREAD_SERIALIZED",
                hint: "use an Open MPI built with thread support")
        }
        comm = qt_mpi_comm_world()
        MPI_Comm_set_errhandler(comm, qt_mpi_errors_return())
        var r: Int32 = 0, n: Int32 = 0
        MPI_Comm_rank(comm, &r)
        MPI_Comm_size(comm, &n)
        rank = Int(r)
        worldSize = Int(n)
        var node = MPI_Comm(bitPattern: 0)
        MPI_Comm_split_type(comm, Int32(MPI_COMM_TYPE_SHARED), r, qt_mpi_info_null(), &node)
        var lr: Int32 = 0, ln: Int32 = 1
        MPI_Comm_rank(node, &lr)
        MPI_Comm_size(node, &ln)
        MPI_Comm_free(&node)
        localRank = Int(lr)
        localSize = Int(ln)
        name = MPILibrary.version()
        let sum:
            @convention(c) (
                UnsafeMutableRawPointer?, UnsafeMutableRawPointer?, UnsafeMutablePointer<Int32>?,
                UnsafeMutablePointer<MPI_Datatype?>?
            ) -> Void = { input, inout_, length, _ in
                guard let input, let inout_, let length else { return }
                qk_bf16_sum_into(
                    inout_.assumingMemoryBound(to: UInt16.self), input.assumingMemoryBound(to: UInt16.self),
                    Int64(length.pointee))
            }
        var op: MPI_Op? = nil
        try check(MPI_Op_create(sum, 1, &op), "MPI_Op_create")
        bf16Sum = op
    }

    deinit { MPI_Finalize() }

    static func describe(_ code: Int32) -> String {
        var buffer = [CChar](repeating: 0, count: Int(qt_mpi_max_error_string()) + 1)
        var length: Int32 = 0
        MPI_Error_string(code, &buffer, &length)
        return String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    func check(_ rc: Int32, _ what: String) throws {
        guard rc == qt_mpi_success() else {
            throw QTrainError(.distributed, "\(what) failed on rank \(rank): \(MPICommunicator.describe(rc))")
        }
    }

    public func allReduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws {
        try allReduce(buffer, count: count, type: qt_mpi_float(), op: qt_mpi_sum())
    }

    public func startAllReduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws -> PendingCollective {
        try startAllReduce(buffer, count: count, type: qt_mpi_float(), op: qt_mpi_sum())
    }

    public func reduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int, root: Int) throws {
        try reduce(buffer, count: count, root: root, type: qt_mpi_float(), op: qt_mpi_sum())
    }

    public func startReduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int, root: Int) throws -> PendingCollective
    {
        try startReduce(buffer, count: count, root: root, type: qt_mpi_float(), op: qt_mpi_sum())
    }

    public func allReduceSumBF16(_ buffer: UnsafeMutablePointer<UInt16>, count: Int) throws {
        try allReduce(buffer, count: count, type: qt_mpi_uint16(), op: bf16Sum)
    }

    public func startAllReduceSumBF16(_ buffer: UnsafeMutablePointer<UInt16>, count: Int) throws -> PendingCollective {
        try startAllReduce(buffer, count: count, type: qt_mpi_uint16(), op: bf16Sum)
    }

    public func reduceSumBF16(_ buffer: UnsafeMutablePointer<UInt16>, count: Int, root: Int) throws {
        try reduce(buffer, count: count, root: root, type: qt_mpi_uint16(), op: bf16Sum)
    }

    public func startReduceSumBF16(
        _ buffer: UnsafeMutablePointer<UInt16>, count: Int, root: Int
    ) throws -> PendingCollective {
        try startReduce(buffer, count: count, root: root, type: qt_mpi_uint16(), op: bf16Sum)
    }

    // In-place collectives over `count` elements of `type` (FP32, or BF16 with its sum); MPI
    // counts are 32-bit, so blocking ones go in pieces and non-blocking ones (buckets) must fit.

    private func allReduce<T>(_ buffer: UnsafeMutablePointer<T>, count: Int, type: MPI_Datatype?, op: MPI_Op?) throws {
        var done = 0
        while done < count {
            let n = min(count - done, Int(Int32.max))
            try check(MPI_Allreduce(qt_mpi_in_place(), buffer + done, Int32(n), type, op, comm), "MPI_Allreduce")
            done += n
        }
    }

    private func startAllReduce<T>(
        _ buffer: UnsafeMutablePointer<T>, count: Int, type: MPI_Datatype?, op: MPI_Op?
    ) throws
        -> PendingCollective
    {
        precondition(count <= Int(Int32.max), "bucket too large for one MPI call")
        let request = MPIRequest(owner: self)
        try check(
            MPI_Iallreduce(qt_mpi_in_place(), buffer, Int32(count), type, op, comm, &request.handle), "MPI_Iallreduce")
        outstanding.append(request)
        return request
    }

    private func reduce<T>(
        _ buffer: UnsafeMutablePointer<T>, count: Int, root: Int, type: MPI_Datatype?, op: MPI_Op?
    ) throws {
        var done = 0
        while done < count {
            let n = Int32(min(count - done, Int(Int32.max)))
            let rc =
                rank == root
                ? MPI_Reduce(qt_mpi_in_place(), buffer + done, n, type, op, Int32(root), comm)
                : MPI_Reduce(buffer + done, nil, n, type, op, Int32(root), comm)
            try check(rc, "MPI_Reduce")
            done += Int(n)
        }
    }

    private func startReduce<T>(
        _ buffer: UnsafeMutablePointer<T>, count: Int, root: Int, type: MPI_Datatype?, op: MPI_Op?
    ) throws
        -> PendingCollective
    {
        precondition(count <= Int(Int32.max), "bucket too large for one MPI call")
        let request = MPIRequest(owner: self)
        let rc =
            rank == root
            ? MPI_Ireduce(qt_mpi_in_place(), buffer, Int32(count), type, op, Int32(root), comm, &request.handle)
            : MPI_Ireduce(buffer, nil, Int32(count), type, op, Int32(root), comm, &request.handle)
        try check(rc, "MPI_Ireduce")
        outstanding.append(request)
        return request
    }

    public func progress() throws {
        outstanding.removeAll { $0.finished }
        for r in outstanding { try r.test() }
    }

    public func allReduceSum(_ values: inout [Double]) throws {
        let n = Int32(values.count)
        try values.withUnsafeMutableBufferPointer {
            try check(
                MPI_Allreduce(qt_mpi_in_place(), $0.baseAddress, n, qt_mpi_double(), qt_mpi_sum(), comm),
                "MPI_Allreduce")
        }
    }

    public func allReduceMax(_ values: inout [Double]) throws {
        let n = Int32(values.count)
        try values.withUnsafeMutableBufferPointer {
            try check(
                MPI_Allreduce(qt_mpi_in_place(), $0.baseAddress, n, qt_mpi_double(), qt_mpi_max(), comm),
                "MPI_Allreduce")
        }
    }

    /// A reduce to each part's owner in turn: measured here faster than MPI_Reduce_scatter
    /// (which also puts an in-place result at the buffer's start, not at the rank's offset).
    public func allGatherBytes(_ buffer: UnsafeMutableRawPointer, counts: [Int]) throws {
        let c32 = counts.map { Int32($0) }, d32 = displacements(counts).map { Int32($0) }
        try check(
            MPI_Allgatherv(qt_mpi_in_place(), 0, qt_mpi_byte(), buffer, c32, d32, qt_mpi_byte(), comm), "MPI_Allgatherv"
        )
    }

    public func allGather(_ value: UInt64) throws -> [UInt64] {
        var mine = value
        var all = [UInt64](repeating: 0, count: worldSize)
        try all.withUnsafeMutableBufferPointer { out in
            try check(
                MPI_Allgather(&mine, 1, qt_mpi_uint64(), out.baseAddress, 1, qt_mpi_uint64(), comm), "MPI_Allgather")
        }
        return all
    }

    public func broadcast(_ buffer: UnsafeMutableRawPointer, bytes: Int, root: Int) throws {
        var done = 0
        while done < bytes {
            let n = min(bytes - done, Int(Int32.max))
            try check(MPI_Bcast(buffer + done, Int32(n), qt_mpi_byte(), Int32(root), comm), "MPI_Bcast")
            done += n
        }
    }

    public func barrier() throws { try check(MPI_Barrier(comm), "MPI_Barrier") }

    /// Ends the whole job at once (every rank), e.g. after an unrecoverable error on one rank.
    public func abort(code: Int32) { MPI_Abort(comm, code) }
}

/// A non-blocking MPI operation.
final class MPIRequest: PendingCollective {
    var handle: MPI_Request? = qt_mpi_request_null()
    private(set) var finished = false
    private unowned let owner: MPICommunicator

    init(owner: MPICommunicator) { self.owner = owner }

    func test() throws {
        guard !finished else { return }
        var flag: Int32 = 0
        try owner.check(MPI_Test(&handle, &flag, qt_mpi_status_ignore()), "MPI_Test")
        finished = flag != 0
    }

    func wait() throws {
        guard !finished else { return }
        try owner.check(MPI_Wait(&handle, qt_mpi_status_ignore()), "MPI_Wait")
        finished = true
    }
}
