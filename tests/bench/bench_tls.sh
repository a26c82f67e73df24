#!/bin/bash
# Benchmark (not a test): TLS interception, mitmtun against sslsplit (Debian's, transparent via
# nftables REDIRECT) between the same namespaces and the same nginx: new TLS connections per
# second with the forged-certificate cache warm (one name) and cold (a new name each time),
# single-stream bulk HTTPS MB/s, and peak RSS. Prints a table with ratios.
#   tests/bench/bench_tls.sh build/mitmtun [seconds per run, default 5]
source "$(dirname "$0")/../e2e/lib.sh"
SECS=${2:-5}
command -v sslsplit >/dev/null || { echo "needs sslsplit (apt-get install sslsplit)"; exit 1; }
e2e_topology
P=$WORK/pki
mkdir -p "$P" "$WORK/www" "$WORK/nginx/extra"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj "/CN=bench upstream CA" \
    -keyout "$P/uca.key" -out "$P/uca.crt" -addext "basicConstraints=critical,CA:TRUE" 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=bench.example" \
    -keyout "$P/srv.key" -out "$P/srv.csr" 2>/dev/null
openssl x509 -req -in "$P/srv.csr" -CA "$P/uca.crt" -CAkey "$P/uca.key" -CAcreateserial -days 30 \
    -out "$P/srv.crt" -extfile <(printf 'subjectAltName=DNS:bench.example,DNS:*.bench.example\n') 2>/dev/null
echo "hello" >"$WORK/www/index.html"
head -c 256M /dev/zero >"$WORK/www/bulk.bin"
cat >"$WORK/nginx/extra/tls.conf" <<CONF
server { listen 443 ssl default_server; ssl_certificate $P/srv.crt; ssl_certificate_key $P/srv.key; root $WORK/www; keepalive_timeout 0; }
CONF
# DISTINCT hosts, each with a certificate of its own, for the cold runs: every connection
# makes the interceptor forge (and sign) a new leaf.
DISTINCT=${DISTINCT:-3000}
openssl ecparam -name prime256v1 -genkey -noout -out "$P/host.key" 2>/dev/null
for i in $(seq 0 $((DISTINCT - 1))); do
    printf '[req]\ndistinguished_name=dn\n[dn]\n[ext]\nsubjectAltName=DNS:c%d.bench.example\n' "$i" >"$P/c.cnf"
    openssl req -new -key "$P/host.key" -subj "/CN=c$i.bench.example" -config "$P/c.cnf" 2>/dev/null |
        openssl x509 -req -CA "$P/uca.crt" -CAkey "$P/uca.key" -set_serial $((1000 + i)) -days 30 \
            -extfile "$P/c.cnf" -extensions ext -out "$P/c$i.crt" 2>/dev/null
    echo "server { listen 443 ssl; server_name c$i.bench.example; ssl_certificate $P/c$i.crt; ssl_certificate_key $P/host.key; root $WORK/www; keepalive_timeout 0; }" >>"$WORK/nginx/extra/tls.conf"
done
e2e_start_nginx

# Our CA serves both interceptors, so the same clients trust both.
"$MITMTUN" -c "$REPO/configs/mitmtun.ini" --set tls.ca_dir="$WORK/ca" ca export "$WORK/export" >/dev/null 2>&1
CA=$WORK/ca/ca.crt
rate() { in_c $TOOLS tls-rate 10.99.2.2 443 "$SECS" 4 "$CA" "$1"; }
bulk() { # MB/s of one HTTPS download of 256 MiB
    in_c curl -sS --max-time 120 --cacert "$CA" --resolve bulk.bench.example:443:10.99.2.2 \
        -o /dev/null -w '%{speed_download}' https://bulk.bench.example/bulk.bin |
        python3 -c "import sys; print('%.0f' % (float(sys.stdin.read()) / 1e6))"
}
hwm() { awk '/^VmHWM/ {print int($2 / 1024)}' /proc/$1/status; }

declare -A mitm split
e2e_start_appliance --set tls.upstream_ca_file="$P/uca.crt"
mitm[warm]=$(rate bench.example)
mitm[cold]=$(rate hN.bench.example)
mitm[distinct]=$(rate "cN%$DISTINCT.bench.example")
mitm[bulk]=$(bulk)
mitm[rss]=$(hwm $APP_PID)
e2e_stop_appliance >/dev/null

# sslsplit: plain forwarding in the appliance namespace, port 443 redirected to it.
ip -n "$NS_S" route add 10.99.1.0/24 via 10.99.2.1
in_a nft -f - <<'NFT'
table ip bench {
    chain pre { type nat hook prerouting priority -100; iif "ac" tcp dport 443 redirect to :10443; }
}
NFT
ip netns exec "$NS_A" sslsplit -u root -k "$WORK/ca/ca.key" -c "$CA" ssl 0.0.0.0 10443 >"$WORK/sslsplit.log" 2>&1 &
SPLIT=$!
PIDS+=($SPLIT)
sleep 1
split[warm]=$(rate bench.example)
split[cold]=$(rate hN.bench.example)
split[distinct]=$(rate "cN%$DISTINCT.bench.example")
split[bulk]=$(bulk)
# sslsplit is a privileged parent and a child that does the work: both count
SPLIT_CHILD=$(pgrep -P $SPLIT sslsplit || echo $SPLIT)
split[rss]=$(( $(hwm $SPLIT) + $([ "$SPLIT_CHILD" = "$SPLIT" ] && echo 0 || hwm $SPLIT_CHILD) ))

ratio() { python3 -c "print('%.2f' % ($1 / max($2, 1)))"; }
echo
echo "TLS interception benchmark: ${SECS}s per run, 4 client processes, $(nproc) cores, $(date -u +%F)"
printf '%-34s %10s %10s %8s\n' "measure" "mitmtun" "sslsplit" "ratio"
printf '%-34s %10s %10s %8s\n' "new TLS conns/s, cache warm" "${mitm[warm]}" "${split[warm]}" "$(ratio ${mitm[warm]} ${split[warm]})"
printf '%-34s %10s %10s %8s\n' "new TLS conns/s, cold (new names)" "${mitm[cold]}" "${split[cold]}" "$(ratio ${mitm[cold]} ${split[cold]})"
printf '%-34s %10s %10s %8s\n' "new conns/s, cold: distinct certs" "${mitm[distinct]}" "${split[distinct]}" "$(ratio ${mitm[distinct]} ${split[distinct]})"
printf '%-34s %10s %10s %8s\n' "bulk HTTPS MB/s, one stream" "${mitm[bulk]}" "${split[bulk]}" "$(ratio ${mitm[bulk]} ${split[bulk]})"
printf '%-34s %10s %10s %8s\n' "peak RSS MiB" "${mitm[rss]}" "${split[rss]}" "$(ratio ${mitm[rss]} ${split[rss]})"
