#!/usr/bin/env bash
# The node agent (build/plateop-nodeagent via hack/nodeagent.sh) as the test
# bed's kubelet, against the real API server, Job controller, scheduler and
# quota admission: Node registration and its heartbeat, Jobs run to Complete,
# `kubectl logs` (finished, followed, tail, timestamps), env and volumes,
# mounts private to the pod, exit codes and termination messages, OOMKilled,
# deletion, a pods=2 quota with 5 Jobs (counted through a watch), surviving
# its own crash, and a clean stop that leaves no process behind.
#
# It starts its own agent on a Node of its own (every pod selects it with
# kubernetes.io/hostname) in namespaces of its own, and removes them all.
set -uo pipefail
. "$PLATEOP_ROOT/tests/lib.sh"

suffix="$$-$RANDOM"
node="na-test-$suffix"
ns="na-test-$suffix"
qns="na-quota-$suffix"
state=$(mktemp -d /tmp/plateop-na-test.XXXXXX)
marker=$((40000 + RANDOM % 10000))   # sleep durations that name this test's processes

na() {
    local cmd=$1
    shift
    "$PLATEOP_ROOT/hack/nodeagent.sh" "$cmd" --state-dir "$state" --node-name "$node" "$@"
}

watcher=
cleanup() {
    [ -n "$watcher" ] && kill "$watcher" 2>/dev/null
    na stop >/dev/null 2>&1
    kubectl delete namespace "$ns" "$qns" --wait=false >/dev/null 2>&1
    kubectl delete node "$node" >/dev/null 2>&1
    pkill -KILL -f "^(/bin/)?sleep $marker\$" 2>/dev/null
    rm -rf "$state"
}
trap cleanup EXIT

# pod NAME RESTART_POLICY: a pod on our node from a YAML container list on stdin.
pod() {
    local name=$1 policy=${2:-Never}
    { cat <<YAML
apiVersion: v1
kind: Pod
metadata: {name: $name, namespace: $ns}
spec:
  restartPolicy: $policy
  nodeSelector: {kubernetes.io/hostname: $node}
  terminationGracePeriodSeconds: 5
YAML
      cat; } | kubectl create -f - >/dev/null
}

