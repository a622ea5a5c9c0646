#!/usr/bin/env bash
# End to end: `make demo`'s script, hack/demo.sh, with a smaller plate (8 wells x
# 2 sites x 5 channels) in a directory of its own, so it starts its own control
# plane, ImageDB and node agent beside the test bed's (free ports, own state):
#  - `up` exits 0; the Analysis applied with kubectl and the one the GUI's
#    ImageDB rows asked for both Succeeded, every batch merged;
#  - the GUI's row has start, finish and result, and its parent is rolled up;
#  - the controller ran with the ServiceAccount's token from the manifests;
#  - what it prints is true: kubectl get ana, the merged tables and their row
#    counts, a metrics URL that answers, a kubectl logs command that works,
#    plain lines when stdout is not a terminal;
#  - a second `up` refuses and leaves the running demo alone;
#  - `down` stops every process the demo started and removes its directory;
#  - a failure (here: the analyses' time is up) is one message, and leaves
#    nothing running.
set -uo pipefail
. "$PLATEOP_ROOT/tests/lib.sh"

demo=/tmp/plateop-demo-test.$$
# etcd keeps its data outside the demo directory (tmpfs): here too it gets a
# path naming this test, so that a leftover etcd is found by its command line.
etcd_tmp=/dev/shm/plateop-demo-test.$$
ns=plateop-analyses
out=$(mktemp)
mkdir -p "$etcd_tmp"
export PLATEOP_DEMO_DIR=$demo PLATEOP_DEMO_WELLS=8 PLATEOP_DEMO_SITES=2 PLATEOP_ETCD_TMP=$etcd_tmp
unset PLATEOP_DEMO_TIMEOUT
cleanup() {
    "$PLATEOP_ROOT/hack/demo.sh" down >/dev/null 2>&1
    rm -rf "$demo" "$out" "$etcd_tmp"
}
trap cleanup EXIT

# demo_pids: every process the demo recorded starting (controller, node agent,
# control plane, PostgreSQL).
demo_pids() {
    cat "$demo/controller/controller.pid" "$demo/nodeagent/nodeagent.pid" \
        "$demo"/cluster/run/*.pid 2>/dev/null
    head -n1 "$demo/imagedb/data/postmaster.pid" 2>/dev/null
}
# none_alive PID...: none of them runs, and no process names the demo directory
# or the etcd data directory in its command line.
none_alive() {
    local p
    for p in "$@"; do
        # A zombie (state Z) has stopped; only its parent's wait is missing.
        if kill -0 "$p" 2>/dev/null && [ "$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | cut -c1)" != Z ]; then
            echo "pid $p still runs: $(tr '\0' ' ' </proc/"$p"/cmdline 2>/dev/null)"
            return 1
        fi
    done
    # [/]: the pattern must not match grep's own command line.
    ! grep -l -e "$demo[/]" -e "$etcd_tmp[/]" /proc/[0-9]*/cmdline 2>/dev/null | grep -q .
}

# ---- up ----------------------------------------------------------------------
start=$(date +%s)
"$PLATEOP_ROOT/hack/demo.sh" up >"$out" 2>&1
rc=$?
secs=$(( $(date +%s) - start ))
if [ $rc -eq 0 ]; then
    t_ok "hack/demo.sh up exits 0 after ${secs} s"
else
    t_fail "hack/demo.sh up exits 0" "$(tail -n 30 "$out")"
    t_done
    exit 1
fi
echo "# demo up took ${secs} s (8 wells x 2 sites)"
t_check "hack/demo.sh up, control plane cached, takes under 5 minutes (${secs} s)" test "$secs" -lt 300

# The demo's cluster and ImageDB, as its output tells a user to reach them.
# shellcheck disable=SC1091
. "$demo/env"
ana() { kubectl -n "$ns" get analysis "$1" -o jsonpath="$2" 2>&1; }
read -r aid sub <<<"$(psql -X -At -F ' ' -c 'SELECT analysis_id, sub_id FROM image_sub_analyses ORDER BY sub_id LIMIT 1')"
gui="ia-$aid-$sub"

t_check "the Analysis applied with kubectl Succeeded: 4 of 4 batches (2 wells each), none failed" \
    test "$(ana demo-features '{.status.phase} {.status.batches.succeeded}/{.status.batches.total} {.status.batches.failed}')" = "Succeeded 4/4 0"
t_check "the Analysis of the GUI's row ($gui) Succeeded: 2 of 2 batches (8 image sets each), none failed" \
    test "$(ana "$gui" '{.status.phase} {.status.batches.succeeded}/{.status.batches.total} {.status.batches.failed}')" = "Succeeded 2/2 0"
t_check "it was created from the row: labels carry both ids" \
    test "$(ana "$gui" '{.metadata.labels.plateop\.io/imagedb-analysis} {.metadata.labels.plateop\.io/imagedb-sub-analysis}')" = "$aid $sub"
merged_ok() {
    local name dir status_rows
    for name in demo-features "$gui"; do
        dir=$(ana "$name" '{.status.results.path}')
        status_rows=$(ana "$name" '{.status.results.tables[?(@.name=="Image")].rows}')
        [ "$status_rows" = 16 ] || { echo "$name: status says Image has '$status_rows' rows"; return 1; }
        [ "$(wc -l <"$dir/Image.csv")" = 17 ] || { echo "$name: $dir/Image.csv is not a header and 16 rows"; return 1; }
    done
}
t_check "each merged Image table holds the 16 image sets, in the status and on disk" merged_ok
t_check "the GUI's row has start, finish and result (job_folder, file_list), and no error" \
    test "$(psql -X -At -c "SELECT start IS NOT NULL AND finish IS NOT NULL AND error IS NULL
        AND status->>'state' = 'Succeeded' AND result->>'job_folder' = '$(ana "$gui" '{.status.results.path}')'
        AND result->'file_list' ? 'Image.csv' FROM image_sub_analyses WHERE sub_id = $sub")" = t
