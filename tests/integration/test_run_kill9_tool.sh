#!/bin/sh
# Issue 12 item 7: what a tool starts must not outlive its attempt. A tool
# (a shell script) starts a background `sleep`, one in its own session
# (setsid) and one after a double fork in its own session, then hangs.
#   1. kill -9 of the scheduler (`tessera run`): all three die with it, and
#      when the restarted scheduler runs attempt 2 none of attempt 1's is left;
#   2. kill -9 of the job's runner: the same, before the retry starts;
#   3. a tool that exits 0 but leaves processes running: they are killed,
#      the job log says so, and the job still succeeds.
. "$(dirname "$0")/lib.sh"

mkdir -p bin
# The tool: $1 = out dir, $2 = work dir. Each attempt writes the pids of its
# three sleepers into <work>/pids.<n>; attempt n > 1 first records which of
# the earlier attempts' sleepers are still alive, zombies not counted
# (<work>/alive.<n>).
cat > bin/spawner <<'S'
#!/bin/sh
out=$1; work=$2; mode=$3
n=1; while [ -e "$work/pids.$n" ]; do n=$((n + 1)); done
: > "$work/alive.$n"
i=1
while [ "$i" -lt "$n" ]; do
    for p in $(cat "$work/pids.$i"); do
        st=$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)
        if [ -n "$st" ] && [ "$st" != Z ]; then echo "$p" >> "$work/alive.$n"; fi
    done
    i=$((i + 1))
done
sleep 300 & plain=$!
setsid sleep 301 & sess=$!
setsid sh -c 'sleep 302 & echo $! > "$1"' sh "$work/double.$n" &
while [ ! -s "$work/double.$n" ]; do sleep 0.05; done
echo "$plain $sess $(cat "$work/double.$n")" > "$work/pids.$n.tmp"
mv "$work/pids.$n.tmp" "$work/pids.$n"
echo "PROGRESS 1 2 sleepers started"
if [ "$mode" = hang ] && [ "$n" -eq 1 ]; then sleep 600; fi
printf '{"type": "FeatureCollection", "features": []}' > "$out/r.geojson"
exit 0
S
chmod +x bin/spawner
cat > tools.json <<J
{"tools": [{"name": "spawner", "argv": ["$T_DIR/bin/spawner", "{out_dir}", "{work_dir}", "{mode}"],
  "params": {"mode": {"type": "enum", "choices": ["hang", "leave"], "default": "hang"}},
  "needs_image": false, "result": "r.geojson"}]}
J

# all_dead FILE: none of the pids listed in FILE is alive (zombies count as dead).
all_dead() {
    for p in $(cat "$1"); do
        st=$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)
        [ -z "$st" ] || [ "$st" = Z ] || return 1
    done
    return 0
}
# sleepers_of ATTEMPT_FILE: the pids file exists and lists three pids.
three_pids() { [ "$(wc -w < "$1" 2>/dev/null)" = 3 ]; }

# 1. kill -9 of the scheduler.
cat > hang.json <<'J'
{"name": "hang", "jobs": [{"job_id": "t", "job_type": "spawner", "params": {"mode": "hang"}}]}
J
tessera_bg run hang.json --tools tools.json --user kim --poll-seconds 0.1 --quiet; pid=$!
w1="$TESSERA_STATE_DIR/work/1/t"
check "attempt 1's tool started its three sleepers" wait_for 20 three_pids "$w1/pids.1"
kill -9 "$pid"
wait "$pid" 2>/dev/null
check "after kill -9 of the scheduler, the tool's sleepers are gone too" wait_for 5 all_dead "$w1/pids.1"
check "the restarted scheduler finishes the workflow" tessera run --tools tools.json --user kim --poll-seconds 0.1 --quiet
check_eq "the job ran a second attempt" "$(wf_json 1 | jq -r '.jobs[0].attempt')" 2
check_eq "no sleeper of attempt 1 was alive when attempt 2 ran" "$(cat "$w1/alive.2" 2>/dev/null | wc -l | tr -d ' ')" 0
check "attempt 2's own sleepers are gone once it ended" all_dead "$w1/pids.2"

# 2. kill -9 of the job's runner: the attempt fails, the retry starts clean.
cat > retry.json <<'J'
{"name": "retry", "jobs": [{"job_id": "t", "job_type": "spawner", "params": {"mode": "hang"},
  "max_retries": 1, "retry_delay_s": 0.5}]}
J
tessera_bg run retry.json --tools tools.json --user kim --poll-seconds 0.1 --quiet; pid=$!
w2="$TESSERA_STATE_DIR/work/2/t"
check "attempt 1's tool started its three sleepers" wait_for 20 three_pids "$w2/pids.1"
runner=$(pgrep -f "[r]un-job .*/work/2/t/attempt-1" | head -n 1)
check "the runner of attempt 1 is found" test -n "$runner"
kill -9 "$runner"
check "the workflow ends after the retry" wait_for 30 wf_is 2 .state succeeded
check "after kill -9 of the runner, the tool's sleepers are gone too" all_dead "$w2/pids.1"
check_eq "no sleeper of attempt 1 was alive when attempt 2 ran" "$(cat "$w2/alive.2" 2>/dev/null | wc -l | tr -d ' ')" 0
check_eq "attempt 1 is recorded as failed" "$(wf_json 2 | jq -r '.jobs[0].attempts[0].outcome')" failed
wait "$pid" 2>/dev/null

# 3. A tool that exits 0 and leaves its sleepers running.
cat > leave.json <<'J'
{"name": "leave", "jobs": [{"job_id": "t", "job_type": "spawner", "params": {"mode": "leave"}}]}
J
check "a tool that leaves processes behind still succeeds" tessera run leave.json --tools tools.json --user kim --poll-seconds 0.1 --quiet
w3="$TESSERA_STATE_DIR/work/3/t"
check "what it left running was killed when it exited" all_dead "$w3/pids.1"
check "the job log says so" grep -Eq 'tool spawner left [0-9]+ processes running after it exited; killed' "$w3/job.log"
summary
