import QKernels
import XCTest

@testable import QTrainCore
@testable import QTrainOptim

final class KernelTests: XCTestCase {
    /// Random123's published known-answer vectors for Philox4x32-10.
    func testPhiloxKnownAnswers() {
        let cases: [((UInt32, UInt32, UInt32, UInt32), (UInt32, UInt32), [UInt32])] = [
            ((0, 0, 0, 0), (0, 0), [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8]),
            (
                (0xffff_ffff, 0xffff_ffff, 0xffff_ffff, 0xffff_ffff), (0xffff_ffff, 0xffff_ffff),
                [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd]
            ),
            (
                (0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344), (0xa409_3822, 0x299f_31d0),
                [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1]
            )
        ]
        for (ctr, key, want) in cases {
            let r = Philox.block(counter: ctr, key: key)
            XCTAssertEqual([r.0, r.1, r.2, r.3], want)
        }
    }

    /// The vectorised bulk path gives exactly the scalar stream, for any start and length.
    func testUniformStreamMatchesScalarBlocks() {
        let stream = RandomStream(seed: 0x1234_5678_9abc, purpose: .stochasticRounding, tensor: 5, step: 77)
        for (start, n) in [(0, 100), (3, 61), (40, 4000), (1_000_001, 37)] {
            var out = [Float](repeating: -1, count: n)
            out.withUnsafeMutableBufferPointer { stream.uniforms(into: $0.baseAddress!, start: start, count: n) }
            for i in 0..<n {
                XCTAssertEqual(out[i], Float(stream.word(start + i) >> 8) * 0x1p-24, "element \(start + i)")
            }
        }
    }

    func testNormalInitialisationStatistics() {
        let stream = RandomStream(seed: 9, purpose: .initialisation, tensor: 1, step: 0)
        let n = 200_000
        var v = [Float](repeating: 0, count: n)
        v.withUnsafeMutableBufferPointer { stream.normals(into: $0.baseAddress!, start: 0, count: n, std: 0.02) }
        let mean = v.reduce(0.0) { $0 + Double($1) } / Double(n)
        let std = (v.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(n) - mean * mean).squareRoot()
        XCTAssertEqual(mean, 0, accuracy: 4 * 0.02 / Double(n).squareRoot())
        XCTAssertEqual(std, 0.02, accuracy: 0.0005)
        // Chunking does not change values.
        var part = [Float](repeating: 0, count: 100)
        part.withUnsafeMutableBufferPointer {
            stream.normals(into: $0.baseAddress!, start: 1234, count: 100, std: 0.02)
        }
        XCTAssertEqual(part, Array(v[1234..<1334]))
    }

    func testSHA256KnownAnswers() {
        XCTAssertEqual(SHA256.hex(Array("".utf8)), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(
            SHA256.hex(Array("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(
            SHA256.hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        // A million 'a's, fed in uneven pieces.
        var h = SHA256()
        let chunk = [UInt8](repeating: 0x61, count: 999)
        var left = 1_000_000
        while left > 0 {
            let n = min(left, chunk.count)
            h.update(data: chunk[0..<n])
            left -= n
        }
        XCTAssertEqual(h.finalize().hexString, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    func testGemmMatchesReferenceInEveryTransposeCase() {
        Threads.configure(2)
        var rng = TestRandom(11)
        let (m, n, k) = (37, 29, 53)
        let a = aligned(rng.values(m * k + k * m)), b = aligned(rng.values(k * n + n * k))
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let lda = ta ? m : k, ldb = tb ? k : n
            let c1 = aligned(rng.values(m * n)), c2 = aligned(doubles(c1.pointer, m * n))
            Gemm.multiply(
                transA: ta, transB: tb, m: m, n: n, k: k, alpha: 0.5, a: a.pointer, lda: lda, b: b.pointer, ldb: ldb,
                beta: 0.75, c: c1.pointer, ldc: n)
            ReferenceGemm.multiply(
                transA: ta, transB: tb, m: m, n: n, k: k, alpha: 0.5, a: a.pointer, lda: lda, b: b.pointer,
                ldb: ldb, beta: 0.75, c: c2.pointer, ldc: n)
            XCTAssertLessThan(
                relativeError(doubles(c1.pointer, m * n), doubles(c2.pointer, m * n)), 1e-5, "trans \(ta) \(tb)")
        }
    }

    func testLearningRateSchedule() {
        var c = OptimConfig()
        c.lr = 1e-3
        c.warmupSteps = 10
        c.minLRRatio = 0.1
        let s = LearningRateSchedule(c, totalSteps: 110)
        XCTAssertEqual(s(0), 1e-4, accuracy: 1e-12)
        XCTAssertEqual(s(9), 1e-3, accuracy: 1e-12)
        XCTAssertEqual(s(10), 1e-3, accuracy: 1e-12)
        XCTAssertEqual(s(60), 0.55e-3, accuracy: 1e-9)  // halfway through the cosine
        XCTAssertEqual(s(110), 1e-4, accuracy: 1e-12)
        XCTAssertGreaterThan(s(30), s(31))
        c.schedule = .constant
        XCTAssertEqual(LearningRateSchedule(c, totalSteps: 110)(100), 1e-3)
    }

    func testGradientNormIsIndependentOfThreadCount() {
        var rng = TestRandom(12)
        let g = aligned(rng.values(300_001))
        Threads.configure(1)
        let one = GradientClipping.norm(g.pointer, count: g.count)
        Threads.configure(2)
        let two = GradientClipping.norm(g.pointer, count: g.count)
        XCTAssertEqual(one, two)
        let exact = doubles(g.pointer, g.count).reduce(0) { $0 + $1 * $1 }.squareRoot()
        XCTAssertEqual(one, exact, accuracy: 1e-6 * exact)
        XCTAssertEqual(GradientClipping.factor(norm: 4, maxNorm: 1), Float(1 / (4 + 1e-6)), accuracy: 1e-7)
        XCTAssertEqual(GradientClipping.factor(norm: 0.5, maxNorm: 1), 1)
        XCTAssertEqual(GradientClipping.factor(norm: 4, maxNorm: 0), 1)
    }
}
