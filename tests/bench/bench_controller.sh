#!/usr/bin/env bash
# Controller benchmarks on the local test bed (its own, started and stopped
# here, unless KUBECONFIG and PG* already point at one with a node agent).
#
#   BENCH controller_create_rate <n> /s         Jobs + ConfigMaps of a 1,536-batch
#                                               Analysis (window off) per second, from
#                                               `kubectl apply` to the last Job
#   BENCH curl_create_rate_jobs_cms <n> /s      the same number of creates (the same
#                                               kinds and sizes) by `curl --parallel 64`
#   BENCH controller_create_ratio_vs_curl <r> x goal >= 0.8
#   BENCH status_latency_p50 <s> s              a batch Job completes -> the Analysis
#   BENCH status_latency_p99 <s> s              status counts it (goal p99 <= 1 s)
#   BENCH controller_rss_20k_jobs <MB> MB       peak RSS with 100 Analyses and 20,000
#                                               Jobs in its caches (goal <= 25 MB)
#
# The node is cordoned while the create benchmark runs, so its pods stay
# Pending instead of running 1,536 workers at once. Figures are medians of
# CONTROLLER_BENCH_RUNS (3) runs where a run is cheap enough to repeat.
set -euo pipefail

. "$PLATEOP_ROOT/tests/bench/lib.sh"
. "$PLATEOP_ROOT/hack/ports.sh"
die() { echo "bench_controller: $*" >&2; exit 1; }
want_create=0 want_latency=0 want_rss=0
bench_want controller_create_rate curl_create_rate_jobs_cms controller_create_ratio_vs_curl &&
    want_create=1
bench_want status_latency_p50 status_latency_p99 && want_latency=1
bench_want controller_rss_20k_jobs && want_rss=1
[ $((want_create + want_latency + want_rss)) -gt 0 ] || exit 0

runs=${CONTROLLER_BENCH_RUNS:-3}
work=$(mktemp -d /tmp/plateop-bench-ctl.XXXXXX)
chmod 777 "$work"
own=0
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    kubectl delete namespace -l "plateop.io/bench=$$" --wait=false >/dev/null 2>&1 || true
    [ -n "${node:-}" ] && kubectl uncordon "$node" >/dev/null 2>&1 || true
    if [ $own -eq 1 ]; then testbed_down >/dev/null 2>&1 || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

if [ -z "${KUBECONFIG:-}" ] || [ -z "${PLATEOP_NODE_NAME:-}" ]; then
    . "$PLATEOP_ROOT/tests/testbed.sh"
    own=1
    testbed_up >&2
fi
node=$PLATEOP_NODE_NAME
kubectl apply -f "$PLATEOP_ROOT/crds/analysis.yaml" >/dev/null
kubectl wait --for condition=established --timeout=30s crd/analyses.plateop.io >/dev/null
mkdir -p "$work/work" "$work/images"
chmod 777 "$work/work"
echo "a pipeline" >"$work/work/pipeline.cppipe"

new_ns() {
    local ns="bench-ctl-$$-$1"
    kubectl create namespace "$ns" >/dev/null
    kubectl label namespace "$ns" "plateop.io/bench=$$" >/dev/null
    echo "$ns"
}

# config FILE WINDOW [ENV...]: a controller configuration running the real worker.
config() {
    local file=$1 window=$2 kv
    shift 2
    {
        echo "worker:"
        echo "  command: [$PLATEOP_BUILD/plateop-worker]"
        echo "  env:"
        echo "    PLATEOP_CELLPROFILER: $PLATEOP_BUILD/tests/cellprofiler-standin"
        for kv in "$@"; do echo "    ${kv%%=*}: \"${kv#*=}\""; done
        echo "window: $window"
        echo "workVolume: {mountPath: /plateop-work, hostPath: $work/work}"
        echo "imageVolumes: [{name: images, mountPath: $work/images, hostPath: $work/images}]"
    } >"$file"
}

