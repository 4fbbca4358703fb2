import Foundation

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
        for (name, moment) in [("m", o.m), ("v", o.v)] {
            out.tensors.append(.init(name: name, dtype: moment.dtype == .fp32 ? .f32 : .bf16, shape: [moment.count],
                                     pointer: moment.rawPointer))
        }
        return out
    }

    /// Fills `o`'s range from whichever files cover it (their ranges may split the layout
    /// differently: another world size, or a switch to or from ZeRO-1; the moments may be
    /// stored as F32 or BF16, converted to `optim.state_dtype`).
    public static func loadOptimizer(_ o: Optimizer, from files: [SafetensorsFile]) throws {
        var covered = 0
        for f in files {
            guard let lo = f.metadata["range_start"].flatMap(Int.init), let hi = f.metadata["range_end"].flatMap(Int.init),
                  let step = f.metadata["step"].flatMap(Int.init)
            else { throw QTrainError(.checkpoint, "\(f.url.path) lacks its range metadata", hint: "the file is damaged; use an older checkpoint") }
            o.step = step
            let a = max(lo, o.range.lowerBound), b = min(hi, o.range.upperBound)
            guard a < b else { continue }
            for (name, moment) in [("m", o.m), ("v", o.v)] {
                let e = try f.entry(name)
                let stored: StateType? = e.dtype == .f32 ? .fp32 : e.dtype == .bf16 ? .bf16 : nil
                guard let stored, e.count == hi - lo else {
                    throw QTrainError(.checkpoint, "\(name) in \(f.url.path) holds \(e.count) \(e.dtype.rawValue) values for range \(lo)..<\(hi)",
                                      hint: "the file is damaged; use an older checkpoint")
                }
                try f.withBytes(name) { raw in
                    moment.assign(from: raw.baseAddress! + (a - lo) * stored.size, as: stored, count: b - a, at: a - o.range.lowerBound)
                }
                for i in (a - o.range.lowerBound)..<(b - o.range.lowerBound) where !moment[i].isFinite || (name == "v" && moment[i] < 0) {
                    throw QTrainError(.checkpoint, "\(name) in \(f.url.path) holds \(moment[i]) at element \(i + o.range.lowerBound - lo)",
                                      hint: "the file is damaged; use an older checkpoint")
                }
            }
            covered += b - a
        }
        guard covered == o.range.count else {
            throw QTrainError(.checkpoint, "the optimizer files cover \(covered) of this rank's \(o.range.count) values",
                              hint: "a file of the checkpoint is missing; use an older checkpoint")
        }
    }
}
