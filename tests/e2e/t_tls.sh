#!/bin/bash
# TLS interception through the TUN, with nginx's SNI virtual hosts behind it: each virtual host
# answers with a certificate forged from its own (its SANs exactly, signed by our CA); a client
# without SNI to the bare IP gets the default server's CN and SANs; 8443 is intercepted; an
# upstream that does not verify gets the client an alert and a record saying why; TLS 1.2-only
# and 1.3-only clients work; with [tls] http2 = yes, h2 is negotiated on both legs; non-TLS on a TLS port is relayed.
source "$(dirname "$0")/lib.sh"
e2e_topology
P=$WORK/pki
mkdir -p "$P" "$WORK/www" "$WORK/nginx/extra"
echo "hello from nginx" >"$WORK/www/index.html"

# The upstream test CA and the servers' certificates.
e2e_upstream_ca
leaf() { e2e_leaf "$@"; }
leaf a "/CN=a.test.example" "DNS:a.test.example,DNS:alt-a.test.example"
leaf b "/CN=b.test.example" "DNS:b.test.example,DNS:*.b.test.example"
leaf default "/CN=default.test.example" "IP:10.99.2.2"
leaf self "/CN=self.test.example" "DNS:self.test.example" self
cat >"$WORK/nginx/extra/tls.conf" <<CONF
ssl_protocols TLSv1.2 TLSv1.3;
server { listen 443 ssl http2 default_server; ssl_certificate $P/default.crt; ssl_certificate_key $P/default.key; root $WORK/www; }
server { listen 443 ssl http2; server_name a.test.example; ssl_certificate $P/a.crt; ssl_certificate_key $P/a.key; root $WORK/www; }
server { listen 443 ssl http2; server_name b.test.example; ssl_certificate $P/b.crt; ssl_certificate_key $P/b.key; root $WORK/www; }
server { listen 8443 ssl; server_name a.test.example; ssl_certificate $P/a.crt; ssl_certificate_key $P/a.key; root $WORK/www; }
server { listen 4443 ssl; ssl_certificate $P/self.crt; ssl_certificate_key $P/self.key; root $WORK/www; }
server { listen 9443; root $WORK/www; }
server { listen 9444 ssl; ssl_certificate $P/a.crt; ssl_certificate_key $P/a.key; root $WORK/www; }
CONF
e2e_start_nginx
# A server that speaks first (SMTP-like) on a port that is no TLS port.
ip netns exec "$NS_S" python3 "$E2E_DIR/tools.py" tcp-server 2525 "220 mitmtun-test ready\r\n" &
PIDS+=($!)
# A TLS server whose answers are several records arriving at once.
ip netns exec "$NS_S" python3 "$E2E_DIR/tools.py" tls-burst-server 9445 "$P/a.crt" "$P/a.key" &
PIDS+=($!)
ip netns exec "$NS_S" python3 "$E2E_DIR/tools.py" tls-burst-server 9446 "$P/a.crt" "$P/a.key" first &
PIDS+=($!)
e2e_start_appliance --set tls.upstream_ca_file="$P/uca.crt" --set "tls.ports=443, 8443, 4443, 9443" \
    --set tls.keylog="$WORK/keylog.txt" --set tls.http2=yes
CA=$WORK/ca/ca.crt

fetch() { # host port [curl args]: the page, through the appliance, trusting only our CA
    local host=$1 port=$2 got
    shift 2
    got=$(in_c curl -sS --max-time 5 --cacert "$CA" --resolve "$host:$port:10.99.2.2" "$@" "https://$host:$port/")
    [ "$got" = "hello from nginx" ] || { echo "got: $got"; return 1; }
}
cert_of() { # s_client args...: the certificate the client sees, as text
    timeout 10 ip netns exec "$NS_C" openssl s_client -connect 10.99.2.2:443 "$@" </dev/null 2>/dev/null |
        openssl x509 -noout -text
}
sees() { # "issuer/SAN text" s_client args...
    local want=$1 text
    shift
    text=$(cert_of "$@")
    echo "$text" | grep -E "Issuer:|DNS:|IP Address:|Subject:"
    echo "$text" | grep -q "Issuer: O = mitmtun, CN = mitmtun interception CA" && echo "$text" | grep -qF "$want"
}
refused() { # host port: the client's handshake fails
    ! in_c curl -sS --max-time 5 --cacert "$CA" --resolve "$1:$2:10.99.2.2" "https://$1:$2/" >/dev/null
}
plain() { [ "$(in_c curl -sS --max-time 5 http://10.99.2.2:9443/)" = "hello from nginx" ]; }

