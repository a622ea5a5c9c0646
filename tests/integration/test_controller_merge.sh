#!/usr/bin/env bash
# A merge that fails fails the Analysis: one batch's table is cut short on
# the work volume after the batch finished (as a flaky shared file system
# would), the merge refuses it against the batch's manifest, and the
# Analysis ends Failed (MergeFailed) with no results, a Failed Event and no
# Succeeded one -- never Succeeded without a verified merge.
set -uo pipefail
. "$PLATEOP_ROOT/tests/lib.sh"
. "$PLATEOP_ROOT/tests/integration/ctl_lib.sh"

ctl_setup merge
# One batch at a time (pods=1), each a few seconds: time to spoil the first
# one's table before the last one ends and the merge starts.
kubectl -n "$CTL_NS" create quota pods --hard=pods=1 >/dev/null
acq=$(ctl_plate --wells 4 --sites 1)
ctl_worker_env PLATEOP_STANDIN_SLEEP_MS=2000
ctl_config "window: 1"
ctl_start
ctl_apply broken "$acq"

first="$CTL_DIR/work/$CTL_NS/broken/batches/a01"
t_eventually 90 "the first batch finishes and writes its manifest" test -f "$first/manifest.json"
size=$(stat -c %s "$first/Cells.csv")
truncate -s $((size - 7)) "$first/Cells.csv"
t_check "its Cells table was cut short before the merge ran" \
    test -z "$(kubectl -n "$CTL_NS" get jobs -l plateop.io/role=merge,plateop.io/analysis=broken -o name)"

if ctl_wait_phase broken Failed 180; then
    t_ok "a failed merge fails the Analysis"
else
    t_fail "a failed merge fails the Analysis" "$(ctl_explain broken)"
fi
st() { kubectl -n "$CTL_NS" get analysis broken -o jsonpath="$1"; }
t_check "the merge Job ran and failed" \
    test "$(kubectl -n "$CTL_NS" get jobs -l plateop.io/role=merge,plateop.io/analysis=broken \
        -o jsonpath='{.items[0].status.conditions[?(@.type=="Failed")].status}')" = True
t_check "every batch had succeeded: 4 of 4, none failed" \
    test "$(st '{.status.batches.succeeded}/{.status.batches.total}/{.status.batches.failed}')" = "4/4/0"
t_check "the Failed condition is True with reason MergeFailed" \
    test "$(st '{.status.conditions[?(@.type=="Failed")].status}/{.status.conditions[?(@.type=="Failed")].reason}')" = "True/MergeFailed"
msg=$(st '{.status.conditions[?(@.type=="Failed")].message}')
echo "# Failed: $msg"
t_check "its message carries the merge's reason: batch a01's Cells table was truncated" \
    sh -c 'case "$1" in *"the merge failed"*a01*Cells.csv*truncated*) ;; *) exit 1 ;; esac' _ "$msg"
t_check "the Succeeded condition is False and Ready is False" \
    test "$(st '{.status.conditions[?(@.type=="Succeeded")].status}/{.status.conditions[?(@.type=="Ready")].status}')" = "False/False"
t_check "no results in the status" test -z "$(st '{.status.results}')"
t_check "completionTime is set" test -n "$(st '{.status.completionTime}')"
t_check "no merged table was left behind" test ! -e "$CTL_DIR/work/$CTL_NS/broken/results/Image.csv"
t_eventually 30 "Events: Planned, Merging and Failed" ctl_has_events broken Planned Merging Failed
t_check "no Succeeded Event" test "$(ctl_events broken | grep -cx Succeeded)" -eq 0
t_done