controller() {
    local ns=$1 cfg=$2 log=$3
    "$PLATEOP_BUILD/plateop-controller" --namespace "$ns" --config "$cfg" --leader-elect=false \
        --listen "" >"$log" 2>&1 &
    pids+=($!)
    echo $!
}

apply() {
    printf 'apiVersion: plateop.io/v1alpha1\nkind: Analysis\nmetadata: {name: %s, namespace: %s}\nspec: {plateAcquisition: %s, pipeline: pipeline.cppipe}\n' \
        "$1" "$2" "$3" | kubectl apply -f - >/dev/null
}

# watch NS RESOURCE: every event of the collection, one line each, stamped
# with the time it arrived (tests/tools/watch_events: unlike `kubectl get -w`,
# it resumes when a busy API server closes the stream).
# Run in the background; exec makes $! the watcher itself, for kill.
watch() {
    exec "$PLATEOP_BUILD/tests/tools/watch_events" -n "$1" "$2" 2>/dev/null
}

# added FILE: the arrival times of the ADDED events in a watch's output.
added() {
    grep -F '"type":"ADDED"' "$1" | cut -f1
}

# curl_cfg <"URL<tab>BODY" lines >CONFIG: a `curl -K` config of one JSON POST
# per line (BODY inline, or @FILE), each with the admin identity, since a
# `next` in a config resets every option given before it.
curl_cfg() {
    awk -F '\t' -v pki="$PLATEOP_CLUSTER_DIR/pki" '{
        if (NR > 1) print "next"
        body = $2; gsub(/\\/, "&&", body); gsub(/"/, "\\\"", body)
        printf "url = \"%s\"\ndata = \"%s\"\n", $1, body
        printf "cacert = \"%s/ca.crt\"\ncert = \"%s/admin.crt\"\nkey = \"%s/admin.key\"\n", pki, pki, pki
        print "header = \"Content-Type: application/json\""
        print "-o /dev/null"
        print "-w \"%{http_code}\\n\""
    }'
}

