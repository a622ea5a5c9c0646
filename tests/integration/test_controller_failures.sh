#!/usr/bin/env bash
# A batch whose CellProfiler fails is retried as the spec says, then named
# in the status with its wells and reason. With maxFailedBatches 0 the
# Analysis fails; with 1 it succeeds, and the status and the merged
# manifest name the missing wells.
set -uo pipefail
. "$PLATEOP_ROOT/tests/lib.sh"
. "$PLATEOP_ROOT/tests/integration/ctl_lib.sh"

ctl_setup failures
acq=$(ctl_plate --wells 6 --sites 2)
ctl_worker_env PLATEOP_STANDIN_FAIL_WELLS=A03
ctl_config "window: 8"
ctl_start
ctl_apply strict "$acq" "retries: 1" "maxFailedBatches: 0"
ctl_apply tolerant "$acq" "retries: 1" "maxFailedBatches: 1"

st() { kubectl -n "$CTL_NS" get analysis "$1" -o jsonpath="$2"; }

if ctl_wait_phase strict Failed 180; then
    t_ok "maxFailedBatches 0: one failed batch fails the Analysis"
else
    t_fail "maxFailedBatches 0: one failed batch fails the Analysis" "$(ctl_explain strict)"
fi
t_check "the failed batch was retried per spec.retries (2 pods ran)" \
    test "$(kubectl -n "$CTL_NS" get pods -l plateop.io/batch=a03,plateop.io/analysis=strict -o name | wc -l)" -eq 2
t_check "the status names the failed batch, its wells and the worker's reason" \
    test "$(st strict '{.status.failedBatches[0].batch}/{.status.failedBatches[0].wells}/{.status.failedBatches[0].reason}')" = "a03/A03/CellProfilerFailed"
t_check "the Failed condition says why" \
    sh -c "kubectl -n '$CTL_NS' get analysis strict -o jsonpath='{.status.conditions[?(@.type==\"Failed\")].reason} {.status.conditions[?(@.type==\"Failed\")].message}' | grep -q '^TooManyFailedBatches 1 of 6 batches failed'"
t_check "a BatchFailed Event names the wells" \
    sh -c "kubectl -n '$CTL_NS' get events --field-selector involvedObject.name=strict,reason=BatchFailed -o jsonpath='{.items[*].message}' | grep -q 'wells A03'"
t_check "no merge ran for the failed Analysis" \
    test -z "$(kubectl -n "$CTL_NS" get jobs -l plateop.io/role=merge,plateop.io/analysis=strict -o name)"

if ctl_wait_phase tolerant Succeeded 180; then
    t_ok "maxFailedBatches 1: the Analysis succeeds without the failed batch"
else
    t_fail "maxFailedBatches 1: the Analysis succeeds without the failed batch" "$(ctl_explain tolerant)"
fi
t_check "the status names the missing wells" test "$(st tolerant '{.status.results.missingWells}')" = A03
t_check "the status counts 5 succeeded and 1 failed batch" \
    test "$(st tolerant '{.status.batches.succeeded}/{.status.batches.failed}')" = "5/1"
manifest="$CTL_DIR/work/$CTL_NS/tolerant/results/manifest.json"
t_check "the merged manifest names the failed batch and its wells" \
    jq -e '[.. | objects | select(.batch? == "a03")] | length > 0' "$manifest"
t_check "the merged Image table holds the 5 good wells' 10 image sets" \
    test "$(( $(wc -l <"$CTL_DIR/work/$CTL_NS/tolerant/results/Image.csv") - 1 ))" -eq 10
t_done
