#!/bin/bash
# Benchmark helper (not a test): two builds of mitmtun, A and B, alternate ROUNDS times on one
# topology (the bench_tcp setup); each run prints iperf3's Gbit/s through the appliance for one
# and eight streams, down (server to client) and up. On a shared machine, compare rounds side
# by side, not single runs.
#   tests/bench/ab_bulk.sh A B [ROUNDS, default 3] [seconds per run, default 4] [--set ...]
source "$(dirname "$0")/ab_lib.sh" "$@"
SECS=${SECS:-4}
e2e_topology
ip netns exec "$NS_S" iperf3 -s >"$WORK/iperf3.log" 2>&1 &
PIDS+=($!)
sleep 0.5
gbit() { # iperf3 args
    in_c iperf3 -c 10.99.2.2 -t "$SECS" -J "$@" | python3 -c "
import json, sys
print('%.2f' % (json.load(sys.stdin)['end']['sum_received']['bits_per_second'] / 1e9))"
}
bulk() { # round name
    printf 'round %s %-24s down: 1 stream %s, 8 streams %s; up: 1 stream %s, 8 streams %s Gbit/s\n' \
        "$1" "$2" "$(gbit -R)" "$(gbit -P 8 -R)" "$(gbit)" "$(gbit -P 8)"
}
ab_run bulk
