#!/usr/bin/env bash
# Runs the benchmarks: every tests/bench/bench_*.sh, each printing
# `BENCH <name> <value> <unit>` lines. `tests/bench/run.sh PREFIX` (make bench
# ONLY=PREFIX) passes ONLY=PREFIX to every script, which prints only figures
# whose names start with it and skips set-up it does not need.
set -uo pipefail

here=$(cd "$(dirname "$0")/../.." && pwd)
export PLATEOP_ROOT="$here" PLATEOP_BUILD="${PLATEOP_BUILD:-$here/build}"
export ONLY="${1:-}"
rc=0
for script in "$here"/tests/bench/bench_*.sh; do
    [ -x "$script" ] || continue
    "$script" || { echo "# $(basename "$script") failed" >&2; rc=1; }
done
exit $rc
