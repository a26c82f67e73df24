#!/bin/bash
# Benchmark helper (not a test): two builds of mitmtun, A and B, alternate ROUNDS times on one
# topology (the bench_http setup: wrk -t2 -c50, keep-alive HTTPS, 1 KiB responses from nginx);
# each run prints requests/s and the appliance's CPU per request (all, and user), read from
# /proc/PID/stat. On a shared machine, compare rounds side by side, not single runs.
#   tests/bench/ab_keepalive.sh A B [ROUNDS, default 3] [seconds per run, default 6] [--set ...]
# Needs: apt-get install wrk
A=$(readlink -f "${1:?usage: $0 A B [ROUNDS] [SECS] [--set ...]}")
B=$(readlink -f "${2:?usage: $0 A B [ROUNDS] [SECS] [--set ...]}")
ROUNDS=${3:-3}
SECS=${4:-6}
shift 4 2>/dev/null || shift $#
source "$(dirname "$0")/../e2e/lib.sh" "$A"
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)"; exit 1; }
e2e_topology
e2e_bench_server
P=$WORK/pki
ticks() { awk '{print $14 + $15, $14}' /proc/$1/stat; } # all, user (clock ticks)
hz=$(getconf CLK_TCK)
for round in $(seq "$ROUNDS"); do
    for bin in "$A" "$B"; do
        MITMTUN=$bin
        e2e_start_appliance --set tls.upstream_ca_file="$P/uca.crt" "$@" >/dev/null
        in_c wrk -t2 -c50 -d1s https://10.99.2.2/1k.txt >/dev/null # warm-up
        read -r t0 u0 <<<"$(ticks $APP_PID)"
        rps=$(in_c wrk -t2 -c50 -d"${SECS}s" https://10.99.2.2/1k.txt |
            awk '/^Requests\/sec/ {printf "%.0f", $2}')
        read -r t1 u1 <<<"$(ticks $APP_PID)"
        python3 -c "
rps, n = $rps, $rps * $SECS
print('round $round %-24s %6d req/s %5.1f us/req (user %4.1f)' % ('$(basename "$bin")', rps,
      ($t1 - $t0) / $hz / n * 1e6, ($u1 - $u0) / $hz / n * 1e6))"
        e2e_stop_appliance >/dev/null
    done
done
