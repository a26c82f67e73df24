#!/bin/bash
# Benchmark (not a test): intercepted HTTPS, mitmtun against mitmproxy (Debian's mitmdump,
# transparent mode) and sslsplit, each fed by nftables REDIRECT (mitmtun by its TUN) between the
# same namespaces, the same nginx and the same wrk: keep-alive HTTPS requests per second
# (1 KiB responses, 50 connections), new-connection HTTPS requests per second, one-stream bulk
# HTTPS MB/s, and peak RSS. Every interceptor writes its per-request output to a file. The
# machine is shared and noisy: mitmtun's and sslsplit's keep-alive runs alternate, ROUNDS of
# each, and the table shows their medians (each round's figures are listed under it).
#   [WORKERS=N] [TLS=1.2] tests/bench/bench_http.sh build/mitmtun [seconds per run, default 10] [ROUNDS, default 3]
# TLS=1.2: wrk, curl and nginx speak at most TLS 1.2, so that every leg of every interceptor
# runs on one protocol. Unset, each pair negotiates what it can: sslsplit 0.5.5 takes TLS 1.3
# from wrk but speaks 1.2 to nginx, mitmtun 1.3 on both (OpenSSL 3.0's 1.3 records cost more).
# Needs: apt-get install wrk mitmproxy sslsplit
source "$(dirname "$0")/../e2e/lib.sh"
CLIENT=(in_c)
if [ "${TLS:-}" = 1.2 ]; then
    BENCH_NGINX_TLS="ssl_protocols TLSv1.2;"
    printf '%s\n' "openssl_conf = conf" "[conf]" "ssl_conf = ssl" "[ssl]" "system_default = tls" \
        "[tls]" "MaxProtocol = TLSv1.2" >"$WORK/client-tls12.cnf"
    CLIENT=(in_c env OPENSSL_CONF="$WORK/client-tls12.cnf")
elif [ -n "${TLS:-}" ]; then
    echo "TLS=$TLS: only TLS=1.2 is known"
    exit 1
fi
SECS=${2:-10}
ROUNDS=${3:-3}
# mitmtun's [tun] workers: one per CPU unless WORKERS is set (sslsplit runs its threads too)
WORKERS=(--set tun.workers="${WORKERS:-0}")
# NICE=-10: every interceptor (each of its processes and threads) runs at that nice value, the
# same for all three, ahead of wrk and nginx; unset: all at the default
prio() { # pid
    [ -n "${NICE:-}" ] || return 0
    for p in "$1" $(pgrep -P "$1"); do
        for t in /proc/$p/task/*; do renice -n "$NICE" -p "${t##*/}" >/dev/null; done
    done
}
for tool in wrk mitmdump sslsplit; do
    command -v $tool >/dev/null || { echo "needs $tool (apt-get install wrk mitmproxy sslsplit)"; exit 1; }
done
e2e_topology
e2e_bench_server
P=$WORK/pki
head -c 256M /dev/zero >"$WORK/www/bulk.bin"
"$MITMTUN" -c "$REPO/configs/mitmtun.ini" --set tls.ca_dir="$WORK/ca" ca export "$WORK/export" >/dev/null 2>&1
CA=$WORK/ca/ca.crt
URL=https://10.99.2.2/1k.txt

