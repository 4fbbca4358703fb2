import Crypto
import Foundation

/// SHA-256 from swift-crypto (BoringSSL, which uses the CPU's SHA instructions where it has
/// them), for tokenizer identities and checkpoint checksums.
public typealias SHA256 = Crypto.SHA256

extension Crypto.SHA256 {
    /// Lower-case hex digest of `bytes`.
    public static func hex(_ bytes: some DataProtocol) -> String { hash(data: bytes).hexString }

    /// Adds the bytes `raw` points at to the message.
    public mutating func update(_ raw: UnsafeRawBufferPointer) { update(bufferPointer: raw) }
}

extension Sequence where Element == UInt8 {
    /// Lower-case hexadecimal.
    public var hexString: String {
        let digits = Array("0123456789abcdef")
        var s = ""
        for b in self {
            s.append(digits[Int(b >> 4)])
            s.append(digits[Int(b & 15)])
        }
        return s
    }
}
