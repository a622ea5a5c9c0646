#!/usr/bin/env bash
# A batch that exceeds its memory limit (its pod OOMKilled) is retried with
# a larger limit, spec.memory.retryFactor times the last, and succeeds;
# the status shows the memory it finally ran with and an Event says why.
# Past the ceiling, the batch fails and says so. With no memory settings
# and the default retries, the Job's own retries at the first limit come
# first, then the default factor of 2.
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
ctl_apply defaults "$acq" "resources: {limits: {memory: 100Mi}}"
ctl_apply fits "$acq" "resources: {limits: {memory: 256Mi}}"

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
    sh -c "kubectl -n '$CTL_NS' get analysis capped -o jsonpath='{range .status.failedBatches[*]}{.reason} {.message}{\"\\n\"}{end}' | tee /dev/stderr | grep -q '^OOMKilled .*already at the memory ceiling 96Mi'"
if ctl_wait_phase defaults Succeeded 300; then
    t_ok "with no memory settings and default retries, OOMKilled batches are retried with more memory and succeed"
else
    t_fail "with no memory settings and default retries, OOMKilled batches are retried with more memory and succeed" "$(ctl_explain defaults)"
fi
t_check "default retries: the first Job of a batch had backoffLimit 2 and its pod failed 3 times at 100Mi" \
    test "$(kubectl -n "$CTL_NS" get jobs -l plateop.io/analysis=defaults,plateop.io/batch=a01,plateop.io/attempt!=1 -o jsonpath='{.items[0].spec.backoffLimit} {.items[0].status.failed} {.items[0].spec.template.spec.containers[0].resources.limits.memory}')" = "2 3 100Mi"
t_check "the default factor: the retry ran with 2 x 100Mi = 200Mi" \
    test "$(kubectl -n "$CTL_NS" get jobs -l plateop.io/analysis=defaults,plateop.io/batch=a01,plateop.io/attempt=1 -o jsonpath='{.items[*].spec.template.spec.containers[0].resources.limits.memory}')" = 200Mi
t_check "the status shows 200Mi for both batches" \
    test "$(st defaults '{.status.batchMemory.a01} {.status.batchMemory.a02}')" = "200Mi 200Mi"
t_check "an Event BatchRetriedWithMoreMemory says 100Mi, then 200Mi" \
    sh -c "kubectl -n '$CTL_NS' get events --field-selector involvedObject.name=defaults,reason=BatchRetriedWithMoreMemory -o jsonpath='{.items[*].message}' | grep -q 'a01 (wells A01) was OOMKilled with a 100Mi memory limit: retrying with 200Mi'"
if ctl_wait_phase fits Succeeded 180; then
    t_ok "an analysis whose limit suffices succeeds at once"
else
    t_fail "an analysis whose limit suffices succeeds at once" "$(ctl_explain fits)"
fi
# status.batchMemory lists the batches whose limit was raised; one that never was is absent.
echo "# status.batchMemory: grows $(st grows '{.status.batchMemory}'), defaults $(st defaults '{.status.batchMemory}'), fits '$(st fits '{.status.batchMemory}')'"
t_done
