#!/usr/bin/env bash
# Priority across Analyses when the namespace quota is full, and a fair share
# of the quota: under pods=2, a low-priority Analysis with 16 batches runs;
# a high-priority one with 6 batches is applied while the quota is taken.
# From the high one's first Job on, every batch Job created is the high
# one's until it has all of them (the low one, reconciling when its own
# pods finish, yields the freed pod to the waiting claim), and no pod is
# ever refused by quota (no FailedCreate quota Event), though both
# Analyses reconcile concurrently and read the same cached quota room.
# Also, cheaply in the same run: a spec edited after planning keeps
# observedGeneration at the planned generation and says so (condition
# SpecChanged, Event SpecChangedAfterPlanning); a dependsOn naming an
# Analysis that does not exist fails (DependencyFailed, not found) once the
# configured grace is over.
set -uo pipefail
. "$PLATEOP_ROOT/tests/lib.sh"
. "$PLATEOP_ROOT/tests/integration/ctl_lib.sh"

ctl_setup priority
kubectl -n "$CTL_NS" create quota pods --hard=pods=2 >/dev/null
acq=$(ctl_plate --wells 16 --sites 1)
ctl_worker_env PLATEOP_STANDIN_SLEEP_MS=2500
ctl_config "window: 8" "succeededJobTTLSeconds: 3600" "missingDependencyGraceSeconds: 5"
ctl_watch jobs
sleep 1
ctl_start

jp() { kubectl -n "$CTL_NS" get analysis "$1" -o jsonpath="$2" 2>/dev/null; }

ctl_apply orphan "$acq" "dependsOn: [nope]"
ctl_apply low "$acq" "priority: 0"
t_eventually 90 "the low-priority Analysis runs its batches under pods=2" \
    sh -c "[ \"\$(kubectl -n '$CTL_NS' get analysis low -o jsonpath='{.status.batches.succeeded}')\" -ge 2 ] 2>/dev/null"
ctl_apply high "$acq" "priority: 10" "filters: {wells: 'A01-A06'}"

# A spec edit after planning: not planned again, and visible as such.
kubectl -n "$CTL_NS" patch analysis low --type merge -p '{"spec":{"maxFailedBatches":1}}' >/dev/null
spec_change_shown() {
    [ "$(jp low '{.metadata.generation}')" = 2 ] &&
        [ "$(jp low '{.status.observedGeneration}')" = 1 ] &&
        [ "$(jp low '{.status.conditions[?(@.type=="SpecChanged")].reason}')" = SpecChangedAfterPlanning ] &&
        jp low '{.status.conditions[?(@.type=="SpecChanged")].message}' | grep -q 'delete and re-create'
}
t_eventually 30 "a spec edited after planning keeps observedGeneration at the plan's and sets SpecChanged" \
    spec_change_shown
t_eventually 30 "and an Event SpecChangedAfterPlanning says so" \
    sh -c "kubectl -n '$CTL_NS' get events --field-selector reason=SpecChangedAfterPlanning -o name | grep -q ."

if ctl_wait_phase high Succeeded 120; then t_ok "the high-priority Analysis succeeds"
else t_fail "the high-priority Analysis succeeds" "$(ctl_explain high)"; fi
if ctl_wait_phase low Succeeded 120; then t_ok "the low-priority Analysis succeeds"
else t_fail "the low-priority Analysis succeeds" "$(ctl_explain low)"; fi
ctl_watch_stop

# Batch Job creations in the API server's order: the Analysis of each.
cut -f2- "$CTL_DIR/jobs.events" |
    jq -r 'select(.type == "ADDED" and .object.metadata.labels["plateop.io/role"] == "batch")
           | [.object.metadata.resourceVersion, .object.metadata.labels["plateop.io/analysis"]]
           | @tsv' | sort -n -k1,1 | cut -f2 >"$CTL_DIR/order"
echo "# batch Jobs in creation order: $(tr '\n' ' ' <"$CTL_DIR/order")"
t_check "every batch got one Job (16 + 6)" \
    test "$(grep -c . "$CTL_DIR/order")" -eq 22
t_check "from the high-priority Analysis's first Job on, every new Job is its own until it has all 6" \
    awk '$1 == "high" { seen = 1; n++ } seen && n < 6 && $1 != "high" { print "a low Job at line " NR; bad = 1 }
         END { exit bad || n != 6 }' "$CTL_DIR/order"
high_done=$(jp high '{.status.completionTime}') low_done=$(jp low '{.status.completionTime}')
t_check "the high-priority Analysis completed first (its merge pod too got the quota first)" \
    sh -c "echo 'high $high_done, low $low_done'; [ '$high_done' \< '$low_done' ]"
refused=$(kubectl -n "$CTL_NS" get events --field-selector reason=FailedCreate -o json |
    jq -r '.items[] | select(.message | test("quota")) | "\(.involvedObject.name): \(.message)"')
t_check "no pod was ever refused by quota (no FailedCreate quota Event)" \
    sh -c "printf '%s\n' \"\$1\"; [ -z \"\$1\" ]" _ "$refused"

dep_failed() {
    [ "$(ctl_phase orphan)" = Failed ] &&
        [ "$(jp orphan '{.status.conditions[?(@.type=="Failed")].reason}')" = DependencyFailed ] &&
        jp orphan '{.status.conditions[?(@.type=="Failed")].message}' | grep -q 'nope not found'
}
t_eventually 30 "a dependsOn naming no Analysis fails (DependencyFailed, not found) after its grace" dep_failed
t_done
