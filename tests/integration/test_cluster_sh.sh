#!/usr/bin/env bash
# hack/cluster.sh's fault paths, on a second cluster of its own (a private
# PLATEOP_CLUSTER_DIR and etcd directory; the test bed's cluster is left
# alone and must outlive it): no free port is refused with a clear message
# and nothing started; a controller-manager that makes no default
# ServiceAccount fails the start, with its log, and nothing is left; busy
# ports are avoided and each port is handed out once; a second `up` reuses
# the running cluster, and one while another up is at work is refused; a
# dead component is reported by `check` with its log; `up` after a death
# starts afresh without leftovers; `down` stops exactly the recorded
# processes and removes the state. And hack/kube-build.sh: the
# cached binaries are reused without a rebuild, the cache is keyed by the
# version of the fetched source, and a second build waits for the first.
set -uo pipefail
. "$PLATEOP_ROOT/tests/lib.sh"

testbed_dir=${PLATEOP_CLUSTER_DIR:-}
work=$(mktemp -d /tmp/plateop-cluster-test.XXXXXX)
etcd_tmp=$(mktemp -d /dev/shm/plateop-cluster-test.XXXXXX 2>/dev/null || mktemp -d "$work/etcd.XXXXXX")
export PLATEOP_CLUSTER_DIR="$work/cluster" PLATEOP_ETCD_TMP="$etcd_tmp"
cdir=$PLATEOP_CLUSTER_DIR
helpers=()   # pids of this test's listeners and decoys

cl() { "$PLATEOP_ROOT/hack/cluster.sh" "$@"; }

cleanup() {
    local p
    cl down >/dev/null 2>&1
    for p in "${helpers[@]}"; do kill "$p" 2>/dev/null; done
    rm -rf "$work" "$etcd_tmp"
}
trap cleanup EXIT

