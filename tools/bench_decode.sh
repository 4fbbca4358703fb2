#!/usr/bin/env bash
# Prompt processing, generation and start-up of a ternary 130M model in qtrain against the same
# model exported to GGUF (TQ2_0) in llama.cpp (llama-cpp-python), the way llama.cpp reports them:
# prompt tokens/s (the prompt as one batch), generation tokens/s (greedy) and the time to the
# first token. Same prompt (127 byte tokens), same generation length, same threads (2); the runs
# alternate (qtrain, llama.cpp, qtrain, …) so that both see the same machine. Cost: training the
# model (2 steps, about 2 minutes on 2 cores) the first time, then about 5 s per run.
# Resumable: the trained run and its GGUF are kept.
#
#   tools/bench_decode.sh [RUNS]          # default 5 of each; results in runs/decode-130m/bench.jsonl
#   QTRAIN_BIN=path/to/qtrain-dist tools/bench_decode.sh      # use a binary already built
#   QTRAIN_BASE=path/to/older/qtrain-dist tools/bench_decode.sh   # also time an older build (before → after)
#   LLAMA_PYTHON=path/to/python tools/bench_decode.sh   # a Python with llama_cpp and numpy
#   THREADS=1 tools/bench_decode.sh      # threads of both (default 2); on a machine another job keeps
#                                        # busy, llama.cpp's spinning threads wait on each other
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
tokens=${MAX_TOKENS:-120}
threads=${THREADS:-2}
python=${LLAMA_PYTHON:-.build/llama-python/bin/python}
if ! "$python" -c "import llama_cpp, numpy" 2>/dev/null; then
    python3 -m venv .build/llama-python
    python=.build/llama-python/bin/python
    "$python" -m pip install -q --disable-pip-version-check numpy gguf llama-cpp-python
fi
bin=${QTRAIN_BIN:-}
if [ -z "$bin" ]; then
    swift build -c release --product qtrain-dist
    bin=.build/release/qtrain-dist
fi
base=${QTRAIN_BASE:-}
[ -d data/sotu ] || "$bin" prepare --corpus sotu --out data/sotu
run=runs/decode-130m
# The 130M shape (vocabulary 32,002) on the byte-level sotu data, context 256: the prompt and the
# generated tokens fit it, so no run restarts its cache.
[ -f "$run/DONE" ] || "$bin" train --config configs/130m.yaml --set data.dir=data/sotu --set quant.mode=dqt \
    --set model.seq_len=256 --set train.steps=2 --set train.grad_accum=1 --set train.eval_every=0 \
    --set train.out_dir="$run"
[ -f "$run/model.gguf" ] || "$bin" export "$run" --format gguf --out "$run/model.gguf"
prompt="Fellow-Citizens of the Senate and House of Representatives: the state of the Union is sound, and the public credit is restored."
out=$run/bench.jsonl
: > "$out"

# A qtrain build timed twice: a `generate --timing` run, and one with --max-tokens 0 (the
# prompt only) whose whole process is timed from outside (launch to exit: start-up, prompt and
# teardown, comparable between builds). One JSON line. An older build prints one line for the
# whole run, so its prompt comes from the second run and its generation is the difference.
qtrain() {
    local name=$1 exe=$2 tmp
    tmp=$(mktemp -d)
    local args=("$run" --prompt "$prompt" --temperature 0 --timing)
    # An older build has no --threads: it takes the run's train.threads (every core).
    local help
    help=$("$exe" generate --help 2>&1 || true)
    if [[ $help == *--threads* ]]; then args+=(--threads "$threads"); fi
    "$exe" generate "${args[@]}" --max-tokens "$tokens" >/dev/null 2>"$tmp/full"
    local t0 t1
    t0=$(date +%s.%N)
    "$exe" generate "${args[@]}" --max-tokens 0 >/dev/null 2>"$tmp/prompt"
    t1=$(date +%s.%N)
    python3 - "$name" "$tmp/full" "$tmp/prompt" "$(echo "$t1 - $t0" | bc)" <<'PY'
import json, re, sys
name, full, prompt_only, wall = sys.argv[1], open(sys.argv[2]).read(), open(sys.argv[3]).read(), float(sys.argv[4])
r = {"engine": name, "process_seconds_prompt_only": wall}
prompt = re.search(r"prompt: (\d+) tokens in ([\d.]+) s: ([\d.]+) tokens/s", full)
gen = re.search(r"generation: (\d+) tokens in ([\d.]+) s: ([\d.]+) tokens/s", full)
first = re.search(r"time to first token: ([\d.]+) s \((.*)\)", full)
if prompt and gen and first:
    r.update({"prompt_tokens": int(prompt.group(1)), "prompt_tokens_per_second": float(prompt.group(3)),
              "generated_tokens": int(gen.group(1)), "generation_tokens_per_second": float(gen.group(3)),
              "time_to_first_token": float(first.group(1)),
              "startup": {p.rsplit(" ", 2)[0]: float(p.rsplit(" ", 2)[1]) for p in first.group(2).split(", ")}})
else:
    total = re.search(r"(\d+) tokens in ([\d.]+) s: [\d.]+ tokens/s", full)
    alone = re.search(r"0 tokens in ([\d.]+) s", prompt_only)
    if not (total and alone):
        sys.exit("no timing in: " + full + prompt_only)
    n, seconds, p = int(total.group(1)), float(total.group(2)), float(alone.group(1))
    r.update({"prompt_tokens": 127, "prompt_tokens_per_second": 127 / p, "generated_tokens": n,
              "generation_tokens_per_second": n / max(seconds - p, 1e-9)})
print(json.dumps(r))
PY
    rm -rf "$tmp"
}

llama() {
    "$python" tools/bench_llama_cpp.py "$run/model.gguf" --prompt "$prompt" --max-tokens "$tokens" \
        --threads "$threads" --ctx 256 | python3 -c 'import json, sys; r = json.loads(sys.stdin.read()); r["engine"] = "llama.cpp TQ2_0"; print(json.dumps(r))'
}

echo "$threads threads; load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for i in $(seq "$runs"); do
    qtrain qtrain "$bin" | tee -a "$out"
    llama | tee -a "$out"
    [ -z "$base" ] || qtrain "qtrain (older build)" "$base" | tee -a "$out"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

python3 - "$out" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
engines = list(dict.fromkeys(r["engine"] for r in rows))
cols = [("prompt tokens", "prompt_tokens", "%d"), ("prompt tok/s", "prompt_tokens_per_second", "%.0f"),
        ("generation tok/s", "generation_tokens_per_second", "%.1f"),
        ("time to first token (s)", "time_to_first_token", "%.3f"),
        ("process, prompt only (s)", "process_seconds_prompt_only", "%.3f")]
print("| engine | runs | " + " | ".join(c[0] for c in cols) + " |")
print("|---|---|" + "---|" * len(cols))
for e in engines:
    rs = [r for r in rows if r["engine"] == e]
    cells = []
    for _, key, fmt in cols:
        v = [r[key] for r in rs if key in r]
        cells.append("–" if not v else (fmt % statistics.median(v)) + (
            "" if key == "prompt_tokens" else " (" + fmt % min(v) + "–" + fmt % max(v) + ")"))
    print(f"| {e} | {len(rs)} | " + " | ".join(cells) + " |")
print("median (range) of %d runs each, every run a new process; %d tokens generated greedily after the prompt"
      % (len(rows) // len(engines), rows[0].get("generated_tokens", 0)))
EOF
