/// Encoders of the ggml block types that qtrain's weights map onto exactly: every block holds
/// one FP16 step `d` and integer codes, and stands for `d · code`. A DQT tensor has a single
/// step (1/scale) for all its blocks, so the only rounding is that of `d` to FP16.
enum GGUFBlocks {
    /// The FP16 bits of a block step, or nil where the step has no finite, non-zero FP16 value.
    static func step(_ d: Float) -> UInt16? {
        let h = Float16(d)
        guard h.isFinite, h != 0 else { return nil }
        return h.bitPattern
    }

    /// Q8_0: per 32 codes, `d` then 32 signed bytes.
    static func q8_0(_ codes: UnsafePointer<Int8>, count: Int, step d: UInt16, into out: inout [UInt8]) {
        for b in stride(from: 0, to: count, by: 32) {
            append(d, to: &out)
            for i in 0..<32 { out.append(UInt8(bitPattern: codes[b + i])) }
        }
    }

    /// Q4_0: per 32 codes, `d` then 16 bytes; code `i` (offset by 8) in the low nibble of
    /// byte `i`, code `i + 16` in its high nibble. Codes must lie in [-8, 7].
    static func q4_0(_ codes: UnsafePointer<Int8>, count: Int, step d: UInt16, into out: inout [UInt8]) {
        for b in stride(from: 0, to: count, by: 32) {
            append(d, to: &out)
            for i in 0..<16 {
                let lo = UInt8(Int(codes[b + i]) + 8), hi = UInt8(Int(codes[b + i + 16]) + 8)
                out.append(lo | hi << 4)
            }
        }
    }

    /// TQ2_0: per 256 codes, 64 bytes then `d`. Each half of 128 codes fills 32 bytes; code
    /// `128h + 32k + m` (plus 1, so 0...2) sits in bits 2k...2k+1 of byte `32h + m`.
    static func tq2_0(_ codes: UnsafePointer<Int8>, count: Int, step d: UInt16, into out: inout [UInt8]) {
        for b in stride(from: 0, to: count, by: 256) {
            for h in 0..<2 {
                for m in 0..<32 {
                    var byte: UInt8 = 0
                    for k in 0..<4 { byte |= UInt8(Int(codes[b + 128 * h + 32 * k + m]) + 1) << (2 * k) }
                    out.append(byte)
                }
            }
            append(d, to: &out)
        }
    }

    static func append(_ d: UInt16, to out: inout [UInt8]) {
        out.append(UInt8(d & 0xFF))
        out.append(UInt8(d >> 8))
    }
}
