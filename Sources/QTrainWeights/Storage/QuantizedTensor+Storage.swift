import QKernels
import QTrainCore

/// Packed codes plus one scale as a parameter tensor's storage (DQT). The update is the fused
/// pass of PAPER.md: AdamW proposal on the grid of ``QuantizedTensor/scale``, stochastic
/// rounding onto the grid of ``QuantizedTensor/pendingScale`` when a scale rule moved it.
extension QuantizedTensor: TensorStorage {
    public var isQuantized: Bool { true }

    public func readValues(from start: Int, count n: Int, into out: UnsafeMutablePointer<Float>) {
        dequantize(into: out, from: start, count: n)
    }

    public func absSum() -> Double {
        var total = 0.0
        let chunk = 4000
        var tmp = [Float](repeating: 0, count: chunk)
        tmp.withUnsafeMutableBufferPointer { t in
            for start in stride(from: 0, to: count, by: chunk) {
                let n = Swift.min(chunk, count - start)
                dequantize(into: t.baseAddress!, from: start, count: n)
                total += qk_abs_sum(t.baseAddress!, Int64(n))
            }
        }
        return total
    }

    /// Absmean initialisation from the normal draws without a full FP32 copy: the draws are
    /// generated twice in chunks, once for the mean and once to quantise.
    public func initializeNormal(_ stream: RandomStream, std: Float) {
        let chunk = 1 << 16
        var tmp = [Float](repeating: 0, count: chunk)
        var absSum = 0.0
        for start in stride(from: 0, to: count, by: chunk) {
            let m = Swift.min(chunk, count - start)
            tmp.withUnsafeMutableBufferPointer {
                stream.normals(into: $0.baseAddress!, start: start, count: m, std: std)
                absSum += qk_abs_sum($0.baseAddress!, Int64(m))
            }
        }
        let mean = absSum / Double(count)
        scale = mean > 0 ? Float(Double(grid.qp) / mean) : 1
        let s = scale, lo = Float(grid.qn), hi = Float(grid.qp)
        var codes = [Int8](repeating: 0, count: chunk)
        for start in stride(from: 0, to: count, by: chunk) {
            let m = Swift.min(chunk, count - start)
            tmp.withUnsafeMutableBufferPointer { t in
                stream.normals(into: t.baseAddress!, start: start, count: m, std: std)
                for j in 0..<m { codes[j] = Int8(Swift.min(Swift.max((t[j] * s).rounded(.toNearestOrEven), lo), hi)) }
            }
            qk_pack_i8(packed.pointer, codes, Int32(grid.bits), Int32(grid.qn), Int64(start), Int64(m))
        }
    }

    public func load(_ values: UnsafePointer<Float>, scale rule: ImportScale) {
        switch rule {
        case .auto:
            load(values, scale: grid.bits >= 6 ? .absmax : grid.bits == 0 ? .absmean : .search)
        case .absmean: initialize(absmean: values)
        case .absmax: initialize(absmax: values)
        case .search: initialize(searched: values)
        }
    }

    /// Gains of 1: every code qp under scale qp.
    public func initializeOnes() {
        scale = Float(grid.qp)
        setCodes { _ in Int8(self.grid.qp) }
    }

    public func updateKernel(_ step: UpdateStep) -> UpdateKernel {
        let stream = RandomStream(seed: step.seed, purpose: .stochasticRounding, tensor: step.tensor, step: step.step)
        let key = [stream.key.0, stream.key.1]
        let (qn, qp, bits) = (Int32(grid.qn), Int32(grid.qp), Int32(grid.bits))
        let (scaleOld, scaleNew, codes) = (scale, pendingScale ?? scale, packed.pointer)
        return { e, n, g, m, v, p in
            // Kept in every build, -Ounchecked too.
            if e % 40 != 0 { fatalError("DQT update slices must start at a multiple of 40") }
            return Int(
                qk_dqt_update(
                    codes, bits, qn, qp, Int64(e), Int64(n), g, m, v, scaleOld, scaleNew,
                    &p, key, stream.c2, stream.c3))
        }
    }

    public var payload: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: packed.pointer, count: packed.count)
    }

    /// 40 codes are whole bytes in every packing, so a slice starting at a multiple of 40 starts on a byte.
    public func payloadBytes(of elements: Range<Int>) -> Range<Int> {
        let per40 = grid.packedBytes(40)
        let end = elements.upperBound == count ? packed.count : elements.upperBound / 40 * per40
        return (elements.lowerBound / 40 * per40)..<end
    }

    public func withSideState<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        var s = scale
        let r = try withUnsafeMutableBytes(of: &s) { try body($0) }
        scale = s
        return r
    }

    /// The codes as U8 bytes with their shape, bits and packing in the metadata; the scale as
    /// `<name>.scale` (F32).
    public func write(_ spec: ParameterSpec, to file: inout SafetensorsWriter) {
        file.tensors.append(.init(name: spec.name, dtype: .u8, shape: [packed.count], pointer: packed.pointer))
        file.tensors.append(.init(name: spec.name + ".scale", dtype: .f32, shape: [1], values: [scale]))
        file.metadata[spec.name + ".shape"] = spec.shape.map(String.init).joined(separator: ",")
        file.metadata[spec.name + ".bits"] = grid.bitsLabel
        file.metadata[spec.name + ".packing"] = grid.packingName
    }

    public func read(_ spec: ParameterSpec, from file: SafetensorsFile) throws {
        let e = try file.entry(spec.name)
        guard e.dtype == .u8, e.count == packed.count, file.metadata[spec.name + ".bits"] == grid.bitsLabel,
            file.metadata[spec.name + ".packing"] == grid.packingName
        else {
            throw QTrainError(
                .checkpoint,
                "\(spec.name) in \(file.url.path) is not stored as \(grid) codes like this run's (\(e.dtype.rawValue), bits \(file.metadata[spec.name + ".bits"] ?? "none"))",
                hint: "resume with the quant settings the checkpoint was trained with")
        }
        try file.withBytes(spec.name) { payload.copyMemory(from: $0) }
        // Base-3 bytes hold five codes only below 3^5 = 243; n-bit streams use every pattern.
        if grid.bits == 0,
            let bad = UnsafeBufferPointer(start: packed.pointer, count: packed.count).firstIndex(where: { $0 >= 243 })
        {
            throw QTrainError(
                .checkpoint,
                "\(spec.name) in \(file.url.path) holds byte \(packed.pointer[bad]) at offset \(bad), not a base-3 group of five ternary codes (bytes are below 243)",
                hint: "the file is damaged; use an older checkpoint")
        }
        let s = try file.floats(spec.name + ".scale")
        guard s.count == 1, s[0].isFinite, s[0] > 0 else {
            throw QTrainError(
                .checkpoint, "\(spec.name).scale in \(file.url.path) is \(s), not one finite positive number",
                hint: "the file is damaged; use an older checkpoint")
        }
        scale = s[0]
    }

    /// Moves the first code one step along the grid.
    public func perturb() {
        let all = codes()
        let c0 = Int(all[0])
        setCodes { $0 == 0 ? Int8(c0 == self.grid.qp ? self.grid.qn : c0 + 1) : all[$0] }
    }
}
