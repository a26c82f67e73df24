#!/bin/bash
# [proxy] upstream_reuse: when a client closes an intercepted HTTPS connection, its idle upstream
# connection waits for the same device's next connection to the same server, SNI and ALPN
# offer; a plain HTTP connection's for the next one to the same server; the explicit proxy's
# tunnels and requests alike. The servers number their connections in each response
# ("conn=N req=M"), so every case reads which upstream connection served it.
source "$(dirname "$0")/lib.sh"
e2e_topology
e2e_upstream_ca
e2e_leaf srv "/CN=r.example" "DNS:r.example,DNS:r2.example,IP:10.99.2.2"
server() { # port [mode idle keep_alive]
    ip netns exec "$NS_S" $TOOLS tls-counting-server "$1" "$WORK/pki/srv.crt" "$WORK/pki/srv.key" \
        "${@:2}" &
    PIDS+=($!)
}
server 443
server 8443 once
server 4443 keep 30 2 # announces Keep-Alive: timeout=2
server 5443 keep 1    # closes a connection idle for 1 s
plain_server() { # port [mode]: the same, plain HTTP
    ip netns exec "$NS_S" $TOOLS tls-counting-server "$1" - - "${@:2}" &
    PIDS+=($!)
}
plain_server 8080
plain_server 8081 once
for port in 443 8443 4443 5443 8080 8081; do
    for _ in $(seq 50); do
        in_s bash -c "exec 3<>/dev/tcp/10.99.2.2/$port" 2>/dev/null && break
        sleep 0.1
    done
done
ip -n "$NS_C" addr add 10.99.1.3/24 dev c0 # a second device
start() { # [--set ...]
    e2e_start_appliance --set tls.upstream_ca_file="$WORK/pki/uca.crt" \
        --set "tls.ports=443, 8443, 4443, 5443" --set "proxy.http_ports=80, 8080, 8081" \
        --set log.level=debug "$@"
}
start
CA=$WORK/ca/ca.crt

get() { # name port [curl args]: the body, through the appliance, trusting only our CA
    in_c curl -sS --max-time 5 --cacert "$CA" --resolve "$1:$2:10.99.2.2" "${@:3}" "https://$1:$2/"
}
served() { # want name port [curl args]: the body is want
    local want=$1 got
    shift
    got=$(get "$@")
    [ "$got" = "$want" ] || { echo "got '$got', want '$want'"; return 1; }
}
fresh_each_time() { # pause name port [curl args]: two requests, each on a new upstream connection
    local a b pause=$1
    shift
    a=$(get "$@") && sleep "$pause" && b=$(get "$@") || return 1
    echo "$a / $b"
    [ "${a#* }" = "req=1" ] && [ "${b#* }" = "req=1" ] && [ "$a" != "$b" ]
}

check "a first connection gets its own upstream connection" served "conn=1 req=1" r.example 443
check "the device's next connection reuses it" served "conn=1 req=2" r.example 443
check "the TCP record says so" e2e_record 'r["tls"]["upstream_reused"] and r["end"] == "closed"'
check "the HTTP record has no connect time" e2e_http_record \
    'r["tls"]["upstream_reused"] and r["status"] == 200 and r["timings"]["connect_ms"] < 0'
idle_now() { e2e_stats | grep "upstream idle=$1\$"; }
check "the stats line counts idle upstream connections" idle_now 1
check "a client's Connection: close stays on its hop" served "conn=1 req=3" r.example 443 \
    -H "Connection: close"
check "... and the connection is still reused after it" served "conn=1 req=4" r.example 443
check "another server name: another upstream connection" served "conn=2 req=1" r2.example 443
check "another device: another upstream connection" served "conn=3 req=1" r.example 443 \
    --interface 10.99.1.3
