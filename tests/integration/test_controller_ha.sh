#!/usr/bin/env bash
# Two controller replicas with leader election: only the leader acts (its
# peer creates nothing, and its own /metrics shows it sent no write request
# while following); a GUI row inserted mid-run becomes exactly one Analysis
# and its row is written; SIGKILL the leader mid-run and the other takes the
# Lease and finishes both runs; no batch Job is ever created twice (Job
# creations requested, from each leader's /metrics, against the Jobs a watch
# saw ADDED).
set -uo pipefail
. "$PLATEOP_ROOT/tests/lib.sh"
. "$PLATEOP_ROOT/tests/integration/ctl_lib.sh"
. "$PLATEOP_ROOT/tests/integration/imagedb_lib.sh"

ctl_setup ha
kubectl -n "$CTL_NS" create quota pods --hard=pods=4 >/dev/null
acq=$(ctl_plate --wells 40 --sites 1)
gui_acq=$(ctl_plate --wells 2 --sites 1)
trap 'ctl_stop; idb_cleanup $gui_acq; ctl_cleanup' EXIT
ctl_worker_env PLATEOP_STANDIN_SLEEP_MS=1500
ctl_config "window: 4" "imagedb: {namespace: $CTL_NS}"

ctl_watch jobs
ctl_watch analyses
sleep 1
holder() { kubectl -n "$CTL_NS" get lease plateop-controller -o jsonpath='{.spec.holderIdentity}' 2>/dev/null; }
pick_port port_a
pick_port port_b

ctl_start --leader-elect=true --lease-namespace "$CTL_NS" --id replica-a --listen "127.0.0.1:$port_a"
pid_a=$CTL_PID
t_eventually 30 "the first replica takes the Lease" sh -c "[ \"\$(kubectl -n '$CTL_NS' get lease plateop-controller -o jsonpath='{.spec.holderIdentity}')\" = replica-a ]"
"$PLATEOP_BUILD/plateop-controller" --namespace "$CTL_NS" --config "$CTL_DIR/config.yaml" \
    --listen "127.0.0.1:$port_b" --lease-namespace "$CTL_NS" --id replica-b >"$CTL_DIR/replica-b.log" 2>&1 &
pid_b=$!

ctl_apply ha "$acq"
read -r gui_aid gui_sub <<<"$(idb_submit "$gui_acq" "$(idb_meta '"batch_size": 1')")"
gui="ia-$gui_aid-$gui_sub"
t_eventually 60 "the leader runs batches" sh -c "[ \"\$(kubectl -n '$CTL_NS' get analysis ha -o jsonpath='{.status.batches.succeeded}')\" -ge 8 ]"
t_eventually 10 "the leader turns the GUI row into Analysis $gui" kubectl -n "$CTL_NS" get analysis "$gui"
t_check "the follower created nothing while the other led" \
    sh -c "! grep -q 'creating the batch Job\|Planned\|created for ImageDB' '$CTL_DIR/replica-b.log'"

# writes VERB... in a scrape: the requests of those verbs it counts, whatever their code.
writes() {
    "$PLATEOP_BUILD/tests/unit/test_promtext" check "$1" |
        awk '/^plateop_kube_requests_total\{/ && /verb="(POST|PUT|PATCH|DELETE)"/ { n += $2 } END { print n + 0 }'
}
t_check "the follower's /metrics parses" idb_metrics "$port_b" "$CTL_DIR/follower.metrics"
t_check "the follower says it does not lead" test "$(idb_metric "$CTL_DIR/follower.metrics" plateop_leader)" = 0
follower_writes=$(writes "$CTL_DIR/follower.metrics")
t_check "while following it sent no POST, PUT, PATCH or DELETE ($follower_writes)" test "$follower_writes" = 0
t_check "while following it requested no Job ($(idb_metric "$CTL_DIR/follower.metrics" plateop_jobs_created_total))" \
    test "$(idb_metric "$CTL_DIR/follower.metrics" plateop_jobs_created_total)" = 0

