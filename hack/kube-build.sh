#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager and kube-scheduler from
# Debian's kubernetes source package, once per machine.
#
# Why from source: Debian ships no server binaries for Kubernetes, but its
# archive carries the 1.20 source package, which builds with Debian's Go.
# The binaries are cached outside the checkout, keyed by the version of the
# source they were built from (cache/kube-VERSION/bin), so a rebuild happens
# only when the cache is removed or Debian's source moves to another version.
# Concurrent first runs are serialised by a lock: one builds, the others wait
# and then use its binaries.
#
# Usage: hack/kube-build.sh        prints the directory holding the binaries
# Env:   PLATEOP_CACHE (default /var/cache/plateop)
set -euo pipefail

cache=${PLATEOP_CACHE:-/var/cache/plateop}
work="$cache/src"
bins=(kube-apiserver kube-controller-manager kube-scheduler)

die() { echo "kube-build: $*" >&2; exit 1; }

# cached: the newest fetched source tree (srcdir) names a version whose
# binaries (bindir) are all there. Sets srcdir, version and bindir.
# kubernetes-1.20.5+really1.20.2 is Debian's name for a tree of 1.20.2.
cached() {
    local b
    [ -d "$work" ] || return 1
    srcdir=$(find "$work" -maxdepth 1 -type d -name 'kubernetes-1.20*' 2>/dev/null | sort -V | tail -n1)
    [ -n "$srcdir" ] || return 1
    version=${srcdir##*/kubernetes-}
    version=${version##*+really}
    version=${version%%[+~]*}
    [[ "$version" =~ ^1\.20\.[0-9]+$ ]] || die "cannot tell the Kubernetes version of $srcdir"
    bindir="$cache/kube-$version/bin"
    for b in "${bins[@]}"; do [ -x "$bindir/$b" ] || return 1; done
}

if cached; then
    echo "$bindir"
    exit 0
fi

mkdir -p "$work" || die "cannot create $work (run as root, or set PLATEOP_CACHE)"
exec 9>"$cache/kube-build.lock"
if ! flock -n 9; then
    echo "kube-build: another build is running in $cache; waiting for it" >&2
    flock 9
fi
# The build we waited for may have made what we need.
if cached; then
    echo "$bindir"
    exit 0
fi

command -v go >/dev/null || die "go not found: run 'make deps' (installs golang-go)"
command -v rsync >/dev/null || die "rsync not found: run 'make deps'"
reflect2=/usr/share/gocode/src/github.com/modern-go/reflect2
[ -d "$reflect2" ] || die "$reflect2 missing: run 'make deps' (installs golang-github-modern-go-reflect2-dev)"

# deb-src entry for the archive and suite this machine already uses.
srclist=/etc/apt/sources.list.d/plateop-src.sources
if ! apt-cache showsrc kubernetes 2>/dev/null | grep -q '^Package: kubernetes'; then
    uri=$(grep -h -m1 '^URIs:' /etc/apt/sources.list.d/debian.sources 2>/dev/null | awk '{print $2}')
    suite=$(. /etc/os-release && echo "$VERSION_CODENAME")
    [ -n "$uri" ] || uri=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list 2>/dev/null)
    [ -n "$uri" ] || die "cannot find this machine's Debian archive in /etc/apt"
    cat > "$srclist" <<SRC
Types: deb-src
URIs: $uri
Suites: $suite
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    apt-get update -qq || die "apt-get update failed after adding $srclist"
fi

if [ -z "$srcdir" ]; then
    echo "kube-build: fetching the kubernetes source package into $work" >&2
    (cd "$work" && apt-get source -qq kubernetes >"$work/source.log" 2>&1) ||
        die "apt-get source kubernetes failed; see $work/source.log"
    if cached; then
        echo "$bindir"
        exit 0
    fi
    [ -n "$srcdir" ] || die "apt-get source produced no kubernetes-1.20* directory in $work"
fi

# The vendored reflect2 1.0.1 crashes (SIGSEGV in mapiterinit) under Go >= 1.18.
vend="$srcdir/vendor/github.com/modern-go/reflect2"
if [ ! -f "$vend/go_above_118.go" ]; then
    rm -rf "$vend"
    mkdir -p "$vend"
    cp -r "$reflect2"/. "$vend"/
fi

echo "kube-build: building ${bins[*]} (several minutes, once per machine); log: $work/build.log" >&2
(
    cd "$srcdir"
    export GOPATH="$srcdir/.go" CGO_ENABLED=0 HOME="$work/home" GOFLAGS=-mod=vendor
    export KUBE_GIT_VERSION="v$version" KUBE_GIT_TREE_STATE=clean
    mkdir -p .go/src/k8s.io "$HOME"
    [ -L .go/src/k8s.io/kubernetes ] || ln -s ../../.. .go/src/k8s.io/kubernetes
    make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler"
) >"$work/build.log" 2>&1 || { tail -n 30 "$work/build.log" >&2; die "build failed; full log: $work/build.log"; }

mkdir -p "$bindir.tmp"
for b in "${bins[@]}"; do
    cp "$srcdir/_output/bin/$b" "$bindir.tmp/" || die "build produced no $b"
done
rm -rf "$bindir"
mv "$bindir.tmp" "$bindir"
echo "$bindir"
