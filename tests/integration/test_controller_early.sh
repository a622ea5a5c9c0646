#!/usr/bin/env bash
# End to end: plates still being imaged, and plans the user must fix.
#  - startBeforeAcquisitionFinished: of wells A01..A03 imaged so far, A01 and A02 run (A03 is
#    the last well seen and waits); the images of A04 and A05 arrive: A03 and A04 start within
#    seconds (the images NOTIFY); a late image set of A01 is not added to its batch (Warning
#    ImagesNotInAnalysis); imaging finishes: A05 runs, the plan becomes final, the merge has
#    the 5 wells; an Analysis without the opt-in stays Blocked until imaging finishes; a well
#    imaged out of order, which would move the boundaries of batches already planned, fails
#    the plan rather than analyse wells twice;
#  - a well filter off the plate's format (Q05 on a plate imaged as 384 wells) fails the plan
#    naming the token and its position;
#  - a batch whose LoadData CSV exceeds what a ConfigMap holds fails the plan as the user's
#    error, suggesting smaller batches, instead of retrying for ever.
set -uo pipefail
. "$PLATEOP_ROOT/tests/lib.sh"
. "$PLATEOP_ROOT/tests/integration/ctl_lib.sh"
. "$PLATEOP_ROOT/tests/integration/imagedb_lib.sh"

ctl_setup early
imaging=$(ctl_plate --wells 3 --sites 1 --unfinished)   # A01..A03 so far
later=$(ctl_plate --wells 5 --sites 2)                   # its A04, A05 (site 1) come from here
waiting=$(ctl_plate --wells 2 --sites 1 --unfinished)
gappy=$(ctl_plate --wells 6 --sites 1 --unfinished)     # A03 removed: imaged out of order
idb_sql -c "DELETE FROM images WHERE plate_acquisition_id = $gappy AND well = 'A03'" >/dev/null
wide=$(ctl_plate --wells 13 --sites 1)                   # A13: a 384-well plate
# A plate of 96 wells x 9 sites x 5 channels with long paths (rows only: planning reads no
# file): one batch for the plate has a LoadData CSV of about 2 MB.
big_map=$(idb_sql -c "SELECT coalesce(max(map_id), 0) + 1 FROM channel_map")
idb_sql -c "INSERT INTO channel_map (map_id, channel, dye)
            SELECT $big_map, c, 'DYE' || c FROM generate_series(1, 5) c" >/dev/null
