# tests/integration/lib.sh - a small harness for tests that run the real
# tessera binary: a fresh state directory per test, checks that count, and a
# closing "N passed, N failed" line. Sourced by tests/integration/test_*.sh.
set -u
: "${TESSERA_BIN:?set TESSERA_BIN to the tessera binary (tests/run-tests.sh does)}"
T_PASSED=0
T_FAILED=0
T_DIR=$(mktemp -d "${TMPDIR:-/tmp}/tessera-it.XXXXXX")
T_PIDS=""
T_CLEANUP_HOOKS="" # functions t_cleanup calls first (e.g. slurm_stop)
T_ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export TESSERA_STATE_DIR="$T_DIR/var"
export TESSERA_LOG="$T_DIR/tessera.log"
unset TESSERA_DB TESSERA_USER TESSERA_MAX_ACTIVE_USERS TESSERA_CONCURRENCY_LIMIT
cd "$T_DIR" || exit 1

t_cleanup() {
    for p in $T_PIDS; do kill -9 "$p" 2>/dev/null; done
    for h in $T_CLEANUP_HOOKS; do "$h"; done
    wait 2>/dev/null
    if [ "$T_FAILED" -eq 0 ]; then rm -rf "$T_DIR"; else echo "# kept $T_DIR for inspection"; fi
}
trap t_cleanup EXIT
trap "exit 143" TERM   # so that t_cleanup runs when the test is killed
trap "exit 130" INT

ok() { T_PASSED=$((T_PASSED + 1)); echo "ok - $1"; }
not_ok() { T_FAILED=$((T_FAILED + 1)); echo "not ok - $1"; [ -n "${2:-}" ] && echo "#   $2"; return 0; }

# check "description" command...   passes when the command exits 0
check() {
    d=$1; shift
    if "$@" >"$T_DIR/check.out" 2>&1; then ok "$d"; else not_ok "$d" "$(head -c 600 "$T_DIR/check.out")"; fi
}

# check_eq "description" actual expected
check_eq() {
    if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "got [$2], want [$3]"; fi
}

tessera() { "$TESSERA_BIN" "$@"; }

# Runs tessera in the background, remembering the pid for cleanup.
tessera_bg() { "$TESSERA_BIN" "$@" & T_PIDS="$T_PIDS $!"; }

# wait_for SECONDS command...  polls until the command succeeds
wait_for() {
    limit=$1; shift
    end=$(( $(date +%s) + limit ))
    while [ "$(date +%s)" -le "$end" ]; do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}

# The JSON of one workflow as the store sees it (any user).
wf_json() { tessera status "$1" --all --json; }

# wf_is ID JQ_FILTER VALUE: true when the filter over the workflow gives VALUE.
# (Compares text: jq 1.6's -e exits 0 on empty input, e.g. before the
# workflow exists.)
wf_is() { [ "$("$TESSERA_BIN" status "$1" --all --json 2>/dev/null | jq -r "$2")" = "$3" ]; }

# jq_true 'JQ_FILTER' command...: the command succeeds and the filter over
# its output is exactly true (never true on empty output, unlike jq -e 1.6).
jq_true() {
    f=$1; shift
    out=$("$@" 2>/dev/null) || return 1
    [ "$(printf '%s' "$out" | jq -r "$f" 2>/dev/null)" = true ]
}

# Starts a private Slurm cluster (tests/lib/slurm.sh) for this test, stopped
# by t_cleanup whatever happens; exports SLURM_CONF. Fails the test (and
# exits) when the cluster cannot start.
t_use_slurm() {
    . "$T_ROOT/tests/lib/slurm.sh"
    T_CLEANUP_HOOKS="$T_CLEANUP_HOOKS slurm_stop"
    if ! slurm_start; then
        not_ok "a private Slurm cluster starts (tests/lib/slurm.sh)"
        summary
        exit 1
    fi
}

# Skips the whole test, loudly, when a private Slurm cluster cannot exist
# here at all (not root, or Slurm's daemons not installed); anything else
# that stops the cluster from starting is a failure (t_use_slurm).
t_slurm_or_skip() {
    why=""
    [ "$(id -u)" -eq 0 ] || why="not root (slurmd starts jobs as their user)"
    for cmd in munged slurmctld slurmd sbatch squeue scancel scontrol; do
        [ -n "$why" ] || command -v "$cmd" >/dev/null 2>&1 || why="$cmd is missing (scripts/install-deps.sh)"
    done
    [ -z "$why" ] && return 0
    echo "#"
    echo "# SKIPPED: $(basename "$0") needs a private Slurm cluster: $why"
    echo "#"
    summary
    exit 0
}

# Runs another integration test file ($1) here, with the environment as it
# is (e.g. TESSERA_EXECUTOR=slurm and this test's cluster), and adds its
# checks to ours.
t_run_suite() {
    out="$T_DIR/suite-$(basename "$1").out"
    sh "$1" >"$out" 2>&1
    rc=$?
    sed "s|^|[$(basename "$1" .sh)] |" "$out" | grep -v '] ok - '
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$out" | tail -n 1)
    p=$(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/'); p=${p:-0}
    f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/'); f=${f:-0}
    [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
    T_PASSED=$((T_PASSED + p)); T_FAILED=$((T_FAILED + f))
}

summary() {
    echo "$T_PASSED passed, $T_FAILED failed"
    [ "$T_FAILED" -eq 0 ]
}
