#!/usr/bin/env bash
# End to end: analyses submitted by the pipeline GUI as ImageDB rows.
#  - a row inserted while the controller is down is picked up within a second of its start;
#  - a row of a type plateop does not run is refused with a message;
#  - an illumination-correction step and a features step depending on it (rows inserted
#    as the GUI does) run in order; the rows show start, progress, finish and result, the
#    parent is rolled up, the features LoadData CSV points at the correction's results;
#  - the first step fails: the second fails with DependencyFailed, and both rows and the
#    parent carry error and a message;
#  - a row inserted while the controller runs has its first batch Job within a second
#    (the Job's ADDED event, seen through a watch);
#  - when its Analysis turns Succeeded, the row has finish and state Succeeded within a
#    second (the phase change seen through a watch, the row polled every 50 ms);
#  - a plate whose imaging finishes has its first batch Job within a second (the images
#    NOTIFY);
#  - `kubectl delete ana` of a GUI-submitted analysis: its row says cancelled;
#  - /metrics parses as Prometheus text and its counts match the run: batches by state
#    are the Analyses' statuses summed, Jobs created are the Jobs the watch saw ADDED,
#    every inserted row was notified, and reconciles were timed.
set -uo pipefail
. "$PLATEOP_ROOT/tests/lib.sh"
. "$PLATEOP_ROOT/tests/integration/ctl_lib.sh"
. "$PLATEOP_ROOT/tests/integration/imagedb_lib.sh"

ctl_setup imagedb
ok_plate=$(ctl_plate --wells 2 --sites 2)         # A01, A02: 4 image sets
bad_plate=$(ctl_plate --wells 4 --sites 1)        # A01..A04: A04 fails
slow_plate=$(ctl_plate --wells 8 --sites 4)       # A05-A08: 16 image sets in one batch, ~8 s
imaging_plate=$(ctl_plate --wells 1 --sites 1 --unfinished)
trap 'ctl_stop; idb_cleanup $ok_plate $bad_plate $slow_plate $imaging_plate; ctl_cleanup' EXIT

ctl_worker_env PLATEOP_STANDIN_FAIL_WELLS=A04 PLATEOP_STANDIN_SLEEP_MS=500
ctl_config "imagedb: {namespace: $CTL_NS, workerImages: {\"4.2.5\": plateop/worker:test-4.2.5}}"

# Every Job and Analysis event, from before the controller starts.
ctl_watch jobs
ctl_watch analyses
sleep 1
pick_port port

name_of() { echo "ia-$1-$2"; }
ana() { kubectl -n "$CTL_NS" get analysis "$1" -o jsonpath="$2" 2>/dev/null; }
# Checks evaluated on every try of t_eventually: NAME JSONPATH WANT, SUB|ID CONDITION.
ana_is() { test "$(ana "$1" "$2")" = "$3"; }
row_is() { test "$(idb_row "$1" "$2")" = t; }
parent_is() { test "$(idb_parent "$1" "$2")" = t; }
gone() { test -z "$(kubectl -n "$CTL_NS" get analysis "$1" -o name 2>/dev/null)"; }
within_1s() { [ "$1" -ge 0 ] && [ "$1" -le 1000 ]; }
# within_1s_of T0 NAME PREFIX WHAT: a check that Analysis NAME's log line PREFIX came
# within a second of T0 (epoch ms).
within_1s_of() {
    local ms
    if ! idb_wait_log "$2" "$3" 20; then
        t_fail "$4" "$(ctl_explain "$2")"
        return
    fi
    ms=$(( $(idb_log_ms "$2" "$3") - $1 ))
    t_check "$4 within a second (${ms} ms)" within_1s "$ms"
}
# job_within_1s_of T0 NAME WHAT: a check that the watch saw Analysis NAME's first batch
# Job ADDED within a second of T0 (epoch ms): created, not just about to be.
job_within_1s_of() {
    local ms
    if ! idb_wait_job_added "$2" 20; then
        t_fail "$3" "$(ctl_explain "$2")"
        return
    fi
    ms=$(( $(idb_job_added_ms "$2") - $1 ))
    t_check "$3 within a second (${ms} ms)" within_1s "$ms"
}

# ---- picked up at start ----------------------------------------------------
read -r down_aid down_sub <<<"$(idb_submit "$ok_plate" "$(idb_meta '"batch_size": 4')")"
down=$(name_of "$down_aid" "$down_sub")
t0=$(idb_now_ms)
ctl_start --listen "127.0.0.1:$port"
within_1s_of "$t0" "$down" "created for ImageDB sub-analysis" \
    "a row inserted while the controller was down is picked up after its start"
