# Shared harness for the end-to-end tests: namespaces with a unique per-run prefix, real servers,
# the appliance under test, and assertions. Everything created is removed on exit, pass or fail.
#
#   client ns  c0 10.99.1.2/24 fd99:1::2/64 --- ac 10.99.1.1 fd99:1::1  appliance ns (mitmtun,
#   server ns  s0 10.99.2.2/24 fd99:2::2/64 --- as 10.99.2.1 fd99:2::1  gateway mode, lan = ac)
#
# Each test script: source lib.sh; e2e_topology; e2e_start_appliance [--set ...]; cases; e2e_pass.
set -u
MITMTUN=${1:?usage: $0 path/to/mitmtun}
MITMTUN=$(readlink -f "$MITMTUN")
E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$E2E_DIR/../.." && pwd)
TOOLS="python3 $E2E_DIR/tools.py"

if [ "$(id -u)" != 0 ] || [ ! -c /dev/net/tun ] || ! command -v ip >/dev/null; then
    echo "SKIP: end-to-end tests need root, /dev/net/tun and iproute2"
    [ "${MITMTUN_E2E_REQUIRED:-0}" = 1 ] && exit 1
    exit 77
fi

PFX="mt$$$(printf '%04x' $((RANDOM)))"
NS_C=${PFX}c
NS_A=${PFX}a
NS_S=${PFX}s
WORK=$(mktemp -d /tmp/mitmtun-e2e.XXXXXX)
FLOWS=$WORK/flows.jsonl
APP_LOG=$WORK/appliance.log
APP_PID=
PIDS=()
FAILED=0
CASES=0

e2e_cleanup() {
    for pid in "${PIDS[@]}" $APP_PID; do
        kill "$pid" 2>/dev/null
    done
    for pid in "${PIDS[@]}" $APP_PID; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null
    done
    for ns in $NS_C $NS_A $NS_S; do
        ip netns del "$ns" 2>/dev/null
        rm -rf "/etc/netns/$ns"
    done
    rm -rf "$WORK"
}
trap e2e_cleanup EXIT
trap 'exit 1' INT TERM

in_c() { ip netns exec "$NS_C" "$@"; }
in_a() { ip netns exec "$NS_A" "$@"; }
in_s() { ip netns exec "$NS_S" "$@"; }

fail() {
    echo "FAIL: $*"
    FAILED=$((FAILED + 1))
}
ok() {
    echo "ok: $*"
}
# check "description" command...: one case; its output is shown when it fails.
check() {
    local what=$1 out
    shift
    CASES=$((CASES + 1))
    if out=$("$@" 2>&1); then
        ok "$what"
    else
        fail "$what"
        echo "$out" | sed 's/^/    /' | tail -20
    fi
}

e2e_link() { # ns1 if1 addr1 addr1v6 ns2 if2 addr2 addr2v6
    ip link add "$2" netns "$1" type veth peer name "$6" netns "$5"
    ip -n "$1" addr add "$3" dev "$2"
    ip -n "$1" addr add "$4" dev "$2" nodad
    ip -n "$5" addr add "$7" dev "$6"
    ip -n "$5" addr add "$8" dev "$6" nodad
    ip -n "$1" link set "$2" up
    ip -n "$5" link set "$6" up
}

e2e_topology() {
    for ns in $NS_C $NS_A $NS_S; do
        ip netns add "$ns" || exit 1
        ip -n "$ns" link set lo up
        # No duplicate address detection: link-local addresses are usable at once.
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
    done
    e2e_link "$NS_C" c0 10.99.1.2/24 fd99:1::2/64 "$NS_A" ac 10.99.1.1/24 fd99:1::1/64
    e2e_link "$NS_S" s0 10.99.2.2/24 fd99:2::2/64 "$NS_A" as 10.99.2.1/24 fd99:2::1/64
    ip -n "$NS_C" route add default via 10.99.1.1
    ip -n "$NS_C" -6 route add default via fd99:1::1
    # The server knows no route to the clients: only the appliance's own address answers it.
    in_a sysctl -qw net.ipv4.conf.all.rp_filter=0
    # A hotspot forwards already; the appliance switching IPv6 forwarding on itself makes the
    # kernel drop forwarded IPv6 for about a second (tests of that path use E2E_NO_FORWARDING).
    [ -n "${E2E_NO_FORWARDING:-}" ] || in_a sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
    # Fresh veths ignore neighbour solicitations for a moment: wait until each link answers.
    for pair in "$NS_C fd99:1::1" "$NS_S fd99:2::1" "$NS_C 10.99.1.1" "$NS_S 10.99.2.1"; do
        set -- $pair
        for _ in $(seq 20); do
            ip netns exec "$1" ping -c1 -W1 -i0.2 "$2" >/dev/null 2>&1 && break
        done
    done
}

