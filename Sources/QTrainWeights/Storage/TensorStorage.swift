import QKernels
import QTrainCore

/// How one parameter tensor is held in memory: FP32 values, BF16 values, or packed integer
/// codes with a scale (DESIGN.md, "Storage and policy").
///
/// A storage value owns (or views) its bytes and knows everything that depends on how they
/// are laid out: reading FP32 values for a kernel, the optimizer's update kernel, its
/// safetensors form, its bytes for fingerprints and broadcasts, and which bytes hold a slice
/// of elements (ZeRO-1). Callers never ask which kind it is; a new kind is one new file.
public protocol TensorStorage: AnyObject {
    /// Number of elements.
    var count: Int { get }
    /// Whether the elements are integer codes (counted by the code-change statistics).
    var isQuantized: Bool { get }

    /// Writes the FP32 values of elements [start, start+n) to `out`, as stored.
    func readValues(from start: Int, count n: Int, into out: UnsafeMutablePointer<Float>)
    /// Σ|value| over all elements, in Float64.
    func absSum() -> Double

    /// Sets every element from normal(0, std) draws of `stream` (element i takes draw i).
    func initializeNormal(_ stream: RandomStream, std: Float)
    /// Sets every element to 1 (RMSNorm gains).
    func initializeOnes()
    /// Sets every element from imported FP32 `values` (``count`` of them): exactly (FP32),
    /// rounded to nearest (BF16), or onto the grid with the step `scale` picks (codes).
    func load(_ values: UnsafePointer<Float>, scale: ImportScale)

    /// The kernel that applies one optimizer step to elements of this tensor.
    func updateKernel(_ step: UpdateStep) -> UpdateKernel

    /// The stored bytes that ZeRO-1 splits among ranks and all-gathers.
    var payload: UnsafeMutableRawBufferPointer { get }
    /// The bytes of ``payload`` holding `elements` (which start at a multiple of 40, or end
    /// at ``count``).
    func payloadBytes(of elements: Range<Int>) -> Range<Int>
    /// Runs `body` over the state every rank holds whole beside the payload (a scale), as bytes.
    func withSideState<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R

    /// Adds this tensor, named as `spec`, to a checkpoint's `model.safetensors`.
    func write(_ spec: ParameterSpec, to file: inout SafetensorsWriter)
    /// Reads this tensor back, checking that `file` stores it the way this storage does.
    func read(_ spec: ParameterSpec, from file: SafetensorsFile) throws

    /// Test aid: changes one element so that the replica check must notice.
    func perturb()
}

/// What an update kernel needs besides gradients and moments: the run seed, the tensor id
/// and the step, which key the random numbers of stochastic rounding.
public struct UpdateStep: Sendable {
    public var seed: UInt64
    public var tensor: Int
    public var step: Int

    public init(seed: UInt64, tensor: Int, step: Int) {
        self.seed = seed
        self.tensor = tensor
        self.step = step
    }
}

/// Applies one step to `count` elements from element `start` of a tensor, with `g`, `m`, `v`
/// pointing at that element; returns how many codes changed (0 for real-valued storage).
public typealias UpdateKernel = (
    _ start: Int, _ count: Int, _ g: UnsafePointer<Float>, _ m: UnsafeMutablePointer<Float>,
    _ v: UnsafeMutablePointer<Float>, _ params: inout qk_adamw_params
) -> Int

/// The storage a weight policy asks for, per tensor.
public enum StorageKind: Equatable, Sendable {
    case fp32
    case bf16
    case codes(QuantGrid)

    /// Elements of this kind that live in one of the weights' shared arenas, per element type.
    var arena: ArenaType? {
        switch self {
        case .fp32: return .fp32
        case .bf16: return .bf16
        case .codes: return nil
        }
    }

    enum ArenaType { case fp32, bf16 }
}

