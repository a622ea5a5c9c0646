# The integration test bed, sourced by tests/run.sh: a private control plane
# (hack/cluster.sh), a private ImageDB (hack/imagedb.sh) and, once built, the
# node agent that runs pods as local processes (hack/nodeagent.sh). Everything
# lives in one temporary directory and is torn down by testbed_down, whatever
# the tests did.

testbed_up() {
    TESTBED_DIR=$(mktemp -d /tmp/plateop-testbed.XXXXXX) || return 1
    # PostgreSQL runs as its own account and must reach its directory.
    chmod 755 "$TESTBED_DIR"
    export PLATEOP_CLUSTER_DIR="$TESTBED_DIR/cluster"
    export PLATEOP_IMAGEDB_DIR="$TESTBED_DIR/imagedb"
    export PLATEOP_NODEAGENT_DIR="$TESTBED_DIR/nodeagent"
    echo "# test bed: starting in $TESTBED_DIR"
    # A loaded machine can make a component miss its start-up deadline: one more try.
    if ! "$PLATEOP_ROOT/hack/cluster.sh" up >&2; then
        echo "# test bed: the control plane did not start; trying once more"
        "$PLATEOP_ROOT/hack/cluster.sh" down >&2
        "$PLATEOP_ROOT/hack/cluster.sh" up >&2 || return 1
    fi
    eval "$("$PLATEOP_ROOT/hack/cluster.sh" env)"
    "$PLATEOP_ROOT/hack/imagedb.sh" up >&2 || return 1
    eval "$("$PLATEOP_ROOT/hack/imagedb.sh" env)"
    if [ -x "$PLATEOP_ROOT/hack/nodeagent.sh" ] && [ -x "$PLATEOP_BUILD/plateop-nodeagent" ]; then
        "$PLATEOP_ROOT/hack/nodeagent.sh" start >&2 || return 1
        eval "$("$PLATEOP_ROOT/hack/nodeagent.sh" env)"
    fi
    echo "# test bed: up"
}

testbed_down() {
    [ -n "${TESTBED_DIR:-}" ] && [ -d "$TESTBED_DIR" ] || return 0
    # A component that died during the tests is worth seeing before it goes.
    "$PLATEOP_ROOT/hack/cluster.sh" check >&2 || echo "# test bed: a control-plane component died during the tests (see above)"
    if [ -x "$PLATEOP_ROOT/hack/nodeagent.sh" ]; then
        "$PLATEOP_ROOT/hack/nodeagent.sh" stop >&2 || true
    fi
    "$PLATEOP_ROOT/hack/imagedb.sh" down >&2 || true
    "$PLATEOP_ROOT/hack/cluster.sh" down >&2 || true
    rm -rf "$TESTBED_DIR"
    TESTBED_DIR=
}
