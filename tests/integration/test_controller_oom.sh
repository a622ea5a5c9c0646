#!/usr/bin/env bash
# A batch that exceeds its memory limit (its pod OOMKilled) is retried with
# a larger limit, spec.memory.retryFactor times the last, and succeeds;
# the status shows the memory it finally ran with and an Event says why.
# Past the ceiling, the batch fails and says so.
set -uo pipefail
. "$PLATEOP_ROOT/tests/lib.sh"
. "$PLATEOP_ROOT/tests/integration/ctl_lib.sh"

ctl_setup oom
acq=$(ctl_plate --wells 2 --sites 1)
ctl_worker_env PLATEOP_STANDIN_MEMORY_MB=120
ctl_config "window: 8"
ctl_start
ctl_apply grows "$acq" "retries: 0" "resources: {limits: {memory: 64Mi}}" "memory: {retryFactor: 3}"
ctl_apply capped "$acq" "retries: 0" "resources: {limits: {memory: 64Mi}}" "memory: {retryFactor: 2, max: 96Mi}"

st() { kubectl -n "$CTL_NS" get analysis "$1" -o jsonpath="$2"; }
if ctl_wait_phase grows Succeeded 180; then
    t_ok "batches OOMKilled at 64Mi are retried with more memory and succeed"
else
    t_fail "batches OOMKilled at 64Mi are retried with more memory and succeed" "$(ctl_explain grows)"
fi
t_check "the first pod of a batch was OOMKilled with exit code 137" \
    sh -c "kubectl -n '$CTL_NS' get pods -l plateop.io/analysis=grows -o jsonpath='{range .items[*]}{.status.containerStatuses[0].state.terminated.reason}:{.status.containerStatuses[0].state.terminated.exitCode} {end}' | grep -q 'OOMKilled:137'"
t_check "the retry ran with 3 x 64Mi = 192Mi" \
    sh -c "kubectl -n '$CTL_NS' get jobs -l plateop.io/analysis=grows,plateop.io/attempt=1 -o jsonpath='{.items[*].spec.template.spec.containers[0].resources.limits.memory}' | grep -q 192Mi"
t_check "the status shows the memory each batch finally used" test "$(st grows '{.status.batchMemory.a01}')" = 192Mi
t_check "an Event BatchRetriedWithMoreMemory names the batch and both limits" \
    sh -c "kubectl -n '$CTL_NS' get events --field-selector involvedObject.name=grows,reason=BatchRetriedWithMoreMemory -o jsonpath='{.items[*].message}' | grep -q 'a01 (wells A01) was OOMKilled with a 64Mi memory limit: retrying with 192Mi'"

if ctl_wait_phase capped Failed 180; then
    t_ok "past spec.memory.max the batch fails"
else
    t_fail "past spec.memory.max the batch fails" "$(ctl_explain capped)"
fi
t_check "the failure says OOMKilled at the ceiling" \
    sh -c "kubectl -n '$CTL_NS' get analysis capped -o jsonpath='{.status.failedBatches[0].reason} {.status.failedBatches[0].message}' | grep -q '^OOMKilled .*already at the memory ceiling 96Mi'"
t_done
