import Foundation
import QTrainCore

/// A SentencePiece BPE model (a `.model` file, the format of LLaMA's and Mistral's
/// `tokenizer.model`), encoding and decoding exactly as the `sentencepiece` library does.
///
/// Supported: BPE models with the identity normalizer (no compiled normalization rules), the
/// dummy prefix, whitespace escaping and removal options, byte fallback, and user-defined,
/// unused, control and unknown pieces. Other models are rejected when loaded.
public struct SentencePieceTokenizer: Tokenizer {
    /// The `.model` file as loaded; saved with the tokenizer and hashed into its identity.
    let modelBytes: [UInt8]
    private let modelSHA256: String

    // Per piece id.
    package let pieceTexts: [String]
    /// Piece text → id, for every piece.
    let pieces: ByteStringTable
    package let scores: [Float]
    package let types: [SentencePieceModel.PieceType]
    /// NORMAL, USER_DEFINED and UNUSED pieces: what a merge may produce.
    let mergeable: [Bool]
    /// The text a piece decodes to (U+2581 as a space); for byte pieces, their byte.
    let surfaces: [[UInt8]]
    /// Whether the piece starts with the space symbol U+2581, which decoding drops once at the start.
    let startsWithSpace: [Bool]

    package let unkID: Int32
    package let bosID: Int32
    let eosID: Int32
    let byteFallback: Bool
    /// The piece of each byte, for byte fallback.
    let byteIDs: [Int32]
    let unkSurface: [UInt8]

    package let addDummyPrefix: Bool
    let removeExtraWhitespaces: Bool
    let treatWhitespaceAsSuffix: Bool
    /// What a space becomes after normalization: U+2581, or a space if not escaped.
    let spaceSymbol: [UInt8]
    /// Whether no piece spans the start of a run of spaces, so that words merge independently.
    let splitsWords: Bool
    let hasUnusedPieces: Bool
    /// USER_DEFINED pieces, longest first, and the bytes they can start with.
    let userDefined: [[UInt8]]
    let userDefinedLeads: [Bool]

    static let escapedSpace: [UInt8] = [0xE2, 0x96, 0x81]

    /// Loads a serialized `ModelProto`; throws ``QTrainError`` naming what is malformed or unsupported.
    public init(modelData: Data) throws {
        let bytes = [UInt8](modelData)
        let model: SentencePieceModel
        do {
            model = try SentencePieceModel(parsing: bytes)
        } catch let error as SentencePieceModel.Malformed {
            throw QTrainError.data(
                "not a valid SentencePiece model: \(error.description) (\(bytes.count) bytes)",
                hint: "the .model file is damaged or of another format; fetch it again")
        }
        try self.init(model: model, bytes: bytes)
    }

