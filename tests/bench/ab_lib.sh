# Shared by the ab_*.sh benchmark helpers: builds A and B of mitmtun alternate ROUNDS times on
# one topology, so that a shared, noisy machine affects both alike.
#   source "$(dirname "$0")/ab_lib.sh" "$@"   # A B [ROUNDS] [SECS] [--set ...]
#   AB_SETS=(--set ...)                       # the script's own settings, before the user's
#   ab_run measure                            # measure ROUND NAME, with the appliance running
A=$(readlink -f "${1:?usage: $0 A B [ROUNDS] [SECS] [--set ...]}")
B=$(readlink -f "${2:?usage: $0 A B [ROUNDS] [SECS] [--set ...]}")
ROUNDS=${3:-3}
SECS=${4:-}
shift 4 2>/dev/null || shift $#
AB_USER_SETS=("$@")
AB_SETS=()
source "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib.sh" "$A"

# The bench_http topology: wrk in the client namespace against nginx's HTTPS (needs wrk); runs
# of SECS seconds (default 6); hz, the clock ticks per second.
ab_https_setup() {
    SECS=${SECS:-6}
    command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)"; exit 1; }
    e2e_topology
    e2e_bench_server
    AB_SETS=(--set tls.upstream_ca_file="$WORK/pki/uca.crt")
    hz=$(getconf CLK_TCK)
}

# CPU clock ticks of a process and its children (the appliance's workers): all, then user.
ab_ticks() { for p in "$1" $(pgrep -P "$1"); do cat /proc/$p/stat; done | awk '{a += $14 + $15; u += $14} END {print a, u}'; }

ab_run() { # measure
    local round bin
    for round in $(seq "$ROUNDS"); do
        for bin in "$A" "$B"; do
            MITMTUN=$bin
            e2e_start_appliance "${AB_SETS[@]}" "${AB_USER_SETS[@]}" >/dev/null
            "$1" "$round" "$(basename "$bin")"
            e2e_stop_appliance >/dev/null
        done
    done
}
