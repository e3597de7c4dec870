#!/bin/sh
# The scheduling benchmark of issue 16, every figure from the same run:
#   - a 2,000-job DAG of noop jobs (20 branches x 100, a cross-branch edge
#     every 10th job) through `tessera run` at concurrency 2 against
#     `make -j2` of the same graph (bench/sched_bench.c), with runners
#     exec'd (TESSERA_FORK_SERVER=0, the old way) and forked by the fork
#     server (the default): jobs/s, the ratio to make, the CPU time of each,
#     and the latency from a job's last predecessor's runner ending to its
#     own runner beginning (p50/p99; the runners' own clock, finished_at and
#     started_at of their exit markers); the chain that follows has one job
#     ready at a time, so its latency is the dependency-to-start latency
#     with a free slot. State dirs under $TMPDIR (default /tmp);
#   - the runner start cost alone, exec vs fork (bench/start_bench.c).
#   bench/dag_vs_make.sh BUILD_DIR [BRANCHES [JOBS_PER_BRANCH [CPUS]]]
set -eu
build=${1:?usage: bench/dag_vs_make.sh BUILD_DIR [BRANCHES [JOBS_PER_BRANCH [CPUS]]]}
branches=${2:-20}
per=${3:-100}
cpus=${4:-2}
echo "== runners exec'd (TESSERA_FORK_SERVER=0)"
TESSERA_FORK_SERVER=0 "$build/bench/sched_bench" "$build/tessera" "$branches" "$per" "$cpus"
echo "== runners forked by the fork server (default)"
"$build/bench/sched_bench" "$build/tessera" "$branches" "$per" "$cpus"
echo "== runner start cost"
"$build/bench/start_bench" 300
