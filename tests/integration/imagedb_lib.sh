# Helpers for tests and benchmarks of the pipeline GUI's ImageDB rows, sourced
# after tests/integration/ctl_lib.sh (they use CTL_NS and CTL_DIR).
#
#   idb_sql SQL...                 runs SQL on the test bed's ImageDB, prints rows (a|b)
#   idb_submit ACQ META            inserts an analysis of one step as the GUI does;
#                                  prints "ANALYSIS_ID SUB_ID"
#   idb_submit_pair ACQ META1 META2  an analysis of two steps, the second depending on
#                                  the first; prints "ANALYSIS_ID SUB1 SUB2"
#   idb_meta [JSON-MEMBERS]        a cellprofiler step's meta running pipeline.cppipe
#   idb_row SUB EXPR               EXPR of sub-analysis SUB (e.g. "status->>'state'")
#   idb_parent ID EXPR             EXPR of image_analyses row ID
#   idb_now_ms                     the clock in epoch milliseconds
#   idb_log_ms NAME PREFIX         epoch ms of the controller's first log line about
#                                  Analysis NAME whose message starts with PREFIX
#   idb_wait_log NAME PREFIX SECS  the same, waiting up to SECS for it
#   idb_cleanup ACQ...             removes the acquisitions' rows and the finalizers
#                                  of CTL_NS's Analyses (a stopped controller cannot)
#   idb_event_ms RESOURCE JQ       epoch ms at which the watch of RESOURCE (ctl_watch)
#                                  first saw an event matching the jq condition JQ
#                                  (on the event: .type, .object)
#   idb_job_added_ms NAME          epoch ms at which the watch of jobs saw Analysis
#                                  NAME's first batch Job ADDED
#   idb_wait_job_added NAME SECS   the same, waiting up to SECS for it
#   idb_row_when SUB COND SECS     epoch ms at which sub-analysis SUB's row first met
#                                  the SQL condition COND, polled every 50 ms
#   idb_metrics PORT FILE          scrapes http://127.0.0.1:PORT/metrics into FILE and
#                                  checks it parses as Prometheus text
#   idb_metric FILE SERIES         one series' value from a scrape (see test_promtext)
#
# Rows are inserted exactly as the GUI does: one transaction, an image_analyses
# row, then its image_sub_analyses rows with depends_on_sub_id a JSON list.

idb_sql() {
    psql -X -q -v ON_ERROR_STOP=1 -At "$@"
}

idb_meta() {
    echo "{\"type\": \"cellprofiler\", \"pipeline_file\": \"pipeline.cppipe\"${1:+, $1}}"
}

idb_submit() {
    idb_sql -F ' ' -v acq="$1" -v meta="$2" <<'SQL'
BEGIN;
INSERT INTO image_analyses (plate_acquisition_id, pipeline_name, meta, priority)
    VALUES (:acq, 'plateop test', '{}', 0) RETURNING id AS aid \gset
INSERT INTO image_sub_analyses (analysis_id, plate_acquisition_id, meta, depends_on_sub_id, priority)
    VALUES (:aid, :acq, :'meta', NULL, 0) RETURNING sub_id AS s1 \gset
COMMIT;
SELECT :aid, :s1;
SQL
}

idb_submit_pair() {
    idb_sql -F ' ' -v acq="$1" -v m1="$2" -v m2="$3" <<'SQL'
BEGIN;
INSERT INTO image_analyses (plate_acquisition_id, pipeline_name, meta, priority)
    VALUES (:acq, 'illumination correction, then features', '{}', 0) RETURNING id AS aid \gset
INSERT INTO image_sub_analyses (analysis_id, plate_acquisition_id, meta, depends_on_sub_id, priority)
    VALUES (:aid, :acq, :'m1', NULL, 0) RETURNING sub_id AS s1 \gset
INSERT INTO image_sub_analyses (analysis_id, plate_acquisition_id, meta, depends_on_sub_id, priority)
    VALUES (:aid, :acq, :'m2', jsonb_build_array(:s1), 0) RETURNING sub_id AS s2 \gset
COMMIT;
SELECT :aid, :s1, :s2;
SQL
}

idb_row() {
    idb_sql -c "SELECT $2 FROM image_sub_analyses WHERE sub_id = $1"
}

idb_parent() {
    idb_sql -c "SELECT $2 FROM image_analyses WHERE id = $1"
}

idb_now_ms() {
    echo $(( $(date +%s%N) / 1000000 ))
}

idb_log_ms() {
    local ts
    ts=$(jq -Rr --arg a "$CTL_NS/$1" --arg p "$2" \
        'fromjson? | select(.analysis == $a and (.msg | startswith($p))) | .ts' \
        "$CTL_DIR/controller.log" 2>/dev/null | head -n1)
    [ -n "$ts" ] || return 1
    echo $(( $(date -d "$ts" +%s%N) / 1000000 ))
}

idb_wait_log() {
    local deadline=$(( $(date +%s) + $3 ))
    while ! idb_log_ms "$1" "$2" >/dev/null; do
        [ "$(date +%s)" -lt "$deadline" ] || return 1
        sleep 0.1
    done
}

idb_cleanup() {
    local acq
    kubectl -n "$CTL_NS" get analyses -o name 2>/dev/null |
        xargs -r kubectl -n "$CTL_NS" patch --type merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1
    for acq in "$@"; do
        idb_sql -c "DELETE FROM image_sub_analyses WHERE plate_acquisition_id = $acq;
                    DELETE FROM image_analyses WHERE plate_acquisition_id = $acq;
                    DELETE FROM images WHERE plate_acquisition_id = $acq;
                    DELETE FROM channel_map WHERE map_id =
                        (SELECT channel_map_id FROM plate_acquisition WHERE id = $acq);
                    DELETE FROM plate_acquisition WHERE id = $acq" >/dev/null 2>&1
    done
}

idb_event_ms() {
    local t
    [ -f "$CTL_DIR/$1.events" ] || return 1
    t=$(jq -Rr '(index("\t")) as $i | .[:$i] as $t | (.[$i + 1:] | fromjson) as $ev
        | select($ev | '"$2"') | $t' "$CTL_DIR/$1.events" 2>/dev/null | head -n1)
    [ -n "$t" ] || return 1
    awk -v t="$t" 'BEGIN { printf "%.0f\n", t * 1000 }'
}

idb_job_added_ms() {
    idb_event_ms jobs ".type == \"ADDED\" and .object.metadata.labels[\"plateop.io/role\"] == \"batch\"
        and .object.metadata.labels[\"plateop.io/analysis\"] == \"$1\""
}

idb_wait_job_added() {
    local deadline=$(( $(date +%s) + $2 ))
    while ! idb_job_added_ms "$1" >/dev/null; do
        [ "$(date +%s)" -lt "$deadline" ] || return 1
        sleep 0.1
    done
}

idb_row_when() {
    local deadline=$(( $(date +%s) + $3 ))
    while [ "$(date +%s)" -lt "$deadline" ]; do
        if [ "$(idb_row "$1" "$2")" = t ]; then
            idb_now_ms
            return 0
        fi
        sleep 0.05
    done
    return 1
}

idb_metrics() {
    curl -s --max-time 5 "http://127.0.0.1:$1/metrics" >"$2" &&
        "$PLATEOP_BUILD/tests/unit/test_promtext" check "$2" >/dev/null
}

idb_metric() {
    "$PLATEOP_BUILD/tests/unit/test_promtext" value "$2" "$1"
}
