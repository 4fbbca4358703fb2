import SwiftProtobuf

/// The parts of a SentencePiece `ModelProto` (a `.model` file) that encoding and decoding use,
/// with the proto's defaults for absent fields (sentencepiece_model.proto).
package struct SentencePieceModel: Sendable {
    /// `ModelProto.SentencePiece.Type`.
    package enum PieceType: Int32, Sendable {
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

    /// Why the bytes are not a `ModelProto`, in words.
    struct Malformed: Error, CustomStringConvertible {
        let description: String
    }

    /// Parses the serialized `ModelProto` with swift-protobuf (proto/sentencepiece_model.proto).
    init(parsing bytes: [UInt8]) throws {
        let proto: SentencePieceProtoModel
        do {
            proto = try SentencePieceProtoModel(serializedBytes: bytes)
        } catch let error as BinaryDecodingError {
            throw Malformed(description: Self.describe(error))
        }
        pieces = try proto.pieces.enumerated().map { index, p in
            guard let type = PieceType(rawValue: p.type) else {
                throw Malformed(description: "piece \(index) has unknown type \(p.type)")
            }
            return Piece(text: p.piece, score: p.score, type: type)
        }
        let trainer = proto.trainerSpec
        modelType = trainer.modelType
        treatWhitespaceAsSuffix = trainer.treatWhitespaceAsSuffix
        byteFallback = trainer.byteFallback
        unkID = trainer.unkID
        bosID = trainer.bosID
        eosID = trainer.eosID
        padID = trainer.padID
        unkSurface = trainer.unkSurface
        normalizer = NormalizerSpec(proto.normalizerSpec)
        denormalizer = proto.hasDenormalizerSpec ? NormalizerSpec(proto.denormalizerSpec) : nil
    }

    static func describe(_ error: BinaryDecodingError) -> String {
        switch error {
        case .truncated: return "the data ends inside a field (a field runs past the end)"
        case .malformedProtobuf: return "the bytes are not protobuf (a bad field key, wire type or varint)"
        case .invalidUTF8: return "a string field is not UTF-8"
        case .messageDepthLimit: return "messages are nested too deeply"
        default: return "\(error)"
        }
    }
}

extension SentencePieceModel.NormalizerSpec {
    init(_ spec: SentencePieceProtoNormalizerSpec) {
        name = spec.name
        precompiledCharsmapSize = spec.precompiledCharsmap.count
        addDummyPrefix = spec.addDummyPrefix
        removeExtraWhitespaces = spec.removeExtraWhitespaces
        escapeWhitespaces = spec.escapeWhitespaces
    }
}
