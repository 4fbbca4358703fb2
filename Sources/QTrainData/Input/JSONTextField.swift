/// Reads one string field out of a JSON Lines record without building the record: the line is
/// checked as JSON (RFC 8259: stricter than Python's `json.loads`, which also takes `NaN`,
/// `Infinity` and lone surrogates) while only the wanted field's string is decoded, to UTF-8 bytes.
public enum JSONTextField {
    /// What a line holds.
    public enum Outcome: Equatable, Sendable {
        /// The field's string, as UTF-8 bytes (not yet checked as UTF-8: raw bytes are copied).
        case text([UInt8])
        /// The line is a JSON object without the field.
        case missing
        /// The field holds another JSON type (named: "number", "null", "array", …).
        case notString(String)
        /// The line is not JSON, or not an object; the reason names the byte offset.
        case invalid(String)
    }

    /// Nesting deeper than this is refused rather than recursed into.
    static let maximumDepth = 512

    /// The top-level field `field` of the JSON object in `line` (the last one if it repeats,
    /// as Python keeps).
    public static func extract(_ field: [UInt8], from line: UnsafeBufferPointer<UInt8>) -> Outcome {
        var parser = Parser(bytes: line)
        do {
            return try parser.record(field: field)
        } catch let error as Parser.Failure {
            return .invalid(error.reason)
        } catch {
            return .invalid("\(error)")
        }
    }

    struct Parser {
        struct Failure: Error { let reason: String }

        let bytes: UnsafeBufferPointer<UInt8>
        var i = 0

        init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

        func fail(_ what: String) -> Failure {
            Failure(reason: i < bytes.count ? "\(what) at byte \(i)" : "\(what) at the end of the line")
        }

        mutating func skipSpace() {
            while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x09 || bytes[i] == 0x0A || bytes[i] == 0x0D {
                i += 1
            }
        }

        mutating func expect(_ byte: UInt8, _ what: String) throws {
            skipSpace()
            guard i < bytes.count, bytes[i] == byte else { throw fail("expected \(what)") }
            i += 1
        }

