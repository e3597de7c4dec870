#!/bin/sh
# The command line: version, --help everywhere, usage errors, and options from
# flags, the environment and ./.env in that order of precedence.
. "$(dirname "$0")/lib.sh"

check "version" sh -c "$TESSERA_BIN version | grep -q '^tessera [0-9]'"
for c in run status run-job; do
    check "$c --help" sh -c "$TESSERA_BIN $c --help | grep -q 'usage: tessera $c'"
done
"$TESSERA_BIN" frobnicate 2>/dev/null
check_eq "an unknown command is exit 2" "$?" 2
"$TESSERA_BIN" run --bogus 2>err.txt
check_eq "an unknown option is exit 2" "$?" 2
check "and the message names it" grep -q -- "--bogus" err.txt
"$TESSERA_BIN" run --concurrency-limit zero 2>err.txt
check_eq "a bad option value is exit 2" "$?" 2
check "and the message names the option" grep -q "concurrency" err.txt

echo '{"name": "n", "jobs": [{"job_id": "j", "job_type": "noop"}]}' > wf.json
unset TESSERA_STATE_DIR
printf '# comment\nTESSERA_STATE_DIR=from-dotenv\nTESSERA_USER="dot user"\n' > .env
"$TESSERA_BIN" run wf.json 2>err.txt
check_eq "a bad value in .env is exit 2" "$?" 2
check "and names the variable" grep -q "TESSERA_USER" err.txt
printf 'TESSERA_STATE_DIR=from-dotenv\nTESSERA_USER=dotuser\n' > .env
check ".env is read" tessera run wf.json --quiet
check ".env state dir used" test -f from-dotenv/tessera.db
check_eq ".env user used" "$(tessera status --json | jq -r '.[0].user')" dotuser
TESSERA_STATE_DIR=from-env "$TESSERA_BIN" run wf.json --quiet
check "the environment beats .env" test -f from-env/tessera.db
TESSERA_STATE_DIR=from-env "$TESSERA_BIN" run wf.json --quiet --state-dir from-flag
check "a flag beats the environment" test -f from-flag/tessera.db
summary
