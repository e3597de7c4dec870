#!/bin/sh
# The scheduler on Slurm (--executor slurm, issue 14) with a private
# single-node cluster of 2 CPUs (tests/lib/slurm.sh): the branches and
# admission tests run unchanged on it; cancel reaches pending and running
# Slurm jobs and leaves nothing in Slurm; retries and timeouts make new
# attempts, each its own Slurm job; progress of a running job reaches the
# store; bad executor settings are refused naming the variable.
. "$(dirname "$0")/lib.sh"
t_slurm_or_skip

# Refused before anything starts (no cluster needed for these).
echo '{"name": "x", "jobs": [{"job_id": "a", "job_type": "noop"}]}' > noop.json
TESSERA_EXECUTOR=pbs "$TESSERA_BIN" run noop.json --quiet > bad.out 2>&1
check_eq "an unknown executor is refused (exit 2)" "$?" 2
check "... naming the variable" grep -q 'TESSERA_EXECUTOR: must be "local" or "slurm"' bad.out
TESSERA_SLURM_EXTRA_ARGS="--time=5" "$TESSERA_BIN" run noop.json --quiet > bad.out 2>&1
check "an extra sbatch option tessera owns is refused" grep -q 'TESSERA_SLURM_EXTRA_ARGS: "--time=5": tessera sets --time itself' bad.out
PATH=/nonexistent TESSERA_EXECUTOR=slurm "$TESSERA_BIN" run noop.json --quiet > bad.out 2>&1
check "slurm without sbatch on PATH is refused clearly" grep -q 'TESSERA_EXECUTOR=slurm: sbatch is not on PATH' bad.out
rm -rf "$TESSERA_STATE_DIR"

t_use_slurm
export TESSERA_EXECUTOR=slurm TESSERA_SLURM_POLL_SECONDS=0.5 TESSERA_SLURM_MARKER_WAIT_SECONDS=5

# The scheduler's own integration tests, on Slurm.
t_run_suite "$T_ROOT/tests/integration/test_run_branches.sh"
t_run_suite "$T_ROOT/tests/integration/test_run_admission.sh"

ours() { squeue --me -h -t all -o '%i %T %j' | grep ' ts\.'; }
count_state() { ours | awk -v s="$1" '$2 == s' | wc -l; }

# Cancel: three 2-cpu jobs on a 2-cpu node, so one runs and two wait in
# Slurm (pending); the workflow's cancel reaches all three.
cat > cancel.json <<'J'
{"name": "cancel", "jobs": [
 {"job_id": "c1", "job_type": "sleep", "params": {"seconds": 120}, "cpus": 2, "branch": "a"},
 {"job_id": "c2", "job_type": "sleep", "params": {"seconds": 120}, "cpus": 2, "branch": "b"},
 {"job_id": "c3", "job_type": "sleep", "params": {"seconds": 120}, "cpus": 2, "branch": "c"}]}
J
# Through the service (cancel is a command to it): serve on a free port.
# With a session secret and a database password in its environment, which a
# batch job must not carry (sbatch exports its environment into the job).
TESSERA_SESSION_SECRET=0123456789abcdef0123456789abcdef-not-for-jobs PGPASSWORD=not-for-jobs-either \
    "$TESSERA_BIN" serve --listen 127.0.0.1:0 --workers 1 --poll-seconds 0.2 --concurrency-limit 8 \
    > serve.out 2>&1 &
SERVE_PID=$!
T_PIDS="$T_PIDS $SERVE_PID"
wait_for 20 grep -q 'http://' serve.out
URL=$(sed -n 's|.*\(http://[0-9.]*:[0-9]*\)/.*|\1|p' serve.out | head -n 1)
check "serve --executor slurm starts" wait_for 20 curl -fs "$URL/healthz"
"$TESSERA_BIN" submit cancel.json --server "$URL" --user alice > submit.out 2>&1
cid=$(sed -n 's/^submitted workflow \([0-9]*\).*/\1/p' submit.out)
check "the workflow is submitted" test -n "$cid"
check "one job runs and two wait in Slurm" wait_for 60 sh -c \
    "[ \$(squeue --me -h -t running -o %j | grep -c '^ts\.') -eq 1 ] && [ \$(squeue --me -h -t pending -o %j | grep -c '^ts\.') -eq 2 ]"
check "a job pending in Slurm says why (a progress event)" wait_for 30 sh -c \
    "curl -fs -H 'X-User-ID: alice' '$URL/api/events?since=0' | grep -Eq 'Slurm job [0-9]+ PENDING \\((Resources|Priority)\\)'"