t_check "the controller logs the notification migration" \
    grep -q '"imagedb: notification migration: ' "$CTL_DIR/controller.log"

# ---- refused rows -------------------------------------------------------------
read -r py_aid py_sub <<<"$(idb_submit "$ok_plate" '{"type": "python", "script": "x.py"}')"
t_eventually 10 "a row of another type gets error and a status saying plateop does not run it" \
    row_is "$py_sub" "error IS NOT NULL AND status->>'state' = 'Rejected' AND status->>'error_message' LIKE '%type ''cellprofiler'' only, not ''python''%'"
t_check "no Analysis is created for it" \
    gone "$(name_of "$py_aid" "$py_sub")"

# ---- two steps in order, and the failure of the first ---------------------------
# seen_running SUB SECS: the row said Running, started, with progress, before it finished.
seen_running() {
    local deadline=$(( $(date +%s) + $2 )) now
    while [ "$(date +%s)" -lt "$deadline" ]; do
        now=$(idb_row "$1" "CASE WHEN finish IS NOT NULL OR error IS NOT NULL THEN 'over'
            WHEN start IS NOT NULL AND status->>'state' = 'Running'
                 AND status->>'progress' ~ '^[0-9] / 2 batches done$' THEN 'seen' END")
        case "$now" in seen) return 0 ;; over) return 1 ;; esac
        sleep 0.1
    done
    return 1
}
# The stand-in saves illumination functions for a pipeline named *illum*.
cp "$CTL_DIR/work/pipeline.cppipe" "$CTL_DIR/work/illum.cppipe"
ic_meta='{"type": "cellprofiler", "pipeline_file": "illum.cppipe", "batch_size": 2, "cp_version": "4.2.5", "job_timeout": 600, "max_errors": 0}'
ft_meta=$(idb_meta '"batch_size": 2, "use_icf": true, "channels": ["DNA", "ER", "RNA", "AGP", "Mito"], "well_filter": "A01-A02", "priority": 2')
read -r aid ic ft <<<"$(idb_submit_pair "$ok_plate" "$ic_meta" "$ft_meta")"
# Watched from the insert on: the correction step can be over a few seconds later.
seen_running "$ic" 60 &
running_pid=$!
read -r bad_aid bad_ic bad_ft <<<"$(idb_submit_pair "$bad_plate" "$(idb_meta '"batch_size": 1')" "$(idb_meta '"batch_size": 1')")"
ic_name=$(name_of "$aid" "$ic") ft_name=$(name_of "$aid" "$ft")

t_eventually 10 "each row becomes an Analysis named after both ids" \
    sh -c "kubectl -n '$CTL_NS' get analysis '$ic_name' '$ft_name' -o name"
t_check "labels carry both ids; the finalizer plateop.io/imagedb is set" \
    ana_is "$ft_name" '{.metadata.labels.plateop\.io/imagedb-analysis} {.metadata.labels.plateop\.io/imagedb-sub-analysis} {.metadata.finalizers[*]}' "$aid $ft plateop.io/imagedb"
t_check "the spec comes from meta: depends_on_sub_id, batch_size, use_icf, channels, well_filter, priority" \
    ana_is "$ft_name" '{.spec.dependsOn[*]} {.spec.batching.by}/{.spec.batching.size} {.spec.useIlluminationCorrection} {.spec.filters.channels[0]} {.spec.filters.wells} {.spec.priority}' "$ic_name site/2 true DNA A01-A02 -2"
t_check "cp_version maps to the configured worker image; job_timeout and max_errors carry over" \
    ana_is "$ic_name" '{.spec.image} {.spec.timeoutSeconds} {.spec.maxFailedBatches}' "plateop/worker:test-4.2.5 600 0"

wait "$running_pid"
t_check "the row shows start and progress while its batches run" test $? -eq 0
if ctl_wait_phase "$ft_name" Succeeded 180; then
    t_ok "the features step succeeds after the illumination-correction step"
else
    t_fail "the features step succeeds after the illumination-correction step" "$(ctl_explain "$ft_name")"
fi
t_check "the steps ran in order: the features row started after the correction row finished" \
    test "$(idb_sql -c "SELECT f.start >= c.finish FROM image_sub_analyses c, image_sub_analyses f WHERE c.sub_id = $ic AND f.sub_id = $ft")" = t
