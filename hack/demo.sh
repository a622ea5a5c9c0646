#!/usr/bin/env bash
# `make demo`: plateop analysing a plate on a local cluster, end to end.
#
#   hack/demo.sh up     starts the local control plane, ImageDB and a node agent;
#                       installs plateop with `kubectl apply -k manifests/`; generates a
#                       plate of small real images registered in ImageDB; runs the
#                       controller; submits one analysis with `kubectl apply` and one as
#                       the pipeline GUI does (ImageDB rows); shows their progress; then
#                       says where the merged tables are and how to look around
#   hack/demo.sh down   stops everything the demo started and removes its directory
#   hack/demo.sh env    prints `export` lines (KUBECONFIG, PG*) for a shell that looks around
#
# Everything lives in $PLATEOP_DEMO_DIR (default /tmp/plateop-demo). No container
# runtime is needed: the node agent (hack/nodeagent.sh) runs each pod's command as a
# local process, and the CellProfiler stand-in (tests/standin) plays CellProfiler,
# which cannot be installed here. Everything else is real: kube-apiserver, the Job
# controller, scheduler, quota admission, garbage collector, PostgreSQL, the
# controller, the worker and the merge.
#
# Env: PLATEOP_DEMO_DIR      state directory (default /tmp/plateop-demo)
#      PLATEOP_DEMO_WELLS    wells of the demo plate (default 24)
#      PLATEOP_DEMO_SITES    sites per well (default 4); 5 channels each
#      PLATEOP_DEMO_TIMEOUT  seconds the analyses may take (default 240)
#      PLATEOP_BUILD         the build directory (default: build/ of this checkout)
set -Eeuo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
here=$root/hack
build=${PLATEOP_BUILD:-$root/build}
demo=${PLATEOP_DEMO_DIR:-/tmp/plateop-demo}
wells=${PLATEOP_DEMO_WELLS:-24}
sites=${PLATEOP_DEMO_SITES:-4}
timeout=${PLATEOP_DEMO_TIMEOUT:-240}

# The demo's own components, whatever the calling shell points at (a test bed, say).
# The node is named after the directory: node agents on one machine keep per-node
# state outside it (cgroups), so two demos (or a demo and its test) must differ.
node_name=$(basename "$demo" | tr 'A-Z' 'a-z' | tr -c 'a-z0-9\n' '-' | cut -c1-50)
export PLATEOP_CLUSTER_DIR="$demo/cluster" PLATEOP_IMAGEDB_DIR="$demo/imagedb"
export PLATEOP_NODEAGENT_DIR="$demo/nodeagent" PLATEOP_NODE_NAME="${node_name:-plateop-demo}-node"
export PLATEOP_BUILD="$build"
unset PLATEOP_APISERVER_ARGS KUBECONFIG

ns=plateop-analyses                 # manifests/analysis-namespace.yaml
sys=plateop-system                  # manifests/namespace.yaml
kube_name=demo-features             # the Analysis applied with kubectl
marker="$demo/.plateop-demo"
log="$demo/demo.log"                # what the hack/ scripts and kubectl said
ctl="$demo/controller"
started=$(date +%s)

# ---- output -------------------------------------------------------------------

if [ -t 1 ]; then tty=1; else tty=0; fi
bold() { if [ $tty -eq 1 ]; then printf '\033[1m%s\033[0m' "$*"; else printf '%s' "$*"; fi; }
elapsed() { echo $(( $(date +%s) - started )); }
# say TEXT: one line of what the demo did, with the time since it started.
say() { printf '[%3ss] %s\n' "$(elapsed)" "$*"; }

step_name=
# step TEXT: what comes next; an error from here on names it.
step() { step_name=$1; }

# quiet CMD...: runs a command with its output in the demo log; its failure ends
# the demo, naming the command (not this function's "$@").
quiet() { "$@" >>"$log" 2>&1 || { err_rc=$? err_cmd="$*"; exit "$err_rc"; }; }

# ---- processes -------------------------------------------------------------------

# alive PIDFILE PROGRAM: the recorded process runs and is that program.
alive() {
    local pid
    [ -f "$1" ] || return 1
    pid=$(cat "$1")
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$2"
}

