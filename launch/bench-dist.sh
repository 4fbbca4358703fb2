#!/usr/bin/env bash
# The data-parallel benchmark of README.md: one config, the same global batch on
#   -n 1 (all cores) and -n 2 (half each), with gradient overlap nonblocking / thread / off,
#   and ZeRO-1; prints step time, tokens/s, the share of the step spent waiting on
#   communication, and memory per rank.
#   ./launch/bench-dist.sh configs/130m.yaml --set model.seq_len=256 --set train.global_batch=4 \
#       --set train.grad_accum=1 --set quant.mode=dqt
#   STEPS=10 ./launch/bench-dist.sh configs/small.yaml --set train.global_batch=8 --set dist.bucket_mb=2
# Knobs: STEPS (default 3), WARMUP (1). Extra arguments go to every run.
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:?usage: $0 CONFIG [--set …]}
shift
bin=.build/release/qtrain-dist
[ -x "$bin" ] || swift build -c release
[ "$(id -u)" -eq 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
steps=${STEPS:-3}; warmup=${WARMUP:-1}
run() {  # name ranks extra…
    local name=$1 n=$2; shift 2
    local json
    json=$(mpirun -n "$n" --bind-to none "$bin" bench --config "$config" --steps "$steps" --warmup "$warmup" --json "$@" | tail -1)
    python3 - "$name" "$json" <<'PY'
import json, sys
name, r = sys.argv[1], json.loads(sys.argv[2])
m = r["memory"]
print(f"{name:<28} {r['world']:>2} {r['threads']:>3} {r['step_s']:8.3f} {r['tokens_per_s']:9.1f} {100*r['comm_wait_share']:7.1f}% "
      f"{m['bytes_per_param']:8.3f} {m['peak_rss_bytes']/1e9:7.2f} GB")
PY
}
echo "run                          ranks thr   step s  tokens/s  comm wait  B/param  peak RSS/rank"
run "1 rank" 1 "$@"
run "2 ranks, overlap nonblocking" 2 --set dist.overlap=nonblocking "$@"
run "2 ranks, overlap thread" 2 --set dist.overlap=thread "$@"
run "2 ranks, no overlap" 2 --set dist.overlap=off "$@"
run "2 ranks, ZeRO-1" 2 --set dist.shard_optimizer=true "$@"
