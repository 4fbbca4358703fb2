/// Encoders of the ggml block types that qtrain's weights map onto exactly: every block holds
/// one FP16 step `d` and integer codes, and stands for `d · code`. A DQT tensor has a single
/// step (1/scale) for all its blocks, so the only rounding is that of `d` to FP16. And the
/// decoder of every type ``GGUFFile/TensorType`` names, for import.
package enum GGUFBlocks {
    /// The FP16 bits of a block step, or nil where the step has no finite, non-zero FP16 value.
    package static func step(_ d: Float) -> UInt16? {
        let h = Float16(d)
        guard h.isFinite, h != 0 else { return nil }
        return h.bitPattern
    }

    /// Q8_0: per 32 codes, `d` then 32 signed bytes.
    package static func q8_0(_ codes: UnsafePointer<Int8>, count: Int, step d: UInt16, into out: inout [UInt8]) {
        for b in stride(from: 0, to: count, by: 32) {
            append(d, to: &out)
            for i in 0..<32 { out.append(UInt8(bitPattern: codes[b + i])) }
        }
    }

    /// Q4_0: per 32 codes, `d` then 16 bytes; code `i` (offset by 8) in the low nibble of
    /// byte `i`, code `i + 16` in its high nibble. Codes must lie in [-8, 7].
    package static func q4_0(_ codes: UnsafePointer<Int8>, count: Int, step d: UInt16, into out: inout [UInt8]) {
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
    package static func tq2_0(_ codes: UnsafePointer<Int8>, count: Int, step d: UInt16, into out: inout [UInt8]) {
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

    package static func append(_ d: UInt16, to out: inout [UInt8]) {
        out.append(UInt8(d & 0xFF))
        out.append(UInt8(d >> 8))
    }

    /// Decodes `count` elements (whole blocks) of `type` from `raw` into FP32 `out`, as ggml's
    /// dequantisation does: F16/BF16 widened; Q8_0 `d·q`; Q4_0 `d·(q − 8)`; Q4_1 `d·q + m`;
    /// TQ2_0 `d·(q − 1)`.
    package static func decode(
        _ type: GGUFFile.TensorType, _ raw: UnsafeRawPointer, count: Int, into out: UnsafeMutablePointer<Float>
    ) {
        let b = raw.assumingMemoryBound(to: UInt8.self)
        func half(_ at: Int) -> Float { Float(Float16(bitPattern: UInt16(b[at]) | UInt16(b[at + 1]) << 8)) }
        switch type {
        case .f32:
            UnsafeMutableRawPointer(out).copyMemory(from: raw, byteCount: 4 * count)
        case .f16:
            for i in 0..<count { out[i] = half(2 * i) }
        case .bf16:
            for i in 0..<count { out[i] = Float(bitPattern: (UInt32(b[2 * i]) | UInt32(b[2 * i + 1]) << 8) << 16) }
        case .q8_0:
            for k in 0..<(count / 32) {
                let at = k * 34, d = half(at), y = out + 32 * k
                for i in 0..<32 { y[i] = d * Float(Int8(bitPattern: b[at + 2 + i])) }
            }
        case .q4_0:
            for k in 0..<(count / 32) {
                let at = k * 18, d = half(at), y = out + 32 * k
                for i in 0..<16 {
                    let q = b[at + 2 + i]
                    y[i] = d * Float(Int(q & 0xF) - 8)
                    y[i + 16] = d * Float(Int(q >> 4) - 8)
                }
            }
        case .q4_1:
            for k in 0..<(count / 32) {
                let at = k * 20, d = half(at), m = half(at + 2), y = out + 32 * k
                for i in 0..<16 {
                    let q = b[at + 4 + i]
                    y[i] = d * Float(q & 0xF) + m
                    y[i + 16] = d * Float(q >> 4) + m
                }
            }
        case .tq2_0:
            for k in 0..<(count / 256) {
                let at = k * 66, d = half(at + 64), y = out + 256 * k
                for h in 0..<2 {
                    for j in 0..<4 {
                        for m in 0..<32 {
                            let q = (b[at + 32 * h + m] >> (2 * j)) & 3
                            y[128 * h + 32 * j + m] = d * Float(Int(q) - 1)
                        }
                    }
                }
            }
        }
    }
}
