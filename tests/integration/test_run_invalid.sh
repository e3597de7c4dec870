#!/bin/sh
# Invalid workflow files are rejected with a message naming the problem, exit
# status 2, and nothing stored.
. "$(dirname "$0")/lib.sh"

# reject "description" "expected text in the message" 'json'
reject() {
    printf '%s' "$3" > bad.json
    "$TESSERA_BIN" run bad.json --user eve >out.txt 2>err.txt
    rc=$?
    if [ "$rc" -eq 2 ] && grep -q -- "$2" err.txt; then ok "$1"; else
        not_ok "$1" "exit $rc, stderr: $(cat err.txt)"; fi
}
job() { printf '{"job_id": "%s", "job_type": "noop"%s}' "$1" "${2:-}"; }

reject "a cycle is named" "j1 -> j2 -> j1" \
    "{\"name\": \"c\", \"jobs\": [$(job j1 ', "depends_on": ["j2"]'), $(job j2 ', "branch": "x", "depends_on": ["j1"]')]}"
reject "an unknown dependency is named" "unknown job \"nope\"" \
    "{\"name\": \"c\", \"jobs\": [$(job j1 ', "depends_on": ["nope"]')]}"
reject "a duplicate id is named" "j1" "{\"name\": \"c\", \"jobs\": [$(job j1), $(job j1)]}"
reject "a malformed id is named" "a b" "{\"name\": \"c\", \"jobs\": [$(job 'a b')]}"
reject "an unknown job type is named" "unknown job type" \
    '{"name": "c", "jobs": [{"job_id": "j", "job_type": "frobnicate"}]}'
reject "a wrong type is named" "cpus" "{\"name\": \"c\", \"jobs\": [$(job j1 ', "cpus": "two"')]}"
reject "bad params are named" "seconds" \
    '{"name": "c", "jobs": [{"job_id": "j", "job_type": "sleep", "params": {"seconds": -1}}]}'
reject "empty jobs are rejected" "jobs" '{"name": "c", "jobs": []}'
reject "non-JSON is rejected" "JSON" 'this is not json'
big=$(awk 'BEGIN { printf "{\"name\": \"big\", \"jobs\": ["; for (i = 0; i < 10001; i++) printf "%s{\"job_id\": \"j%d\", \"job_type\": \"noop\"}", (i ? "," : ""), i; printf "]}" }')
reject "too many jobs are rejected" "10000" "$big"

"$TESSERA_BIN" run missing.json --user eve 2>err.txt
check_eq "a missing file is exit 2" "$?" 2
check "nothing was stored" sh -c "[ ! -e var/tessera.db ] || [ \$($TESSERA_BIN status --all --json | jq length) -eq 0 ]"
summary
