#!/usr/bin/env bash
# Data-parallel training on this machine with Open MPI:
#   ./launch/local.sh N CONFIG [qtrain-dist train options…]
#   ./launch/local.sh 2 configs/small.yaml --set dist.shard_optimizer=true
# Runs N ranks; each sizes its threads to cores ÷ N. More ranks than cores get
# --oversubscribe (and a warning); as root the Open MPI root-permission variables are set.
# Knobs: QTRAIN_BIN (default .build/release/qtrain-dist), MPIRUN_ARGS (extra mpirun flags),
# DRY_RUN=1 prints the command instead of running it.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: $0 N CONFIG [train options…]" >&2; exit 2; }
n=$1; config=$2; shift 2
[[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "local.sh: N must be a positive integer, got '$n'" >&2; exit 2; }
[ -f "$config" ] || { echo "local.sh: config $config does not exist" >&2; exit 2; }
bin=${QTRAIN_BIN:-.build/release/qtrain-dist}
[ -x "$bin" ] || swift build -c release

args=(-n "$n" --bind-to none)
cores=$(nproc)
if [ "$n" -gt "$cores" ]; then
    echo "local.sh: $n ranks on $cores cores: oversubscribing (each rank gets 1 thread)" >&2
    args+=(--oversubscribe)
fi
if [ "$(id -u)" -eq 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
# shellcheck disable=SC2206
extra=(${MPIRUN_ARGS:-})
cmd=(mpirun "${args[@]}" "${extra[@]}" "$bin" train --config "$config" "$@")
if [ "${DRY_RUN:-0}" = 1 ]; then echo "${cmd[*]}"; exit 0; fi
exec "${cmd[@]}"
