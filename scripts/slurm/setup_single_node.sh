#!/usr/bin/env bash
# Start a single-node SLURM cluster (slurm-wlm 22.05 from Debian 12) on this machine.
#
# Idempotent: installs slurm-wlm + munge with apt-get if `slurmctld` is missing,
# (re)writes /etc/slurm/slurm.conf for this machine (hostname, CPUs, ~80 % of RAM),
# starts munged / slurmctld / slurmd if they are not running, and waits until the
# node is idle.  No systemd needed: daemons are started directly.
#
# Must run as root.  Exits non-zero with a one-line "setup_single_node: ERROR ..."
# message (followed by the relevant log tail) on failure.
#
# Environment knobs:
#   SLURM_SETUP_TIMEOUT   seconds to wait for the node to become idle (default 60)
#   SLURM_PARTITION       name of the (default) partition            (default "debug")
#   SLURM_MEM_FRACTION    fraction of MemTotal given to the node, %  (default 80)
#   SLURM_FORCE_RESTART=1 restart the slurm daemons even if they run (e.g. after editing the config)
set -uo pipefail

T0=$(date +%s)
TIMEOUT=${SLURM_SETUP_TIMEOUT:-60}
PARTITION=${SLURM_PARTITION:-debug}
MEM_FRACTION=${SLURM_MEM_FRACTION:-80}
CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
LOG_DIR=/var/log/slurm
STATE_DIR=/var/spool/slurmctld
SPOOL_DIR=/var/spool/slurmd
RUN_DIR=/run/slurm

