#!/bin/sh
# tests/prometheus/run.sh - the Prometheus configuration of deploy/prometheus:
# promtool checks the rule files and prometheus.yml, expand.py checks that
# every alert has a runbook and both a firing and a quiet case, and
# `promtool test rules` runs the cases (alerts.cases.yml). Prints
# "N passed, N failed" (tests/run-tests.sh counts it).
set -u
here=$(cd "$(dirname "$0")" && pwd)
deploy="$here/../../deploy/prometheus"
passed=0
failed=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

step() { # $1 = name; the rest = the command
    name=$1; shift
    if "$@" >"$tmp/out" 2>&1; then
        passed=$((passed + 1)); echo "ok - $name"
    else
        failed=$((failed + 1)); echo "not ok - $name"; sed 's/^/    /' "$tmp/out"
    fi
}

if ! command -v promtool >/dev/null 2>&1; then
    echo "promtool missing (Debian package prometheus; scripts/install-deps.sh installs it)"
    echo "0 passed, 1 failed"
    exit 1
fi
step "promtool check rules" promtool check rules "$deploy/tessera.rules.yml" "$deploy/tessera.alerts.yml"
step "promtool check config" promtool check config "$deploy/prometheus.yml"
step "every alert has a runbook, a firing and a quiet case" \
    python3 "$here/expand.py" "$here/alerts.cases.yml" "$tmp/alerts.test.yml"
if [ -f "$tmp/alerts.test.yml" ]; then
    step "promtool test rules" promtool test rules "$tmp/alerts.test.yml"
else
    failed=$((failed + 1)); echo "not ok - promtool test rules (no test file)"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