    init(model: SentencePieceModel, bytes: [UInt8]) throws {
        func unsupported(_ what: String) -> QTrainError {
            QTrainError.data(
                "SentencePiece model \(what)", hint: "use a BPE model like LLaMA's or Mistral's tokenizer.model")
        }
        let n = model.pieces.count
        guard n > 0 else {
            throw unsupported("has no pieces (\(bytes.count) bytes): the file is damaged or not a .model file")
        }
        guard n < Int(Int32.max) else { throw unsupported("has too many pieces (\(n))") }
        guard model.modelType == 2 else {
            let name = SentencePieceModel.modelTypeNames[model.modelType] ?? "type \(model.modelType)"
            throw unsupported("is a \(name) model; only BPE models are supported")
        }
        guard model.normalizer.precompiledCharsmapSize == 0 else {
            throw unsupported("normalizes text with compiled rules (\(model.normalizer.name)), which are not supported")
        }
        if let d = model.denormalizer, d.precompiledCharsmapSize > 0 {
            throw unsupported("denormalizes text with compiled rules (\(d.name)), which are not supported")
        }

        var table = ByteStringTable(capacity: n)
        var byteIDs = [Int32](repeating: -1, count: 256)
        var surfaces: [[UInt8]] = []
        var unk: Int32 = -1
        surfaces.reserveCapacity(n)
        for (i, piece) in model.pieces.enumerated() {
            let text = Array(piece.text.utf8)
            guard !text.isEmpty else { throw unsupported("has an empty piece at id \(i)") }
            guard table.insert(text, value: Int32(i)) else {
                throw unsupported("defines the piece \"\(piece.text)\" twice")
            }
            switch piece.type {
            case .unknown:
                guard unk < 0 else { throw unsupported("has two unknown pieces (ids \(unk) and \(i))") }
                unk = Int32(i)
                surfaces.append([])
            case .byte:
                guard model.byteFallback else {
                    throw unsupported("has byte piece \(piece.text) although byte_fallback is off")
                }
                guard let b = Self.byteOfPiece(piece.text) else {
                    throw unsupported("has an invalid byte piece \"\(piece.text)\" (id \(i))")
                }
                byteIDs[Int(b)] = Int32(i)
                surfaces.append([b])
            case .control:
                surfaces.append([])
            case .normal, .userDefined, .unused:
                surfaces.append(Self.replacingEscapedSpaces(text))
            }
        }
        guard unk >= 0 else { throw unsupported("has no unknown piece (<unk>)") }
        if model.byteFallback, let missing = byteIDs.firstIndex(of: -1) {
            throw unsupported(
                "uses byte fallback but has no piece for byte 0x\(String(missing, radix: 16, uppercase: true))")
        }
        guard model.eosID >= 0 && Int(model.eosID) < n else {
            throw unsupported("has no end-of-sequence piece (eos_id \(model.eosID))")
        }

        modelBytes = bytes
        modelSHA256 = SHA256.hex(bytes)
        pieces = table
        pieceTexts = model.pieces.map(\.text)
        scores = model.pieces.map(\.score)
        types = model.pieces.map(\.type)
        mergeable = types.map { $0 == .normal || $0 == .userDefined || $0 == .unused }
        self.surfaces = surfaces
        startsWithSpace = model.pieces.map { $0.text.utf8.starts(with: Self.escapedSpace) }
        unkID = unk
        bosID = model.bosID
        eosID = model.eosID
        byteFallback = model.byteFallback
        self.byteIDs = byteIDs.map { $0 < 0 ? unk : $0 }
        unkSurface = Array(model.unkSurface.utf8)
        addDummyPrefix = model.normalizer.addDummyPrefix
        removeExtraWhitespaces = model.normalizer.removeExtraWhitespaces
        treatWhitespaceAsSuffix = model.treatWhitespaceAsSuffix
        spaceSymbol = model.normalizer.escapeWhitespaces ? Self.escapedSpace : [0x20]
        hasUnusedPieces = types.contains(.unused)
        let space = spaceSymbol
        let spansWords = zip(model.pieces, mergeable).contains { piece, canMerge in
            canMerge && Self.hasSpaceAfterOtherText(Array(piece.text.utf8), space: space)
        }
        // Where an UNUSED piece splits depends on the pair queued last anywhere in the text.
        splitsWords = !spansWords && !hasUnusedPieces
        userDefined = zip(model.pieces, types).filter { $0.1 == .userDefined }.map { Array($0.0.text.utf8) }
            .sorted { $0.count > $1.count }
        var leads = [Bool](repeating: false, count: 256)
        for p in userDefined { leads[Int(p[0])] = true }
        userDefinedLeads = leads
    }

    /// The number of pieces.
    public var vocabSize: Int { types.count }
    /// The end-of-sequence piece (`</s>`), which separates documents.
    public var endOfText: Int32 { eosID }
    /// `sentencepiece:<pieces>:<SHA-256 of the .model file>`.
    public var identity: String { "sentencepiece:\(types.count):\(modelSHA256)" }

    /// The ids of `text`, without BOS or EOS added. The special pieces typed in it (`<s>`,
    /// `</s>`, `<unk>`) become their ids, as in Hugging Face's tokenizer for the exported
    /// files; the text between them is encoded as `sentencepiece` does, each part on its own.
    /// A part after a special piece that begins with a space takes that space as its
    /// dummy-prefix space instead of adding one (" y" is "▁y", not "▁", "▁y"), as there.
    public func encode(_ text: String) -> [Int32] {
        let specials = [bosID, eosID, unkID].filter { $0 >= 0 && Int($0) < pieceTexts.count }
            .map { (text: pieceTexts[Int($0)], id: $0) }
        return encodeSplittingSpecials(text, specials: specials) { piece, startsText in
            encodePlain(piece, dummyPrefix: startsText || !piece.hasPrefix(" "))
        }
    }

    /// The ids the `sentencepiece` library gives for `text` (which reads `</s>` typed in a text
    /// as characters); `dummyPrefix: false` leaves out the model's dummy-prefix space.
    func encodePlain(_ text: String, dummyPrefix: Bool = true) -> [Int32] {
        var encoder = SentencePieceEncoder(self)
        return encoder.encode(normalized: normalize(text, dummyPrefix: dummyPrefix))
    }

    /// The text of `tokens` as `sentencepiece` decodes it: U+2581 becomes a space (the one the
    /// dummy prefix added at the start is dropped), runs of byte pieces become UTF-8 (each
    /// invalid byte U+FFFD), control pieces nothing, `<unk>` its surface (" ⁇ ").
    /// Ids outside the vocabulary are skipped.
    public func decode(_ tokens: [Int32]) -> String {
        var text: [UInt8] = []
        var pendingBytes: [UInt8] = []
        var atStart = true
        var droppedLeadingSpace = false
        let dropsLeadingSpace = addDummyPrefix || removeExtraWhitespaces
        for t in tokens {
            guard t >= 0 && Int(t) < types.count else { continue }
            let id = Int(t)
            if types[id] == .byte {
                pendingBytes.append(surfaces[id][0])
                continue
            }
            Self.appendBytes(pendingBytes, to: &text)
            pendingBytes.removeAll(keepingCapacity: true)
            if droppedLeadingSpace || !text.isEmpty { atStart = false }
            droppedLeadingSpace = false
            switch types[id] {
            case .control: break
            case .unknown: text += unkSurface
            default:
                if atStart && dropsLeadingSpace && startsWithSpace[id] {
                    text += surfaces[id].dropFirst()
                    // With remove_extra_whitespaces every leading space goes, not just the first.
                    droppedLeadingSpace = !removeExtraWhitespaces
                } else {
                    text += surfaces[id]
                }
            }
        }
        Self.appendBytes(pendingBytes, to: &text)
        return String(decoding: text, as: UTF8.self)
    }

