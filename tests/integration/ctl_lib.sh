# Helpers for end-to-end tests of the controller on the test bed, sourced by
# tests/integration/test_controller*.sh (after tests/lib.sh).
#
#   ctl_setup NAME          a namespace NAME-PID, a work dir, the CRD; sets CTL_NS, CTL_DIR
#   ctl_plate ARGS...       hack/plate.sh into CTL_DIR/images; prints the acquisition id
#   ctl_config [YAML...]    writes CTL_DIR/config.yaml: the real worker with the CellProfiler
#                           stand-in, the work volume, the images volume; extra lines appended
#   ctl_worker_env K=V...   extra worker environment (stand-in switches) for ctl_config
#   ctl_start [FLAGS...]    starts plateop-controller for CTL_NS (pid CTL_PID, log CTL_DIR/controller.log)
#   ctl_stop [SIGNAL]       stops it
#   ctl_apply NAME ACQ [SPEC-YAML-LINES...]   kubectl-applies an Analysis
#   ctl_phase NAME          prints its phase
#   ctl_wait_phase NAME PHASE SECS            waits for a phase (or fails on the other terminal one)
#   ctl_watch RESOURCE      records every event of RESOURCE (jobs, pods) in CTL_NS into
#                           CTL_DIR/RESOURCE.events: "<arrival time><tab><watch event JSON>"
#   ctl_watch_stop          stops every such recording
#   ctl_cleanup             stops the controller, deletes the namespace and the work dir
#   ctl_listen              picks a free local port for the status server: CTL_LISTEN
#                           (then ctl_start --listen "$CTL_LISTEN"; a later flag wins)
#   ctl_metric NAME         the value of an unlabelled metric on the controller's /metrics
#   ctl_events NAME         the reasons of the Events about Analysis NAME, one per line
#   ctl_has_events NAME REASON...   0 if there is an Event of each reason about NAME
#   ctl_max_waiting JOBS PODS   from a jobs and a pods recording: the most batch Jobs at
#                           once that existed without a pod that had started
#
# The worker pods run on the test bed's node agent as local processes, with
# the work directory bind-mounted at /plateop-work and the images at their
# real path, exactly as a cluster would mount them.

# Free ports as the test bed picks them (pick_port VAR); a test stops when none is free.
. "$PLATEOP_ROOT/hack/ports.sh"
declare -F die >/dev/null || die() { echo "# $*" >&2; exit 1; }

CTL_WORKER_ENV=()

ctl_setup() {
    CTL_NS="$1-$$"
    CTL_DIR=$(mktemp -d /tmp/plateop-e2e.XXXXXX)
    # Batch pods run as uid 1000; PostgreSQL's account must not matter here.
    chmod 777 "$CTL_DIR"
    mkdir -p "$CTL_DIR/work" "$CTL_DIR/images"
    chmod 777 "$CTL_DIR/work"
    echo "a CellProfiler pipeline stands here" >"$CTL_DIR/work/pipeline.cppipe"
    kubectl apply -f "$PLATEOP_ROOT/crds/analysis.yaml" >/dev/null
    kubectl wait --for condition=established --timeout=30s crd/analyses.plateop.io >/dev/null
    kubectl create namespace "$CTL_NS" >/dev/null
    trap ctl_cleanup EXIT
}

ctl_plate() {
    "$PLATEOP_ROOT/hack/plate.sh" --dir "$CTL_DIR/images" "$@"
}

ctl_worker_env() {
    CTL_WORKER_ENV+=("$@")
}

ctl_config() {
    local kv
    {
        echo "worker:"
        echo "  image: plateop/worker:test"
        echo "  command: [$PLATEOP_BUILD/plateop-worker]"
        echo "  env:"
        echo "    PLATEOP_CELLPROFILER: $PLATEOP_BUILD/tests/cellprofiler-standin"
        for kv in "${CTL_WORKER_ENV[@]}"; do
            echo "    ${kv%%=*}: \"${kv#*=}\""
        done
        echo "workVolume: {mountPath: /plateop-work, hostPath: $CTL_DIR/work}"
        echo "imageVolumes:"
        echo "  - {name: images, mountPath: $CTL_DIR/images, hostPath: $CTL_DIR/images}"
        printf '%s\n' "$@"
    } >"$CTL_DIR/config.yaml"
}

ctl_start() {
    [ -f "$CTL_DIR/config.yaml" ] || ctl_config
    "$PLATEOP_BUILD/plateop-controller" --namespace "$CTL_NS" --config "$CTL_DIR/config.yaml" \
        --leader-elect=false --listen "" "$@" >>"$CTL_DIR/controller.log" 2>&1 &
    CTL_PID=$!
}

ctl_stop() {
    [ -n "${CTL_PID:-}" ] || return 0
    kill "-${1:-TERM}" "$CTL_PID" 2>/dev/null
    wait "$CTL_PID" 2>/dev/null
    CTL_PID=
}

