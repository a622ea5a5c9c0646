#!/usr/bin/env bash
# The local Kubernetes control plane for tests and the demo: Debian's etcd and
# kube-apiserver, kube-controller-manager and kube-scheduler (built once from
# Debian's source package by hack/kube-build.sh), all on 127.0.0.1 with free
# ports, TLS from a CA generated at start, RBAC, and quota admission.
#
#   hack/cluster.sh up      start (reuses a running cluster in the same state dir)
#   hack/cluster.sh down    stop exactly the processes it started; remove its state
#   hack/cluster.sh env     print `export` lines: KUBECONFIG, PLATEOP_ETCD_ENDPOINTS, ...
#   hack/cluster.sh check   fail, with the tail of its log, if a component has died
#   hack/cluster.sh restart COMPONENT   stop one component and start it again
#
# Env: PLATEOP_CLUSTER_DIR  state directory (default /tmp/plateop-cluster)
#      PLATEOP_APISERVER_ARGS  extra kube-apiserver flags (tests that need them)
#      PLATEOP_KCM_CONTROLLERS  the controller-manager's --controllers list
#                               (default: what plateop, its tests and the demo use)
#      PLATEOP_PORT_RANGE  LOW-HIGH where ports are picked (hack/ports.sh)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
dir=${PLATEOP_CLUSTER_DIR:-/tmp/plateop-cluster}
dir=${dir%/}
components=(etcd kube-apiserver kube-controller-manager kube-scheduler)
etcd_port='' api_port=''   # set by cmd_up; read by kubeconfig and write_env

say() { echo "cluster: $*" >&2; }
die() { say "$*"; exit 1; }

# runs_program PID NAME: PID is a live process whose command line names NAME.
# Read without a pipe: under pipefail, grep -q leaving early could fail the check.
runs_program() {
    local cmdline
    [ -n "$1" ] && [ -r "/proc/$1/cmdline" ] || return 1
    cmdline=$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null) || return 1
    [[ "$cmdline" == *"$2"* ]]
}

# has_exited PID: the process is gone, or a zombie waiting to be reaped.
has_exited() {
    local _pid _comm state
    [ -r "/proc/$1/stat" ] || return 0
    read -r _pid _comm state _ <"/proc/$1/stat" 2>/dev/null || return 0
    [ "$state" = Z ]
}

# pid_alive NAME: the recorded process runs and is still the program we started.
pid_alive() {
    local pidfile="$dir/run/$1.pid"
    [ -f "$pidfile" ] || return 1
    runs_program "$(cat "$pidfile")" "$1"
}

log_tail() {
    local log="$dir/log/$1.log"
    [ -f "$log" ] || return 0
    say "--- $log: errors, then the last lines"
    grep -m 5 -E '^Error:|^F[0-9]{4} |fatal|panic:' "$log" >&2 || true
    tail -n 15 "$log" >&2
}

stop_all() {
    local c _
    for c in "${components[@]}"; do
        pid_alive "$c" && kill -TERM "$(cat "$dir/run/$c.pid")" 2>/dev/null || true
    done
    for _ in $(seq 1 50); do
        local any=0
        for c in "${components[@]}"; do pid_alive "$c" && any=1; done
        [ $any -eq 0 ] && break
        sleep 0.2
    done
    for c in "${components[@]}"; do
        pid_alive "$c" && kill -KILL "$(cat "$dir/run/$c.pid")" 2>/dev/null || true
        rm -f "$dir/run/$c.pid"
    done
}

# shellcheck source=hack/ports.sh
. "$here/ports.sh"

# cert NAME CN [O] [SAN]: a key and a certificate signed by the cluster CA.
cert() {
    local name=$1 cn=$2 org=${3:-} san=${4:-} subj ext
    subj="/CN=$cn"
    [ -n "$org" ] && subj="/O=$org$subj"
    ext="$dir/pki/$name.ext"
    {
        echo "basicConstraints=CA:FALSE"
        echo "keyUsage=critical,digitalSignature,keyEncipherment"
        if [ -n "$san" ]; then
            echo "extendedKeyUsage=serverAuth,clientAuth"
            echo "subjectAltName=$san"
        else
            echo "extendedKeyUsage=clientAuth"
        fi
    } >"$ext"
    openssl req -new -newkey rsa:2048 -nodes -keyout "$dir/pki/$name.key" \
        -subj "$subj" -out "$dir/pki/$name.csr" 2>/dev/null
    openssl x509 -req -in "$dir/pki/$name.csr" -CA "$dir/pki/ca.crt" -CAkey "$dir/pki/ca.key" \
        -CAcreateserial -days 30 -extfile "$ext" -out "$dir/pki/$name.crt" 2>/dev/null
}