# ours: pids of live processes whose command line names this test's cluster
# (called from this shell only: a `sh -c` naming $work would find itself).
ours() { pgrep -f -- "$work/|$etcd_tmp/" | sort -n | tr '\n' ' '; }
# nothing_left: no process of this cluster, no state directory or lock, no etcd data.
nothing_left() { [ -z "$(ours)" ] && [ ! -e "$cdir" ] && [ ! -e "$cdir.lock" ] && [ -z "$(ls -A "$etcd_tmp")" ]; }
# recorded: the pids cluster.sh recorded for its components.
recorded() { cat "$cdir"/run/*.pid 2>/dev/null | sort -n | tr '\n' ' '; }
# gone PID: exited (a zombie not yet reaped by init counts as exited).
gone() { local _p _c st; read -r _p _c st _ <"/proc/$1/stat" 2>/dev/null || return 0; [ "$st" = Z ]; }
all_gone() { local p; for p in "$@"; do gone "$p" || return 1; done; }
all_live() { local p; for p in "$@"; do ! gone "$p" || return 1; done; }

# listen PORT: a process listening on 127.0.0.1:PORT (pid in $!), until killed.
listen() {
    openssl s_server -accept "127.0.0.1:$1" -nocert -quiet </dev/null >/dev/null 2>&1 &
    helpers+=($!)
    local _
    for _ in $(seq 1 40); do
        [ -n "$(ss -Htln "sport = :$1")" ] && return 0
        sleep 0.1
    done
    return 1
}

# free_run N: the first of N consecutive ports nothing listens on.
free_run() {
    local base k
    while :; do
        base=$((20000 + RANDOM % 10000))
        for ((k = 0; k < $1; k++)); do
            [ -z "$(ss -Htln "sport = :$((base + k))")" ] || continue 2
        done
        echo "$base"
        return 0
    done
}

# ports_in_use: the five ports of the running cluster, one a line.
ports_in_use() {
    grep -ho '127\.0\.0\.1:[0-9]*' "$cdir/run/etcd.args" | cut -d: -f2 | sort -u
    awk 'prev == "--secure-port" { print } { prev = $0 }' "$cdir"/run/kube-*.args
}

testbed_pids=$(cat "$testbed_dir"/run/*.pid 2>/dev/null | tr '\n' ' ')

# ---- hack/kube-build.sh -----------------------------------------------------
cache=${PLATEOP_CACHE:-/var/cache/plateop}
log_before=$(stat -c %Y "$cache/src/build.log" 2>/dev/null)
start=$(date +%s%N)
bindir=$("$PLATEOP_ROOT/hack/kube-build.sh" 2>"$work/kb.err")
ms=$(( ($(date +%s%N) - start) / 1000000 ))
if [[ "$bindir" =~ ^$cache/kube-1\.20\.[0-9]+/bin$ ]] && [ -x "$bindir/kube-apiserver" ] &&
    [ "$ms" -lt 5000 ] && [ "$(stat -c %Y "$cache/src/build.log" 2>/dev/null)" = "$log_before" ]; then
    t_ok "kube-build.sh reuses the cached binaries ($bindir, ${ms} ms, no rebuild)"
else
    t_fail "kube-build.sh reuses the cached binaries" "got '$bindir' in ${ms} ms; $(cat "$work/kb.err")"
fi

# A cache of its own with fake binaries: no build is ever started in it.
fake=$work/cache
fakebins() {
    mkdir -p "$fake/kube-$1/bin"
    local b
    for b in kube-apiserver kube-controller-manager kube-scheduler; do
        printf '#!/bin/sh\n' >"$fake/kube-$1/bin/$b"
        chmod +x "$fake/kube-$1/bin/$b"
    done
}
kb() { PLATEOP_CACHE=$fake "$PLATEOP_ROOT/hack/kube-build.sh"; }
mkdir -p "$fake/src/kubernetes-1.20.5+really1.20.3"
fakebins 1.20.3
fakebins 1.20.5
t_check "the cache key is the version the fetched source builds (1.20.5+really1.20.3 is 1.20.3)" \
    test "$(kb 2>&1)" = "$fake/kube-1.20.3/bin"
mkdir -p "$fake/src/kubernetes-1.20.11"
fakebins 1.20.11
t_check "the newest fetched source names the key (1.20.11 after 1.20.5)" \
    test "$(kb 2>&1)" = "$fake/kube-1.20.11/bin"

# A build in progress (its lock held here) makes a second run wait, then use its result.
mkdir -p "$fake/src/kubernetes-1.20.12"
exec 8>"$fake/kube-build.lock"
flock 8
kb >"$work/kb2.out" 2>"$work/kb2.err" 8>&- &
kbpid=$!
sleep 1.5
if [ -d "/proc/$kbpid" ] && grep -q 'another build is running' "$work/kb2.err"; then
    t_ok "a second kube-build.sh waits while a build holds the lock"
else
    t_fail "a second kube-build.sh waits while a build holds the lock" "$(cat "$work/kb2.err")"
fi
fakebins 1.20.12
flock -u 8
exec 8>&-
wait "$kbpid"
rc=$?
t_check "once the lock is free it uses the binaries that build made (no second build)" \
    sh -c "[ $rc -eq 0 ] && [ \"\$(cat '$work/kb2.out')\" = '$fake/kube-1.20.12/bin' ] && ! grep -q building '$work/kb2.err'"

# ---- an up or down at work: a second one is refused -------------------------------
exec 6>"$cdir.lock"
flock 6
out=$(cl up 2>&1)
rc=$?
if [ $rc -ne 0 ] && grep -q "at work on $cdir" <<<"$out" && [ ! -e "$cdir" ]; then
    t_ok "up while another up or down holds the cluster's lock is refused, touching nothing"
else
    t_fail "up while another up or down holds the cluster's lock is refused, touching nothing" "rc=$rc: $out"
fi
exec 6>&-
rm -f "$cdir.lock"

# ---- no free port: refused, nothing started ----------------------------------
base=$(free_run 5)
listen $((base + 2)) || t_fail "a listener on a test port starts"
out=$(PLATEOP_PORT_RANGE="$base-$((base + 4))" cl up 2>&1)
rc=$?
if [ $rc -ne 0 ] && grep -q "no free TCP port on 127.0.0.1 in $base-$((base + 4))" <<<"$out"; then
    t_ok "up with four free ports for five is refused, naming the range"
else
    t_fail "up with four free ports for five is refused, naming the range" "rc=$rc: $out"
fi
t_check "the refused up started nothing and left no state" nothing_left

# ---- no default ServiceAccount: the start fails and is undone ------------------
out=$(PLATEOP_KCM_CONTROLLERS=job,resourcequota,garbagecollector cl up 2>&1)
rc=$?
if [ $rc -ne 0 ] && grep -q 'made no default ServiceAccount' <<<"$out" &&
    grep -q -- "--- .*kube-controller-manager.log" <<<"$out"; then
    t_ok "a controller-manager that makes no default ServiceAccount fails up, with its log"
else
    t_fail "a controller-manager that makes no default ServiceAccount fails up, with its log" "rc=$rc: $(tail -n 20 <<<"$out")"
fi
t_check "the failed up stopped what it started and removed its state" nothing_left

# ---- busy ports avoided, each port once ----------------------------------------
base=$(free_run 6)
busy=$((base + 3))
listen "$busy" || t_fail "a listener on a test port starts"
if PLATEOP_PORT_RANGE="$base-$((base + 5))" cl up >"$work/up.log" 2>&1; then
    t_ok "up in a range of six ports with one busy starts"
else
    t_fail "up in a range of six ports with one busy starts" "$(tail -n 20 "$work/up.log")"
fi
ports=$(ports_in_use | tr '\n' ' ')
ports_ok() {
    local p
    [ "$(printf '%s\n' $ports | sort -u | wc -l)" -eq 5 ] || return 1
    for p in $ports; do
        [ "$p" -ge "$base" ] && [ "$p" -le $((base + 5)) ] && [ "$p" != "$busy" ] || return 1
        [ -n "$(ss -Htln "sport = :$p")" ] || return 1
    done
}
t_check "five different ports of the range, the busy one avoided, each listened on ($ports)" ports_ok
t_check "kubectl works against it" env KUBECONFIG="$cdir/admin.kubeconfig" kubectl get serviceaccount default

# ---- a second up reuses the running cluster ----------------------------------
pids=$(recorded)
out=$(cl up 2>&1)
rc=$?
if [ $rc -eq 0 ] && grep -q reusing <<<"$out" && [ "$(recorded)" = "$pids" ]; then
    t_ok "a second up reuses the running cluster (same processes)"
else
    t_fail "a second up reuses the running cluster (same processes)" "rc=$rc: $out"
fi

# ---- a dead component is reported with its log -------------------------------
sched=$(cat "$cdir/run/kube-scheduler.pid")
kill -KILL "$sched"
sleep 0.5
last=$(tail -n 1 "$cdir/log/kube-scheduler.log")
out=$(cl check 2>&1)
rc=$?
if [ $rc -ne 0 ] && grep -q 'kube-scheduler has died' <<<"$out" && grep -qF -- "$last" <<<"$out" &&
    ! grep -qE '(etcd|kube-apiserver|kube-controller-manager) has died' <<<"$out"; then
    t_ok "check reports the dead component, and only it, with the tail of its log"
else
    t_fail "check reports the dead component, and only it, with the tail of its log" "rc=$rc: $out"
fi

# ---- up after a death starts afresh, leaving nothing of the old one -------------
old_pids=$(recorded)
old_data=$(cat "$cdir/run/etcd.data")
if cl up >"$work/up2.log" 2>&1 && grep -q 'starting afresh' "$work/up2.log"; then
    t_ok "up with a dead component starts the cluster afresh"
else
    t_fail "up with a dead component starts the cluster afresh" "$(tail -n 20 "$work/up2.log")"
fi
old_gone() { all_gone $old_pids && [ ! -e "$old_data" ]; }
t_check "no process of the old cluster is left, nor its etcd data" old_gone

# ---- down stops exactly the recorded processes -------------------------------
# A process that looks like a component but is not one of the recorded pids.
bash -c 'exec -a kube-scheduler sleep 600' &
decoy=$!
helpers+=("$decoy")
pids=$(recorded)
# shellcheck disable=SC2086
t_check "the recorded components run before down" all_live $pids
t_check "down succeeds" cl down
# shellcheck disable=SC2086
t_check "down stopped every recorded process" all_gone $pids
t_check "down left no process of this cluster, no state directory, no etcd data" nothing_left
# shellcheck disable=SC2086
t_check "down left other processes alone (a look-alike, the test bed's cluster)" all_live $decoy $testbed_pids
t_check "down with nothing running succeeds" cl down

t_done
