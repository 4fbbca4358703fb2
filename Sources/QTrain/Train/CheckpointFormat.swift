import Foundation

/// The tensors of a checkpoint (DESIGN.md, Formats): `model.safetensors` holds every
/// parameter as stored — packed codes as U8 with their shape, bits and packing in the
/// metadata and the scale as `<name>.scale` (F32), FP32 tensors as F32, BF16 latent weights
/// as BF16 — and `optimizer*.safetensors` the AdamW moments of a range of the flat layout.
public enum CheckpointFormat {
    public static let version = 1

    /// The packing name written to the metadata.
    static func packing(_ grid: QuantGrid) -> String { grid.bits == 0 ? "ternary-base3-5-per-byte" : "lsb-bitstream" }

    public static func modelWriter(_ w: ModelWeights) -> SafetensorsWriter {
        var out = SafetensorsWriter()
        out.metadata["qtrain.format"] = "\(version)"
        out.metadata["qtrain.quant_mode"] = w.quant.mode.rawValue
        for spec in w.layout.specs {
            if let q = w.quantized[spec.index] {
                out.tensors.append(.init(name: spec.name, dtype: .u8, shape: [q.packed.count], pointer: q.packed.pointer))
                out.tensors.append(.init(name: spec.name + ".scale", dtype: .f32, shape: [1], values: [q.scale]))
                out.metadata[spec.name + ".shape"] = spec.shape.map(String.init).joined(separator: ",")
                out.metadata[spec.name + ".bits"] = q.grid.bits == 0 ? "1.58" : "\(q.grid.bits)"
                out.metadata[spec.name + ".packing"] = packing(q.grid)
            } else if w.latent16Offset[spec.index] != nil {
                out.tensors.append(.init(name: spec.name, dtype: .bf16, shape: spec.shape, pointer: w.latent16Pointer(spec.index)))
            } else {
                out.tensors.append(.init(name: spec.name, dtype: .f32, shape: spec.shape, pointer: w.densePointer(spec.index)))
            }
        }
        return out
    }

    /// Reads every parameter of `w` from `file`, checking that each is stored the way `w` stores it.
    public static func loadModel(_ w: ModelWeights, from file: SafetensorsFile) throws {
        let path = file.url.path
        for spec in w.layout.specs {
            let e = try file.entry(spec.name)
            if let q = w.quantized[spec.index] {
                let bits = q.grid.bits == 0 ? "1.58" : "\(q.grid.bits)"
                guard e.dtype == .u8, e.count == q.packed.count, file.metadata[spec.name + ".bits"] == bits,
                      file.metadata[spec.name + ".packing"] == packing(q.grid)
                else {
                    throw QTrainError(.checkpoint, "\(spec.name) in \(path) is not stored as \(q.grid) codes like this run's (\(e.dtype.rawValue), bits \(file.metadata[spec.name + ".bits"] ?? "none"))",
                                      hint: "resume with the quant settings the checkpoint was trained with")
                }
                try file.withBytes(spec.name) { q.packed.pointer.update(from: $0.bindMemory(to: UInt8.self).baseAddress!, count: q.packed.count) }
                q.scale = try file.floats(spec.name + ".scale")[0]
            } else if w.latent16Offset[spec.index] != nil {
                guard e.dtype == .bf16, e.shape == spec.shape else { throw mismatch(spec, e, path) }
                try file.withBytes(spec.name) { raw in
                    UnsafeMutableRawPointer(w.latent16Pointer(spec.index)).copyMemory(from: raw.baseAddress!, byteCount: spec.count * 2)
                }
            } else {
                guard e.dtype == .f32, e.shape == spec.shape else { throw mismatch(spec, e, path) }
                try file.withBytes(spec.name) { raw in
                    UnsafeMutableRawPointer(w.densePointer(spec.index)).copyMemory(from: raw.baseAddress!, byteCount: spec.count * 4)
                }
            }
        }
        w.refreshDerivedState()
    }

    static func mismatch(_ spec: ParameterSpec, _ e: SafetensorsFile.Entry, _ path: String) -> QTrainError {
        QTrainError(.checkpoint, "\(spec.name) in \(path) is \(e.dtype.rawValue) \(e.shape), this run expects \(spec.shape)",
                    hint: "resume with the model and quant settings the checkpoint was trained with")
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
            }
            covered += b - a
        }
        guard covered == o.range.count else {
            throw QTrainError(.checkpoint, "the optimizer files cover \(covered) of this rank's \(o.range.count) values",
                              hint: "a file of the checkpoint is missing; use an older checkpoint")
        }
    }
}
