#!/usr/bin/env bash
# The test suite's single-process part under a sanitiser, in a debug build kept apart from
# .build (MPI launches, the 130M benchmarks and the Slurm test are left out: they fork
# uninstrumented launchers or take too long unoptimised).
#
#   ./launch/sanitize.sh address    # AddressSanitizer (also catches leaks at exit off: Swift runtime caches)
#   ./launch/sanitize.sh thread     # ThreadSanitizer
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-address}
case "$kind" in address|thread) ;; *) echo "usage: $0 address|thread" >&2; exit 2 ;; esac
./launch/setup.sh >/dev/null
suites="KernelTests|QuantTests|GradientCheckTests|ConfigTests|DataTests|BPETests|OptimizerStateTests|SeamTests|Int8ComputeTests|BF16BackwardTests|InProcessGroupTests|ReferenceFixtureTests|HardeningTests/test(ShardCount|TokenizerWith|OutOfRange|StateAndMoments|Metrics|TernaryWeights|Oversized)"
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1
export TSAN_OPTIONS=halt_on_error=1
swift test --scratch-path ".build-$kind" --sanitize "$kind" --disable-swift-testing --filter "$suites"