ctl_apply() {
    local name=$1 acq=$2
    shift 2
    {
        echo "apiVersion: plateop.io/v1alpha1"
        echo "kind: Analysis"
        echo "metadata: {name: $name, namespace: $CTL_NS}"
        echo "spec:"
        echo "  plateAcquisition: $acq"
        echo "  pipeline: pipeline.cppipe"
        printf '  %s\n' "$@"
    } | kubectl apply -f - >/dev/null
}

ctl_phase() {
    kubectl -n "$CTL_NS" get analysis "$1" -o jsonpath='{.status.phase}' 2>/dev/null
}

# ctl_wait_phase NAME PHASE SECS: 0 once reached; 1 on timeout or the other terminal phase.
ctl_wait_phase() {
    local name=$1 want=$2 secs=$3 deadline phase
    deadline=$(( $(date +%s) + secs ))
    while [ "$(date +%s)" -lt "$deadline" ]; do
        phase=$(ctl_phase "$name")
        [ "$phase" = "$want" ] && return 0
        case "$phase" in Succeeded|Failed) return 1 ;; esac
        sleep 0.5
    done
    return 1
}

# Explains a failure: the Analysis's status, events and the controller's last words.
ctl_explain() {
    kubectl -n "$CTL_NS" get analysis "$1" -o jsonpath='{.status.phase}: {.status.conditions[?(@.type=="Failed")].message}{"\n"}' 2>&1
    kubectl -n "$CTL_NS" get events --sort-by=.lastTimestamp 2>&1 | tail -n 5
    tail -n 5 "$CTL_DIR/controller.log" 2>/dev/null
}

# The watch is tests/tools/watch_events, not `kubectl get -w`: kubectl ends
# silently when a busy API server closes the stream, and a count taken from
# it would come out short.
CTL_WATCHERS=()
ctl_watch() {
    "$PLATEOP_BUILD/tests/tools/watch_events" -n "$CTL_NS" "$1" >"$CTL_DIR/$1.events" \
        2>"$CTL_DIR/$1.events.err" &
    CTL_WATCHERS+=($!)
}

ctl_watch_stop() {
    local p
    for p in "${CTL_WATCHERS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    CTL_WATCHERS=()
}

ctl_cleanup() {
    ctl_watch_stop
    [ -n "${PLATEOP_KEEP_TESTBED:-}" ] && { ctl_stop KILL; echo "# kept: namespace $CTL_NS, $CTL_DIR"; return 0; }
    ctl_stop KILL
    kubectl delete namespace "$CTL_NS" --wait=false >/dev/null 2>&1
    rm -rf "$CTL_DIR"
}

ctl_listen() {
    local listen_port
    pick_port listen_port
    CTL_LISTEN="127.0.0.1:$listen_port"
}

ctl_metric() {
    curl -fsS "http://$CTL_LISTEN/metrics" | awk -v m="$1" '$1 == m {print $2; found = 1} END {exit !found}'
}

ctl_events() {
    kubectl -n "$CTL_NS" get events \
        --field-selector "involvedObject.kind=Analysis,involvedObject.name=$1" \
        -o jsonpath='{range .items[*]}{.reason}{"\n"}{end}'
}

ctl_has_events() {
    local name=$1 reasons r
    shift
    reasons=$(ctl_events "$name") || return 1
    for r in "$@"; do
        printf '%s\n' "$reasons" | grep -qx "$r" || { echo "no $r Event; seen: $reasons"; return 1; }
    done
}

# Merges the two recordings by arrival time: a batch Job waits from its
# ADDED event until a pod of it is seen in a phase other than Pending (or
# the Job is deleted). The two watches may deliver a start just before its
# Job's ADDED: such a Job never counts as waiting.
ctl_max_waiting() {
    {
        jq -rR 'split("\t") as [$t, $j] | ($j | fromjson) as $e |
                select($e.object.metadata.labels["plateop.io/role"] == "batch") |
                select($e.type == "ADDED" or $e.type == "DELETED") |
                "\($t)\tjob-\($e.type)\t\($e.object.metadata.name)"' "$1"
        jq -rR 'split("\t") as [$t, $j] | ($j | fromjson) as $e |
                select(($e.object.status.phase // "Pending") != "Pending") |
                select($e.object.metadata.labels["job-name"]) |
                "\($t)\tstarted\t\($e.object.metadata.labels["job-name"])"' "$2"
    } | sort -t$'\t' -k1,1n | awk -F'\t' '
        $2 == "job-ADDED" && !($3 in seen) { seen[$3] = 1; if (!($3 in started)) waiting[$3] = 1 }
        $2 == "started" { started[$3] = 1 }
        $2 != "job-ADDED" { delete waiting[$3] }
        { n = 0; for (k in waiting) n++; if (n > max) max = n }
        END { print max + 0 }'
}
