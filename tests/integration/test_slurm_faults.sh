#!/bin/sh
# Faults of the Slurm executor (issue 14) on a private single-node cluster
# (tests/lib/slurm.sh): sbatch refusing the job; scancel from outside
# tessera; the node set down under a running job (NODE_FAIL: a new attempt
# once the node is back); Slurm unreachable (jobs keep their state and say
# why); SIGTERM and kill -9 of the whole service mid-run, and kill -9 between the
# recorded intent and sbatch - on restart every job is adopted, none runs
# twice, none is lost; an sbatch that died before reaching Slurm is found
# absent and the attempt re-run. Each ends in the right state with its reason.
. "$(dirname "$0")/lib.sh"
t_slurm_or_skip
t_use_slurm
export TESSERA_EXECUTOR=slurm TESSERA_SLURM_POLL_SECONDS=0.5 TESSERA_SLURM_MARKER_WAIT_SECONDS=5

# Slurm jobs of workflow $1 (any state) as "id state name" lines.
slurm_jobs_of() { squeue --me -h -t all -o '%i %T %j' | awk -v wf="$1" '{ split($3, p, "."); if (p[1] == "ts" && p[3] == wf) print }'; }
running_of() { slurm_jobs_of "$1" | awk '$2 == "RUNNING"' | wc -l; }
attempt_json() { "$TESSERA_BIN" status "$1" --all --json | jq -r "$2"; }
running_is() { [ "$(running_of "$1")" -eq "$2" ]; }
jobs_are() { [ "$(slurm_jobs_of "$1" | wc -l)" -eq "$2" ]; }
has_text() { attempt_json "$1" "$2" | grep -q "$3"; }

# sbatch refusing the job (a partition that does not exist): the attempt
# fails with sbatch's words and nothing reaches Slurm.
echo '{"name": "refused", "jobs": [{"job_id": "r", "job_type": "noop"}]}' > refused.json
TESSERA_SLURM_PARTITION=nosuch "$TESSERA_BIN" run refused.json --user ann --quiet > refused.out 2>&1
check_eq "tessera run exits 1 when sbatch refuses the job" "$?" 1
check "the job failed with sbatch's reason" has_text 1 '.jobs[0].reason' 'sbatch: .*[Pp]artition'
check_eq "nothing of it is in Slurm" "$(slurm_jobs_of 1 | wc -l)" 0

# start_serve [PATH prefix]: the service on a free port (URL, SERVE_PID).
start_serve() {
    PATH="${1:-}$PATH" "$TESSERA_BIN" serve --listen 127.0.0.1:0 --workers 1 --poll-seconds 0.2 \
        --concurrency-limit 8 > serve.out 2>&1 &
    SERVE_PID=$!
    T_PIDS="$T_PIDS $SERVE_PID"
    wait_for 20 grep -q 'http://' serve.out
    URL=$(sed -n 's|.*\(http://[0-9.]*:[0-9]*\)/.*|\1|p' serve.out | head -n 1)
    wait_for 20 curl -fs "$URL/healthz"
}
# kill -9 of the service: the master and every process it started (not
# what those started in turn: a submitting sbatch keeps going).
kill9_serve() {
    kids=$(ps -o pid= --ppid "$SERVE_PID")
    kill -9 "$SERVE_PID" $kids 2>/dev/null
    wait_for 10 sh -c "! kill -0 $SERVE_PID 2>/dev/null"
}
submit() { # FILE -> prints the workflow id
    "$TESSERA_BIN" submit "$1" --server "$URL" --user ann | sed -n 's/^submitted workflow \([0-9]*\).*/\1/p'
}
events() { curl -fs -H 'X-User-ID: ann' "$URL/api/events?since=0&workflow=$1"; }

start_serve
check "serve --executor slurm starts" test -n "$URL"

# scancel from outside tessera: the attempt fails, saying so.
echo '{"name": "outside", "jobs": [{"job_id": "o", "job_type": "sleep", "params": {"seconds": 120}}]}' > outside.json
w=$(submit outside.json)
check "the job runs in Slurm" wait_for 60 running_is "$w" 1
scancel "$(slurm_jobs_of "$w" | awk '{print $1}')"
check "scancel from outside fails the job" wait_for 60 wf_is "$w" .state failed
check "... with the reason 'cancelled outside tessera'" has_text "$w" '.jobs[0].reason' \
    'CANCELLED: the job was cancelled outside tessera'


