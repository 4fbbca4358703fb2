#!/usr/bin/env bash
# qtrain on PBS Pro / OpenPBS, with the same resume-and-rerun loop as launch/slurm.sbatch:
#   qsub -v QTRAIN_CONFIG=configs/small.yaml launch/pbs.sh
# PBS sends SIGTERM before it kills a job at its walltime (kill_delay); the script turns it
# into a checkpoint (USR1 to mpirun, forwarded to the ranks) and reruns the job (qrerun) until
# the run directory holds DONE. Knobs as in slurm.sbatch: QTRAIN_CONFIG, QTRAIN_OUT_DIR,
# QTRAIN_BIN, QTRAIN_MAX_RERUNS. Written for PBS but tested only on Slurm here.
#PBS -N qtrain
#PBS -l select=1:ncpus=2:mpiprocs=2
#PBS -l walltime=01:00:00
#PBS -r y
#PBS -j oe
set -uo pipefail
cd "${PBS_O_WORKDIR:-$(dirname "$0")/..}"

config=${QTRAIN_CONFIG:-configs/small.yaml}
out=${QTRAIN_OUT_DIR:-runs/pbs-${PBS_JOBID%%.*}}
bin=${QTRAIN_BIN:-.build/release/qtrain-dist}
ntasks=$( [ -n "${PBS_NODEFILE:-}" ] && wc -l < "$PBS_NODEFILE" || echo 1 )
echo "qtrain: PBS job ${PBS_JOBID:-?}, $ntasks tasks, config $config, run $out"
[ "$(id -u)" -eq 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

child=""
stopping=0
trap 'stopping=1; [ -n "$child" ] && kill -USR1 "$child" 2>/dev/null' TERM USR1
mpirun -n "$ntasks" --bind-to none ${PBS_NODEFILE:+--hostfile "$PBS_NODEFILE"} "$bin" train --config "$config" \
    --set train.out_dir="$out" "$@" &
child=$!
status=0
while true; do
    wait "$child"
    status=$?
    kill -0 "$child" 2>/dev/null || break
done
[ -f "$out/DONE" ] && { echo "qtrain: finished"; exit 0; }
if [ "$status" -ne 0 ] && [ "$stopping" -eq 0 ]; then echo "qtrain: failed with status $status" >&2; exit "$status"; fi
reruns_file="$out/.pbs-reruns"
reruns=$(cat "$reruns_file" 2>/dev/null || echo 0)
[ "$reruns" -ge "${QTRAIN_MAX_RERUNS:-20}" ] && { echo "qtrain: rerun $reruns times; giving up" >&2; exit 1; }
echo $((reruns + 1)) > "$reruns_file"
echo "qtrain: not finished; rerunning to resume from the newest checkpoint"
qrerun "${PBS_JOBID}"