extension TensorStorage {
    /// A hash of the stored bytes, side state first, chained from `seed`.
    public func fingerprint(seed: UInt64) -> UInt64 {
        let h = withSideState { side in side.isEmpty ? seed : qk_fingerprint(side.baseAddress!, Int64(side.count), seed)
        }
        return qk_fingerprint(payload.baseAddress!, Int64(payload.count), h)
    }

    /// Byte counts of `parts` of the payload (one part per rank; empty parts hold nothing).
    public func payloadByteCounts(of parts: [Range<Int>]) -> [Int] {
        parts.map { $0.isEmpty ? 0 : payloadBytes(of: $0).count }
    }
}

/// Storage of one value per element, `elementSize` bytes each, stored as `dtype` in
/// checkpoints: what FP32 and BF16 tensors share (bytes, slices, serialisation).
protocol ElementStorage: TensorStorage {
    var base: UnsafeMutableRawPointer { get }
    static var dtype: SafetensorsDType { get }
    /// Stores `n` FP32 values as elements from element `start`.
    func store(_ values: UnsafePointer<Float>, at start: Int, count n: Int)
    /// AdamW on `n` elements from element `start` (g, m, v pointing at that element).
    func adamw(
        from start: Int, count n: Int, _ g: UnsafePointer<Float>, _ m: UnsafeMutablePointer<Float>,
        _ v: UnsafeMutablePointer<Float>, _ params: inout qk_adamw_params)
}

extension ElementStorage {
    static var elementSize: Int { dtype.size }

    /// Plain AdamW on the stored values: no codes change.
    public func updateKernel(_ step: UpdateStep) -> UpdateKernel {
        { start, n, g, m, v, params in
            self.adamw(from: start, count: n, g, m, v, &params)
            return 0
        }
    }

    /// Normal(0, std) values from `stream` (element e draws counter e, whatever the threads),
    /// drawn in FP32 blocks of 2^16 and stored.
    public func initializeNormal(_ stream: RandomStream, std: Float) {
        let chunk = 1 << 16
        Threads.parallelFor((count + chunk - 1) / chunk) { blocks in
            var values = [Float](repeating: 0, count: chunk)
            for b in blocks {
                let start = b * chunk, n = min(chunk, self.count - start)
                values.withUnsafeMutableBufferPointer {
                    stream.normals(into: $0.baseAddress!, start: start, count: n, std: std)
                    self.store($0.baseAddress!, at: start, count: n)
                }
            }
        }
    }

    public func load(_ values: UnsafePointer<Float>, scale: ImportScale) { store(values, at: 0, count: count) }

    public var payload: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: base, count: count * Self.elementSize)
    }

    public func payloadBytes(of elements: Range<Int>) -> Range<Int> {
        (elements.lowerBound * Self.elementSize)..<(elements.upperBound * Self.elementSize)
    }

    /// Values alone: nothing beside the payload.
    public func withSideState<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeMutableRawBufferPointer(start: nil, count: 0))
    }

    public func write(_ spec: ParameterSpec, to file: inout SafetensorsWriter) {
        file.tensors.append(.init(name: spec.name, dtype: Self.dtype, shape: spec.shape, pointer: base))
    }

    public func read(_ spec: ParameterSpec, from file: SafetensorsFile) throws {
        let e = try file.entry(spec.name)
        guard e.dtype == Self.dtype, e.shape == spec.shape else {
            throw storageMismatch(spec, e, in: file, expected: "\(Self.dtype.rawValue) \(spec.shape)")
        }
        try file.withBytes(spec.name) { payload.copyMemory(from: $0) }
    }
}

/// The mismatch error of a checkpoint tensor that is not stored as this run stores it.
func storageMismatch(
    _ spec: ParameterSpec, _ e: SafetensorsFile.Entry, in file: SafetensorsFile, expected: String
) -> QTrainError {
    QTrainError(
        .checkpoint, "\(spec.name) in \(file.url.path) is \(e.dtype.rawValue) \(e.shape), this run expects \(expected)",
        hint: "resume with the model and quant settings the checkpoint was trained with")
}
