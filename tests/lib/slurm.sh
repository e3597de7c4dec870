#!/bin/sh
# tests/lib/slurm.sh - a private single-node Slurm cluster for tests and
# benchmarks: munged, slurmctld and slurmd (Debian 12's slurm-wlm 22.05) on
# loopback, in a temporary directory of their own, on free ports.
#
# Sourced (tests):
#     . tests/lib/slurm.sh
#     slurm_start || exit 1        # exports SLURM_CONF; sets SLURM_TEST_* below
#     ...                          # sbatch/squeue/tessera --executor slurm
#     slurm_stop                   # also from the caller's EXIT trap
# As a command (benchmarks, by hand):
#     tests/lib/slurm.sh run CMD [ARG...]   start, run CMD with SLURM_CONF set,
#                                           stop (also when CMD fails); CMD's status
#
# After slurm_start:
#     SLURM_CONF            the cluster's slurm.conf (exported: every Slurm
#                           command and tessera use it)
#     SLURM_TEST_DIR        the temporary directory (conf, munge, state, spool, logs)
#     SLURM_TEST_NODE       the node's name (for scontrol update nodename=...)
#     SLURM_TEST_PARTITION  the default partition's name
# Settings (environment, before slurm_start):
#     SLURM_TEST_CPUS        cpus of the node (2)
#     SLURM_TEST_CONF_EXTRA  more slurm.conf lines (newline-separated), e.g.
#                            "MinJobAge=5"; later lines override earlier ones
#
# Why this configuration (checked on Debian 12 in a container without
# systemd or a writable cgroup tree):
#   - must run as root: slurmd starts jobs as their submitting user;
#   - munged gets its own key, socket, pid, seed and log files and runs with
#     --force (it refuses root otherwise); slurm.conf points every daemon and
#     client at that socket with AuthInfo=socket=..., so two clusters (two test
#     runs at once) never share a munged;
#   - no cgroups: ProctrackType=proctrack/linuxproc, TaskPlugin=task/none,
#     JobAcctGatherType=jobacct_gather/none;
#   - no accounting database: AccountingStorageType=accounting_storage/none,
#     so `sacct` does not work here (tessera must cope, DESIGN §9);
#   - SelectType=select/cons_tres with CR_CPU_Memory and DefMemPerCPU, so a
#     job without --mem takes 100 MB per cpu, not the whole node;
#     SlurmdParameters=config_overrides lets the node claim CPUs=2 and
#     RealMemory whatever the machine has;
#   - ClusterName, NodeName, ports and every directory are unique per
#     cluster: two clusters on one machine do not see each other;
#   - KillWait=2: scancel and time limits escalate to SIGKILL after 2 s
#     (default 30), which keeps tests short.
set -u

SLURM_TEST_STARTED=0

# Prints a TCP port on which nothing listens (IPv4 or IPv6), chosen at random
# in 20000-59999. Another process may still take it before us: slurm_start
# retries with other ports when a daemon cannot bind.
slurm__free_port() {
    while :; do
        port=$(( $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 40000 + 20000 ))
        hex=$(printf '%04X' "$port")
        if ! awk -v h=":$hex" 'NR > 1 && $4 == "0A" && substr($2, length($2) - 4) == h { f = 1 }
                                END { exit !f }' /proc/net/tcp /proc/net/tcp6 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
}

# Waits up to $1 seconds for the command $2... to succeed.
slurm__wait() {
    limit=$1; shift
    end=$(( $(date +%s) + limit ))
    while [ "$(date +%s)" -le "$end" ]; do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    return 1
}