for sub in "$ic" "$ft"; do
    t_eventually 5 "row $sub: start, finish, no error, state Succeeded, progress 2 / 2 batches done" \
        row_is "$sub" "start IS NOT NULL AND finish IS NOT NULL AND error IS NULL AND status->>'state' = 'Succeeded' AND status->>'progress' = '2 / 2 batches done'"
done
t_check "the result names the job folder and the merged tables" \
    row_is "$ft" "result->>'job_folder' = '/plateop-work/$CTL_NS/$ft_name/results' AND result->'file_list' ? 'Image.csv'"
t_check "the parent row is rolled up: start, finish, no error, state Succeeded, 2 / 2 steps done" \
    parent_is "$aid" "start IS NOT NULL AND finish IS NOT NULL AND error IS NULL AND status->>'state' = 'Succeeded' AND status->>'progress' = '2 / 2 steps done'"
t_check "the features LoadData CSV points at the correction step's results" \
    sh -c "kubectl -n '$CTL_NS' get configmaps -l plateop.io/analysis='$ft_name' -o json | jq -r '.items[0].data[\"loaddata.csv\"]' | grep -q '/$ic_name/results'"

bad_ic_name=$(name_of "$bad_aid" "$bad_ic") bad_ft_name=$(name_of "$bad_aid" "$bad_ft")
if ctl_wait_phase "$bad_ft_name" Failed 180; then
    t_ok "the first step fails: the second fails too"
else
    t_fail "the first step fails: the second fails too" "$(ctl_explain "$bad_ft_name")"
fi
t_check "the second fails with DependencyFailed" \
    ana_is "$bad_ft_name" '{.status.conditions[?(@.type=="Failed")].reason}' DependencyFailed
t_eventually 5 "the failed step's row has error and the failed batch's message" \
    row_is "$bad_ic" "error IS NOT NULL AND status->>'state' = 'Failed' AND status->>'error_message' LIKE '%A04%'"
t_eventually 5 "the dependent row has error and a message naming the dependency" \
    row_is "$bad_ft" "error IS NOT NULL AND status->>'state' = 'Failed' AND status->>'error_message' LIKE '%$bad_ic_name%'"
t_eventually 5 "the parent row has error and a message naming the first failure" \
    parent_is "$bad_aid" "error IS NOT NULL AND status->>'state' = 'Failed' AND status->>'error_message' LIKE 'step $bad_ic: %'"

# ---- latency while running ----------------------------------------------------------
t0=$(idb_now_ms)
read -r run_aid run_sub <<<"$(idb_submit "$ok_plate" "$(idb_meta '"batch_size": 4')")"
run=$(name_of "$run_aid" "$run_sub")
job_within_1s_of "$t0" "$run" \
    "a row inserted while the controller runs has its first batch Job"

# ---- the row follows the Analysis ----------------------------------------------------
# The row is polled from before the phase changes; the change is timed by the watch.
if row_ms=$(idb_row_when "$run_sub" "finish IS NOT NULL AND status->>'state' = 'Succeeded'" 120); then
    phase_ms=$(idb_event_ms analyses ".object.metadata.name == \"$run\" and .object.status.phase == \"Succeeded\"")
    if [ -n "$phase_ms" ]; then
        ms=$(( row_ms - phase_ms ))
        # The watch may hear of the change a little after the controller did: a lag of
        # at most a second, never a long way ahead.
        t_check "the row has finish and state Succeeded within a second of the Analysis turning Succeeded (${ms} ms)" \
            test "$ms" -ge -1000 -a "$ms" -le 1000
    else
        t_fail "the watch saw the Analysis turn Succeeded" "$(ctl_explain "$run")"
    fi
else
    t_fail "the row of a succeeded Analysis gets finish and state Succeeded" "$(ctl_explain "$run")"
fi

# ---- a plate still being imaged --------------------------------------------------------
read -r img_aid img_sub <<<"$(idb_submit "$imaging_plate" "$(idb_meta)")"
img=$(name_of "$img_aid" "$img_sub")
t_eventually 15 "an analysis of a plate still being imaged waits: Blocked, AcquisitionNotFinished" \
    ana_is "$img" '{.status.phase} {.status.conditions[?(@.type=="Blocked")].reason}' "Blocked AcquisitionNotFinished"
