#!/bin/sh
# Admin-defined tools (docs/tools.md): `tessera run --tools FILE` registers a
# fake tool, runs it through the real scheduler, executor and runner, and
# publishes its GeoJSON and summary.json; bad params and bad tools files are
# rejected with exit status 2 and a message naming the problem.
. "$(dirname "$0")/lib.sh"

# The admin's tool: a script (tessera itself never starts a shell). It gets
# {out_dir}, a param inside a larger argument and {cpus}.
mkdir -p bin
cat > bin/fake-seg <<'S'
#!/bin/sh
out=$1
echo "PROGRESS 1 2"
sleep 0.3
printf '%s\n' "$@" > "$out/args.txt"
printf '{"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [1, 2]}, "properties": {"objectType": "detection"}}]}' > "$out/cells.geojson"
echo "PROGRESS 2 2"
echo "fake-seg done"
S
chmod +x bin/fake-seg

cat > tools.json <<J
{"tools": [{"name": "fake_seg", "description": "a fake segmenter",
  "argv": ["$T_DIR/bin/fake-seg", "{out_dir}", "--size={tile_size}", "--model", "{model}", "{cpus}"],
  "params": {"tile_size": {"type": "integer", "min": 64, "max": 4096, "default": 512},
             "model": {"type": "enum", "choices": ["nuclei", "cells"], "default": "nuclei"}},
  "needs_image": false, "result": "cells.geojson"}]}
J

cat > wf.json <<'J'
{"name": "tool run", "jobs": [
 {"job_id": "seg", "job_type": "fake_seg", "params": {"tile_size": 1024, "model": "cells"}, "cpus": 2}]}
J
check "tessera run --tools runs the tool" tessera run wf.json --tools tools.json --user alice --poll-seconds 0.2
res="$TESSERA_STATE_DIR/results"
gj=$(find "$res" -path '*/seg/cells.geojson' | head -n 1)
check "the tool's GeoJSON is published under results/<wf>/<job>/" test -n "$gj" -a -f "$gj"
dir=$(dirname "${gj:-/nonexistent/x}")
check_eq "summary.json counts the features" \
    "$(jq -c '[.tool, .features, .result]' "$dir/summary.json" 2>/dev/null)" '["fake_seg",1,"cells.geojson"]'
check_eq "params reach the tool as argv, one per argument" \
    "$(tail -n +2 "$dir/args.txt" 2>/dev/null | tr '\n' ' ')" "--size=1024 --model cells 2 "
check_eq "workflow succeeded" "$(wf_json 1 | jq -r .state)" succeeded
check_eq "the job reported the tool's progress and finished at 1" \
    "$(wf_json 1 | jq -r '.jobs[0].progress')" 1
log=$(find "$TESSERA_STATE_DIR" -name job.log | head -n 1)
check "the tool's stdout is in the job log" grep -q 'fake-seg done' "${log:-/nonexistent}"
check "its PROGRESS lines are progress, not log lines" sh -c "! grep -q PROGRESS '${log:-/nonexistent}'"

# TESSERA_TOOLS works like the flag, and a relative path is resolved before
# the runners (other processes) need it.
cat > wf2.json <<'J'
{"name": "tool run 2", "jobs": [{"job_id": "seg", "job_type": "fake_seg"}]}
J
check "TESSERA_TOOLS from the environment" env TESSERA_TOOLS=tools.json "$TESSERA_BIN" run wf2.json --user alice --poll-seconds 0.2 --quiet

# reject "description" "expected text" args...: exit 2 and the text on stderr
reject() {
    d=$1; want=$2; shift 2
    "$TESSERA_BIN" "$@" >out.txt 2>err.txt
    rc=$?
    if [ "$rc" -eq 2 ] && grep -q -- "$want" err.txt; then ok "$d"; else
        not_ok "$d" "exit $rc, stderr: $(cat err.txt)"; fi
}
cat > bad-param.json <<'J'
{"name": "bad", "jobs": [{"job_id": "seg", "job_type": "fake_seg", "params": {"x": 1}}]}
J
reject "an unknown tool param is rejected, naming params.x" "params.x: unknown parameter" \
    run bad-param.json --tools tools.json --user alice
cat > bad-range.json <<'J'
{"name": "bad", "jobs": [{"job_id": "seg", "job_type": "fake_seg", "params": {"tile_size": 8}}]}
J
reject "an out-of-range tool param is rejected" "params.tile_size: must be an integer from 64 to 4096" \
    run bad-range.json --tools tools.json --user alice
reject "without --tools the tool is an unknown job type" 'unknown job type "fake_seg"' \
    run wf.json --user alice
cat > bad-tools.json <<'J'
{"tools": [{"name": "t", "argv": ["/bin/true", "{nope}"], "needs_image": false, "result": "r.geojson"}]}
J
reject "a bad tools file stops run, naming tool and argument" \
    'tools\[0\] ("t"): argv\[1\]: unknown placeholder {nope}' run wf.json --tools bad-tools.json --user alice
reject "a bad tools file stops serve too" 'unknown placeholder {nope}' \
    serve --tools bad-tools.json --listen 127.0.0.1:0
reject "a missing tools file is named" 'missing.json' run wf.json --tools missing.json --user alice

# Issue 12, defect 6: no placeholder's value may begin an argument with '-'.
# {job_id} alone in argv with job_id "--help" reached the tool as an option.
cat > id-tool.json <<J
{"tools": [{"name": "by_id", "argv": ["$T_DIR/bin/fake-seg", "{out_dir}", "{job_id}", "{shift}", "--at={shift}"],
  "params": {"shift": {"type": "integer", "min": -10, "max": 10, "default": 0}},
  "needs_image": false, "result": "cells.geojson"}]}
J
printf '{"name": "opt", "jobs": [{"job_id": "--help", "job_type": "by_id"}]}' > opt-id.json
reject "job_id \"--help\" as a whole argument is refused, naming jobs[0].job_id" \
    "jobs\[0\] (job \"--help\"): job_id: \"--help\" would begin argv\\[2\\] of tool by_id with '-'" \
    run opt-id.json --tools id-tool.json --user alice
printf '{"name": "neg", "jobs": [{"job_id": "n", "job_type": "by_id", "params": {"shift": -3}}]}' > neg.json
reject "a negative number as a whole argument is refused, naming params.shift" \
    "params.shift: \"-3\" would begin argv\\[3\\]" run neg.json --tools id-tool.json --user alice
printf '{"name": "ok", "jobs": [{"job_id": "a-1", "job_type": "by_id", "params": {"shift": 3}}]}' > id-ok.json
check "the same tool runs with values that begin with no '-'" \
    tessera run id-ok.json --tools id-tool.json --user alice --poll-seconds 0.2 --quiet
check_eq "nothing refused was stored" "$(tessera status --all --json --user alice | jq '[.[] | select(.name == "opt" or .name == "neg")] | length')" 0
summary
