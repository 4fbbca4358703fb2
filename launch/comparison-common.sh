# Sourced by the launch/compare-*.sh scripts: builds the release binary, prepares the byte-level
# sotu data, and defines train_once (a resumable run) and final (a run's last validation loss).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# QTRAIN_BIN=path/to/qtrain-dist uses a binary already built.
bin=${QTRAIN_BIN:-}
if [ -z "$bin" ]; then
    swift build -c release
    bin=.build/release/qtrain-dist
fi
[ -f data/sotu/train_000.bin ] || "$bin" prepare --corpus sotu --out data/sotu

# train_once OUT ARGS...: trains configs/small.yaml into OUT unless OUT/done exists (an
# interrupted run resumes from its last checkpoint), then marks it done.
train_once() {
    local out=$1
    shift
    [ -f "$out/done" ] && return 0
    "$bin" train --config configs/small.yaml "$@" --set train.out_dir="$out" --set log.progress=lines
    touch "$out/done"
}

# final RUN: the last validation loss in RUN/metrics.jsonl.
final() { python3 -c 'import json,sys; v=[json.loads(l).get("val_loss") for l in open(sys.argv[1])]; print([x for x in v if x is not None][-1])' "$1/metrics.jsonl"; }
