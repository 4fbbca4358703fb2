#!/usr/bin/env bash
# The main job on the built-in default, from a fresh clone:
# installs what is missing, builds in release mode, prepares the State of the Union corpus
# (byte tokenizer) and trains configs/small.yaml (~3.4M parameters, about 4 minutes on
# 2 cores), printing the validation loss as it goes.
#
#   ./launch/quickstart.sh                       # fp32
#   ./launch/quickstart.sh --set quant.mode=dqt  # ternary DQT; extra arguments go to qtrain-dist
set -euo pipefail
cd "$(dirname "$0")/.."

./launch/setup.sh
swift build -c release
bin=.build/release/qtrain-dist
[ -f data/sotu/train_000.bin ] || "$bin" prepare --corpus sotu --out data/sotu
"$bin" train --config "${QTRAIN_CONFIG:-configs/small.yaml}" "$@"