log() { echo "setup_single_node: [$(( $(date +%s) - T0 ))s] $*"; }
die() {
    echo "setup_single_node: ERROR: $*" >&2
    exit 1
}
die_log() {  # die_log MESSAGE LOGFILE...
    local msg=$1; shift
    echo "setup_single_node: ERROR: $msg" >&2
    for f in "$@"; do
        if [ -s "$f" ]; then
            echo "---- last lines of $f ----" >&2
            tail -n 25 "$f" >&2
        fi
    done
    exit 1
}
running() { pgrep -x "$1" >/dev/null 2>&1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (it installs packages and starts daemons)"

# --------------------------------------------------------------------------- install
PKGS="slurm-wlm munge"
command -v pgrep >/dev/null 2>&1 || PKGS="$PKGS procps"   # pgrep (minimal images lack it)
if ! command -v slurmctld >/dev/null 2>&1 || ! command -v slurmd >/dev/null 2>&1 \
   || ! command -v munged >/dev/null 2>&1 || ! command -v pgrep >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || die "slurmctld is not installed and apt-get is not available"
    log "installing $PKGS with apt-get ..."
    export DEBIAN_FRONTEND=noninteractive
    # No init system here: keep the packages' maintainer scripts from trying to start services.
    POLICY=/usr/sbin/policy-rc.d
    CREATED_POLICY=0
    if [ ! -e "$POLICY" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$POLICY" && chmod 755 "$POLICY" && CREATED_POLICY=1
    fi
    APT_LOG=$(mktemp /tmp/slurm-apt.XXXXXX.log)
    ok=0
    # `apt-get update` only if a plain install fails (saves ~10 s when lists are fresh).
    if apt-get install -y -q --no-install-recommends $PKGS >"$APT_LOG" 2>&1; then
        ok=1
    else
        log "apt-get install failed, running apt-get update and retrying ..."
        if apt-get update -q >>"$APT_LOG" 2>&1 \
           && apt-get install -y -q --no-install-recommends $PKGS >>"$APT_LOG" 2>&1; then
            ok=1
        fi
    fi
    [ "$CREATED_POLICY" -eq 1 ] && rm -f "$POLICY"
    [ "$ok" -eq 1 ] || die_log "apt-get install $PKGS failed" "$APT_LOG"
    command -v slurmctld >/dev/null 2>&1 || die_log "slurm-wlm installed but slurmctld is not on PATH" "$APT_LOG"
    rm -f "$APT_LOG"
    log "installed $(slurmctld -V 2>/dev/null)"
else
    log "found $(slurmctld -V 2>/dev/null)"
fi

# --------------------------------------------------------------------------- munge
id munge >/dev/null 2>&1 || die "user 'munge' does not exist (broken munge package install?)"
mkdir -p /etc/munge /var/lib/munge /var/log/munge /run/munge
chown munge:munge /etc/munge /var/lib/munge /var/log/munge /run/munge
chmod 700 /etc/munge /var/lib/munge /var/log/munge
chmod 755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
    log "creating /etc/munge/munge.key"
    if command -v mungekey >/dev/null 2>&1; then
        mungekey --create --force --keyfile /etc/munge/munge.key >/dev/null 2>&1 \
            || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
    else
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
    fi
fi
chown munge:munge /etc/munge/munge.key
chmod 400 /etc/munge/munge.key

if ! running munged; then
    log "starting munged"
    rm -f /run/munge/munged.pid
    # --force: start even if a stale socket is left over from a previous run.
    runuser -u munge -- /usr/sbin/munged --force >/dev/null 2>&1 \
        || die_log "munged failed to start" /var/log/munge/munged.log
fi
for _ in $(seq 1 20); do
    munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
    sleep 0.25
done
munge -n 2>/dev/null | unmunge >/dev/null 2>&1 \
    || die_log "munge credential round trip (munge -n | unmunge) fails" /var/log/munge/munged.log

# --------------------------------------------------------------------------- slurm.conf
HOST=$(hostname -s)
[ -n "$HOST" ] || die "hostname -s is empty"
NCPU=$(nproc --all)
MEM_MB=$(awk '/^MemTotal:/ {print int($2/1024)}' /proc/meminfo)
REAL_MEM=$(( MEM_MB * MEM_FRACTION / 100 ))
# Use the topology slurmd itself detects (Sockets/Cores/Threads) so the node is not
# declared INVALID; fall back to a plain CPU count.
TOPO=$(slurmd -C 2>/dev/null | head -n1 | grep -o 'CPUs=[0-9]* Boards=[0-9]* SocketsPerBoard=[0-9]* CoresPerSocket=[0-9]* ThreadsPerCore=[0-9]*' || true)
[ -n "$TOPO" ] || TOPO="CPUs=$NCPU"
# If the short hostname does not resolve, talk over loopback.
ADDR_OPT=""
CTL_HOST=$HOST
if ! getent hosts "$HOST" >/dev/null 2>&1; then
    ADDR_OPT=" NodeAddr=127.0.0.1"
    CTL_HOST="$HOST(127.0.0.1)"
fi

mkdir -p "$CONF_DIR" "$LOG_DIR" "$STATE_DIR" "$SPOOL_DIR" "$RUN_DIR"
chmod 755 "$LOG_DIR" "$STATE_DIR" "$SPOOL_DIR" "$RUN_DIR"

NEW_CONF=$(mktemp)
cat >"$NEW_CONF" <<EOF
# Written by scripts/slurm/setup_single_node.sh -- single-node test cluster.
ClusterName=localcluster
SlurmctldHost=$CTL_HOST
AuthType=auth/munge
CredType=cred/munge
# Daemons and jobs run as root on this test machine.
SlurmUser=root
SlurmdUser=root
DisableRootJobs=NO
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
SwitchType=switch/none
MailProg=/bin/true
# No accounting database: sacct is unavailable (submitit then waits on result files).
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
StateSaveLocation=$STATE_DIR
SlurmdSpoolDir=$SPOOL_DIR
SlurmctldPidFile=$RUN_DIR/slurmctld.pid
SlurmdPidFile=$RUN_DIR/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
KillWait=10
MinJobAge=300
Waittime=0
# Fast scheduling for tests.
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
NodeName=$HOST$ADDR_OPT $TOPO RealMemory=$REAL_MEM State=UNKNOWN
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
CONF_CHANGED=0
if ! cmp -s "$NEW_CONF" "$CONF"; then
    install -m 644 "$NEW_CONF" "$CONF"
    CONF_CHANGED=1
    log "wrote $CONF (NodeName=$HOST $TOPO RealMemory=${REAL_MEM}MB, partition $PARTITION)"
fi
rm -f "$NEW_CONF"
# A cgroup plugin configuration makes slurmd 22.05 exit on this kind of machine.
if [ -e "$CONF_DIR/cgroup.conf" ]; then
    mv "$CONF_DIR/cgroup.conf" "$CONF_DIR/cgroup.conf.disabled-by-setup"
    log "moved $CONF_DIR/cgroup.conf aside (cgroup plugins kill slurmd here)"
    CONF_CHANGED=1
fi

# --------------------------------------------------------------------------- daemons
stop_daemon() {
    local name=$1 pidfile=$2 pid
    if [ -s "$pidfile" ]; then
        pid=$(cat "$pidfile")
        kill "$pid" 2>/dev/null || true
    fi
    for _ in $(seq 1 40); do
        running "$name" || return 0
        sleep 0.25
    done
    # still alive (pid file missing/stale): stop the exact process by pid
    for pid in $(pgrep -x "$name"); do kill -9 "$pid" 2>/dev/null || true; done
}
if [ "$CONF_CHANGED" -eq 1 ] || [ "${SLURM_FORCE_RESTART:-0}" = 1 ]; then
    if running slurmctld || running slurmd; then
        log "configuration changed: restarting slurm daemons"
        stop_daemon slurmd "$RUN_DIR/slurmd.pid"
        stop_daemon slurmctld "$RUN_DIR/slurmctld.pid"
    fi
fi

if ! running slurmctld; then
    log "starting slurmctld"
    # -c would wipe job state; keep it (clean restarts are the teardown script's job)
    slurmctld >/dev/null 2>&1 || die_log "slurmctld failed to start" "$LOG_DIR/slurmctld.log"
fi
# wait for the controller to answer
for _ in $(seq 1 $(( TIMEOUT * 2 ))); do
    scontrol ping 2>/dev/null | grep -q 'is UP' && break
    running slurmctld || die_log "slurmctld exited" "$LOG_DIR/slurmctld.log"
    sleep 0.5
done
scontrol ping 2>/dev/null | grep -q 'is UP' \
    || die_log "slurmctld does not answer 'scontrol ping' after ${TIMEOUT}s" "$LOG_DIR/slurmctld.log"

if ! running slurmd; then
    log "starting slurmd"
    slurmd >/dev/null 2>&1 || die_log "slurmd failed to start" "$LOG_DIR/slurmd.log"
fi

# --------------------------------------------------------------------------- wait for idle
state=""
deadline=$(( $(date +%s) + TIMEOUT ))
while :; do
    running slurmd || die_log "slurmd exited" "$LOG_DIR/slurmd.log"
    state=$(sinfo -h -n "$HOST" -o '%T' 2>/dev/null | head -n1)
    case "$state" in
        idle|mixed|allocated|completing) break ;;
        down*|drain*|fail*|inval*)
            # e.g. left DOWN by an earlier unclean stop: bring it back
            scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 || true ;;
    esac
    [ "$(date +%s)" -lt "$deadline" ] || break
    sleep 0.5
done
case "$state" in
    idle|mixed|allocated|completing) ;;
    *) echo "setup_single_node: sinfo says:" >&2; sinfo -N -l >&2 2>&1 || true
       scontrol show node "$HOST" 2>&1 | grep -i reason >&2 || true
       die_log "node $HOST is '${state:-unknown}', not idle, after ${TIMEOUT}s" \
           "$LOG_DIR/slurmd.log" "$LOG_DIR/slurmctld.log" ;;
esac

log "cluster ready: node $HOST is $state, partition $PARTITION (default), $(sinfo -h -o '%c CPUs, %m MB' | head -n1)"
echo "setup_single_node: total time $(( $(date +%s) - T0 ))s"
