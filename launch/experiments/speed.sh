#!/usr/bin/env bash
# The compute paths' speed (README "Low-precision compute"): `bench --profile` of the 130M shape
# (B=4, T=256, one micro-batch) and of paper-m (B=16, T=256), ternary DQT, on each compute path,
# with an older build beside this one: the runs alternate (round 1: every path and binary, then
# round 2, …) so that both binaries see the same machine. Each run's JSON record and profile go to
# docs/results/speed/ as it finishes; table.md collects the best step of each (the machine is shared:
# a neighbour can halve a run's speed, which its measured SGEMM peak shows) with the median.
#
#   launch/experiments/speed.sh [ROUNDS]                 # default 3
#   QTRAIN_BASE=path/to/older/qtrain-dist launch/experiments/speed.sh   # adds the older build's int8-bf16 and int8
#   QTRAIN_BIN=path/to/qtrain-dist launch/experiments/speed.sh          # a binary already built
#
# About 25 minutes for 3 rounds on 2 cores. Resumable: a published run is skipped. Needs
# nothing else running on the machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}
bin=${QTRAIN_BIN:-}
if [ -z "$bin" ]; then
    swift build -c release --product qtrain-dist
    bin=$PWD/.build/release/qtrain-dist
fi
base=${QTRAIN_BASE:-}
out=docs/results/speed
mkdir -p "$out"
declare -A shapes=(
    [130m]="--config configs/130m.yaml --set model.seq_len=256 --set train.grad_accum=1"
    [paper-m]="--config configs/paper-m.yaml"
)
# build:quant.mode:quant.compute
new_runs=(new:dqt:int8-bf16 new:dqt:int8 new:dqt:int8-int8 new:dqt:int8-int8bf16 new:fp32:fp32 new:fp32:bf16)
old_runs=(old:dqt:int8-bf16 old:dqt:int8)
for round in $(seq 1 "$rounds"); do
    for shape in 130m paper-m; do
        runs=("${new_runs[@]}")
        [ -z "$base" ] || runs+=("${old_runs[@]}")
        for run in "${runs[@]}"; do
            IFS=: read -r which mode path <<< "$run"
            file=$out/$shape-$which-$mode-$path-r$round.txt
            [ -s "$file" ] && continue
            exe=$bin
            [ "$which" = old ] && exe=$base
            # shellcheck disable=SC2086
            "$exe" bench ${shapes[$shape]} --set quant.mode="$mode" --set quant.compute="$path" --steps 3 --warmup 1 \
                --profile --json > "$file.partial"
            mv "$file.partial" "$file"
            echo "$shape $which $mode $path round $round: $(grep -m1 -E '^  step [0-9.]+ s \|' "$file")"
        done
    done
done
python3 - "$out" <<'PY' > "$out/table.md"
import glob, json, os, statistics, sys
out = sys.argv[1]
rows = {}
for f in sorted(glob.glob(os.path.join(out, "*-r*.txt"))):
    name = os.path.basename(f).rsplit("-r", 1)[0]
    rec = json.loads(open(f).read().strip().splitlines()[-1])
    rows.setdefault(name, []).append(rec)
print("| shape | build | quant.mode | compute | step s: best (median, worst) | tokens/s at best | path MFU (median) | forward / backward path MFU | optimizer s |")
print("|---|---|---|---|---|---|---|---|---|")
for name, recs in sorted(rows.items()):
    shape = "paper-m" if name.startswith("paper-m-") else name.split("-")[0]
    which, mode, path = name[len(shape) + 1:].split("-", 2)
    med = lambda k: statistics.median(r[k] for r in recs)
    steps = [r["step_s"] for r in recs]
    ph = lambda k: statistics.median(r.get("phase_path_mfu", {}).get(k, float("nan")) for r in recs)
    opt = statistics.median(r["phases"].get("optimizer", 0) for r in recs)
    best = max(r["tokens_per_s"] for r in recs)
    print(f"| {shape} | {which} | {mode} | {path} | {min(steps):.3f} ({med('step_s'):.3f}, {max(steps):.3f}) | "
          f"{best:.0f} | {med('path_mfu'):.3f} | {ph('forward'):.2f} / {ph('backward'):.2f} | {opt:.3f} |")
PY
cat "$out/table.md"