if [ $want_create -eq 1 ]; then
    acq=$("$PLATEOP_ROOT/hack/plate.sh" --dir "$work/images" --plate-format 1536 --wells 1536 --sites 1)
    config "$work/create.yaml" 0
    kubectl cordon "$node" >/dev/null
    ctl_rates=() curl_rates=()
    for ((r = 1; r <= runs; r++)); do
        # The controller: kubectl apply -> the 1,536th Job exists.
        ns=$(new_ns "c$r")
        pid=$(controller "$ns" "$work/create.yaml" "$work/create-$r.log")
        sleep 2
        watch "$ns" jobs >"$work/jobs-$r.txt" &
        watcher=$!
        sleep 1
        t0=$EPOCHREALTIME
        apply plate "$ns" "$acq"
        for _ in $(seq 1 600); do
            [ "$(added "$work/jobs-$r.txt" | wc -l)" -ge 1536 ] && break
            sleep 0.1
        done
        t1=$(added "$work/jobs-$r.txt" | sed -n 1536p)
        kill "$watcher" "$pid" 2>/dev/null || true
        [ -n "$t1" ] || { echo "bench_controller: only $(added "$work/jobs-$r.txt" | wc -l) Jobs" >&2; grep -v creating "$work/create-$r.log" | tail -n 5 >&2; exit 1; }
        ctl_rates+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", 3072 / (b - a)}')")

        # curl: the same kinds, counts and sizes, 64 at a time, one TLS identity.
        ns=$(new_ns "u$r")
        csv=$(kubectl -n "bench-ctl-$$-c$r" get configmap plate-a01 -o json | jq -c '.data')
        job=$(kubectl -n "bench-ctl-$$-c$r" get job plate-a01 -o json |
            jq -c 'del(.status, .metadata.uid, .metadata.resourceVersion, .metadata.creationTimestamp,
                       .metadata.ownerReferences, .metadata.managedFields, .spec.selector,
                       .spec.template.metadata.labels["controller-uid"], .spec.template.metadata.labels["job-name"])')
        api="$PLATEOP_KUBE_SERVER"
        printf '%s' "$job" | jq -c 'range(0; 1536) as $i | .metadata.name = "j\($i)" | del(.metadata.namespace)' |
            awk -v d="$work" '{ f = d "/j" (NR - 1) ".json"; print > f; close(f) }'
        jq -nc --argjson d "$csv" 'range(0; 1536) as $i | {apiVersion: "v1", kind: "ConfigMap", metadata: {name: "c\($i)"}, data: $d}' |
            awk -v d="$work" '{ f = d "/c" (NR - 1) ".json"; print > f; close(f) }'
        for ((i = 0; i < 1536; i++)); do
            printf '%s/api/v1/namespaces/%s/configmaps\t@%s/c%d.json\n' "$api" "$ns" "$work" "$i"
            printf '%s/apis/batch/v1/namespaces/%s/jobs\t@%s/j%d.json\n' "$api" "$ns" "$work" "$i"
        done | curl_cfg >"$work/curl.cfg"
        t0=$EPOCHREALTIME
        curl -sS --parallel --parallel-max 64 -K "$work/curl.cfg" >"$work/codes" 2>"$work/curl.err" || true
        t1=$EPOCHREALTIME
        made=$(grep -c '^201$' "$work/codes" || true)
        [ "$made" -eq 3072 ] || { echo "bench_controller: curl created $made of 3072; answers:" $(sort "$work/codes" | uniq -c) >&2; tail -c 300 "$work/curl.err" >&2; exit 1; }
        curl_rates+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", 3072 / (b - a)}')")
        echo "# run $r: controller ${ctl_rates[-1]} /s, curl ${curl_rates[-1]} /s" >&2
        # Gone before the next run: a namespace still being emptied (3,072
        # objects and 1,536 pods) would load the API server during the next
        # controller run only, since the curl run comes after it.
        kubectl delete namespace "bench-ctl-$$-c$r" "$ns" --timeout=300s >/dev/null
    done
    kubectl uncordon "$node" >/dev/null
    ctl_rate=$(bench_median "${ctl_rates[@]}")
    curl_rate=$(bench_median "${curl_rates[@]}")
    bench_print controller_create_rate "$ctl_rate" /s
    bench_print curl_create_rate_jobs_cms "$curl_rate" /s
    bench_print controller_create_ratio_vs_curl "$(bench_ratio "$ctl_rate" "$curl_rate")" x
fi