big=$(idb_sql -c "INSERT INTO plate_acquisition (plate_barcode, channel_map_id, folder, finished)
                  VALUES ('BIG$$', $big_map, '/images', now()) RETURNING id" | head -n1)
idb_sql -c "INSERT INTO images (plate_acquisition_id, plate_barcode, timepoint, well, site, z, channel, path)
            SELECT $big, 'BIG$$', 1, chr(65 + w / 12) || lpad((w % 12 + 1)::text, 2, '0'), s, 0, c,
                   '/images/' || repeat('x', 400) || '/w' || w || '_s' || s || '_c' || c || '.tif'
            FROM generate_series(0, 95) w, generate_series(1, 9) s, generate_series(1, 5) c" >/dev/null
trap 'ctl_stop; idb_cleanup $imaging $later $waiting $gappy $wide $big; ctl_cleanup' EXIT

ctl_config "imagedb: {namespace: $CTL_NS}"
ctl_start

jobs_of() {
    kubectl -n "$CTL_NS" get jobs -l "plateop.io/analysis=$1,plateop.io/role=batch" \
        -o jsonpath='{range .items[*]}{.metadata.labels.plateop\.io/batch}{"\n"}{end}' 2>/dev/null |
        sort | tr '\n' ' ' | sed 's/ $//'
}
jobs_are() { test "$(jobs_of "$1")" = "$2"; }
ana() { kubectl -n "$CTL_NS" get analysis "$1" -o jsonpath="$2" 2>/dev/null; }
ana_is() { test "$(ana "$1" "$2")" = "$3"; }

# ---- a plate still being imaged ------------------------------------------------------
ctl_apply early "$imaging" "batching: {by: well, size: 1}" "startBeforeAcquisitionFinished: true"
ctl_apply waits "$waiting" "batching: {by: well, size: 1}"

t_eventually 30 "with the opt-in, the complete wells A01 and A02 start while the plate is imaged" \
    jobs_are early "a01 a02" || ctl_explain early | sed 's/^/# /'
sleep 3
t_check "A03, the last well seen, waits (no Job after 3 s)" jobs_are early "a01 a02"
t_check "the plan is recorded as partial: 2 batches so far, final false, Running" \
    ana_is early '{.status.plan.batches} {.status.plan.final} {.status.phase}' "2 false Running"
t_eventually 15 "without the opt-in an Analysis of a plate being imaged is Blocked (AcquisitionNotFinished)" \
    ana_is waits '{.status.phase} {.status.conditions[?(@.type=="Blocked")].reason}' "Blocked AcquisitionNotFinished"

t_eventually 60 "the batches of A01 and A02 succeed, and nothing is merged while imaging goes on" \
    ana_is early '{.status.batches.succeeded} {.status.phase}' "2 Running"

t0=$(date +%s%N)
idb_sql -c "BEGIN;
    INSERT INTO images (plate_acquisition_id, plate_barcode, timepoint, well, site, z, channel, path)
        SELECT $imaging, (SELECT plate_barcode FROM plate_acquisition WHERE id = $imaging),
               timepoint, well, site, z, channel, path
        FROM images WHERE plate_acquisition_id = $later AND well IN ('A04', 'A05') AND site = 1;
    INSERT INTO images (plate_acquisition_id, plate_barcode, timepoint, well, site, z, channel, path)
        SELECT plate_acquisition_id, plate_barcode, timepoint, well, 2, z, channel, path
        FROM images WHERE plate_acquisition_id = $imaging AND well = 'A01';
    COMMIT" >/dev/null
if t_eventually 10 "images of A04 and A05 arrive: A03 and A04 start" jobs_are early "a01 a02 a03 a04"; then
    ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    t_check "within a few seconds of the insert (${ms} ms)" test "$ms" -le 5000
else
    ctl_explain early | sed 's/^/# /'
fi
t_eventually 10 "a late image set of A01, already planned, is not added to its batch: Warning ImagesNotInAnalysis" \
    ctl_has_events early ImagesNotInAnalysis
sleep 2
t_check "A05, the last well seen, waits" jobs_are early "a01 a02 a03 a04"
t_check "waits is still Blocked, with no Job" \
    sh -c "test \"\$(kubectl -n '$CTL_NS' get analysis waits -o jsonpath='{.status.phase}')\" = Blocked &&
           test -z \"\$(kubectl -n '$CTL_NS' get jobs -l plateop.io/analysis=waits -o name)\""

idb_sql -c "UPDATE plate_acquisition SET finished = now() WHERE id IN ($imaging, $waiting)" >/dev/null
t_eventually 10 "imaging finishes: A05 starts" jobs_are early "a01 a02 a03 a04 a05"
if ctl_wait_phase early Succeeded 120; then
    t_ok "the analysis of the plate imaged while it ran Succeeded"
else
    t_fail "the analysis of the plate imaged while it ran Succeeded" "$(ctl_explain early)"
fi
t_check "the plan is final: 5 batches, 5 wells, 5 image sets" \
    ana_is early '{.status.plan.final} {.status.plan.batches} {.status.plan.wells} {.status.plan.imageSets}' "true 5 5 5"
t_check "the merged Image table has the 5 wells' image sets, without A01's late one" \
    test "$(( $(wc -l <"$CTL_DIR/work/$CTL_NS/early/results/Image.csv") - 1 ))" = 5
t_check "Events name each plan" ctl_has_events early Planned Merging Succeeded
if ctl_wait_phase waits Succeeded 120; then
    t_ok "without the opt-in it runs once imaging finished, and Succeeded"
else
    t_fail "without the opt-in it runs once imaging finished, and Succeeded" "$(ctl_explain waits)"
fi

# A well imaged out of order would move the boundaries of batches already planned.
ctl_apply gappy "$gappy" "batching: {by: well, size: 2}" "startBeforeAcquisitionFinished: true"
t_eventually 30 "with A03 missing, wells A01-A02 and A04-A05 start (A06 waits)" \
    jobs_are gappy "a01-a02 a04-a05" || ctl_explain gappy | sed 's/^/# /'
idb_sql -c "INSERT INTO images (plate_acquisition_id, plate_barcode, timepoint, well, site, z, channel, path)
    SELECT $gappy, (SELECT plate_barcode FROM plate_acquisition WHERE id = $gappy),
           timepoint, well, site, z, channel, path
    FROM images WHERE plate_acquisition_id = $later AND well = 'A03' AND site = 1" >/dev/null
ctl_wait_phase gappy Failed 30
msg=$(ana gappy '{.status.conditions[?(@.type=="Failed")].reason}: {.status.conditions[?(@.type=="Failed")].message}')
t_check "A03 arriving late would make batch a03-a04 overlap a04-a05: PlanFailed, not wells analysed twice ($msg)" \
    sh -c 'case "$1" in "PlanFailed: "*"batch boundaries moved"*"a03-a04"*"a04-a05"*) exit 0 ;; esac; exit 1' _ "$msg"
t_check "no Job for the overlapping batch" jobs_are gappy "a01-a02 a04-a05"

# ---- plans the user must fix -------------------------------------------------------------
failed_msg() { ana "$1" '{.status.conditions[?(@.type=="Failed")].reason}: {.status.conditions[?(@.type=="Failed")].message}'; }

ctl_apply offplate "$wide" 'filters: {wells: "A01,Q05"}'
ctl_wait_phase offplate Failed 30
msg=$(failed_msg offplate)
t_check "a well filter off the plate fails the plan, naming the token and its position ($msg)" \
    sh -c 'case "$1" in "PlanFailed: "*"token \"Q05\" at position 5"*"384-well plate"*) exit 0 ;; esac; exit 1' _ "$msg"
ctl_apply onplate "$wide" 'filters: {wells: "A13"}'
t_check "a well filter on the plate is planned" ctl_wait_phase onplate Succeeded 60

ctl_apply huge "$big" "batching: {by: plate}"
ctl_wait_phase huge Failed 60
msg=$(failed_msg huge)
t_check "a batch too large for a ConfigMap fails the plan, naming its size and the limit ($(printf '%.160s' "$msg"))" \
    sh -c 'case "$1" in "PlanFailed: "*"batch "*"LoadData CSV is "*" bytes, more than a ConfigMap holds (1048576 bytes); use smaller batches"*) exit 0 ;; esac; exit 1' _ "$msg"

t_check "the controller logged no error" sh -c "! grep '\"level\":\"error\"' '$CTL_DIR/controller.log'"
t_done
