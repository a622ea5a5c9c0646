# Benchmark helpers, sourced by tests/bench/bench_*.sh.
#
#   bench_want NAME...      true if any NAME is selected by ONLY (a prefix; empty = all)
#   bench_print NAME VALUE UNIT
#   bench_median V...       the median of the values (numeric, any order)
#   bench_ratio A B         A / B with 3 decimals

bench_want() {
    local n
    for n in "$@"; do
        case "$n" in "${ONLY:-}"*) return 0 ;; esac
    done
    return 1
}

bench_print() {
    bench_want "$1" && echo "BENCH $1 $2 $3"
    return 0
}

bench_median() {
    printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else printf "%.6g\n", (v[NR/2]+v[NR/2+1])/2}'
}

bench_ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN {if (b == 0) print "inf"; else printf "%.3f\n", a / b}'
}