# The device-mode topology: the appliance namespace is the device; the server's service
# addresses (10.98.3.2, fd98:3::2) sit behind its default route.
#   appliance ns  as 10.98.2.1/24 fd98:2::1/64 --- s0 10.98.2.2/24 fd98:2::2/64  server ns
e2e_topology_device() {
    for ns in $NS_A $NS_S; do
        ip netns add "$ns" || exit 1
        ip -n "$ns" link set lo up
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
    done
    e2e_link "$NS_A" as 10.98.2.1/24 fd98:2::1/64 "$NS_S" s0 10.98.2.2/24 fd98:2::2/64
    ip -n "$NS_S" addr add 10.98.3.2/32 dev lo
    ip -n "$NS_S" addr add fd98:3::2/128 dev lo
    ip -n "$NS_A" route add default via 10.98.2.2
    ip -n "$NS_A" -6 route add default via fd98:2::2
    in_a sysctl -qw net.ipv4.conf.all.rp_filter=0
    for addr in 10.98.2.2 fd98:2::2; do
        for _ in $(seq 20); do in_a ping -c1 -W1 -i0.2 $addr >/dev/null 2>&1 && break; done
    done
    E2E_SERVER=10.98.3.2
}

# Starts the appliance in device mode in the appliance namespace; extra arguments passed on.
e2e_start_device() {
    ip netns exec "$NS_A" "$MITMTUN" -c "$REPO/configs/device.ini" --set log.flows="$FLOWS" \
        --set log.stats_interval=0 --set tls.ca_dir="$WORK/ca" "$@" >"$APP_LOG" 2>&1 &
    APP_PID=$!
    e2e_wait_started "device mode installed"
}

e2e_wait_started() { # log line
    for _ in $(seq 100); do
        grep -q "$1" "$APP_LOG" 2>/dev/null && return 0
        kill -0 "$APP_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "appliance did not start:"
    cat "$APP_LOG"
    exit 1
}

# Starts the appliance in the appliance namespace in gateway mode; extra arguments are passed on.
# Programs started in the background must be started with "ip netns exec" directly, so that $!
# is their pid.
e2e_start_appliance() {
    # Not through in_a: a function would put a subshell between $! and the appliance.
    ip netns exec "$NS_A" "$MITMTUN" -c "$REPO/configs/mitmtun.ini" --set routing.mode=gateway \
        --set routing.lan_interface=ac --set log.flows="$FLOWS" --set log.stats_interval=0 \
        --set tun.address6=fd00:6d74::1/64 --set tls.ca_dir="$WORK/ca" "$@" >"$APP_LOG" 2>&1 &
    APP_PID=$!
    e2e_wait_started "gateway mode installed"
}

# Stops the appliance with SIGTERM and checks that it exits 0 (not inside check: needs wait).
e2e_stop_appliance() {
    local rc
    CASES=$((CASES + 1))
    kill -TERM "$APP_PID"
    wait "$APP_PID"
    rc=$?
    APP_PID=
    if [ "$rc" = 0 ]; then ok "SIGTERM stops the appliance with status 0"; else fail "SIGTERM: exit status $rc"; tail -5 "$APP_LOG"; fi
}

# Prints a fresh stats line (SIGUSR1).
e2e_stats() {
    local before
    before=$(grep -c 'stats:' "$APP_LOG")
    kill -USR1 "$APP_PID"
    for _ in $(seq 50); do
        [ "$(grep -c 'stats:' "$APP_LOG")" -gt "$before" ] && break
        sleep 0.1
    done
    grep 'stats:' "$APP_LOG" | tail -1
}
# Prints the appliance's open TCP connection count, from a fresh stats line.
e2e_tcp_open() {
    e2e_stats | sed -n 's/.*tcp open=\([0-9]*\).*/\1/p'
}

