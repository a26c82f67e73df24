#!/bin/bash
# Benchmark helper (not a test): two builds of mitmtun, A and B, alternate ROUNDS times on one
# topology (the bench_http setup: wrk -t2 -c50, a new HTTPS connection per request, 1 KiB
# responses from nginx); each run prints connections/s and the CPU per connection of the
# appliance (with its workers) and of wrk. On a shared machine, compare rounds side by side.
#   [URL=http://10.99.2.2/1k.txt] tests/bench/ab_newconn.sh A B [ROUNDS, default 3]
#       [seconds per run, default 6] [--set ...]
# Needs: apt-get install wrk
source "$(dirname "$0")/ab_lib.sh" "$@"
ab_https_setup
URL=${URL:-https://10.99.2.2/1k.txt} # plain HTTP to port 80 works too
newconn() { # round name
    local t0 t1 out
    in_c wrk -t2 -c50 -d1s -H "Connection: close" "$URL" >/dev/null # warm-up
    read -r t0 _ <<<"$(ab_ticks $APP_PID)"
    out=$( { TIMEFORMAT='WRK %U %S'; time in_c wrk -t2 -c50 -d"${SECS}s" -H "Connection: close" \
        "$URL"; } 2>&1)
    read -r t1 _ <<<"$(ab_ticks $APP_PID)"
    echo "$out" | python3 -c "
import re, sys
out = sys.stdin.read()
rate = float(re.search(r'Requests/sec:\s*([\d.]+)', out).group(1))
wrk = sum(map(float, re.search(r'WRK ([\d.]+) ([\d.]+)', out).groups()))
n = rate * $SECS
print('round $1 %-24s %5.0f conn/s  appliance %5.0f us/conn  wrk %5.0f us/conn' % ('$2', rate,
      ($t1 - $t0) / $hz / n * 1e6, wrk / n * 1e6))"
}
ab_run newconn
