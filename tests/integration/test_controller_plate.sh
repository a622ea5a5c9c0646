#!/usr/bin/env bash
# End to end: `kubectl apply` of an Analysis of a 384-well, 9-site,
# 5-channel plate runs 384 batch Jobs through the real worker and the
# CellProfiler stand-in, merges them, and reports Succeeded; the merged row
# counts equal the sum of the batches'; `kubectl get ana` shows the columns.
set -uo pipefail
. "$PLATEOP_ROOT/tests/lib.sh"
. "$PLATEOP_ROOT/tests/integration/ctl_lib.sh"

dyes=DNA,ER,RNA,AGP,Mito
ctl_setup plate
acq=$(ctl_plate --wells 384 --sites 9 --dyes "$dyes")
ctl_config "window: 16" "succeededJobTTLSeconds: 3600"
ctl_listen
ctl_start --listen "$CTL_LISTEN"
ctl_apply full "$acq" "retries: 3" "timeoutSeconds: 600"

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
t_check "at the end no batch is pending or running" \
    test "$(st '{.status.batches.pending}/{.status.batches.running}')" = "0/0"
t_check "Progressing False, Failed False, with reason Merged" \
    test "$(st '{.status.conditions[?(@.type=="Progressing")].status}/{.status.conditions[?(@.type=="Failed")].status}/{.status.conditions[?(@.type=="Succeeded")].reason}')" = "False/False/Merged"
t_check "each condition has a reason and a lastTransitionTime; Succeeded a message" \
    sh -c "kubectl -n '$CTL_NS' get analysis full -o json | jq -e '
        [.status.conditions[] | select(.type == \"Progressing\" or .type == \"Succeeded\" or .type == \"Failed\")] |
        length == 3 and all(.reason != null and (.lastTransitionTime | fromdate) > 0) and
        any(.type == \"Succeeded\" and (.message | test(\"merged 384 batches\")))'"
t_check "startTime and completionTime are set, in order" \
    sh -c "kubectl -n '$CTL_NS' get analysis full -o json | jq -e '(.status.startTime | fromdate) <= (.status.completionTime | fromdate)'"
t_check "the results location is the work volume's results directory" \
    test "$(st '{.status.results.path}')" = "/plateop-work/$CTL_NS/full/results"
writes=$(ctl_metric plateop_status_writes_total)
echo "# status writes: $writes for 384 batches"
t_check "status written only on change: at most two writes per batch (started, done)" \
    test "${writes:-999999}" -le $((2 * 384 + 10))

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
t_eventually 30 "Events name the planning, the merge and the success" \
    ctl_has_events full Planned Merging Succeeded
t_check "no BatchFailed or Failed Event" test "$(ctl_events full | grep -cxE 'BatchFailed|Failed')" -eq 0

# One batch's ConfigMap and Job, as the controller wrote them.
csv=$(kubectl -n "$CTL_NS" get configmap full-c03 -o jsonpath='{.data.loaddata\.csv}')
t_check "the LoadData CSV names the 5 dyes: one FileName_ and PathName_ column each" \
    test "$(printf '%s\n' "$csv" | head -n1 | tr ',' '\n' | grep -E '^(File|Path)Name_' | sort | tr '\n' ' ')" = \
        "FileName_AGP FileName_DNA FileName_ER FileName_Mito FileName_RNA PathName_AGP PathName_DNA PathName_ER PathName_Mito PathName_RNA "
t_check "the LoadData CSV of well C03 holds its 9 sites" test "$(printf '%s\n' "$csv" | grep -c .)" -eq 10
uid=$(st '{.metadata.uid}')
t_check "a batch Job: owned by the Analysis, labelled, non-root, Never restarted, retries and deadline from the spec" \
    sh -c "kubectl -n '$CTL_NS' get job full-c03 -o json | jq -e --arg uid '$uid' '
        (.metadata.ownerReferences | length == 1) and
        .metadata.ownerReferences[0] == {apiVersion: \"plateop.io/v1alpha1\", kind: \"Analysis\", name: \"full\",
                                         uid: \$uid, controller: true, blockOwnerDeletion: true} and
        .metadata.labels[\"plateop.io/analysis\"] == \"full\" and .metadata.labels[\"plateop.io/batch\"] == \"c03\" and
        .metadata.labels[\"plateop.io/wells\"] == \"C03\" and
        .spec.backoffLimit == 3 and .spec.activeDeadlineSeconds == 600 * 4 + 120 and
        .spec.template.spec.restartPolicy == \"Never\" and
        .spec.template.spec.securityContext.runAsNonRoot == true and
        (.spec.template.spec.securityContext.runAsUser // 1) != 0 and
        (.spec.template.spec.volumes | map(.name) | index(\"plateop-input\") != null)'"
t_check "controller logs are JSON lines naming analysis, batch and well" \
    sh -c "grep '\"batch\":\"c03\"' '$CTL_DIR/controller.log' | head -n1 | jq -e '.analysis == \"$CTL_NS/full\" and .well == \"C03\"'"
t_done
