import Foundation
import QTrainCore

/// TensorBoard event files (`log.tensorboard: true`): every number of every `metrics.jsonl`
/// record as a scalar of the same name at the record's step (nested maps as `name/key`, e.g.
/// `code_change_by_role/mlp`), in `RUN/tensorboard/events.out.tfevents.<time>.<host>`.
///
/// The format is TensorFlow's record file of `Event` protocol buffers: each record is its
/// length (uint64), the masked CRC-32C of the length, the bytes, their masked CRC-32C. The
/// three messages used (`Event`, `Summary`, `Summary.Value`) are encoded here field by field.
/// A resumed run writes a new file beside the old ones; TensorBoard reads them as one run.
public final class TensorBoardWriter {
    private let handle: FileHandle
    public let url: URL
    /// Set once a write failed; training goes on without further events.
    public private(set) var failure: String?

    public init(directory: URL) throws {
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw QTrainError(
                .io, "cannot create \(directory.path): \(error.localizedDescription)",
                hint: "check that the run directory is writable")
        }
        let now = Date().timeIntervalSince1970
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "host"
        url = directory.appendingPathComponent("events.out.tfevents.\(Int(now)).\(host).\(getpid())")
        guard FileManager.default.createFile(atPath: url.path, contents: nil),
            let h = FileHandle(forWritingAtPath: url.path)
        else {
            throw QTrainError(.io, "cannot create \(url.path)", hint: "check that the run directory is writable")
        }
        handle = h
        var event = Protobuf()
        event.double(1, now)
        event.varint(2, 0)
        event.bytes(3, Array("brain.Event:2".utf8))
        append(event.out)
    }

    deinit { try? handle.close() }

    /// Writes the numbers of one metrics record (its `step` is the events' step).
    public func write(_ record: MetricsRecord) {
        var summary = Protobuf()
        for (tag, value) in record.scalars.sorted(by: { $0.0 < $1.0 }) {
            var v = Protobuf()
            v.bytes(1, Array(tag.utf8))
            v.float(2, Float(value))
            summary.bytes(1, v.out)
        }
        var event = Protobuf()
        event.double(1, Date().timeIntervalSince1970)
        event.varint(2, UInt64(bitPattern: Int64(record.step)))
        event.bytes(5, summary.out)
        append(event.out)
    }

    private func append(_ data: [UInt8]) {
        guard failure == nil else { return }
        var record: [UInt8] = []
        let length = withUnsafeBytes(of: UInt64(data.count).littleEndian, Array.init)
        record += length
        record += withUnsafeBytes(of: CRC32C.masked(length).littleEndian, Array.init)
        record += data
        record += withUnsafeBytes(of: CRC32C.masked(data).littleEndian, Array.init)
        do {
            try handle.write(contentsOf: record)
        } catch {
            failure = error.localizedDescription
            FileHandle.standardError.write(
                Data("warning: TensorBoard events stop (\(url.path): \(error.localizedDescription))\n".utf8))
        }
    }
}

/// Protocol-buffer wire encoding of the few field kinds an `Event` needs.
struct Protobuf {
    var out: [UInt8] = []

    mutating func rawVarint(_ x: UInt64) {
        var x = x
        while x >= 0x80 {
            out.append(UInt8(x & 0x7F) | 0x80)
            x >>= 7
        }
        out.append(UInt8(x))
    }

    mutating func varint(_ field: UInt64, _ x: UInt64) {
        rawVarint(field << 3)
        rawVarint(x)
    }

    mutating func double(_ field: UInt64, _ x: Double) {
        rawVarint(field << 3 | 1)
        out += withUnsafeBytes(of: x.bitPattern.littleEndian, Array.init)
    }

    mutating func float(_ field: UInt64, _ x: Float) {
        rawVarint(field << 3 | 5)
        out += withUnsafeBytes(of: x.bitPattern.littleEndian, Array.init)
    }

    mutating func bytes(_ field: UInt64, _ b: [UInt8]) {
        rawVarint(field << 3 | 2)
        rawVarint(UInt64(b.count))
        out += b
    }
}

/// CRC-32C (Castagnoli), as TensorFlow's record files checksum with, and its masked form.
enum CRC32C {
    static let table: [UInt32] = (0..<256).map { i in
        var c = UInt32(i)
        for _ in 0..<8 { c = c & 1 != 0 ? 0x82F6_3B78 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func checksum(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes { c = table[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }

    static func masked(_ bytes: [UInt8]) -> UInt32 {
        let c = checksum(bytes)
        return ((c >> 15) | (c << 17)) &+ 0xA282_EAD8
    }
}
