#!/bin/sh
# Runs tessera's tests and ends with one line "N passed, N failed" over all of
# them; exits non-zero on any failure or when nothing ran.
#   tests/run-tests.sh BUILD_DIR [unit|integration|web|service|service-pg|browser|prometheus]
# Unit tests are cmocka binaries (BUILD_DIR/tests/test_*); integration tests are
# scripts (tests/integration/test_*.sh) that start real processes and print
# their own "N passed, N failed"; web tests (tests/web/*.test.mjs) check the
# web UI's pure modules (graph layout, overlay index, formatting) in Node,
# without a browser or a service; service tests (tests/service/*.test.mjs) start
# the real `tessera serve` and speak HTTP and WebSocket to it from Node;
# browser tests (tests/browser/*.test.mjs) drive the web UI in headless
# Chromium (playwright-core) against the real service, one file at a time,
# each under a time limit (TESSERA_BROWSER_FILE_TIMEOUT seconds, default 900);
# screenshots go to test-artifacts/browser/. The prometheus suite
# (tests/prometheus/run.sh) checks deploy/prometheus with promtool and runs
# the alert rules' unit tests; the real scrape by Prometheus is a service
# test (tests/service/prometheus.test.mjs). The torture run
# (tests/torture/torture.mjs) kills random processes of a loaded service
# TESSERA_TORTURE_KILLS times (default 20) and checks the invariants.
set -u
build=${1:?usage: tests/run-tests.sh BUILD_DIR [unit|integration|web|service|service-pg|browser|prometheus|torture]}
which=${2:-all}
root=$(cd "$(dirname "$0")/.." && pwd)
export TESSERA_BIN="$root/$build/tessera"
passed=0
failed=0
failed_names=""

