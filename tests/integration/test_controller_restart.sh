#!/usr/bin/env bash
# The controller SIGKILLed at random moments, five times during a run (the
# last while the merge runs), and restarted: the run completes, and every
# batch Job and the merge Job were created exactly once (counted from ADDED
# events of a watch started before the run), even though succeeded Jobs are
# removed by their TTL along the way.
set -uo pipefail
. "$PLATEOP_ROOT/tests/lib.sh"
. "$PLATEOP_ROOT/tests/integration/ctl_lib.sh"

ctl_setup restart
kubectl -n "$CTL_NS" create quota pods --hard=pods=6 >/dev/null
acq=$(ctl_plate --wells 60 --sites 2)
ctl_worker_env PLATEOP_STANDIN_SLEEP_MS=1500
ctl_config "window: 6" "succeededJobTTLSeconds: 5"

ctl_watch jobs
ctl_watch analyses
sleep 1

ctl_start
ctl_apply killed "$acq"
kills=0
kill_now() {
    ctl_stop KILL
    kills=$((kills + 1))
    phase=$(ctl_phase killed)
    done_at_kill=$(kubectl -n "$CTL_NS" get analysis killed -o jsonpath='{.status.batches.succeeded}')
    echo "# SIGKILL $kills at phase ${phase:-none}, $done_at_kill batches done"
    ctl_start
}
while [ $kills -lt 4 ]; do
    sleep "$(awk -v r=$RANDOM 'BEGIN {printf "%.2f", 1 + (r % 300) / 100}')"
    phase=$(ctl_phase killed)
    [ "$phase" = Succeeded ] || [ "$phase" = Failed ] && break
    kill_now
done
# The fifth lands after every batch is done: as soon as the status says Merging.
merging() { grep -qF '"phase":"Merging"' "$CTL_DIR/analyses.events"; }
for _ in $(seq 1 1800); do
    merging && break
    sleep 0.1
done
merging && kill_now
t_check "the controller was killed 5 times during the run" test $kills -eq 5
t_check "the last kill came while the merge ran: every batch done, the Analysis not yet Succeeded" \
    test "$done_at_kill/$phase" = "60/Merging"
if ctl_wait_phase killed Succeeded 300; then
    t_ok "the run completes after the kills"
else
    t_fail "the run completes after the kills" "$(ctl_explain killed)"
fi
sleep 1
ctl_watch_stop
cut -f2- "$CTL_DIR/jobs.events" | jq -r '[.type, .object.metadata.name] | @tsv' >"$CTL_DIR/jobs.watch"
t_check "60 batch Jobs were created" \
    test "$(awk -F'\t' '$1 == "ADDED" && $2 !~ /-merge$/' "$CTL_DIR/jobs.watch" | cut -f2 | sort -u | wc -l)" -eq 60
t_check "one merge Job was created" \
    test "$(awk -F'\t' '$1 == "ADDED" && $2 == "killed-merge"' "$CTL_DIR/jobs.watch" | wc -l)" -eq 1
dups=$(awk -F'\t' '$1 == "ADDED"' "$CTL_DIR/jobs.watch" | cut -f2 | sort | uniq -d)
t_check "no Job was ever created twice" test -z "$dups"
t_check "succeeded Jobs were removed by their TTL while the run went on" \
    sh -c "awk -F'\t' '\$1 == \"DELETED\"' '$CTL_DIR/jobs.watch' | grep -q ."
t_check "the merged Image table has all 120 image sets" \
    test "$(( $(wc -l <"$CTL_DIR/work/$CTL_NS/killed/results/Image.csv") - 1 ))" -eq 120
t_done
