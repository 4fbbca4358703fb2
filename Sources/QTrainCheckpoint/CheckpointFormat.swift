import Foundation
import QKernels
import QTrainCore
import QTrainOptim
import QTrainWeights

/// The tensors of a checkpoint (DESIGN.md, Formats): `model.safetensors` holds every
/// parameter as stored — packed codes as U8 with their shape, bits and packing in the
/// metadata and the scale as `<name>.scale` (F32), FP32 tensors as F32, BF16 latent weights
/// as BF16 — and `optimizer*.safetensors` the AdamW moments of a range of the flat layout.
public enum CheckpointFormat {
    public static let version = 1

    public static func modelWriter(_ w: ModelWeights) -> SafetensorsWriter {
        var out = SafetensorsWriter()
        out.metadata["qtrain.format"] = "\(version)"
        out.metadata["qtrain.quant_mode"] = w.quant.mode.rawValue
        for spec in w.layout.specs { w.storage[spec.index].write(spec, to: &out) }
        return out
    }

    /// Reads every parameter of `w` from `file`, checking that each is stored the way `w` stores it.
    public static func loadModel(_ w: ModelWeights, from file: SafetensorsFile) throws {
        for spec in w.layout.specs { try w.storage[spec.index].read(spec, from: file) }
        w.refreshDerivedState()
    }

    public static func optimizerWriter(_ o: Optimizer) -> SafetensorsWriter {
        var out = SafetensorsWriter()
        out.metadata["qtrain.format"] = "\(version)"
        out.metadata["range_start"] = "\(o.range.lowerBound)"
        out.metadata["range_end"] = "\(o.range.upperBound)"
        out.metadata["step"] = "\(o.step)"
        if o.m.dtype == .int8 { out.metadata["state_block"] = "\(StateSegments.block)" }
        for (name, moment) in [("m", o.m), ("v", o.v)] {
            for part in moment.stored {
                out.tensors.append(
                    .init(name: name + part.suffix, dtype: part.dtype, shape: [part.count], pointer: part.pointer))
            }
        }
        return out
    }

    /// Fills `o`'s range from whichever files cover it (their ranges may split the layout
    /// differently: another world size, or a switch to or from ZeRO-1; the moments may be
    /// stored as F32, BF16 or 8-bit blocks, converted to `optim.state_dtype`). A file that holds
    /// exactly this range in this form is copied byte for byte (a bitwise resume); otherwise
    /// each tensor's part is widened to FP32 from the files and stored again.
    public static func loadOptimizer(_ o: Optimizer, from files: [SafetensorsFile]) throws {
        let damaged = "the file is damaged; use an older checkpoint"
        var sources: [(file: SafetensorsFile, range: Range<Int>)] = []
        for f in files {
            guard let lo = f.metadata["range_start"].flatMap(Int.init),
                let hi = f.metadata["range_end"].flatMap(Int.init),
                let step = f.metadata["step"].flatMap(Int.init), 0 <= lo, lo <= hi, hi <= o.layout.count, step >= 0
            else { throw QTrainError(.checkpoint, "\(f.url.path) lacks its range metadata", hint: damaged) }
            o.step = step
            sources.append((f, lo..<hi))
        }
        if let exact = sources.first(where: { $0.range == o.range }), try copyExactly(o, from: exact.file) { return }
        var covered = 0
        for (name, moment) in [("m", o.m), ("v", o.v)] {
            covered = 0
            for seg in moment.segments.segments {
                var values = [Float](repeating: 0, count: seg.count)
                let lo = o.range.lowerBound + seg.stateOffset, hi = lo + seg.count
                for (f, r) in sources {
                    let a = max(lo, r.lowerBound), b = min(hi, r.upperBound)
                    guard a < b else { continue }
                    try values.withUnsafeMutableBufferPointer { out in
                        try decode(
                            name, of: f, range: r, elements: a..<b, layout: o.layout, into: out.baseAddress! + (a - lo))
                    }
                    covered += b - a
                }
                if let i = values.firstIndex(where: { !$0.isFinite || (name == "v" && $0 < 0) }) {
                    throw QTrainError(
                        .checkpoint, "\(name) of the optimizer state holds \(values[i]) at element \(lo + i)",
                        hint: damaged)
                }
                moment.assign(floats: values, count: seg.count, at: seg.stateOffset)
            }
        }
        guard covered == o.range.count else {
            throw QTrainError(
                .checkpoint, "the optimizer files cover \(covered) of this rank's \(o.range.count) values",
                hint: "a file of the checkpoint is missing; use an older checkpoint")
        }
    }

