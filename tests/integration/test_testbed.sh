#!/usr/bin/env bash
# Proves the test bed is the real thing: TLS with the generated CA, kubectl,
# quota accounting by the real controller-manager, Jobs that get Pods from the
# real Job controller, the real scheduler binding to a Ready untainted Node,
# quota admission refusing a pod, the ImageDB tables with the lab's column
# types; hack/imagedb.sh's faults (no free port, initdb failing) leaving
# nothing behind; and tests/run.sh's per-test timeout and skip accounting.
set -uo pipefail
. "$PLATEOP_ROOT/tests/lib.sh"

ns="testbed-$$"
node="testbed-node-$$"
pki="$PLATEOP_CLUSTER_DIR/pki"
scratch=$(mktemp -d /tmp/plateop-testbed-test.XXXXXX)
listener=
cleanup() {
    kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1
    kubectl delete node "$node" >/dev/null 2>&1
    [ -n "$listener" ] && kill "$listener" 2>/dev/null
    rm -rf "$scratch"
}
trap cleanup EXIT

t_check "/version answers over TLS verified with the generated CA" \
    sh -c "curl -sSf --cacert '$pki/ca.crt' '$PLATEOP_KUBE_SERVER/version' | grep -q '\"gitVersion\": \"v1.20'"
if curl -sSf "$PLATEOP_KUBE_SERVER/version" >/dev/null 2>&1; then
    t_fail "the API server's certificate is refused without the generated CA"
else
    t_ok "the API server's certificate is refused without the generated CA"
fi

t_check "kubectl creates a namespace" kubectl create namespace "$ns"
t_eventually 30 "the namespace gets its default ServiceAccount" kubectl -n "$ns" get serviceaccount default

kubectl -n "$ns" create quota pods --hard=pods=2 >/dev/null
t_eventually 30 "the controller-manager computes the quota's status.used" \
    sh -c "kubectl -n '$ns' get quota pods -o jsonpath='{.status.used.pods}' | grep -qx 0"

job() {
    kubectl -n "$ns" create -f - >/dev/null <<YAML
apiVersion: batch/v1
kind: Job
metadata: {name: $1}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      nodeSelector: {testbed.plateop.io/node: "$node"}
      tolerations: [{key: testbed.plateop.io/only, operator: Exists, effect: NoSchedule}]
      containers: [{name: main, image: busybox, command: ["true"]}]
YAML
}
t_check "a Job is created through the API" job one
t_eventually 30 "the Job controller creates its Pod" \
    sh -c "kubectl -n '$ns' get pods -l job-name=one -o name | grep -q pod/"

# A Node as a kubelet would register it: the taint keeps others' pods away.
kubectl create -f - >/dev/null <<YAML
apiVersion: v1
kind: Node
metadata:
  name: $node
  labels: {testbed.plateop.io/node: "$node"}
spec:
  taints: [{key: testbed.plateop.io/only, value: "yes", effect: NoSchedule}]
YAML
sleep 1
if kubectl -n "$ns" get pods -l job-name=one -o jsonpath='{.items[0].spec.nodeName}' | grep -q .; then
    t_fail "the scheduler waits while the Node is not Ready"
else
    t_ok "the scheduler waits while the Node is not Ready"
fi
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
kubectl patch node "$node" --subresource=status --type=merge -p "{\"status\":{
  \"capacity\":{\"cpu\":\"2\",\"memory\":\"4Gi\",\"pods\":\"10\"},
  \"allocatable\":{\"cpu\":\"2\",\"memory\":\"4Gi\",\"pods\":\"10\"},
  \"conditions\":[{\"type\":\"Ready\",\"status\":\"True\",\"reason\":\"KubeletReady\",
    \"message\":\"test\",\"lastHeartbeatTime\":\"$now\",\"lastTransitionTime\":\"$now\"}]}}" >/dev/null
kubectl taint node "$node" node.kubernetes.io/not-ready:NoSchedule- >/dev/null 2>&1
t_eventually 30 "the scheduler binds the Pod to the Ready, untainted Node" \
    sh -c "kubectl -n '$ns' get pods -l job-name=one -o jsonpath='{.items[0].spec.nodeName}' | grep -qx '$node'"

job two
job three
t_eventually 60 "quota admission refuses a third pod under pods=2 (FailedCreate naming the quota)" \
    sh -c "kubectl -n '$ns' get events --field-selector reason=FailedCreate,involvedObject.name=three \
        -o jsonpath='{.items[*].message}' | grep -q 'exceeded quota: pods'"
t_check "at most 2 pods exist under the quota" \
    sh -c "[ \$(kubectl -n '$ns' get pods -o name | wc -l) -le 2 ]"

t_check "PostgreSQL answers" psql -XAtc 'select 1'
t_check "the ImageDB tables exist" sh -c "[ \$(psql -XAtc \"select count(*) from information_schema.tables
    where table_name in ('images','plate_acquisition','channel_map','image_analyses','image_sub_analyses')\") = 5 ]"

# The types the lab's system uses (hack/imagedb-schema.sql): serial/bigserial
# ids, text wells and paths, integer coordinates, jsonb documents, timestamps.
want_columns="images.id=bigint images.plate_acquisition_id=integer images.plate_barcode=text
images.timepoint=integer images.well=text images.site=integer images.z=integer
images.channel=integer images.path=text
plate_acquisition.id=integer plate_acquisition.timepoint=integer plate_acquisition.channel_map_id=integer
plate_acquisition.imaged=timestamp_without_time_zone plate_acquisition.finished=timestamp_without_time_zone
channel_map.map_id=integer channel_map.channel=integer channel_map.dye=text"
for t in image_analyses image_sub_analyses; do
    want_columns+=" $t.plate_acquisition_id=integer $t.meta=jsonb $t.status=jsonb $t.result=jsonb
        $t.start=timestamp_without_time_zone $t.finish=timestamp_without_time_zone
        $t.error=timestamp_without_time_zone $t.priority=integer"
