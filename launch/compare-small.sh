#!/usr/bin/env bash
# The convergence comparison of README.md: configs/small.yaml on sotu, the same tokens for
# fp32, bitnet, dqt 8-bit and dqt ternary (about 4 minutes each on 2 cores), then the loss
# curves as docs/small-comparison.svg. Extra arguments go to every run (e.g. --set train.steps=300).
source "$(dirname "$0")/comparison-common.sh"
declare -A modes=(
    [fp32]="--set quant.mode=fp32"
    [bitnet]="--set quant.mode=bitnet"
    [dqt8]="--set quant.mode=dqt --set quant.bits=8"
    [dqt-ternary]="--set quant.mode=dqt --set quant.bits=1.58"
)
runs=()
for name in fp32 bitnet dqt8 dqt-ternary; do
    # shellcheck disable=SC2086
    "$bin" train --config configs/small.yaml ${modes[$name]} --set train.out_dir=runs/small-$name --set log.progress=lines "$@"
    runs+=("runs/small-$name")
done
mkdir -p docs
"$bin" report "${runs[@]}" --panels loss --out docs/small-comparison.svg --title "configs/small.yaml on sotu: validation loss"
