#!/bin/sh
# tessera-runner, the small runner binary (src/tessera_runner.c): the local
# executor forks the runners of job types that read no slides from it, and
# those that do from tessera; it is used only when it is the one built with
# this tessera (same directory, same build stamp), else every job runs from
# tessera as before; TESSERA_SMALL_RUNNER=0 turns it off.
. "$(dirname "$0")/lib.sh"

bindir=$(dirname "$TESSERA_BIN")
check "tessera-runner is built beside tessera" test -x "$bindir/tessera-runner"
check "tessera-runner version prints a build stamp" \
    sh -c "'$bindir/tessera-runner' version | grep -q '^tessera-runner [0-9]'"
"$bindir/tessera-runner" run-job x.json 2>err.txt
check_eq "tessera-runner refuses anything else with exit 2" "$?" 2
check "and says what it is for" grep -q "usage: tessera-runner" err.txt

# A tool that writes which program its runner (its parent) is: the runner
# of a tool job is tessera-runner when the small runner is in use.
mkdir -p bin
cat > bin/which-runner <<'S'
#!/bin/sh
readlink "/proc/$PPID/exe" > "$1/runner.txt"
printf '{"type": "FeatureCollection", "features": []}' > "$1/cells.geojson"
S
chmod +x bin/which-runner
cat > tools.json <<J
{"tools": [{"name": "which_runner", "description": "says which runner ran it",
  "argv": ["$T_DIR/bin/which-runner", "{out_dir}"], "params": {},
  "needs_image": false, "result": "cells.geojson"}]}
J
cat > wf.json <<'J'
{"name": "small", "jobs": [
 {"job_id": "n", "job_type": "noop"},
 {"job_id": "w", "job_type": "which_runner", "depends_on": ["n"]}]}
J

# runner_of ID: the program that ran workflow ID's tool job.
runner_of() { basename "$(cat "$TESSERA_STATE_DIR/results/$1/w/runner.txt" 2>/dev/null)"; }

check "a workflow of noop and a tool runs" tessera run wf.json --tools tools.json --quiet
check_eq "the tool's runner was tessera-runner" "$(runner_of 1)" tessera-runner

TESSERA_SMALL_RUNNER=0 tessera run wf.json --tools tools.json --quiet
check_eq "TESSERA_SMALL_RUNNER=0: it runs" "$?" 0
check_eq "and its runner was tessera" "$(runner_of 2)" tessera

# The image analyses need the image libraries: their runners come from
# tessera (tessera-runner does not know these types, so a job sent there
# would fail as an unknown type).
check "demo-slide writes a slide" tessera demo-slide var/data/demo.tiff --size 1024x1024 --mpp 0.5 --seed 3
cat > img.json <<'J'
{"name": "images", "jobs": [
 {"job_id": "t", "job_type": "tissue_mask", "image_path": "demo.tiff"},
 {"job_id": "c", "job_type": "cell_segmentation", "image_path": "demo.tiff", "depends_on": ["t"]}]}
J
check "tissue_mask and cell_segmentation run beside tessera-runner" \
    tessera run img.json --data-root "$TESSERA_STATE_DIR/data" --quiet
check_eq "both succeeded" "$(wf_json 3 | jq -r '[.jobs[].state] | unique | join(",")')" succeeded

# A tessera-runner from another build (another stamp) is not used: the jobs
# still run, from tessera, and the log says why.
mkdir -p other
cp "$TESSERA_BIN" other/tessera
printf '#!/bin/sh\necho "tessera-runner 19700101T000000.0"\n' > other/tessera-runner
chmod +x other/tessera-runner
other/tessera run wf.json --tools tools.json --quiet
check_eq "with a stale tessera-runner the workflow runs" "$?" 0
check_eq "its tool's runner was tessera" "$(runner_of 4)" tessera
check "the log says the stale tessera-runner was not used" \
    grep -q "tessera-runner not used.*another build" "$TESSERA_LOG"
# One that hangs is given up after 5 s (the workflow runs all the same) and
# killed with what it started: here the wrapper script's sleep.
printf '#!/bin/sh\nsleep 317\n' > other/tessera-runner
other/tessera run wf.json --tools tools.json --quiet
check_eq "with a hung tessera-runner the workflow runs" "$?" 0
check "the log says it answered nothing" grep -q "tessera-runner version answered nothing" "$TESSERA_LOG"
check "and nothing it started is left running" sh -c "! pgrep -x -f 'sleep 317' >/dev/null"
summary
