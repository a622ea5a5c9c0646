#!/usr/bin/env bash
# The installation on the test bed's Kubernetes 1.20 API server, with the
# kubectl (and its built-in kustomize) on the machine:
#   - `kubectl apply -k manifests/` is accepted, twice, and the Deployment's
#     pods pass admission (nothing runs them: there is no container runtime);
#   - the RBAC is minimal: `kubectl auth can-i` as the controller's
#     ServiceAccount (with the groups its token carries) allows each request
#     the controller makes and denies Secrets other than its own, deleting
#     namespaces, creating pods, and acting outside the served namespaces;
#   - the RBAC is sufficient: the real controller, holding nothing but that
#     ServiceAccount's token, takes the leader Lease in plateop-system,
#     completes an analysis applied with kubectl and one the pipeline GUI
#     submits as ImageDB rows (so it creates the Analysis and removes its
#     finalizer) in a namespace bound as manifests/README.md says, and its
#     /healthz, /readyz and /metrics answer as the Deployment's probes expect.
# Leaves the CRD installed (other tests use it); deletes everything else.
set -uo pipefail
. "$PLATEOP_ROOT/tests/lib.sh"
. "$PLATEOP_ROOT/tests/integration/ctl_lib.sh"
. "$PLATEOP_ROOT/tests/integration/imagedb_lib.sh"

m="$PLATEOP_ROOT/manifests"
sys=plateop-system
ana_ns=plateop-analyses
sa_user=system:serviceaccount:$sys:plateop-controller
# A ServiceAccount token authenticates with these groups too: rules bound to
# any of them would count.
sa_as=(--as="$sa_user" --as-group=system:serviceaccounts
    --as-group="system:serviceaccounts:$sys" --as-group=system:authenticated)

ctl_setup manifests
acq=
cleanup() {
    ctl_stop
    # GUI-submitted Analyses carry a finalizer only a running controller removes.
    [ -n "$acq" ] && idb_cleanup "$acq"
    ctl_cleanup
    kubectl delete namespace "$sys" "$ana_ns" --wait=false >/dev/null 2>&1
    kubectl delete clusterrole plateop-controller >/dev/null 2>&1
}
trap cleanup EXIT

# ---- the kustomization ----------------------------------------------------

built=$(kubectl kustomize "$m" 2>&1)
t_check "kubectl kustomize manifests/ builds" test -n "$built"
t_check "it includes the Analysis CRD from crds/, its only copy in the repository" \
    sh -c 'printf "%s\n" "$1" | grep -q "^  name: analyses.plateop.io$" &&
        [ "$(grep -rl "kind: CustomResourceDefinition" "$2" "$3" | wc -l)" -eq 1 ]' \
    _ "$built" "$m" "$PLATEOP_ROOT/crds"
t_check "the ImageDB Secret template is not in it (an upgrade never overwrites the password)" \
    sh -c '! printf "%s\n" "$1" | grep -q "^kind: Secret$"' _ "$built"

t_check "kubectl apply -k manifests/ succeeds" kubectl apply -k "$m"
t_check "the CRD is established" \
    kubectl wait --for condition=established --timeout=30s crd/analyses.plateop.io
t_check "the ImageDB Secret template applies" kubectl apply -f "$m/imagedb-secret.yaml"
again=$(kubectl apply -k "$m" 2>&1)
rc=$?
t_check "applying again succeeds and changes nothing" \
    sh -c '[ "$1" -eq 0 ] && ! printf "%s\n" "$2" | grep -Ev " unchanged$"' _ "$rc" "$again"

dep() { kubectl -n "$sys" get deployment plateop-controller -o jsonpath="$1"; }
ctr='{.spec.template.spec.containers[0]'
t_check "the Deployment asks for 2 replicas" test "$(dep '{.spec.replicas}')" = 2
t_check "it runs non-root with a read-only root file system and no privileges" \
    test "$(dep '{.spec.template.spec.securityContext.runAsNonRoot}'"$ctr"'.securityContext.readOnlyRootFilesystem}'"$ctr"'.securityContext.allowPrivilegeEscalation}'"$ctr"'.securityContext.capabilities.drop[0]}')" = "truetruefalseALL"
t_check "liveness /healthz and readiness /readyz on the named port metrics (8080, --listen 0.0.0.0:8080)" \
    test "$(dep "$ctr"'.livenessProbe.httpGet.path}'"$ctr"'.livenessProbe.httpGet.port}'"$ctr"'.readinessProbe.httpGet.path}'"$ctr"'.readinessProbe.httpGet.port}'"$ctr"'.ports[?(@.name=="metrics")].containerPort}')" = "/healthzmetrics/readyzmetrics8080"
