#!/usr/bin/env bash
# Specs the CRD schema cannot catch fail with a message naming the problem
# and nothing created; a spec the schema can catch is refused at apply time;
# deleting a running Analysis removes its Jobs, pods and ConfigMaps.
set -uo pipefail
. "$PLATEOP_ROOT/tests/lib.sh"
. "$PLATEOP_ROOT/tests/integration/ctl_lib.sh"

ctl_setup specs
acq=$(ctl_plate --wells 6 --sites 2)
ctl_worker_env PLATEOP_STANDIN_SLEEP_MS=4000
ctl_config "window: 8"
ctl_start

owned() { kubectl -n "$CTL_NS" get "$1" -l "plateop.io/analysis=$2" -o name | wc -l; }
failed_with() {
    local name=$1 text=$2 msg
    ctl_wait_phase "$name" Failed 60 || return 1
    msg=$(kubectl -n "$CTL_NS" get analysis "$name" -o jsonpath='{.status.conditions[?(@.type=="Failed")].message}')
    echo "# $name: $msg"
    case "$msg" in *"$text"*) ;; *) return 1 ;; esac
    [ "$(owned configmaps "$name")" -eq 0 ] && [ "$(owned jobs "$name")" -eq 0 ]
}

ctl_apply unknown 999999
ctl_apply nodye "$acq" "filters: {channels: [DNA, Brightfield]}"
ctl_apply nothing "$acq" "filters: {wells: 'P24'}"
t_check "an unknown plate acquisition fails, named, with nothing created" \
    failed_with unknown "plate acquisition 999999 not found"
t_check "a dye not in the channel map fails, named, with nothing created" \
    failed_with nodye "Brightfield"
t_check "filters that select nothing fail, saying so, with nothing created" \
    failed_with nothing "no complete image set"

out=$(printf 'apiVersion: plateop.io/v1alpha1\nkind: Analysis\nmetadata: {name: bad, namespace: %s}\nspec: {plateAcquisition: 1, pipeline: p.cppipe, retries: 11, filters: {wells: "C3;DROP"}}\n' "$CTL_NS" |
    kubectl apply -f - 2>&1)
t_check "the schema refuses a bad spec at apply time, naming the fields" \
    sh -c "printf '%s' \"\$1\" | grep -q 'spec.retries' && printf '%s' \"\$1\" | grep -q 'spec.filters.wells'" _ "$out"

ctl_apply running "$acq"
t_eventually 60 "an Analysis starts running batch pods" \
    sh -c "kubectl -n '$CTL_NS' get pods -l plateop.io/analysis=running --field-selector status.phase=Running -o name | grep -q pod/"
kubectl -n "$CTL_NS" delete analysis running --wait=false >/dev/null
t_eventually 90 "deleting it removes its Jobs, pods and ConfigMaps" \
    sh -c "[ \$(kubectl -n '$CTL_NS' get jobs,pods,configmaps -l plateop.io/analysis=running -o name | wc -l) -eq 0 ]"
t_done
