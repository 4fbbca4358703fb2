import CBLAS
import Dispatch
import Foundation
import QKernels

/// The threads one rank computes with: OpenBLAS's pool and the pool of the elementwise kernels
/// are sized together, so a rank never runs more threads than it was given.
public enum Threads {
    nonisolated(unsafe) private static var configured = 1

    /// Threads per rank now in use.
    public static var count: Int { configured }

    /// Sets the thread count for BLAS and for ``parallelFor(_:minChunk:_:)``.
    public static func configure(_ n: Int) {
        configured = max(1, n)
        openblas_set_num_threads(Int32(configured))
        // oneDNN's pool (int8 compute) gets the same threads; OpenBLAS and it never run at once.
        qk_int8_gemm_set_threads(Int32(configured))
    }

    /// The one thread rule (`train.threads`): `requested` when set (> 0), else this process's
    /// share of the cores, `ranksOnNode` processes sharing them. Sets it and returns it.
    @discardableResult
    public static func configure(requested: Int, ranksOnNode: Int = 1) -> Int {
        configure(requested > 0 ? requested : max(1, availableCores / max(ranksOnNode, 1)))
        return count
    }

    /// Cores this process may run on.
    public static var availableCores: Int { ProcessInfo.processInfo.activeProcessorCount }

    /// Runs `body` over `0..<n` split into contiguous chunks of at least `minChunk` items, on up
    /// to ``count`` threads. Chunks never overlap; `body` must not depend on how `n` is split.
    @inline(__always)
    public static func parallelFor(_ n: Int, minChunk: Int = 1, _ body: (Range<Int>) -> Void) {
        parallelChunks(n, minChunk: minChunk) { _, range in body(range) }
    }

    /// As ``parallelFor(_:minChunk:_:)``, also passing the chunk's index (below ``count``), for
    /// per-thread scratch.
    @inline(__always)
    public static func parallelChunks(
        _ n: Int, minChunk: Int = 1, maxParts: Int = .max, _ body: (Int, Range<Int>) -> Void
    ) {
        if n <= 0 { return }
        let parts = min(configured, maxParts, max(1, n / max(minChunk, 1)))
        if parts == 1 {
            body(0, 0..<n)
            return
        }
        DispatchQueue.concurrentPerform(iterations: parts) { p in
            let lo = n * p / parts, hi = n * (p + 1) / parts
            if lo < hi { body(p, lo..<hi) }
        }
    }

    /// As ``parallelFor(_:minChunk:_:)`` for decoding's many small jobs in a row (about 60 per
    /// token): on the decoding pool, whose helper threads spin briefly between jobs instead of
    /// sleeping (waking a thread costs about as much as one of these jobs). One caller at a time.
    public static func parallelForSpinning(_ n: Int, minChunk: Int = 1, _ body: (Range<Int>) -> Void) {
        if n <= 0 { return }
        let parts = min(Int(qk_pool_parts(Int64(configured))), configured, max(1, n / max(minChunk, 1)))
        if parts == 1 { return body(0..<n) }
        struct Job {
            let n: Int, parts: Int
            let body: (Range<Int>) -> Void
        }
        withoutActuallyEscaping(body) { body in
            var job = Job(n: n, parts: parts, body: body)
            withUnsafeMutablePointer(to: &job) { pointer in
                qk_pool_run(
                    Int64(configured), Int64(parts),
                    { context, part in
                        let job = context!.assumingMemoryBound(to: Job.self).pointee
                        let lo = job.n * Int(part) / job.parts, hi = job.n * (Int(part) + 1) / job.parts
                        if lo < hi { job.body(lo..<hi) }
                    }, pointer)
            }
        }
    }

    /// Runs `body` with OpenBLAS on one thread, for code that calls GEMMs from several of its
    /// own threads at once (OpenBLAS's advice for multi-threaded callers).
    public static func withSingleThreadedBLAS(_ body: () -> Void) {
        guard configured > 1 else { return body() }
        openblas_set_num_threads(1)
        body()
        openblas_set_num_threads(Int32(configured))
    }
}