# Waits (bounded) until no TCP connection is open; prints the count and fails if it stays > 0.
# Records are written in batches (every 50 ms): waits until the flows file has stopped growing
# for 0.3 s (at most 5 s), for checks that count records rather than wait for one.
e2e_records_settle() {
    local size last=-1 still=0
    for _ in $(seq 50); do
        size=$(stat -c %s "$FLOWS" 2>/dev/null || echo 0)
        if [ "$size" = "$last" ]; then
            still=$((still + 1))
            [ $still -ge 3 ] && return 0
        else
            still=0
        fi
        last=$size
        sleep 0.1
    done
}

e2e_wait_tcp_drained() {
    local n
    for _ in $(seq ${1:-30}); do
        n=$(e2e_tcp_open)
        [ "$n" = 0 ] && { echo 0; return 0; }
        sleep 1
    done
    echo "still open: $n"
    return 1
}

# nginx in the server namespace on ports 80 and 8080 (IPv4 and IPv6), serving $WORK/www, plus
# the server blocks a test puts in $WORK/nginx/extra/*.conf before calling this.
e2e_start_nginx() {
    mkdir -p "$WORK/www" "$WORK/nginx/extra"
    cat >"$WORK/nginx/nginx.conf" <<CONF
daemon off;
master_process off;
worker_rlimit_nofile 4096;
error_log $WORK/nginx/error.log;
pid $WORK/nginx/nginx.pid;
events { worker_connections 2048; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    keepalive_requests 100000;
    include $WORK/nginx/extra/*.conf;
    server {
        listen 80 backlog=4096; listen [::]:80 backlog=4096;
        listen 8080; listen [::]:8080;
        root $WORK/www;
    }
}
CONF
    ip netns exec "$NS_S" nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" &
    PIDS+=($!)
    for _ in $(seq 50); do
        in_s bash -c "exec 3<>/dev/tcp/${E2E_SERVER:-10.99.2.2}/80" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nginx did not start"; cat "$WORK/nginx/error.log"; exit 1
}

# The last connection record (tcp/udp) matching a jq-free filter: python reads the JSON Lines file.
e2e_record() { # python-expression-over-r
    $TOOLS record "$FLOWS" "$1"
}
# The last "http" record matching the filter.
e2e_http_record() { # python-expression-over-r
    $TOOLS http-record "$FLOWS" "$1"
}

# For the benchmarks: nginx on 443 with a bench.example certificate from the upstream test CA
# (also valid for 10.99.2.2), serving a 1 KiB page /1k.txt and never ending a keep-alive
# connection.
e2e_bench_server() { # [BENCH_NGINX_TLS: more directives for its HTTPS server]
    e2e_upstream_ca
    e2e_leaf srv "/CN=bench.example" "DNS:bench.example,IP:10.99.2.2"
    mkdir -p "$WORK/www" "$WORK/nginx/extra"
    head -c 1024 /dev/urandom | base64 -w0 | head -c 1024 >"$WORK/www/1k.txt"
    cat >"$WORK/nginx/extra/tls.conf" <<CONF
server { listen 443 ssl default_server; ssl_certificate $WORK/pki/srv.crt; ssl_certificate_key $WORK/pki/srv.key; root $WORK/www; keepalive_requests 1000000; ${BENCH_NGINX_TLS:-} }
CONF
    e2e_start_nginx
}

# An upstream test CA ($WORK/pki/uca.crt) and leaves signed by it, for TLS servers.
e2e_upstream_ca() {
    mkdir -p "$WORK/pki"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
        -subj "/CN=upstream test CA" -keyout "$WORK/pki/uca.key" -out "$WORK/pki/uca.crt" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" 2>/dev/null
}
e2e_leaf() { # name subject san [self]: $WORK/pki/name.{key,crt}
    local P=$WORK/pki
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "$2" \
        -keyout "$P/$1.key" -out "$P/$1.csr" 2>/dev/null
    if [ "${4:-}" = self ]; then
        openssl x509 -req -in "$P/$1.csr" -signkey "$P/$1.key" -days 30 -out "$P/$1.crt" \
            -extfile <(printf 'subjectAltName=%s\n' "$3") 2>/dev/null
    else
        openssl x509 -req -in "$P/$1.csr" -CA "$P/uca.crt" -CAkey "$P/uca.key" -CAcreateserial \
            -days 30 -out "$P/$1.crt" -extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$3") 2>/dev/null
    fi
}

# The servers of the HTTP tests, all in the server namespace:
#   nginx: 80/8080 plain, 443 TLS (a.test.example, b.test.example; IP 10.99.2.2 by default);
#     $WORK/www has index.html ("hello from nginx") and pipe/0..9.txt
#   tools.py http-echo-server on 8000 (on 8444 with TLS, a.test.example); a server that
#   closes without answering on 8001;
#   a server that speaks first ("220 ...") on 2525; nothing on 81;
#   dnsmasq: *.test.example -> 10.99.2.2, *.invalid does not exist; the appliance
#   namespace resolves through it (/etc/netns/<ns>/resolv.conf).
e2e_http_servers() {
    local P=$WORK/pki
    e2e_upstream_ca
    e2e_leaf a "/CN=a.test.example" "DNS:a.test.example,DNS:alt-a.test.example"
    e2e_leaf b "/CN=b.test.example" "DNS:b.test.example"
    e2e_leaf default "/CN=default.test.example" "IP:10.99.2.2"
    mkdir -p "$WORK/www/pipe" "$WORK/nginx/extra"
    echo "hello from nginx" >"$WORK/www/index.html"
    for i in $(seq 0 9); do echo "$i" >"$WORK/www/pipe/$i.txt"; done
    python3 -c "print('\n'.join('line %d of a text that compresses well' % i for i in range(2000)))" \
        >"$WORK/www/text.txt"
    cat >"$WORK/nginx/extra/tls.conf" <<CONF
gzip on; gzip_types text/plain; gzip_min_length 1;
server { listen 443 ssl http2 default_server; listen [::]:443 ssl http2 default_server; ssl_certificate $P/default.crt; ssl_certificate_key $P/default.key; root $WORK/www; }
server { listen 443 ssl http2; listen [::]:443 ssl http2; server_name a.test.example; ssl_certificate $P/a.crt; ssl_certificate_key $P/a.key; root $WORK/www; }
server { listen 443 ssl http2; listen [::]:443 ssl http2; server_name b.test.example; ssl_certificate $P/b.crt; ssl_certificate_key $P/b.key; root $WORK/www; }
server { listen 8443 ssl; ssl_certificate $P/a.crt; ssl_certificate_key $P/a.key; root $WORK/www; keepalive_timeout 1s; }
server { listen 8081; root $WORK/www; keepalive_timeout 1s; }
CONF
    e2e_start_nginx
    ip netns exec "$NS_S" python3 "$E2E_DIR/tools.py" http-echo-server 8000 &
    PIDS+=($!)
    ip netns exec "$NS_S" python3 "$E2E_DIR/tools.py" http-echo-server 8444 "$P/a.crt" "$P/a.key" &
    PIDS+=($!)
    ip netns exec "$NS_S" python3 "$E2E_DIR/tools.py" tcp-server 8001 "" &
    PIDS+=($!)
    ip netns exec "$NS_S" python3 "$E2E_DIR/tools.py" tcp-server 2525 "220 mitmtun-test ready\r\n" &
    PIDS+=($!)
    ip netns exec "$NS_S" dnsmasq --no-daemon --no-resolv --no-hosts --bind-interfaces \
        --listen-address=10.99.2.2 --port=53 --address=/test.example/10.99.2.2 \
        --address=/invalid/ --pid-file="$WORK/dnsmasq.pid" --user=root \
        --log-queries --log-facility=- >"$WORK/dnsmasq.log" 2>&1 &
    PIDS+=($!)
    mkdir -p "/etc/netns/$NS_A"
    echo "nameserver 10.99.2.2" >"/etc/netns/$NS_A/resolv.conf"
    for port in 8000 8001 2525; do
        for _ in $(seq 50); do
            in_s bash -c "exec 3<>/dev/tcp/10.99.2.2/$port" 2>/dev/null && break
            sleep 0.1
        done
    done
}

e2e_pass() {
    echo "$CASES cases, $FAILED failed"
    [ "$FAILED" = 0 ]
}
