#!/usr/bin/env bash
# Stop the single-node SLURM cluster started by setup_single_node.sh.
#
#   scripts/slurm/teardown.sh          cancel jobs, stop slurmd, slurmctld and munged
#   scripts/slurm/teardown.sh --purge  also delete the controller/slurmd state and logs
#                                      (next setup starts with an empty job table)
# Packages and /etc/slurm/slurm.conf are left in place.  Must run as root.
set -uo pipefail

PURGE=0
[ "${1:-}" = "--purge" ] && PURGE=1
[ "$(id -u)" -eq 0 ] || { echo "teardown: must run as root" >&2; exit 1; }

running() { pgrep -x "$1" >/dev/null 2>&1; }
stop() {  # stop NAME PIDFILE
    local name=$1 pidfile=$2 pid
    running "$name" || return 0
    if [ -s "$pidfile" ]; then
        kill "$(cat "$pidfile")" 2>/dev/null || true
    else
        for pid in $(pgrep -x "$name"); do kill "$pid" 2>/dev/null || true; done
    fi
    for _ in $(seq 1 40); do
        running "$name" || { echo "teardown: stopped $name"; return 0; }
        sleep 0.25
    done
    for pid in $(pgrep -x "$name"); do kill -9 "$pid" 2>/dev/null || true; done
    echo "teardown: killed $name (did not stop within 10s)"
}

if command -v scancel >/dev/null 2>&1 && running slurmctld; then
    scancel --user=root >/dev/null 2>&1 || true
fi
stop slurmd /run/slurm/slurmd.pid
stop slurmctld /run/slurm/slurmctld.pid
stop munged /run/munge/munged.pid

if [ "$PURGE" -eq 1 ]; then
    rm -rf /var/spool/slurmctld/* /var/spool/slurmd/* /var/log/slurm/*.log
    echo "teardown: purged slurm state and logs"
fi
