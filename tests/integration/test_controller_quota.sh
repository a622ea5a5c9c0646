#!/usr/bin/env bash
# Throttling: with a namespace quota of pods=4 and 100 one-well batches that
# each take about 2 s, never more than 4 pods exist at once (sampled through
# a watch), never more than the window of Jobs wait for a pod, quota never
# refuses a pod, every batch completes, and the whole run takes at most 1.5x
# the ideal 100 / 4 x one batch's time: freed quota is used within seconds,
# never lost to the Job controller's backoff.
set -uo pipefail
. "$PLATEOP_ROOT/tests/lib.sh"
. "$PLATEOP_ROOT/tests/integration/ctl_lib.sh"

ctl_setup quota
kubectl -n "$CTL_NS" create quota pods --hard=pods=4 >/dev/null
acq=$(ctl_plate --wells 100 --sites 1)
ctl_worker_env PLATEOP_STANDIN_SLEEP_MS=2000
ctl_config "window: 8" "succeededJobTTLSeconds: 3600"

# Every pod and Job event: the most pods at once that were not terminal; the
# most Jobs at once that had no started pod (the window).
ctl_watch pods
ctl_watch jobs
sleep 1

ctl_start
start=$(date +%s.%N)
ctl_apply many "$acq"
if ctl_wait_phase many Succeeded 400; then
    t_ok "100 batches under a pods=4 quota all complete"
else
    t_fail "100 batches under a pods=4 quota all complete" "$(ctl_explain many)"
fi
end=$(date +%s.%N)
ctl_watch_stop
cut -f2- "$CTL_DIR/pods.events" |
    jq -r '[.type, .object.metadata.name, (.object.status.phase // "Pending"),
            .object.metadata.resourceVersion] | @tsv' >"$CTL_DIR/pods.watch"

# In the API server's order (resourceVersion), which is the order quota admission saw.
max=$(sort -t$'\t' -k4,4n "$CTL_DIR/pods.watch" | awk -F'\t' '
    { if ($1 == "DELETED" || $3 == "Succeeded" || $3 == "Failed") delete live[$2]; else live[$2] = 1
      n = 0; for (k in live) n++; if (n > max) max = n }
    END { print max + 0 }')
seen=$(cut -f2 "$CTL_DIR/pods.watch" | sort -u | wc -l)
echo "# most pods at once: $max (watch saw $seen pods)"
t_check "the watch saw every batch pod" test "$seen" -ge 100
t_check "never more than 4 pods at once (sampled through a watch)" test "$max" -le 4
t_check "the quota was used: 4 pods ran at once" test "$max" -eq 4

waiting=$(ctl_max_waiting "$CTL_DIR/jobs.events" "$CTL_DIR/pods.events")
echo "# most batch Jobs at once without a started pod: $waiting (window 8)"
t_check "never more than the window (8) of Jobs without a started pod, plus one in flight" \
    test "$waiting" -le 9
refused=$(kubectl -n "$CTL_NS" get events --field-selector reason=FailedCreate,involvedObject.kind=Job -o name | wc -l)
t_check "quota never refused a batch pod (no FailedCreate Event: no Job controller backoff)" \
    test "$refused" -eq 0

# One batch's time: the median of the workers' own run times (milliseconds,
# in each batch's manifest); pod timestamps have a resolution of a second,
# which would move the bound by up to half.
batch_s=$(jq -r '.duration_s' "$CTL_DIR/work/$CTL_NS/many/batches"/*/manifest.json | sort -g |
    awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}')
wall=$(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.1f", b - a}')
ideal=$(awk -v t="$batch_s" 'BEGIN {printf "%.1f", 100 / 4 * t}')
t_check "one batch took the stand-in's 2 s and a little more" \
    awk -v t="$batch_s" 'BEGIN {exit !(t >= 2.0 && t < 4.0)}'
echo "# wall ${wall}s, one batch ${batch_s}s, ideal ${ideal}s, ratio $(awk -v w="$wall" -v i="$ideal" 'BEGIN {printf "%.2f", w / i}')"
t_check "wall time within 1.5x of the ideal (100 / 4 x one batch)" \
    awk -v w="$wall" -v i="$ideal" 'BEGIN {exit !(i > 0 && w <= 1.5 * i)}'
t_check "one Job per batch" test "$(kubectl -n "$CTL_NS" get jobs -l plateop.io/role=batch -o name | wc -l)" -eq 100
t_done
