#!/usr/bin/env bash
# Kubernetes client benchmarks, against $KUBECONFIG's cluster or, when
# KUBECONFIG is unset, a private one started (and stopped) with hack/cluster.sh.
#
#   BENCH kube_create_rate <n> /s           ConfigMap creates through one kube_batch
#   BENCH curl_create_rate <n> /s           the same creates by `curl --parallel`
#   BENCH kube_create_ratio_vs_curl <r> x   goal >= 0.8
#   BENCH kube_informer_rss_20k <MB> MB     peak RSS of a process whose informer holds
#                                           20,000 ConfigMaps, data pruned by its
#                                           transform as the controller does; goal <= 25
#   BENCH kube_informer_rss_20k_full <MB> MB  the same keeping every ConfigMap's data
#   BENCH kube_informer_sync_20k <s> s      time to list 20,000 ConfigMaps into it
#
# Both create sides send the same bodies (a ~600-byte LoadData CSV each) with
# the same TLS identity and the same concurrency to the same API server in
# the same run, each into a fresh namespace, alternating which goes first;
# rates are creates / wall time of the whole process (start-up and TLS
# handshake included on both sides); figures are medians.
#
# Knobs: KUBE_BENCH_CREATES (1000 per run), KUBE_BENCH_PARALLEL (32),
# KUBE_BENCH_RUNS (5: the API server shares two cores with everything else).
set -euo pipefail

. "$PLATEOP_ROOT/tests/bench/lib.sh"
want_create=0
want_informer=0
bench_want kube_create_rate curl_create_rate kube_create_ratio_vs_curl && want_create=1
bench_want kube_informer_rss_20k kube_informer_rss_20k_full kube_informer_sync_20k &&
    want_informer=1
[ $want_create -eq 1 ] || [ $want_informer -eq 1 ] || exit 0

count=${KUBE_BENCH_CREATES:-1000}
parallel=${KUBE_BENCH_PARALLEL:-32}
runs=${KUBE_BENCH_RUNS:-5}
work=$(mktemp -d "${TMPDIR:-/tmp}/plateop-bench-kube.XXXXXX")
# A private copy: a rebuild of the tree while this runs must not swap it.
cp "$PLATEOP_BUILD/tests/bench/bench_kube" "$work/bench_kube"
bin=$work/bench_kube
own_cluster=0

# Namespaces are labelled with this run's id, so cleanup finds them all
# (new_namespace runs in command substitutions: it cannot record them).
cleanup() {
    kubectl delete namespace -l "plateop.io/bench=$$" --wait=false >/dev/null 2>&1 || true
    if [ $own_cluster -eq 1 ]; then
        "$PLATEOP_ROOT/hack/cluster.sh" down >&2 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

if [ -z "${KUBECONFIG:-}" ]; then
    export PLATEOP_CLUSTER_DIR=$work/cluster
    own_cluster=1
    "$PLATEOP_ROOT/hack/cluster.sh" up >&2
    eval "$("$PLATEOP_ROOT/hack/cluster.sh" env)"
fi

new_namespace() {
    local ns="bench-kube-$$-$1"
    kubectl create namespace "$ns" >/dev/null
    kubectl label namespace "$ns" "plateop.io/bench=$$" >/dev/null
    echo "$ns"
}

now_ns() { date +%s%N; }

# kube_side RUN: prints creates per second of one kube_batch run.
kube_side() {
    local ns t0 t1 out
    ns=$(new_namespace "k$1")
    t0=$(now_ns)
    out=$("$bin" create "$ns" "$count" "$parallel" cm)
    t1=$(now_ns)
    [ "${out#* }" = "0" ] || { echo "bench_kube: $out" >&2; return 1; }
    awk -v n="$count" -v d=$((t1 - t0)) 'BEGIN {printf "%.1f\n", n / (d / 1e9)}'
}

# curl_side RUN: the same creates with curl --parallel.
curl_side() {
    local ns t0 t1 created
    ns=$(new_namespace "c$1")
    "$bin" curlcfg "$ns" "$count" cm >"$work/curl.cfg"
    t0=$(now_ns)
    curl -sS --parallel --parallel-max "$parallel" -K "$work/curl.cfg" >"$work/codes" \
        2>"$work/curl.err" || true
    t1=$(now_ns)
    created=$(grep -c '^201$' "$work/codes" || true)
    [ "$created" -eq "$count" ] || {
        echo "curl created $created of $count: $(tr '\r' '\n' <"$work/curl.err" | grep 'curl:' | head -3)" >&2
        return 1
    }
    awk -v n="$count" -v d=$((t1 - t0)) 'BEGIN {printf "%.1f\n", n / (d / 1e9)}'
}

if [ $want_create -eq 1 ]; then
    kube_rates=()
    curl_rates=()
    for ((r = 1; r <= runs; r++)); do
        if ((r % 2)); then
            kube_rates+=("$(kube_side "$r")")
            curl_rates+=("$(curl_side "$r")")
        else
            curl_rates+=("$(curl_side "$r")")
            kube_rates+=("$(kube_side "$r")")
        fi
        echo "# run $r: kube ${kube_rates[-1]} /s, curl ${curl_rates[-1]} /s" >&2
    done
    kube_rate=$(bench_median "${kube_rates[@]}")
    curl_rate=$(bench_median "${curl_rates[@]}")
    bench_print kube_create_rate "$kube_rate" /s
    bench_print curl_create_rate "$curl_rate" /s
    bench_print kube_create_ratio_vs_curl "$(bench_ratio "$kube_rate" "$curl_rate")" x
fi

if [ $want_informer -eq 1 ]; then
    ns=$(new_namespace informer)
    out=$("$bin" create "$ns" 20000 64 cm)
    [ "${out#* }" = "0" ] || { echo "bench_kube: setup: $out" >&2; exit 1; }
    pruned=()
    full=()
    syncs=()
    for ((r = 1; r <= runs; r++)); do
        read -r n kb secs < <("$bin" informer "$ns" prune)
        [ "$n" -eq 20000 ] || { echo "bench_kube: informer holds $n objects" >&2; exit 1; }
        pruned+=("$(awk -v k="$kb" 'BEGIN {printf "%.1f\n", k / 1024}')")
        syncs+=("$secs")
        read -r n kb secs < <("$bin" informer "$ns" full)
        full+=("$(awk -v k="$kb" 'BEGIN {printf "%.1f\n", k / 1024}')")
    done
    bench_print kube_informer_rss_20k "$(bench_median "${pruned[@]}")" MB
    bench_print kube_informer_rss_20k_full "$(bench_median "${full[@]}")" MB
    bench_print kube_informer_sync_20k "$(bench_median "${syncs[@]}")" s
fi
