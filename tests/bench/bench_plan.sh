#!/usr/bin/env bash
# Planner benchmarks (tests/bench/bench_plan.c does the work):
#
#   BENCH plan_1m_rows_s <s> s          plan a 1536-well plate of 1,036,800 image rows read
#                                       from ImageDB, end to end (connect, read the
#                                       acquisition and channel map, stream, filter, plan,
#                                       hash; batches of one well); goal <= 2 s
#   BENCH plan_1m_rss <MB> MB           peak RSS of that process; goal <= 64 MB
#   BENCH plan_1m_rows <n> rows         the image rows it read
#   BENCH plan_only_100k_s <s> s        the planner alone on 100,000 rows in memory
#   BENCH plan_only_1m_s <s> s          ... on 1,000,000 rows (same well shape, 10x the wells)
#   BENCH plan_only_ratio_1m_vs_100k <r> x   about 10 when the planner is O(n)
#   BENCH loaddata_384_wells_s <s> s    plan a 384-well plate (9 sites, 5 channels) in memory
#                                       and render all 384 LoadData CSVs into buffers
#   BENCH loaddata_384_wells_bytes <n> bytes   the CSVs' total size
#
# Figures are medians: PLAN_BENCH_RUNS (5) processes for the database figures,
# 15 runs inside one process for the in-memory ones.
#
# The database is the one PGHOST (with PGPORT, PGUSER, PGDATABASE, PGPASSWORD or
# PLATEOP_IMAGEDB_URI) names; the benchmark adds its own acquisition and removes
# it at the end. Without PGHOST it starts its own PostgreSQL with
# hack/imagedb.sh in a temporary directory and stops it at the end.
set -euo pipefail

. "$PLATEOP_ROOT/tests/bench/lib.sh"
bench_want plan_1m_rows_s plan_1m_rss plan_1m_rows plan_only_100k_s plan_only_1m_s \
    plan_only_ratio_1m_vs_100k loaddata_384_wells_s loaddata_384_wells_bytes || exit 0

runs=${PLAN_BENCH_RUNS:-5}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/plateop-bench-plan.XXXXXX")
# Private copy: a rebuild of the tree while this runs must not swap the binary under it.
cp "$PLATEOP_BUILD/tests/bench/bench_plan" "$tmp/bench_plan"
bin=$tmp/bench_plan
own_db=0
acq=
map=

cleanup() {
    if [ -n "$acq" ]; then "$bin" cleanup "$acq" "$map" || true; fi
    if [ "$own_db" -eq 1 ]; then "$PLATEOP_ROOT/hack/imagedb.sh" down >/dev/null 2>&1 || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT

if bench_want plan_only_100k_s plan_only_1m_s plan_only_ratio_1m_vs_100k; then
    read -r small _ < <("$bin" only 100000 15)
    read -r large _ < <("$bin" only 1000000 15)
    bench_print plan_only_100k_s "$small" s
    bench_print plan_only_1m_s "$large" s
    bench_print plan_only_ratio_1m_vs_100k "$(bench_ratio "$large" "$small")" x
fi

if bench_want loaddata_384_wells_s loaddata_384_wells_bytes; then
    read -r secs bytes < <("$bin" loaddata 15)
    bench_print loaddata_384_wells_s "$secs" s
    bench_print loaddata_384_wells_bytes "$bytes" bytes
fi

bench_want plan_1m_rows_s plan_1m_rss plan_1m_rows || exit 0

if [ -z "${PGHOST:-}" ]; then
    # PostgreSQL runs as its own account and must reach its directory.
    chmod 755 "$tmp"
    export PLATEOP_IMAGEDB_DIR=$tmp/imagedb
    own_db=1
    "$PLATEOP_ROOT/hack/imagedb.sh" up >/dev/null 2>"$tmp/imagedb.log" || { cat "$tmp/imagedb.log" >&2; exit 1; }
    eval "$("$PLATEOP_ROOT/hack/imagedb.sh" env)"
fi

# 1536 wells x 9 sites x 15 z planes x 5 channels = 1,036,800 rows, one timepoint.
read -r acq map rows < <("$bin" setup 1536 9 15 5)
[ -n "${rows:-}" ] || { echo "bench_plan: setting up the plate failed" >&2; exit 1; }
times=()
rss=()
for ((i = 0; i < runs; i++)); do
    read -r t kb batches sets read_rows < <("$bin" db "$acq")
    [ "$read_rows" = "$rows" ] || { echo "bench_plan: read $read_rows rows of $rows" >&2; exit 1; }
    times+=("$t")
    rss+=("$(awk -v k="$kb" 'BEGIN {printf "%.1f", k / 1024}')")
done
bench_print plan_1m_rows_s "$(bench_median "${times[@]}")" s
bench_print plan_1m_rss "$(bench_median "${rss[@]}")" MB
bench_print plan_1m_rows "$rows" rows
echo "# plan_1m: $batches batches, $sets image sets; runs: ${times[*]} s" >&2
