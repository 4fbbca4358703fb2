import QTrainCore

/// The integer grid of an n-bit quantiser: codes in [qn, qp], `qn = -2^(n-1)`, `qp = 2^(n-1) - 1`;
/// ternary ("1.58-bit") is [-1, 1]. A code `q` under scale `s` stands for the value `q / s`.
public struct QuantGrid: Equatable, Hashable, Sendable, Codable, CustomStringConvertible {
    /// Bit width 2...8, or 0 for ternary.
    public let bits: Int

    /// The ternary grid {-1, 0, 1}.
    public static let ternary = QuantGrid(uncheckedBits: 0)

    init(uncheckedBits bits: Int) { self.bits = bits }

    /// The grid for `quant.bits`: 1.58 is ternary, otherwise an integer 2...8.
    public init(bits value: Double) throws {
        if abs(value - 1.58) < 1e-9 {
            bits = 0
        } else if value == value.rounded(), value >= 2, value <= 8 {
            bits = Int(value)
        } else {
            throw QTrainError.config(
                "config key 'quant.bits' = \(value) is not supported",
                hint: "use 1.58 (ternary) or an integer from 2 to 8")
        }
    }

    public var qn: Int { bits == 0 ? -1 : -(1 << (bits - 1)) }
    public var qp: Int { bits == 0 ? 1 : (1 << (bits - 1)) - 1 }

    /// Storage bits per code: 1.6 for ternary (five codes per byte), else `bits`.
    public var storageBitsPerCode: Double { bits == 0 ? 1.6 : Double(bits) }

    /// Bytes that `count` packed codes take.
    public func packedBytes(_ count: Int) -> Int { bits == 0 ? (count + 4) / 5 : (count * bits + 7) / 8 }

    /// `quant.bits` as written in a config.
    public var configValue: Double { bits == 0 ? 1.58 : Double(bits) }

    /// `quant.bits` as checkpoints record it: `1.58` for ternary, else the bit width.
    public var bitsLabel: String { bits == 0 ? "1.58" : "\(bits)" }

    /// The packing of the codes, as checkpoints record it.
    public var packingName: String { bits == 0 ? "ternary-base3-5-per-byte" : "lsb-bitstream" }

    public var description: String { bits == 0 ? "ternary" : "\(bits)-bit" }
}
