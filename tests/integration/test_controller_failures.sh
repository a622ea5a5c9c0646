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
t_check "its batch counts add up to the 6 batches, 1 failed" \
    sh -c "kubectl -n '$CTL_NS' get analysis strict -o json | jq -e '.status.batches |
        .total == 6 and .failed == 1 and .pending + .running + .succeeded + .failed == .total'"
t_check "Failed True with a lastTransitionTime; Succeeded and Progressing False; completionTime set" \
    sh -c "kubectl -n '$CTL_NS' get analysis strict -o json | jq -e '.status as \$s |
        (\$s.conditions | map({(.type): .}) | add) as \$c |
        \$c.Failed.status == \"True\" and (\$c.Failed.lastTransitionTime | fromdate) > 0 and
        \$c.Succeeded.status == \"False\" and \$c.Progressing.status == \"False\" and
        (\$s.completionTime | fromdate) >= (\$s.startTime | fromdate) and \$s.results == null'"
t_eventually 30 "Events: Planned, BatchFailed and Failed" ctl_has_events strict Planned BatchFailed Failed
t_check "no Merging or Succeeded Event" test "$(ctl_events strict | grep -cxE 'Merging|Succeeded')" -eq 0

if ctl_wait_phase tolerant Succeeded 180; then
    t_ok "maxFailedBatches 1: the Analysis succeeds without the failed batch"
else
    t_fail "maxFailedBatches 1: the Analysis succeeds without the failed batch" "$(ctl_explain tolerant)"
fi
t_check "the status names the missing wells" test "$(st tolerant '{.status.results.missingWells}')" = A03
t_check "the status counts 5 succeeded and 1 failed batch, none pending or running" \
    test "$(st tolerant '{.status.batches.succeeded}/{.status.batches.failed}/{.status.batches.pending}/{.status.batches.running}')" = "5/1/0/0"
t_check "the status names the failed batch with its reason" \
    test "$(st tolerant '{.status.failedBatches[0].batch}/{.status.failedBatches[0].wells}/{.status.failedBatches[0].reason}')" = "a03/A03/CellProfilerFailed"
t_check "Succeeded True (Merged), its message naming the missing wells; results path set" \
    test "$(st tolerant '{.status.conditions[?(@.type=="Succeeded")].status}/{.status.conditions[?(@.type=="Succeeded")].reason}/{.status.results.path}')" = \
        "True/Merged//plateop-work/$CTL_NS/tolerant/results"
t_check "the Succeeded message names the missing wells" \
    sh -c 'case "$1" in *"missing wells (failed batches): A03"*) ;; *) exit 1 ;; esac' _ \
        "$(st tolerant '{.status.conditions[?(@.type=="Succeeded")].message}')"
t_eventually 30 "Events: Planned, BatchFailed, Merging and Succeeded" \
    ctl_has_events tolerant Planned BatchFailed Merging Succeeded
t_check "no Failed Event" test "$(ctl_events tolerant | grep -cx Failed)" -eq 0
manifest="$CTL_DIR/work/$CTL_NS/tolerant/results/manifest.json"
t_check "the merged manifest lists the failed batch with its wells and reason" \
    jq -e '[.failed_batches[] | select(.batch == "a03")] | length == 1 and
           (.[0].wells | if type == "array" then join(",") else . end) == "A03" and
           .[0].reason == "CellProfilerFailed"' "$manifest"
t_check "the merged manifest lists no other failed batch" jq -e '.failed_batches | length == 1' "$manifest"
t_check "the merged Image table holds the 5 good wells' 10 image sets" \
    test "$(( $(wc -l <"$CTL_DIR/work/$CTL_NS/tolerant/results/Image.csv") - 1 ))" -eq 10
t_done
