#!/usr/bin/env bash
# From an analysis the pipeline GUI inserts into ImageDB to its first batch Job:
#
#   BENCH imagedb_to_job_p50 <s> s    median over the inserts
#   BENCH imagedb_to_job_p99 <s> s    99th percentile (nearest rank); goal <= 1 s,
#                                     against the old system's 15 s poll
#
# Each sample inserts one analysis (an image_analyses row and one
# image_sub_analyses row, in one transaction, as the GUI does) while the
# controller runs, and measures from just before the insert to the moment a
# watch of Jobs (tests/tools/watch_events, started before the controller)
# sees the analysis's first batch Job ADDED: the Job exists, not merely
# about to be requested. Samples run one after another, so each is a cold
# path: NOTIFY, row read, Analysis create, watch, plan from ImageDB,
# ConfigMap and Job creates, and the Job's event back to a watcher. Uses the test bed in the environment (KUBECONFIG, PG*), else
# starts a private one (tests/testbed.sh) and stops it afterwards.
#
# Knobs: IMAGEDB_BENCH_INSERTS (20).
set -uo pipefail

. "$PLATEOP_ROOT/tests/bench/lib.sh"
bench_want imagedb_to_job_p50 imagedb_to_job_p99 || exit 0
. "$PLATEOP_ROOT/tests/integration/ctl_lib.sh"
. "$PLATEOP_ROOT/tests/integration/imagedb_lib.sh"

inserts=${IMAGEDB_BENCH_INSERTS:-20}
own_bed=0
if [ -z "${KUBECONFIG:-}" ] || [ -z "${PGHOST:-}${PLATEOP_IMAGEDB_URI:-}" ]; then
    . "$PLATEOP_ROOT/tests/testbed.sh"
    testbed_up >&2 || exit 1
    own_bed=1
fi

ctl_setup bench-imagedb
acq=$(ctl_plate --wells 2 --sites 1)
finish() {
    ctl_stop
    idb_cleanup "$acq"
    ctl_cleanup
    [ $own_bed -eq 0 ] || testbed_down >&2
}
trap finish EXIT
# No window: earlier samples' Jobs must not hold back later ones.
ctl_config "window: 0" "imagedb: {namespace: $CTL_NS}"
ctl_watch jobs
sleep 1
ctl_start
# The first sample starts once the controller has taken the lead.
until grep -q '"imagedb sync: leading' "$CTL_DIR/controller.log"; do
    kill -0 "$CTL_PID" 2>/dev/null || { echo "# controller exited: $(tail -n 5 "$CTL_DIR/controller.log")" >&2; exit 1; }
    sleep 0.1
done

samples=()
for ((i = 0; i < inserts; i++)); do
    t0=$(idb_now_ms)
    read -r aid sub <<<"$(idb_submit "$acq" "$(idb_meta '"batch_size": 1')")"
    if ! idb_wait_job_added "ia-$aid-$sub" 30; then
        echo "# sample $i: no batch Job ADDED for ia-$aid-$sub within 30 s" >&2
        exit 1
    fi
    samples+=("$(awk -v ms=$(( $(idb_job_added_ms "ia-$aid-$sub") - t0 )) \
        'BEGIN { printf "%.3f\n", ms / 1000 }')")
done
echo "# imagedb_to_job samples (s): ${samples[*]}" >&2

# Nearest-rank percentile of the samples.
percentile() {
    printf '%s\n' "${samples[@]}" | sort -g |
        awk -v p="$1" '{ v[NR] = $1 } END { r = int(p * NR); if (r < p * NR) r++; if (r < 1) r = 1; print v[r] }'
}
bench_print imagedb_to_job_p50 "$(bench_median "${samples[@]}")" s
bench_print imagedb_to_job_p99 "$(percentile 0.99)" s
