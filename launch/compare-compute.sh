#!/usr/bin/env bash
# Training quality of the compute paths: configs/small.yaml on sotu (same seed, same tokens):
# dqt ternary and dqt 8-bit with quant.compute fp32, int8-bf16, int8-int8 and int8-int8bf16;
# the unquantised model (quant.mode fp32) with fp32 and bf16 compute. Resumable: a finished run
# is skipped and an interrupted one resumes from its last checkpoint; the final validation
# losses go to docs/compute-quality.md and the curves to docs/compute-quality.svg. Extra
# arguments go to every run (e.g. --set train.steps=300).
source "$(dirname "$0")/comparison-common.sh"
declare -A modes=(
    [ternary]="--set quant.mode=dqt --set quant.bits=1.58"
    [8bit]="--set quant.mode=dqt --set quant.bits=8"
    [fp32]="--set quant.mode=fp32"
)
computes=(fp32 int8-bf16 int8-int8 int8-int8bf16)
runs=()
for mode in ternary 8bit; do
    for compute in "${computes[@]}"; do
        runs+=("runs/compute-$mode-$compute")
        # shellcheck disable=SC2086
        train_once "runs/compute-$mode-$compute" ${modes[$mode]} --set quant.compute=$compute "$@"
    done
done
for compute in fp32 bf16; do
    runs+=("runs/compute-fp32-$compute")
    # shellcheck disable=SC2086
    train_once "runs/compute-fp32-$compute" ${modes[fp32]} --set quant.compute=$compute "$@"
done
{
    echo "| mode | fp32 compute | int8-bf16 | vs fp32 | int8-int8 (int8 dX) | vs int8-bf16 | int8-int8bf16 | vs int8-bf16 |"
    echo "|---|---|---|---|---|---|---|---|"
    for mode in ternary 8bit; do
        python3 - "$mode" $(for c in "${computes[@]}"; do final "runs/compute-$mode-$c"; done) <<'PY'
import sys
mode, (fp32, bf16, i8, i8b) = sys.argv[1], map(float, sys.argv[2:6])
rel = lambda b, a: f"{100 * (b - a) / a:+.2f}%"
print(f"| dqt {mode} | {fp32:.4f} | {bf16:.4f} | {rel(bf16, fp32)} | {i8:.4f} | {rel(i8, bf16)} | {i8b:.4f} | {rel(i8b, bf16)} |")
PY
    done
    echo
    echo "| unquantised (quant.mode fp32) | fp32 compute | bf16 compute | relative difference |"
    echo "|---|---|---|---|"
    python3 - $(final runs/compute-fp32-fp32) $(final runs/compute-fp32-bf16) <<'PY'
import sys
a, b = map(float, sys.argv[1:3])
print(f"| small | {a:.4f} | {b:.4f} | {100 * (b - a) / a:+.2f}% |")
PY
} > docs/compute-quality.md
cat docs/compute-quality.md
"$bin" report "${runs[@]}" --panels loss --out docs/compute-quality.svg --title "configs/small.yaml on sotu: the compute paths"