# The leader's Job creations so far; it can add one between this scrape and its death,
# so the count from here is a lower bound.
t_check "the leader's /metrics parses" idb_metrics "$port_a" "$CTL_DIR/leader.metrics"
t_check "the leader says it leads" test "$(idb_metric "$CTL_DIR/leader.metrics" plateop_leader)" = 1
kill -KILL "$pid_a"
wait "$pid_a" 2>/dev/null
CTL_PID=$pid_b
killed_at=$(date +%s)
created_a=$(idb_metric "$CTL_DIR/leader.metrics" plateop_jobs_created_total)
t_eventually 30 "the follower takes the Lease after the leader dies" sh -c "[ \"\$(kubectl -n '$CTL_NS' get lease plateop-controller -o jsonpath='{.spec.holderIdentity}')\" = replica-b ]"
echo "# takeover after $(( $(date +%s) - killed_at )) s"
if ctl_wait_phase ha Succeeded 240; then
    t_ok "the new leader finishes the run"
else
    t_fail "the new leader finishes the run" "$(ctl_explain ha; tail -n 5 "$CTL_DIR/replica-b.log")"
fi
t_check "the new leader created the remaining batch Jobs" grep -q 'creating the batch Job' "$CTL_DIR/replica-b.log"
if ctl_wait_phase "$gui" Succeeded 120; then
    t_ok "the GUI-submitted analysis completes"
else
    t_fail "the GUI-submitted analysis completes" "$(ctl_explain "$gui"; tail -n 5 "$CTL_DIR/replica-b.log")"
fi
t_eventually 10 "its row is written: start, finish, no error, state Succeeded, 2 / 2 batches done" \
    sh -c "test \"\$(psql -XAtq -c \"SELECT start IS NOT NULL AND finish IS NOT NULL AND error IS NULL
        AND status->>'state' = 'Succeeded' AND status->>'progress' = '2 / 2 batches done'
        FROM image_sub_analyses WHERE sub_id = $gui_sub\")\" = t"
t_check "the new leader's /metrics parses" idb_metrics "$port_b" "$CTL_DIR/new-leader.metrics"
created_b=$(idb_metric "$CTL_DIR/new-leader.metrics" plateop_jobs_created_total)
sleep 1
ctl_watch_stop
cut -f2- "$CTL_DIR/jobs.events" |
    jq -r '[.type, .object.metadata.name, (.object.metadata.labels["plateop.io/role"] // "")] | @tsv' >"$CTL_DIR/jobs.watch"
t_check "42 batch Jobs (40 and 2), none created twice" \
    sh -c "[ \$(awk -F'\t' '\$1 == \"ADDED\" && \$3 == \"batch\"' '$CTL_DIR/jobs.watch' | cut -f2 | sort | uniq -d | wc -l) -eq 0 ] &&
           [ \$(awk -F'\t' '\$1 == \"ADDED\" && \$3 == \"batch\"' '$CTL_DIR/jobs.watch' | cut -f2 | sort -u | wc -l) -eq 42 ]"
added=$(awk -F'\t' '$1 == "ADDED" && $3 == "batch"' "$CTL_DIR/jobs.watch" | cut -f2 | sort -u | wc -l)
# Which batches were asked for more than once, from both replicas' logs (each create is
# logged just before it is sent): what a failure below is about.
twice=$(cat "$CTL_DIR/controller.log" "$CTL_DIR/replica-b.log" |
    jq -Rr 'fromjson? | select(.msg | startswith("creating the batch Job")) | "\(.analysis) \(.batch)"' |
    sort | uniq -d | tr '\n' ' ')
t_check "no Job was created twice: the leaders created $created_a + $created_b <= $added Jobs seen ADDED" \
    awk -v a="$created_a" -v b="$created_b" -v n="$added" -v twice="$twice" \
        'BEGIN { if (twice != "") print "creates sent twice (answered AlreadyExists): " twice; exit !(a > 0 && b > 0 && a + b <= n) }'
gui_added=$(cut -f2- "$CTL_DIR/analyses.events" |
    jq -r --arg s "$gui_sub" 'select(.type == "ADDED" and .object.metadata.labels["plateop.io/imagedb-sub-analysis"] == $s) | .object.metadata.name' | wc -l)
t_check "exactly one Analysis was created for the GUI row (ADDED $gui_added time(s))" test "$gui_added" -eq 1
t_check "and one exists for it" \
    test "$(kubectl -n "$CTL_NS" get analyses -l "plateop.io/imagedb-sub-analysis=$gui_sub" -o name | wc -l)" -eq 1
t_done
