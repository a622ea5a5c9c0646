# shellcheck shell=bash
# Free TCP ports on 127.0.0.1 for the local test bed, sourced by
# hack/cluster.sh and hack/imagedb.sh (which define say and die).
#
#   pick_port VAR   sets VAR to a port nothing listens on and that this shell
#                   has not handed out before; dies when none is found. VAR must
#                   not be one of pick_port's own locals (lo, hi, p, k, ...).
#
# pick_port runs in the calling shell, never in $(...): the ports it hands out
# are remembered there, so ports picked before anything binds never repeat.
#
# Env: PLATEOP_PORT_RANGE  LOW-HIGH (default 10000-31999: below the kernel's
#      ephemeral range, 32768-60999, where an outgoing connection's local port
#      could take one between the check and the bind).

ports_handed_out=()

pick_port() {
    local range=${PLATEOP_PORT_RANGE:-10000-31999} lo hi span start k p u taken
    [[ "$range" =~ ^([0-9]+)-([0-9]+)$ ]] && lo=${BASH_REMATCH[1]} && hi=${BASH_REMATCH[2]} &&
        [ "$lo" -ge 1 ] && [ "$hi" -le 65535 ] && [ "$lo" -le "$hi" ] ||
        die "PLATEOP_PORT_RANGE=$range is not LOW-HIGH within 1-65535"
    span=$((hi - lo + 1))
    # From a random start, consecutive candidates: a small range is searched
    # whole, so "none free" is never said while one is.
    start=$(( (RANDOM * 32768 + RANDOM) % span ))
    for ((k = 0; k < span && k < 200; k++)); do
        p=$((lo + (start + k) % span))
        taken=0
        for u in "${ports_handed_out[@]}"; do [ "$u" = "$p" ] && taken=1; done
        [ $taken -eq 1 ] && continue
        [ -z "$(ss -Htln "sport = :$p" 2>/dev/null)" ] || continue
        ports_handed_out+=("$p")
        printf -v "$1" '%s' "$p"
        return 0
    done
    die "no free TCP port on 127.0.0.1 in $lo-$hi (tried $k): stop what holds them, or set PLATEOP_PORT_RANGE"
}
