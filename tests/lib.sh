# Shell test helpers: TAP output that tests/run.sh counts.
#
#   . "$PLATEOP_ROOT/tests/lib.sh"
#   t_ok "name"                      record a pass
#   t_fail "name" "why"              record a failure
#   t_check "name" cmd args...       pass if the command succeeds
#   t_eventually SECS "name" cmd...  pass once the command succeeds within SECS
#   t_done                           print the plan; exit status 1 if any failed

t_n=0
t_failed=0

t_ok() {
    t_n=$((t_n + 1))
    echo "ok $t_n - $1"
}

t_fail() {
    t_n=$((t_n + 1))
    t_failed=$((t_failed + 1))
    echo "not ok $t_n - $1"
    [ -n "${2:-}" ] && printf '%s\n' "$2" | sed 's/^/#   /'
    return 0
}

t_check() {
    local name=$1 out
    shift
    if out=$("$@" 2>&1); then
        t_ok "$name"
    else
        t_fail "$name" "$(printf '%s\n' "$out" | tail -n 15)"
    fi
}

t_eventually() {
    local secs=$1 name=$2 deadline out
    shift 2
    deadline=$(( $(date +%s) + secs ))
    while :; do
        if out=$("$@" 2>&1); then
            t_ok "$name"
            return 0
        fi
        if [ "$(date +%s)" -ge "$deadline" ]; then
            t_fail "$name" "still failing after ${secs}s: $(printf '%s\n' "$out" | tail -n 10)"
            return 1
        fi
        sleep 0.5
    done
}

t_done() {
    echo "1..$t_n"
    [ "$t_failed" -eq 0 ]
}
