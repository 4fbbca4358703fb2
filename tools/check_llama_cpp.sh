#!/usr/bin/env bash
# Trains a small ternary and a small 8-bit DQT model (configs/small.yaml, SwiGLU 768 so that every
# matrix fills TQ2_0's 256-code blocks), exports each as GGUF and as a Hugging Face folder, and
# runs tools/check_llama_cpp.py on the GGUF in llama.cpp (llama-cpp-python from PyPI, which
# builds llama.cpp: several minutes on 2 cores the first time). Resumable: finished runs are kept.
#
#   tools/check_llama_cpp.sh [STEPS]        # default 300; results in runs/gguf-check/results.jsonl
#   QTRAIN_BIN=path/to/qtrain-dist tools/check_llama_cpp.sh   # use a binary already built
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-300}
venv=.build/llama-python
if ! "$venv/bin/python" -c "import llama_cpp, numpy, gguf" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check numpy gguf llama-cpp-python
fi
bin=${QTRAIN_BIN:-}
if [ -z "$bin" ]; then
    swift build -c release --product qtrain-dist
    bin=.build/release/qtrain-dist
fi
[ -d data/sotu ] || "$bin" prepare --corpus sotu --out data/sotu
out=runs/gguf-check
mkdir -p "$out"
: > "$out/results.jsonl"
for policy in "ternary:1.58" "8bit:8"; do
    name=${policy%%:*} bits=${policy##*:}
    run=$out/$name
    [ -f "$run/DONE" ] || "$bin" train --config configs/small.yaml --set quant.mode=dqt --set quant.bits="$bits" \
        --set model.ffn_dim=768 --set train.steps="$steps" --set train.out_dir="$run"
    "$bin" export "$run" --format gguf --out "$out/$name.gguf"
    "$bin" export "$run" --format hf --out "$out/$name-hf" > /dev/null
    gguf_bytes=$(stat -c %s "$out/$name.gguf")
    hf_bytes=$(stat -c %s "$out/$name-hf/model.safetensors")
    echo "$name: GGUF $gguf_bytes bytes, Hugging Face model.safetensors (f32) $hf_bytes bytes"
    line=$("$venv/bin/python" tools/check_llama_cpp.py "$out/$name.gguf" --qtrain "$bin" --checkpoint "$run" | tee /dev/stderr | head -1)
    echo "{\"model\": \"$name\", \"gguf_bytes\": $gguf_bytes, \"hf_f32_bytes\": $hf_bytes, \"check\": $line}" >> "$out/results.jsonl"
done
cat "$out/results.jsonl"