count() { # $1 = name, $2 = output file, $3 = exit status
    p=$(grep -E '^\[  PASSED  \] [0-9]+ test' "$2" | sed -E 's/.* ([0-9]+) test.*/\1/' | awk '{s+=$1} END {print s+0}')
    f=$(grep -E '^\[  FAILED  \] [0-9]+ test' "$2" | sed -E 's/.* ([0-9]+) test.*/\1/' | awk '{s+=$1} END {print s+0}')
    if [ "$p" -eq 0 ] && [ "$f" -eq 0 ] && grep -qE '^# (pass|fail) [0-9]+' "$2"; then
        p=$(grep -E '^# pass [0-9]+' "$2" | tail -n 1 | awk '{print $3}')
        f=$(grep -E '^# fail [0-9]+' "$2" | tail -n 1 | awk '{print $3}')
    fi
    if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
        line=$(grep -E '^([A-Za-z]+: )?[0-9]+ passed, [0-9]+ failed' "$2" | tail -n 1)
        p=$(echo "$line" | sed -E 's/^([A-Za-z]+: )?([0-9]+) passed.*/\2/'); p=${p:-0}
        f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/'); f=${f:-0}
    fi
    if [ "$3" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi   # crashed or failed without saying so
    passed=$((passed + p)); failed=$((failed + f))
    [ "$f" -eq 0 ] || failed_names="$failed_names $1"
    printf '%-40s %4d passed, %d failed\n' "$1" "$p" "$f"
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# One PostgreSQL server (tests/lib/pgserver.sh) for the whole run: the store's
# conformance suite runs against it as well as against SQLite, and so do the
# PostgreSQL and cluster tests. Stopped and removed when this script ends,
# however it ends. TESSERA_TEST_PG_URL set by the caller is used as it is.
if [ "$which" = all ] || [ "$which" = unit ] || [ "$which" = integration ] || [ "$which" = service ] ||
    [ "$which" = service-pg ]; then
    if [ -z "${TESSERA_TEST_PG_URL:-}" ]; then
        if url=$("$root/tests/lib/pgserver.sh" start "$tmp/pg" 2>"$tmp/pg.err"); then
            export TESSERA_TEST_PG_URL="$url"
            trap '"$root/tests/lib/pgserver.sh" stop "$tmp/pg"; rm -rf "$tmp"' EXIT
            trap 'exit 130' INT TERM
        else
            cat "$tmp/pg.err"
            echo "postgresql: the test server did not start (scripts/install-deps.sh installs postgresql-15)"
            failed=$((failed + 1)); failed_names="$failed_names postgresql"
        fi
    fi
fi

if [ "$which" = all ] || [ "$which" = unit ]; then
    for t in "$root/$build"/tests/test_*; do
        [ -x "$t" ] || continue
        name=$(basename "$t")
        (cd "$tmp" && "$t") >"$tmp/$name.out" 2>&1; rc=$?
        cat "$tmp/$name.out"
        count "$name" "$tmp/$name.out" "$rc"
    done
fi
if [ "$which" = all ] || [ "$which" = integration ]; then
    for t in "$root"/tests/integration/test_*.sh; do
        [ -f "$t" ] || continue
        name=$(basename "$t")
        sh "$t" >"$tmp/$name.out" 2>&1; rc=$?
        cat "$tmp/$name.out"
        count "$name" "$tmp/$name.out" "$rc"
    done
fi

if [ "$which" = all ] || [ "$which" = prometheus ]; then
    sh "$root/tests/prometheus/run.sh" >"$tmp/prometheus.out" 2>&1; rc=$?
    cat "$tmp/prometheus.out"
    count "prometheus rules (promtool)" "$tmp/prometheus.out" "$rc"
fi

if [ "$which" = all ] || [ "$which" = web ]; then
    if command -v node >/dev/null 2>&1; then
        # web/app/*.js are ES modules without a package.json saying so: Node
        # loads them as such but warns once per file; the warning is noise here.
        quiet=""
        node --disable-warning=MODULE_TYPELESS_PACKAGE_JSON -e 0 >/dev/null 2>&1 && quiet="--disable-warning=MODULE_TYPELESS_PACKAGE_JSON"
        (cd "$root" && node $quiet --test --test-reporter=tap tests/web/) >"$tmp/web.out" 2>&1; rc=$?
        grep -E '^(not )?ok|^# (tests|pass|fail|skipped)' "$tmp/web.out"
        awk '/^ *not ok/ { show = 40 } show > 0 { print; show-- }' "$tmp/web.out" | head -n 400
        count "web (node --test)" "$tmp/web.out" "$rc"
    else
        echo "web tests: node missing (scripts/install-deps.sh installs it)"
        failed=$((failed + 1)); failed_names="$failed_names web"
    fi
fi

if [ "$which" = all ] || [ "$which" = service ]; then
    if command -v node >/dev/null 2>&1 && [ -d "$root/node_modules/ws" ]; then
        (cd "$root" && node --test --test-reporter=tap --test-concurrency=1 tests/service/) \
            >"$tmp/service.out" 2>&1; rc=$?
        grep -E '^(not )?ok|^# (tests|pass|fail|skipped)' "$tmp/service.out"
        # Every failure with its diagnostics (the YAML block after "not ok").
        awk '/^ *not ok/ { show = 40 } show > 0 { print; show-- }' "$tmp/service.out" | head -n 400
        count "service (node --test)" "$tmp/service.out" "$rc"
    else
        echo "service tests: node or node_modules/ws missing (scripts/install-deps.sh installs them)"
        failed=$((failed + 1)); failed_names="$failed_names service"
    fi
fi

# The service tests again, every server on its own PostgreSQL database: the
# same contract on the other backend. `all` runs the files that exercise the
# store most (SERVICE_PG_FILES); `service-pg` alone runs every file.
if [ "$which" = all ] || [ "$which" = service-pg ]; then
    files=${SERVICE_PG_FILES:-tests/service/api.test.mjs tests/service/admission.test.mjs tests/service/durability.test.mjs tests/service/isolation.test.mjs}
    [ "$which" = service-pg ] && files=tests/service/
    if [ -n "${TESSERA_TEST_PG_URL:-}" ]; then
        # shellcheck disable=SC2086
        (cd "$root" && TESSERA_TEST_SERVICE_DB=postgresql node --test --test-reporter=tap --test-concurrency=1 $files) \
            >"$tmp/service-pg.out" 2>&1; rc=$?
        grep -E '^(not )?ok|^# (tests|pass|fail|skipped)' "$tmp/service-pg.out"
        awk '/^ *not ok/ { show = 40 } show > 0 { print; show-- }' "$tmp/service-pg.out" | head -n 400
        count "service on postgresql (node --test)" "$tmp/service-pg.out" "$rc"
    fi
fi

if [ "$which" = all ] || [ "$which" = browser ]; then
    chromium=${TESSERA_CHROMIUM:-/usr/bin/chromium}
    missing=""
    command -v node >/dev/null 2>&1 || missing="$missing node"
    [ -d "$root/node_modules/playwright-core" ] || missing="$missing node_modules/playwright-core"
    [ -d "$root/node_modules/ws" ] || missing="$missing node_modules/ws"
    [ -x "$chromium" ] || missing="$missing $chromium"
    if [ -z "$missing" ]; then
        limit=${TESSERA_BROWSER_FILE_TIMEOUT:-900}
        for t in "$root"/tests/browser/*.test.mjs; do
            [ -f "$t" ] || continue
            name=$(basename "$t")
            # timeout signals the whole process group (node, its test
            # process); the harness then kills its servers, playwright its browser.
            (cd "$root" && timeout -k 20 "$limit" node --test --test-reporter=tap --test-concurrency=1 "tests/browser/$name") \
                >"$tmp/browser-$name.out" 2>&1; rc=$?
            grep -E '^(not )?ok|^# (tests|pass|fail|skipped)' "$tmp/browser-$name.out"
            awk '/^ *not ok/ { show = 40 } show > 0 { print; show-- }' "$tmp/browser-$name.out" | head -n 400
            [ "$rc" -ne 124 ] && [ "$rc" -ne 137 ] || echo "browser $name: killed after ${limit} s (TESSERA_BROWSER_FILE_TIMEOUT)"
            count "browser $name" "$tmp/browser-$name.out" "$rc"
        done
    else
        echo "browser tests: missing$missing (scripts/install-deps.sh and npm ci install them; TESSERA_CHROMIUM names another browser)"
        failed=$((failed + 1)); failed_names="$failed_names browser"
    fi
fi

if [ "$which" = all ] || [ "$which" = torture ]; then
    if command -v node >/dev/null 2>&1 && [ -d "$root/node_modules/ws" ]; then
        kills=${TESSERA_TORTURE_KILLS:-20}
        (cd "$root" && timeout -k 20 900 node tests/torture/torture.mjs --kills "$kills") \
            >"$tmp/torture.out" 2>&1; rc=$?
        cat "$tmp/torture.out"
        count "torture ($kills kills)" "$tmp/torture.out" "$rc"
    else
        echo "torture: node or node_modules/ws missing (scripts/install-deps.sh installs them)"
        failed=$((failed + 1)); failed_names="$failed_names torture"
    fi
fi

echo "----"
[ -z "$failed_names" ] || echo "failing:$failed_names"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
