/// How a run is supervised, beyond its config: debug checks and test aids.
public struct TrainerOptions: Sendable {
    /// Debug mode: NaN/Inf checks of every layer's output and input gradient, per-block
    /// gradient norms in the log, replica comparison after every step.
    public var debug = false
    /// Test aid: after the update of step `step` (1-based), rank `rank` changes one of its
    /// weights, so that the next replica comparison must fail.
    public var injectDesync: (rank: Int, step: Int)?
    /// Stop (with a checkpoint) once this step is done, as if the scheduler had asked: for
    /// splitting a run across jobs. The schedule still runs to `train.steps`.
    public var stopAt: Int?

    public init(debug: Bool = false, injectDesync: (rank: Int, step: Int)? = nil, stopAt: Int? = nil) {
        self.debug = debug
        self.injectDesync = injectDesync
        self.stopAt = stopAt
    }
}
