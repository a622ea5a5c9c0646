#!/usr/bin/env bash
# The container builds, checked without a container engine:
#   - `make images` prints a docker build command for each Dockerfile;
#   - each build stage compiles from exactly the files its Dockerfile copies
#     (and .dockerignore lets through), with hack/deps.sh's build packages;
#   - every library plateop-controller links comes from a package the
#     controller image installs, and those packages exist in Debian bookworm;
#   - hack/bundle.sh makes a plateop-worker that starts through its own loader
#     and C library only, as it must in the older CellProfiler image.
set -uo pipefail
. "$PLATEOP_ROOT/tests/lib.sh"

root=$PLATEOP_ROOT
tmp=$(mktemp -d /tmp/plateop-images.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
# t_none NAME VALUE: passes when VALUE (a list of problems) is empty.
t_none() {
    if [ -z "$2" ]; then t_ok "$1"; else t_fail "$1" "${2# }"; fi
}
version=$(sed -n 's/^#define PLATEOP_VERSION "\(.*\)"$/\1/p' "$root/lib/version.h")

out=$(make -s -C "$root" images 2>&1)
t_check "make images prints the controller's docker build" \
    sh -c 'printf "%s\n" "$1" | grep -qx "docker build -f Dockerfile.controller -t plateop/controller:$2 \."' \
    _ "$out" "$version"
t_check "make images prints the worker's docker build on CellProfiler 4.2.6" \
    sh -c 'printf "%s\n" "$1" | grep -qx "docker build -f Dockerfile.worker --build-arg CELLPROFILER_VERSION=4.2.6 -t plateop/worker:$2 \."' \
    _ "$out" "$version"
out=$(PLATEOP_REGISTRY=registry.example.org/lab CELLPROFILER_VERSION=4.2.8 make -s -C "$root" images 2>&1)
t_check "with a registry it names the images there and prints the pushes" \
    sh -c 'printf "%s\n" "$1" | grep -q "CELLPROFILER_VERSION=4.2.8 -t registry.example.org/lab/plateop/worker:$2" &&
        printf "%s\n" "$1" | grep -qx "docker push registry.example.org/lab/plateop/controller:$2"' \
    _ "$out" "$version"

# Dockerfile instructions with continuation lines joined and comments dropped.
instructions() {
    sed -e '/^[[:space:]]*#/d' "$1" | sed -e ':a' -e '/\\$/N; s/\\\n//; ta'
}
# Source paths of COPY instructions that read the build context.
copies() {
    instructions "$1" | awk '$1 == "COPY" && $2 !~ /^--from/ { for (i = 2; i < NF; i++) print $i }'
}
# Packages of the apt-get install in the stage that starts at FROM number $2 (1-based).
packages() {
    instructions "$1" | awk -v want="$2" '
        $1 == "FROM" { stage++ }
        stage == want && /apt-get install/ {
            on = 0
            for (i = 1; i <= NF; i++) {
                if ($i == "&&") on = 0
                if (on) print $i
                if ($i == "--no-install-recommends") on = 1
            }
        }'
}
# hack/deps.sh's "# build" group.
build_deps() {
    awk '/^    # build$/ { on = 1; next } /^    #/ { on = 0 } on { for (i = 1; i <= NF; i++) print $i }' \
        "$root/hack/deps.sh"
}

for img in controller worker; do
    df="$root/Dockerfile.$img"
    ctx="$tmp/$img"
    mkdir -p "$ctx"
    missing=""
    for src in $(copies "$df"); do
        src=${src%/}
        # .dockerignore is an allow-list: "*" then "!path" lines.
        grep -qx "!$src/\?" "$root/.dockerignore" || missing="$missing $src(.dockerignore)"
        [ -e "$root/$src" ] || missing="$missing $src"
        mkdir -p "$ctx/$(dirname "$src")"
        cp -r "$root/$src" "$ctx/$src"
    done
    t_none "Dockerfile.$img copies existing sources that .dockerignore lets through" "$missing"
    lacking=""
    for p in $(build_deps); do
        packages "$df" 1 | grep -qx "$p" || lacking="$lacking $p"
    done
    t_none "its build stage installs hack/deps.sh's build packages" "$lacking"
    cmd=$(instructions "$df" | sed -n 's/^RUN \(make CFLAGS=-O2 build\/plateop-[a-z]*\).*/\1/p')
    t_check "its build stage compiles from those files alone ($cmd)" \
        sh -c 'cd "$1" && [ -n "$2" ] && $2 >build.log 2>&1 || { tail -n 20 build.log; exit 1; }' _ "$ctx" "$cmd"
done

ctl="$tmp/controller/build/plateop-controller"
runtime=$(packages "$root/Dockerfile.controller" 2)
unlisted=""
for lib in $(readelf -d "$ctl" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    path=$(ldd "$ctl" | awk -v l="$lib" '$1 == l { print $3 }')
    pkg=$(dpkg -S "$(readlink -f "$path")" 2>/dev/null | head -n1 | cut -d: -f1)
    [ -z "$pkg" ] && pkg=$(dpkg -S "$path" 2>/dev/null | head -n1 | cut -d: -f1)
    case "$pkg" in
    libc6) ;;
    "") unlisted="$unlisted $lib(no package)" ;;
    *) printf '%s\n' "$runtime" | grep -qx "$pkg" || unlisted="$unlisted $lib($pkg)" ;;
    esac
done
t_none "each library plateop-controller links comes from a package its image installs" "$unlisted"
t_check "those runtime packages exist in bookworm: $(echo $runtime)" \
    sh -c 'for p; do apt-cache show "$p" >/dev/null 2>&1 || { echo "no package $p"; exit 1; }; done' _ $runtime

bundle="$tmp/opt/plateop"
worker="$tmp/worker/build/plateop-worker"
t_check "hack/bundle.sh bundles plateop-worker with its libraries" \
    "$root/hack/bundle.sh" "$worker" "$bundle"
t_check "the bundled worker's interpreter is its own loader" \
    sh -c 'readelf -l "$1/bin/plateop-worker" | grep -q "interpreter: $1/lib/ld-"' _ "$bundle"
t_check "it runs with an empty environment" \
    sh -c 'env -i "$1/bin/plateop-worker" --version | grep -qx "plateop-worker $2"' _ "$bundle" "$version"
loaded=$(env -i LD_DEBUG=libs "$bundle/bin/plateop-worker" --version 2>&1 | sed -n 's/.*calling init: //p')
t_check "every library it loads, the C library included, comes from the bundle" \
    sh -c '[ -n "$1" ] && printf "%s\n" "$1" | grep -q "^$2/lib/libc.so" && ! printf "%s\n" "$1" | grep -v "^$2/lib/"' \
    _ "$loaded" "$bundle"
t_done