# The node set down under a running job: NODE_FAIL, not the job's fault: a
# new attempt (not counted as a failure), which runs once the node is back.
echo '{"name": "node", "jobs": [{"job_id": "n", "job_type": "sleep", "params": {"seconds": 4}}]}' > node.json
w=$(submit node.json)
check "the job runs in Slurm" wait_for 60 running_is "$w" 1
scontrol update nodename="$SLURM_TEST_NODE" state=down reason=tessera-test
check "the lost attempt is re-run as attempt 2" wait_for 60 wf_is "$w" '.jobs[0].attempt' 2
# ReturnToService=2 may have brought it back already when slurmd
# re-registered; then resume is refused, which is fine.
scontrol update nodename="$SLURM_TEST_NODE" state=resume 2>/dev/null || true
check "attempt 2 succeeds once the node is back" wait_for 90 wf_is "$w" .state succeeded
"$TESSERA_BIN" status "$w" --all --json > node.st
check "attempt 1 was interrupted by NODE_FAIL" sh -c \
    "jq -r '.jobs[0].attempts[0].outcome + \" \" + .jobs[0].attempts[0].reason' node.st | grep -q '^interrupted Slurm NODE_FAIL'"
check_eq "... and not counted as a failure" "$(jq -r '.jobs[0].failures' node.st)" 0

# Slurm unreachable (slurmctld stopped): the running job keeps its state,
# says why, and finishes when Slurm is back.
# (20 s: a failing squeue can take 10 s to give up, and a job whose exit
# marker appears meanwhile rightly succeeds without Slurm.)
echo '{"name": "away", "jobs": [{"job_id": "u", "job_type": "sleep", "params": {"seconds": 20}}]}' > away.json
w=$(submit away.json)
check "the job runs in Slurm" wait_for 60 running_is "$w" 1
kill "$(cat "$SLURM_TEST_DIR/run/slurmctld.pid")"
unreachable_said() { events "$1" | grep -q 'Slurm unreachable'; }
check "the job says Slurm is unreachable" wait_for 60 unreachable_said "$w"
check_eq "... and is still running" "$(attempt_json "$w" '.jobs[0].state')" running
# What an operator sees (issue 18): squeue down and its failures counted.
check "/metrics: tessera_slurm_up 0 while slurmctld is away" wait_for 30 sh -c \
    "curl -fs '$URL/metrics' | grep -qx 'tessera_slurm_up 0'"
check "/metrics: the failed squeue calls are counted" sh -c \
    "curl -fs '$URL/metrics' | awk '\$1 == \"tessera_slurm_squeue_failures_total\" && \$2 > 0 {ok = 1} END {exit !ok}'"
slurmctld -f "$SLURM_CONF"
check "it succeeds once Slurm is back" wait_for 90 wf_is "$w" .state succeeded
check_eq "... in its first attempt" "$(attempt_json "$w" '.jobs[0].attempt')" 1

# kill -9 of the whole service while jobs run in Slurm: the restarted one
# adopts them. None re-run, none lost, none recorded twice.
cat > k9.json <<'J'
{"name": "k9", "jobs": [
 {"job_id": "a1", "job_type": "sleep", "params": {"seconds": 5}, "branch": "a"},
 {"job_id": "a2", "job_type": "sleep", "params": {"seconds": 1}, "branch": "a"},
 {"job_id": "b1", "job_type": "sleep", "params": {"seconds": 5}, "branch": "b"},
 {"job_id": "b2", "job_type": "sleep", "params": {"seconds": 1}, "branch": "b"}]}
J
w=$(submit k9.json)
check "two jobs run in Slurm" wait_for 60 running_is "$w" 2
kill9_serve
check "they keep running without tessera" test "$(running_of "$w")" -eq 2
start_serve
check "the restarted service finishes the workflow" wait_for 120 wf_is "$w" .state succeeded
"$TESSERA_BIN" status "$w" --all --json > k9.st
check_eq "every job ran in one attempt" "$(jq -r '[.jobs[].attempt] | join(",")' k9.st)" "1,1,1,1"
check_eq "one Slurm job per job, none twice" "$(slurm_jobs_of "$w" | wc -l)" 4
ran=0
for j in a1 a2 b1 b2; do
    n=$(grep -c 'run-job: .*succeeded' "$TESSERA_STATE_DIR/work/$w/$j/job.log")
    ran=$((ran + n))
