import QKernels

/// Philox4x32-10, the counter-based generator of Salmon et al. (SC'11): a 128-bit counter
/// and a 64-bit key map to four 32-bit outputs, with no state to carry. The random number
/// of any element depends only on (seed, stream, element), never on threads or ranks.
public enum Philox {
    /// One block: four outputs for `counter` under `key`.
    public static func block(
        counter: (UInt32, UInt32, UInt32, UInt32), key: (UInt32, UInt32)
    )
        -> (UInt32, UInt32, UInt32, UInt32)
    {
        var c = [counter.0, counter.1, counter.2, counter.3]
        var k = [key.0, key.1]
        var out = [UInt32](repeating: 0, count: 4)
        qk_philox4x32_10(&c, &k, &out)
        return (out[0], out[1], out[2], out[3])
    }
}

/// Which consumer a random stream belongs to; the purpose sits in the top byte of the
/// fourth counter word, so streams of different purposes never overlap.
public enum RandomPurpose: UInt32, Sendable {
    case initialisation = 1
    case stochasticRounding = 2
    case dataSampling = 3
    case generation = 4
    /// Rounding of AdamW's first moment to BF16 (`optim.state_dtype: bf16`).
    case firstMoment = 5
    /// Rounding of AdamW's second moment to BF16.
    case secondMoment = 6
    /// Rounding of linear layers' incoming gradients to BF16 (`quant.compute: int8-bf16`).
    case gradientRounding = 7
    /// Which source of a data mixture (`data.mix`) each training sequence comes from.
    case dataMixture = 8
}

/// A stream of random numbers: counter words 2 and 3 are (`c2`, purpose << 24 | tensor), the
/// element index fills words 0 and 1, and the seed is the key.
public struct RandomStream: Sendable {
    public let key: (UInt32, UInt32)
    public let c2: UInt32
    public let c3: UInt32

    /// - Parameters: seed: the run's seed; purpose: the consumer; tensor: the tensor id (or
    ///   rank, or any 24-bit identifier); step: the step (or any 32-bit counter).
    public init(seed: UInt64, purpose: RandomPurpose, tensor: Int, step: Int) {
        key = (UInt32(truncatingIfNeeded: seed), UInt32(truncatingIfNeeded: seed >> 32))
        c2 = UInt32(truncatingIfNeeded: step)
        c3 = (purpose.rawValue << 24) | (UInt32(truncatingIfNeeded: tensor) & 0xFF_FFFF)
    }

    /// Normal(0, std) numbers for elements [start, start+n).
    public func normals(into out: UnsafeMutablePointer<Float>, start: Int, count n: Int, std: Float) {
        var k = [key.0, key.1]
        qk_philox_normal(out, Int64(start), Int64(n), &k, c2, c3, std)
    }

    /// Uniform [0, 1) numbers with 24 random bits for elements [start, start+n).
    public func uniforms(into out: UnsafeMutablePointer<Float>, start: Int, count n: Int) {
        var k = [key.0, key.1]
        qk_philox_uniform(out, Int64(start), Int64(n), &k, c2, c3)
    }

    /// Two raw words, elements 2i and 2i + 1, as one 64-bit number.
    public func word64(_ i: Int) -> UInt64 { UInt64(word(2 * i)) << 32 | UInt64(word(2 * i + 1)) }

    /// The raw 32-bit word of element `i`.
    public func word(_ i: Int) -> UInt32 {
        let blk = UInt64(i / 4)
        let r = Philox.block(
            counter: (UInt32(truncatingIfNeeded: blk), UInt32(truncatingIfNeeded: blk >> 32), c2, c3), key: key)
        switch i % 4 {
        case 0: return r.0
        case 1: return r.1
        case 2: return r.2
        default: return r.3
        }
    }
}
