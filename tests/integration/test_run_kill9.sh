#!/bin/sh
# kill -9 of `tessera run` in the middle of a workflow, then start again: the
# workflow completes, finished jobs are not re-run, the interrupted job is
# re-run as a new attempt with the reason recorded, and no job process of the
# dead scheduler is left behind.
. "$(dirname "$0")/lib.sh"

cat > chain.json <<'J'
{"name": "chain", "jobs": [
 {"job_id": "j1", "job_type": "sleep", "params": {"seconds": 1}},
 {"job_id": "j2", "job_type": "sleep", "params": {"seconds": 2}},
 {"job_id": "j3", "job_type": "sleep", "params": {"seconds": 0.5}},
 {"job_id": "j4", "job_type": "noop"}]}
J
tessera_bg run chain.json --user kim --poll-seconds 0.1 --quiet; pid=$!
check "j2 starts" wait_for 15 wf_is 1 '.jobs[1].state' running
kill -9 "$pid"
wait "$pid" 2>/dev/null
sleep 0.5
wf_json 1 > before.json
check_eq "j1 is recorded succeeded" "$(jq -r '.jobs[0].state' before.json)" succeeded
check_eq "j2 is still recorded running (its scheduler died)" "$(jq -r '.jobs[1].state' before.json)" running
check "the dead scheduler's job process is gone too" sh -c "! pgrep -f '[r]un-job .*/work/1/j2/' >/dev/null"

check "tessera run with no file resumes and succeeds" tessera run --user kim --poll-seconds 0.1
wf_json 1 > after.json
check_eq "workflow succeeded" "$(jq -r .state after.json)" succeeded
check_eq "j1 was not re-run" "$(jq -r '.jobs[0].attempt' after.json)" 1
check_eq "j2 ran a second attempt" "$(jq -r '.jobs[1].attempt' after.json)" 2
check_eq "j2's first attempt is recorded interrupted" "$(jq -r '.jobs[1].attempts[0].outcome' after.json)" interrupted
check "the reason names the interruption" sh -c "jq -r '.jobs[1].attempts[0].reason' after.json | grep -q 'interrupted: scheduler .* stopped while attempt 1 ran'"
check_eq "j1 ran once (one attempt header in its log)" "$(grep -c '=== attempt' var/work/1/j1/job.log)" 1
check_eq "no job was recorded succeeded twice" "$(grep -c '"job.finished"' "$TESSERA_LOG" | tr -d ' ')" \
    "$(grep '"job.finished"' "$TESSERA_LOG" | jq -r '.job_id' | sort -u | wc -l | tr -d ' ')"
summary
