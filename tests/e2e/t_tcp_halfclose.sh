#!/bin/bash
# A half-close on one side becomes a FIN on the other while the other direction keeps flowing,
# both ways; a reset on one side resets the other.
source "$(dirname "$0")/lib.sh"
e2e_topology
ip netns exec "$NS_S" $TOOLS halfclose-server 7001 "$WORK/server.log" &
PIDS+=($!)
e2e_start_appliance
sleep 0.3

server_got() {
    for _ in $(seq 50); do
        grep -q "received 12345 after our FIN" "$WORK/server.log" 2>/dev/null && return 0
        sleep 0.1
    done
    cat "$WORK/server.log"
    return 1
}
reset_propagates() { # the server resets; the client must see a reset, not a clean close
    ip netns exec "$NS_S" python3 -c "
import socket, struct
s = socket.create_server(('0.0.0.0', 7003))
s.settimeout(10)
c, _ = s.accept()
c.recv(10)
c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
c.close()" &
    local srv=$!
    sleep 0.3
    in_c python3 -c "
import socket, sys
s = socket.create_connection(('10.99.2.2', 7003), timeout=5)
s.sendall(b'hello')
try:
    data = s.recv(10)
except ConnectionResetError:
    sys.exit(0)
print('clean close instead of a reset:', data)
sys.exit(1)"
    local rc=$?
    wait $srv
    return $rc
}

check "client half-closes, server still answers (IPv4)" in_c $TOOLS halfclose-client 10.99.2.2 7001 U
check "client half-closes, server still answers (IPv6)" in_c $TOOLS halfclose-client fd99:2::2 7001 U
check "client half-closes right after one byte, before it is classified: still answered" \
    in_c $TOOLS halfclose-client 10.99.2.2 7001 U0
check "server half-closes, client still sends" in_c $TOOLS halfclose-client 10.99.2.2 7001 D
check "server received the client's bytes after its FIN" server_got
check "half-closed exchange recorded as closed" e2e_record 'r["server"]=="10.99.2.2:7001" and r["bytes_up"]==1+12345 and r["bytes_down"]==100000 and r["end"]=="closed"'
check "server reset reaches the client as a reset" reset_propagates
check "server reset recorded" e2e_record 'r["server"]=="10.99.2.2:7003" and r["end"]=="server_reset"'
check "no connection left open" e2e_wait_tcp_drained 10
e2e_stop_appliance
e2e_pass
