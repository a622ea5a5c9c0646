#!/usr/bin/env bash
# `make demo`: plateop on a local cluster.
#
#   hack/demo.sh up     start the local control plane and ImageDB, print how to reach them
#   hack/demo.sh down   stop everything the demo started
#
# State lives in $PLATEOP_DEMO_DIR (default /tmp/plateop-demo).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
demo=${PLATEOP_DEMO_DIR:-/tmp/plateop-demo}
export PLATEOP_CLUSTER_DIR="$demo/cluster" PLATEOP_IMAGEDB_DIR="$demo/imagedb"

case "${1:-}" in
up)
    mkdir -p "$demo"
    chmod 755 "$demo"
    "$here/cluster.sh" up
    "$here/imagedb.sh" up
    cat <<EOF

The local control plane and ImageDB are running.
  Kubernetes:  export KUBECONFIG=$PLATEOP_CLUSTER_DIR/admin.kubeconfig; kubectl get ns
  ImageDB:     eval "\$(PLATEOP_IMAGEDB_DIR=$PLATEOP_IMAGEDB_DIR $here/imagedb.sh env)"; psql -c '\dt'
  Stop:        make demo-down
EOF
    ;;
down)
    "$here/imagedb.sh" down
    "$here/cluster.sh" down
    rm -rf "$demo"
    ;;
*) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