# Prints the last lines of every log, to explain a failed start.
slurm__show_logs() {
    for f in "$SLURM_TEST_DIR"/log/*.log "$SLURM_TEST_DIR"/munge/munged.log; do
        [ -f "$f" ] || continue
        echo "# --- $f"
        tail -n 15 "$f" | sed 's/^/#   /'
    done
}

slurm__write_conf() {
    d=$SLURM_TEST_DIR
    cat > "$d/slurm.conf" <<EOF
# Written by tests/lib/slurm.sh: a private single-node cluster on loopback.
ClusterName=$SLURM_TEST_CLUSTER
SlurmctldHost=$(hostname)(127.0.0.1)
SlurmctldPort=$1
SlurmdPort=$2
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$d/munge/munge.sock
CredType=cred/munge
StateSaveLocation=$d/state
SlurmdSpoolDir=$d/spool
SlurmctldPidFile=$d/run/slurmctld.pid
SlurmdPidFile=$d/run/slurmd.pid
SlurmctldLogFile=$d/log/slurmctld.log
SlurmdLogFile=$d/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=100
SlurmdParameters=config_overrides
ReturnToService=2
KillWait=2
InactiveLimit=0
NodeName=$SLURM_TEST_NODE NodeAddr=127.0.0.1 CPUs=${SLURM_TEST_CPUS:-2} RealMemory=4000 State=UNKNOWN
PartitionName=$SLURM_TEST_PARTITION Nodes=$SLURM_TEST_NODE Default=YES MaxTime=INFINITE State=UP
${SLURM_TEST_CONF_EXTRA:-}
EOF
}

slurm__node_idle() {
    [ "$(sinfo -h -n "$SLURM_TEST_NODE" -o %t 2>/dev/null)" = idle ]
}

# One try at starting the daemons on fresh ports; 0 when the node is idle.
slurm__try_start() {
    d=$SLURM_TEST_DIR
    rm -rf "$d/state" "$d/spool" "$d/run" "$d/log"
    mkdir -p "$d/state" "$d/spool" "$d/run" "$d/log" || return 1
    slurm__write_conf "$(slurm__free_port)" "$(slurm__free_port)"
    slurmctld -f "$SLURM_CONF" || return 1
    slurm__wait 15 scontrol ping || return 1
    slurmd -f "$SLURM_CONF" -N "$SLURM_TEST_NODE" || return 1
    slurm__wait 30 slurm__node_idle
}

# Starts the cluster. Returns non-zero (after printing why and cleaning up)
# when it cannot: not root, packages missing, a daemon that does not start.
slurm_start() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "# slurm: the test cluster needs root (slurmd starts jobs as their user)"; return 1
    fi
    for cmd in munged slurmctld slurmd sbatch squeue scontrol; do
        command -v "$cmd" >/dev/null 2>&1 && continue
        echo "# slurm: $cmd is missing (scripts/install-deps.sh installs slurm-wlm and munge)"
        return 1
    done
    SLURM_TEST_DIR=$(mktemp -d "${TMPDIR:-/tmp}/tessera-slurm.XXXXXX") || return 1
    SLURM_TEST_STARTED=1
    chmod 755 "$SLURM_TEST_DIR"
    tag=$(basename "$SLURM_TEST_DIR" | sed 's/.*\.//' | tr 'A-Z' 'a-z')
    SLURM_TEST_CLUSTER="ts$tag"
    SLURM_TEST_NODE="tsnode$tag"
    SLURM_TEST_PARTITION="debug"
    SLURM_CONF="$SLURM_TEST_DIR/slurm.conf"
    export SLURM_CONF
    # munged: a socket directory others may traverse (jobs run as their user),
    # a key only root reads.
    mkdir -p "$SLURM_TEST_DIR/munge" && chmod 711 "$SLURM_TEST_DIR/munge"
    dd if=/dev/urandom of="$SLURM_TEST_DIR/munge/munge.key" bs=1024 count=1 2>/dev/null
    chmod 600 "$SLURM_TEST_DIR/munge/munge.key"
    if ! munged --force --socket="$SLURM_TEST_DIR/munge/munge.sock" \
            --key-file="$SLURM_TEST_DIR/munge/munge.key" \
            --pid-file="$SLURM_TEST_DIR/munge/munged.pid" \
            --log-file="$SLURM_TEST_DIR/munge/munged.log" \
            --seed-file="$SLURM_TEST_DIR/munge/munged.seed"; then
        echo "# slurm: munged did not start"; slurm__show_logs; slurm_stop; return 1
    fi
    tries=0
    until slurm__try_start; do
        tries=$((tries + 1))
        slurm__stop_daemons
        if [ "$tries" -ge 3 ]; then
            echo "# slurm: the cluster did not come up in $tries tries"
            slurm__show_logs; slurm_stop; return 1
        fi
    done
    echo "# slurm: cluster $SLURM_TEST_CLUSTER up (node $SLURM_TEST_NODE, ${SLURM_TEST_CPUS:-2} cpus, conf $SLURM_CONF)"
    return 0
}

# Kills pid (from a pid file) and waits up to 10 s for it to go.
slurm__kill_pidfile() {
    [ -f "$1" ] || return 0
    pid=$(cat "$1" 2>/dev/null)
    [ -n "$pid" ] || return 0
    kill "$pid" 2>/dev/null || return 0
    n=0
    while kill -0 "$pid" 2>/dev/null && [ "$n" -lt 50 ]; do sleep 0.2; n=$((n + 1)); done
    kill -9 "$pid" 2>/dev/null
    return 0
}

# Every process below pid $1, one per line.
slurm__descendants() {
    ps -e -o pid=,ppid= | awk -v root="$1" '
        { parent[$1] = $2 }
        END {
            for (p in parent) {
                q = parent[p]; n = 0
                while (q != "" && q > 1 && n < 64) {
                    if (q == root) { print p; break }
                    q = parent[q]; n++
                }
            }
        }'
}

# What is left of this cluster's jobs once its daemons are gone: the step
# daemons (their working directory is our log directory) with everything
# below them, and job processes that lost their parent (proctrack/linuxproc
# follows the process tree, so a job's grandchild whose parent died first
# escapes scancel), found by the SLURM_CONF and SLURM_JOB_ID in their
# environment.
slurm__kill_steps() {
    for pid in $(ps -e -o pid=,comm= | awk '$2 == "slurmstepd" { print $1 }'); do
        [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$SLURM_TEST_DIR/log" ] || continue
        for p in $(slurm__descendants "$pid") "$pid"; do kill -9 "$p" 2>/dev/null; done
    done
    for f in $(grep -lzsx "SLURM_CONF=$SLURM_CONF" /proc/[0-9]*/environ 2>/dev/null); do
        grep -qzs '^SLURM_JOB_ID=' "$f" || continue
        pid=${f#/proc/}; pid=${pid%/environ}
        [ "$pid" = "$$" ] || kill -9 "$pid" 2>/dev/null
    done
}

