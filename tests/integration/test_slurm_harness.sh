#!/bin/sh
# The private Slurm clusters of tests/lib/slurm.sh: one runs batch jobs; two
# at once (two test runs on one machine) use their own ports, munge sockets
# and directories and do not see each other's jobs; stopping one leaves no
# process or directory behind and does not disturb the other, even with a
# job running and its controller killed with SIGKILL.
. "$(dirname "$0")/lib.sh"
t_use_slurm
A_CONF=$SLURM_CONF
A_DIR=$SLURM_TEST_DIR

j=$(sbatch --parsable -J harness-a -o "$T_DIR/a.out" --wrap 'echo ran on $SLURMD_NODENAME')
check "sbatch --parsable prints a job id" sh -c "echo '$j' | grep -Eq '^[0-9]+$'"
check "the job runs to COMPLETED" wait_for 60 sh -c \
    "squeue -h -t all -j '$j' -o %T | grep -qx COMPLETED"
check_eq "it ran on the cluster's node" "$(cat "$T_DIR/a.out" 2>/dev/null)" "ran on $SLURM_TEST_NODE"

# A second cluster, as another test run would start it, in a subshell.
(
    . "$T_ROOT/tests/lib/slurm.sh"
    slurm_start >/dev/null || exit 1
    echo "$SLURM_CONF" > "$T_DIR/b.conf"
    cp "$SLURM_CONF" "$T_DIR/b-slurm.conf"
    echo "$SLURM_TEST_DIR" > "$T_DIR/b.dir"
    sbatch --parsable -J harness-b -o /dev/null --wrap 'sleep 300' > "$T_DIR/b.job"
    wait_for 60 sh -c "squeue -h -o %T | grep -qx RUNNING"
    squeue -h -o %j > "$T_DIR/b.sees"
    SLURM_CONF=$A_CONF squeue -h -t all -o %j > "$T_DIR/a.sees"
    # The worst case for clean-up: a running job and a controller gone.
    kill -9 "$(cat "$SLURM_TEST_DIR/run/slurmctld.pid")"
    slurm_stop
) > "$T_DIR/b.log" 2>&1
B_CONF=$(cat "$T_DIR/b.conf" 2>/dev/null)
B_DIR=$(cat "$T_DIR/b.dir" 2>/dev/null)
check "a second cluster starts beside the first" test -n "$B_CONF"
setting() { sed -n "s/^$1=//p" "$2" 2>/dev/null; }
B_SAVED="$T_DIR/b-slurm.conf"
check "the two clusters listen on different ports" test -n "$(setting SlurmctldPort "$B_SAVED")" -a \
    "$(setting SlurmctldPort "$A_CONF") $(setting SlurmdPort "$A_CONF")" != \
    "$(setting SlurmctldPort "$B_SAVED") $(setting SlurmdPort "$B_SAVED")"
check "... and use different munge sockets" test -n "$(setting AuthInfo "$B_SAVED")" -a \
    "$(setting AuthInfo "$A_CONF")" != "$(setting AuthInfo "$B_SAVED")"
check_eq "the second cluster sees only its own job" "$(cat "$T_DIR/b.sees" 2>/dev/null)" harness-b
check_eq "the first cluster sees only its own job" "$(cat "$T_DIR/a.sees" 2>/dev/null)" harness-a
check "stopping the second removes its directory" test ! -e "$B_DIR"
check "... and leaves none of its processes (daemons, job)" sh -c \
    "! ps -e -o args= | grep -v grep | grep -q '$B_DIR'"
left=""
for f in $(grep -lzsx "SLURM_CONF=$B_CONF" /proc/[0-9]*/environ 2>/dev/null); do left="$left $f"; done
check_eq "no job process of the second cluster is left" "$left" ""

j2=$(sbatch --parsable -J harness-a2 -o /dev/null --wrap 'true')
check "the first cluster still runs jobs" wait_for 60 sh -c \
    "squeue -h -t all -j '$j2' -o %T | grep -qx COMPLETED"
slurm_stop
check "slurm_stop removes the first cluster's directory" test ! -e "$A_DIR"
summary
