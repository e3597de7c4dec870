#!/bin/sh
# Four users with --max-active-users 3: the fourth waits first in line with a
# reason and runs when a place frees; an active user's new workflow does not
# jump ahead of the waiting user. Several `tessera run` processes share one
# database: one leads the scheduler, the others follow and take over.
. "$(dirname "$0")/lib.sh"

cat > long.json <<'J'
{"name": "long", "jobs": [{"job_id": "s", "job_type": "sleep", "params": {"seconds": 8}}]}
J
cat > short.json <<'J'
{"name": "short", "jobs": [{"job_id": "s", "job_type": "sleep", "params": {"seconds": 1}}]}
J
common="--max-active-users 3 --concurrency-limit 8 --poll-seconds 0.1 --quiet"
running_count() { tessera status --all --json | jq '[.[] | select(.state=="running")] | length'; }

tessera_bg run long.json --user u1 $common; p1=$!
tessera_bg run long.json --user u2 $common; p2=$!
tessera_bg run long.json --user u3 $common; p3=$!
check "three users become active" wait_for 15 sh -c "[ \$($TESSERA_BIN status --all --json | jq '[.[] | select(.state==\"running\")] | length') -eq 3 ]"
tessera_bg run short.json --user u4 $common; p4=$!
check "the fourth user's workflow is stored" wait_for 10 sh -c "$TESSERA_BIN status 4 --all --json >/dev/null 2>&1"
sleep 0.5
wf_json 4 > w4.json
check_eq "fourth user waits" "$(jq -r .state w4.json)" queued
check_eq "fourth user is first in line" "$(jq -r .queue_position w4.json)" 1
check "the reason names the active user limit" grep -q "3 of 3 users active" w4.json
echo "# waiting_reason: $(jq -r .waiting_reason w4.json)"

tessera_bg run short.json --user u1 $common; p5=$!
check "the active user's new workflow is stored" wait_for 10 sh -c "$TESSERA_BIN status 5 --all --json >/dev/null 2>&1"
sleep 0.3
wf_json 5 > w5.json
check_eq "active user's new workflow queues (another user waits)" "$(jq -r .state w5.json)" queued
check_eq "it is second in line, behind the waiting user" "$(jq -r .queue_position w5.json)" 2
check "its reason says it waits behind other users (fair admission)" grep -q "fair admission" w5.json
echo "# waiting_reason: $(jq -r .waiting_reason w5.json)"
check "never more than 3 users active while waiting" sh -c "[ \$($TESSERA_BIN status --all --json | jq '[.[] | select(.state==\"running\") | .user] | unique | length') -le 3 ]"

rc=0
for p in $p1 $p2 $p3 $p4 $p5; do wait "$p" || rc=1; done
check_eq "every tessera run exits 0" "$rc" 0
tessera status --all --json > all.json
check_eq "all five workflows succeeded" "$(jq '[.[] | select(.state=="succeeded")] | length' all.json)" 5
a4=$(jq -r '.[] | select(.id==4) | .admitted_at' all.json)
a5=$(jq -r '.[] | select(.id==5) | .admitted_at' all.json)
check "the waiting user was not overtaken by the active user's newer workflow" sh -c "! test '$a5' \\< '$a4'"
check "admission events recorded a queue position" grep -q '"queue.position"' "$TESSERA_LOG"
summary