slurm__stop_daemons() {
    d=$SLURM_TEST_DIR
    slurm__kill_pidfile "$d/run/slurmd.pid"
    slurm__kill_pidfile "$d/run/slurmctld.pid"
    slurm__kill_steps
}

# Stops everything slurm_start started and removes its directory. Safe to
# call twice, or after a failed start. Jobs still in the cluster are
# cancelled first so that their processes end with them.
slurm_stop() {
    [ "$SLURM_TEST_STARTED" = 1 ] || return 0
    SLURM_TEST_STARTED=0
    if [ -f "$SLURM_TEST_DIR/run/slurmctld.pid" ]; then
        scancel --full --quiet --user="$(id -un)" >/dev/null 2>&1
        # Running jobs get SIGTERM, then SIGKILL after KillWait (2 s).
        slurm__wait 6 sh -c '[ -z "$(squeue -h -t running,completing -o %i 2>/dev/null)" ]'
    fi
    slurm__stop_daemons
    slurm__kill_pidfile "$SLURM_TEST_DIR/munge/munged.pid"
    rm -rf "$SLURM_TEST_DIR"
    return 0
}

# As a command: `tests/lib/slurm.sh run CMD...`.
if [ "$(basename "$0")" = slurm.sh ] && [ "${1:-}" = run ]; then
    shift
    [ $# -gt 0 ] || { echo "usage: tests/lib/slurm.sh run CMD [ARG...]" >&2; exit 2; }
    trap 'slurm_stop' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    slurm_start || exit 1
    export SLURM_TEST_DIR SLURM_TEST_NODE SLURM_TEST_PARTITION
    "$@"
    exit $?
fi
