#!/bin/bash
# UDP through the TUN: a DNS query to a real dnsmasq is answered (IPv4 and IPv6), UDP/443 is
# refused with ICMP port unreachable (and relayed with [udp] relay_quic), idle flows expire and
# are recorded, a full flow table evicts the flow idle longest. Pings to any address are
# answered exactly when the destination answers.
source "$(dirname "$0")/lib.sh"
e2e_topology
ip netns exec "$NS_S" dnsmasq --no-daemon --no-resolv --no-hosts --bind-interfaces \
    --listen-address=10.99.2.2 --listen-address=fd99:2::2 --port=53 \
    --address=/test.example/10.99.2.80 --pid-file="$WORK/dnsmasq.pid" --user=root \
    >"$WORK/dnsmasq.log" 2>&1 &
PIDS+=($!)
# A UDP echo server on 443 for the relay_quic case.
ip netns exec "$NS_S" python3 -c "
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('0.0.0.0', 443))
while True:
    d, a = s.recvfrom(2048)
    s.sendto(d[::-1], a)" &
PIDS+=($!)
e2e_start_appliance --set udp.idle_timeout=2

answer_is() { # server name want
    local got
    got=$(in_c $TOOLS dns "$1" "$2") || { echo "$got"; return 1; }
    [ "$got" = "$3" ] || { echo "answer $got, want $3"; return 1; }
}
quic_relayed() {
    in_c python3 -c "
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.connect(('10.99.2.2', 443))
s.send(b'quic?')
assert s.recv(100) == b'?ciuq'"
}
ping_ok() { in_c ping -c 2 -W 2 -i 0.2 "$1"; }
ping_silent() { ! in_c ping -c 2 -W 1 -i 0.2 "$1"; }

check "DNS over UDP/IPv4 answered" answer_is 10.99.2.2 test.example 10.99.2.80
check "DNS over UDP/IPv6 answered" answer_is fd99:2::2 test.example 10.99.2.80
check "UDP/443 refused with ICMP port unreachable" in_c $TOOLS udp-refused 10.99.2.2 443
check "UDP/443 over IPv6 refused" in_c $TOOLS udp-refused fd99:2::2 443
check "ping through the TUN answered (IPv4)" ping_ok 10.99.2.2
check "ping through the TUN answered (IPv6)" ping_ok fd99:2::2
check "ping to an address nobody answers stays unanswered" ping_silent 10.99.2.99
check "DNS flow recorded when idle" e2e_record 'r["type"]=="udp" and r["server"]=="10.99.2.2:53" and r["end"]=="idle" and r["bytes_up"]>20 and r["bytes_down"]>r["bytes_up"]'
e2e_stop_appliance

e2e_start_appliance --set udp.relay_quic=yes
check "relay_quic = yes: UDP/443 relayed" quic_relayed
e2e_stop_appliance

e2e_start_appliance --set udp.max_flows=2
several_answered() { # five queries, each from a new port: a new flow each
    for i in 1 2 3 4 5; do answer_is 10.99.2.2 test.example 10.99.2.80 || return 1; done
}
check "max_flows = 2: five new flows in a row all answered" several_answered
check "the flows idle longest were evicted and recorded so" python3 -c "
import json
recs = [r for r in map(json.loads, open('$FLOWS')) if r['type'] == 'udp' and r['end'] == 'evicted']
assert len(recs) == 3 and all(r['bytes_down'] > 0 for r in recs), recs"
check "one warning says the table is full" bash -c "
    [ \$(grep -c 'udp: flow table full (\[udp\] max_flows = 2)' '$APP_LOG') = 1 ]"
stats_has() { local line; line=$(e2e_stats); echo "$line"; [[ "$line" == *"$1"* ]]; }
check "the stats line counts the evictions" stats_has " evicted=3 "
e2e_stop_appliance
e2e_pass
