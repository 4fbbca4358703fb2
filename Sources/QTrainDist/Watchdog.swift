import Foundation

/// Ends a data-parallel job that stopped making progress (`dist.timeout_s`), naming the ranks
/// that stopped answering, instead of leaving the others spinning in a collective forever.
///
/// Each rank's watchdog thread writes a heartbeat — its step, its phase, the time — to
/// `<out_dir>/.heartbeat/rank-NNNNN` every second, whatever the main thread is doing; a rank
/// that is stopped (SIGSTOP), or whose node died, goes silent. When the main thread has not
/// reported progress (``beat(step:phase:)``) for `timeout` seconds, the watchdog reads every
/// rank's heartbeat, prints one error naming the silent ones (or, if all are alive, the phase
/// each is in) and exits with status 5, which makes the launcher end the other ranks.
public final class Watchdog {
    let timeout: Double
    let rank: Int
    let world: Int
    let directory: URL
    private let lock = NSLock()
    private var lastProgress = Date()
    private var step = 0
    private var phase = "start-up"
    private var stopped = false
    private var thread: Thread?
    private var lastTick = Date()
    /// A heartbeat older than this (they come every second) means its rank is not running.
    static let silence = 3.0

    /// - Parameters: run: the run directory (shared by the ranks on a shared file system).
    public init(timeout: Double, rank: Int, world: Int, run: URL) {
        self.timeout = timeout
        self.rank = rank
        self.world = world
        directory = run.appendingPathComponent(".heartbeat")
    }

    /// Starts the thread; call once.
    public func start() {
        try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let t = Thread { [weak self] in
            while let self, self.tick() { Thread.sleep(forTimeInterval: 1) }
        }
        t.name = "qtrain watchdog"
        thread = t
        t.start()
    }

    /// Progress: the main thread is now in `phase` of step `step`.
    public func beat(step: Int, phase: String) {
        lock.lock()
        lastProgress = Date()
        self.step = step
        self.phase = phase
        lock.unlock()
    }

    public func stop() {
        lock.lock()
        stopped = true
        lock.unlock()
    }

    func file(_ r: Int) -> URL { directory.appendingPathComponent(String(format: "rank-%05d", r)) }

    /// One heartbeat; false once stopped. Exits the process when progress stalled.
    private func tick() -> Bool {
        lock.lock()
        let (quiet, step, phase, stopped) = (
            Date().timeIntervalSince(lastProgress), self.step, self.phase, self.stopped
        )
        lock.unlock()
        if stopped { return false }
        let now = Date().timeIntervalSince1970
        // A long gap since the last tick means this process itself was stopped (SIGSTOP) or
        // frozen: its own wait says nothing about the others, so it starts over.
        let frozen = Date().timeIntervalSince(lastTick)
        lastTick = Date()
        if frozen > Self.silence {
            FileHandle.standardError.write(
                Data(String(format: "warning: rank %d was stopped or frozen for %.0f s\n", rank, frozen).utf8))
            beat(step: step, phase: phase)
            return true
        }
        try? Data("\(step) \(now) \(phase)".utf8).write(to: file(rank), options: .atomic)
        if quiet >= timeout { expire(step: step, phase: phase, quiet: quiet, now: now) }
        return true
    }

    /// What the heartbeats say about the other ranks, then the exit.
    private func expire(step: Int, phase: String, quiet: Double, now: Double) -> Never {
        var silent: [String] = [], alive: [String] = [], unknown: [Int] = []
        for r in 0..<world where r != rank {
            guard let text = try? String(contentsOf: file(r), encoding: .utf8) else {
                unknown.append(r)
                continue
            }
            let parts = text.split(separator: " ", maxSplits: 2).map(String.init)
            let at = parts.count > 1 ? Double(parts[1]) ?? 0 : 0
            let where_ = parts.count > 2 ? "step \(parts[0]), \(parts[2])" : "unknown place"
            if now - at > Self.silence {
                silent.append(String(format: "rank %d (silent for %.0f s, last in %@)", r, now - at, where_))
            } else {
                alive.append("rank \(r) in \(where_)")
            }
        }
        var message = String(
            format: "error: rank %d: no progress for %.0f s in step %d (%@), past dist.timeout_s = %g", rank,
            quiet, step, phase, timeout)
        if !silent.isEmpty {
            message +=
                "; not answering: " + silent.joined(separator: ", ")
                + " — stopped, hung in the kernel or on a dead node"
        } else if !alive.isEmpty {
            message += "; every rank is alive (" + alive.joined(separator: ", ") + "): a collective is stuck"
        }
        if !unknown.isEmpty {
            message +=
                "; no heartbeat from rank\(unknown.count == 1 ? "" : "s") "
                + unknown.map(String.init).joined(separator: ", ") + " in \(directory.path) (not a shared file system?)"
        }
        message +=
            "; ending the job\n  hint: raise dist.timeout_s if steps, validations or checkpoints legitimately take longer\n"
        FileHandle.standardError.write(Data(message.utf8))
        _exit(5)
    }
}
