#!/bin/sh
# The service through its command-line clients: tessera serve on a free
# loopback port, then submit --follow (exit status from the final state),
# status, logs, cancel while queued, token mode with `tessera user add`, and
# a SIGTERM that drains and exits cleanly.
. "$(dirname "$0")/lib.sh"

# start_serve [options...]: starts the service, sets URL and SERVE_PID.
start_serve() {
    "$TESSERA_BIN" serve --listen 127.0.0.1:0 --workers 2 --poll-seconds 0.1 "$@" >serve.out 2>&1 &
    SERVE_PID=$!
    T_PIDS="$T_PIDS $SERVE_PID"
    wait_for 10 grep -q 'http://' serve.out
    URL=$(sed -n 's|.*\(http://[0-9.]*:[0-9]*\)/.*|\1|p' serve.out | head -n 1)
    wait_for 10 curl -fs "$URL/healthz"
}

cat > ok.json <<'J'
{"name": "ok", "jobs": [{"job_id": "a", "job_type": "sleep", "params": {"seconds": 0.5}},
                        {"job_id": "b", "job_type": "noop", "depends_on": ["a"]}]}
J
cat > bad.json <<'J'
{"name": "bad", "jobs": [{"job_id": "a", "job_type": "sleep", "params": {"seconds": "x"}}]}
J
cat > long.json <<'J'
{"name": "long", "jobs": [{"job_id": "s", "job_type": "sleep", "params": {"seconds": 30}}]}
J

start_serve --max-active-users 1 --concurrency-limit 2
check "serve prints where it listens" test -n "$URL"
export TESSERA_SERVER="$URL"
check "submit --follow exits 0 when the workflow succeeds" sh -c "$TESSERA_BIN submit ok.json --follow --user ann > follow.out"
check "--follow printed the job events" grep -q 'job.finished' follow.out
"$TESSERA_BIN" submit bad.json --user ann 2>err.txt
check_eq "an invalid workflow is exit 2" "$?" 2
check "and the message names the field" grep -q 'seconds' err.txt
check "remote status lists the workflow" sh -c "$TESSERA_BIN status --user ann | grep -q ' ok '"
check "remote status of one workflow as JSON" jq_true '.state == "succeeded"' "$TESSERA_BIN" status 1 --user ann --json
check "logs prints the job's log" sh -c "$TESSERA_BIN logs 1 a --user ann | grep -q '=== attempt 1'"
check "another user cannot read it" sh -c "! $TESSERA_BIN logs 1 a --user bob 2>/dev/null"

# With one active user, bob's workflow waits while ann's long one runs.
"$TESSERA_BIN" submit long.json --user ann > long.out
long_id=$(sed -n 's/^submitted workflow \([0-9]*\).*/\1/p' long.out)
"$TESSERA_BIN" submit ok.json --user bob > bob.out
bob_id=$(sed -n 's/^submitted workflow \([0-9]*\).*/\1/p' bob.out)
check "bob's workflow waits in line" wait_for 5 jq_true '.state == "queued" and .queue_position == 1' "$TESSERA_BIN" status "$bob_id" --user bob --json
check "cancel while queued" sh -c "$TESSERA_BIN cancel $bob_id --user bob"
check "the cancelled workflow never started" wait_for 5 jq_true '.state == "cancelled" and ([.jobs[] | select(.attempt > 0)] | length == 0)' "$TESSERA_BIN" status "$bob_id" --user bob --json
check "ann's long workflow is running" wait_for 5 jq_true '.state == "running"' "$TESSERA_BIN" status "$long_id" --user ann --json
check "cancel a running workflow" "$TESSERA_BIN" cancel "$long_id" --user ann
check "its 30 s sleep stops within seconds" wait_for 10 jq_true '.state == "cancelled" and .jobs[0].state == "cancelled"' "$TESSERA_BIN" status "$long_id" --user ann --json

# Retry a job of a failed workflow: it goes back through the line and re-runs
# the job (as a new attempt) and the dependents it had skipped.
cat > fails.json <<'J'
{"name": "fails", "jobs": [{"job_id": "t", "job_type": "sleep", "params": {"seconds": 5}, "timeout_s": 0.3},
                           {"job_id": "after", "job_type": "noop", "depends_on": ["t"]}]}
J
"$TESSERA_BIN" submit fails.json --user dan > fails.out
fid=$(sed -n 's/^submitted workflow \([0-9]*\).*/\1/p' fails.out)
check "a timed-out job fails its workflow" wait_for 10 jq_true '.state == "failed" and .jobs[1].state == "skipped"' "$TESSERA_BIN" status "$fid" --user dan --json
code=$(curl -s -o retry.json -w '%{http_code}' -X POST -H 'X-User-ID: dan' "$URL/api/workflows/$fid/jobs/t/retry")
check_eq "retry of a failed job is accepted" "$code" 202
check "the job ran again as attempt 2 and the workflow finished again" wait_for 10 jq_true '.state == "failed" and .jobs[0].attempt == 2 and (.jobs[0].attempts | length) == 2' "$TESSERA_BIN" status "$fid" --user dan --json
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'X-User-ID: dan' "$URL/api/workflows/1/jobs/a/retry")
check_eq "another user's job cannot be retried (404)" "$code" 404

kill -TERM "$SERVE_PID"
check "SIGTERM drains and the service exits" wait_for 25 sh -c "! kill -0 $SERVE_PID 2>/dev/null"

# Token mode: user add prints a token; only its hash is stored.
token=$("$TESSERA_BIN" user add carol 2>/dev/null)
check_eq "user add prints a 64-hex token" "$(echo "$token" | grep -cE '^[0-9a-f]{64}$')" 1
check "only the hash is stored" sh -c "! sqlite3 var/tessera.db 'select token_hash from users' | grep -q $token"
start_serve --auth token
export TESSERA_SERVER="$URL"
check "token mode accepts the token" sh -c "$TESSERA_BIN submit ok.json --token $token --follow >/dev/null"
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'X-User-ID: carol' "$URL/api/workflows")
check_eq "token mode refuses X-User-ID" "$code" 401
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $(echo "$token" | tr 0-9a-f a-f0-9)" "$URL/api/workflows")
check_eq "a forged token is refused" "$code" 401
summary