stop_controller() {
    local pid i
    alive "$ctl/controller.pid" plateop-controller || { rm -f "$ctl/controller.pid"; return 0; }
    pid=$(cat "$ctl/controller.pid")
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 40); do
        alive "$ctl/controller.pid" plateop-controller || break
        sleep 0.25
    done
    alive "$ctl/controller.pid" plateop-controller && kill -KILL "$pid" 2>/dev/null
    rm -f "$ctl/controller.pid"
}

# stop_all: stops every process the demo started, newest first; keeps the logs.
stop_all() {
    stop_controller
    if [ -d "$PLATEOP_NODEAGENT_DIR" ]; then "$here/nodeagent.sh" stop >>"$log" 2>&1 || true; fi
    "$here/imagedb.sh" down >>"$log" 2>&1 || true
    "$here/cluster.sh" down >>"$log" 2>&1 || true
}

# anything_running: some component of the demo in $demo is up.
anything_running() {
    alive "$ctl/controller.pid" plateop-controller ||
        alive "$PLATEOP_NODEAGENT_DIR/nodeagent.pid" plateop-nodeagent ||
        [ -f "$PLATEOP_IMAGEDB_DIR/env" ] || [ -d "$PLATEOP_CLUSTER_DIR/run" ]
}

# ---- failure --------------------------------------------------------------------

reported=0 finished=0 claimed=0 err_cmd= err_rc=

# fail MESSAGE [DETAIL]: one clear message; stops everything this run started
# (nothing before it has claimed the demo directory), keeps the logs.
fail() {
    trap - ERR INT TERM
    set +e
    reported=1
    [ $tty -eq 1 ] && printf '\r\033[K'
    {
        echo
        echo "demo: FAILED after $(elapsed)s: $1"
        [ -n "${2:-}" ] && printf '%s\n' "$2" | sed 's/^/  | /'
    } >&2
    [ $claimed -eq 1 ] || exit 1
    stop_all
    {
        echo "demo: stopped everything it had started. Logs are kept in $demo"
        echo "      (demo.log, controller/controller.log); make demo-down removes them."
    } >&2
    exit 1
}

# on_exit: a command failed under set -e (the ERR trap noted which) and the
# shell is leaving: say what failed, then stop everything.
on_exit() {
    local rc=$?
    [ $rc -ne 0 ] && [ $reported -eq 0 ] && [ $finished -eq 0 ] || return 0
    fail "${step_name:-the demo}: '${err_cmd:-?}' exited with status ${err_rc:-$rc}" \
        "$(tail -n 12 "$log" 2>/dev/null)"
}

# ---- steps ----------------------------------------------------------------------

preflight() {
    local t
    [ "$(id -u)" -eq 0 ] || fail "run the demo as root: its node agent runs each pod in a mount namespace of its own as the pod's user"
    for t in kubectl jq psql curl ss; do
        command -v "$t" >/dev/null || fail "$t not found: run 'make deps' (make demo does)"
    done
    for t in plateop-controller plateop-worker plateop-nodeagent tests/cellprofiler-standin; do
        [ -x "$build/$t" ] || fail "$build/$t is not built: run 'make' (make demo does)"
    done
    case "$wells$sites" in *[!0-9]*) fail "PLATEOP_DEMO_WELLS and PLATEOP_DEMO_SITES must be numbers" ;; esac
}