check "/metrics: one job running and two pending in Slurm (the leader's view)" wait_for 30 sh -c \
    "curl -fs '$URL/metrics' | grep -qx 'tessera_slurm_jobs{state=\"running\"} 1' && curl -fs '$URL/metrics' | grep -qx 'tessera_slurm_jobs{state=\"pending\"} 2'"
check "progress of the running job reaches the store" wait_for 30 jq_true \
    '[.jobs[] | select(.progress > 0)] | length >= 1' "$TESSERA_BIN" status "$cid" --all --json
# The one running job's runner, started by slurmstepd: its environment.
runner_env() {
    for p in $(pgrep -f ' run-job '); do tr '\0' '\n' < "/proc/$p/environ"; done > runner.env 2>/dev/null
    grep -q '^SLURM_JOB_ID=' runner.env
}
check "the running batch job's runner is found" wait_for 20 runner_env
check "the batch job carries no session secret" sh -c "! grep -q '^TESSERA_SESSION_SECRET=' runner.env"
check "nor the database password" sh -c "! grep -q '^PGPASSWORD=' runner.env"
"$TESSERA_BIN" cancel "$cid" --server "$URL" --user alice > /dev/null
check "the workflow ends after the cancel" wait_for 60 wf_is "$cid" .state cancelled
wf_json "$cid" > cancel.st
check_eq "the workflow is cancelled" "$(jq -r .state cancel.st)" cancelled
check_eq "every job is cancelled" "$(jq '[.jobs[] | select(.state == "cancelled")] | length' cancel.st)" 3
check "nothing of it is left pending or running in Slurm" wait_for 30 sh -c \
    "[ -z \"\$(squeue --me -h -t pending,running,completing -o %j | grep '^ts\.')\" ]"
check_eq "its three Slurm jobs ended CANCELLED" "$(count_state CANCELLED)" 3
slurm_metrics() {
    curl -fs "$URL/metrics" > metrics.txt &&
        grep -Eq '^tessera_slurm_submissions_total [3-9]' metrics.txt &&
        grep -q '^tessera_slurm_up 1' metrics.txt &&
        grep -Eq '^tessera_slurm_squeue_calls_total [1-9]' metrics.txt
}
check "/metrics has the Slurm figures (submissions, squeue calls, up)" wait_for 30 slurm_metrics
kill -TERM "$SERVE_PID"
check "serve stops on SIGTERM" wait_for 30 sh -c "! kill -0 $SERVE_PID 2>/dev/null"

# Retries and timeouts: a 60 s job with a 2 s timeout and one retry: two
# attempts, each its own Slurm job, both timed out; the workflow fails.
cat > timeout.json <<'J'
{"name": "timeout", "jobs": [
 {"job_id": "t", "job_type": "sleep", "params": {"seconds": 60}, "timeout_s": 2,
  "max_retries": 1, "retry_delay_s": 0}]}
J
tessera run timeout.json --user bob --poll-seconds 0.2 --quiet > timeout.out 2>&1
check_eq "tessera run reports the failure (exit 1)" "$?" 1
wf_json "$(( cid + 1 ))" > timeout.st
check_eq "the job failed after two attempts" "$(jq -r '.jobs[0].state + " " + (.jobs[0].attempt | tostring)' timeout.st)" "failed 2"
check_eq "both attempts timed out" "$(jq -r '[.jobs[0].attempts[].outcome] | join(",")' timeout.st)" "timeout,timeout"
check "the reason says so" sh -c "jq -r '.jobs[0].attempts[1].reason' timeout.st | grep -q 'timed out after 2 s'"
ids=$(jq -r '[.jobs[0].attempts[].external_id] | unique | length' timeout.st)
check_eq "each attempt was its own Slurm job" "$ids" 2
check "no attempt is left running in Slurm" wait_for 30 sh -c \
    "[ -z \"\$(squeue --me -h -t pending,running,completing -o %j | grep '^ts\.')\" ]"
check "a job's Slurm comment names its tenant, workflow and job" sh -c \
    "squeue --me -h -t all -o '%k' | grep -qx 'tessera user=bob workflow=$(( cid + 1 )) job=t'"
check_eq "every Slurm job carries an attempt's token in its name" \
    "$(ours | awk '{print $3}' | grep -Evc '^ts\.[0-9a-f]{16}\.[0-9]+\.[0-9]+\.[0-9]+$')" 0
summary