    /// Copies every stored buffer of `f` when it holds `o`'s range in `o`'s form, after checking
    /// it; false when the form differs.
    private static func copyExactly(_ o: Optimizer, from f: SafetensorsFile) throws -> Bool {
        for (name, moment) in [("m", o.m), ("v", o.v)] {
            for part in moment.stored {
                guard let e = try? f.entry(name + part.suffix), e.dtype == part.dtype, e.count == part.count else {
                    return false
                }
            }
        }
        for (name, moment) in [("m", o.m), ("v", o.v)] {
            for part in moment.stored {
                try f.withBytes(name + part.suffix) {
                    part.pointer.copyMemory(from: $0.baseAddress!, byteCount: $0.count)
                }
            }
            // 8-bit moments are finite when their scales are; other moments are checked value by value.
            let values: [Float] =
                moment.dtype == .int8
                ? Array(
                    UnsafeBufferPointer(
                        start: moment.stored[1].pointer.assumingMemoryBound(to: Float.self),
                        count: moment.stored[1].count))
                : moment.values
            if let bad = values.firstIndex(where: { !$0.isFinite || ((name == "v" || moment.dtype == .int8) && $0 < 0) }
            ) {
                throw QTrainError(
                    .checkpoint,
                    "\(name)\(moment.dtype == .int8 ? ".scale" : "") in \(f.url.path) holds \(values[bad]) at \(moment.dtype == .int8 ? "block" : "element") \(bad)",
                    hint: "the file is damaged; use an older checkpoint")
            }
        }
        return true
    }

    /// Widens the layout elements `elements` (inside one tensor) of moment `name` from file `f`,
    /// which covers `range`, into `out`.
    private static func decode(
        _ name: String, of f: SafetensorsFile, range: Range<Int>, elements: Range<Int>,
        layout: ParameterLayout, into out: UnsafeMutablePointer<Float>
    ) throws {
        let e = try f.entry(name), n = elements.count, at = elements.lowerBound - range.lowerBound
        let damaged = "the file is damaged; use an older checkpoint"
        guard e.count == range.count, [.f32, .bf16, .u8].contains(e.dtype) else {
            throw QTrainError(
                .checkpoint, "\(name) in \(f.url.path) holds \(e.count) \(e.dtype.rawValue) values for range \(range)",
                hint: damaged)
        }
        switch e.dtype {
        case .f32:
            try f.withBytes(name) {
                out.update(from: $0.baseAddress!.assumingMemoryBound(to: Float.self) + at, count: n)
            }
        case .bf16:
            try f.withBytes(name) {
                qk_bf16_to_f32_array(out, $0.baseAddress!.assumingMemoryBound(to: UInt16.self) + at, Int64(n))
            }
        default:
            let blocks = StateSegments(layout: layout, range: range)
            let scales = try f.entry(name + ".scale")
            guard f.metadata["state_block"] == "\(StateSegments.block)", scales.dtype == .f32,
                scales.count == blocks.scaleCount
            else {
                throw QTrainError(
                    .checkpoint, "\(name).scale in \(f.url.path) does not match its 8-bit blocks", hint: damaged)
            }
            let (s, first) = blocks.locate(at)
            try f.withBytes(name) { codes in
                try f.withBytes(name + ".scale") { sc in
                    qk_state8_decode(
                        out, codes.baseAddress!.assumingMemoryBound(to: UInt8.self) + at,
                        sc.baseAddress!.assumingMemoryBound(to: Float.self) + s, Int64(n), Int64(first),
                        name == "m" ? 1 : 0)
                }
            }
        }
    }
}