# Refuses to touch a directory that is not ours, or a demo that is running.
claim_dir() {
    case "$demo" in /*) ;; *) fail "PLATEOP_DEMO_DIR must be an absolute path, not '$demo'" ;; esac
    if [ -e "$demo" ] && [ ! -f "$marker" ] && [ -n "$(ls -A "$demo" 2>/dev/null)" ]; then
        echo "demo: $demo exists and is not a demo directory; set PLATEOP_DEMO_DIR to another place" >&2
        exit 1
    fi
    if [ -f "$marker" ] && anything_running; then
        echo "demo: a demo is already running in $demo: 'make demo-down' stops it" >&2
        exit 1
    fi
    rm -rf "$demo"
    mkdir -p "$demo" "$ctl"
    touch "$marker"
    claimed=1
    # PostgreSQL runs as its own account and batch pods as uid 1000: both reach in here.
    chmod 755 "$demo"
    : >"$log"
}

# Free ports as the test bed picks them: pick_port VAR (a failure goes through fail).
. "$here/ports.sh"
die() { fail "$*"; }

start_infrastructure() {
    local cache=${PLATEOP_CACHE:-/var/cache/plateop}
    step "starting the local control plane (hack/cluster.sh)"
    ls "$cache"/kube-*/bin/kube-apiserver >/dev/null 2>&1 ||
        say "first run on this machine: building the Kubernetes 1.20 control plane from Debian's source package into $cache (4-6 minutes, once)"
    quiet "$here/cluster.sh" up
    eval "$("$here/cluster.sh" env)"
    say "Kubernetes control plane up: $PLATEOP_KUBE_SERVER (etcd, kube-apiserver, controller-manager, scheduler)"

    step "starting ImageDB (hack/imagedb.sh)"
    quiet "$here/imagedb.sh" up
    eval "$("$here/imagedb.sh" env)"
    say "ImageDB up: PostgreSQL on 127.0.0.1:$PGPORT, database $PGDATABASE, the lab's tables"
}

install_plateop() {
    step "installing plateop (kubectl apply -k manifests/)"
    quiet kubectl apply -k "$root/manifests"
    quiet kubectl wait --for condition=established --timeout=60s crd/analyses.plateop.io
    # The cluster admin's one manual step (manifests/imagedb-secret.yaml).
    quiet kubectl -n "$sys" create secret generic plateop-imagedb \
        --from-file=password="$PLATEOP_IMAGEDB_PASSWORD_FILE"
    # Nothing here can run the controller's image: the same program runs as a local
    # process instead, with the ServiceAccount's token. Its pods never had a node.
    quiet kubectl -n "$sys" scale deployment plateop-controller --replicas=0
    say "plateop installed: kubectl apply -k manifests/ (CRD, RBAC, namespaces $sys and $ns, quota, limits)"
}

start_node() {
    step "starting the node agent (hack/nodeagent.sh)"
    # It advertises more CPUs than this machine has, so that the namespace quota,
    # not the demo node, decides how many batches run at once.
    quiet "$here/nodeagent.sh" start --cpu 16 --memory 64Gi
    say "node $PLATEOP_NODE_NAME Ready: the node agent runs pods as local processes (no container runtime)"
}

make_plate() {
    step "generating the demo plate (hack/plate.sh)"
    acq=$("$here/plate.sh" --dir "$demo/images" --wells "$wells" --sites "$sites" \
        --barcode DEMO-PLATE-1 2>>"$log")
    local n
    n=$(psql -X -At -c "SELECT count(*) FROM images WHERE plate_acquisition_id = $acq")
    say "plate DEMO-PLATE-1 (plate_acquisition $acq): $wells wells x $sites sites x 5 channels = $n images in $demo/images"

    # The work volume: batch outputs, merged tables, and the pipelines.
    mkdir -p "$demo/work/pipelines"
    cat >"$demo/work/pipelines/cellpainting.cppipe" <<'EOF'
CellProfiler Pipeline: http://www.cellprofiler.org
# The demo runs the CellProfiler stand-in (tests/standin), which reads every image
# of the LoadData CSV and writes Image, Cells, Nuclei and Cytoplasm tables. On a
# real cluster this is a Cell Painting pipeline and the worker image's CellProfiler.
EOF
    chmod -R a+rX "$demo/work" "$demo/images"
    chmod 777 "$demo/work"
}

service_account_kubeconfig() {
    local secret token i
    for i in $(seq 1 120); do
        secret=$(kubectl -n "$sys" get serviceaccount plateop-controller \
            -o jsonpath='{.secrets[0].name}' 2>/dev/null) && [ -n "$secret" ] && break
        sleep 0.25
    done
    [ -n "$secret" ] || fail "the ServiceAccount $sys/plateop-controller got no token Secret within 30 s"
    token=$(kubectl -n "$sys" get secret "$secret" -o jsonpath='{.data.token}' | base64 -d)
    (
        umask 077
        cat >"$ctl/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: plateop-demo
  cluster:
    server: $PLATEOP_KUBE_SERVER
    certificate-authority: $PLATEOP_KUBE_CA
users:
- name: plateop-controller
  user:
    token: $token
contexts:
- name: plateop-controller
  context: {cluster: plateop-demo, user: plateop-controller, namespace: $sys}
current-context: plateop-controller
EOF
    )
}

