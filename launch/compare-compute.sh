#!/usr/bin/env bash
# Training quality of the compute paths: configs/small.yaml on sotu with quant.compute fp32
# and int8-bf16 (same seed, same tokens), dqt ternary and dqt 8-bit. Resumable: a finished
# run is skipped and an interrupted one resumes from its last checkpoint; the final
# validation losses go to docs/compute-quality.md and the curves to docs/compute-quality.svg.
# Extra arguments go to every run (e.g. --set train.steps=300).
source "$(dirname "$0")/comparison-common.sh"
declare -A modes=(
    [ternary]="--set quant.mode=dqt --set quant.bits=1.58"
    [8bit]="--set quant.mode=dqt --set quant.bits=8"
)
runs=()
for mode in ternary 8bit; do
    for compute in fp32 int8-bf16; do
        runs+=("runs/compute-$mode-$compute")
        # shellcheck disable=SC2086
        train_once "runs/compute-$mode-$compute" ${modes[$mode]} --set quant.compute=$compute "$@"
    done
done
{
    echo "| mode | fp32 compute | int8-bf16 compute | relative difference |"
    echo "|---|---|---|---|"
    for mode in ternary 8bit; do
        a=$(final "runs/compute-$mode-fp32"); b=$(final "runs/compute-$mode-int8-bf16")
        python3 -c "import sys; a,b=float(sys.argv[2]),float(sys.argv[3]); print(f'| dqt {sys.argv[1]} | {a:.4f} | {b:.4f} | {100*(b-a)/a:+.2f}% |')" "$mode" "$a" "$b"
    done
} > docs/compute-quality.md
cat docs/compute-quality.md
"$bin" report "${runs[@]}" --panels loss --out docs/compute-quality.svg --title "configs/small.yaml on sotu: fp32 vs int8-bf16 compute"
