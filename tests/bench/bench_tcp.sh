#!/bin/bash
# Benchmark (not a test): iperf3 through the appliance against plain kernel forwarding between
# the same namespaces, 1 and 8 streams, both directions, MTU 1500; the appliance's CPU time per
# run and its peak RSS, also with 1,000 idle connections held open. Prints a table with ratios.
#   tests/bench/bench_tcp.sh build/mitmtun [seconds per run, default 5]
source "$(dirname "$0")/../e2e/lib.sh"
SECS=${2:-5}
e2e_topology
e2e_start_nginx
ip -n "$NS_S" route add 10.99.1.0/24 via 10.99.2.1 # for plain forwarding only
ip netns exec "$NS_S" iperf3 -s >"$WORK/iperf3.log" 2>&1 &
PIDS+=($!)
sleep 0.5

iperf() { # extra args; prints Gbit/s received
    in_c iperf3 -c 10.99.2.2 -t "$SECS" -J "$@" | python3 -c "
import json, sys
r = json.load(sys.stdin)
print('%.2f' % (r['end']['sum_received']['bits_per_second'] / 1e9))"
}
cpu_ticks() { awk '{print $14 + $15}' /proc/$APP_PID/stat; }
hz=$(getconf CLK_TCK)

declare -A plain through cpu
runs=("1 up:-P 1" "1 down:-P 1 -R" "8 up:-P 8" "8 down:-P 8 -R")
for run in "${runs[@]}"; do
    name=${run%%:*}
    plain[$name]=$(iperf ${run#*:})
done

e2e_start_appliance
for run in "${runs[@]}"; do
    name=${run%%:*}
    before=$(cpu_ticks)
    through[$name]=$(iperf ${run#*:})
    after=$(cpu_ticks)
    cpu[$name]=$(python3 -c "print('%.0f' % (100 * ($after - $before) / $hz / $SECS))")
done
hwm_bulk=$(awk '/^VmHWM/ {print $2}' /proc/$APP_PID/status)

# 1,000 idle connections held open.
ip netns exec "$NS_C" $TOOLS hold 10.99.2.2 80 1000 8 >"$WORK/hold.log" 2>&1 &
holder=$!
for _ in $(seq 100); do grep -q holding "$WORK/hold.log" && break; sleep 0.1; done
sleep 1
open=$(e2e_tcp_open)
rss_idle=$(awk '/^VmRSS/ {print $2}' /proc/$APP_PID/status)
hwm=$(awk '/^VmHWM/ {print $2}' /proc/$APP_PID/status)
wait $holder

echo
echo "mitmtun TCP benchmark: iperf3 ${SECS}s per run, MTU 1500, $(nproc) cores, $(date -u +%F)"
printf '%-16s %14s %14s %8s %14s\n' "run" "kernel Gbit/s" "mitmtun Gbit/s" "ratio" "mitmtun CPU %"
for run in "${runs[@]}"; do
    name=${run%%:*}
    printf '%-16s %14s %14s %8s %14s\n' "$name stream(s)" "${plain[$name]}" "${through[$name]}" \
        "$(python3 -c "print('%.2f' % (${through[$name]} / ${plain[$name]}))")" "${cpu[$name]}"
done
echo "peak RSS after the bulk runs: $((hwm_bulk / 1024)) MiB"
echo "1,000 idle connections: $open open in the appliance, RSS $((rss_idle / 1024)) MiB, peak RSS $((hwm / 1024)) MiB (target < 64 MiB)"
