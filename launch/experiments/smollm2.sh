#!/usr/bin/env bash
# Fine-tuning SmolLM2-135M-Instruct on sotu under every weight policy (README "Fine-tune an
# existing model"): each row imports the pretrained model (`qtrain-dist import smollm2`) into its
# policy and trains configs/smollm2.yaml's steps on the same tokens (same seed, batch, length),
# then the table collects: validation loss at import and after fine-tuning, training state per
# parameter, peak RSS, tokens/s. Published to docs/results/smollm2/ (each row's metrics, import
# report, command and summary; table.md over all finished rows).
#
#   launch/experiments/smollm2.sh            # every row not yet done
#   launch/experiments/smollm2.sh ternary    # only rows whose name matches a regex
#
# About 5-10 minutes a row on 2 cores. Resumable: a finished row is skipped, an interrupted one
# resumes from its newest checkpoint (every 3 minutes). QTRAIN_SKIP_BUILD=1 uses the binary as it is.
set -euo pipefail
cd "$(dirname "$0")/../.."
pattern=${1:-.}
[ "${QTRAIN_SKIP_BUILD:-0}" = 1 ] || swift build -c release --product qtrain-dist
bin=.build/release/qtrain-dist
runs=runs/smollm2
published=docs/results/smollm2
mkdir -p "$runs" "$published"
[ -f data/sotu-smollm2/tokenizer.json ] || "$bin" prepare --corpus sotu --tokenizer smollm2 --out data/sotu-smollm2

# name | settings (after configs/smollm2.yaml)
rows=(
    "fp32|quant.mode=fp32"
    "bitnet|quant.mode=bitnet"
    "dqt8|quant.mode=dqt quant.bits=8"
    "ternary|quant.mode=dqt"
    "ternary-lean|quant.mode=dqt optim.grad_dtype=bf16 optim.state_dtype=int8"
)

for row in "${rows[@]}"; do
    name=${row%%|*} settings=${row#*|}
    [[ "$name" =~ $pattern ]] || continue
    out=$runs/$name
    [ -f "$published/$name/summary.json" ] && continue
    sets=(--set checkpoint.every_minutes=3)
    for s in $settings; do sets+=(--set "$s"); done
    if [ ! -f "$out/config.yaml" ]; then
        "$bin" import smollm2 --config configs/smollm2.yaml --out "$out" "${sets[@]}" > "$out.import.txt"
        mkdir -p "$out" && mv "$out.import.txt" "$out/import.txt"
    fi
    command=("$bin" train --config "$out/config.yaml" --set log.progress=lines)
    printf '%s\ncommit %s\nstarted %s\n' "${command[*]}" "$(git rev-parse HEAD)" "$(date -u +%FT%TZ)" >> "$out/command.txt"
    echo "== $name"
    [ -f "$out/DONE" ] || "${command[@]}" | tee -a "$out/train.log"
    # The row: first and last validation loss, state per parameter, peak RSS, mean tokens/s
    # after the first logged step (which includes start-up).
    python3 - "$out" "$name" "$settings" > "$out/summary.json" <<'EOF'
import json, re, sys
out, name, settings = sys.argv[1:4]
records = [json.loads(l) for l in open(f"{out}/metrics.jsonl")]
vals = [(r["step"], r["val_loss"]) for r in records if "val_loss" in r]
speeds = [r["tokens_per_s"] for r in records if "tokens_per_s" in r][1:]
log = open(f"{out}/train.log").read()
state = re.findall(r"without activations: ([0-9.]+) B/param", log)
rss = re.findall(r"peak RSS ([0-9.]+ [kMG]?B)", log)
imported = open(f"{out}/import.txt").read()
err = re.search(r"relative error mean ([0-9.]+), largest ([0-9.]+)", imported)
print(json.dumps({
    "name": name, "settings": settings, "steps": vals[-1][0], "val_loss_at_import": vals[0][1],
    "val_loss_final": vals[-1][1], "state_bytes_per_param": float(state[0]) if state else None,
    "peak_rss": rss[-1] if rss else None, "tokens_per_s": sum(speeds) / len(speeds) if speeds else None,
    "import_error_mean": float(err.group(1)), "import_error_largest": float(err.group(2)),
}))
EOF
    mkdir -p "$published/$name"
    cp "$out/metrics.jsonl" "$out/config.yaml" "$out/import.txt" "$out/command.txt" "$out/train.log" "$published/$name/"
    # Paths relative to the repository, so that the published files name no machine.
    sed -i "s|$PWD/||g" "$published/$name/"*
    cp "$out/summary.json" "$published/$name/summary.json"
done

# The table over every published row.
python3 - "$published" > "$published/table.md" <<'EOF'
import json, os, sys
root = sys.argv[1]
rows = [json.load(open(os.path.join(root, d, "summary.json"))) for d in sorted(os.listdir(root))
        if os.path.exists(os.path.join(root, d, "summary.json"))]
order = ["fp32", "bitnet", "dqt8", "ternary", "ternary-lean"]
rows.sort(key=lambda r: order.index(r["name"]) if r["name"] in order else 99)
print("| row | settings | import error (mean / largest) | val loss at import | after fine-tuning | state B/param | peak RSS | tokens/s |")
print("|---|---|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r['name']} | `{r['settings']}` | {r['import_error_mean']:.4f} / {r['import_error_largest']:.4f} | "
          f"{r['val_loss_at_import']:.4f} | {r['val_loss_final']:.4f} | {r['state_bytes_per_param']:.2f} | "
          f"{r['peak_rss']} | {r['tokens_per_s']:.0f} |")
EOF
cat "$published/table.md"