if [ $want_latency -eq 1 ]; then
    # 60 one-well batches of ~0.5 s under pods=4: completions spread over ~10 s.
    ns=$(new_ns latency)
    kubectl -n "$ns" create quota pods --hard=pods=4 >/dev/null
    acq=$("$PLATEOP_ROOT/hack/plate.sh" --dir "$work/images" --wells 60 --sites 1)
    config "$work/latency.yaml" 8 PLATEOP_STANDIN_SLEEP_MS=500
    controller "$ns" "$work/latency.yaml" "$work/latency.log" >/dev/null
    watch "$ns" jobs >"$work/jobs.json" &
    pids+=($!)
    watch "$ns" analyses >"$work/ana.json" &
    pids+=($!)
    sleep 2
    apply lat "$ns" "$acq"
    for _ in $(seq 1 600); do
        [ "$(kubectl -n "$ns" get analysis lat -o jsonpath='{.status.phase}')" = Succeeded ] && break
        sleep 0.5
    done
    sleep 1
    # The first moment each batch Job is seen Complete, in order.
    cut -f1,2- "$work/jobs.json" | while IFS=$'\t' read -r t json; do
        printf '%s' "$json" | jq -r --arg t "$t" \
            'select(.object.metadata.labels["plateop.io/role"] == "batch") |
             select([.object.status.conditions[]? | select(.type == "Complete" and .status == "True")] | length > 0) |
             "\($t) \(.object.metadata.name)"'
    done | sort -k2,2 -u | sort -n | awk '{print $1}' >"$work/done.t"
    # When the status first counted k succeeded batches.
    cut -f1,2- "$work/ana.json" | while IFS=$'\t' read -r t json; do
        printf '%s' "$json" | jq -r --arg t "$t" '"\($t) \(.object.status.batches.succeeded // 0)"'
    done >"$work/status.t"
    lat=$(awk 'NR == FNR {done[NR] = $1; n = NR; next}
               { for (k = seen + 1; k <= $2 && k <= n; k++) { d = $1 - done[k]; if (d < 0) d = 0; print d }
                 if ($2 > seen) seen = $2 }' "$work/done.t" "$work/status.t" | sort -g)
    count=$(printf '%s\n' "$lat" | grep -c .)
    [ "$count" -ge 50 ] || { echo "bench_controller: $count latencies measured" >&2; exit 1; }
    p50=$(printf '%s\n' "$lat" | awk -v n="$count" 'NR == int((n + 1) / 2) {printf "%.3f", $1}')
    p99=$(printf '%s\n' "$lat" | awk -v n="$count" 'NR == int(n * 0.99 + 0.999) {printf "%.3f", $1}')
    echo "# $count Job completions measured" >&2
    bench_print status_latency_p50 "$p50" s
    bench_print status_latency_p99 "$p99" s
fi

if [ $want_rss -eq 1 ]; then
    # 100 Running Analyses of 200 one-well batches each: 20,000 batch
    # ConfigMaps (the controller's own, from planning) and 20,000 batch Jobs
    # shaped like its own (labels, annotations, ownerReferences, env,
    # volumes), so each reconcile walks a full cache. A pods=1 quota and a
    # cordoned node: the controller creates one real Job, whose pod stays
    # Pending, and nothing else runs; that Job is the model of the others,
    # which are made with parallelism 0 (no pods).
    ns=$(new_ns rss)
    kubectl -n "$ns" create quota pods --hard=pods=1 >/dev/null
    kubectl cordon "$node" >/dev/null
    acq=$("$PLATEOP_ROOT/hack/plate.sh" --dir "$work/images" --wells 200 --sites 1)
    for ((a = 0; a < 100; a++)); do
        printf -- '---\napiVersion: plateop.io/v1alpha1\nkind: Analysis\nmetadata: {name: a%d}\nspec: {plateAcquisition: %s, pipeline: pipeline.cppipe}\n' "$a" "$acq"
    done | kubectl -n "$ns" apply -f - >/dev/null
    config "$work/rss.yaml" 8
    pid=$(controller "$ns" "$work/rss.yaml" "$work/rss-plan.log")
    running=0
    for _ in $(seq 1 1200); do
        running=$(kubectl -n "$ns" get analyses -o jsonpath='{range .items[*]}{.status.phase}{"\n"}{end}' | grep -cx Running || true)
        [ "$running" -eq 100 ] && [ -n "$(kubectl -n "$ns" get jobs -o name)" ] && break
        sleep 0.5
    done
    kill "$pid"
    [ "$running" -eq 100 ] || { echo "bench_controller: $running of 100 Analyses planned" >&2; tail -n 5 "$work/rss-plan.log" >&2; exit 1; }
    # The model: the real Job less what the API server fills in.
    kubectl -n "$ns" get jobs -o json | jq -c '.items[0] |
        del(.status, .metadata.uid, .metadata.resourceVersion, .metadata.creationTimestamp,
            .metadata.managedFields, .metadata.selfLink, .metadata.generation, .spec.selector,
            .spec.template.metadata.labels["controller-uid"], .spec.template.metadata.labels["job-name"])' \
        >"$work/model.json"
    # One Job per batch ConfigMap, as the controller would make it.
    kubectl -n "$ns" get configmaps -l plateop.io/role=batch -o json |
        jq -c --slurpfile m "$work/model.json" --arg ns "$ns" '.items[] | . as $cm |
            ($cm.metadata.ownerReferences[0].name) as $ana | ($cm.metadata.labels["plateop.io/batch"]) as $b |
            ($cm.metadata.labels | del(.["plateop.io/state"])) as $l |
            $m[0] | .metadata.name = $cm.metadata.name |
            .metadata.labels = $l + {"plateop.io/attempt": "0"} |
            .metadata.annotations = $cm.metadata.annotations |
            .metadata.ownerReferences = $cm.metadata.ownerReferences |
            .spec.parallelism = 0 |
            .spec.template.metadata.labels = $l + {"plateop.io/analysis-uid": $cm.metadata.ownerReferences[0].uid} |
            .spec.template.metadata.annotations["plateop.io/analysis-name"] = $ana |
            .spec.template.spec.volumes |= map(if .configMap then .configMap.name = $cm.metadata.name else . end) |
            .spec.template.spec.containers[0].env |= map(.value = (
                {PLATEOP_ANALYSIS: "\($ns)/\($ana)", PLATEOP_BATCH: $b,
                 PLATEOP_WELLS: $cm.metadata.annotations["plateop.io/wells"],
                 PLATEOP_INPUT_HASH: $cm.metadata.annotations["plateop.io/input-hash"],
                 PLATEOP_OUTPUT_DIR: "/plateop-work/\($ns)/\($ana)/batches/\($b)"}[.name] // .value))' |
        awk -v d="$work" '{ f = d "/rj" NR ".json"; print > f; close(f) }'
    njobs=$(ls "$work" | grep -c '^rj[0-9]*\.json$' || true)
    [ "$njobs" -eq 20000 ] || { echo "bench_controller: $njobs batch ConfigMaps, not 20000" >&2; exit 1; }
    for ((i = 1; i <= njobs; i++)); do
        printf '%s/apis/batch/v1/namespaces/%s/jobs\t@%s/rj%d.json\n' "$PLATEOP_KUBE_SERVER" "$ns" "$work" "$i"
    done | curl_cfg >"$work/jobs.cfg"
    curl -sS --retry 5 --parallel --parallel-max 32 -K "$work/jobs.cfg" >"$work/codes" 2>/dev/null || true
    # 409: the one Job the controller made itself.
    [ "$(grep -cE '^(201|409)$' "$work/codes")" -eq 20000 ] || {
        echo "bench_controller: Job set-up failed; HTTP codes: $(sort "$work/codes" | uniq -c | tr '\n' ' ')" >&2
        exit 1
    }
    rm -f "$work"/rj*.json

    # A fresh controller: its caches fill with everything at once, then it
    # reconciles the 100 Running Analyses over them.
    pick_port port
    "$PLATEOP_BUILD/plateop-controller" --namespace "$ns" --config "$work/rss.yaml" --leader-elect=false \
        --listen "127.0.0.1:$port" >"$work/rss.log" 2>&1 &
    pid=$!
    pids+=("$pid")
    metric() { curl -fsS "http://127.0.0.1:$port/metrics" 2>/dev/null | awk -v m="$1" '$1 == m {print $2}'; }
    for _ in $(seq 1 1200); do
        grep -q 'caches synced' "$work/rss.log" && break
        sleep 0.1
    done
    grep -q '20000 jobs' "$work/rss.log" || { echo "bench_controller: $(grep 'caches synced' "$work/rss.log")" >&2; exit 1; }
    for _ in $(seq 1 600); do
        [ "$(metric plateop_reconciles_total)" -ge 100 ] 2>/dev/null && [ "$(metric plateop_workqueue_depth)" = 0 ] && break
        sleep 0.1
    done
    sleep 5     # periodic resyncs and requeues while the caches stay full
    echo "# rss: $(metric plateop_reconciles_total) reconciles, $(metric plateop_jobs_created_total) Jobs created," \
        "$(kubectl -n "$ns" get analyses -o jsonpath='{range .items[*]}{.status.phase}{"\n"}{end}' | grep -cx Running) Analyses Running" >&2
    hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
    kill "$pid"
    kubectl uncordon "$node" >/dev/null
    bench_print controller_rss_20k_jobs "$(awk -v k="$hwm" 'BEGIN {printf "%.1f", k / 1024}')" MB
fi
