import Foundation

/// Reads a GGUF file (versions 2 and 3): its metadata and tensor directory, and any tensor of a
/// type ``GGUFFile/TensorType`` names decoded to FP32. The file is memory-mapped; every count,
/// length and offset is checked against the file's size before it is used, so a damaged or
/// crafted file ends in one ``QTrainError`` naming what is wrong, never a crash.
public struct GGUFReader {
    /// A metadata value, widened: integers to Int64/UInt64, floats to Double.
    public enum Value: Equatable {
        case int(Int64), uint(UInt64), float(Double), bool(Bool), string(String), array([Value])

        public var integer: Int? {
            switch self {
            case .int(let v): return Int(exactly: v)
            case .uint(let v): return Int(exactly: v)
            default: return nil
            }
        }
        public var double: Double? {
            switch self {
            case .float(let v): return v
            case .int, .uint: return integer.map(Double.init)
            default: return nil
            }
        }
        public var string: String? { if case .string(let s) = self { return s } else { return nil } }
        public var bool: Bool? { if case .bool(let b) = self { return b } else { return nil } }
        public var strings: [String]? {
            guard case .array(let a) = self else { return nil }
            let s = a.compactMap(\.string)
            return s.count == a.count ? s : nil
        }
        public var integers: [Int]? {
            guard case .array(let a) = self else { return nil }
            let s = a.compactMap(\.integer)
            return s.count == a.count ? s : nil
        }
    }

    /// One tensor of the directory.
    public struct TensorInfo {
        public let name: String
        /// Dimensions innermost first: a `[rows, cols]` matrix is `[cols, rows]`.
        public let dims: [Int]
        /// ggml's type number.
        public let typeID: UInt32
        /// Byte offset of its data in the file.
        public let offset: Int

        /// The type, when qtrain reads it.
        public var type: GGUFFile.TensorType? { GGUFFile.TensorType(rawValue: typeID) }
        public var count: Int { dims.reduce(1, *) }
    }

    public let url: URL
    public let version: UInt32
    public let metadata: [String: Value]
    /// In file order.
    public let tensors: [TensorInfo]
    private let index: [String: Int]
    private let data: Data

    public init(url: URL) throws {
        self.url = url
        func bad(_ why: String) -> QTrainError {
            QTrainError(
                .checkpoint, "\(url.path) is not a readable GGUF file: \(why)",
                hint: "check that the file is complete (its download or copy may have been cut short)")
        }
        do {
            data = try Data(contentsOf: url, options: .alwaysMapped)
        } catch {
            throw QTrainError(.checkpoint, "cannot read \(url.path): \(error.localizedDescription)")
        }
        var r = ByteReader(data: data, fail: bad)
        guard try r.u32() == 0x4655_4747 else { throw bad("it does not start with \"GGUF\"") }
        version = try r.u32()
        guard version == 2 || version == 3 else {
            throw bad("version \(version) (qtrain reads versions 2 and 3)")
        }
        let tensorCount = try r.count(minimumBytesEach: 24), kvCount = try r.count(minimumBytesEach: 12)
        var metadata: [String: Value] = [:]
        for _ in 0..<kvCount {
            let key = try r.string()
            metadata[key] = try r.value(type: try r.u32(), depth: 0)
        }
        self.metadata = metadata
        var alignment = 32
        if let a = metadata["general.alignment"] {
            guard let v = a.integer, v > 0, v <= 1 << 20, v & (v - 1) == 0 else {
                throw bad("general.alignment is not a power of two")
            }
            alignment = v
        }
        var infos: [(String, [Int], UInt32, UInt64)] = []
        for _ in 0..<tensorCount {
            let tensorName = try r.string()
            let n = try r.u32()
            guard (1...4).contains(n) else { throw bad("tensor \(tensorName) has \(n) dimensions") }
            var dims: [Int] = []
            var total = 1
            for _ in 0..<n {
                let d = try r.u64()
                guard d > 0, d < 1 << 40 else { throw bad("tensor \(tensorName) has a dimension of \(d)") }
                let (p, overflow) = total.multipliedReportingOverflow(by: Int(d))
                guard !overflow, p < 1 << 40 else { throw bad("tensor \(tensorName) is impossibly large") }
                total = p
                dims.append(Int(d))
            }
            infos.append((tensorName, dims, try r.u32(), try r.u64()))
        }
        let start = (r.position + alignment - 1) / alignment * alignment
        var tensors: [TensorInfo] = []
        var index: [String: Int] = [:]
        for (tensorName, dims, typeID, relative) in infos {
            guard relative < UInt64(data.count) else { throw bad("tensor \(tensorName) starts past the end") }
            let info = TensorInfo(name: tensorName, dims: dims, typeID: typeID, offset: start + Int(relative))
            if let type = info.type {
                guard info.count % type.blockSize == 0 else {
                    throw bad("tensor \(tensorName) of \(info.count) elements does not split into \(type.name) blocks")
                }
                let bytes = info.count / type.blockSize * type.blockBytes
                guard info.offset + bytes <= data.count else {
                    throw bad(
                        "tensor \(tensorName) needs \(bytes) bytes at offset \(info.offset) but the file has \(data.count)"
                    )
                }
            }
            guard index.updateValue(tensors.count, forKey: tensorName) == nil else {
                throw bad("tensor \(tensorName) appears twice")
            }
            tensors.append(info)
        }
        self.tensors = tensors
        self.index = index
    }