t_eventually 5 "its row says Blocked, with the reason, and is not started" \
    row_is "$img_sub" "start IS NULL AND status->>'state' = 'Blocked' AND status->>'message' LIKE '%still being imaged%'"
t0=$(idb_now_ms)
idb_sql -c "BEGIN;
    INSERT INTO images (plate_acquisition_id, plate_barcode, timepoint, well, site, z, channel, path)
        SELECT plate_acquisition_id, plate_barcode, timepoint, well, 2, z, channel, path
        FROM images WHERE plate_acquisition_id = $imaging_plate;
    UPDATE plate_acquisition SET finished = now() WHERE id = $imaging_plate;
    COMMIT" >/dev/null
job_within_1s_of "$t0" "$img" \
    "when its last images arrive and imaging finishes its first batch Job comes (not at the 30 s retry)"

# ---- kubectl delete --------------------------------------------------------------------
read -r del_aid del_sub <<<"$(idb_submit "$slow_plate" "$(idb_meta '"batch_size": 16, "well_filter": "A05-A08"')")"
del=$(name_of "$del_aid" "$del_sub")
t_eventually 30 "a long analysis starts" row_is "$del_sub" "start IS NOT NULL" ||
    ctl_explain "$del" | sed 's/^/# /'
kubectl -n "$CTL_NS" delete analysis "$del" --wait=false >/dev/null
t_eventually 10 "kubectl delete ana: its row says cancelled (error, state Cancelled, deleted with kubectl)" \
    row_is "$del_sub" "error IS NOT NULL AND finish IS NULL AND status->>'state' = 'Cancelled' AND status->>'error_message' LIKE '%deleted with kubectl%'"
t_eventually 10 "the finalizer is removed and the Analysis goes" \
    gone "$del"
t_check "the parent row has error and says the step was deleted" \
    parent_is "$del_aid" "error IS NOT NULL AND status->>'error_message' LIKE '%deleted with kubectl%'"

# ---- /metrics against the run ------------------------------------------------------------
# Once nothing moves, so that the scrape and the statuses describe the same moment.
settled() {
    kubectl -n "$CTL_NS" get analyses -o json |
        jq -e '[.items[] | select(.status.phase != "Succeeded" and .status.phase != "Failed")] | length == 0' >/dev/null
}
t_eventually 120 "every Analysis has finished" settled
sleep 1
metrics="$CTL_DIR/metrics.txt"
t_check "/metrics parses as Prometheus text" idb_metrics "$port" "$metrics"
statuses=$(kubectl -n "$CTL_NS" get analyses -o json)
for state in pending running succeeded failed; do
    want=$(jq --arg s "$state" '[.items[].status.batches[$s] // 0] | add // 0' <<<"$statuses")
    got=$(idb_metric "$metrics" "plateop_batches{state=\"$state\"}")
    t_check "plateop_batches{state=\"$state\"} is the Analyses' statuses summed ($got = $want)" \
        awk -v a="$got" -v b="$want" 'BEGIN { exit !(a == b) }'
done
ctl_watch_stop
added=$(cut -f2- "$CTL_DIR/jobs.events" |
    jq -r 'select(.type == "ADDED" and .object.metadata.labels["plateop.io/role"] == "batch") | .object.metadata.name' |
    sort -u | wc -l)
created=$(idb_metric "$metrics" plateop_jobs_created_total)
t_check "Jobs created ($created) are the batch Jobs the watch saw ADDED ($added)" \
    awk -v a="$created" -v b="$added" 'BEGIN { exit !(a == b && b > 0) }'
inserted=$(idb_sql -c "SELECT count(*) FROM image_sub_analyses
    WHERE plate_acquisition_id IN ($ok_plate, $bad_plate, $slow_plate, $imaging_plate)")
notified=$(idb_metric "$metrics" plateop_imagedb_notifications_total)
t_check "every inserted row was notified: $notified notifications >= $inserted rows" \
    awk -v a="$notified" -v b="$inserted" 'BEGIN { exit !(a >= b && b > 0) }'
reconciles=$(idb_metric "$metrics" plateop_reconcile_duration_seconds_count)
t_check "reconciles were timed ($reconciles in the histogram)" \
    awk -v a="$reconciles" 'BEGIN { exit !(a > 0) }'

t_check "the controller logged no error" sh -c "! grep '\"level\":\"error\"' '$CTL_DIR/controller.log'"
t_done
