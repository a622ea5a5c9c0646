#!/usr/bin/env bash
# End to end: `kubectl apply` of an Analysis of a 384-well, 9-site,
# 5-channel plate runs 384 batch Jobs through the real worker and the
# CellProfiler stand-in, merges them, and reports Succeeded; the merged row
# counts equal the sum of the batches'; `kubectl get ana` shows the columns.
set -uo pipefail
. "$PLATEOP_ROOT/tests/lib.sh"
. "$PLATEOP_ROOT/tests/integration/ctl_lib.sh"

ctl_setup plate
acq=$(ctl_plate --wells 384 --sites 9)
ctl_config "window: 16"
ctl_start
ctl_apply full "$acq"

if ctl_wait_phase full Succeeded 600; then
    t_ok "a 384-well plate of 9 sites and 5 channels is analysed and merged: Succeeded"
else
    t_fail "a 384-well plate of 9 sites and 5 channels is analysed and merged: Succeeded" "$(ctl_explain full)"
fi

st() { kubectl -n "$CTL_NS" get analysis full -o jsonpath="$1"; }
t_check "status counts 384 batches, all succeeded" \
    test "$(st '{.status.batches.total}/{.status.batches.succeeded}/{.status.batches.failed}')" = "384/384/0"
t_check "status records the plan: 3456 image sets in 384 wells" \
    test "$(st '{.status.plan.imageSets}/{.status.plan.wells}')" = "3456/384"
t_check "the Succeeded and Ready conditions are True" \
    test "$(st '{.status.conditions[?(@.type=="Succeeded")].status}{.status.conditions[?(@.type=="Ready")].status}')" = "TrueTrue"
t_check "observedGeneration matches the spec's generation" \
    test "$(st '{.status.observedGeneration}')" = "$(st '{.metadata.generation}')"

results="$CTL_DIR/work/$CTL_NS/full/results"
batches="$CTL_DIR/work/$CTL_NS/full/batches"
rows() { echo $(( $(wc -l <"$1") - 1 )); }
merged_ok=1
for table in Image Cells Nuclei Cytoplasm; do
    sum=$(jq -s "[.[].tables[] | select(.name == \"$table\") | .rows] | add" "$batches"/*/manifest.json)
    got=$(rows "$results/$table.csv")
    if [ "$sum" != "$got" ] || [ "$got" -le 0 ]; then
        merged_ok=0
        echo "# $table: merged $got rows, batches $sum"
    fi
done
[ $merged_ok -eq 1 ] && t_ok "merged row counts equal the sum of the batch manifests (Image, Cells, Nuclei, Cytoplasm)" ||
    t_fail "merged row counts equal the sum of the batch manifests"
t_check "Image.csv has one row per image set" test "$(rows "$results/Image.csv")" = 3456

out=$(kubectl -n "$CTL_NS" get ana)
t_check "kubectl get ana shows Plate, Done, Total, Failed, Status and Age" \
    sh -c "printf '%s\n' \"\$1\" | head -n1 | grep -Eq '^NAME +PLATE +DONE +TOTAL +FAILED +STATUS +AGE'" _ "$out"
t_check "kubectl get ana shows the run's figures" \
    sh -c "printf '%s\n' \"\$1\" | grep -Eq '^full +$acq +384 +384 +0 +Succeeded'" _ "$out"
t_check "Events name the planning and the success" \
    sh -c "kubectl -n '$CTL_NS' get events --field-selector involvedObject.name=full -o jsonpath='{.items[*].reason}' | grep -q Planned"
t_check "controller logs are JSON lines naming analysis, batch and well" \
    sh -c "grep '\"batch\":\"c03\"' '$CTL_DIR/controller.log' | head -n1 | jq -e '.analysis == \"$CTL_NS/full\" and .well == \"C03\"'"
t_done
