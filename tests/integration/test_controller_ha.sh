#!/usr/bin/env bash
# Two controller replicas with leader election: only the leader acts (its
# peer creates nothing); SIGKILL the leader mid-run and the other takes the
# Lease and finishes the run; no batch Job is ever created twice.
set -uo pipefail
. "$PLATEOP_ROOT/tests/lib.sh"
. "$PLATEOP_ROOT/tests/integration/ctl_lib.sh"

ctl_setup ha
kubectl -n "$CTL_NS" create quota pods --hard=pods=4 >/dev/null
acq=$(ctl_plate --wells 40 --sites 1)
ctl_worker_env PLATEOP_STANDIN_SLEEP_MS=1500
ctl_config "window: 4"

ctl_watch jobs
holder() { kubectl -n "$CTL_NS" get lease plateop-controller -o jsonpath='{.spec.holderIdentity}' 2>/dev/null; }

ctl_start --leader-elect=true --lease-namespace "$CTL_NS" --id replica-a
pid_a=$CTL_PID
t_eventually 30 "the first replica takes the Lease" sh -c "[ \"\$(kubectl -n '$CTL_NS' get lease plateop-controller -o jsonpath='{.spec.holderIdentity}')\" = replica-a ]"
"$PLATEOP_BUILD/plateop-controller" --namespace "$CTL_NS" --config "$CTL_DIR/config.yaml" --listen "" \
    --lease-namespace "$CTL_NS" --id replica-b >"$CTL_DIR/replica-b.log" 2>&1 &
pid_b=$!

ctl_apply ha "$acq"
t_eventually 60 "the leader runs batches" sh -c "[ \"\$(kubectl -n '$CTL_NS' get analysis ha -o jsonpath='{.status.batches.succeeded}')\" -ge 8 ]"
t_check "the follower created nothing while the other led" \
    sh -c "! grep -q 'creating the batch Job\|Planned' '$CTL_DIR/replica-b.log'"

kill -KILL "$pid_a"
wait "$pid_a" 2>/dev/null
CTL_PID=$pid_b
killed_at=$(date +%s)
t_eventually 30 "the follower takes the Lease after the leader dies" sh -c "[ \"\$(kubectl -n '$CTL_NS' get lease plateop-controller -o jsonpath='{.spec.holderIdentity}')\" = replica-b ]"
echo "# takeover after $(( $(date +%s) - killed_at )) s"
if ctl_wait_phase ha Succeeded 240; then
    t_ok "the new leader finishes the run"
else
    t_fail "the new leader finishes the run" "$(ctl_explain ha; tail -n 5 "$CTL_DIR/replica-b.log")"
fi
t_check "the new leader created the remaining batch Jobs" grep -q 'creating the batch Job' "$CTL_DIR/replica-b.log"
sleep 1
ctl_watch_stop
cut -f2- "$CTL_DIR/jobs.events" | jq -r '[.type, .object.metadata.name] | @tsv' >"$CTL_DIR/jobs.watch"
t_check "40 batch Jobs, none created twice" \
    sh -c "[ \$(awk -F'\t' '\$1 == \"ADDED\" && \$2 !~ /-merge\$/' '$CTL_DIR/jobs.watch' | cut -f2 | sort | uniq -d | wc -l) -eq 0 ] &&
           [ \$(awk -F'\t' '\$1 == \"ADDED\" && \$2 !~ /-merge\$/' '$CTL_DIR/jobs.watch' | cut -f2 | sort -u | wc -l) -eq 40 ]"
t_done