make_pki() {
    mkdir -p "$dir/pki"
    openssl req -x509 -new -newkey rsa:2048 -nodes -keyout "$dir/pki/ca.key" \
        -subj "/CN=plateop-local-ca" -days 30 -out "$dir/pki/ca.crt" 2>/dev/null ||
        die "openssl could not create the cluster CA"
    cert apiserver kube-apiserver "" "IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
    cert admin admin system:masters
    cert controller-manager system:kube-controller-manager
    cert scheduler system:kube-scheduler
    openssl genrsa -out "$dir/pki/sa.key" 2048 2>/dev/null
    openssl rsa -in "$dir/pki/sa.key" -pubout -out "$dir/pki/sa.pub" 2>/dev/null
    chmod 600 "$dir"/pki/*.key
}

# kubeconfig NAME: a kubeconfig for the identity in pki/NAME.{crt,key}.
kubeconfig() {
    local name=$1
    cat >"$dir/$name.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: plateop-local
  cluster:
    server: https://127.0.0.1:$api_port
    certificate-authority: $dir/pki/ca.crt
users:
- name: $name
  user:
    client-certificate: $dir/pki/$name.crt
    client-key: $dir/pki/$name.key
contexts:
- name: plateop-local
  context:
    cluster: plateop-local
    user: $name
    namespace: default
current-context: plateop-local
EOF
}

# start NAME BINARY ARGS...: runs a component in its own session, logging to log/NAME.log.
# The command line is kept (one argument per line) so `restart` can run it again.
start() {
    local name=$1
    shift
    printf '%s\n' "$@" >"$dir/run/$name.args"
    setsid "$@" >>"$dir/log/$name.log" 2>&1 </dev/null 7>&- &
    local pid=$! _
    echo "$pid" >"$dir/run/$name.pid"
    # Until the forked shell has exec'd, its command line is still this
    # script's, and pid_alive would call a starting component dead.
    for _ in $(seq 1 100); do
        runs_program "$pid" "$name" && return 0
        [ -d "/proc/$pid" ] || return 0
        sleep 0.05
    done
}

# wait_healthy NAME URL CURL_ARGS...: polls until the URL answers "ok"
# (etcd answers {"health":"true"}).
wait_healthy() {
    local name=$1 url=$2 _ pid rc
    shift 2
    pid=$(cat "$dir/run/$name.pid")
    for _ in $(seq 1 240); do
        if ! pid_alive "$name" && has_exited "$pid"; then
            rc=0
            wait "$pid" 2>/dev/null || rc=$?
            say "$name exited with status $rc before it became healthy"
            log_tail "$name"
            return 1
        fi
        if curl -sf --max-time 2 "$@" "$url" 2>/dev/null | grep -qE '^ok|"health": ?"true"'; then
            return 0
        fi
        sleep 0.25
    done
    say "$name did not become healthy at $url within 60 s"
    log_tail "$name"
    return 1
}

write_env() {
    cat >"$dir/env" <<EOF
export KUBECONFIG=$dir/admin.kubeconfig
export PLATEOP_CLUSTER_DIR=$dir
export PLATEOP_KUBE_SERVER=https://127.0.0.1:$api_port
export PLATEOP_KUBE_CA=$dir/pki/ca.crt
export PLATEOP_ETCD_ENDPOINTS=http://127.0.0.1:$etcd_port
EOF
}

all_alive() {
    local c
    for c in "${components[@]}"; do pid_alive "$c" || return 1; done
}

# lock: one up or down at a time on a state directory; another is refused
# (a second up while one starts would otherwise take it for stale and stop
# it). The lock is fd 7, which the components do not inherit.
lock() {
    command -v flock >/dev/null || die "flock not found: run 'make deps' (installs util-linux)"
    exec 7>"$dir.lock" || die "cannot create $dir.lock"
    flock -n 7 || die "another '$0 up' or 'down' is at work on $dir; try again once it has ended"
}

cmd_up() {
    local bindir etcd_data
    lock
    # From here on, any failure stops what was started and removes the state.
    trap 'up_failed $?' EXIT
    if [ -f "$dir/env" ] && all_alive; then
        say "already running in $dir; reusing it"
        return 0
    fi
    if [ -d "$dir/run" ]; then
        say "stale or partial cluster state in $dir: stopping what remains and starting afresh"
        stop_all
        cleanup_state
    fi
    for tool in etcd openssl curl ss kubectl; do
        command -v "$tool" >/dev/null || die "$tool not found: run 'make deps'"
    done
    bindir=$("$here/kube-build.sh") || die "building the Kubernetes control plane failed (see above)"
    # All five before anything binds: pick_port remembers what it handed out.
    local peer_port kcm_port sched_port
    pick_port etcd_port
    pick_port peer_port
    pick_port api_port
    pick_port kcm_port
    pick_port sched_port

    rm -rf "$dir"
    mkdir -p "$dir/run" "$dir/log"
    # etcd fsyncs on every write; tmpfs keeps that cheap on a developer machine.
    etcd_data=$(mktemp -d "${PLATEOP_ETCD_TMP:-/dev/shm}/plateop-etcd.XXXXXX" 2>/dev/null || mktemp -d)
    echo "$etcd_data" >"$dir/run/etcd.data"

    make_pki
    kubeconfig admin
    kubeconfig controller-manager
    kubeconfig scheduler
    write_env

    trap 'say "start failed (line $LINENO: $BASH_COMMAND)"' ERR

    start etcd etcd --name plateop --data-dir "$etcd_data" \
        --listen-client-urls "http://127.0.0.1:$etcd_port" \
        --advertise-client-urls "http://127.0.0.1:$etcd_port" \
        --listen-peer-urls "http://127.0.0.1:$peer_port" \
        --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
        --initial-cluster "plateop=http://127.0.0.1:$peer_port" \
        --listen-metrics-urls "" --log-level warn
    wait_healthy etcd "http://127.0.0.1:$etcd_port/health" || exit 1

    # shellcheck disable=SC2086
    start kube-apiserver "$bindir/kube-apiserver" \
        --etcd-servers "http://127.0.0.1:$etcd_port" \
        --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \
        --tls-cert-file "$dir/pki/apiserver.crt" --tls-private-key-file "$dir/pki/apiserver.key" \
        --client-ca-file "$dir/pki/ca.crt" \
        --kubelet-client-certificate "$dir/pki/admin.crt" --kubelet-client-key "$dir/pki/admin.key" \
        --kubelet-preferred-address-types InternalIP \
        --service-account-key-file "$dir/pki/sa.pub" \
        --service-account-signing-key-file "$dir/pki/sa.key" \
        --service-account-issuer https://kubernetes.default.svc \
        --service-cluster-ip-range 10.0.0.0/24 \
        --authorization-mode RBAC \
        --enable-admission-plugins NamespaceLifecycle,LimitRanger,ServiceAccount,ResourceQuota \
        --endpoint-reconciler-type none \
        --feature-gates TTLAfterFinished=true \
        --allow-privileged=true --profiling=false \
        ${PLATEOP_APISERVER_ARGS:-}
    wait_healthy kube-apiserver "https://127.0.0.1:$api_port/readyz" \
        --cacert "$dir/pki/ca.crt" --cert "$dir/pki/admin.crt" --key "$dir/pki/admin.key" || exit 1

    start kube-controller-manager "$bindir/kube-controller-manager" \
        --kubeconfig "$dir/controller-manager.kubeconfig" \
        --authentication-kubeconfig "$dir/controller-manager.kubeconfig" \
        --authorization-kubeconfig "$dir/controller-manager.kubeconfig" \
        --bind-address 127.0.0.1 --secure-port "$kcm_port" --port 0 \
        --controllers "${PLATEOP_KCM_CONTROLLERS:-job,resourcequota,garbagecollector,serviceaccount-token,serviceaccount,ttl-after-finished,namespace,podgc,deployment,replicaset,clusterrole-aggregation}" \
        --service-account-private-key-file "$dir/pki/sa.key" --root-ca-file "$dir/pki/ca.crt" \
        --use-service-account-credentials=true \
        --feature-gates TTLAfterFinished=true \
        --kube-api-qps 200 --kube-api-burst 400 \
        --leader-elect=false
    start kube-scheduler "$bindir/kube-scheduler" \
        --kubeconfig "$dir/scheduler.kubeconfig" \
        --authentication-kubeconfig "$dir/scheduler.kubeconfig" \
        --authorization-kubeconfig "$dir/scheduler.kubeconfig" \
        --bind-address 127.0.0.1 --secure-port "$sched_port" --port 0 \
        --kube-api-qps 200 --kube-api-burst 400 \
        --leader-elect=false
    wait_healthy kube-controller-manager "https://127.0.0.1:$kcm_port/healthz" -k || exit 1
    wait_healthy kube-scheduler "https://127.0.0.1:$sched_port/healthz" -k || exit 1

    # Pods need the namespace's default ServiceAccount, which the controller-manager makes.
    # A deadline, not a count of tries: each kubectl takes a while on a loaded machine.
    local deadline=$((SECONDS + 30))
    until KUBECONFIG="$dir/admin.kubeconfig" kubectl get serviceaccount default -n default >/dev/null 2>&1; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            say "the controller-manager made no default ServiceAccount within 30 s (no pod can be created without it)"
            log_tail kube-controller-manager
            exit 1
        fi
        sleep 0.25
    done
    trap - ERR EXIT
    say "up: https://127.0.0.1:$api_port (state in $dir); use: eval \"\$($0 env)\""
}

# up_failed STATUS: the EXIT trap of a start: on failure, stop and remove it all.
up_failed() {
    [ "$1" -eq 0 ] && return 0
    say "start failed; stopping what was started"
    stop_all
    cleanup_state
    rm -f "$dir.lock"
}

cleanup_state() {
    local data
    data=$(cat "$dir/run/etcd.data" 2>/dev/null || true)
    case "$data" in */plateop-etcd.*) rm -rf "$data" ;; esac
    rm -rf "$dir"
}