# wrk's requests/s: 2 threads, 50 connections (keep-alive unless "close" is given).
rps() {
    local extra=()
    [ "${1:-}" = close ] && extra=(-H "Connection: close")
    "${CLIENT[@]}" wrk -t2 -c50 -d"${SECS}s" "${extra[@]}" "$URL" |
        awk '/^Requests\/sec/ {printf "%.0f", $2} /Non-2xx|Socket errors/ {print "  (" $0 ")" > "/dev/stderr"}'
}
bulk() { # MB/s of one HTTPS download of 256 MiB
    "${CLIENT[@]}" curl -sS --max-time 300 --cacert "$CA" --resolve bench.example:443:10.99.2.2 \
        -o /dev/null -w '%{speed_download}' https://bench.example/bulk.bin |
        python3 -c "import sys; print('%.0f' % (float(sys.stdin.read()) / 1e6))"
}
# A process and its children (mitmtun's workers), MiB and clock ticks.
family() { echo "$1" $(pgrep -P "$1"); }
hwm() { for p in $(family $1); do cat /proc/$p/status; done | awk '/^VmHWM/ {k += $2} END {print int(k / 1024)}'; }
ticks() { for p in $(family $1); do cat /proc/$p/stat; done | awk '{t += $14 + $15} END {print t}'; }
NGX_PID=$(pgrep -f "nginx -c $WORK" | head -1)
# Requests/s as rps gives them (keep-alive, or one request per connection with "close"), and
# where the machine's CPU went per request (microseconds), appended to $WORK/cpu.LABEL: the
# interceptor, nginx, wrk, softirq and idle time (both of all CPUs, from /proc/stat).
ka() { # label pid [close]
    local p0 n0 s0 i0 p1 n1 s1 i1 out extra=()
    [ "${3:-}" = close ] && extra=(-H "Connection: close")
    p0=$(ticks $2) n0=$(ticks $NGX_PID)
    read -r _ _ _ _ i0 _ _ s0 _ </proc/stat
    out=$( { TIMEFORMAT='WRK %U %S'; time "${CLIENT[@]}" wrk -t2 -c50 -d"${SECS}s" "${extra[@]}" "$URL"; } 2>&1)
    p1=$(ticks $2) n1=$(ticks $NGX_PID)
    read -r _ _ _ _ i1 _ _ s1 _ </proc/stat
    echo "$out" | awk '/^Requests\/sec/ {printf "%.0f", $2}'
    echo "$out" | python3 -c "
import re, sys
out = sys.stdin.read()
n = float(re.search(r'Requests/sec:\s*([\d.]+)', out).group(1)) * $SECS
wrk = sum(map(float, re.search(r'WRK ([\d.]+) ([\d.]+)', out).groups()))
us = lambda ticks: ticks / $(getconf CLK_TCK) / n * 1e6
print(us($p1 - $p0), us($n1 - $n0), wrk / n * 1e6, us($s1 - $s0), us($i1 - $i0))" >>"$WORK/cpu.$1"
}
measure() { # name pid: fills the name's row
    local -n row=$1
    row[keepalive]=$(ka $1 $2)
    row[newconn]=$(ka $1_nc $2 close)
    row[bulk]=$(bulk)
    row[rss]=$(hwm $2)
}

declare -A mitm mproxy split
ka_mitm=() ka_relay=() ka_split=()
ip -n "$NS_S" route add 10.99.1.0/24 via 10.99.2.1
redirect() { # port: the others get port 443 by nftables REDIRECT in the appliance namespace
    in_a nft delete table ip bench 2>/dev/null
    in_a nft -f - <<NFT
table ip bench {
    chain pre { type nat hook prerouting priority -100; iif "ac" tcp dport 443 redirect to :$1; }
}
NFT
}
unredirect() { in_a nft delete table ip bench 2>/dev/null; }
wait_port() { for _ in $(seq 100); do in_a bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null && return; sleep 0.2; done; echo "port $1 never opened"; exit 1; }

ip netns exec "$NS_A" sslsplit -u root -k "$WORK/ca/ca.key" -c "$CA" -l "$WORK/sslsplit.connlog" \
    ssl 0.0.0.0 10443 >"$WORK/sslsplit.log" 2>&1 &
SPLIT=$!
PIDS+=($SPLIT)
wait_port 10443
# sslsplit runs as a privileged parent and a child that does the work: measure the child, and
# count both in its memory
SPLIT_CHILD=$(pgrep -P $SPLIT sslsplit || echo $SPLIT)
prio $SPLIT
for round in $(seq "$ROUNDS"); do
    e2e_start_appliance --set tls.upstream_ca_file="$P/uca.crt" "${WORKERS[@]}" >/dev/null
    prio $APP_PID
    if [ "$round" = 1 ]; then
        measure mitm $APP_PID
        http_records=$(grep -c '"type":"http"' "$FLOWS")
        mitm_tls=$(grep -m1 '"type":"http"' "$FLOWS" | python3 -c 'import json, sys; print(json.load(sys.stdin)["tls"]["version"])')
    else
        mitm[keepalive]=$(ka mitm $APP_PID)
    fi
    ka_mitm+=("${mitm[keepalive]}")
    e2e_stop_appliance >/dev/null
    # the same TLS interception with the HTTP layer off: a decrypting byte relay, as sslsplit's
    # "ssl" mode is
    e2e_start_appliance --set tls.upstream_ca_file="$P/uca.crt" --set proxy.detect=no \
        --set proxy.http_ports= "${WORKERS[@]}" >/dev/null
    prio $APP_PID
    ka_relay+=("$(ka relay $APP_PID)")
    e2e_stop_appliance >/dev/null

    redirect 10443
    if [ "$round" = 1 ]; then measure split $SPLIT_CHILD; else split[keepalive]=$(ka split $SPLIT_CHILD); fi
    ka_split+=("${split[keepalive]}")
    unredirect
