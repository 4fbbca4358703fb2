#!/usr/bin/env bash
# The long fuzz run of every file format qtrain reads (README "Hardening"): seeds from a tiny
# DQT run on a BPE-tokenized synthetic corpus and from Mistral's SentencePiece model, then
# ITERATIONS (default 200000) mutated inputs per target, one target after another, each with its
# own seed so that a rerun repeats it. A crash leaves the input that caused it in
# fuzz-out/crashes/<target>-<seed>; results are appended to fuzz-out/results.txt.
#
#   ./launch/fuzz.sh [ITERATIONS] [SEED]
set -euo pipefail
cd "$(dirname "$0")/.."
iterations=${1:-200000}
seed=${2:-1}
swift build -c release --product qtrain-dist >/dev/null
swift build -c release --product qtrain-fuzz >/dev/null
bin=.build/release
out=fuzz-out
mkdir -p "$out/crashes" "$out/seeds/text"
if [ ! -d "$out/seeds/run" ]; then
    for i in $(seq 1 12); do
        python3 -c "import sys; i=int(sys.argv[1]); print(' '.join('the %s sat on the mat number %d.' % (['cat','dog','bird'][j % 3], j % 10) for j in range(60 + i)))" "$i" \
            > "$out/seeds/text/doc$i.txt"
    done
    "$bin/qtrain-dist" prepare --corpus "$out/seeds/text" --out "$out/seeds/data" --val-every 4 --tokenizer bpe:300 >/dev/null
    "$bin/qtrain-dist" train --config configs/tiny.yaml --set data.dir="$out/seeds/data" --set model.seq_len=16 \
        --set model.vocab_size=300 --set train.steps=2 --set quant.mode=dqt --set train.out_dir="$out/seeds/run" \
        --set log.progress=lines >/dev/null
fi
sp=()
if [ ! -f "$out/seeds/sp.model" ]; then
    pip download --no-deps --quiet -d "$out/seeds" mistral-common==1.13.1 2>/dev/null \
        && python3 -c "import glob,zipfile; z=zipfile.ZipFile(glob.glob('$out/seeds/mistral_common-*.whl')[0]); open('$out/seeds/sp.model','wb').write(z.read('mistral_common/data/tokenizer.model.v1'))" \
        || echo "fuzz: no SentencePiece model (offline?); skipping that target"
fi
[ -f "$out/seeds/sp.model" ] && sp=(--sentencepiece "$out/seeds/sp.model")
# The seed run as GGUF seeds the import reader.
[ -f "$out/seeds/model.gguf" ] || "$bin/qtrain-dist" export "$out/seeds/run" --format gguf --out "$out/seeds/model.gguf" >/dev/null
status=0
for target in yaml state safetensors shard tokenizer sentencepiece gguf jsonl jsonl-gz jsonl-zst; do
    [ "$target" = sentencepiece ] && [ ${#sp[@]} -eq 0 ] && continue
    if "$bin/qtrain-fuzz" --run "$out/seeds/run" --data "$out/seeds/data" "${sp[@]}" --gguf "$out/seeds/model.gguf" --targets "$target" \
        --iterations "$iterations" --seed "$seed" --work "$out/work-$target" | tee -a "$out/results.txt"; then
        :
    else
        code=$?
        for f in "$out/work-$target"/current-* "$out/work-$target"/*/*/state.json "$out/work-$target"/data-*/train_000.bin "$out/work-$target"/data-*/tokenizer.json; do
            [ -f "$f" ] && cp "$f" "$out/crashes/$target-$seed-$(basename "$f")"
        done
        echo "$target: CRASH (exit $code) with seed $seed; input kept in $out/crashes/" | tee -a "$out/results.txt"
        status=1
    fi
done
exit $status
