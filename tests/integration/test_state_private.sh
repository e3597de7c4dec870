#!/bin/sh
# Nothing in the state directory is readable by other local accounts (issue
# 12, defect 12): a state directory made 0755 beforehand is tightened to 0700
# by serve, and everything the service and its jobs create below it - the
# database and its WAL, the log, the session secret, work directories, job
# logs, results - has no group or other permission bits.
. "$(dirname "$0")/lib.sh"

mkdir -p var/data
chmod 0755 var
umask 022   # what a login shell has: tessera must not rely on the caller's
check "a demo slide for a job that writes results" tessera demo-slide var/data/small.tiff --size 1024x1024 --seed 2

"$TESSERA_BIN" serve --listen 127.0.0.1:0 --workers 2 --poll-seconds 0.1 >serve.out 2>&1 &
SERVE_PID=$!
T_PIDS="$T_PIDS $SERVE_PID"
wait_for 10 grep -q 'http://' serve.out
URL=$(sed -n 's|.*\(http://[0-9.]*:[0-9]*\)/.*|\1|p' serve.out | head -n 1)
check "the service answers" wait_for 10 curl -fs "$URL/healthz"
cat > wf.json <<J
{"name": "private", "jobs": [{"job_id": "mask", "job_type": "tissue_mask", "image_path": "$T_DIR/var/data/small.tiff"},
                             {"job_id": "n", "job_type": "noop", "depends_on": ["mask"]}]}
J
check "a workflow with results succeeds" sh -c "TESSERA_SERVER=$URL $TESSERA_BIN submit wf.json --follow --user ann >follow.out 2>&1"
check "a token user is stored" sh -c "$TESSERA_BIN user add bob >/dev/null"
check_eq "the state directory is 0700" "$(stat -c %a var)" 700
check "the service's log says it tightened it" grep -q 'made it 0700' "$TESSERA_LOG"
check "results were written" sh -c "find var -path '*result*' -type f | grep -q ."
# var/data is the data root the test made itself (0755, an admin's choice).
open=$(find var -path var/data -prune -o -perm /077 -printf '%m %p\n' | head -n 5)
check_eq "nothing tessera made below it has group or other bits" "$open" ""
check_eq "the database is 0600" "$(stat -c %a var/tessera.db)" 600
summary
