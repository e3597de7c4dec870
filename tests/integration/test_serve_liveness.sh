#!/bin/sh
# Issue 12 item 1b: the master replaces children that live but make no
# progress, says why in its log, and no child outlives the master.
#   1. a request that hangs in its handler (the test-only hook
#      TESSERA_TEST_HANG_PATH, standing in for a read that blocks for good)
#      while the worker's other threads still run: the worker is replaced;
#   2. a worker stopped with SIGSTOP (its loops stop turning): replaced;
#   3. a scheduler stopped with SIGSTOP while a job runs: replaced, and the
#      job re-runs as attempt 2 with nothing left of attempt 1;
#   4. kill -9 of the master while a worker hangs in a request: every child
#      and job goes, and the port is free for a new master at once.
. "$(dirname "$0")/lib.sh"

export TESSERA_STALL_SECONDS=2 TESSERA_REQUEST_TIMEOUT_SECONDS=2 TESSERA_TEST_HANG_PATH=/test/hang

# start_serve PORT [options...]: starts the service, sets URL and SERVE_PID.
start_serve() {
    port=$1; shift
    "$TESSERA_BIN" serve --listen "127.0.0.1:$port" --poll-seconds 0.1 "$@" >serve.out 2>&1 &
    SERVE_PID=$!
    T_PIDS="$T_PIDS $SERVE_PID"
    wait_for 10 grep -q 'http://' serve.out || return 1
    URL=$(sed -n 's|.*\(http://[0-9.]*:[0-9]*\)/.*|\1|p' serve.out | head -n 1)
    wait_for 10 curl -fs "$URL/healthz"
}
# children_named MASTER COMM: pids of the master's children with that name.
children_named() {
    for p in $(pgrep -P "$1"); do
        [ "$(cat "/proc/$p/comm" 2>/dev/null)" = "$2" ] && echo "$p"
    done
}
alive() { st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null); [ -n "$st" ] && [ "$st" != Z ]; }
healthy() { curl -fs --max-time 2 "$URL/healthz" >/dev/null; }
logged() { grep -q "$1" "$TESSERA_LOG"; }

# 1. A request hangs in its handler.
start_serve 0 --workers 1
check "the service is up" healthy
w1=$(children_named "$SERVE_PID" tessera-http)
curl -s --max-time 1 "$URL/test/hang" >/dev/null
# The worker's other request threads go on serving (pool.h), so /healthz may
# never have stopped; the master replaces the worker all the same.
check "the master logs why it replaced the worker" wait_for 15 \
    logged '"child stalled; replacing".*"http worker".*a request has been in its handler for [0-9.]* s (limit 2 s): GET /test/hang'
check "the hung worker is replaced: /healthz answers" wait_for 15 healthy
other_worker() { children_named "$SERVE_PID" tessera-http | grep -vqx "$1"; }
check "a new worker serves beside the draining one" wait_for 10 other_worker "$w1"
check "the hung worker is gone after its drain" wait_for 25 sh -c "! kill -0 $w1 2>/dev/null || [ \"\$(awk '{print \$3}' /proc/$w1/stat)\" = Z ]"

# 2. A worker stopped with SIGSTOP.
w2=$(children_named "$SERVE_PID" tessera-http)
kill -STOP "$w2"
check "a stopped worker is replaced" wait_for 15 logged "\"child_pid\":$w2,\"reason\":\"its main loop has not turned"
check "and the service answers" wait_for 10 healthy
check "the stopped worker, continued and told to stop, is gone" wait_for 25 sh -c "! kill -0 $w2 2>/dev/null || [ \"\$(awk '{print \$3}' /proc/$w2/stat)\" = Z ]"

# 3. The scheduler stopped with SIGSTOP while a job runs.
cat > long.json <<'J'
{"name": "long", "jobs": [{"job_id": "s", "job_type": "sleep", "params": {"seconds": 4}}]}
J
export TESSERA_SERVER="$URL"
"$TESSERA_BIN" submit long.json --user ann > long.out
check "the job runs" wait_for 10 jq_true '.jobs[0].state == "running"' "$TESSERA_BIN" status 1 --user ann --json
s1=$(children_named "$SERVE_PID" tessera-sched)
runner=$(pgrep -f "[r]un-job .*/work/1/s/attempt-1" | head -n 1)
kill -STOP "$s1"
check "a stopped scheduler is replaced" wait_for 15 logged "\"child\":\"scheduler\",\"child_pid\":$s1,\"reason\":\"its main loop has not turned"
check "its job process died with it" wait_for 10 sh -c "! kill -0 ${runner:-0} 2>/dev/null || [ \"\$(awk '{print \$3}' /proc/${runner:-0}/stat)\" = Z ]"
check "the new scheduler re-runs the job: the workflow succeeds" wait_for 40 jq_true '.state == "succeeded"' "$TESSERA_BIN" status 1 --user ann --json
check_eq "as attempt 2" "$("$TESSERA_BIN" status 1 --user ann --json | jq -r '.jobs[0].attempt')" 2

# 4. kill -9 of the master while a worker hangs in a request and a job runs.
port=$(echo "$URL" | sed 's|.*:||')
"$TESSERA_BIN" submit long.json --user bob > long2.out
check "a job runs" wait_for 10 jq_true '.jobs[0].state == "running"' "$TESSERA_BIN" status 2 --user bob --json
curl -s --max-time 1 "$URL/test/hang" >/dev/null
pids=$(pgrep -P "$SERVE_PID"; pgrep -f "[r]un-job .*/work/2/")
kill -9 "$SERVE_PID"
wait "$SERVE_PID" 2>/dev/null
mv serve.out serve1.out
check "a new master binds the same port at once" start_serve "$port" --workers 1
gone() { for p in $pids; do alive "$p" && return 1; done; return 0; }
check "every child and job of the killed master is gone" wait_for 20 gone
check "the new master serves" healthy
kill -TERM "$SERVE_PID"
check "and stops cleanly" wait_for 25 sh -c "! kill -0 $SERVE_PID 2>/dev/null"
summary
