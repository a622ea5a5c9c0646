#!/usr/bin/env bash
# Runs plateop's tests and prints one closing line: "N passed, N failed".
#
#   tests/run.sh --unit          unit tests (build/tests/unit/test_*)
#   tests/run.sh --integration   brings up the local control plane and ImageDB,
#                                runs build/tests/integration/test_* and
#                                tests/integration/test_*.sh, tears them down
#   tests/run.sh --all           both
#   tests/run.sh ... NAME...     only tests whose file name contains NAME
#
# Each test program reports TAP ("ok N - name" / "not ok N - name"): cmocka
# programs through CMOCKA_MESSAGE_OUTPUT=TAP, shell tests through
# tests/lib.sh. A program that exits non-zero without reporting a failure
# (a crash) counts as one failure; so does one that runs longer than
# PLATEOP_TEST_TIMEOUT seconds (default 1200), which is then killed.
#
# Skips ("# SKIP" in TAP) count as failures in --integration and --all runs,
# where the test bed is there to run everything, unless PLATEOP_ALLOW_SKIP=1;
# in --unit runs they pass unless PLATEOP_ALLOW_SKIP=0. Either way the
# closing lines name the tests that skipped.
set -uo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD="$here/$BUILD" ;; esac
export PLATEOP_ROOT="$here" PLATEOP_BUILD="$BUILD"
export CMOCKA_MESSAGE_OUTPUT=TAP

mode=${1:---all}
shift || true
filters=("$@")
timeout_s=${PLATEOP_TEST_TIMEOUT:-1200}
if [ "$mode" = --unit ]; then allow_skip=${PLATEOP_ALLOW_SKIP:-1}; else allow_skip=${PLATEOP_ALLOW_SKIP:-0}; fi

passed=0
failed=0
skipped=0
failed_names=()
skipped_names=()

selected() {
    local f
    [ ${#filters[@]} -eq 0 ] && return 0
    for f in "${filters[@]}"; do
        case "$1" in *"$f"*) return 0 ;; esac
    done
    return 1
}

run_one() {
    local prog=$1 name out rc p f sk start secs
    name=$(basename "$prog")
    selected "$name" || return 0
    out=$(mktemp)
    start=$(date +%s%N)
    echo "# --- $name"
    # timeout runs the test in a process group of its own and, when time is
    # up, ends the whole group (background helpers included); a test that
    # ignores SIGTERM is killed 30 s later. Tests never read stdin.
    timeout --kill-after=30 "$timeout_s" "$prog" </dev/null 2>&1 | tee "$out" | grep -E '^(not )?ok |^# |^Bail out'
    rc=${PIPESTATUS[0]}
    secs=$(( ($(date +%s%N) - start) / 1000000 ))
    # TAP: "ok" passes; "not ok ... # SKIP" is a skip, not a failure; so is
    # a plan of "1..0 # SKIP" (the whole program skipped).
    p=$(grep -E '^ok ' "$out" | grep -cvE '# *SKIP')
    sk=$(grep -cE '^(not )?ok .*# *SKIP|^1\.\.0 *# *SKIP' "$out")
    f=$(grep -E '^not ok ' "$out" | grep -cvE '# *SKIP')
    [ "$sk" -gt 0 ] && skipped_names+=("$name")
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        f=$((f + 1))
        echo "not ok - $name timed out after ${timeout_s} s (PLATEOP_TEST_TIMEOUT) and was stopped; last output:"
        tail -n 30 "$out" | sed 's/^/#   /'
    elif [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        f=1
        echo "not ok - $name exited with status $rc; last output:"
        tail -n 30 "$out" | sed 's/^/#   /'
    elif [ "$f" -gt 0 ]; then
        grep -vE '^(not )?ok |^1\.\.|^#' "$out" | tail -n 40 | sed 's/^/#   /'
    fi
    [ "$f" -gt 0 ] && failed_names+=("$name")
    echo "# $name: $p passed, $f failed, $sk skipped (${secs} ms)"
    passed=$((passed + p))
    failed=$((failed + f))
    skipped=$((skipped + sk))
    rm -f "$out"
}

run_unit() {
    local t
    for t in "$BUILD"/tests/unit/test_*; do
        [ -x "$t" ] && run_one "$t"
    done
}

run_integration() {
    local t
    # shellcheck source=tests/testbed.sh
    . "$here/tests/testbed.sh"
    if ! testbed_up; then
        echo "not ok - test bed failed to start"
        failed=$((failed + 1))
        failed_names+=("testbed")
        return
    fi
    for t in "$BUILD"/tests/integration/test_* "$here"/tests/integration/test_*.sh; do
        [ -x "$t" ] && run_one "$t"
    done
}

# PLATEOP_KEEP_TESTBED=1 leaves the test bed running afterwards, to look around.
teardown() {
    if [ -n "${PLATEOP_KEEP_TESTBED:-}" ] && [ -n "${TESTBED_DIR:-}" ]; then
        echo "# test bed kept in $TESTBED_DIR (PLATEOP_KEEP_TESTBED); stop it with:"
        echo "#   PLATEOP_CLUSTER_DIR=$TESTBED_DIR/cluster hack/cluster.sh down; PLATEOP_IMAGEDB_DIR=$TESTBED_DIR/imagedb hack/imagedb.sh down; PLATEOP_NODEAGENT_DIR=$TESTBED_DIR/nodeagent hack/nodeagent.sh stop"
        return 0
    fi
    testbed_down 2>/dev/null || true
}

case "$mode" in
--unit) run_unit ;;
--integration) trap teardown EXIT; run_integration ;;
--all) trap teardown EXIT; run_unit; run_integration ;;
*) echo "usage: tests/run.sh --unit|--integration|--all [NAME...]" >&2; exit 2 ;;
esac

if [ ${#skipped_names[@]} -gt 0 ]; then
    if [ "$allow_skip" = 1 ]; then
        echo "# skipped tests in: ${skipped_names[*]}"
    else
        echo "# skipped tests in: ${skipped_names[*]}: counted as failures (PLATEOP_ALLOW_SKIP=1 allows skips)"
        failed=$((failed + skipped))
        failed_names+=("${skipped_names[@]}")
    fi
fi
if [ ${#failed_names[@]} -gt 0 ]; then
    echo "# failing: ${failed_names[*]}"
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
