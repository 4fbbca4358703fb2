#!/usr/bin/env bash
# End-to-end test of launch/slurm.sbatch on a real one-node Slurm (launch/slurm-local.sh):
# submit a short run, send the pre-timeout signal, and check that the job checkpointed,
# requeued itself, resumed from the checkpoint and finished. Needs root; prints PASS or FAIL.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root to run slurmctld/slurmd"; exit 77; }
bin=${QTRAIN_BIN:-.build/release/qtrain-dist}
data=${QTRAIN_DATA:-data/sotu}
work=$(mktemp -d /tmp/qtrain-slurm-test.XXXXXX)
export QTRAIN_SLURM_DIR=$work/slurm
started_here=0
if ! sinfo -h >/dev/null 2>&1; then
    ./launch/slurm-local.sh start
    started_here=1
fi
cleanup() {
    [ -n "${jid:-}" ] && scancel "$jid" 2>/dev/null || true
    [ "$started_here" = 1 ] && ./launch/slurm-local.sh stop >/dev/null || true
}
trap cleanup EXIT

out=$work/run
export QTRAIN_CONFIG=configs/tiny.yaml QTRAIN_OUT_DIR=$out QTRAIN_BIN=$bin
jid=$(sbatch --parsable --time=00:10:00 --output="$work/job-%j.out" launch/slurm.sbatch \
    --set data.dir="$data" --set train.steps=8000 --set train.eval_every=0 --set log.every=1000 --set checkpoint.every=500)
log=$work/job-$jid.out
echo "submitted job $jid; log $log"
# Signal once the run is under way (it has written a checkpoint).
for _ in $(seq 1 120); do [ -f "$out/latest" ] && break; sleep 0.5; done
[ -f "$out/latest" ] || { echo "FAIL: no checkpoint appeared"; cat "$log"; exit 1; }
scancel --signal=USR1 --batch "$jid"
# Slurm holds a requeued job for a while (BeginTime); release it at once to keep the test short.
for _ in $(seq 1 240); do
    if [ "$(squeue -h -j "$jid" -o %r 2>/dev/null)" = BeginTime ]; then
        scontrol update JobId="$jid" StartTime=now || true
        break
    fi
    [ -f "$out/DONE" ] && break
    sleep 0.5
done
for _ in $(seq 1 240); do [ -f "$out/DONE" ] && break; sleep 1; done
# The training writes DONE before the batch script logs that it finished: wait for the job
# itself to end before reading its log.
for _ in $(seq 1 120); do [ -z "$(squeue -h -j "$jid" 2>/dev/null)" ] && break; sleep 0.5; done
fail=0
for expect in "received USR1" "stopping after step" "requeueing job $jid" "start 1" "resumed from $out" "finished (step 8000)"; do
    if ! grep -aq -- "$expect" "$log"; then
        echo "FAIL: '$expect' not in the job log"
        fail=1
    fi
done
[ -f "$out/DONE" ] || { echo "FAIL: the run did not finish"; fail=1; }
"$bin" inspect "$out" >/dev/null || { echo "FAIL: the final checkpoint does not verify"; fail=1; }
if [ "$fail" = 1 ]; then cat "$log"; exit 1; fi
echo "PASS: job $jid checkpointed on USR1, requeued, resumed and finished"