check "virtual host a: page through the interceptor" fetch a.test.example 443
check "a repeat visit resumes the upstream session" bash -c "$(declare -f fetch in_c); NS_C=$NS_C CA=$CA fetch a.test.example 443"
check "resumption recorded" e2e_record 'r.get("tls",{}).get("sni")=="a.test.example" and r["tls"].get("upstream_resumed")'
check "virtual host a: forged with exactly a's SANs" sees "DNS:a.test.example, DNS:alt-a.test.example" -servername a.test.example
check "virtual host b: forged with exactly b's SANs" sees "DNS:b.test.example, DNS:*.b.test.example" -servername b.test.example
check "bare IP, no SNI: the default server's CN and IP SAN" sees "IP Address:10.99.2.2" -noservername
check "bare IP, no SNI: curl to https://10.99.2.2/ verifies" bash -c "[ \"\$(ip netns exec $NS_C curl -sS --max-time 5 --cacert $CA https://10.99.2.2/)\" = 'hello from nginx' ]"
check "port 8443 intercepted" fetch a.test.example 8443
check "TLS 1.2-only client" fetch a.test.example 443 --tlsv1.2 --tls-max 1.2
check "TLS 1.3-only client" fetch a.test.example 443 --tlsv1.3
keylog_both_legs() { # one TLS 1.3 exchange: secrets of the client leg and the upstream leg
    local n
    : >"$WORK/keylog.txt"
    fetch a.test.example 443 --tlsv1.3 >/dev/null || return 1
    n=$(grep -c "^CLIENT_TRAFFIC_SECRET_0 " "$WORK/keylog.txt")
    echo "$n CLIENT_TRAFFIC_SECRET_0 lines"
    [ "$n" = 2 ] && [ "$(grep -c "^SERVER_TRAFFIC_SECRET_0 " "$WORK/keylog.txt")" = 2 ]
}
check "keylog: a file only its owner can read (it decrypts everything)" \
    bash -c "[ \$(stat -c %a '$WORK/keylog.txt') = 600 ]"
