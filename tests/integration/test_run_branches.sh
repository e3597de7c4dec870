#!/bin/sh
# Two branches of three `sleep 1` jobs with concurrency 2: serial inside a
# branch, parallel across, about 3 s in all, visible in `tessera status`.
. "$(dirname "$0")/lib.sh"

cat > wf.json <<'J'
{"name": "two branches", "jobs": [
 {"job_id": "a1", "job_type": "sleep", "params": {"seconds": 1}, "branch": "a"},
 {"job_id": "a2", "job_type": "sleep", "params": {"seconds": 1}, "branch": "a"},
 {"job_id": "a3", "job_type": "sleep", "params": {"seconds": 1}, "branch": "a"},
 {"job_id": "b1", "job_type": "sleep", "params": {"seconds": 1}, "branch": "b"},
 {"job_id": "b2", "job_type": "sleep", "params": {"seconds": 1}, "branch": "b"},
 {"job_id": "b3", "job_type": "sleep", "params": {"seconds": 1}, "branch": "b"}]}
J
start=$(date +%s.%N)
check "tessera run exits 0" tessera run wf.json --user alice --concurrency-limit 2 --poll-seconds 0.2
end=$(date +%s.%N)
elapsed=$(awk "BEGIN { printf \"%.2f\", $end - $start }")
echo "# elapsed ${elapsed} s (about 3 s expected)"

wf_json 1 > st.json
check_eq "workflow succeeded" "$(jq -r .state st.json)" succeeded
check_eq "all six jobs succeeded" "$(jq '[.jobs[] | select(.state=="succeeded")] | length' st.json)" 6
# Inside a branch: each job starts after the previous one finished.
serial=$(jq '[.jobs | group_by(.branch)[] | . as $b | range(1; length) |
  ($b[.].started_at >= $b[. - 1].finished_at)] | all' st.json)
check_eq "jobs of one branch run one after another" "$serial" true
# Across branches: a1 and b1 overlap.
overlap=$(jq '(.jobs[] | select(.job_id=="a1")) as $a | (.jobs[] | select(.job_id=="b1")) as $b |
  ($a.started_at < $b.finished_at) and ($b.started_at < $a.finished_at)' st.json)
check_eq "branches run in parallel" "$overlap" true
check "status table shows start and end times" sh -c "$TESSERA_BIN status 1 --user alice | grep -E 'a1 +a +succeeded +1 +[0-9:]{8} +[0-9:]{8}'"
check "plain progress lines when not a terminal" sh -c "$TESSERA_BIN run wf.json --user alice --concurrency-limit 2 | grep -q 'job.started'"
summary