start_controller() {
    local i ready=0
    step "starting the controller"
    service_account_kubeconfig
    # Where the demo differs from manifests/config.yaml: the worker is this
    # checkout's binary (the node agent runs commands, not images) with the
    # CellProfiler stand-in, and the volumes are directories of the demo, mounted
    # where they are, so that paths in statuses and rows are paths on this machine.
    cat >"$ctl/config.yaml" <<EOF
worker:
  image: plateop/worker:0.1.0
  command: [$build/plateop-worker]
  env:
    PLATEOP_CELLPROFILER: $build/tests/cellprofiler-standin
window: 8
succeededJobTTLSeconds: 600
workVolume: {mountPath: $demo/work, hostPath: $demo/work}
imageVolumes:
  - {name: images, mountPath: $demo/images, hostPath: $demo/images}
imagedb:
  namespace: $ns
  pollSeconds: 60
EOF
    pick_port port
    setsid "$build/plateop-controller" --kubeconfig "$ctl/kubeconfig" --namespace "$ns" \
        --imagedb "$PLATEOP_IMAGEDB_URI" --imagedb-password-file "$PLATEOP_IMAGEDB_PASSWORD_FILE" \
        --config "$ctl/config.yaml" --listen "127.0.0.1:$port" \
        --leader-elect=true --lease-namespace "$sys" --id plateop-demo \
        >>"$ctl/controller.log" 2>&1 </dev/null &
    echo $! >"$ctl/controller.pid"
    echo "$port" >"$ctl/port"
    for i in $(seq 1 240); do
        alive "$ctl/controller.pid" plateop-controller ||
            fail "the controller exited at start" "$(tail -n 12 "$ctl/controller.log")"
        [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$port/readyz")" = 200 ] &&
            curl -s --max-time 2 "http://127.0.0.1:$port/metrics" | grep -qx 'plateop_leader 1' &&
            ready=1 && break
        sleep 0.25
    done
    [ "$ready" = 1 ] || fail "the controller was not ready and leading within 60 s" "$(tail -n 12 "$ctl/controller.log")"
    say "controller running as local process $(cat "$ctl/controller.pid") with the ServiceAccount $sys/plateop-controller's token"
    say "  (leader through Lease $sys/plateop-controller; health and metrics on 127.0.0.1:$port)"
}

write_env() {
    cat >"$demo/env" <<EOF
# The demo's cluster and ImageDB: . $demo/env
export KUBECONFIG=$KUBECONFIG
export PGHOST=$PGHOST PGPORT=$PGPORT PGUSER=$PGUSER PGDATABASE=$PGDATABASE PGPASSWORD=$PGPASSWORD
EOF
}

submit() {
    step "submitting the analyses"
    cat >"$demo/analysis.yaml" <<EOF
apiVersion: plateop.io/v1alpha1
kind: Analysis
metadata:
  name: $kube_name
  namespace: $ns
spec:
  plateAcquisition: $acq
  pipeline: pipelines/cellpainting.cppipe
  batching: {by: well, size: 2}
  resources:
    requests: {cpu: 250m, memory: 256Mi}
    limits: {memory: 1Gi}
  retries: 2
EOF
    quiet kubectl apply -f "$demo/analysis.yaml"
    say "kubectl apply -f $demo/analysis.yaml: Analysis $kube_name, 2 wells per batch"

    # Exactly as the pipeline GUI inserts an analysis: one transaction, the
    # image_analyses row, then its step in image_sub_analyses.
    ids=$(psql -X -q -v ON_ERROR_STOP=1 -At -F ' ' -v acq="$acq" 2>>"$log" <<'SQL'
BEGIN;
INSERT INTO image_analyses (plate_acquisition_id, pipeline_name, meta, priority)
    VALUES (:acq, 'Cell Painting features', '{}', 0) RETURNING id AS aid \gset
INSERT INTO image_sub_analyses (analysis_id, plate_acquisition_id, meta, depends_on_sub_id, priority)
    VALUES (:aid, :acq, '{"type": "cellprofiler", "pipeline_file": "pipelines/cellpainting.cppipe",
                          "batch_size": 8, "cp_version": "4.2.6", "job_timeout": 3600,
                          "max_errors": 0}', NULL, 0)
    RETURNING sub_id AS sub \gset
COMMIT;
SELECT :aid, :sub;
SQL
    )
    read -r aid sub <<<"$ids"
    [ -n "${sub:-}" ] || fail "inserting the GUI's ImageDB rows failed" "$(tail -n 5 "$log")"
    gui_name="ia-$aid-$sub"
    say "ImageDB rows inserted as the GUI does: image_analyses $aid, image_sub_analyses $sub (8 image sets per batch)"
}

