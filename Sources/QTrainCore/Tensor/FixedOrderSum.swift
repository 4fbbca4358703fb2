/// Sums over many elements whose result does not depend on the thread count.
public enum FixedOrderSum {
    /// Elements per partial sum: fixed so that the result does not depend on the thread count.
    public static let block = 1 << 16

    /// Σ over `n` elements of `blockSum(start, count)` for blocks of ``block`` elements, the
    /// blocks on all threads and their sums added in order, so that the result does not depend
    /// on the thread count (whatever the element type `blockSum` reads).
    public static func sum(count n: Int, _ blockSum: (Int, Int) -> Double) -> Double {
        let blocks = (n + block - 1) / block
        var partial = [Double](repeating: 0, count: blocks)
        partial.withUnsafeMutableBufferPointer { p in
            Threads.parallelFor(blocks) { range in
                for b in range {
                    let s = b * block
                    p[b] = blockSum(s, min(block, n - s))
                }
            }
        }
        return partial.reduce(0, +)
    }
}