get6() { in_c curl -sS --max-time 5 --cacert "$CA" --resolve "r.example:443:[fd99:2::2]" https://r.example/; }
same_connection_again() { # command...: a second connection is served by the first one's upstream
    local a b
    a=$("$@") && b=$("$@") || return 1
    echo "$a / $b"
    [ "$b" = "${a% *} req=$((${a##*=} + 1))" ]
}
own_connection() { # "first command" "second command": the second gets a new upstream connection
    local a b
    a=$($1) && b=$($2) || return 1
    echo "$a / $b"
    [ "${b#* }" = "req=1" ] && [ "${a% *}" != "${b% *}" ]
}
check "over IPv6 too" same_connection_again get6
check "a client that offers no ALPN too (its stream is classified after the handshake)" \
    same_connection_again get r2.example 443 --no-alpn
check "connection-bound auth (NTLM) is answered on the device's connection" served "conn=1 req=5" \
    r.example 443 -H "Authorization: NTLM TlRMTVNTUAABAAAAB4IIAAAAAAAAAAAAAAAAAAAAAAA="
check "... and that connection is never shared" served "conn=6 req=1" r.example 443

check "Keep-Alive: timeout=2 announced: a first connection" served "conn=1 req=1" r.example 4443
sleep 1.5
check "... is not reused after 1.5 s (the server may close at 2 s)" served "conn=2 req=1" r.example 4443
check "... but within 1 s it is" served "conn=2 req=2" r.example 4443

check "a server that closes idle connections after 1 s: a first connection" served "conn=1 req=1" \
    r.example 5443
sleep 2
reuses=$(grep -c "an idle upstream connection reused" "$APP_LOG")
check "... its closed connection is not reused" served "conn=2 req=1" r.example 5443
check "... it left the pool when the server closed it, not when it was taken" \
    bash -c "[ \$(grep -c 'an idle upstream connection reused' '$APP_LOG') = $reuses ]"

check "a server that answers one request per connection: the first" served "conn=1 req=1" \
    r.example 8443
check "a request the reused connection lost goes again on a new one" served "conn=2 req=1" \
    r.example 8443
check "... and the log says why" grep -q "the reused upstream connection closed the connection: sending again" "$APP_LOG"
check "... and its record that it went twice" e2e_http_record \
    'r["status"] == 200 and r.get("resent") is True and r["url"] == "https://r.example:8443/"'
check "records of requests sent once do not say so" bash -c \
    "! grep '\"type\":\"http\"' '$FLOWS' | grep -v ':8443/' | grep -q resent"
post_lost() { # the reused connection closes on a POST with a body: 502, nothing sent twice
    local code
    code=$(get r.example 8443 -d "x=1" -o /dev/null -w "%{http_code}")
    [ "$code" = 502 ] || { echo "status $code"; return 1; }
}
check "a connection made again is not parked: the next one is new" served "conn=3 req=1" \
    r.example 8443
check "a request with a body is not sent twice: 502" post_lost
check "... recorded with its reason" e2e_http_record \
    'r["method"] == "POST" and r["status"] == 502 and "before responding" in r["error"]'
check "... and the next request gets a new connection" served "conn=4 req=1" r.example 8443

# Plain HTTP (transparent, to [proxy] http_ports) is kept and reused the same way.
plain() { # port [curl args]: the body
    in_c curl -sS --max-time 5 "${@:2}" "http://10.99.2.2:$1/"
}
check "plain HTTP: a first connection gets its own upstream connection" same_connection_again \
    plain 8080
check "... the TCP record says the second reused it" e2e_record \
    'r.get("upstream_reused") is True and "tls" not in r and r["end"] == "closed"'
check "... and its HTTP record" e2e_http_record \
    'r.get("upstream_reused") is True and r["url"] == "http://10.99.2.2:8080/" and r["timings"]["connect_ms"] < 0'
check "... another device gets its own" own_connection "plain 8080" \
    "plain 8080 --interface 10.99.1.3"
not_http() { # bytes that are no HTTP on a port with a parked connection: relayed on a new one
    local body
    plain 8080 >/dev/null || return 1
    body=$(in_c python3 -c "
import socket
s = socket.create_connection(('10.99.2.2', 8080), timeout=5)
s.sendall(b'hello\r\n\r\n')
data = b''
while not data.endswith(b'\n') or b'req=' not in data:
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
print(data.decode().rsplit('\n', 2)[-2])") || return 1
    echo "relayed: $body"
    [ "${body#* }" = "req=1" ]
}
check "... bytes that are not HTTP get a connection of their own, relayed" not_http
plain_served() { # want port [curl args]: the body is want
    local want=$1 got
    got=$(plain "${@:2}")
    [ "$got" = "$want" ] || { echo "got '$got', want '$want'"; return 1; }
}
check "a plain HTTP server that answers one request per connection: the first" plain_served \
    "conn=1 req=1" 8081
check "... a request the reused connection lost goes again on a new one" plain_served \
    "conn=2 req=1" 8081
check "... and its record says it went twice" e2e_http_record \
    'r["status"] == 200 and r.get("resent") is True and r["url"] == "http://10.99.2.2:8081/"'
# The explicit proxy's clients: absolute-form requests and CONNECT tunnels park and reuse the
# same way (the proxy resolves the name; the pool is asked by address).
PROXY=http://10.99.1.1:8080
px_plain() { in_c curl -sS --max-time 5 -x "$PROXY" "${@:2}" "http://10.99.2.2:$1/"; }
px_tls() { in_c curl -sS --max-time 5 --cacert "$CA" -x "$PROXY" "$@" https://10.99.2.2/; }
check "explicit proxy: a client's next connection reuses the last one's upstream" \
    same_connection_again px_plain 8080
check "... its record says so" e2e_http_record \
    'r["mode"] == "explicit" and r.get("upstream_reused") is True and r["timings"]["connect_ms"] < 0'
across_hosts() { # one client connection: host A, host B, host A again on A's connection
    local out a b c
    out=$(in_c curl -sS --max-time 5 -x "$PROXY" http://10.99.2.2:8080/ http://[fd99:2::2]:8080/ \
        http://10.99.2.2:8080/) || return 1
    a=$(echo "$out" | sed -n 1p) b=$(echo "$out" | sed -n 2p) c=$(echo "$out" | sed -n 3p)
    echo "$a / $b / $c"
    [ "${b#* }" = "req=1" ] && [ "$c" = "${a% *} req=$((${a##*=} + 1))" ]
}
check "... keep-alive across hosts: the first host's connection waits for its next request" \
    across_hosts
check "CONNECT: a client's next tunnel reuses the last one's upstream TLS connection" \
    same_connection_again px_tls
check "... the record of the request in it says so" e2e_http_record \
    'r["url"] == "https://10.99.2.2/" and r["mode"] == "explicit" and r["tls"]["upstream_reused"] is True'
check "... a ClientHello the parked connection does not fit: a new one, dialled then" \
    own_connection px_tls "px_tls --no-alpn"
check "... another device: its own" own_connection px_tls "px_tls --interface 10.99.1.3"
out_of_fds() { # with no file descriptor left, a connection that needs a new socket
    local free limit body rc
    get r2.example 4443 >/dev/null || return 1 # parked: an fd to give back
    free=$(ls /proc/$APP_PID/fd | sort -n | awk '$1 != NR - 1 {print NR - 1; exit} END {print NR}' | head -1)
    limit=$(prlimit --pid "$APP_PID" --nofile -o SOFT --noheadings)
    prlimit --pid "$APP_PID" --nofile="$free:" || return 1
    body=$(get r2.example 5443)
    rc=$?
    prlimit --pid "$APP_PID" --nofile="$limit:"
    echo "lowest free fd $free: got '$body'"
    [ $rc = 0 ] && [ "${body#* }" = "req=1" ]
}
check "out of file descriptors, a parked connection makes room" out_of_fds

e2e_stop_appliance
start --set proxy.upstream_reuse=0
check "upstream_reuse = 0: every connection has its own" fresh_each_time 0 r.example 443
e2e_stop_appliance
start --set proxy.upstream_reuse=1
check "upstream_reuse = 1: kept 1 s, no longer" fresh_each_time 1.5 r.example 443
check "... but reused within it" same_connection_again get r.example 443
e2e_stop_appliance
e2e_pass
