#!/usr/bin/env bash
# Prints the commands that build (and, with a registry, push) plateop's two
# container images; `make images` runs it. Nothing is built here: run the
# printed commands where a Docker (or compatible) engine is.
#
# Env: PLATEOP_REGISTRY      registry prefix, e.g. registry.example.org/lab
#      CELLPROFILER_VERSION  tag of cellprofiler/cellprofiler the worker is
#                            built on (default 4.2.6)
#      PLATEOP_IMAGE_TAG     tag of both images (default: the release, lib/version.h)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
version=$(sed -n 's/^#define PLATEOP_VERSION "\(.*\)"$/\1/p' "$root/lib/version.h")
[ -n "$version" ] || { echo "images: no PLATEOP_VERSION in lib/version.h" >&2; exit 1; }
tag=${PLATEOP_IMAGE_TAG:-$version}
cp_version=${CELLPROFILER_VERSION:-4.2.6}
prefix=${PLATEOP_REGISTRY:+${PLATEOP_REGISTRY%/}/}plateop
controller="$prefix/controller:$tag"
worker="$prefix/worker:$tag"

cat <<EOF_CMDS
# plateop's container images; run in $root:
docker build -f Dockerfile.controller -t $controller .
docker build -f Dockerfile.worker --build-arg CELLPROFILER_VERSION=$cp_version -t $worker .
EOF_CMDS
if [ -n "${PLATEOP_REGISTRY:-}" ]; then
    cat <<EOF_PUSH
docker push $controller
docker push $worker
# then point the manifests at them: add to manifests/kustomization.yaml
#   images: [{name: plateop/controller, newName: $prefix/controller, newTag: $tag}]
# and set worker.image: $worker in manifests/config.yaml
EOF_PUSH
fi