    /// The tensor named `name`, if the file has it.
    public func tensor(_ name: String) -> TensorInfo? { index[name].map { tensors[$0] } }

    /// The type of tensor `info`, or the error naming a type qtrain does not read.
    public func readableType(of info: TensorInfo) throws -> GGUFFile.TensorType {
        guard let type = info.type else {
            throw QTrainError(
                .checkpoint,
                "\(url.lastPathComponent): tensor \(info.name) is stored as ggml type \(info.typeID) (\(Self.typeName(info.typeID))), which qtrain does not read",
                hint: "qtrain reads " + GGUFFile.TensorType.allCases.map(\.name).joined(separator: ", ")
                    + "; convert the model to one of them (llama.cpp's llama-quantize, or its convert script)")
        }
        return type
    }

    /// Tensor `info` decoded to FP32 into `out` (`info.count` floats).
    public func decode(_ info: TensorInfo, into out: UnsafeMutablePointer<Float>) throws {
        let type = try readableType(of: info)
        data.withUnsafeBytes { raw in
            GGUFBlocks.decode(type, raw.baseAddress! + info.offset, count: info.count, into: out)
        }
    }

    /// ggml's name of a type number, for messages.
    static func typeName(_ id: UInt32) -> String {
        let names: [UInt32: String] = [
            6: "Q5_0", 7: "Q5_1", 9: "Q8_1", 10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K",
            16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S",
            23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64", 29: "IQ1_M", 34: "TQ1_0"
        ]
        return names[id] ?? "unknown"
    }
}

/// Little-endian reading with bounds checks; `fail` turns a reason into the error to throw.
private struct ByteReader {
    let data: Data
    let fail: (String) -> QTrainError
    var position = 0

    mutating func take(_ n: Int) throws -> Range<Int> {
        guard n >= 0, position <= data.count - n else { throw fail("it ends in the middle (at byte \(position))") }
        defer { position += n }
        return position..<(position + n)
    }

    mutating func integer<T: FixedWidthInteger>(_: T.Type) throws -> T {
        let r = try take(MemoryLayout<T>.size)
        return data.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: r.lowerBound, as: T.self)) }
    }

    mutating func u32() throws -> UInt32 { try integer(UInt32.self) }
    mutating func u64() throws -> UInt64 { try integer(UInt64.self) }

    /// A count of items that each take at least `minimumBytesEach` bytes: refused when the
    /// rest of the file could not hold them.
    mutating func count(minimumBytesEach: Int) throws -> Int {
        let n = try u64()
        guard n <= UInt64(data.count - position) / UInt64(minimumBytesEach) else {
            throw fail("it claims \(n) entries, more than its \(data.count) bytes can hold")
        }
        return Int(n)
    }

    mutating func string() throws -> String {
        let n = try count(minimumBytesEach: 1)
        let r = try take(n)
        guard let s = String(data: data[r], encoding: .utf8) else { throw fail("a string is not UTF-8") }
        return s
    }

    mutating func value(type: UInt32, depth: Int) throws -> GGUFReader.Value {
        switch type {
        case 0: return .uint(UInt64(try integer(UInt8.self)))
        case 1: return .int(Int64(try integer(Int8.self)))
        case 2: return .uint(UInt64(try integer(UInt16.self)))
        case 3: return .int(Int64(try integer(Int16.self)))
        case 4: return .uint(UInt64(try u32()))
        case 5: return .int(Int64(try integer(Int32.self)))
        case 6: return .float(Double(Float(bitPattern: try u32())))
        case 7: return .bool(try integer(UInt8.self) != 0)
        case 8: return .string(try string())
        case 9:
            guard depth < 2 else { throw fail("arrays nest too deep") }
            let element = try u32()
            let n = try count(minimumBytesEach: 1)
            var items: [GGUFReader.Value] = []
            items.reserveCapacity(n)
            for _ in 0..<n { items.append(try value(type: element, depth: depth + 1)) }
            return .array(items)
        case 10: return .uint(try u64())
        case 11: return .int(Int64(bitPattern: try u64()))
        case 12: return .float(Double(bitPattern: try u64()))
        default: throw fail("a metadata value has unknown type \(type)")
        }
    }
}
