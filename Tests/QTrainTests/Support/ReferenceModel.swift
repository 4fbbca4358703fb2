import Foundation

@testable import QTrainCore
@testable import QTrainModel

/// An independent Float64 implementation of the model's forward pass with plain loops, used
/// as the function that finite differences differentiate. It shares nothing with the
/// library's kernels but the parameter layout (names, shapes, order).
enum Ref {
    /// y (M×N) = x (M×K) · Wᵀ, W (N×K).
    static func linear(_ x: [Double], _ w: ArraySlice<Double>, M: Int, K: Int, N: Int) -> [Double] {
        var y = [Double](repeating: 0, count: M * N)
        let w0 = w.startIndex
        for i in 0..<M {
            for j in 0..<N {
                var s = 0.0
                for p in 0..<K { s += x[i * K + p] * w[w0 + j * K + p] }
                y[i * N + j] = s
            }
        }
        return y
    }

    static func rmsnorm(_ x: [Double], _ w: ArraySlice<Double>, rows: Int, C: Int, eps: Double) -> [Double] {
        var y = x
        let w0 = w.startIndex
        for r in 0..<rows {
            var ss = 0.0
            for c in 0..<C { ss += x[r * C + c] * x[r * C + c] }
            let inv = 1 / (ss / Double(C) + eps).squareRoot()
            for c in 0..<C { y[r * C + c] = x[r * C + c] * inv * w[w0 + c] }
        }
        return y
    }

    /// Rotate-half RoPE on `heads` heads of width d in rows of stride ld; row r is position r % T.
    static func rope(_ x: inout [Double], rows: Int, T: Int, ld: Int, offset: Int, heads: Int, d: Int, theta: Double) {
        let half = d / 2
        for r in 0..<rows {
            let p = Double(r % T)
            for h in 0..<heads {
                let base = r * ld + offset + h * d
                for i in 0..<half {
                    let a = p * pow(theta, -2 * Double(i) / Double(d))
                    let x1 = x[base + i], x2 = x[base + half + i]
                    x[base + i] = x1 * cos(a) - x2 * sin(a)
                    x[base + half + i] = x2 * cos(a) + x1 * sin(a)
                }
            }
        }
    }

    /// Causal attention of a (B·T, C + 2·G·d) qkv buffer ([q | k | v], G key/value heads, each
    /// shared by H/G query heads) with RoPE applied to q and k first.
    static func attention(_ qkvIn: [Double], B: Int, T: Int, C: Int, H: Int, G: Int? = nil, theta: Double) -> [Double] {
        var qkv = qkvIn
        let d = C / H, G = G ?? H, K = G * d, W = C + 2 * K
        rope(&qkv, rows: B * T, T: T, ld: W, offset: 0, heads: H, d: d, theta: theta)
        rope(&qkv, rows: B * T, T: T, ld: W, offset: C, heads: G, d: d, theta: theta)
        var out = [Double](repeating: 0, count: B * T * C)
        for b in 0..<B {
            for h in 0..<H {
                let kv = h / (H / G)
                for i in 0..<T {
                    var scores = [Double](repeating: 0, count: i + 1)
                    for j in 0...i {
                        var s = 0.0
                        for e in 0..<d {
                            s += qkv[(b * T + i) * W + h * d + e] * qkv[(b * T + j) * W + C + kv * d + e]
                        }
                        scores[j] = s / Double(d).squareRoot()
                    }
                    let mx = scores.max()!
                    let ex = scores.map { exp($0 - mx) }
                    let z = ex.reduce(0, +)
                    for e in 0..<d {
                        var s = 0.0
                        for j in 0...i { s += ex[j] / z * qkv[(b * T + j) * W + C + K + kv * d + e] }
                        out[(b * T + i) * C + h * d + e] = s
                    }
                }
            }
        }
        return out
    }

    static func swiglu(_ h: [Double], rows: Int, F: Int) -> [Double] {
        var out = [Double](repeating: 0, count: rows * F)
        for r in 0..<rows {
            for f in 0..<F {
                let g = h[r * 2 * F + f], u = h[r * 2 * F + F + f]
                out[r * F + f] = g / (1 + exp(-g)) * u
            }
        }
        return out
    }

    /// Mean cross-entropy of rows of logits.
    static func crossEntropy(_ logits: [Double], targets: [Int32], rows: Int, V: Int) -> Double {
        var total = 0.0
        for r in 0..<rows {
            let row = logits[(r * V)..<((r + 1) * V)]
            let mx = row.max()!
            let lse = mx + log(row.reduce(0) { $0 + exp($1 - mx) })
            total += lse - logits[r * V + Int(targets[r])]
        }
        return total / Double(rows)
    }