cmd_down() {
    [ -d "$dir" ] || return 0
    lock
    stop_all
    cleanup_state
    rm -f "$dir.lock"
    say "down"
}

cmd_env() {
    [ -f "$dir/env" ] || die "no cluster in $dir: run '$0 up' first"
    cat "$dir/env"
}

# restart NAME: stops one component and starts it again with the same
# command line (tests of recovery from an API server restart).
cmd_restart() {
    local name=$1 pid _ args=()
    [ -f "$dir/run/$name.args" ] || die "no component $name in $dir"
    if pid_alive "$name"; then
        pid=$(cat "$dir/run/$name.pid")
        kill -TERM "$pid"
        for _ in $(seq 1 100); do pid_alive "$name" || break; sleep 0.1; done
        pid_alive "$name" && kill -KILL "$pid"
    fi
    mapfile -t args <"$dir/run/$name.args"
    start "$name" "${args[@]}"
    if [ "$name" = kube-apiserver ]; then
        . "$dir/env"
        wait_healthy kube-apiserver "$PLATEOP_KUBE_SERVER/readyz" --cacert "$dir/pki/ca.crt" \
            --cert "$dir/pki/admin.crt" --key "$dir/pki/admin.key" || die "kube-apiserver did not come back"
    fi
    say "$name restarted"
}

cmd_check() {
    local c bad=0
    [ -d "$dir/run" ] || die "no cluster in $dir"
    for c in "${components[@]}"; do
        if ! pid_alive "$c"; then
            say "$c has died"
            log_tail "$c"
            bad=1
        fi
    done
    return $bad
}

case "${1:-}" in
up) cmd_up ;;
down) cmd_down ;;
env) cmd_env ;;
check) cmd_check ;;
restart) cmd_restart "${2:?usage: $0 restart COMPONENT}" ;;
*) echo "usage: $0 up|down|env|check|restart COMPONENT" >&2; exit 2 ;;
esac
