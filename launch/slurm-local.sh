#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for trying and testing launch/slurm.sbatch:
#   sudo ./launch/slurm-local.sh start     # installs slurmctld, slurmd, munge when missing; starts them
#   sudo ./launch/slurm-local.sh stop
# Root is needed (the daemons run as root here, as on a development machine or in CI). State,
# logs and the generated slurm.conf live in $QTRAIN_SLURM_DIR (default /tmp/qtrain-slurm).
set -euo pipefail
state=${QTRAIN_SLURM_DIR:-/tmp/qtrain-slurm}
conf=/etc/slurm/slurm.conf

start() {
    [ "$(id -u)" -eq 0 ] || { echo "slurm-local: run as root" >&2; exit 1; }
    if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
        # All output away from the caller: daemons that packages start inherit these descriptors.
        apt-get update -qq </dev/null >/dev/null 2>&1
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmctld slurmd slurm-client munge </dev/null >/dev/null 2>&1
    fi
    mkdir -p "$state"/{spool,ctld} /etc/slurm /run/munge /var/lib/munge /var/log/munge
    [ -f /etc/munge/munge.key ] || mungekey -c
    chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
    chmod 400 /etc/munge/munge.key
    # A munged left from an earlier installation may have lost its socket: test, don't trust pgrep.
    if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        pkill -x munged 2>/dev/null || true
        sleep 0.5
        su -s /bin/sh munge -c /usr/sbin/munged </dev/null >/dev/null 2>&1
    fi
    local host cpus mem
    host=$(hostname)
    cpus=$(nproc)
    mem=$(( $(free -m | awk '/^Mem:/ {print $2}') * 9 / 10 ))
    cat > "$conf" <<CONF
ClusterName=qtrain-local
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/spool
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/slurmctld.log
SlurmdLogFile=$state/slurmd.log
JobRequeue=1
KillWait=30
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
    # Detached from the caller's terminal and pipes, so that nothing waits on the daemons' output.
    pgrep -x slurmctld >/dev/null || setsid /usr/sbin/slurmctld </dev/null >/dev/null 2>&1
    pgrep -x slurmd >/dev/null || setsid /usr/sbin/slurmd </dev/null >/dev/null 2>&1
    for _ in $(seq 1 30); do
        if sinfo -h -o %t 2>/dev/null | grep -q idle; then
            echo "slurm-local: node $host is idle ($cpus CPUs); state in $state"
            return 0
        fi
        scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true
        sleep 1
    done
    echo "slurm-local: the node did not become idle; see $state/slurmctld.log and $state/slurmd.log" >&2
    exit 1
}

stop() {
    for f in "$state/slurmd.pid" "$state/slurmctld.pid"; do
        [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
    done
    pkill -x slurmd 2>/dev/null || true
    pkill -x slurmctld 2>/dev/null || true
    # Wait for them to go, so that a start right after does not mistake them for running daemons.
    for _ in $(seq 1 50); do
        pgrep -x slurmd >/dev/null || pgrep -x slurmctld >/dev/null || break
        sleep 0.2
    done
    pkill -9 -x slurmd 2>/dev/null || true
    pkill -9 -x slurmctld 2>/dev/null || true
    echo "slurm-local: stopped"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
