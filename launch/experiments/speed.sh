#!/usr/bin/env bash
# The compute paths' speed (README "Low-precision compute"): `bench --profile` of the 130M shape
# (B=4, T=256, one micro-batch) and of paper-m (B=16, T=256), ternary DQT, on each compute path,
# with an older build beside this one: the runs alternate (round 1: every path and binary, then
# round 2, …) so that both binaries see the same machine. Each run's JSON record and profile go to
# docs/results/speed/ as it finishes; table.md collects the medians.
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
new_paths=(int8-bf16 int8 int8-int8 int8-int8bf16)
old_paths=(int8-bf16 int8)
for round in $(seq 1 "$rounds"); do
    for shape in 130m paper-m; do
        runs=()
        for p in "${new_paths[@]}"; do runs+=("new:$p"); done
        if [ -n "$base" ]; then for p in "${old_paths[@]}"; do runs+=("old:$p"); done; fi
        for run in "${runs[@]}"; do
            which=${run%%:*} path=${run#*:}
            file=$out/$shape-$which-$path-r$round.txt
            [ -s "$file" ] && continue
            exe=$bin
            [ "$which" = old ] && exe=$base
            # shellcheck disable=SC2086
            "$exe" bench ${shapes[$shape]} --set quant.mode=dqt --set quant.compute="$path" --steps 3 --warmup 1 \
                --profile --json > "$file.partial"
            mv "$file.partial" "$file"
            echo "$shape $which $path round $round: $(grep -m1 '  step ' "$file")"
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
print("| shape | build | compute | step s (median, range) | tokens/s | path MFU | forward / backward path MFU | optimizer s |")
print("|---|---|---|---|---|---|---|---|")
for name, recs in sorted(rows.items()):
    shape, which, path = name.split("-", 1)[0], None, None
    parts = name.split("-")
    shape = parts[0] if parts[0] != "paper" else "paper-m"
    rest = name[len(shape) + 1:]
    which, path = rest.split("-", 1)
    med = lambda k: statistics.median(r[k] for r in recs)
    steps = [r["step_s"] for r in recs]
    ph = lambda k: statistics.median(r.get("phase_path_mfu", {}).get(k, float("nan")) for r in recs)
    opt = statistics.median(r["phases"].get("optimizer", 0) for r in recs)
    print(f"| {shape} | {which} | {path} | {med('step_s'):.3f} ({min(steps):.3f}–{max(steps):.3f}) | "
          f"{med('tokens_per_s'):.0f} | {med('path_mfu'):.3f} | {ph('forward'):.2f} / {ph('backward'):.2f} | {opt:.3f} |")
PY
cat "$out/table.md"
