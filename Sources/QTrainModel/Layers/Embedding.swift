import QTrainCore
import QTrainWeights

/// Token embedding: a lookup of rows of the (V × C) table.
enum Embedding {
    /// out (N, C) = table rows of `tokens` (N of them).
    static func forward(
        out: UnsafeMutablePointer<Float>, tokens: UnsafePointer<Int32>, count n: Int,
        weights: ModelWeights, param: Int, C: Int
    ) {
        OpProfile.shared.time("embedding forward") {
            Threads.parallelFor(n, minChunk: 64) { range in
                for t in range {
                    weights.writeValues(of: param, from: Int(tokens[t]) * C, count: C, into: out + t * C)
                }
            }
        }
    }

    /// dTable[token] += dOut row, for each of the N tokens (sequential: tokens repeat); only
    /// table rows `rows` (dTable points at the first of them), so that a table's gradient can
    /// be made a window of rows at a time.
    static func backward(
        dTable: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>, tokens: UnsafePointer<Int32>,
        count n: Int, C: Int, rows: Range<Int>? = nil
    ) {
        OpProfile.shared.time("embedding backward") {
            for t in 0..<n {
                let token = Int(tokens[t])
                if let rows, !rows.contains(token) { continue }
                let row = dTable + (token - (rows?.lowerBound ?? 0)) * C, d = dOut + t * C
                for c in 0..<C { row[c] += d[c] }
            }
        }
    }
}
