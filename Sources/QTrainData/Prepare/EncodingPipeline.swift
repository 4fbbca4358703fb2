import Foundation
import QTrainCore

/// Documents in, token ids out, in the order they went in: worker threads each encode whole
/// batches with their own ``DocumentEncoder``; the caller hands in batches and takes results
/// back in order, so the output is the same for any number of threads. At most `inFlight`
/// batches are between the two at any time, which bounds the memory whatever the corpus size.
final class EncodingPipeline: @unchecked Sendable {
    /// Documents read in a row, each marked for the validation split or not.
    struct Batch {
        var sequence = 0
        var documents: [SourceDocument] = []
        var validation: [Bool] = []
        var bytes = 0
    }

    /// One batch encoded: the tokens of its training and validation documents (each ended by
    /// end-of-text unless it continues).
    struct Encoded {
        var train: [Int32] = []
        var validation: [Int32] = []
        var bytes = 0
        var trainDocuments = 0, validationDocuments = 0
    }

    let threads: Int
    let inFlight: Int
    private let condition = NSCondition()
    private var queue: [Batch] = []
    private var queueHead = 0
    private var results: [Int: Encoded] = [:]
    private var submitted = 0, taken = 0
    private var closed = false
    private var workers: [Thread] = []
    private var running = 0

    init(tokenizer: any Tokenizer, threads: Int, inFlight: Int) {
        self.threads = max(1, threads)
        self.inFlight = max(inFlight, 2 * self.threads)
        let endOfText = tokenizer.endOfText
        for _ in 0..<self.threads {
            let encoder = tokenizer.makeDocumentEncoder()
            let thread = Thread { [unowned self] in self.work(encoder, endOfText: endOfText) }
            thread.stackSize = 8 << 20
            workers.append(thread)
        }
        running = self.threads
        for w in workers { w.start() }
    }

    deinit { close() }

    /// Whether another batch may go in without exceeding the bound.
    var hasRoom: Bool {
        condition.lock()
        defer { condition.unlock() }
        return submitted - taken < inFlight
    }

    /// Hands in a batch (the caller keeps within the bound by taking results).
    func submit(_ batch: Batch) {
        condition.lock()
        var b = batch
        b.sequence = submitted
        submitted += 1
        queue.append(b)
        condition.broadcast()
        condition.unlock()
    }

    /// The next batch's result in order; waits for it when `wait`, else nil if it is not ready.
    /// Nil when every submitted batch has been taken.
    func next(wait: Bool) -> Encoded? {
        condition.lock()
        defer { condition.unlock() }
        while taken < submitted {
            if let r = results.removeValue(forKey: taken) {
                taken += 1
                condition.broadcast()
                return r
            }
            guard wait else { return nil }
            condition.wait()
        }
        return nil
    }

    /// Stops the workers once the queue is empty.
    func close() {
        condition.lock()
        closed = true
        condition.broadcast()
        while running > 0 { condition.wait() }
        condition.unlock()
    }

    private func work(_ encoder: any DocumentEncoder, endOfText: Int32) {
        var text: [UInt8] = []
        while true {
            condition.lock()
            while queueHead == queue.count && !closed { condition.wait() }
            if queueHead == queue.count {
                running -= 1
                condition.broadcast()
                condition.unlock()
                return
            }
            let batch = queue[queueHead]
            queueHead += 1
            if queueHead > 64 && queueHead * 2 > queue.count {
                queue.removeFirst(queueHead)
                queueHead = 0
            }
            condition.unlock()

            var out = Encoded()
            out.train.reserveCapacity(batch.bytes / 3)
            for (k, document) in batch.documents.enumerated() {
                out.bytes += document.bytes.count
                if !document.continues {
                    if batch.validation[k] { out.validationDocuments += 1 } else { out.trainDocuments += 1 }
                }
                normalizeLineEnds(document.bytes, into: &text)
                if batch.validation[k] {
                    text.withUnsafeBufferPointer { encoder.encode(utf8: $0, appendingTo: &out.validation) }
                    if !document.continues { out.validation.append(endOfText) }
                } else {
                    text.withUnsafeBufferPointer { encoder.encode(utf8: $0, appendingTo: &out.train) }
                    if !document.continues { out.train.append(endOfText) }
                }
            }
            condition.lock()
            results[batch.sequence] = out
            condition.broadcast()
            condition.unlock()
        }
    }
}

/// `bytes` with every `\r\n` made `\n` (as ``Document/normalizedText(_:)`` reads text files).
func normalizeLineEnds(_ bytes: [UInt8], into out: inout [UInt8]) {
    out.removeAll(keepingCapacity: true)
    guard bytes.contains(0x0D) else {
        out += bytes
        return
    }
    out.reserveCapacity(bytes.count)
    var i = 0
    while i < bytes.count {
        if bytes[i] == 0x0D && i + 1 < bytes.count && bytes[i + 1] == 0x0A {
            i += 1
            continue
        }
        out.append(bytes[i])
        i += 1
    }
}
