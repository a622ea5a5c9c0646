#!/usr/bin/env bash
# Starts and stops a plateop node agent (build/plateop-nodeagent), the local
# kubelet stand-in, for the test bed, tests and the demo.
#
#   hack/nodeagent.sh start [--state-dir DIR] [--node-name NAME] [AGENT FLAGS...]
#       starts the agent in the background (pid in DIR/nodeagent.pid, log in
#       DIR/nodeagent.log) and waits until its Node is Ready and untainted;
#       a running agent in DIR is reused. Extra flags go to the agent
#       (--volume-map, --port, --cpu, --memory, --max-pods, --log-level).
#   hack/nodeagent.sh stop [--state-dir DIR]
#       stops exactly that agent (SIGTERM: it stops its pods; SIGKILL after
#       20 s) and removes its pid file.
#   hack/nodeagent.sh status [--state-dir DIR]
#       exit 0 when that agent runs.
#   hack/nodeagent.sh env [--state-dir DIR]
#       prints `export` lines: PLATEOP_NODE_NAME (the Node to select with
#       nodeSelector kubernetes.io/hostname) and PLATEOP_NODEAGENT_DIR.
#
# Env: KUBECONFIG (required for start); PLATEOP_BUILD (default: ./build);
#      PLATEOP_NODEAGENT_DIR (default state dir: /tmp/plateop-nodeagent);
#      PLATEOP_NODE_NAME (default node name: plateop-node).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${PLATEOP_BUILD:-$root/build}
dir=${PLATEOP_NODEAGENT_DIR:-/tmp/plateop-nodeagent}
node=${PLATEOP_NODE_NAME:-plateop-node}

say() { echo "nodeagent: $*" >&2; }
die() { say "$*"; exit 1; }

cmd=${1:-}
shift || true
extra=()
while [ $# -gt 0 ]; do
    case "$1" in
    --state-dir) dir=$2; shift 2 ;;
    --node-name) node=$2; shift 2 ;;
    *) extra+=("$1"); shift ;;
    esac
done
pidfile=$dir/nodeagent.pid

# running: the recorded process exists and is a node agent. Read without a
# pipe: under pipefail, grep -q leaving early could fail the check.
running() {
    local pid cmdline
    [ -f "$pidfile" ] || return 1
    pid=$(cat "$pidfile")
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
    cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ "$cmdline" == *plateop-nodeagent* ]]
}

# node_ready: Ready=True and no taint that keeps pods away.
node_ready() {
    local out
    out=$(kubectl get node "$node" -o \
        'jsonpath={.status.conditions[?(@.type=="Ready")].status} {.spec.taints[*].key}' 2>/dev/null) ||
        return 1
    case "$out" in
    True*not-ready* | True*node-agent-stopped* | True*unreachable*) return 1 ;;
    True*) return 0 ;;
    esac
    return 1
}

cmd_start() {
    local i
    [ -n "${KUBECONFIG:-}" ] || die "KUBECONFIG is not set (eval \"\$(hack/cluster.sh env)\")"
    [ -x "$build/plateop-nodeagent" ] || die "$build/plateop-nodeagent not built: run make"
    mkdir -p "$dir"
    if running; then
        node=$(cat "$dir/node-name" 2>/dev/null || echo "$node")
        say "already running (pid $(cat "$pidfile")) for $dir"
    else
        setsid "$build/plateop-nodeagent" --kubeconfig "$KUBECONFIG" --node-name "$node" \
            --state-dir "$dir" "${extra[@]}" >>"$dir/nodeagent.log" 2>&1 </dev/null &
        echo $! >"$pidfile"
        echo "$node" >"$dir/node-name"
    fi
    for i in $(seq 1 120); do
        running || { say "agent exited; last log lines:"; tail -n 20 "$dir/nodeagent.log" >&2; exit 1; }
        node_ready && { say "node $node Ready (pid $(cat "$pidfile"), state $dir)"; return 0; }
        sleep 0.25
    done
    say "node $node not Ready after 30 s; last log lines:"
    tail -n 20 "$dir/nodeagent.log" >&2
    exit 1
}

cmd_stop() {
    local pid i
    if ! running; then
        rm -f "$pidfile"
        return 0
    fi
    pid=$(cat "$pidfile")
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 80); do
        running || break
        sleep 0.25
    done
    if running; then
        say "agent $pid did not stop within 20 s: killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
    say "stopped"
}

cmd_env() {
    [ -f "$dir/node-name" ] || die "no node agent started in $dir"
    echo "export PLATEOP_NODE_NAME=$(cat "$dir/node-name")"
    echo "export PLATEOP_NODEAGENT_DIR=$dir"
}

case "$cmd" in
start) cmd_start ;;
env) cmd_env ;;
stop) cmd_stop ;;
status) running ;;
*) echo "usage: $0 start|stop|status|env [--state-dir DIR] [--node-name NAME] [AGENT FLAGS...]" >&2; exit 2 ;;
esac
