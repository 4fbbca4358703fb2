import Foundation

/// A GGUF file (version 3) as llama.cpp reads it: a header, typed key–value metadata, one
/// info record per tensor (name, dimensions innermost first, type, offset), then the tensor
/// data, each tensor aligned to ``alignment`` bytes. Everything is little-endian.
public struct GGUFFile {
    /// A metadata value (GGUF's value types that qtrain writes).
    public enum Value {
        case uint32(UInt32), int32(Int32), float32(Float), bool(Bool), string(String), uint64(UInt64)
        case strings([String]), float32s([Float]), int32s([Int32])
    }

    /// Tensor element types (ggml's numbering) with their block layout: those qtrain writes
    /// (F32, BF16, Q4_0, Q8_0, TQ2_0) and those it also reads (F16, Q4_1).
    public enum TensorType: UInt32, Sendable, CaseIterable {
        case f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q8_0 = 8, bf16 = 30, tq2_0 = 35

        /// Elements per block.
        public var blockSize: Int {
            switch self {
            case .f32, .f16, .bf16: return 1
            case .q4_0, .q4_1, .q8_0: return 32
            case .tq2_0: return 256
            }
        }

        /// Bytes per block.
        public var blockBytes: Int {
            switch self {
            case .f32: return 4
            case .f16, .bf16: return 2
            case .q4_0: return 2 + 16
            case .q4_1: return 2 + 2 + 16
            case .q8_0: return 2 + 32
            case .tq2_0: return 64 + 2
            }
        }

        public var name: String {
            switch self {
            case .f32: return "F32"
            case .f16: return "F16"
            case .bf16: return "BF16"
            case .q4_0: return "Q4_0"
            case .q4_1: return "Q4_1"
            case .q8_0: return "Q8_0"
            case .tq2_0: return "TQ2_0"
            }
        }
    }

    /// One tensor: dimensions innermost first (a PyTorch `[rows, cols]` matrix is `[cols, rows]`),
    /// and a closure that hands its encoded rows to a sink in order.
    public struct Tensor {
        public var name: String
        public var dims: [Int]
        public var type: TensorType
        public var write: ((UnsafeRawBufferPointer) throws -> Void) throws -> Void

        public var byteCount: Int { dims.reduce(1, *) / type.blockSize * type.blockBytes }

        public init(
            name: String, dims: [Int], type: TensorType,
            write: @escaping ((UnsafeRawBufferPointer) throws -> Void) throws -> Void
        ) {
            self.name = name
            self.dims = dims
            self.type = type
            self.write = write
        }
    }

    public static let alignment = 32
    public var metadata: [(String, Value)] = []
    public var tensors: [Tensor] = []

    public init() {}

    /// Writes the file to `url` through a temporary file beside it, so that a failed export
    /// never leaves a half-written file under the final name.
    public func write(to url: URL) throws {
        let tmp = url.appendingPathExtension("tmp")
        let fail = { (why: String) in
            QTrainError(.io, "cannot write \(url.path): \(why)", hint: "check free disk space and permissions")
        }
        guard FileManager.default.createFile(atPath: tmp.path, contents: nil),
            let handle = FileHandle(forWritingAtPath: tmp.path)
        else { throw fail("cannot create \(tmp.lastPathComponent)") }
        var out = ByteSink(handle: handle)
        do {
            out.u32(0x4655_4747)  // "GGUF"
            out.u32(3)
            out.u64(UInt64(tensors.count))
            out.u64(UInt64(metadata.count))
            for (key, value) in metadata {
                out.string(key)
                out.value(value)
            }
            var offset = 0
            for t in tensors {
                precondition(
                    t.dims[0] % t.type.blockSize == 0,
                    "\(t.name): rows of \(t.dims[0]) do not split into \(t.type.name) blocks")
                out.string(t.name)
                out.u32(UInt32(t.dims.count))
                for d in t.dims { out.u64(UInt64(d)) }
                out.u32(t.type.rawValue)
                out.u64(UInt64(offset))
                offset += Self.padded(t.byteCount)
            }
            out.pad(to: Self.alignment)
            for t in tensors {
                var written = 0
                try t.write { raw in
                    written += raw.count
                    try out.bytes(raw)
                }
                // A size mismatch would shift every later tensor: a bug, not a user error.
                if written != t.byteCount {
                    fatalError("GGUF tensor \(t.name) wrote \(written) bytes, expected \(t.byteCount)")
                }
                out.pad(to: Self.alignment)
            }
            try out.flush()
            try handle.synchronize()
            try handle.close()
        } catch {
            try? handle.close()
            try? FileManager.default.removeItem(at: tmp)
            if let e = error as? QTrainError { throw e }
            throw fail(error.localizedDescription)
        }
        try rename(tmp, to: url)
    }

