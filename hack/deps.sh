#!/usr/bin/env bash
# Installs every Debian package that plateop's build, tests, benchmarks and
# demo need. Idempotent and quiet when everything is present: apt-get runs
# (update once, then install) only for what is missing.
set -euo pipefail

pkgs=(
    # build
    gcc make pkg-config
    libcurl4-openssl-dev libjansson-dev libyaml-dev libpq-dev libssl-dev
    libwebsockets-dev zlib1g-dev libcmocka-dev
    # test bed: Kubernetes control plane built from Debian's source package
    golang-go rsync golang-github-modern-go-reflect2-dev dpkg-dev
    etcd-server openssl curl ca-certificates
    # test bed: ImageDB
    postgresql postgresql-client
    # node agent, tests and benchmarks (patchelf: hack/bundle.sh, checked by test_images)
    util-linux procps iproute2 time jq patchelf
    # benchmarks: the CSV reader measured against Debian's libcsv
    libcsv-dev
)
command -v kubectl >/dev/null || pkgs+=(kubernetes-client)

missing=()
for p in "${pkgs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing Debian packages: ${missing[*]}" >&2
    echo "deps: run as root (or: sudo apt-get install ${missing[*]})" >&2
    exit 1
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
# policy-rc.d keeps package installs from starting system services
# (etcd, postgresql): the test bed starts its own on private ports.
policy=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod +x "$policy"
    own_policy=1
fi
rc=0
{ apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1 || rc=$?
[ $own_policy -eq 1 ] && rm -f "$policy"
if [ $rc -ne 0 ]; then
    tail -n 20 "$log" >&2
    echo "deps: apt-get failed installing: ${missing[*]} (log: $log)" >&2
    exit 1
fi
rm -f "$log"
