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
        kubectl delete namespace "bench-ctl-$$-c$r" "$ns" --wait=false >/dev/null
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
    # 100 Analyses and 20,000 Jobs (parallelism 0: no pods) labelled as the controller's.
    ns=$(new_ns rss)
    for ((a = 0; a < 100; a++)); do
        printf -- '---\napiVersion: plateop.io/v1alpha1\nkind: Analysis\nmetadata: {name: a%d}\nspec: {plateAcquisition: 999999, pipeline: p.cppipe}\n' "$a"
    done | kubectl -n "$ns" apply -f - >/dev/null
    for ((i = 0; i < 20000; i++)); do
        printf '%s/apis/batch/v1/namespaces/%s/jobs\t{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"j%d","labels":{"plateop.io/analysis":"a%d","plateop.io/batch":"b%05d","plateop.io/role":"batch"}},"spec":{"parallelism":0,"template":{"spec":{"restartPolicy":"Never","containers":[{"name":"w","image":"x"}]}}}}\n' \
            "$PLATEOP_KUBE_SERVER" "$ns" "$i" $((i % 100)) "$i"
    done | curl_cfg >"$work/jobs.cfg"
    curl -sS --retry 5 --parallel --parallel-max 32 -K "$work/jobs.cfg" >"$work/codes" 2>/dev/null || true
    [ "$(grep -c '^201$' "$work/codes")" -eq 20000 ] || {
        echo "bench_controller: Job set-up failed; HTTP codes: $(sort "$work/codes" | uniq -c | tr '\n' ' ')" >&2
        exit 1
    }
    config "$work/rss.yaml" 8
    pid=$(controller "$ns" "$work/rss.yaml" "$work/rss.log")
    for _ in $(seq 1 600); do
        grep -q 'caches synced' "$work/rss.log" && break
        sleep 0.1
    done
    grep -q '20000 jobs' "$work/rss.log" || { echo "bench_controller: $(grep 'caches synced' "$work/rss.log")" >&2; exit 1; }
    sleep 10     # every Analysis reconciled (they fail: no such plate) with the caches full
    hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
    kill "$pid"
    bench_print controller_rss_20k_jobs "$(awk -v k="$hwm" 'BEGIN {printf "%.1f", k / 1024}')" MB
fi