    /// UTF-8 bytes of text a token stands for: a piece's bytes with U+2581 counted as the one
    /// space it replaces, 1 for a byte piece, 0 for control and unknown pieces. A text's
    /// tokens therefore add up to its UTF-8 length plus 1 for the dummy prefix.
    public func byteCount(of token: Int32) -> Int {
        guard token >= 0 && Int(token) < types.count else { return 0 }
        return surfaces[Int(token)].count
    }

    /// Bytes of the longest USER_DEFINED piece that `text[0..<count]` starts with, or nil.
    func longestUserDefined(_ text: UnsafePointer<UInt8>, _ count: Int) -> Int? {
        for piece in userDefined where piece.count <= count {
            if piece.withUnsafeBufferPointer({ memcmp($0.baseAddress!, text, piece.count) == 0 }) { return piece.count }
        }
        return nil
    }

    /// `<0x41>` → 0x41.
    static func byteOfPiece(_ piece: String) -> UInt8? {
        let u = Array(piece.utf8)
        guard u.count == 6, u.starts(with: Array("<0x".utf8)), u[5] == UInt8(ascii: ">") else { return nil }
        return UInt8(String(decoding: u[3..<5], as: UTF8.self), radix: 16)
    }

    private static func replacingEscapedSpaces(_ text: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var i = 0
        while i < text.count {
            if text[i...].starts(with: escapedSpace) {
                out.append(0x20)
                i += 3
            } else {
                out.append(text[i])
                i += 1
            }
        }
        return out
    }

    /// Whether `piece` has the space symbol right after some other character.
    private static func hasSpaceAfterOtherText(_ piece: [UInt8], space: [UInt8]) -> Bool {
        var i = 0
        var previousIsOther = false
        while i < piece.count {
            if piece[i...].starts(with: space) {
                if previousIsOther { return true }
                i += space.count
            } else {
                previousIsOther = true
                i += 1
            }
        }
        return false
    }

    /// Appends decoded byte pieces as `sentencepiece` does: each valid UTF-8 sequence as is,
    /// each byte that starts no valid sequence as U+FFFD.
    private static func appendBytes(_ bytes: [UInt8], to text: inout [UInt8]) {
        var i = 0
        while i < bytes.count {
            let n = validUTF8SequenceLength(bytes, at: i)
            if n > 0 {
                text += bytes[i..<i + n]
                i += n
            } else {
                text += [0xEF, 0xBF, 0xBD]
                i += 1
            }
        }
    }

    /// Length of the well-formed UTF-8 sequence at `i` (no overlong forms, no surrogates,
    /// nothing above U+10FFFF), or 0.
    private static func validUTF8SequenceLength(_ b: [UInt8], at i: Int) -> Int {
        let lead = b[i]
        if lead < 0x80 { return 1 }
        let n = lead & 0xE0 == 0xC0 ? 2 : lead & 0xF0 == 0xE0 ? 3 : lead & 0xF8 == 0xF0 ? 4 : 0
        guard n > 0, b.count - i >= n else { return 0 }
        var cp = UInt32(lead) & (n == 2 ? 0x1F : n == 3 ? 0x0F : 0x07)
        for k in 1..<n {
            guard b[i + k] & 0xC0 == 0x80 else { return 0 }
            cp = cp << 6 | UInt32(b[i + k] & 0x3F)
        }
        let minimum: UInt32 = n == 2 ? 0x80 : n == 3 ? 0x800 : 0x10000
        guard cp >= minimum, cp < 0xD800 || (cp >= 0xE000 && cp <= 0x10FFFF) else { return 0 }
        return n
    }
}

extension SentencePieceTokenizer {
    /// Its pieces with their scores and types, and its unknown and beginning ids.
    public var vocabulary: TokenizerVocabulary {
        TokenizerVocabulary(
            model: .sentencePiece, tokens: pieceTexts,
            types: types.map { TokenizerVocabulary.TokenType(rawValue: $0.rawValue)! },
            scores: scores, unknown: unkID, beginning: bosID >= 0 && Int(bosID) < pieceTexts.count ? bosID : nil,
            addsSpacePrefix: addDummyPrefix)
    }
}
