import XCTest

@testable import QTrainTraining

/// `metrics.jsonl` has one record type: what training writes is what report and TensorBoard read.
final class MetricsRecordTests: XCTestCase {
    func testRecordsRoundTripIncludingADivergedLoss() throws {
        let url = temporaryDirectory(self).appendingPathComponent("metrics.jsonl")
        let writer = try MetricsWriter(url: url, append: false, enabled: true)
        var a = MetricsRecord(step: 10)
        a.loss = 3.25
        a.lr = 5e-4
        a.rssBytes = 123_456_789
        a.codeChangeByRole = ["mlp": 0.01, "head": 0.002]
        var b = MetricsRecord(step: 20)
        b.loss = .nan
        b.gradNorm = .infinity
        b.valLoss = 4.5
        writer.write(a)
        writer.write(b)
        let lines = try String(contentsOf: url, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 2, "a diverged step still leaves its line")
        XCTAssertTrue(lines[1].contains("\"loss\":\"NaN\""), String(lines[1]))
        XCTAssertTrue(lines[0].contains("\"code_change_by_role\":{\"head\":0.002,\"mlp\":0.01}"), String(lines[0]))
        let read = try MetricsRecord.read(url)
        XCTAssertEqual(read.first, a)
        XCTAssertEqual(read.last?.step, 20)
        XCTAssertTrue(read.last?.loss?.isNaN == true)
        XCTAssertEqual(read.last?.gradNorm, .infinity)
        XCTAssertEqual(
            Set(read[0].scalars.map(\.0)),
            ["loss", "lr", "rss_bytes", "code_change_by_role/mlp", "code_change_by_role/head"])
    }

    /// Lines written before the record was typed (integers where a number was whole) still read,
    /// and a torn last line is skipped.
    func testEarlierLinesReadAndATornLineIsSkipped() throws {
        let url = temporaryDirectory(self).appendingPathComponent("metrics.jsonl")
        try """
        {"step":0,"val_loss":5}
        {"comm_wait_share":0.1,"elapsed_s":1.5,"grad_norm":1,"loss":4.75,"lr":0.0005,"rss_bytes":1000,"step":10,"step_s":0.2,"tokens_per_s":900}
        {"step":20,"loss":4.
        """.write(to: url, atomically: true, encoding: .utf8)
        let read = try MetricsRecord.read(url)
        XCTAssertEqual(read.map(\.step), [0, 10])
        XCTAssertEqual(read[0].valLoss, 5)
        XCTAssertEqual(read[1].gradNorm, 1)
        XCTAssertEqual(read[1].commWaitShare, 0.1)
        XCTAssertEqual(read[1].tokensPerS, 900)
    }
}
