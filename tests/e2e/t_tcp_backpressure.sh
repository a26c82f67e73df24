#!/bin/bash
# No unbounded buffering: a fast server facing a slow client, and a fast client facing a slow
# server, are slowed by TCP's own window; the appliance's memory stays flat meanwhile. The
# fast clients: raw bytes (a relay), and a POST body through the HTTP layer, plain and in TLS.
source "$(dirname "$0")/lib.sh"
e2e_topology
e2e_start_nginx
e2e_upstream_ca
e2e_leaf slow "/CN=slow.example" "DNS:slow.example"
head -c 256M /dev/zero >"$WORK/www/huge.bin"
slow_server() { # port [tls]: one connection, read at 64 KiB a second
    ip netns exec "$NS_S" python3 -c "
import socket, ssl, time
s = socket.create_server(('0.0.0.0', $1))
s.settimeout(30)
c, _ = s.accept()
c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
if '${2:-}':
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain('$WORK/pki/slow.crt', '$WORK/pki/slow.key')
    c = ctx.wrap_socket(c, server_side=True)
for _ in range(30):
    c.recv(65536)
    time.sleep(1)" &
    PIDS+=($!)
    slow_servers+=($!)
}
fast_client() { # port [http] [tls]: sends as fast as it can; with http an endless POST body at
    # 4 MB/s, which the appliance reads with ease: only its pausing holds the client back then
    ip netns exec "$NS_C" python3 -c "
import socket, ssl, time
s = socket.create_connection(('10.99.2.2', $1))
if '${3:-}':
    ctx = ssl.create_default_context(cafile='$WORK/ca/ca.crt')
    s = ctx.wrap_socket(s, server_hostname='slow.example')
s.settimeout(20)
if '${2:-}':
    s.sendall(b'POST /up HTTP/1.1\\r\\nHost: slow.example\\r\\nContent-Length: 100000000000\\r\\n\\r\\n')
try:
    while True:
        s.sendall(b'u' * 65536)
        if '${2:-}':
            time.sleep(0.016)
except Exception:
    pass" &
    PIDS+=($!)
    fast_clients+=($!)
}
slow_servers=() fast_clients=()
slow_server 7010
slow_server 7011
slow_server 7012 tls
e2e_start_appliance --set tls.upstream_ca_file="$WORK/pki/uca.crt"

rss_kib() { awk '/^VmRSS/ {print $2}' /proc/$APP_PID/status; }
base=$(rss_kib)

# Slow client: reads 512 KiB/s from nginx's 256 MiB file.
ip netns exec "$NS_C" curl -s --limit-rate 512K -o /dev/null http://10.99.2.2/huge.bin &
slow_client=$!
PIDS+=($slow_client)
# Fast clients uploading to the slow servers: raw bytes, and a POST body plain and in TLS.
fast_client 7010
fast_client 7011 http
fast_client 7012 http tls
server_send_queue() { # nginx could not hand its data to the appliance: the window did it
    # (an appliance that took all it was sent would leave nginx an empty queue on this link;
    # how far the kernel grows nginx's send buffer varies: 1 MB was once missed by 1 %)
    local q
    q=$(ip netns exec "$NS_S" ss -Htn state established '( sport = :80 )' | awk '{s+=$2} END {print s+0}')
    echo "nginx send queue: $q bytes"
    [ "$q" -gt 524288 ]
}
client_send_queue() { # port
    local q
    q=$(ip netns exec "$NS_C" ss -Htn state established "( dport = :$1 )" | awk '{s+=$2} END {print s+0}')
    echo "client send queue: $q bytes"
    [ "$q" -gt 100000 ]
}
# Every sender is held back within a second or two (on a busy machine, later); the heap grows
# by 3 to 6 MiB meanwhile and settles within 3 s after (measured: flat from then to 20 s).
held_back() {
    server_send_queue && for port in 7010 7011 7012; do client_send_queue $port || return 1; done
}
for _ in $(seq 40); do
    held_back >/dev/null && break
    sleep 0.5
done
sleep 3
mid=$(rss_kib)
sleep 2

rss_flat() { # unbounded buffering would grow by hundreds of MiB here
    local now
    now=$(rss_kib)
    echo "RSS $base KiB at start, $mid KiB 3 s after every transfer was held back, $now KiB 2 s later"
    [ $((now - base)) -lt 16384 ] && [ $((now - mid)) -lt 1024 ]
}
check "slow client: nginx is held back by the window" server_send_queue
check "slow server: the fast client is held back by the window" client_send_queue 7010
check "slow server: a POST body through the HTTP layer is held back too" client_send_queue 7011
check "slow server: and so is one through the HTTP layer inside TLS" client_send_queue 7012
# ASan's quarantine and shadow memory make RSS meaningless; the plain build checks it.
if ldd "$MITMTUN" | grep -q libasan; then
    echo "skip: RSS check in a sanitizer build"
else
    check "appliance memory stays flat (< 16 MiB in all, < 1 MiB in the last 2 s)" rss_flat
fi
# The uploader's FIN still waits behind its queued bytes (a half-close): end the slow server too.
kill $slow_client "${fast_clients[@]}" "${slow_servers[@]}" 2>/dev/null
check "connections freed after the clients and the slow servers go" e2e_wait_tcp_drained 15
post_records() { # the two uploads were HTTP exchanges, cut short (records land within 50 ms)
    for _ in $(seq 30); do
        grep -F '"url":"http://slow.example:7011/up"' "$FLOWS" | grep -q '"method":"POST"' &&
            grep -F '"url":"https://slow.example:7012/up"' "$FLOWS" | grep -q '"method":"POST"' && return 0
        sleep 0.1
    done
    grep -o '"url":"[^"]*"' "$FLOWS"
    return 1
}
check "the uploads went through the HTTP layer (a record each)" post_records
e2e_stop_appliance
e2e_pass