check "keylog: both legs' secrets, NSS key log format" keylog_both_legs
keylog_decrypts() { # tshark reads the HTTP request out of a capture of the client's leg
    local cap out
    : >"$WORK/keylog.txt"
    ip netns exec "$NS_C" tcpdump -U --immediate-mode -i c0 -w "$WORK/tls.pcap" 'tcp port 443' \
        2>"$WORK/tcpdump.err" &
    cap=$!
    # capturing once it says so, each packet written as it comes (without --immediate-mode a
    # block of packets waits up to a second, and a capture stopped sooner was once empty)
    for _ in $(seq 100); do grep -q "listening on" "$WORK/tcpdump.err" && break; sleep 0.1; done
    fetch a.test.example 443 --http1.1 >/dev/null
    sleep 0.5
    kill $cap
    wait $cap
    tail -3 "$WORK/tcpdump.err" # packets captured, shown when the check fails
    out=$(timeout 60 tshark -r "$WORK/tls.pcap" -o "tls.keylog_file:$WORK/keylog.txt" \
        -Y http.request -T fields -e http.host -e http.request.uri 2>/dev/null)
    echo "decrypted: $out"
    [[ "$out" == *"a.test.example"* ]]
}
check "keylog: tshark decrypts a capture of the exchange" keylog_decrypts
check "TLS 1.3 recorded" e2e_record 'r.get("tls",{}).get("version")=="TLSv1.3" and r["tls"]["intercepted"]'
h2_both_legs() { # curl says h2, and so do the forged and the upstream handshakes' records
    [ "$(in_c curl -sS --max-time 5 --http2 --cacert "$CA" --resolve b.test.example:443:10.99.2.2 \
        -o /dev/null -w '%{http_version}' https://b.test.example/)" = 2 ]
}
check "[tls] http2 = yes: h2 negotiated through the interceptor" h2_both_legs
check "h2 recorded on the TLS record" e2e_record 'r.get("tls",{}).get("sni")=="b.test.example" and r["tls"]["alpn"]=="h2" and r["tls"]["intercepted"]'
check "intercepted stream recorded" e2e_record 'r.get("tls",{}).get("sni")=="a.test.example" and r["tls"]["intercepted"] and r["tls"]["version"]=="TLSv1.2" and r["end"]=="closed"'
check "self-signed upstream: the client's handshake fails" refused self.test.example 4443
check "self-signed upstream: recorded with the reason" e2e_record 'r["server"]=="10.99.2.2:4443" and r["end"]=="tls_error" and "upstream certificate: self-signed certificate" in r["error"] and r["tls"]["intercepted"]==False'
check "plain HTTP on a TLS port is relayed as bytes" plain
banner_at_once() {
    in_c python3 -c "
import socket, time
t = time.time()
s = socket.create_connection(('10.99.2.2', 2525), timeout=3)
line = s.recv(100)
assert line.startswith(b'220 mitmtun-test'), line
assert time.time() - t < 1, time.time() - t
print('banner after %.0f ms' % (1000 * (time.time() - t)))"
}
check "detect: TLS on a port outside [tls] ports is intercepted" fetch a.test.example 9444
check "detect: recorded as intercepted" e2e_record 'r["server"]=="10.99.2.2:9444" and r["tls"]["intercepted"] and r["tls"]["sni"]=="a.test.example"'
check "detect: a server that speaks first is relayed at once" banner_at_once
# The appliance reads ahead upstream: records that came in one piece must all get through, the
# server then quiet (libevent alone stops asking OpenSSL for records after the first).
burst_http() {
    local got
    got=$(in_c curl -sS --max-time 3 --cacert "$CA" --resolve a.test.example:9445:10.99.2.2 https://a.test.example:9445/)
    [ "$got" = burst ] || { echo "got: $got"; return 1; }
}
burst_relay() {
    in_c python3 -c "
import socket, ssl
ctx = ssl.create_default_context(cafile='$CA')
s = ctx.wrap_socket(socket.create_connection(('10.99.2.2', 9445), timeout=3), server_hostname='a.test.example')
s.sendall(b'go\\n')
got = b''
while not got.endswith(b'three\\n'):
    got += s.recv(100)
print(got)"
}
burst_first() { # the records came with the handshake: OpenSSL holds them before anyone reads
    in_c python3 -c "
import socket, ssl
ctx = ssl.create_default_context(cafile='$CA')
s = ctx.wrap_socket(socket.create_connection(('10.99.2.2', 9446), timeout=3), server_hostname='a.test.example')
got = b''
while not got.endswith(b'there\\n'):
    got += s.recv(100)
print(got)"
}
check "a response whose head and body came in one piece" burst_http
check "three records that came in one piece, relayed" burst_relay
check "a TLS server that speaks first, its records with its handshake, relayed" burst_first
check "no connection left open" e2e_wait_tcp_drained 10
e2e_stop_appliance

# [tls] ignore_hosts: that host's TLS passes through untouched. [tls] auto_passthrough: so does
# a host whose certificate a client refused.
e2e_start_appliance --set tls.upstream_ca_file="$P/uca.crt" --set "tls.ignore_hosts=*.other.example, b.test.example" \
    --set tls.auto_passthrough=yes
real_cert() {
    local text
    text=$(timeout 10 ip netns exec "$NS_C" openssl s_client -connect 10.99.2.2:443 -servername b.test.example </dev/null 2>/dev/null | openssl x509 -noout -text)
    echo "$text" | grep -E "Issuer:"
    echo "$text" | grep -q "Issuer: CN = upstream test CA"
}
check "ignore_hosts: the client sees the real certificate" real_cert
check "ignore_hosts: recorded as not intercepted, with why" e2e_record 'r.get("tls",{}).get("sni")=="b.test.example" and r["tls"]["intercepted"]==False and "ignore_hosts entry 2" in r["tls"]["reason"]'
check "ignore_hosts: other hosts still intercepted" fetch a.test.example 443
pinned_refuses() { # a client without our CA refuses the forged certificate
    ! in_c curl -sS --max-time 5 --cacert "$P/uca.crt" --resolve a.test.example:8443:10.99.2.2 https://a.test.example:8443/ 2>&1
}
passed_through() { # the same client, trusting only the real CA, now gets the real server
    fetch_real() { in_c curl -sS --max-time 5 --cacert "$P/uca.crt" --resolve a.test.example:8443:10.99.2.2 https://a.test.example:8443/; }
    [ "$(fetch_real)" = "hello from nginx" ]
}
check "a client that refuses our certificate is recorded" pinned_refuses
check "the refusal is recorded, with the alert" e2e_record 'r["server"]=="10.99.2.2:8443" and r["end"]=="tls_error" and "unknown ca" in r["error"]'
check "auto_passthrough: its next connection to that host passes through" passed_through
check "auto_passthrough: recorded as not intercepted, with why" e2e_record 'r["server"]=="10.99.2.2:8443" and r["end"]=="closed" and "auto_passthrough" in r["tls"].get("reason", "")'

e2e_stop_appliance
e2e_pass