t_check "its parent image_analyses row is rolled up: finish, 1 / 1 steps done" \
    test "$(psql -X -At -c "SELECT finish IS NOT NULL AND status->>'progress' = '1 / 1 steps done'
        FROM image_analyses WHERE id = $aid")" = t
t_check "the controller used the ServiceAccount token of the manifests and led through their Lease" \
    sh -c 'grep -q "^    token: " "$1/controller/kubeconfig" &&
        test "$(kubectl -n plateop-system get lease plateop-controller -o jsonpath="{.spec.holderIdentity}")" = plateop-demo' \
    _ "$demo"
t_check "no request of the controller was refused, and it logged no error" \
    sh -c '! grep -qi forbidden "$1" && ! grep -q "\"level\":\"error\"" "$1"' _ "$demo/controller/controller.log"
t_check "the Deployment of the manifests is installed, scaled to zero (no container runtime here)" \
    test "$(kubectl -n plateop-system get deployment plateop-controller -o jsonpath='{.spec.replicas}')" = 0

# ---- what it prints ---------------------------------------------------------------
t_check "it prints kubectl get ana with both analyses Succeeded" \
    sh -c 'grep -Eq "^ +NAME +PLATE +DONE +TOTAL +FAILED +STATUS +AGE" "$1" &&
        grep -Eq "^ +demo-features +[0-9]+ +4 +4 +0 +Succeeded" "$1" &&
        grep -Eq "^ +$2 +[0-9]+ +2 +2 +0 +Succeeded" "$1"' _ "$out" "$gui"
t_check "it prints where the merged tables are, with their row counts" \
    sh -c 'grep -qF "demo-features: $2/work/plateop-analyses/demo-features/results" "$1" &&
        grep -Eq "^ +Image\.csv +16 rows$" "$1" && grep -Eq "^ +Cells\.csv +[0-9]+ rows$" "$1"' _ "$out" "$demo"
metrics_cmd=$(grep -o 'curl -s 127\.0\.0\.1:[0-9]*/metrics' "$out" | head -n1)
t_check "the metrics URL it prints answers and counts the two Succeeded analyses" \
    sh -c '[ -n "$1" ] && $1 | grep -qx "plateop_analyses{phase=\"Succeeded\"} 2"' _ "$metrics_cmd"
logs_job=$(grep -o "logs job/demo-features-[a-z0-9-]*" "$out" | grep -v -- '-merge$' | head -n1)
t_check "the kubectl logs command it prints shows a batch's worker lines" \
    sh -c '[ -n "$2" ] && kubectl -n "$1" $2 | grep -q "\"component\":\"worker\""' _ "$ns" "$logs_job"
t_check "it says how to stop: make demo-down" grep -q "make demo-down" "$out"
t_check "its stdout is not a terminal here: plain lines, no carriage returns or escape sequences" \
    sh -c '! grep -q "$(printf "\r")" "$1" && ! grep -q "$(printf "\033")" "$1"' _ "$out"
t_check "it printed progress lines while the analyses ran" \
    grep -Eq '^\[ *[0-9]+s\] \[[#.]{10}\] demo-features (Running|Merging|Succeeded) [0-9]+/4 \| ' "$out"

# ---- a second up, then down ---------------------------------------------------------
"$PLATEOP_ROOT/hack/demo.sh" up >"$out.2" 2>&1
rc=$?
t_check "a second up refuses, saying a demo is running, and leaves it running" \
    sh -c '[ "$1" -eq 1 ] && grep -q "already running" "$2" &&
        kill -0 "$(cat "$3/controller/controller.pid")" && kubectl get --raw /readyz >/dev/null' \
    _ "$rc" "$out.2" "$demo"
rm -f "$out.2"

pids=$(demo_pids)
t_check "the demo recorded its processes (controller, node agent, control plane, PostgreSQL)" \
    test "$(echo "$pids" | wc -w)" -ge 7
t_check "hack/demo.sh down exits 0" "$PLATEOP_ROOT/hack/demo.sh" down
# shellcheck disable=SC2086
t_check "down stops every process the demo started" none_alive $pids
t_check "down removes the demo directory" test ! -e "$demo"

# ---- a failure ----------------------------------------------------------------------
PLATEOP_DEMO_TIMEOUT=0 "$PLATEOP_ROOT/hack/demo.sh" up >"$out" 2>&1
rc=$?
t_check "when the analyses run out of time, up exits 1 with one message naming it" \
    sh -c '[ "$1" -eq 1 ] && [ "$(grep -c "^demo: FAILED" "$2")" -eq 1 ] &&
        grep -q "^demo: FAILED after [0-9]*s: the analyses did not finish within 0s" "$2"' _ "$rc" "$out"
# The components' own state (pid files) went with them: look for command lines.
t_check "and leaves nothing running" none_alive
t_check "its logs stay for a look, and down removes them" \
    sh -c 'test -s "$1/controller/controller.log" && "$2/hack/demo.sh" down >/dev/null && test ! -e "$1"' \
    _ "$demo" "$PLATEOP_ROOT"

t_done
