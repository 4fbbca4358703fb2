/// The parts of a SentencePiece `ModelProto` (a `.model` file) that encoding and decoding use,
/// with the proto's defaults for absent fields (sentencepiece_model.proto).
struct SentencePieceModel: Sendable {
    /// `ModelProto.SentencePiece.Type`.
    enum PieceType: Int32, Sendable {
        case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6
    }

    struct Piece: Sendable {
        var text: String
        var score: Float
        var type: PieceType
    }

    var pieces: [Piece] = []

    // TrainerSpec
    /// `model_type`: UNIGRAM = 1, BPE = 2, WORD = 3, CHAR = 4.
    var modelType: Int32 = 1
    var byteFallback = false
    var treatWhitespaceAsSuffix = false
    var unkID: Int32 = 0
    var bosID: Int32 = 1
    var eosID: Int32 = 2
    var padID: Int32 = -1
    var unkSurface = " \u{2047} "

    /// `NormalizerSpec`: how text is prepared before it is split into pieces.
    struct NormalizerSpec: Sendable {
        var name = ""
        /// Bytes of compiled normalization rules (e.g. NFKC); 0 for the identity normalizer.
        var precompiledCharsmapSize = 0
        var addDummyPrefix = true
        var removeExtraWhitespaces = true
        var escapeWhitespaces = true
    }

    var normalizer = NormalizerSpec()
    /// `denormalizer_spec`, applied to decoded text when present.
    var denormalizer: NormalizerSpec?

    static let modelTypeNames: [Int32: String] = [1: "UNIGRAM", 2: "BPE", 3: "WORD", 4: "CHAR"]

    init() {}

    /// Parses the serialized `ModelProto`.
    init(parsing bytes: [UInt8]) throws {
        var reader = ProtobufReader(bytes[...])
        while let (field, type) = try reader.nextField() {
            switch field {
            case 1:
                try ProtobufReader.expect(.lengthDelimited, type, field: "pieces")
                pieces.append(try Self.parsePiece(reader.readLengthDelimited(), index: pieces.count))
            case 2:
                try ProtobufReader.expect(.lengthDelimited, type, field: "trainer_spec")
                try parseTrainerSpec(reader.readLengthDelimited())
            case 3:
                try ProtobufReader.expect(.lengthDelimited, type, field: "normalizer_spec")
                normalizer = try Self.parseNormalizerSpec(reader.readLengthDelimited(), into: normalizer)
            case 5:
                try ProtobufReader.expect(.lengthDelimited, type, field: "denormalizer_spec")
                denormalizer = try Self.parseNormalizerSpec(reader.readLengthDelimited(), into: denormalizer ?? NormalizerSpec())
            default:
                try reader.skip(type)
            }
        }
    }

    private static func parsePiece(_ bytes: ArraySlice<UInt8>, index: Int) throws -> Piece {
        var reader = ProtobufReader(bytes)
        var piece = Piece(text: "", score: 0, type: .normal)
        while let (field, type) = try reader.nextField() {
            switch field {
            case 1:
                try ProtobufReader.expect(.lengthDelimited, type, field: "pieces[\(index)].piece")
                piece.text = try reader.readString()
            case 2:
                try ProtobufReader.expect(.fixed32, type, field: "pieces[\(index)].score")
                piece.score = try reader.readFloat()
            case 3:
                try ProtobufReader.expect(.varint, type, field: "pieces[\(index)].type")
                let raw = try reader.readInt32()
                guard let t = PieceType(rawValue: raw) else {
                    throw ProtobufReader.Malformed(description: "piece \(index) has unknown type \(raw)")
                }
                piece.type = t
            default:
                try reader.skip(type)
            }
        }
        return piece
    }

    private mutating func parseTrainerSpec(_ bytes: ArraySlice<UInt8>) throws {
        var reader = ProtobufReader(bytes)
        while let (field, type) = try reader.nextField() {
            switch (field, type) {
            case (3, .varint): modelType = try reader.readInt32()
            case (24, .varint): treatWhitespaceAsSuffix = try reader.readBool()
            case (35, .varint): byteFallback = try reader.readBool()
            case (40, .varint): unkID = try reader.readInt32()
            case (41, .varint): bosID = try reader.readInt32()
            case (42, .varint): eosID = try reader.readInt32()
            case (43, .varint): padID = try reader.readInt32()
            case (44, .lengthDelimited): unkSurface = try reader.readString()
            case (3, _), (24, _), (35, _), (40...44, _):
                throw ProtobufReader.Malformed(description: "trainer_spec field \(field) has wire type \(type.rawValue)")
            default: try reader.skip(type)
            }
        }
    }

    /// Fields of a repeated embedded message merge into the earlier value, as protobuf does.
    private static func parseNormalizerSpec(_ bytes: ArraySlice<UInt8>, into base: NormalizerSpec) throws -> NormalizerSpec {
        var spec = base
        var reader = ProtobufReader(bytes)
        while let (field, type) = try reader.nextField() {
            switch (field, type) {
            case (1, .lengthDelimited): spec.name = try reader.readString()
            case (2, .lengthDelimited): spec.precompiledCharsmapSize = try reader.readLengthDelimited().count
            case (3, .varint): spec.addDummyPrefix = try reader.readBool()
            case (4, .varint): spec.removeExtraWhitespaces = try reader.readBool()
            case (5, .varint): spec.escapeWhitespaces = try reader.readBool()
            case (1...5, _):
                throw ProtobufReader.Malformed(description: "normalizer_spec field \(field) has wire type \(type.rawValue)")
            default: try reader.skip(type)
            }
        }
        return spec
    }
}
