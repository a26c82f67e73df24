#!/bin/bash
# iperf3 through the appliance, both directions, several short runs: each completes on time
# and moves data. (A quiet control connection beside a bulk one once exposed a stall.)
source "$(dirname "$0")/lib.sh"
e2e_topology
ip netns exec "$NS_S" iperf3 -s >"$WORK/iperf3.log" 2>&1 &
PIDS+=($!)
e2e_start_appliance
sleep 0.3

run() { # iperf3 args
    local out mbps
    out=$(timeout 10 ip netns exec "$NS_C" iperf3 -c 10.99.2.2 -t 1 -J "$@") || { echo "iperf3 did not finish in 10 s"; return 1; }
    mbps=$(echo "$out" | python3 -c "import json,sys; print(int(json.load(sys.stdin)['end']['sum_received']['bits_per_second'] / 1e6))")
    echo "$mbps Mbit/s"
    [ "$mbps" -gt 100 ]
}
for i in 1 2 3 4 5 6; do
    check "download run $i completes" run -R
    check "upload run $i completes" run
done
check "no connection left open" e2e_wait_tcp_drained 10
e2e_stop_appliance
e2e_pass
