#!/bin/bash
# Benchmark helper (not a test): two builds of mitmtun, A and B, alternate ROUNDS times on one
# topology (the bench_http setup: wrk -t2 -c50, keep-alive HTTPS, 1 KiB responses from nginx);
# each run prints requests/s and the appliance's CPU per request (all, and user), read from
# /proc/PID/stat. On a shared machine, compare rounds side by side, not single runs.
#   tests/bench/ab_keepalive.sh A B [ROUNDS, default 3] [seconds per run, default 6] [--set ...]
# Needs: apt-get install wrk
source "$(dirname "$0")/ab_lib.sh" "$@"
ab_https_setup
keepalive() { # round name
    local t0 u0 t1 u1 rps
    in_c wrk -t2 -c50 -d1s https://10.99.2.2/1k.txt >/dev/null # warm-up
    read -r t0 u0 <<<"$(ab_ticks $APP_PID)"
    rps=$(in_c wrk -t2 -c50 -d"${SECS}s" https://10.99.2.2/1k.txt |
        awk '/^Requests\/sec/ {printf "%.0f", $2}')
    read -r t1 u1 <<<"$(ab_ticks $APP_PID)"
    python3 -c "
rps, n = $rps, $rps * $SECS
print('round $1 %-24s %6d req/s %5.1f us/req (user %4.1f)' % ('$2', rps,
      ($t1 - $t0) / $hz / n * 1e6, ($u1 - $u0) / $hz / n * 1e6))"
}
ab_run keepalive
