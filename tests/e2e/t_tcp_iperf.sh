#!/bin/bash
# iperf3 through the appliance, both directions, several short runs: each completes on time
# and moves data. (A quiet control connection beside a bulk one once exposed a stall.)
# [tun] steer: a download spreads the TUN's kernel work to the other CPUs (RPS), and it comes
# back inline once the transfer ends.
source "$(dirname "$0")/lib.sh"
e2e_topology
ip netns exec "$NS_S" iperf3 -s >"$WORK/iperf3.log" 2>&1 &
PIDS+=($!)
e2e_start_appliance --set log.level=debug
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
rps() { in_a cat /sys/class/net/mitm0/queues/rx-0/rps_cpus | tr -d ',\n'; }
switches() { grep -c "steer: $1" "$APP_LOG"; } # debug lines so far: "bulk traffic" or "TUN work inline"
inline_now() { # waits (3 s at most) for rps_cpus 0 and more than $1 switches back inline
    for _ in $(seq 30); do
        [ "$(rps | tr -d 0)" = "" ] && [ "$(switches "TUN work inline")" -gt "$1" ] && return 0
        sleep 0.1
    done
    echo "rps_cpus $(rps), $(switches "TUN work inline") switches inline, 3 s after the transfer"
    return 1
}
spread_during_download() { # switches spread before it
    local seen=
    ip netns exec "$NS_C" iperf3 -c 10.99.2.2 -t 2 -R >/dev/null &
    local client=$!
    for _ in $(seq 40); do
        [ "$(rps | tr -d 0)" != "" ] && seen=$(rps)
        kill -0 $client 2>/dev/null || break
        sleep 0.1
    done
    wait $client
    echo "rps_cpus during the download: ${seen:-always 0}"
    [ -n "$seen" ] && [ "$(switches "bulk traffic")" -gt "$1" ]
}
if [ "$(nproc)" -ge 2 ]; then
    check "steering ready at start" grep -q "while bulk traffic flows, the worker will run on CPU" "$APP_LOG"
    check "after the runs above the TUN's kernel work is inline" inline_now 0
    spread0=$(switches "bulk traffic")
    inline0=$(switches "TUN work inline")
    check "a download spreads the TUN's kernel work to the other CPUs" spread_during_download "$spread0"
    check "after the download the TUN's kernel work is inline again" inline_now "$inline0"
else
    echo "skip: steering cases (one CPU here: nothing to steer to)"
fi
check "no connection left open" e2e_wait_tcp_drained 10
e2e_stop_appliance
e2e_pass