t_check "requests and limits of cpu and memory are set" \
    sh -c 'for v; do [ -n "$v" ] || exit 1; done' _ "$(dep "$ctr"'.resources.requests.cpu}')" \
    "$(dep "$ctr"'.resources.requests.memory}')" "$(dep "$ctr"'.resources.limits.cpu}')" \
    "$(dep "$ctr"'.resources.limits.memory}')"
t_check "POD_NAME and POD_NAMESPACE come from the downward API" \
    test "$(dep "$ctr"'.env[?(@.name=="POD_NAME")].valueFrom.fieldRef.fieldPath}'"$ctr"'.env[?(@.name=="POD_NAMESPACE")].valueFrom.fieldRef.fieldPath}')" = "metadata.namemetadata.namespace"
cm=$(dep '{.spec.template.spec.volumes[?(@.name=="config")].configMap.name}')
envcm=$(dep "$ctr"'.envFrom[0].configMapRef.name}')
t_check "the configuration file the Deployment mounts is the generated ConfigMap's config.yaml" \
    sh -c 'kubectl -n "$1" get configmap "$2" -o jsonpath="{.data.config\.yaml}" | cmp -s - "$3"' \
    _ "$sys" "$cm" "$m/config.yaml"
t_check "its environment ConfigMap exists and names the served namespace" \
    test "$(kubectl -n "$sys" get configmap "$envcm" -o jsonpath='{.data.PLATEOP_NAMESPACES}')" = "$ana_ns"
t_eventually 60 "the Deployment's two pods pass admission (ServiceAccount, LimitRanger, quota)" \
    sh -c 'test "$(kubectl -n "$1" get pods -l app.kubernetes.io/name=plateop-controller -o name | wc -l)" -ge 2' _ "$sys"
# Nothing can run them here (the node agent runs commands, not images): take
# them off the test bed's node before the tests that follow use it.
kubectl -n "$sys" scale deployment plateop-controller --replicas=0 >/dev/null
t_eventually 60 "scaled to zero, its pods are gone" \
    sh -c '! kubectl -n "$1" get pods -l app.kubernetes.io/name=plateop-controller -o name | grep -q .' _ "$sys"

t_check "the analysis namespace has its ResourceQuota and LimitRange" \
    sh -c 'kubectl -n "$1" get resourcequota plateop-batches && kubectl -n "$1" get limitrange plateop-batch-defaults' _ "$ana_ns"
pod=$(kubectl -n "$ana_ns" run probe --image=busybox --restart=Never --dry-run=server -o json 2>&1)
t_check "a batch pod without resources gets the LimitRange's defaults there (so the quota admits it)" \
    test "$(printf '%s' "$pod" | jq -r '.spec.containers[0].resources | "\(.requests.cpu) \(.requests.memory) \(.limits.memory)"' 2>&1)" = "1 2Gi 4Gi"
t_check "and no ServiceAccount token is mounted into it" \
    test "$(printf '%s' "$pod" | jq -r '[.spec.volumes[]?.name] | map(select(startswith("default-token"))) | length' 2>&1)" = 0
t_check "the example Analyses pass the CRD's schema (server-side dry run)" \
    kubectl apply --dry-run=server -f "$m/examples/analysis.yaml"

# ---- RBAC: minimal ----------------------------------------------------------

# can NS VERB RESOURCE [FLAGS]: prints yes or no as the controller's ServiceAccount.
can() {
    local ns=$1
    shift
    kubectl auth can-i "$@" -n "$ns" "${sa_as[@]}" 2>/dev/null
}
# expect yes|no NS "VERB RESOURCE [FLAGS]"...: the requests that answered otherwise.
expect() {
    local want=$1 ns=$2 req wrong=""
    shift 2
    for req in "$@"; do
        # shellcheck disable=SC2086
        [ "$(can "$ns" $req)" = "$want" ] || wrong="$wrong
$req in $ns"
    done
    printf '%s' "$wrong"
}
check_expect() {
    local name=$1 out
    shift
    out=$(expect "$@")
    if [ -z "$out" ]; then t_ok "$name"; else t_fail "$name" "answered otherwise:$out"; fi
}

