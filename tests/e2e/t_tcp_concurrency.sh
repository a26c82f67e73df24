#!/bin/bash
# 500 concurrent connections all complete byte-exact; connections the appliance closed first
# leave at most 1,024 in TIME_WAIT; a client that vanishes mid-transfer frees its connection
# and its upstream, whether it resets or just goes silent; afterwards the appliance holds no
# connection.
source "$(dirname "$0")/lib.sh"
e2e_topology
e2e_start_nginx
head -c 100K /dev/urandom >"$WORK/www/small.bin"
head -c 64M /dev/urandom >"$WORK/www/big.bin"
small=$(sha256sum <"$WORK/www/small.bin" | cut -d' ' -f1)
# No upstream reuse: the 1,000 connections' upstream connections would wait in the pool, and
# the cases below look for none left established.
e2e_start_appliance --set proxy.upstream_reuse=0

vanish() { # a slow download whose client is killed after a second
    ip netns exec "$NS_C" curl -s --limit-rate 1M -o /dev/null http://10.99.2.2/big.bin &
    local pid=$!
    sleep 1
    kill -9 $pid
    wait $pid 2>/dev/null
    return 0
}
upstream_closed() { # [port, default 80]: nothing left established towards that server port
    for _ in $(seq 50); do
        [ "$(ip netns exec "$NS_S" ss -Htn state established "( sport = :${1:-80} )" | wc -l)" = 0 ] &&
            return 0
        sleep 0.1
    done
    ip netns exec "$NS_S" ss -tn
    return 1
}

check "500 concurrent connections complete byte-exact (IPv4)" \
    in_c $TOOLS concurrent 10.99.2.2 80 500 /small.bin "$small"
check "500 concurrent connections complete byte-exact (IPv6)" \
    in_c $TOOLS concurrent fd99:2::2 80 500 /small.bin "$small"
e2e_records_settle
check "all 1000 recorded as closed" python3 -c "
import json
recs = [r for r in map(json.loads, open('$FLOWS')) if r['type'] == 'tcp']
good = [r for r in recs if r['end'] == 'closed' and r['bytes_down'] > 100 * 1024]
assert len(good) == 1000, len(good)"
check "connection count back to zero" e2e_wait_tcp_drained 10
echo tiny >"$WORK/www/tiny.txt"
time_wait_capped() { # 1,500 connections the appliance closes first, each leaving a TIME_WAIT
    local line
    in_c python3 -c "
import socket
from concurrent.futures import ThreadPoolExecutor
def fetch(_):
    s = socket.create_connection(('10.99.2.2', 80), timeout=10)
    s.sendall(b'GET /tiny.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n')
    data = b''
    while (d := s.recv(4096)):
        data += d
    s.close()
    return data.endswith(b'tiny\n')
with ThreadPoolExecutor(8) as pool:
    ok = sum(pool.map(fetch, range(1500)))
print(ok, 'of 1500 fetched')
assert ok == 1500" || return 1
    sleep 0.3 # a timer tick
    line=$(e2e_stats)
    echo "$line"
    [[ "$line" =~ "time_wait="([0-9]+)" (cut "([0-9]+)")" ]] &&
        [ "${BASH_REMATCH[1]}" -le 1024 ] && [ "${BASH_REMATCH[1]}" -ge 1000 ] &&
        [ "$((BASH_REMATCH[1] + BASH_REMATCH[2]))" -ge 1500 ]
}
check "lwIP keeps the newest 1,024 connections in TIME_WAIT and ends the older ones" \
    time_wait_capped
port_reuse() { # the server closes first; the client reuses its port at once, five times
    in_c python3 -c "
import socket, time
for i in range(5):
    t = time.time()
    for attempt in range(40):  # the old tuple may still await our last ACK (LAST_ACK)
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(('10.99.1.2', 45678))
        s.settimeout(3)
        try:
            s.connect(('10.99.2.2', 80))
            break
        except OSError as e:
            if e.errno != 99:
                raise
            s.close()
            time.sleep(0.05)
    s.sendall(b'GET /small.bin HTTP/1.1\\r\\nHost: t\\r\\nConnection: close\\r\\n\\r\\n')
    n = 0
    while (d := s.recv(65536)):
        n += len(d)
    s.close()
    assert n > 100 * 1024, n
    print('fetch %d on port 45678: %.0f ms' % (i + 1, 1000 * (time.time() - t)))"
}
check "a client reusing its port right after our close is served (TIME_WAIT)" port_reuse
vanish
check "vanished client: recorded as reset mid-transfer" e2e_record \
    'r["server"]=="10.99.2.2:80" and r["end"] in ("client_reset","client_timeout") and 0<r["bytes_down"]<64*2**20'