done
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
mitm[keepalive]=$(median "${ka_mitm[@]}")
split[keepalive]=$(median "${ka_split[@]}")
relay=$(median "${ka_relay[@]}")
split[rss]=$(hwm $SPLIT) # its child's too
kill $SPLIT
# sslsplit's HTTP-aware mode ("https"): it parses each exchange, as mitmtun's HTTP layer does
ip netns exec "$NS_A" sslsplit -u root -k "$WORK/ca/ca.key" -c "$CA" -l "$WORK/sslsplit-https.connlog" \
    https 0.0.0.0 10444 >"$WORK/sslsplit-https.log" 2>&1 &
SPLIT_HTTPS=$!
PIDS+=($SPLIT_HTTPS)
wait_port 10444
prio $SPLIT_HTTPS
redirect 10444
split_https=$(rps)
unredirect
kill $SPLIT_HTTPS

mkdir -p "$WORK/mitmproxy"
cat "$WORK/ca/ca.key" "$CA" >"$WORK/mitmproxy/mitmproxy-ca.pem"
redirect 18080
ip netns exec "$NS_A" mitmdump --mode transparent --listen-port 18080 --showhost --set stream_large_bodies=1m \
    --set confdir="$WORK/mitmproxy" --set ssl_verify_upstream_trusted_ca="$P/uca.crt" \
    >"$WORK/mitmdump.log" 2>&1 &
MPROXY=$!
PIDS+=($MPROXY)
wait_port 18080
prio $MPROXY
measure mproxy $MPROXY
kill $MPROXY

ratio() { python3 -c "print('%.2f' % (${1:-0} / max(${2:-0}, 1)))"; }
row() { # label key
    printf '%-38s %9s %9s %9s %10s %10s\n' "$1" "${mitm[$2]}" "${mproxy[$2]}" "${split[$2]}" \
        "$(ratio ${mitm[$2]} ${mproxy[$2]})" "$(ratio ${mitm[$2]} ${split[$2]})"
}
echo
echo "HTTPS interception benchmark: ${SECS}s per run, wrk -t2 -c50, 1 KiB responses, $(nproc) cores, $(date -u +%F)"
echo "(mitmtun with [tun] workers = ${WORKERS[1]#*=}; interceptors at nice ${NICE:-0})"
echo "(mitmtun wrote $http_records http records in its first round; mitmdump printed each request too)"
echo "(TLS with the client: mitmtun $mitm_tls, by its records; sslsplit $(grep -m1 -o 'sproto:[^ ]*' "$WORK/sslsplit.connlog"), upstream $(grep -m1 -o 'dproto:[^ ]*' "$WORK/sslsplit.connlog"), by its log)"
printf '%-38s %9s %9s %9s %10s %10s\n' "measure" "mitmtun" "mitmdump" "sslsplit" "/mitmdump" "/sslsplit"
row "keep-alive HTTPS requests/s (median)" keepalive
row "new-connection HTTPS requests/s" newconn
row "bulk HTTPS MB/s, one stream" bulk
row "peak RSS MiB" rss
echo "keep-alive rounds, alternating: mitmtun ${ka_mitm[*]}; mitmtun as a TLS relay ${ka_relay[*]}; sslsplit ${ka_split[*]}"
echo
echo "Like for like, keep-alive HTTPS requests/s:"
printf '  %-62s %7s vs %7s  %s\n' \
    "TLS relay (mitmtun, HTTP layer off; sslsplit \"ssl\"), medians" "$relay" "${split[keepalive]}" "$(ratio $relay ${split[keepalive]})" \
    "HTTP-aware (mitmtun's HTTP layer; sslsplit \"https\")" "${mitm[keepalive]}" "$split_https" "$(ratio ${mitm[keepalive]} $split_https)"
echo
echo "Where the CPU went per keep-alive request, microseconds (medians of the rounds):"
printf '  %-24s %11s %7s %7s %8s %7s\n' "" interceptor nginx wrk softirq idle
cpu_row() { # label
    python3 -c "
import statistics
rows = [list(map(float, l.split())) for l in open('$WORK/cpu.$1')]
cols = [statistics.median(c) for c in zip(*rows)]
name = {'mitm': 'mitmtun', 'relay': 'mitmtun as a TLS relay', 'split': 'sslsplit (ssl)',
        'mproxy': 'mitmdump'}['${1%_nc}']
print('  %-24s %11.1f %7.1f %7.1f %8.1f %7.1f' % (name, *cols))"
}
for label in mitm relay split; do cpu_row $label; done
echo
echo "Per new connection (one request each), microseconds:"
for label in mitm_nc split_nc mproxy_nc; do cpu_row $label; done
echo "  (wrk polls a connection in its TLS handshake without sleeping, so its CPU per new"
echo "  connection grows with the time an interceptor takes to answer a ClientHello.)"