needs=(
    "get analyses.plateop.io" "list analyses.plateop.io" "watch analyses.plateop.io"
    "create analyses.plateop.io" "patch analyses.plateop.io"
    "update analyses.plateop.io --subresource=status"
    "update analyses.plateop.io --subresource=finalizers"
    "create jobs.batch" "get jobs.batch" "list jobs.batch" "watch jobs.batch"
    "patch jobs.batch" "delete jobs.batch"
    "create configmaps" "get configmaps" "list configmaps" "watch configmaps"
    "patch configmaps"
    "get pods" "list pods" "watch pods"
    "get resourcequotas" "list resourcequotas" "watch resourcequotas"
    "create events" "patch events"
)
check_expect "allows each request the controller makes in the analysis namespace (${#needs[@]} verbs)" \
    yes "$ana_ns" "${needs[@]}"
check_expect "allows the leader Lease in plateop-system: create, get and update plateop-controller" \
    yes "$sys" "create leases.coordination.k8s.io" "get leases.coordination.k8s.io/plateop-controller" \
    "update leases.coordination.k8s.io/plateop-controller"
check_expect "allows reading its own Secret, plateop-imagedb" yes "$sys" "get secrets/plateop-imagedb"

check_expect "denies reading Secrets other than its own" no "$sys" \
    "get secrets/other" "list secrets" "watch secrets" "update secrets/plateop-imagedb"
check_expect "denies Secrets in the analysis namespace" no "$ana_ns" \
    "get secrets" "list secrets"
check_expect "denies Secrets in kube-system" no kube-system "get secrets" "list secrets"
check_expect "denies deleting namespaces" no default "delete namespaces" "delete namespaces/$ana_ns"
check_expect "denies creating pods directly (and exec)" no "$ana_ns" \
    "create pods" "delete pods" "create pods --subresource=exec"
check_expect "denies creating pods in its own namespace" no "$sys" "create pods"
check_expect "denies acting outside the served namespaces: kube-system" no kube-system \
    "create jobs.batch" "patch configmaps" "create configmaps" "create pods" "list pods" \
    "get analyses.plateop.io"
check_expect "denies acting outside the served namespaces: default" no default \
    "create jobs.batch" "list configmaps" "create events"
check_expect "denies what the controller never does in the analysis namespace" no "$ana_ns" \
    "delete analyses.plateop.io" "update analyses.plateop.io" \
    "patch analyses.plateop.io --subresource=status" "delete configmaps" \
    "update jobs.batch" "update configmaps" "update pods" \
    "create resourcequotas" "create rolebindings.rbac.authorization.k8s.io" \
    "create serviceaccounts" "create persistentvolumeclaims"
check_expect "denies other Leases and cluster-wide objects" no "$sys" \
    "update leases.coordination.k8s.io/other" "delete leases.coordination.k8s.io/plateop-controller" \
    "list nodes" "create clusterrolebindings.rbac.authorization.k8s.io" \
    "update customresourcedefinitions.apiextensions.k8s.io"
t_check "no rule of the ClusterRole or the Role uses a wildcard" \
    sh -c '! kubectl get clusterrole plateop-controller -o json | jq -e "[.rules[] | .verbs[], .resources[], .apiGroups[]] | index(\"*\")" >/dev/null &&
        ! kubectl -n "$1" get role plateop-controller -o json | jq -e "[.rules[] | .verbs[], .resources[], .apiGroups[]] | index(\"*\")" >/dev/null' _ "$sys"

# ---- RBAC: sufficient -------------------------------------------------------

# The ServiceAccount's token (Kubernetes 1.20 keeps it in a Secret it creates).
sa_token() {
    local secret
    secret=$(kubectl -n "$sys" get serviceaccount plateop-controller -o jsonpath='{.secrets[0].name}') &&
        [ -n "$secret" ] &&
        kubectl -n "$sys" get secret "$secret" -o jsonpath='{.data.token}' | base64 -d
}
t_eventually 30 "the controller's ServiceAccount gets its token Secret" \
    sh -c 'kubectl -n "$1" get serviceaccount plateop-controller -o jsonpath="{.secrets[0].name}" | grep -q .' _ "$sys"
token=$(sa_token)
kc="$CTL_DIR/controller.kubeconfig"
umask 077
cat >"$kc" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: plateop-test
  cluster:
    server: $PLATEOP_KUBE_SERVER
    certificate-authority: $PLATEOP_CLUSTER_DIR/pki/ca.crt
users:
- name: plateop-controller
  user:
    token: $token
contexts:
- name: plateop-controller
  context: {cluster: plateop-test, user: plateop-controller, namespace: $sys}