done
check_eq "each ran exactly once (its log)" "$ran" 4
check "the adopted attempts kept their Slurm ids" jq -e \
    '[.jobs[].attempts[0].external_id | select(. != null and . != "")] | length == 4' k9.st

# A clean stop (SIGTERM) hands the running jobs over the same way: they
# stay in Slurm and the next service adopts them; nothing is re-run.
cat > term.json <<'J'
{"name": "term", "jobs": [
 {"job_id": "a", "job_type": "sleep", "params": {"seconds": 5}, "branch": "a"},
 {"job_id": "b", "job_type": "sleep", "params": {"seconds": 5}, "branch": "b"}]}
J
w=$(submit term.json)
check "two jobs run in Slurm" wait_for 60 running_is "$w" 2
kill -TERM "$SERVE_PID"
check "serve stops on SIGTERM" wait_for 30 sh -c "! kill -0 $SERVE_PID 2>/dev/null"
check "its jobs keep running in Slurm" test "$(running_of "$w")" -eq 2
start_serve
check "the next service finishes them" wait_for 120 wf_is "$w" .state succeeded
check_eq "each in its first attempt" "$(attempt_json "$w" '[.jobs[].attempt] | join(",")')" "1,1"
check_eq "two Slurm jobs in all" "$(slurm_jobs_of "$w" | wc -l)" 2

# kill -9 between the recorded intent and sbatch's answer (Galaxy #6246):
# an sbatch that takes its time, the service killed meanwhile; sbatch goes
# on and submits. The restarted service finds the job by its token and
# adopts it instead of submitting it again.
mkdir -p slowbin
cat > slowbin/sbatch <<EOF
#!/bin/sh
touch "$T_DIR/sbatch.started"
sleep 3
exec $(command -v sbatch) "\$@"
EOF
chmod +x slowbin/sbatch
kill -TERM "$SERVE_PID"; wait_for 30 sh -c "! kill -0 $SERVE_PID 2>/dev/null"
start_serve "$T_DIR/slowbin:"
echo '{"name": "intent", "jobs": [{"job_id": "i", "job_type": "sleep", "params": {"seconds": 2}}]}' > intent.json
w=$(submit intent.json)
check "sbatch is running" wait_for 60 test -e "$T_DIR/sbatch.started"
kill9_serve
check "the slow sbatch submitted the job anyway" wait_for 30 jobs_are "$w" 1
start_serve
check "the restarted service finishes it" wait_for 120 wf_is "$w" .state succeeded
check_eq "in its first attempt" "$(attempt_json "$w" '.jobs[0].attempt')" 1
check_eq "submitted once" "$(slurm_jobs_of "$w" | wc -l)" 1
check_eq "and run once" "$(grep -c 'run-job: .*succeeded' "$TESSERA_STATE_DIR/work/$w/i/job.log")" 1
# The same, but the sbatch dies without reaching Slurm: after the restart
# the token is nowhere in Slurm, so the attempt never ran; it is re-run as
# attempt 2 (not counted as a failure) - never submitted blindly.
mkdir -p lostbin
printf '#!/bin/sh\ntouch "%s/sbatch.lost"\nsleep 3\nexit 1\n' "$T_DIR" > lostbin/sbatch
chmod +x lostbin/sbatch
kill -TERM "$SERVE_PID"; wait_for 30 sh -c "! kill -0 $SERVE_PID 2>/dev/null"
start_serve "$T_DIR/lostbin:"
w=$(submit intent.json)
check "the doomed sbatch is running" wait_for 60 test -e "$T_DIR/sbatch.lost"
kill9_serve
start_serve
check "the restarted service finishes it" wait_for 120 wf_is "$w" .state succeeded
"$TESSERA_BIN" status "$w" --all --json > lost.st
check "attempt 1 is interrupted: never submitted" grep -q '"reason": *"not found in Slurm after the scheduler restarted' lost.st
check_eq "attempt 2 ran, no failure counted" "$(jq -r '"\(.jobs[0].attempt) \(.jobs[0].failures)"' lost.st)" "2 0"
check_eq "one Slurm job in all" "$(slurm_jobs_of "$w" | wc -l)" 1
kill -TERM "$SERVE_PID"
check "serve stops on SIGTERM" wait_for 30 sh -c "! kill -0 $SERVE_PID 2>/dev/null"
summary
