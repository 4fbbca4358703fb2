import Foundation
import QTrainCore

/// Sums gradients over ranks in buckets while the backward pass is still running.
///
/// The flat gradient buffer is cut into buckets from its end (backward finishes gradients
/// from the end of the layout towards its start). The model reports, after each block, the
/// offset from which every gradient is final; each bucket lying wholly above it is started at
/// once. ``finish()`` starts what is left and waits; the time spent there is the time the step
/// waited on communication.
///
/// Replicated, each bucket is all-reduced. Under ZeRO-1 (`shards`) it is a reduce-scatter
/// built from reduces: each part of the bucket goes to the rank that owns it, so every rank
/// ends with the sum of its own slice only. BF16 gradients travel as BF16 (half the bytes),
/// summed by the communicator's BF16 reduction. Under ZeRO-2 the store's commits have already
/// summed every gradient onto its owner, and there is nothing left to do here.
public final class GradientSynchronizer {
    public let comm: Communicator
    public let mode: OverlapMode
    private let store: GradientStore
    private let count: Int
    /// Bucket ranges, last first.
    let buckets: [Range<Int>]
    private var next = 0
    private var pending: [PendingCollective] = []
    private let worker: CommunicationThread?
    private let shards: ShardPlan?
    /// Seconds ``finish()`` waited in the last step.
    public private(set) var lastWait = 0.0

    public init(
        comm: Communicator, gradients: GradientStore, bucketBytes: Int, mode: OverlapMode,
        shards: ShardPlan? = nil
    ) {
        self.comm = comm
        self.shards = shards
        let mode = mode == .auto ? (shards == nil ? OverlapMode.nonblocking : .off) : mode
        store = gradients
        count = gradients.shards == nil ? gradients.layoutCount : 0
        self.mode = mode
        let size = max(bucketBytes / gradients.dtype.size, 1)
        var b: [Range<Int>] = []
        var hi = count
        while hi > 0 {
            let lo = max(0, hi - size)
            b.append(lo..<hi)
            hi = lo
        }
        buckets = b
        worker = mode == .thread && comm.worldSize > 1 ? CommunicationThread() : nil
    }

    /// Call before the backward pass whose gradients are to be summed.
    public func begin() {
        next = 0
        pending.removeAll()
    }

    /// Every gradient at `offset` or after is final: start the buckets that lie above it.
    public func ready(from offset: Int) throws {
        guard mode != .off, comm.worldSize > 1 else { return }
        while next < buckets.count && buckets[next].lowerBound >= offset {
            try start(buckets[next])
            next += 1
        }
        if mode == .nonblocking { try comm.progress() }
    }

    private func start(_ r: Range<Int>) throws {
        if let shards {
            for (owner, slice) in shards.ranges.enumerated() {
                let lo = max(r.lowerBound, slice.lowerBound), hi = min(r.upperBound, slice.upperBound)
                if lo < hi { try start(lo..<hi, root: owner) }
            }
        } else {
            try start(r, root: nil)
        }
    }

    private func start(_ r: Range<Int>, root: Int?) throws {
        let n = r.count
        if let h = store.bf16Pointer {
            let p = h + r.lowerBound
            switch (mode, root) {
            case (.nonblocking, nil): pending.append(try comm.startAllReduceSumBF16(p, count: n))
            case (.nonblocking, let root?): pending.append(try comm.startReduceSumBF16(p, count: n, root: root))
            case (.thread, nil): pending.append(worker!.submit { [comm] in try comm.allReduceSumBF16(p, count: n) })
            case (.thread, let root?):
                pending.append(worker!.submit { [comm] in try comm.reduceSumBF16(p, count: n, root: root) })
            case (.off, nil), (.auto, nil): try comm.allReduceSumBF16(p, count: n)
            case (.off, let root?), (.auto, let root?): try comm.reduceSumBF16(p, count: n, root: root)
            }
            return
        }
        let p = store.pointer + r.lowerBound
        switch (mode, root) {
        case (.nonblocking, nil): pending.append(try comm.startAllReduceSum(p, count: n))
        case (.nonblocking, let root?): pending.append(try comm.startReduceSum(p, count: n, root: root))
        case (.thread, nil): pending.append(worker!.submit { [comm] in try comm.allReduceSum(p, count: n) })
        case (.thread, let root?):
            pending.append(worker!.submit { [comm] in try comm.reduceSum(p, count: n, root: root) })
        case (.off, nil), (.auto, nil): try comm.allReduceSum(p, count: n)
        case (.off, let root?), (.auto, let root?): try comm.reduceSum(p, count: n, root: root)
        }
    }

    /// Starts the remaining buckets and waits for all; afterwards every rank holds the sum.
    public func finish() throws {
        let t = Date()
        guard comm.worldSize > 1 else { return }
        while next < buckets.count {
            try start(buckets[next])
            next += 1
        }
        for p in pending { try p.wait() }
        pending.removeAll()
        lastWait = Date().timeIntervalSince(t)
    }
}

/// One thread that runs submitted blocking collectives in order.
final class CommunicationThread: @unchecked Sendable {
    private let lock = NSCondition()
    private var queue: [(job: () throws -> Void, done: Job)] = []
    private var thread: Thread?

    final class Job: PendingCollective, @unchecked Sendable {
        private let cond = NSCondition()
        private var finished = false
        private var error: Error?

        func complete(_ e: Error?) {
            cond.lock()
            finished = true
            error = e
            cond.broadcast()
            cond.unlock()
        }

        func wait() throws {
            cond.lock()
            while !finished { cond.wait() }
            cond.unlock()
            if let error { throw error }
        }
    }

    init() {
        let t = Thread { [unowned self] in self.loop() }
        t.name = "qtrain-comm"
        thread = t
        t.start()
    }

    func submit(_ job: @escaping () throws -> Void) -> Job {
        let done = Job()
        lock.lock()
        queue.append((job, done))
        lock.signal()
        lock.unlock()
        return done
    }

    private func loop() {
        while true {
            lock.lock()
            while queue.isEmpty { lock.wait() }
            let (job, done) = queue.removeFirst()
            lock.unlock()
            do {
                try job()
                done.complete(nil)
            } catch {
                done.complete(error)
            }
        }
    }
}
