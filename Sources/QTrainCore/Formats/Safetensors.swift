import Foundation

/// Element types of the safetensors format that qtrain reads and writes.
public enum SafetensorsDType: String, Sendable {
    case f64 = "F64", f32 = "F32", bf16 = "BF16", f16 = "F16", i64 = "I64", i32 = "I32", u8 = "U8", i8 = "I8"

    public var size: Int {
        switch self {
        case .f64, .i64: return 8
        case .f32, .i32: return 4
        case .bf16, .f16: return 2
        case .u8, .i8: return 1
        }
    }
}

/// A safetensors file: an 8-byte little-endian header length N, N bytes of JSON
/// (`name → {dtype, shape, data_offsets}` plus optional `__metadata__` of strings), then the
/// data. Opened memory-mapped; every offset is checked against the file.
public final class SafetensorsFile {
    public struct Entry: Sendable {
        public let dtype: SafetensorsDType
        public let shape: [Int]
        public let range: Range<Int>
        public var count: Int { shape.reduce(1, *) }
    }

    public let url: URL
    public let entries: [String: Entry]
    public let metadata: [String: String]
    private let data: Data
    private let dataStart: Int

    public init(url: URL) throws {
        self.url = url
        let bad = { (why: String) in QTrainError(.checkpoint, "\(url.path) is not a valid safetensors file: \(why)") }
        do {
            data = try Data(contentsOf: url, options: .alwaysMapped)
        } catch {
            throw QTrainError(.checkpoint, "cannot read \(url.path): \(error.localizedDescription)")
        }
        guard data.count >= 8 else { throw bad("shorter than its 8-byte header length") }
        // Checked as read (unsigned), before it becomes an Int that could be negative.
        let length = data.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard length > 0, length <= UInt64(data.count - 8), length < 100_000_000 else {
            throw bad("header length \(length) does not fit the file")
        }
        let n = Int(length)
        dataStart = 8 + n
        guard let json = try? JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + n))) as? [String: Any] else {
            throw bad("the header is not a JSON object")
        }
        var entries: [String: Entry] = [:]
        var metadata: [String: String] = [:]
        let available = data.count - dataStart
        for (name, value) in json {
            if name == "__metadata__" {
                metadata = (value as? [String: String]) ?? [:]
                continue
            }
            guard let obj = value as? [String: Any], let dt = obj["dtype"] as? String,
                let dtype = SafetensorsDType(rawValue: dt), let shape = obj["shape"] as? [Int],
                let offs = obj["data_offsets"] as? [Int], offs.count == 2
            else { throw bad("tensor '\(name)' has a malformed entry") }
            let range = offs[0]..<offs[1]
            guard offs[0] >= 0, offs[1] >= offs[0], offs[1] <= available else {
                throw bad("tensor '\(name)' lies outside the file (truncated?)")
            }
            guard shape.reduce(1, *) * dtype.size == range.count else {
                throw bad("tensor '\(name)' has \(range.count) bytes for shape \(shape) of \(dt)")
            }
            entries[name] = Entry(dtype: dtype, shape: shape, range: range)
        }
        self.entries = entries
        self.metadata = metadata
    }

    /// The entry named `name`, or an error naming the file.
    public func entry(_ name: String) throws -> Entry {
        guard let e = entries[name] else {
            throw QTrainError(.checkpoint, "\(url.path) has no tensor '\(name)'")
        }
        return e
    }

    /// Calls `body` with the raw bytes of tensor `name`.
    public func withBytes<R>(_ name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let e = try entry(name)
        return try data.withUnsafeBytes { raw in
            try body(
                UnsafeRawBufferPointer(
                    rebasing: raw[(dataStart + e.range.lowerBound)..<(dataStart + e.range.upperBound)]))
        }
    }

    /// Tensor `name` as Float32 (F32, F64, BF16 or F16 are converted).
    public func floats(_ name: String) throws -> [Float] {
        let e = try entry(name)
        return try withBytes(name) { raw in
            switch e.dtype {
            case .f32:
                return (0..<e.count).map {
                    Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self)))
                }
            case .f64:
                return (0..<e.count).map {
                    Float(
                        Double(
                            bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * $0, as: UInt64.self))
                        ))
                }
            case .bf16:
                return (0..<e.count).map {
                    Float(
                        bitPattern: UInt32(
                            UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self))) << 16)
                }
            case .f16:
                return (0..<e.count).map {
                    Float(
                        Float16(
                            bitPattern: UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self))
                        ))
                }
            default:
                throw QTrainError(
                    .checkpoint, "tensor '\(name)' in \(url.path) is \(e.dtype.rawValue), not a float type")
            }
        }
    }

    /// Tensor `name` as Float64 (F64 or F32).
    public func doubles(_ name: String) throws -> [Double] {
        let e = try entry(name)
        if e.dtype != .f64 { return try floats(name).map(Double.init) }
        return try withBytes(name) { raw in
            (0..<e.count).map {
                Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * $0, as: UInt64.self)))
            }
        }
    }

    /// Tensor `name` as Int32 (I32 or I64).
    public func int32s(_ name: String) throws -> [Int32] {
        let e = try entry(name)
        return try withBytes(name) { raw in
            switch e.dtype {
            case .i32:
                return (0..<e.count).map {
                    Int32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self))
                }
            case .i64:
                return (0..<e.count).map {
                    Int32(
                        truncatingIfNeeded: Int64(
                            littleEndian: raw.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self)))
                }
            default:
                throw QTrainError(
                    .checkpoint, "tensor '\(name)' in \(url.path) is \(e.dtype.rawValue), not an integer type")
            }
        }
    }

    /// Tensor `name` as raw bytes.
    public func bytes(_ name: String) throws -> [UInt8] { try withBytes(name) { Array($0) } }
}

