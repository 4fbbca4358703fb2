import Foundation
import XCTest

@testable import QTrainCore
@testable import QTrainDist

/// The in-process communicator behind `--debug --ranks N`, hammered from N threads: every
/// collective returns the right values on every rank, many thousand times in a row (ranks
/// once raced on the group's shared arrays and crashed one run in ten under load).
final class InProcessGroupTests: XCTestCase {
    /// After one rank fails, the others' collectives throw a typed echo carrying its reason,
    /// which the runner of the ranks tells apart from a root cause.
    func testAFailedRankIsEchoedAsAPeerFailure() throws {
        let group = InProcessGroup(size: 2)
        group.abort("rank 1: out of data")
        var values = [1.0]
        XCTAssertThrowsError(try group.communicator(rank: 0).allReduceSum(&values)) { error in
            let echo = error as? PeerRankFailure
            XCTAssertEqual(echo?.reason, "rank 1: out of data", "\(error)")
            XCTAssertEqual(echo?.description, "another in-process rank failed: rank 1: out of data")
        }
    }

    func testCollectivesFromManyThreadsAgree() throws {
        let n = 4, rounds = 3000
        let group = InProcessGroup(size: n)
        let failures = Failures()
        let done = DispatchGroup()
        for r in 0..<n {
            done.enter()
            Thread {
                defer { done.leave() }
                let comm = group.communicator(rank: r)
                var buffer = [Float](repeating: 0, count: 64)
                do {
                    for k in 0..<rounds {
                        var v = [Double(r + k), Double(-r)]
                        try comm.allReduceMax(&v)
                        var s = [Double(r), 1]
                        try comm.allReduceSum(&s)
                        let all = try comm.allGather(UInt64(r * rounds + k))
                        for i in 0..<buffer.count { buffer[i] = Float(r + 1) }
                        try buffer.withUnsafeMutableBufferPointer {
                            try comm.allReduceSum($0.baseAddress!, count: $0.count)
                        }
                        guard v == [Double(n - 1 + k), 0], s == [Double(n * (n - 1) / 2), Double(n)],
                            all == (0..<n).map({ UInt64($0 * rounds + k) }),
                            buffer.allSatisfy({ $0 == Float(n * (n + 1) / 2) })
                        else { throw QTrainError(.distributed, "rank \(r) round \(k): \(v) \(s) \(all)") }
                    }
                } catch {
                    group.abort("\(error)")
                    failures.add("\(error)")
                }
            }.start()
        }
        XCTAssertEqual(done.wait(timeout: .now() + 120), .success, "the ranks did not finish")
        XCTAssertEqual(failures.all, [])
    }
}

/// Messages collected from several threads.
private final class Failures: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [String] = []

    func add(_ s: String) {
        lock.lock()
        list.append(s)
        lock.unlock()
    }

    var all: [String] {
        lock.lock()
        defer { lock.unlock() }
        return list
    }
}