# job NS NAME COMPLETIONS COMMAND: a Job of shell-command pods on our node
# (COMMAND without single quotes).
job() {
    kubectl create -f - >/dev/null <<YAML
apiVersion: batch/v1
kind: Job
metadata: {name: $2, namespace: $1, labels: {test: nodeagent}}
spec:
  completions: $3
  parallelism: 2
  backoffLimit: 0
  template:
    metadata: {labels: {test: nodeagent}}
    spec:
      restartPolicy: Never
      nodeSelector: {kubernetes.io/hostname: $node}
      containers:
      - name: main
        image: ignored
        command: ["/bin/sh", "-c", '$4']
        env: [{name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]
YAML
}

# no_leftover: no process of this test's long-running containers exists.
no_leftover() { ! pgrep -f "^(/bin/)?sleep $marker\$" >/dev/null; }

field() { kubectl -n "${3:-$ns}" get "$1" -o "jsonpath=$2" 2>/dev/null; }
is() { [ "$(field "$1" "$2" "${4:-$ns}")" = "$3" ]; }

# ---- the Node -------------------------------------------------------------
kubectl create namespace "$ns" >/dev/null
kubectl create namespace "$qns" >/dev/null
t_check "hack/nodeagent.sh start brings the Node up Ready" na start
t_check "the Node advertises only InternalIP 127.0.0.1" \
    is "node/$node" '{.status.addresses[*].type}={.status.addresses[*].address}' "InternalIP=127.0.0.1" ""
t_check "the Node advertises the log server's port" \
    sh -c "[ \"\$(kubectl get node $node -o jsonpath='{.status.daemonEndpoints.kubeletEndpoint.Port}')\" -gt 0 ]"
t_check "the Node carries kubernetes.io/hostname and no not-ready taint" \
    sh -c "kubectl get node $node -o jsonpath='{.metadata.labels.kubernetes\.io/hostname} {.spec.taints}' | grep -qx '$node '"
t_eventually 30 "the namespace gets its default ServiceAccount" kubectl -n "$ns" get serviceaccount default
heartbeat() { field "node/$node" '{.status.conditions[?(@.type=="Ready")].lastHeartbeatTime}' ""; }
beat0=$(heartbeat)
beat0_at=$(date +%s)

# ---- a Job, logs ----------------------------------------------------------
job "$ns" three 3 'echo job-output $POD_NAME; sleep 0.5; echo job-done'
t_eventually 90 "a Job of 3 completions runs to Complete" \
    is job/three '{.status.succeeded}/{.status.conditions[?(@.type=="Complete")].status}' "3/True"
first=$(kubectl -n "$ns" get pods -l job-name=three -o jsonpath='{.items[0].metadata.name}')
t_check "kubectl logs of a finished pod shows its output" \
    sh -c "kubectl -n $ns logs $first | grep -qx 'job-output $first'"
t_check "kubectl logs --tail=1 --timestamps shows the last line with its time" \
    sh -c "kubectl -n $ns logs $first --tail=1 --timestamps | grep -qE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z job-done\$'"

job "$ns" follow 1 'sleep 2; for i in 1 2 3 4 5; do echo line $i; sleep 0.3; done'
t_eventually 30 "the followed Job's pod runs" \
    sh -c "kubectl -n $ns get pods -l job-name=follow -o jsonpath='{.items[0].status.phase}' | grep -qx Running"
out=$(timeout 30 kubectl -n "$ns" logs -f job/follow 2>&1)
rc=$?
if [ $rc -eq 0 ] && [ "$(printf '%s\n' "$out" | grep -c '^line [1-5]$')" -eq 5 ]; then
    t_ok "kubectl logs -f job/NAME streams every line and ends with the container"
else
    t_fail "kubectl logs -f job/NAME streams every line and ends with the container" "rc=$rc: $out"
fi

# The agent beats every 10 s; by now more than that has passed (else wait).
wait_s=$(( beat0_at + 13 - $(date +%s) ))
[ "$wait_s" -gt 0 ] && sleep "$wait_s"
advanced() { local now; now=$(heartbeat); [ -n "$beat0" ] && [[ "$now" > "$beat0" ]] || { echo "'$beat0' then '$now'"; return 1; }; }
t_eventually 10 "the Ready condition's lastHeartbeatTime advances after a heartbeat period" advanced

# ---- env, volumes, exit codes, termination messages -------------------------
kubectl -n "$ns" create configmap cfg --from-literal=greeting=hello --from-literal=extra=x >/dev/null
kubectl -n "$ns" create secret generic sec --from-literal=password=s3cret >/dev/null
pod envvol <<YAML
  volumes:
  - {name: cfg, configMap: {name: cfg, items: [{key: greeting, path: sub/greet.txt}]}}
  - {name: sec, secret: {secretName: sec, defaultMode: 0400}}
  - {name: scratch, emptyDir: {}}
  containers:
  - name: main
    image: ignored
    command: ["/bin/sh", "-c"]
    args:
    - >-
      echo "env \$(GREETING) \$PASSWORD \$POD \$NS \$NODE \$IP";
      echo "cfg \$(cat /etc/na-test-$suffix/cfg/sub/greet.txt)";
      echo "sec \$(cat /etc/na-test-$suffix/sec/password) \$(stat -c %a /etc/na-test-$suffix/sec/password)";
      echo data > /etc/na-test-$suffix/scratch/f && echo "scratch \$(cat /etc/na-test-$suffix/scratch/f)";
      echo "cwd \$(pwd)";
      printf 'finished nicely' > /dev/termination-log
    workingDir: /tmp
    env:
    - {name: GREETING, valueFrom: {configMapKeyRef: {name: cfg, key: greeting}}}
    - {name: PASSWORD, valueFrom: {secretKeyRef: {name: sec, key: password}}}
    - {name: POD, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: NS, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
    - {name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
    - {name: IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    volumeMounts:
    - {name: cfg, mountPath: /etc/na-test-$suffix/cfg, readOnly: true}
    - {name: sec, mountPath: /etc/na-test-$suffix/sec}
    - {name: scratch, mountPath: /etc/na-test-$suffix/scratch}
YAML
t_eventually 30 "a pod with ConfigMap, Secret and emptyDir volumes Succeeds" is pod/envvol '{.status.phase}' Succeeded
logs=$(kubectl -n "$ns" logs envvol 2>&1)
t_check "env from configMapKeyRef, secretKeyRef and fieldRef" \
    grep -qx "env hello s3cret envvol $ns $node 127.0.0.1" <<<"$logs"
t_check "ConfigMap items, Secret defaultMode and emptyDir are mounted" \
    sh -c "grep -qx 'cfg hello' && true" <<<"$logs"
t_check "Secret files keep defaultMode 0400" grep -qx "sec s3cret 400" <<<"$logs"
t_check "emptyDir is writable; workingDir is honoured" \
    sh -c "printf '%s\n' \"\$1\" | grep -qx 'scratch data' && printf '%s\n' \"\$1\" | grep -qx 'cwd /tmp'" _ "$logs"
t_check "the termination message is reported" \
    is pod/envvol '{.status.containerStatuses[0].state.terminated.message}' "finished nicely"
t_check "mount points made on the host are removed afterwards" test ! -e "/etc/na-test-$suffix"

# The pod's mounts live in its own mount namespace: the host never sees them.
pod private <<YAML
  volumes: [{name: cfg, configMap: {name: cfg}}]
  containers:
  - name: main
    image: ignored
    command: ["/bin/sh", "-c", "cat /etc/na-private-$suffix/cfg/greeting; exec sleep $marker"]
    volumeMounts: [{name: cfg, mountPath: /etc/na-private-$suffix/cfg}]
YAML
t_eventually 30 "a pod with a ConfigMap volume runs" is pod/private '{.status.phase}' Running
container=$(pgrep -f "^(/bin/)?sleep $marker\$" | head -n1)
if [ -n "$container" ] && grep -q " /etc/na-private-$suffix/cfg " "/proc/$container/mountinfo" &&
    ! grep -q " /etc/na-private-$suffix/cfg " /proc/self/mountinfo; then
    t_ok "the ConfigMap mount is in the pod's mountinfo and not in the host's"
else
    t_fail "the ConfigMap mount is in the pod's mountinfo and not in the host's" \
        "container pid '$container'; host: $(grep "na-private-$suffix" /proc/self/mountinfo)"
fi
kubectl -n "$ns" delete pod private --wait=true >/dev/null 2>&1
t_eventually 30 "the private pod's process is gone after its deletion" no_leftover

pod exit3 <<YAML
  containers: [{name: main, image: ignored, command: ["/bin/sh", "-c", "echo failing; exit 3"]}]
YAML
t_eventually 30 "a failing container makes the pod Failed with its exit code" \
    is pod/exit3 '{.status.phase}/{.status.containerStatuses[0].state.terminated.exitCode}/{.status.containerStatuses[0].state.terminated.reason}' "Failed/3/Error"

pod hog <<YAML
  containers:
  - name: main
    image: ignored
    command: ["/bin/sh", "-c", "x=\$(head -c 300000000 /dev/zero | tr '\\\\000' a); sleep $marker"]
    resources: {limits: {memory: 64Mi}}
YAML
t_eventually 60 "a pod over its memory limit is reported OOMKilled with exit code 137" \
    is pod/hog '{.status.phase}/{.status.containerStatuses[0].state.terminated.reason}/{.status.containerStatuses[0].state.terminated.exitCode}' "Failed/OOMKilled/137"

pod nope <<YAML
  containers: [{name: main, image: ignored, command: ["/nonexistent/program"]}]
YAML
t_eventually 30 "a command that cannot be executed is a StartError" \
    is pod/nope '{.status.containerStatuses[0].state.terminated.reason}/{.status.containerStatuses[0].state.terminated.exitCode}' "StartError/128"

# ---- deletion -------------------------------------------------------------
pod doomed <<YAML
  containers: [{name: main, image: ignored, command: ["/bin/sleep", "$marker"]}]
YAML
t_eventually 30 "a long-running pod is Running" is pod/doomed '{.status.phase}' Running
t_check "deleting a Running pod completes (its process killed, the pod removed)" \
    timeout 30 kubectl -n "$ns" delete pod doomed
t_check "no process of the deleted pod is left" no_leftover

# ---- quota: pods=2, five Jobs -----------------------------------------------
kubectl -n "$qns" create quota pods --hard=pods=2 >/dev/null
t_eventually 30 "the quota's usage is computed" \
    sh -c "kubectl -n $qns get quota pods -o jsonpath='{.status.used.pods}' | grep -qx 0"
# Every pod event through a watch (tests/tools/watch_events), so a pod that
# existed only briefly is counted too; polling could miss it.
"$PLATEOP_BUILD/tests/tools/watch_events" -n "$qns" pods >"$state/pods.events" 2>"$state/pods.events.err" &
watcher=$!
sleep 1
for i in 1 2 3 4 5; do job "$qns" "q$i" 1 'echo quota job; sleep 2'; done
done_jobs=0
deadline=$(( $(date +%s) + 240 ))
while [ "$(date +%s)" -lt "$deadline" ]; do
    done_jobs=$(kubectl -n "$qns" get jobs -o jsonpath='{range .items[*]}{.status.succeeded}{"\n"}{end}' |
        grep -cx 1)
    [ "$done_jobs" -eq 5 ] && break
    sleep 0.5
done
kill "$watcher" 2>/dev/null
wait "$watcher" 2>/dev/null
watcher=
if [ "$done_jobs" -eq 5 ]; then
    t_ok "all 5 Jobs under a pods=2 quota complete"
else
    t_fail "all 5 Jobs under a pods=2 quota complete" "$done_jobs of 5 after 240 s"
fi
# In the API server's order (resourceVersion): the pods not yet terminal at each step.
read -r max seen < <(cut -f2- "$state/pods.events" |
    jq -r '[.type, .object.metadata.name, (.object.status.phase // "Pending"),
            .object.metadata.resourceVersion] | @tsv' | sort -t$'\t' -k4,4n | awk -F'\t' '
    { if ($1 == "DELETED" || $3 == "Succeeded" || $3 == "Failed") delete live[$2]; else live[$2] = 1
      all[$2] = 1; n = 0; for (k in live) n++; if (n > max) max = n }
    END { n = 0; for (k in all) n++; print max + 0, n }')
t_check "the watch saw a pod of each of the 5 Jobs (saw $seen)" test "$seen" -ge 5
if [ "$max" -le 2 ] && [ "$max" -ge 1 ]; then
    t_ok "never more than 2 pods of the quota'd namespace exist at once (max $max, through a watch)"
else
    t_fail "never more than 2 pods of the quota'd namespace exist at once" "max seen: $max; $(head -c 300 "$state/pods.events.err")"
fi

# ---- the agent's own crash and restart ---------------------------------------
pod survivor <<YAML
  containers: [{name: main, image: ignored, command: ["/bin/sh", "-c", "echo before crash; exec sleep $marker"]}]
YAML
t_eventually 30 "a pod runs before the agent crashes" is pod/survivor '{.status.phase}' Running
kill -KILL "$(cat "$state/nodeagent.pid")"
t_eventually 10 "the crashed agent's container dies with it" no_leftover
pod latecomer <<YAML
  containers: [{name: main, image: ignored, command: ["/bin/echo", "started after the restart"]}]
YAML
t_check "the agent restarts" na start
t_eventually 30 "a pod it ran before the crash is reported Failed, reason NodeAgentRestarted" \
    is pod/survivor '{.status.phase}/{.status.reason}' "Failed/NodeAgentRestarted"
t_eventually 30 "a pod bound while it was down runs after the restart" \
    is pod/latecomer '{.status.phase}' Succeeded
t_check "logs from before the crash are still served" \
    sh -c "kubectl -n $ns logs survivor | grep -qx 'before crash'"

# ---- a clean stop ---------------------------------------------------------
pod last <<YAML
  containers: [{name: main, image: ignored, command: ["/bin/sleep", "$marker"]}]
YAML
t_eventually 30 "a pod runs before the agent stops" is pod/last '{.status.phase}' Running
t_check "hack/nodeagent.sh stop stops the agent" na stop
t_check "no container process outlives the agent" no_leftover
t_check "the interrupted pod is reported Failed, reason NodeAgentStopped" \
    is pod/last '{.status.phase}/{.status.reason}' "Failed/NodeAgentStopped"
t_check "the stopped Node is tainted so nothing more is scheduled to it" \
    sh -c "kubectl get node $node -o jsonpath='{.spec.taints[*].key}' | grep -q plateop.io/node-agent-stopped"

t_done
