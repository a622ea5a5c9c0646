#!/usr/bin/env bash
# The API server restarted mid-run, then PostgreSQL restarted mid-run: the
# controller rides through both, the run completes with every batch Job
# created exactly once (counted from the ADDED events of a watch started
# before the run), the ImageDB row of the GUI-submitted analysis and its
# parent end finished with the result, and a row inserted after the
# PostgreSQL restart is picked up within a second (LISTEN is back, not the
# slow fallback poll).
set -uo pipefail
. "$PLATEOP_ROOT/tests/lib.sh"
. "$PLATEOP_ROOT/tests/integration/ctl_lib.sh"
. "$PLATEOP_ROOT/tests/integration/imagedb_lib.sh"

ctl_setup recovery
kubectl -n "$CTL_NS" create quota pods --hard=pods=4 >/dev/null
acq=$(ctl_plate --wells 24 --sites 1)
late_acq=$(ctl_plate --wells 1 --sites 1)
trap 'ctl_stop; idb_cleanup $acq $late_acq; ctl_cleanup' EXIT
ctl_worker_env PLATEOP_STANDIN_SLEEP_MS=1500
# The fallback poll is a minute away: a pick-up within a second is LISTEN's.
ctl_config "window: 4" "imagedb: {namespace: $CTL_NS, pollSeconds: 60}"
ctl_watch jobs
ctl_watch analyses
sleep 1
ctl_start

# A GUI-style submission: a parent row and one cellprofiler sub-analysis row.
read -r aid sid <<<"$(idb_submit "$acq" "$(idb_meta '"batch_size": 1')")"
name="ia-$aid-$sid"
t_eventually 30 "the GUI row becomes Analysis $name" kubectl -n "$CTL_NS" get analysis "$name"
t_eventually 60 "batches run" sh -c "[ \"\$(kubectl -n '$CTL_NS' get analysis '$name' -o jsonpath='{.status.batches.succeeded}')\" -ge 2 ] 2>/dev/null"

t_check "the API server restarts" "$PLATEOP_ROOT/hack/cluster.sh" restart kube-apiserver
t_eventually 60 "batches keep completing after the API server restart" \
    sh -c "[ \"\$(kubectl -n '$CTL_NS' get analysis '$name' -o jsonpath='{.status.batches.succeeded}')\" -ge 8 ] 2>/dev/null"
listened=$(grep -c 'imagedb listener: reconnected to' "$CTL_DIR/controller.log")
t_check "PostgreSQL restarts" "$PLATEOP_PG_CTL" -w -t 60 -m fast restart
t_eventually 20 "the ImageDB listener reconnects and listens again" \
    sh -c "[ \$(grep -c 'imagedb listener: reconnected to' '$CTL_DIR/controller.log') -gt $listened ]"

t0=$(idb_now_ms)
read -r late_aid late_sid <<<"$(idb_submit "$late_acq" "$(idb_meta)")"
late="ia-$late_aid-$late_sid"
added() { idb_event_ms analyses ".type == \"ADDED\" and .object.metadata.name == \"$late\"" >/dev/null; }
if t_eventually 10 "a row inserted after the PostgreSQL restart becomes Analysis $late" added; then
    ms=$(( $(idb_event_ms analyses ".type == \"ADDED\" and .object.metadata.name == \"$late\"") - t0 ))
    t_check "it is picked up within a second of its insert (${ms} ms): the LISTEN was re-established" \
        test "$ms" -ge 0 -a "$ms" -le 1000
fi

if ctl_wait_phase "$name" Succeeded 240; then
    t_ok "the run completes"
else
    t_fail "the run completes" "$(ctl_explain "$name")"
fi
if ctl_wait_phase "$late" Succeeded 120; then
    t_ok "the analysis submitted after the restart completes"
else
    t_fail "the analysis submitted after the restart completes" "$(ctl_explain "$late")"
fi
t_check "the controller is still the same process" kill -0 "$CTL_PID"
t_eventually 10 "the row is finished, with no error, a result and progress 24 / 24" \
    sh -c "[ \"\$(psql -XAtq -c \"SELECT count(*) FROM image_sub_analyses WHERE sub_id = $sid AND start IS NOT NULL
        AND finish IS NOT NULL AND error IS NULL AND result ? 'job_folder' AND status->>'progress' LIKE '24 / 24%'\")\" = 1 ]"
t_eventually 10 "the parent row is finished, with no error, state Succeeded and 1 / 1 steps done" \
    sh -c "[ \"\$(psql -XAtq -c \"SELECT count(*) FROM image_analyses WHERE id = $aid AND start IS NOT NULL
        AND finish IS NOT NULL AND error IS NULL AND status->>'state' = 'Succeeded'
        AND status->>'progress' = '1 / 1 steps done'\")\" = 1 ]"
t_eventually 10 "the late row and its parent are finished too" \
    sh -c "[ \"\$(psql -XAtq -c \"SELECT count(*) FROM image_sub_analyses s JOIN image_analyses a ON a.id = s.analysis_id
        WHERE s.sub_id = $late_sid AND s.finish IS NOT NULL AND s.error IS NULL AND a.finish IS NOT NULL
        AND a.status->>'state' = 'Succeeded'\")\" = 1 ]"
sleep 1
ctl_watch_stop
cut -f2- "$CTL_DIR/jobs.events" |
    jq -r 'select(.object.metadata.labels["plateop.io/analysis"] == "'"$name"'" and .object.metadata.labels["plateop.io/role"] == "batch")
           | [.type, .object.metadata.name] | @tsv' >"$CTL_DIR/jobs.watch"
t_check "24 batch Jobs were created (seen ADDED)" \
    test "$(awk -F'\t' '$1 == "ADDED"' "$CTL_DIR/jobs.watch" | cut -f2 | sort -u | wc -l)" -eq 24
t_check "no batch Job was created twice" \
    test -z "$(awk -F'\t' '$1 == "ADDED"' "$CTL_DIR/jobs.watch" | cut -f2 | sort | uniq -d)"
t_done