# progress_line JSON: one line for both Analyses, short enough for a terminal:
# a bar over all their batches, then each one's phase and batches done.
progress_line() {
    jq -r --arg k "$kube_name" --arg g "$gui_name" '
        def ana(n): .items | map(select(.metadata.name == n)) | .[0];
        def done(a): (a.status.batches.succeeded // 0);
        def total(a): (a.status.batches.total // 0);
        def one(n): ana(n) as $a
            | if $a == null then "\(n) waiting for the controller"
              else "\(n) \($a.status.phase // "Pending") \(done($a))/\(total($a))"
                   + (if ($a.status.batches.failed // 0) > 0 then " (\($a.status.batches.failed) failed)" else "" end)
              end;
        ([ana($k), ana($g)] | map(select(. != null))) as $both
        | ([$both[] | done(.)] | add // 0) as $d | ([$both[] | total(.)] | add // 0) as $t
        | (if $t > 0 then $d * 10 / $t | floor else 0 end) as $n
        | "[" + ("#" * $n) + ("." * (10 - $n)) + "] \(one($k)) | \(one($g))"' <<<"$1"
}

phases() {
    jq -r --arg k "$kube_name" --arg g "$gui_name" '
        [.items[] | select(.metadata.name == $k or .metadata.name == $g) | .status.phase // "Pending"]
        | if length < 2 then "waiting" else join(" ") end' <<<"$1"
}

watch_progress() {
    local deadline json line last= ph cols
    step "running the analyses"
    say "running: $kube_name (kubectl) and $gui_name (ImageDB row)"
    deadline=$(( $(date +%s) + timeout ))
    while :; do
        json=$(kubectl -n "$ns" get analyses -o json 2>>"$log") || json='{"items":[]}'
        line=$(progress_line "$json")
        if [ $tty -eq 1 ]; then
            # One terminal line, or \r cannot take it back.
            cols=$(stty size </dev/tty 2>/dev/null | cut -d' ' -f2)
            line="[$(printf '%3s' "$(elapsed)")s] $line"
            printf '\r\033[K%s' "${line:0:$(( ${cols:-80} - 1 ))}"
        elif [ "$line" != "$last" ]; then
            say "$line"
        fi
        last=$line
        ph=$(phases "$json")
        case "$ph" in
        *Failed*) [ $tty -eq 1 ] && echo; failed_analysis "$json" ;;
        "Succeeded Succeeded") break ;;
        esac
        alive "$ctl/controller.pid" plateop-controller ||
            fail "the controller exited while the analyses ran" "$(tail -n 12 "$ctl/controller.log")"
        [ "$(date +%s)" -lt "$deadline" ] ||
            fail "the analyses did not finish within ${timeout}s (PLATEOP_DEMO_TIMEOUT): $line" \
                "$(tail -n 8 "$ctl/controller.log")"
        sleep 0.5
    done
    [ $tty -eq 1 ] && echo
    say "both analyses Succeeded"
}

failed_analysis() {
    local why
    why=$(jq -r '.items[] | select(.status.phase == "Failed") |
        "\(.metadata.name): \(.status.conditions[]? | select(.type == "Failed") | "\(.reason): \(.message)")"' <<<"$1")
    fail "an analysis Failed" "$why"
}

# The GUI reads its row: finish and result come within a second of the status.
check_row() {
    local i row
    step "checking the GUI's ImageDB row"
    for i in $(seq 1 40); do
        row=$(psql -X -At -c "SELECT finish IS NOT NULL AND result IS NOT NULL FROM image_sub_analyses WHERE sub_id = $sub")
        [ "$row" = t ] && return 0
        sleep 0.25
    done
    fail "the ImageDB row of $gui_name has no finish and result 10 s after the analysis succeeded" \
        "$(psql -X -At -c "SELECT start, finish, error, status FROM image_sub_analyses WHERE sub_id = $sub")"
}

# hint COMMAND [COMMENT]: one line of the "look around" list.
hint() {
    if [ -n "${2:-}" ]; then printf '  %-62s # %s\n' "$1" "$2"; else printf '  %s\n' "$1"; fi
}

report() {
    local name dir job
    echo
    bold "kubectl -n $ns get analyses"; echo
    kubectl -n "$ns" get analyses | sed 's/^/  /'
    echo
    bold "Merged tables"; echo
    for name in "$kube_name" "$gui_name"; do
        dir=$(kubectl -n "$ns" get analysis "$name" -o jsonpath='{.status.results.path}')
        echo "  $name: $dir"
        kubectl -n "$ns" get analysis "$name" -o json |
            jq -r '.status.results.tables[] | "      \(.file)" + " " * ([16 - (.file | length), 1] | max) + "\(.rows) rows"'
    done
    echo
    bold "The GUI's ImageDB row (image_sub_analyses $sub)"; echo
    psql -X -P footer=off -c "SELECT sub_id, start::time(0), finish::time(0), status->>'state' AS state,
                       status->>'progress' AS progress, result->>'job_folder' AS job_folder
                FROM image_sub_analyses WHERE sub_id = $sub" | sed -e '/^ *$/d' -e 's/^/  /'
    echo
    job=$(kubectl -n "$ns" get jobs -l "plateop.io/analysis=$kube_name,plateop.io/role=batch" \
        -o jsonpath='{.items[0].metadata.name}' 2>/dev/null || true)
    bold "Look around"; echo " (the demo keeps running until make demo-down)"
    hint ". $demo/env" "KUBECONFIG and PG* for this shell"
    hint "kubectl -n $ns get analyses,jobs,configmaps"
    hint "kubectl -n $ns describe analysis $kube_name" "status, conditions, Events"
    hint "kubectl -n $ns logs job/${job:-$kube_name-a01-a02}" "a batch (its Job goes 10 min after success)"
    hint "kubectl -n $ns logs job/$kube_name-merge" "the merge, table by table"
    hint "kubectl -n $ns get events --sort-by=.lastTimestamp"
    hint "curl -s 127.0.0.1:$port/metrics | grep ^plateop_" "Prometheus metrics"
    hint "jq -c 'select(.analysis == \"$ns/$gui_name\")' $ctl/controller.log" "the controller's JSON log"
    hint "psql -c 'SELECT * FROM image_sub_analyses'" "the rows the GUI reads"
    hint "cat $demo/analysis.yaml" "the Analysis applied with kubectl"
    echo
    bold "Stop:"; echo " make demo-down   (stops the controller, node agent, ImageDB and cluster; removes $demo)"
    say "done"
}

cmd_up() {
    preflight
    claim_dir
    trap 'err_rc=$? err_cmd=$BASH_COMMAND' ERR
    trap on_exit EXIT
    trap 'fail "interrupted"' INT TERM
    echo "plateop demo in $demo (log: $log)"
    start_infrastructure
    install_plateop
    start_node
    make_plate
    start_controller
    write_env
    submit
    watch_progress
    check_row
    finished=1
    trap - ERR INT TERM EXIT
    report
}

cmd_down() {
    if [ ! -e "$demo" ]; then
        echo "demo: nothing to stop in $demo"
        return 0
    fi
    if [ ! -f "$marker" ]; then
        echo "demo: $demo is not a demo directory; leaving it alone" >&2
        exit 1
    fi
    stop_all
    rm -rf "$demo"
    echo "demo: stopped the controller, node agent, ImageDB and cluster; removed $demo"
}

cmd_env() {
    [ -f "$demo/env" ] || { echo "demo: no demo in $demo: make demo" >&2; exit 1; }
    cat "$demo/env"
}

case "${1:-}" in
up) cmd_up ;;
down) cmd_down ;;
env) cmd_env ;;
*) echo "usage: $0 up|down|env" >&2; exit 2 ;;
esac
