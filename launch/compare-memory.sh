#!/usr/bin/env bash
# Training quality of the memory options (PAPER.md finding 3): configs/small.yaml on sotu, same
# seed and tokens, dqt ternary and dqt 8-bit, each with FP32 gradients and state (the
# reference), BF16 gradients, 8-bit AdamW state, and both. Resumable: a finished run is skipped
# and an interrupted one resumes from its last checkpoint; the final validation losses go to
# docs/memory-quality.md and the curves to docs/memory-quality.svg. Extra arguments go to
# every run (e.g. --set train.steps=300).
source "$(dirname "$0")/comparison-common.sh"
declare -A modes=(
    [ternary]="--set quant.mode=dqt --set quant.bits=1.58"
    [8bit]="--set quant.mode=dqt --set quant.bits=8"
)
declare -A options=(
    [fp32]=""
    [bf16-grad]="--set optim.grad_dtype=bf16"
    [int8-state]="--set optim.state_dtype=int8"
    [both]="--set optim.grad_dtype=bf16 --set optim.state_dtype=int8"
)
variants=(fp32 bf16-grad int8-state both)
runs=()
for mode in ternary 8bit; do
    for v in "${variants[@]}"; do
        runs+=("runs/memory-$mode-$v")
        # shellcheck disable=SC2086
        train_once "runs/memory-$mode-$v" ${modes[$mode]} ${options[$v]} "$@"
    done
done
{
    echo "| mode | FP32 gradients and state | BF16 gradients | 8-bit state | both |"
    echo "|---|---|---|---|---|"
    for mode in ternary 8bit; do
        ref=$(final "runs/memory-$mode-fp32")
        row="| dqt $mode | $(printf %.4f "$ref")"
        for v in bf16-grad int8-state both; do
            x=$(final "runs/memory-$mode-$v")
            row+=$(python3 -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print(f' | {b:.4f} ({100*(b-a)/a:+.2f}%)', end='')" "$ref" "$x")
        done
        echo "$row |"
    done
} > docs/memory-quality.md
cat docs/memory-quality.md
"$bin" report "${runs[@]}" --panels loss --out docs/memory-quality.svg --title "configs/small.yaml on sotu: gradient and AdamW-state precision"