done
want_columns+=" image_analyses.id=integer image_analyses.pipeline_name=text
    image_sub_analyses.sub_id=integer image_sub_analyses.analysis_id=integer
    image_sub_analyses.depends_on_sub_id=jsonb"
have_columns=$(psql -XAtc "select table_name || '.' || column_name || '=' || replace(data_type, ' ', '_')
    from information_schema.columns where table_schema = 'public'" 2>&1)
wrong=$(for c in $want_columns; do grep -qxF "$c" <<<"$have_columns" || echo "want $c, have: $(grep "^${c%%=*}=" <<<"$have_columns")"; done)
if [ -z "$wrong" ]; then
    t_ok "the ImageDB columns have the lab's types"
else
    t_fail "the ImageDB columns have the lab's types" "$wrong"
fi
serials=$(psql -XAtc "select count(*) from information_schema.columns where column_default like 'nextval(%'
    and table_name || '.' || column_name in
        ('images.id', 'plate_acquisition.id', 'image_analyses.id', 'image_sub_analyses.sub_id')")
t_check "the ImageDB ids are serial (a sequence default)" test "$serials" = 4

# ---- hack/imagedb.sh faults ---------------------------------------------------
idb() { PLATEOP_IMAGEDB_DIR="$1" "$PLATEOP_ROOT/hack/imagedb.sh" up 2>&1; }
port=$((20000 + RANDOM % 10000))
while [ -n "$(ss -Htln "sport = :$port")" ]; do port=$((port + 1)); done
openssl s_server -accept "127.0.0.1:$port" -nocert -quiet </dev/null >/dev/null 2>&1 &
listener=$!
for _ in $(seq 1 40); do [ -n "$(ss -Htln "sport = :$port")" ] && break; sleep 0.1; done
out=$(PLATEOP_PORT_RANGE="$port-$port" idb "$scratch/busy")
rc=$?
if [ $rc -ne 0 ] && grep -q "no free TCP port on 127.0.0.1 in $port-$port" <<<"$out" && [ ! -e "$scratch/busy" ]; then
    t_ok "imagedb.sh up with no free port stops with a clear message and leaves nothing"
else
    t_fail "imagedb.sh up with no free port stops with a clear message and leaves nothing" "rc=$rc: $out"
fi
if [ "$(id -u)" -eq 0 ]; then
    # As root, initdb runs as postgres, which cannot enter a directory only root may.
    mkdir -m 700 "$scratch/private"
    out=$(idb "$scratch/private/imagedb")
    rc=$?
    if [ $rc -ne 0 ] && grep -q 'initdb failed' <<<"$out" && [ ! -e "$scratch/private/imagedb" ]; then
        t_ok "imagedb.sh up whose initdb fails says so and removes its state directory"
    else
        t_fail "imagedb.sh up whose initdb fails says so and removes its state directory" "rc=$rc: $out"
    fi
else
    echo "ok $((t_n + 1)) - imagedb.sh up whose initdb fails removes its state # SKIP needs root"
    t_n=$((t_n + 1))
fi

# ---- tests/run.sh: timeouts and skips -------------------------------------------
fake=$scratch/build/tests/unit
mkdir -p "$fake"
fake_test() { printf '#!/bin/sh\n%s\n' "$2" >"$fake/$1"; chmod +x "$fake/$1"; }
marker=$((50000 + RANDOM % 10000))
fake_test test_fake_pass 'echo "ok 1 - fine"; echo 1..1'
fake_test test_fake_hang "echo 'ok 1 - started'; sleep $marker; echo 1..1"
fake_test test_fake_skip 'echo "ok 1 - needs something # SKIP not here"; echo 1..1'
fake_test test_fake_skipall 'echo "1..0 # SKIP nothing to run here"'
runsh() { BUILD="$scratch/build" "$PLATEOP_ROOT/tests/run.sh" --unit "$@" 2>&1; }

start=$(date +%s)
out=$(PLATEOP_TEST_TIMEOUT=2 runsh fake_hang fake_pass)
rc=$?
took=$(( $(date +%s) - start ))
if [ $rc -ne 0 ] && grep -q '^not ok - test_fake_hang timed out after 2 s' <<<"$out" &&
    grep -q '^2 passed, 1 failed' <<<"$out" && [ "$took" -lt 20 ]; then
    t_ok "run.sh stops a test over its time limit and reports it failed, by name (${took} s)"
else
    t_fail "run.sh stops a test over its time limit and reports it failed, by name" "rc=$rc after ${took} s: $out"
fi
t_check "the timed-out test's processes are gone" sh -c "! pgrep -f '^sleep $marker\$'"

out=$(runsh fake_skip fake_skipall fake_pass)
rc=$?
t_check "a unit run passes with skips and names them" \
    sh -c "[ $rc -eq 0 ] && printf '%s' \"\$1\" | grep -q '^# skipped tests in: test_fake_skip test_fake_skipall\$'" _ "$out"
out=$(PLATEOP_ALLOW_SKIP=0 runsh fake_skip fake_skipall fake_pass)
rc=$?
t_check "without PLATEOP_ALLOW_SKIP (as in integration runs) each skip is a failure" \
    sh -c "[ $rc -ne 0 ] && printf '%s' \"\$1\" | grep -q '^1 passed, 2 failed, 2 skipped' &&
        printf '%s' \"\$1\" | grep -q '^# failing: test_fake_skip test_fake_skipall\$'" _ "$out"

t_done
