#!/usr/bin/env bash
# The controller SIGKILLed at random moments, five times during a run, and
# restarted: the run completes, and every batch Job was created exactly
# once (counted from ADDED events of a watch started before the run), even
# though succeeded Jobs are removed by their TTL along the way.
set -uo pipefail
. "$PLATEOP_ROOT/tests/lib.sh"
. "$PLATEOP_ROOT/tests/integration/ctl_lib.sh"

ctl_setup restart
kubectl -n "$CTL_NS" create quota pods --hard=pods=6 >/dev/null
acq=$(ctl_plate --wells 60 --sites 2)
ctl_worker_env PLATEOP_STANDIN_SLEEP_MS=1500
ctl_config "window: 6" "succeededJobTTLSeconds: 5"

ctl_watch jobs
sleep 1

ctl_start
ctl_apply killed "$acq"
kills=0
while [ $kills -lt 5 ]; do
    sleep "$(awk -v r=$RANDOM 'BEGIN {printf "%.2f", 1 + (r % 300) / 100}')"
    phase=$(ctl_phase killed)
    [ "$phase" = Succeeded ] || [ "$phase" = Failed ] && break
    ctl_stop KILL
    kills=$((kills + 1))
    echo "# SIGKILL $kills at phase ${phase:-none}, $(kubectl -n "$CTL_NS" get analysis killed -o jsonpath='{.status.batches.succeeded}') batches done"
    ctl_start
done
t_check "the controller was killed 5 times during the run" test $kills -eq 5
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
dups=$(awk -F'\t' '$1 == "ADDED"' "$CTL_DIR/jobs.watch" | cut -f2 | sort | uniq -d)
t_check "no Job was ever created twice" test -z "$dups"
t_check "succeeded Jobs were removed by their TTL while the run went on" \
    sh -c "awk -F'\t' '\$1 == \"DELETED\"' '$CTL_DIR/jobs.watch' | grep -q ."
t_check "the merged Image table has all 120 image sets" \
    test "$(( $(wc -l <"$CTL_DIR/work/$CTL_NS/killed/results/Image.csv") - 1 ))" -eq 120
t_done
