#!/usr/bin/env bash
# A batch whose CellProfiler hangs is stopped at spec.timeoutSeconds by the
# worker (long before the Job's activeDeadlineSeconds backstop), named in
# status.failedBatches with reason Timeout, and with maxFailedBatches 0 the
# Analysis fails and its batch Jobs that never started are deleted.
#
# Jobs that never start: every batch pod requests 100m CPU. A pods=1 quota
# lets the controller create only the hanging batch's Job; once that pod
# runs, a requests.cpu=100m quota replaces it, so the controller (no pods
# quota to count room in) fills its window of 4 with Jobs whose pods that
# quota refuses: they wait, podless, until the timeout fails the Analysis.
set -uo pipefail
. "$PLATEOP_ROOT/tests/lib.sh"
. "$PLATEOP_ROOT/tests/integration/ctl_lib.sh"

timeout_s=15
ctl_setup timeout
kubectl -n "$CTL_NS" create quota pods --hard=pods=1 >/dev/null
acq=$(ctl_plate --wells 6 --sites 1)
ctl_worker_env PLATEOP_STANDIN_FAIL_WELLS=A01 PLATEOP_STANDIN_MODE=hang
ctl_config "window: 4"
ctl_watch jobs
ctl_watch pods
sleep 1
ctl_start
ctl_apply hung "$acq" "timeoutSeconds: $timeout_s" "retries: 0" "maxFailedBatches: 0" \
    "resources: {requests: {cpu: 100m}}"
st() { kubectl -n "$CTL_NS" get analysis hung -o jsonpath="$1"; }
jobs_of() { kubectl -n "$CTL_NS" get jobs -l plateop.io/analysis=hung,plateop.io/role=batch -o name | sort; }

t_eventually 60 "the hanging batch's pod runs" \
    sh -c "kubectl -n '$CTL_NS' get pods -l plateop.io/batch=a01 --field-selector status.phase=Running -o name | grep -q pod/"
started=$(date +%s)
t_check "under pods=1 only its Job was created" test "$(jobs_of)" = "job.batch/hung-a01"

kubectl -n "$CTL_NS" create quota cpu --hard=requests.cpu=100m >/dev/null
t_eventually 30 "the CPU quota counts the running pod" \
    test "$(kubectl -n "$CTL_NS" get quota cpu -o jsonpath='{.status.used.requests\.cpu}')" = 100m
kubectl -n "$CTL_NS" delete quota pods >/dev/null
t_eventually 30 "the window fills with 4 Jobs whose pods the CPU quota refuses" \
    test "$(jobs_of | tr '\n' ' ')" = "job.batch/hung-a01 job.batch/hung-a02 job.batch/hung-a03 job.batch/hung-a04 job.batch/hung-a05 "

if ctl_wait_phase hung Failed 120; then
    t_ok "the hanging batch times out and fails the Analysis (maxFailedBatches 0)"
else
    t_fail "the hanging batch times out and fails the Analysis (maxFailedBatches 0)" "$(ctl_explain hung)"
fi
took=$(( $(date +%s) - started ))
echo "# failed ${took}s after the hanging pod ran (timeout ${timeout_s}s)"
t_check "the worker's timeout stopped it, not the Job's deadline ($((timeout_s + 120)) s)" \
    test "$took" -lt $((timeout_s + 60))
t_check "status.failedBatches names batch a01, well A01, reason Timeout" \
    test "$(st '{.status.failedBatches[0].batch}/{.status.failedBatches[0].wells}/{.status.failedBatches[0].reason}')" = "a01/A01/Timeout"
t_check "its message says it ran past the timeout" \
    sh -c 'case "$1" in *"timeout"*) ;; *) exit 1 ;; esac' _ "$(st '{.status.failedBatches[0].message}')"
t_check "the Failed condition: TooManyFailedBatches" \
    test "$(st '{.status.conditions[?(@.type=="Failed")].status}/{.status.conditions[?(@.type=="Failed")].reason}')" = "True/TooManyFailedBatches"
t_check "its Job's backoffLimit is spec.retries and activeDeadlineSeconds the backstop" \
    test "$(kubectl -n "$CTL_NS" get job hung-a01 -o jsonpath='{.spec.backoffLimit}/{.spec.activeDeadlineSeconds}')" = "0/$((timeout_s + 120))"

t_eventually 30 "the Jobs that never started are deleted; the failed one is kept" \
    test "$(jobs_of)" = "job.batch/hung-a01"
sleep 1
ctl_watch_stop
cut -f2- "$CTL_DIR/jobs.events" | jq -r '[.type, .object.metadata.name] | @tsv' | sort -u >"$CTL_DIR/jobs.watch"
t_check "the watch saw a02..a05 created and deleted, a06 never created" \
    test "$(awk -F'\t' '{print $1 "-" $2}' "$CTL_DIR/jobs.watch" | grep -E 'ADDED|DELETED' | grep -v a01 | sort | tr '\n' ' ')" = \
        "ADDED-hung-a02 ADDED-hung-a03 ADDED-hung-a04 ADDED-hung-a05 DELETED-hung-a02 DELETED-hung-a03 DELETED-hung-a04 DELETED-hung-a05 "
t_check "no pod of a deleted Job ever ran" \
    test "$(cut -f2- "$CTL_DIR/pods.events" | jq -r '.object.metadata.labels["plateop.io/batch"]' | sort -u | tr '\n' ' ')" = "a01 "
t_check "no merge ran" \
    test -z "$(kubectl -n "$CTL_NS" get jobs -l plateop.io/role=merge,plateop.io/analysis=hung -o name)"
t_done