    static func padded(_ n: Int) -> Int { (n + alignment - 1) / alignment * alignment }

    /// Source row of each output row when Q or K rows go from Hugging Face's rotate-half RoPE
    /// layout to llama.cpp's interleaved pairs: within a head, pair (i, i + d/2) becomes rows
    /// (2i, 2i + 1). Import inverts it (row r of the file is row `order[r]` of the model).
    public static func ropeRowOrder(rows: Int, heads: Int) -> [Int] {
        let d = rows / heads, half = d / 2
        return (0..<rows).map { r in
            let h = r / d, j = r % d
            return h * d + (j % 2) * half + j / 2
        }
    }

    /// llama.cpp's name of a tensor (`token_embd.weight`, `blk.3.attn_q.weight`, …).
    public static func tensorName(_ spec: ParameterSpec, in layout: ParameterLayout) -> String {
        if spec.index == layout.embedding { return "token_embd.weight" }
        if spec.index == layout.finalNorm { return "output_norm.weight" }
        if spec.index == layout.head { return "output.weight" }
        let l = spec.layer!, b = layout.blocks[l]
        let part: String
        switch spec.index {
        case b.attnNorm: part = "attn_norm"
        case b.q: part = "attn_q"
        case b.k: part = "attn_k"
        case b.v: part = "attn_v"
        case b.o: part = "attn_output"
        case b.mlpNorm: part = "ffn_norm"
        case b.gate: part = "ffn_gate"
        case b.up: part = "ffn_up"
        default: part = "ffn_down"
        }
        return "blk.\(l).\(part).weight"
    }
}

/// Buffered little-endian writing of GGUF's scalar, string and array encodings.
private struct ByteSink {
    let handle: FileHandle
    var buffer: [UInt8] = []
    var position = 0

    init(handle: FileHandle) {
        self.handle = handle
        buffer.reserveCapacity(1 << 20)
    }

    mutating func raw<T: FixedWidthInteger>(_ x: T) {
        withUnsafeBytes(of: x.littleEndian) { buffer.append(contentsOf: $0) }
        position += MemoryLayout<T>.size
    }

    mutating func u32(_ x: UInt32) { raw(x) }
    mutating func u64(_ x: UInt64) { raw(x) }

    mutating func string(_ s: String) {
        let utf8 = Array(s.utf8)
        u64(UInt64(utf8.count))
        buffer.append(contentsOf: utf8)
        position += utf8.count
    }

    mutating func value(_ v: GGUFFile.Value) {
        // Value type ids of the GGUF specification.
        switch v {
        case .uint32(let x):
            u32(4)
            raw(x)
        case .int32(let x):
            u32(5)
            raw(x)
        case .float32(let x):
            u32(6)
            raw(x.bitPattern)
        case .bool(let x):
            u32(7)
            raw(UInt8(x ? 1 : 0))
        case .string(let s):
            u32(8)
            string(s)
        case .uint64(let x):
            u32(10)
            raw(x)
        case .strings(let a):
            u32(9)
            u32(8)
            u64(UInt64(a.count))
            for s in a { string(s) }
        case .float32s(let a):
            u32(9)
            u32(6)
            u64(UInt64(a.count))
            for x in a { raw(x.bitPattern) }
        case .int32s(let a):
            u32(9)
            u32(5)
            u64(UInt64(a.count))
            for x in a { raw(x) }
        }
    }

    mutating func pad(to alignment: Int) {
        let n = (alignment - position % alignment) % alignment
        buffer.append(contentsOf: repeatElement(0, count: n))
        position += n
    }

    mutating func bytes(_ raw: UnsafeRawBufferPointer) throws {
        buffer.append(contentsOf: raw)
        position += raw.count
        if buffer.count >= 1 << 22 { try flush() }
    }

    mutating func flush() throws {
        try handle.write(contentsOf: buffer)
        buffer.removeAll(keepingCapacity: true)
    }
}
