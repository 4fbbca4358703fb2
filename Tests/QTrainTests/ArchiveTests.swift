import Foundation
import XCTest

@testable import QTrainData

/// The archive reader against archives Python's zipfile and tarfile write: the members a
/// pattern selects, byte for byte, long names included; damaged archives end in one message.
final class ArchiveTests: XCTestCase {
    /// Member paths and contents: a long path (over tar's 100 bytes), UTF-8, an empty file,
    /// incompressible bytes (most of each archive, so that a byte changed in the middle lands in
    /// a selected member), and files the pattern must leave out.
    let members: [String: [UInt8]] = [
        "pkg-1.0/data/texts/a.txt": Array("first text\n".utf8),
        "pkg-1.0/data/texts/" + String(repeating: "long-name-", count: 12) + "b.txt": Array(
            "zweiter Text, ünïcödé\n".utf8),
        "pkg-1.0/data/texts/empty.txt": [],
        "pkg-1.0/data/texts/bin.txt": (0..<20000).map { UInt8(truncatingIfNeeded: ($0 &* 2_654_435_761) >> 13) },
        "pkg-1.0/data/other/c.txt": Array("not selected\n".utf8),
        "pkg-1.0/data/texts/d.md": Array("not selected either\n".utf8)
    ]
    let pattern = "pkg-1.0/data/texts/*.txt"

    func write(_ kind: String, to url: URL) throws {
        guard TestPython.path != nil else { throw XCTSkip("no Python") }
        let spec = try JSONSerialization.data(withJSONObject: members.mapValues { $0.map(Int.init) })
        let specURL = url.deletingLastPathComponent().appendingPathComponent("members.json")
        try spec.write(to: specURL)
        let script = """
            import sys, json, zipfile, tarfile, io
            kind, spec, out = sys.argv[1:4]
            members = json.load(open(spec))
            if kind == "zip":
                with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
                    for name, data in sorted(members.items()): z.writestr(name, bytes(data))
            else:
                fmt = tarfile.GNU_FORMAT if kind == "gnu" else tarfile.PAX_FORMAT
                with tarfile.open(out, "w:gz", format=fmt) as t:
                    t.addfile(tarfile.TarInfo("pkg-1.0/data"))  # a directory-less entry of size 0
                    for name, data in sorted(members.items()):
                        info = tarfile.TarInfo(name); info.size = len(data)
                        t.addfile(info, io.BytesIO(bytes(data)))
            """
        let r = try TestPython.run(script, [kind, specURL.path, url.path])
        XCTAssertEqual(r.status, 0, r.stderr)
    }

    func expected() -> [String: Data] {
        members.filter { ArchiveReader.matches($0.key, pattern) }.mapValues { Data($0) }
    }

    func testReadsWheelsAndSdistsLikePython() throws {
        let dir = temporaryDirectory(self)
        for (kind, name) in [
            ("zip", "pkg-1.0-py3-none-any.whl"), ("pax", "pkg-1.0.tar.gz"), ("gnu", "pkg-gnu-1.0.tar.gz")
        ] {
            let url = dir.appendingPathComponent(name)
            try write(kind, to: url)
            let got = try ArchiveReader.members(of: url, matching: pattern)
            XCTAssertEqual(got.count, 4, kind)
            XCTAssertEqual(Dictionary(uniqueKeysWithValues: got.map { ($0.path, $0.data) }), expected(), kind)
        }
    }

    func testExtractWritesBaseNames() throws {
        let dir = temporaryDirectory(self)
        let url = dir.appendingPathComponent("pkg-1.0.tar.gz")
        try write("pax", to: url)
        let out = dir.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        try CorpusFetcher.extract(url, members: pattern, into: out)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out.path).count, 4)
        XCTAssertEqual(try Data(contentsOf: out.appendingPathComponent("a.txt")), Data("first text\n".utf8))
    }

    func testDamagedArchivesAreNamedNotCrashedOn() throws {
        let dir = temporaryDirectory(self)
        for (kind, name) in [("zip", "pkg-1.0-py3-none-any.whl"), ("pax", "pkg-1.0.tar.gz")] {
            let url = dir.appendingPathComponent(name)
            try write(kind, to: url)
            let good = try Data(contentsOf: url)
            var variants: [(String, Data)] = [("truncated", good.prefix(good.count / 2)), ("empty", Data())]
            var flipped = good
            flipped[good.count / 2] ^= 0x5A
            variants.append(("one byte changed", flipped))
            for (what, bytes) in variants {
                try bytes.write(to: url)
                XCTAssertThrowsError(try ArchiveReader.members(of: url, matching: pattern), "\(kind) \(what)") {
                    error in
                    let text = "\(error)"
                    XCTAssertTrue(text.contains("cannot read archive") && text.contains(name), text)
                }
            }
        }
        // A changed byte anywhere in the deflate stream is refused (an earlier inflate could spin on one).
        let gz = dir.appendingPathComponent("pkg-1.0.tar.gz")
        try write("pax", to: gz)
        let good = try Data(contentsOf: gz)
        for k in 0..<60 {
            var bytes = good
            bytes[10 + k * (good.count - 20) / 60] ^= 0xA5
            try bytes.write(to: gz)
            do {
                _ = try ArchiveReader.members(of: gz, matching: pattern)
            } catch {
                XCTAssertTrue("\(error)".contains("cannot read archive"), "\(error)")
            }
        }
        let other = dir.appendingPathComponent("pkg.rar")
        try Data([1, 2, 3]).write(to: other)
        XCTAssertThrowsError(try ArchiveReader.members(of: other, matching: "*"))
    }
}