current-context: plateop-controller
EOF
umask 022
t_check "the kubeconfig authenticates as the ServiceAccount" \
    sh -c 'kubectl --kubeconfig "$1" auth can-i get secrets/plateop-imagedb -n "$2" | grep -qx yes &&
        ! kubectl --kubeconfig "$1" -n "$2" get secrets >/dev/null 2>&1' _ "$kc" "$sys"

# A further analysis namespace, bound as manifests/README.md says.
t_check "a RoleBinding to the ClusterRole serves another namespace" \
    kubectl -n "$CTL_NS" create rolebinding plateop-controller --clusterrole=plateop-controller \
    --serviceaccount="$sys:plateop-controller"
# The API server's authorizer learns of a binding through its own watch: wait
# for it, so that a refusal in the controller's log means a missing rule.
t_eventually 30 "the binding is in force" \
    sh -c 'kubectl auth can-i list jobs.batch -n "$1" --as="$2" | grep -qx yes' _ "$CTL_NS" "$sa_user"

acq=$(ctl_plate --wells 4 --sites 2)
ctl_config
pick_port port
KUBECONFIG="$kc" ctl_start --kubeconfig "$kc" --leader-elect=true --lease-namespace "$sys" \
    --id plateop-manifests-test --listen "127.0.0.1:$port"
ctl_apply rbac "$acq" "batching: {by: well, size: 2}"

if ctl_wait_phase rbac Succeeded 180; then
    t_ok "the controller with only the ServiceAccount's token completes an analysis: Succeeded"
else
    t_fail "the controller with only the ServiceAccount's token completes an analysis: Succeeded" \
        "$(ctl_explain rbac)"
fi
t_check "it led through the Lease plateop-system/plateop-controller" \
    test "$(kubectl -n "$sys" get lease plateop-controller -o jsonpath='{.spec.holderIdentity}')" = plateop-manifests-test
t_check "its two batches and the merge ran: 8 image sets merged" \
    test "$(kubectl -n "$CTL_NS" get analysis rbac -o jsonpath='{.status.batches.total}/{.status.batches.succeeded}') $(($(wc -l <"$CTL_DIR/work/$CTL_NS/rbac/results/Image.csv" 2>/dev/null || echo 0) - 1))" = "2/2 8"

read -r aid sub <<<"$(idb_submit "$acq" "$(idb_meta '"batch_size": 4')")"
gui="ia-$aid-$sub"
if ctl_wait_phase "$gui" Succeeded 180; then
    t_ok "a GUI row becomes an Analysis it creates, and it succeeds"
else
    t_fail "a GUI row becomes an Analysis it creates, and it succeeds" "$(ctl_explain "$gui")"
fi
t_eventually 10 "the row gets its finish" \
    sh -c 'test "$(psql -X -At -c "SELECT finish IS NOT NULL FROM image_sub_analyses WHERE sub_id = $1")" = t' _ "$sub"
kubectl -n "$CTL_NS" delete analysis "$gui" --wait=false >/dev/null 2>&1
t_eventually 20 "deleted with kubectl, the Analysis goes: the controller removed its finalizer" \
    sh -c '! kubectl -n "$1" get analysis "$2" -o name 2>/dev/null | grep -q .' _ "$CTL_NS" "$gui"

http() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$port$1"; }
t_check "GET /healthz answers 200 (the liveness probe)" test "$(http /healthz)" = 200
t_check "GET /readyz answers 200 on the leader: caches synced, ImageDB reachable (the readiness probe)" \
    test "$(http /readyz)" = 200
metrics=$(curl -s --max-time 5 "http://127.0.0.1:$port/metrics")
t_check "/metrics says it leads and counts its API requests, none refused" \
    sh -c 'printf "%s\n" "$1" | grep -qx "plateop_leader 1" &&
        printf "%s\n" "$1" | grep -q "^plateop_kube_requests_total{" &&
        ! printf "%s\n" "$1" | grep "^plateop_kube_requests_total{" | grep -q "code=\"403\""' _ "$metrics"
t_eventually 10 "it recorded Events on the Analysis" \
    sh -c 'kubectl -n "$1" get events --field-selector involvedObject.name=rbac -o name | grep -q .' _ "$CTL_NS"
t_check "no request of the controller was refused" \
    sh -c '! grep -i forbidden "$1"' _ "$CTL_DIR/controller.log"
ctl_stop
t_check "on SIGTERM it hands the Lease back (update allowed)" \
    test -z "$(kubectl -n "$sys" get lease plateop-controller -o jsonpath='{.spec.holderIdentity}')"

t_done
