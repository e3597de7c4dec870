#!/bin/sh
# bench/slurm_bench.sh [BUILD_DIR] - tessera on Slurm against native Slurm, in
# the same run, on a private single-node cluster (tests/lib/slurm.sh; root):
# a 200-job DAG of 10 branches (20 jobs each, serial inside a branch) of
# no-op jobs,
#   1. through `tessera run --executor slurm`,
#   2. submitted natively: the same DAG as 200 sbatch --wrap true jobs chained
#      with --dependency=afterok.
# Prints jobs/s (200 / wall time from the first submission to the last end)
# and the dependency-to-start latency (a job's start minus its predecessor's
# end, as Slurm records both, whole seconds), mean and max, for each, and
# the ratios. Figures, never assertions (GUIDE: speed is measured here).
# With 10 branches on 2 cpus most of that latency is waiting for a cpu, and
# the two orders differ: tessera submits only ready jobs, fairly across
# branches; natively all 200 are queued at once in submission order, so
# Slurm runs the first branches first. SLURM_BENCH_BRANCHES=1 gives the
# latency without that queueing.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
bin="$root/$build/tessera"
[ -x "$bin" ] || { echo "slurm_bench: $bin missing (make first)" >&2; exit 1; }
if [ "${SLURM_CONF:-}" = "" ] || [ "${SLURM_BENCH_INNER:-}" != 1 ]; then
    # Finished jobs must stay visible to squeue for the whole run.
    SLURM_TEST_CONF_EXTRA="MinJobAge=3600" SLURM_BENCH_INNER=1 \
        exec "$root/tests/lib/slurm.sh" run sh "$0" "$build"
fi
# SLURM_BENCH_BRANCHES / SLURM_BENCH_PER_BRANCH change the shape (e.g. 1 x 20:
# one chain, where the dependency latency has no queueing for cpus in it).
BRANCHES=${SLURM_BENCH_BRANCHES:-10}
PER_BRANCH=${SLURM_BENCH_PER_BRANCH:-20}
N=$((BRANCHES * PER_BRANCH))
dir=$(mktemp -d "${TMPDIR:-/tmp}/tessera-slurm-bench.XXXXXX")
trap 'rm -rf "$dir"' EXIT
cd "$dir" || exit 1

# Slurm's start and end of each job of ours named $1*: "name start end"
# in epoch seconds.
times_of() {
    squeue --me -h -t all -o '%j %S %e' | awk -v p="$1" 'index($1, p) == 1' |
        while read -r name s e; do
            echo "$name $(date -d "$s" +%s) $(date -d "$e" +%s)"
        done
}
# From "name start end" lines and a predecessor map ("name pred"): mean and
# max of start - pred's end.
latency() {
    awk 'NR == FNR { start[$1] = $2; end[$1] = $3; next }
         ($2 in end) && ($1 in start) { d = start[$1] - end[$2]; s += d; n++; if (d > m) m = d }
         END { if (n) printf "%.2f %d\n", s / n, m; else print "nan nan" }' "$1" "$2"
}

# ---- 1. tessera --------------------------------------------------------
{
    printf '{"name": "bench", "jobs": ['
    sep=""
    for b in $(seq 1 $BRANCHES); do
        for j in $(seq 1 $PER_BRANCH); do
            printf '%s\n {"job_id": "b%d-j%d", "job_type": "noop", "branch": "b%d"}' "$sep" "$b" "$j" "$b"
            sep=","
        done
    done
    printf ']}\n'
} > dag.json
export TESSERA_STATE_DIR="$dir/var" TESSERA_LOG="$dir/tessera.log"
t0=$(date +%s.%N)
TESSERA_EXECUTOR=slurm TESSERA_SLURM_POLL_SECONDS=${TESSERA_SLURM_POLL_SECONDS:-1} \
    "$bin" run dag.json --user bench --concurrency-limit 1000 --poll-seconds 0.2 --quiet ||
    echo "slurm_bench: tessera run failed" >&2
t1=$(date +%s.%N)
inst=$(cat "$dir/var/instance_id")
# job index i of branch b is (b-1)*20 + (j-1); name ts.<inst>.1.<index>.1
times_of "ts.$inst.1." | awk '{ split($1, p, "."); print "t" p[4], $2, $3 }' > t.times
awk -v per=$PER_BRANCH -v n=$N 'BEGIN { for (i = 0; i < n; i++) if (i % per) print "t" i, "t" (i - 1) }' > t.pred
t_done=$(wc -l < t.times)
t_rate=$(awk -v n="$t_done" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", n / (b - a) }')
set -- $(latency t.times t.pred)
t_lat=$1 t_max=$2

# ---- 2. native sbatch --dependency=afterok -----------------------------
: > n.pred
t2=$(date +%s.%N)
for b in $(seq 1 $BRANCHES); do
    prev=""
    for j in $(seq 1 $PER_BRANCH); do
        dep=""
        [ -n "$prev" ] && dep="--dependency=afterok:$prev"
        id=$(sbatch --parsable --no-requeue -J "nat.$b.$j" -o /dev/null $dep --wrap true) || break
        [ -n "$prev" ] && echo "n.$b.$j n.$b.$((j - 1))" >> n.pred
        prev=$id
    done
done
while [ -n "$(squeue --me -h -t pending,running,completing -o %j | grep '^nat\.')" ]; do sleep 0.2; done
t3=$(date +%s.%N)
times_of "nat." | awk '{ sub(/^nat/, "n", $1); print }' > n.times
n_done=$(awk '1' n.times | wc -l)
n_ok=$(squeue --me -h -t completed -o %j | grep -c '^nat\.')
n_rate=$(awk -v n="$n_ok" -v a="$t2" -v b="$t3" 'BEGIN { printf "%.2f", n / (b - a) }')
set -- $(latency n.times n.pred)
n_lat=$1 n_max=$2

echo "slurm_bench: $N jobs, $BRANCHES branch(es) of $PER_BRANCH (no-op jobs), 1 node x 2 cpus, slurmctld tick 1 s, tessera squeue every ${TESSERA_SLURM_POLL_SECONDS:-1} s"
printf '  %-34s %8s %14s %14s\n' "" "jobs/s" "dep->start mean" "dep->start max"
printf '  %-34s %8s %13ss %13ss   (%s of %s jobs)\n' "tessera --executor slurm" "$t_rate" "$t_lat" "$t_max" "$t_done" "$N"
printf '  %-34s %8s %13ss %13ss   (%s of %s completed)\n' "native sbatch --dependency=afterok" "$n_rate" "$n_lat" "$n_max" "$n_ok" "$N"
awk -v a="$t_rate" -v b="$n_rate" 'BEGIN { if (b > 0) printf "  ratio tessera/native jobs/s: %.2f\n", a / b }'
