#!/bin/bash
# Benchmark helper (not a test): two builds of mitmtun, A and B, alternate ROUNDS times on one
# topology (the bench_tcp setup); each run prints iperf3's Gbit/s through the appliance for one
# and eight streams, down (server to client) and up. On a shared machine, compare rounds side
# by side, not single runs.
#   tests/bench/ab_bulk.sh A B [ROUNDS, default 3] [seconds per run, default 4] [--set ...]
A=$(readlink -f "${1:?usage: $0 A B [ROUNDS] [SECS] [--set ...]}")
B=$(readlink -f "${2:?usage: $0 A B [ROUNDS] [SECS] [--set ...]}")
ROUNDS=${3:-3}
SECS=${4:-4}
shift 4 2>/dev/null || shift $#
source "$(dirname "$0")/../e2e/lib.sh" "$A"
e2e_topology
ip netns exec "$NS_S" iperf3 -s >"$WORK/iperf3.log" 2>&1 &
PIDS+=($!)
sleep 0.5
gbit() { # iperf3 args
    in_c iperf3 -c 10.99.2.2 -t "$SECS" -J "$@" | python3 -c "
import json, sys
print('%.2f' % (json.load(sys.stdin)['end']['sum_received']['bits_per_second'] / 1e9))"
}
for round in $(seq "$ROUNDS"); do
    for bin in "$A" "$B"; do
        MITMTUN=$bin
        e2e_start_appliance "$@" >/dev/null
        printf 'round %s %-24s down: 1 stream %s, 8 streams %s; up: 1 stream %s, 8 streams %s Gbit/s\n' \
            "$round" "$(basename "$bin")" "$(gbit -R)" "$(gbit -P 8 -R)" "$(gbit)" "$(gbit -P 8)"
        e2e_stop_appliance >/dev/null
    done
done
