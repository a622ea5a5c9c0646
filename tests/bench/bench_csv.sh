#!/usr/bin/env bash
# CSV reader benchmark (tests/bench/bench_csv.c does the work): lib/csv against
# Debian's libcsv on the same CellProfiler-shaped table (303 columns, one quoted
# field per row) in the page cache, parse only, 1 MiB reads, one core; the parse's
# CPU time, so that other load on the machine skews the figures less.
#
#   BENCH csv_read_gbps <GB/s> GB/s             lib/csv, fields decoded and NUL-terminated
#   BENCH csv_read_libcsv_gbps <GB/s> GB/s      libcsv with counting callbacks (CSV_STRICT,
#                                               CSV_APPEND_NULL); only where libcsv-dev is
#                                               installed, else a comment line says so
#   BENCH csv_read_ratio_vs_libcsv <ratio> x    lib/csv over libcsv, same run
#
# Figures are medians of CSV_BENCH_RUNS (5) runs of each reader, taken in turn.
# CSV_BENCH_MB (256): the table's size. GB is 10^9 bytes.
set -euo pipefail

. "$PLATEOP_ROOT/tests/bench/lib.sh"
bench_want csv_read_gbps csv_read_libcsv_gbps csv_read_ratio_vs_libcsv || exit 0

runs=${CSV_BENCH_RUNS:-5}
mb=${CSV_BENCH_MB:-256}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/plateop-bench-csv.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# Private copy: a rebuild of the tree while this runs must not swap the binary under it.
cp "$PLATEOP_BUILD/tests/bench/bench_csv" "$tmp/bench_csv"

# libcsv's <csv.h> would clash with lib/csv.h, so its reader is built here, without -Ilib.
libcsv=
if [ ! -f /usr/include/csv.h ]; then
    echo "# libcsv not measured: libcsv-dev is not installed (apt-get install libcsv-dev)" >&2
elif ! ${CC:-cc} -O2 -DBENCH_LIBCSV -o "$tmp/bench_csv_libcsv" "$PLATEOP_ROOT/tests/bench/bench_csv.c" \
        -lcsv 2>"$tmp/cc.log"; then
    echo "# libcsv not measured: its reader did not build: $(head -c 300 "$tmp/cc.log")" >&2
else
    libcsv=$tmp/bench_csv_libcsv
fi

"$tmp/bench_csv" gen "$tmp/table.csv" "$mb"
cat "$tmp/table.csv" > /dev/null    # into the page cache

# Prints "GB/s records" of one parse of the table with reader $1.
gbps_once() {
    "$1" read "$tmp/table.csv" | awk '{printf "%.3f %s\n", $2 / $1 / 1e9, $3}'
}

ours=() theirs=()
for ((r = 0; r < runs; r++)); do
    read -r g recs < <(gbps_once "$tmp/bench_csv")
    ours+=("$g")
    if [ -n "$libcsv" ]; then
        read -r g lrecs < <(gbps_once "$libcsv")
        # Both must have seen the same table, or the comparison means nothing.
        [ "$lrecs" = "$recs" ] || { echo "bench_csv: libcsv saw $lrecs records, lib/csv $recs" >&2; exit 1; }
        theirs+=("$g")
    fi
done
echo "# $(du -m --apparent-size "$tmp/table.csv" | cut -f1) MB, $recs records; lib/csv runs (GB/s): ${ours[*]}${libcsv:+; libcsv runs (GB/s): ${theirs[*]}}" >&2
o=$(bench_median "${ours[@]}")
bench_print csv_read_gbps "$o" GB/s
if [ -n "$libcsv" ]; then
    t=$(bench_median "${theirs[@]}")
    bench_print csv_read_libcsv_gbps "$t" GB/s
    bench_print csv_read_ratio_vs_libcsv "$(bench_ratio "$o" "$t")" x
fi
