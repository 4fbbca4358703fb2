import QKernels
import QTrainCore

/// Where each tensor's part of an optimizer range lies in the moment buffers.
///
/// 8-bit moments keep one scale per block of ``block`` elements *of a tensor* (blocks start at
/// tensor-local multiples of the block size), so a block means the same values whichever way
/// ZeRO-1 splits the layout; a range that starts or ends inside a block holds that block's part
/// with a scale of its own.
public struct StateSegments: Sendable {
    /// Elements per 8-bit block.
    public static let block = Int(QK_STATE8_BLOCK)

    public struct Segment: Sendable {
        /// Tensor id (index in the layout).
        public let tensor: Int
        /// Position of the segment's first element in the moment buffers.
        public let stateOffset: Int
        /// Its first element, local to the tensor.
        public let first: Int
        public let count: Int
        /// Index of its first block's scale.
        public let scaleBase: Int

        /// Blocks the segment touches.
        public var scaleCount: Int {
            count == 0 ? 0 : (first + count - 1) / StateSegments.block - first / StateSegments.block + 1
        }
    }

    public let segments: [Segment]
    /// Scales of all segments.
    public let scaleCount: Int

    public init(layout: ParameterLayout, range: Range<Int>) {
        var out: [Segment] = []
        var scales = 0
        for spec in layout.specs {
            let lo = max(spec.offset, range.lowerBound), hi = min(spec.offset + spec.count, range.upperBound)
            guard lo < hi else { continue }
            let s = Segment(
                tensor: spec.index, stateOffset: lo - range.lowerBound, first: lo - spec.offset, count: hi - lo,
                scaleBase: scales)
            scales += s.scaleCount
            out.append(s)
        }
        segments = out
        scaleCount = scales
    }

    /// The segment holding state element `offset`.
    public func segment(containing offset: Int) -> Segment {
        var lo = 0, hi = segments.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if segments[mid].stateOffset <= offset { lo = mid } else { hi = mid - 1 }
        }
        return segments[lo]
    }

    /// The scale index of state element `offset`, and its element index within its tensor.
    public func locate(_ offset: Int) -> (scale: Int, element: Int) {
        let s = segment(containing: offset)
        let e = s.first + offset - s.stateOffset
        return (s.scaleBase + e / Self.block - s.first / Self.block, e)
    }
}