/// Streams a safetensors file: tensors are declared first (so the header can be written),
/// then their bytes are written in order, straight from the caller's buffers. The SHA-256 of
/// the file is computed on the way.
public struct SafetensorsWriter {
    public struct Tensor {
        public let name: String
        public let dtype: SafetensorsDType
        public let shape: [Int]
        /// Writes exactly count × dtype.size bytes through the given sink.
        public let write: ((UnsafeRawBufferPointer) throws -> Void) throws -> Void

        public init(
            name: String, dtype: SafetensorsDType, shape: [Int],
            write: @escaping ((UnsafeRawBufferPointer) throws -> Void) throws -> Void
        ) {
            self.name = name
            self.dtype = dtype
            self.shape = shape
            self.write = write
        }

        /// A tensor whose bytes are in memory at `pointer`.
        public init(name: String, dtype: SafetensorsDType, shape: [Int], pointer: UnsafeRawPointer) {
            let bytes = shape.reduce(1, *) * dtype.size
            self.init(name: name, dtype: dtype, shape: shape) { sink in
                try sink(UnsafeRawBufferPointer(start: pointer, count: bytes))
            }
        }

        /// A tensor from an array (copied into the closure).
        public init<T>(name: String, dtype: SafetensorsDType, shape: [Int], values: [T]) {
            self.init(name: name, dtype: dtype, shape: shape) { sink in
                try values.withUnsafeBytes { try sink($0) }
            }
        }
    }

    public var tensors: [Tensor] = []
    public var metadata: [String: String] = [:]

    public init() {}

    /// The JSON header, padded with spaces to a multiple of 8 bytes.
    func header() throws -> [UInt8] {
        var obj: [String: Any] = [:]
        var offset = 0
        for t in tensors {
            let n = t.shape.reduce(1, *) * t.dtype.size
            obj[t.name] =
                ["dtype": t.dtype.rawValue, "shape": t.shape, "data_offsets": [offset, offset + n]] as [String: Any]
            offset += n
        }
        if !metadata.isEmpty { obj["__metadata__"] = metadata }
        var bytes = [UInt8](try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]))
        while bytes.count % 8 != 0 { bytes.append(0x20) }
        return bytes
    }

    /// Writes the file to `url` (which should be a temporary name; the caller renames) and
    /// fsyncs it. Returns the SHA-256 of the bytes written.
    @discardableResult
    public func write(to url: URL) throws -> String {
        let fail = { (why: String) in
            QTrainError(.io, "cannot write \(url.path): \(why)", hint: "check free disk space and permissions")
        }
        guard FileManager.default.createFile(atPath: url.path, contents: nil) else {
            throw fail("cannot create the file")
        }
        let fd = open(url.path, O_WRONLY | O_TRUNC)
        guard fd >= 0 else { throw fail(String(cString: strerror(errno))) }
        defer { close(fd) }
        var hash = SHA256()
        func sink(_ raw: UnsafeRawBufferPointer) throws {
            hash.update(raw)
            var done = 0
            while done < raw.count {
                let n = Foundation.write(fd, raw.baseAddress! + done, raw.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw fail(String(cString: strerror(errno)))
                }
                done += n
            }
        }
        let head = try header()
        var length = UInt64(head.count).littleEndian
        try withUnsafeBytes(of: &length) { try sink($0) }
        try head.withUnsafeBytes { try sink($0) }
        for t in tensors {
            var written = 0
            try t.write { raw in
                written += raw.count
                try sink(raw)
            }
            let expected = t.shape.reduce(1, *) * t.dtype.size
            // Kept in every build, -Ounchecked too.
            if written != expected { fatalError("tensor \(t.name) wrote \(written) bytes, expected \(expected)") }
        }
        guard fsync(fd) == 0 else { throw fail(String(cString: strerror(errno))) }
        return hash.finalize().hexString
    }
}
