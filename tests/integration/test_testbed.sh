#!/usr/bin/env bash
# Proves the test bed is the real thing: TLS with the generated CA, kubectl,
# quota accounting by the real controller-manager, Jobs that get Pods from the
# real Job controller, the real scheduler binding to a Ready untainted Node,
# quota admission refusing a pod, and the ImageDB tables.
set -uo pipefail
. "$PLATEOP_ROOT/tests/lib.sh"

ns="testbed-$$"
node="testbed-node-$$"
pki="$PLATEOP_CLUSTER_DIR/pki"
cleanup() {
    kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1
    kubectl delete node "$node" >/dev/null 2>&1
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

t_done
