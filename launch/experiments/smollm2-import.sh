#!/usr/bin/env bash
# How well each DQT scale rule (train.init_scale) holds SmolLM2-135M at import (README "Fine-tune
# an existing model"): for 8, 4 and ternary (1.58) bits and the rules absmax, absmean, search,
# the model is imported (`qtrain-dist import smollm2`) and saved at step 0 (`train.steps=0`);
# the row is the weights' relative error and the validation loss of the imported model on the
# same 32 windows the fine-tuning runs validate on. Results in docs/results/smollm2/import-rules.md.
#
#   launch/experiments/smollm2-import.sh     # about 5 minutes on 2 cores; finished rows are kept
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "${QTRAIN_SKIP_BUILD:-0}" = 1 ] || swift build -c release --product qtrain-dist
bin=.build/release/qtrain-dist
runs=runs/smollm2-import
out=docs/results/smollm2/import-rules.md
mkdir -p "$runs" "$(dirname "$out")"
[ -f data/sotu-smollm2/tokenizer.json ] || "$bin" prepare --corpus sotu --tokenizer smollm2 --out data/sotu-smollm2
for bits in 8 4 1.58; do
    for rule in absmax absmean search; do
        run=$runs/b$bits-$rule
        [ -f "$run/row.json" ] && continue
        rm -rf "$run"
        "$bin" import smollm2 --config configs/smollm2.yaml --out "$run" --quiet --set quant.mode=dqt \
            --set quant.bits="$bits" --set train.init_scale="$rule" > "$runs/b$bits-$rule.import.txt"
        "$bin" train --config "$run/config.yaml" --set train.steps=0 --set log.progress=lines > "$run/train.log"
        python3 - "$run" "$bits" "$rule" "$runs/b$bits-$rule.import.txt" > "$run/row.json" <<'EOF'
import json, re, sys
run, bits, rule, imported = sys.argv[1:5]
val = [json.loads(l)["val_loss"] for l in open(f"{run}/metrics.jsonl") if "val_loss" in l][0]
m = re.search(r"relative error mean ([0-9.]+), largest ([0-9.]+); ([0-9.]+) s", open(imported).read())
print(json.dumps({"bits": bits, "rule": rule, "val_loss": val, "error_mean": float(m.group(1)),
                  "error_largest": float(m.group(2)), "seconds": float(m.group(3))}))
EOF
        cat "$run/row.json"
    done
done
python3 - "$runs" > "$out" <<'EOF'
import glob, json, sys
rows = [json.load(open(p)) for p in sorted(glob.glob(sys.argv[1] + "/*/row.json"))]
rows.sort(key=lambda r: (-float(r["bits"]), r["rule"]))
print("| bits | init_scale | relative error (mean / largest) | val loss at import | import time |")
print("|---|---|---|---|---|")
for r in rows:
    print(f"| {r['bits']} | {r['rule']} | {r['error_mean']:.4f} / {r['error_largest']:.4f} | {r['val_loss']:.4f} | {r['seconds']:.1f} s |")
EOF
cat "$out"