    /// Logits (B·T, V) of the whole model for flat parameters in layout order.
    static func logits(
        _ p: [Double], layout: ParameterLayout, config: ModelConfig, tokens: [Int32], B: Int, T: Int
    ) -> [Double] {
        let C = config.dim, F = config.hiddenDim, H = config.nHeads, V = config.vocabSize, N = B * T
        let eps = config.normEps, theta = config.ropeTheta
        func w(_ i: Int) -> ArraySlice<Double> {
            let s = layout.specs[i]
            return p[s.offset..<(s.offset + s.count)]
        }
        let emb = w(layout.embedding)
        var x = [Double](repeating: 0, count: N * C)
        for t in 0..<N { for c in 0..<C { x[t * C + c] = emb[emb.startIndex + Int(tokens[t]) * C + c] } }
        for blk in layout.blocks {
            let h = rmsnorm(x, w(blk.attnNorm), rows: N, C: C, eps: eps)
            let K = config.kvDim, W = C + 2 * K
            let q = linear(h, w(blk.q), M: N, K: C, N: C), k = linear(h, w(blk.k), M: N, K: C, N: K)
            let v = linear(h, w(blk.v), M: N, K: C, N: K)
            var qkv = [Double](repeating: 0, count: N * W)
            for t in 0..<N {
                for c in 0..<C { qkv[t * W + c] = q[t * C + c] }
                for c in 0..<K {
                    qkv[t * W + C + c] = k[t * K + c]
                    qkv[t * W + C + K + c] = v[t * K + c]
                }
            }
            let att = attention(qkv, B: B, T: T, C: C, H: H, G: config.kvHeads, theta: theta)
            let o = linear(att, w(blk.o), M: N, K: C, N: C)
            for i in 0..<(N * C) { x[i] += o[i] }
            let h2 = rmsnorm(x, w(blk.mlpNorm), rows: N, C: C, eps: eps)
            let g = linear(h2, w(blk.gate), M: N, K: C, N: F), u = linear(h2, w(blk.up), M: N, K: C, N: F)
            var gu = [Double](repeating: 0, count: N * 2 * F)
            for t in 0..<N {
                for f in 0..<F {
                    gu[t * 2 * F + f] = g[t * F + f]
                    gu[t * 2 * F + F + f] = u[t * F + f]
                }
            }
            let a = swiglu(gu, rows: N, F: F)
            let down = linear(a, w(blk.down), M: N, K: F, N: C)
            for i in 0..<(N * C) { x[i] += down[i] }
        }
        let hf = rmsnorm(x, w(layout.finalNorm), rows: N, C: C, eps: eps)
        // Tied embeddings: the head is the lookup table itself (layout.head == layout.embedding).
        return linear(hf, w(layout.head), M: N, K: C, N: V)
    }

    static func loss(
        _ p: [Double], layout: ParameterLayout, config: ModelConfig, tokens: [Int32], targets: [Int32],
        B: Int, T: Int
    ) -> Double {
        crossEntropy(
            logits(p, layout: layout, config: config, tokens: tokens, B: B, T: T), targets: targets,
            rows: B * T, V: config.vocabSize)
    }
}

/// Central finite differences of f at the given coordinates of x.
func finiteDifferences(_ x: [Double], at indices: [Int], h: Double = 1e-6, _ f: ([Double]) -> Double) -> [Double] {
    var y = x
    return indices.map { i in
        let orig = y[i]
        y[i] = orig + h
        let up = f(y)
        y[i] = orig - h
        let down = f(y)
        y[i] = orig
        return (up - down) / (2 * h)
    }
}

/// ‖a − b‖ / ‖b‖ (or ‖a − b‖ when b is zero).
func relativeError(_ a: [Double], _ b: [Double]) -> Double {
    precondition(a.count == b.count)
    var num = 0.0, den = 0.0
    for i in 0..<a.count {
        num += (a[i] - b[i]) * (a[i] - b[i])
        den += b[i] * b[i]
    }
    return den > 0 ? (num / den).squareRoot() : num.squareRoot()
}

/// Deterministic pseudo-random doubles in [-scale, scale) for test inputs.
struct TestRandom {
    var state: UInt64
    init(_ seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 | 1 }
    mutating func next() -> Double {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return Double(state >> 11) / Double(1 << 53)
    }
    mutating func values(_ n: Int, scale: Double = 1) -> [Double] { (0..<n).map { _ in (2 * next() - 1) * scale } }
    mutating func tokens(_ n: Int, below v: Int) -> [Int32] { (0..<n).map { _ in Int32(next() * Double(v)) } }
}

/// A Float32 copy in aligned storage.
func aligned(_ values: [Double]) -> AlignedBuffer<Float> {
    let b = AlignedBuffer<Float>(count: values.count, category: .scratch, ledger: nil)
    for i in 0..<values.count { b.pointer[i] = Float(values[i]) }
    return b
}

func doubles(_ p: UnsafePointer<Float>, _ n: Int) -> [Double] { (0..<n).map { Double(p[$0]) } }

/// Writes flat layout-ordered values into an fp32 model's weights.
func setWeights(_ model: Model, _ flat: [Double]) {
    for spec in model.layout.specs {
        let dst = model.weights.densePointer(spec.index)
        for i in 0..<spec.count { dst[i] = Float(flat[spec.offset + i]) }
    }
}
