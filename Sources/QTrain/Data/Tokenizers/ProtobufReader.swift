/// Reads the protocol buffer wire format field by field: enough for SentencePiece's
/// `ModelProto` without a protobuf dependency. Unknown fields are skipped by their wire type.
struct ProtobufReader {
    /// Why the bytes are not a well-formed message.
    struct Malformed: Error, CustomStringConvertible {
        let description: String
    }

    enum WireType: UInt64 {
        case varint = 0, fixed64 = 1, lengthDelimited = 2, startGroup = 3, endGroup = 4, fixed32 = 5
    }

    private let bytes: ArraySlice<UInt8>
    private(set) var position: Int

    init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        self.position = bytes.startIndex
    }

    var isAtEnd: Bool { position >= bytes.endIndex }

    /// The next field's number and wire type, or nil at the end of the message.
    mutating func nextField() throws -> (number: Int, wireType: WireType)? {
        if isAtEnd { return nil }
        let at = position
        let key = try readVarint()
        guard let type = WireType(rawValue: key & 7) else {
            throw Malformed(description: "unknown wire type \(key & 7) at byte \(at)")
        }
        let number = key >> 3
        guard number > 0 && number < 1 << 29 else {
            throw Malformed(description: "invalid field number \(number) at byte \(at)")
        }
        return (Int(number), type)
    }

    mutating func readVarint() throws -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while position < bytes.endIndex && shift < 64 {
            let b = bytes[position]
            position += 1
            result |= UInt64(b & 0x7f) << shift
            if b < 0x80 { return result }
            shift += 7
        }
        throw Malformed(description: isAtEnd ? "message ends inside a varint" : "varint longer than 10 bytes at byte \(position)")
    }

    /// An `int32` field: negative values are sign-extended to 64 bits on the wire.
    mutating func readInt32() throws -> Int32 { Int32(truncatingIfNeeded: try readVarint()) }

    mutating func readBool() throws -> Bool { try readVarint() != 0 }

    /// The payload of a length-delimited field (a string, bytes or an embedded message).
    mutating func readLengthDelimited() throws -> ArraySlice<UInt8> {
        let length = try readVarint()
        guard length <= UInt64(bytes.endIndex - position) else {
            throw Malformed(description: "field of \(length) bytes at byte \(position) runs past the end (\(bytes.endIndex - position) left)")
        }
        let start = position
        position += Int(length)
        return bytes[start..<position]
    }

    mutating func readString() throws -> String { String(decoding: try readLengthDelimited(), as: UTF8.self) }

    mutating func readFloat() throws -> Float {
        guard bytes.endIndex - position >= 4 else { throw Malformed(description: "message ends inside a fixed32 field") }
        var bits: UInt32 = 0
        for i in 0..<4 { bits |= UInt32(bytes[position + i]) << (8 * UInt32(i)) }
        position += 4
        return Float(bitPattern: bits)
    }

    /// Skips a field whose number the caller does not know.
    mutating func skip(_ type: WireType) throws {
        switch type {
        case .varint: _ = try readVarint()
        case .lengthDelimited: _ = try readLengthDelimited()
        case .fixed64, .fixed32:
            let size = type == .fixed64 ? 8 : 4
            guard bytes.endIndex - position >= size else { throw Malformed(description: "message ends inside a fixed\(size * 8) field") }
            position += size
        case .startGroup, .endGroup:
            // Groups are deprecated and absent from SentencePiece models.
            throw Malformed(description: "unexpected group field at byte \(position)")
        }
    }

    /// Checks that a known field arrived with the wire type its declaration implies.
    static func expect(_ type: WireType, _ actual: WireType, field: String) throws {
        guard type == actual else {
            throw Malformed(description: "field \(field) has wire type \(actual.rawValue), expected \(type.rawValue)")
        }
    }
}
