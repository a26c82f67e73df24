#!/bin/bash
# What a direct connection would show: a refused port is refused at once (RST to the SYN), an
# unreachable network answers ICMP unreachable, a silent server resets the client after
# [tcp] connect_timeout. Each is recorded with how it ended.
source "$(dirname "$0")/lib.sh"
e2e_topology
e2e_start_nginx
# Port 9 on the server drops SYNs silently.
in_s nft -f - <<'NFT'
table inet e2e {
    chain in {
        type filter hook input priority 0;
        tcp dport 9 drop;
    }
}
NFT
e2e_start_appliance --set tcp.connect_timeout=2

check "refused port: the SYN is refused at once" in_c $TOOLS connect 10.99.2.2 81 refused 0.5
check "refused port over IPv6" in_c $TOOLS connect fd99:2::2 81 refused 0.5
check "curl sees the refused port fail" bash -c "! ip netns exec $NS_C curl -sS --max-time 3 http://10.99.2.2:81/"
check "refused recorded" e2e_record 'r["server"]=="10.99.2.2:81" and r["end"]=="refused" and r["bytes_up"]==0'
check "unreachable network: no route to host" in_c $TOOLS connect 10.99.77.7 80 unreachable 1
check "unreachable recorded" e2e_record 'r["server"]=="10.99.77.7:80" and r["end"]=="unreachable"'
check "silent server: reset after connect_timeout (2 s)" in_c $TOOLS connect 10.99.2.2 9 refused 3.5
check "timeout recorded" e2e_record 'r["server"]=="10.99.2.2:9" and r["end"]=="timeout" and 1900<=r["duration_ms"]<=3500'
check "the appliance still serves others" in_c $TOOLS connect 10.99.2.2 80 ok 2
check "no connection left open" e2e_wait_tcp_drained 10
e2e_stop_appliance
e2e_pass