check "vanished client: connection freed" e2e_wait_tcp_drained 15
check "vanished client: upstream connection closed too" upstream_closed
e2e_stop_appliance

# A client that goes silent (out of Wi-Fi range: its packets no longer arrive, nothing resets)
# while a download waits for it is dropped after [tcp] silent_client_timeout.
e2e_start_appliance --set tcp.silent_client_timeout=3 --set log.level=debug
silent_client() {
    local pid
    ip netns exec "$NS_C" curl -s --limit-rate 500K -o /dev/null http://10.99.2.2/big.bin &
    pid=$!
    sleep 1.5
    gone_until '"end":"client_timeout"' 150
    in_c nft delete table inet gone
    kill $pid 2>/dev/null
    wait $pid 2>/dev/null
    e2e_record 'r["server"]=="10.99.2.2:80" and r["end"]=="client_timeout" and 0<r["bytes_down"]<64*2**20'
}
gone() { # the client namespace neither sends nor receives any more
    in_c nft -f - <<'NFT'
table inet gone {
    chain i { type filter hook input priority 0; policy drop; }
    chain o { type filter hook output priority 0; policy drop; }
}
NFT
}
gone_until() { # pattern tenths: gone, then waits (at most tenths x 0.1 s) for a matching record
    local t0
    gone
    t0=$(date +%s)
    for _ in $(seq "$2"); do
        grep -q "$1" "$FLOWS" 2>/dev/null && break
        sleep 0.1
    done
    echo "recorded after $(($(date +%s) - t0)) s of silence"
}
paused_reader() { # stops reading for 5x the timeout; lwIP's window probes come further apart than
    # that, so the client gets a keepalive, answers it, and stays
    in_c $TOOLS paused-get 10.99.2.2 80 /big.bin 15 &&
        grep -q "silent for [0-9]* s with data waiting for it: a keepalive" "$APP_LOG"
}
check "a client that stops reading but still answers is kept (window probes)" paused_reader
check "silent client: dropped and recorded as client_timeout" silent_client
check "silent client: its exchange recorded as cut short by it" e2e_http_record '
    r["url"]=="http://10.99.2.2/big.bin" and r.get("error")=="the client stopped answering"'
check "silent client: connection freed" e2e_wait_tcp_drained 5
check "silent client: upstream connection closed too" upstream_closed
e2e_stop_appliance

# A client that vanishes while its connection idles (a phone's push connection, the phone gone
# from the Wi-Fi) is found by keepalives after [tcp] client_keepalive (2 s here; then 4 more,
# 2 s apart); one that answers them stays, however long it idles.
ip netns exec "$NS_S" python3 "$E2E_DIR/tools.py" echo-server 7007 &
PIDS+=($!)
e2e_start_appliance --set tcp.client_keepalive=2
idle_vanished() { # the client stays gone (and its process alive) until idle_back
    ip netns exec "$NS_C" python3 "$E2E_DIR/tools.py" idle-echo 10.99.2.2 7007 60 >"$WORK/idle.out" 2>&1 &
    echo $! >"$WORK/idle.pid" # check runs this in a subshell
    for _ in $(seq 50); do grep -q one "$WORK/idle.out" && break; sleep 0.1; done
    gone_until '"server":"10.99.2.2:7007".*"end":"client_timeout"' 250
    e2e_record 'r["server"]=="10.99.2.2:7007" and r["end"]=="client_timeout" and r["bytes_up"]==4'
}
idle_back() {
    in_c nft delete table inet gone
    kill "$(cat "$WORK/idle.pid")" 2>/dev/null
}
check "idle client that answers keepalives: kept through 14 s of silence" \
    in_c $TOOLS idle-echo 10.99.2.2 7007 14
check "idle client gone: dropped and recorded as client_timeout" idle_vanished
check "idle client gone: upstream connection closed too" upstream_closed 7007
idle_back
e2e_stop_appliance
e2e_pass