        mutating func record(field: [UInt8]) throws -> Outcome {
            skipSpace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: "{") else {
                if i < bytes.count, bytes[i] == UInt8(ascii: "[") || bytes[i] == UInt8(ascii: "\"") {
                    try value(depth: 1)
                    skipSpace()
                    guard i == bytes.count else { throw fail("unexpected text after the value") }
                    throw Failure(reason: "a JSON value that is not an object")
                }
                throw fail("expected '{'")
            }
            i += 1
            var outcome = Outcome.missing
            skipSpace()
            if i < bytes.count, bytes[i] == UInt8(ascii: "}") {
                i += 1
            } else {
                repeat {
                    skipSpace()
                    guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw fail("expected a key") }
                    var key: [UInt8] = []
                    try string(into: &key)
                    try expect(UInt8(ascii: ":"), "':'")
                    skipSpace()
                    if key == field {
                        guard i < bytes.count else { throw fail("expected a value") }
                        if bytes[i] == UInt8(ascii: "\"") {
                            var text: [UInt8] = []
                            text.reserveCapacity(bytes.count - i)
                            try string(into: &text)
                            outcome = .text(text)
                        } else {
                            let kind = kindName(bytes[i])
                            try value(depth: 1)
                            outcome = .notString(kind)
                        }
                    } else {
                        try value(depth: 1)
                    }
                } while try more(until: UInt8(ascii: "}"))
            }
            skipSpace()
            guard i == bytes.count else { throw fail("unexpected text after the object") }
            return outcome
        }

        func kindName(_ b: UInt8) -> String {
            switch b {
            case UInt8(ascii: "{"): return "object"
            case UInt8(ascii: "["): return "array"
            case UInt8(ascii: "t"), UInt8(ascii: "f"): return "boolean"
            case UInt8(ascii: "n"): return "null"
            default: return "number"
            }
        }

        /// Checks (and steps over) any value.
        mutating func value(depth: Int) throws {
            guard depth <= JSONTextField.maximumDepth else {
                throw fail("nesting deeper than \(JSONTextField.maximumDepth)")
            }
            skipSpace()
            guard i < bytes.count else { throw fail("expected a value") }
            switch bytes[i] {
            case UInt8(ascii: "\""):
                var skipped: [UInt8] = []
                try string(keep: false, into: &skipped)
            case UInt8(ascii: "{"):
                i += 1
                skipSpace()
                if i < bytes.count, bytes[i] == UInt8(ascii: "}") {
                    i += 1
                    return
                }
                repeat {
                    skipSpace()
                    guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw fail("expected a key") }
                    var skipped: [UInt8] = []
                    try string(keep: false, into: &skipped)
                    try expect(UInt8(ascii: ":"), "':'")
                    try value(depth: depth + 1)
                } while try more(until: UInt8(ascii: "}"))
            case UInt8(ascii: "["):
                i += 1
                skipSpace()
                if i < bytes.count, bytes[i] == UInt8(ascii: "]") {
                    i += 1
                    return
                }
                repeat { try value(depth: depth + 1) } while try more(until: UInt8(ascii: "]"))
            case UInt8(ascii: "t"): try literal("true")
            case UInt8(ascii: "f"): try literal("false")
            case UInt8(ascii: "n"): try literal("null")
            default: try number()
            }
        }

        /// After a member or element: true at a ',' (another follows), false at `close`; steps over either.
        mutating func more(until close: UInt8) throws -> Bool {
            skipSpace()
            let expected = "expected ',' or '\(Character(Unicode.Scalar(close)))'"
            guard i < bytes.count else { throw fail(expected) }
            if bytes[i] == UInt8(ascii: ",") {
                i += 1
                return true
            }
            guard bytes[i] == close else { throw fail(expected) }
            i += 1
            return false
        }

        mutating func literal(_ word: StaticString) throws {
            let n = word.utf8CodeUnitCount
            guard i + n <= bytes.count else { throw fail("expected \(word)") }
            for k in 0..<n where bytes[i + k] != word.utf8Start[k] { throw fail("expected \(word)") }
            i += n
        }

        mutating func number() throws {
            func digits() -> Int {
                let start = i
                while i < bytes.count, bytes[i] >= 0x30, bytes[i] <= 0x39 { i += 1 }
                return i - start
            }
            if i < bytes.count, bytes[i] == UInt8(ascii: "-") { i += 1 }
            guard i < bytes.count, bytes[i] >= 0x30, bytes[i] <= 0x39 else { throw fail("expected a value") }
            if bytes[i] == 0x30 { i += 1 } else { _ = digits() }
            if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
                i += 1
                guard digits() > 0 else { throw fail("expected a digit") }
            }
            if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
                i += 1
                if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
                guard digits() > 0 else { throw fail("expected a digit") }
            }
        }

        /// Steps over the string at `i` (its opening quote); with `keep`, appends its UTF-8 to `out`.
        mutating func string(keep: Bool = true, into out: inout [UInt8]) throws {
            i += 1
            var runStart = i
            while true {
                guard i < bytes.count else { throw fail("unterminated string") }
                let b = bytes[i]
                if b == UInt8(ascii: "\"") {
                    if keep { out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<i])) }
                    i += 1
                    return
                }
                if b < 0x20 { throw fail("a control character inside a string") }
                if b != UInt8(ascii: "\\") {
                    i += 1
                    continue
                }
                if keep { out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<i])) }
                i += 1
                guard i < bytes.count else { throw fail("unterminated string") }
                let e = bytes[i]
                i += 1
                var scalar: UInt32
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): scalar = UInt32(e)
                case UInt8(ascii: "b"): scalar = 0x08
                case UInt8(ascii: "f"): scalar = 0x0C
                case UInt8(ascii: "n"): scalar = 0x0A
                case UInt8(ascii: "r"): scalar = 0x0D
                case UInt8(ascii: "t"): scalar = 0x09
                case UInt8(ascii: "u"):
                    scalar = try hex4()
                    let lone = "a lone surrogate \\u\(String(scalar, radix: 16)) (not encodable as UTF-8)"
                    if (0xD800..<0xDC00).contains(scalar) {
                        // A high surrogate: its low half must follow as another \u escape.
                        guard i + 1 < bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u")
                        else { throw fail(lone) }
                        i += 2
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw fail(lone) }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00..<0xE000).contains(scalar) {
                        throw fail(lone)
                    }
                default: throw fail("an unknown escape \\\(Character(Unicode.Scalar(e)))")
                }
                if keep { appendUTF8(scalar, to: &out) }
                runStart = i
            }
        }

        private mutating func hex4() throws -> UInt32 {
            guard i + 4 <= bytes.count else { throw fail("a short \\u escape") }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let c = bytes[i]
                let d: UInt32
                switch c {
                case 0x30...0x39: d = UInt32(c - 0x30)
                case 0x41...0x46: d = UInt32(c - 0x41 + 10)
                case 0x61...0x66: d = UInt32(c - 0x61 + 10)
                default: throw fail("a bad \\u escape")
                }
                v = v << 4 | d
                i += 1
            }
            return v
        }
    }
}

/// Appends the UTF-8 bytes of scalar value `v` (not a surrogate).
func appendUTF8(_ v: UInt32, to out: inout [UInt8]) {
    switch v {
    case 0..<0x80: out.append(UInt8(v))
    case 0x80..<0x800:
        out.append(UInt8(0xC0 | v >> 6))
        out.append(UInt8(0x80 | v & 0x3F))
    case 0x800..<0x10000:
        out.append(UInt8(0xE0 | v >> 12))
        out.append(UInt8(0x80 | v >> 6 & 0x3F))
        out.append(UInt8(0x80 | v & 0x3F))
    default:
        out.append(UInt8(0xF0 | v >> 18))
        out.append(UInt8(0x80 | v >> 12 & 0x3F))
        out.append(UInt8(0x80 | v >> 6 & 0x3F))
        out.append(UInt8(0x80 | v & 0x3F))
    }
}
