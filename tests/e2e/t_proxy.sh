#!/bin/bash
# The explicit proxy front end with real clients (curl -x, wget, python urllib): absolute-form
# requests to any host with keep-alive across hosts, CONNECT to a name, to a bare IP and to a
# non-TLS port, WebSocket, errors (400, 403, 407, 431, 502, 504), access control,
# authentication, the CA page, the records and the HAR export.
source "$(dirname "$0")/lib.sh"
e2e_topology
e2e_http_servers
# Port 82 answers nothing: connects to it time out.
in_s nft add table inet drop82
in_s nft add chain inet drop82 input '{ type filter hook input priority 0; }'
in_s nft add rule inet drop82 input tcp dport 82 drop
e2e_start_appliance --set tls.upstream_ca_file="$WORK/pki/uca.crt" --set tcp.connect_timeout=2
CA=$WORK/ca/ca.crt
PROXY=10.99.1.1:8080
head -c 1048576 /dev/urandom >"$WORK/upload.bin"
UPLOAD_SHA=$(sha256sum <"$WORK/upload.bin" | cut -d' ' -f1)

p_curl() { in_c curl -sS --max-time 10 -x "http://$PROXY" "$@"; }
body_is() { # want curl-args...
    local want=$1 got
    shift
    got=$(p_curl "$@") || return 1
    [ "$got" = "$want" ] || { echo "got: $got"; return 1; }
}
status_is() { # code curl-args...: the status, and the one-line body says $WHY
    local want=$1 out
    shift
    out=$(p_curl -w '\n%{http_code}' "$@")
    echo "$out"
    [ "$(echo "$out" | tail -1)" = "$want" ] && echo "$out" | grep -q "$WHY"
}

# --- absolute-form ---------------------------------------------------------------------------
check "GET by name" body_is "hello from nginx" http://a.test.example/index.html
check "record: every field of an explicit GET" e2e_http_record '
    r["mode"]=="explicit" and r["scheme"]=="http" and r["method"]=="GET"
    and r["url"]=="http://a.test.example/index.html" and r["status"]==200
    and r["server"]=="10.99.2.2:80" and r["client"].startswith("10.99.1.2:")
    and ["Host","a.test.example"] in r["request_headers"] and r["response_bytes"]==17
    and r["timings"]["connect_ms"]>=0 and "error" not in r'
check "hop-by-hop headers stay with the proxy" bash -c "
    ip netns exec $NS_C curl -sS --max-time 10 -x http://$PROXY -H 'Proxy-Connection: keep-alive' \
        http://a.test.example:8000/seen | python3 -c '
import json, sys
h = [k.lower() for k, v in json.load(sys.stdin)[\"headers\"]]
assert \"proxy-connection\" not in h and \"host\" in h, h'"
check "the Host sent upstream is the URL's, whatever the client said" bash -c "
    ip netns exec $NS_C curl -sS --max-time 10 -x http://$PROXY -H 'Host: spoofed.example' \
        http://a.test.example:8000/seen | python3 -c '
import json, sys
h = [(k.lower(), v) for k, v in json.load(sys.stdin)[\"headers\"]]
assert [v for k, v in h if k == \"host\"] == [\"a.test.example:8000\"], h'"
check "keep-alive across two hosts on one client connection" bash -c "
    out=\$(ip netns exec $NS_C curl -sS --max-time 10 -x http://$PROXY \
        http://a.test.example/pipe/4.txt http://b.test.example:8080/pipe/5.txt) &&
    [ \"\$out\" = \"\$(printf '4\n5')\" ]"
check "records: the two hosts on the same connection" bash -c "
    a=\$($TOOLS http-record $FLOWS 'r[\"url\"]==\"http://a.test.example/pipe/4.txt\"') &&
    b=\$($TOOLS http-record $FLOWS 'r[\"url\"]==\"http://b.test.example:8080/pipe/5.txt\"') &&
    [ \"\$(echo \$a | python3 -c 'import json,sys;print(json.load(sys.stdin)[\"id\"])')\" = \
      \"\$(echo \$b | python3 -c 'import json,sys;print(json.load(sys.stdin)[\"id\"])')\" ]"
check "POST with a chunked 1 MiB upload" bash -c "
    ip netns exec $NS_C curl -sS --max-time 10 -x http://$PROXY -H 'Transfer-Encoding: chunked' \
        --data-binary @$WORK/upload.bin http://a.test.example:8000/echo |
        grep -q '\"len\": 1048576, \"sha256\": \"$UPLOAD_SHA\"'"
check "record: POST" e2e_http_record 'r["method"]=="POST" and r["request_bytes"]==1048576 and r["mode"]=="explicit"'
check "a body that ends after its answer goes to its host, not to the next request's" \
    in_c $TOOLS early-then-elsewhere $PROXY a.test.example:8000 b.test.example:8080
check "Expect: 100-continue" bash -c "
    ip netns exec $NS_C curl -sS -v --max-time 10 -x http://$PROXY -H 'Expect: 100-continue' \
        --data-binary @$WORK/upload.bin http://a.test.example:8000/echo 2>&1 |
        grep -q '< HTTP/1.1 100 Continue'"
check "HEAD" bash -c "
    ip netns exec $NS_C curl -sS --max-time 10 -x http://$PROXY -I http://a.test.example/index.html |
        grep -q '^Content-Length: 17'"
check "pipelined requests answered in order" in_c $TOOLS pipeline 10.99.2.2 80 6 $PROXY
check "pipelined, then a FIN: every request answered" in_c $TOOLS pipeline 10.99.2.2 80 4 $PROXY fin
check "a FIN right after the request, while its name resolves: answered" bash -c "
    ip netns exec $NS_C $TOOLS raw 10.99.1.1 8080 \"'GET http://b.test.example/index.html HTTP/1.1\\r\\nHost: b.test.example\\r\\n\\r\\n'\" fin |
        grep -q 'hello from nginx'"
check "WebSocket through the proxy" in_c $TOOLS ws 10.99.2.2 8000 /ws $PROXY
check "wget with http_proxy" bash -c "
    [ \"\$(ip netns exec $NS_C env http_proxy=http://$PROXY wget -q -T 10 -O - http://a.test.example/index.html)\" = 'hello from nginx' ]"
# DNS answers are kept a minute: asked once for two clients; asked again once the kept
# addresses refused (dnsmasq logs each query; evdns mixes the name's case, as 0x20 asks).
queries() { grep -ci "query\[A\] $1 " "$WORK/dnsmasq.log"; }
dns_kept() {
    p_curl -o /dev/null http://c.test.example/index.html &&
        p_curl -o /dev/null http://c.test.example/index.html || return 1
    echo "queries for c.test.example: $(queries c.test.example)"
    [ "$(queries c.test.example)" = 1 ]
}
dns_asked_again() {
    p_curl -o /dev/null http://d.test.example:81/
    p_curl -o /dev/null http://d.test.example:81/
    echo "queries for d.test.example: $(queries d.test.example)"
    [ "$(queries d.test.example)" = 2 ]
}
check "a name's DNS answer serves the next client too" dns_kept
check "a name whose addresses refused is asked again" dns_asked_again
check "python urllib with a ProxyHandler" in_c $TOOLS urllib-get "http://$PROXY" http://b.test.example/index.html
check "the proxy's IPv6 address" bash -c "
    [ \"\$(ip netns exec $NS_C curl -sS --max-time 10 -x 'http://[fd99:1::1]:8080' http://a.test.example/index.html)\" = 'hello from nginx' ]"

# --- CONNECT -------------------------------------------------------------------------------
check "CONNECT to a name: intercepted" body_is "hello from nginx" --http1.1 --cacert "$CA" https://a.test.example/index.html
cert_of() { # openssl s_client args...: the certificate's text, through the proxy
    timeout 10 ip netns exec "$NS_C" openssl s_client -proxy $PROXY "$@" </dev/null 2>/dev/null |
        openssl x509 -noout -text
}
check "CONNECT to a name: our certificate, with the upstream's names" bash -c "
    $(declare -f cert_of); NS_C=$NS_C PROXY=$PROXY
    t=\$(cert_of -connect a.test.example:443 -servername a.test.example) &&
    echo \"\$t\" | grep -q 'Issuer: .*mitmtun' && echo \"\$t\" | grep -q 'DNS:alt-a.test.example'"
check "CONNECT to a name, no SNI: the CONNECT host names the upstream" bash -c "
    $(declare -f cert_of); NS_C=$NS_C PROXY=$PROXY
    cert_of -connect a.test.example:443 -noservername | grep -q 'DNS:alt-a.test.example'"
check "record: https inside CONNECT" e2e_http_record '
    r["scheme"]=="https" and r["url"]=="https://a.test.example/index.html" and r["mode"]=="explicit"
    and r["tls"]["intercepted"] and r["status"]==200'
check "record: the CONNECT itself" e2e_http_record 'r["method"]=="CONNECT" and r["url"]=="a.test.example:443" and r["status"]==200'
check "CONNECT to a bare IP: intercepted" body_is "hello from nginx" --http1.1 --cacert "$CA" https://10.99.2.2/index.html
check "CONNECT to a bare IP: the certificate names the IP" bash -c "
    $(declare -f cert_of); NS_C=$NS_C PROXY=$PROXY
    cert_of -connect 10.99.2.2:443 | grep -q 'IP Address:10.99.2.2'"
# nginx on 8443 closes idle keep-alive connections after 1 s: the next request inside the tunnel
# goes to the server over a new TLS connection, with the SNI the client sent, or without one
# the CONNECT host.
check "CONNECT: a request after the server closed between requests" \
    in_c $TOOLS pause-get 10.99.2.2 8443 2 "$CA" a.test.example $PROXY
check "CONNECT, no SNI: a request after the server closed between requests" \
    in_c $TOOLS pause-get 10.99.2.2 8443 2 "$CA" a.test.example $PROXY no
check "record: the second request inside the tunnel went out over TLS again" e2e_http_record '
    r["url"]=="https://a.test.example:8443/index.html?again" and r["status"]==200
    and r["mode"]=="explicit" and r["timings"]["tls_ms"]>=0'
check "CONNECT to a non-TLS port: relayed raw" in_c $TOOLS connect-tunnel $PROXY 10.99.2.2:2525 "220 mitmtun-test"
check "CONNECT, then plain HTTP inside: through the HTTP layer" body_is "hello from nginx" -p http://a.test.example/index.html
check "record: HTTP inside CONNECT" e2e_http_record 'r["scheme"]=="http" and r["mode"]=="explicit" and r["method"]=="GET" and r["url"]=="http://a.test.example/index.html"'

# --- errors --------------------------------------------------------------------------------
WHY="cannot resolve 'nosuch.invalid'" check "502: the name does not resolve" status_is 502 http://nosuch.invalid/
check "record: 502 with the reason" e2e_http_record 'r["status"]==502 and "nosuch.invalid" in r["error"] and r["url"]=="http://nosuch.invalid/"'
WHY="Connection refused" check "502: refused" status_is 502 http://10.99.2.2:81/
WHY="timed out" check "504: no answer" status_is 504 http://10.99.2.2:82/
check "record: 504" e2e_http_record 'r["status"]==504 and r["url"]=="http://10.99.2.2:82/"'
WHY="CONNECT" check "502 for CONNECT to a closed port" bash -c "
    ip netns exec $NS_C curl -sS --max-time 10 -x http://$PROXY https://10.99.2.2:81/ 2>&1 | grep -q 'CONNECT.*502'"
WHY="allow_local" check "403: the appliance itself" status_is 403 http://10.99.1.1:8080/
WHY="allow_local" check "403: loopback" status_is 403 http://127.0.0.1/
# The appliance's addresses are read once and again after the kernel reports a change.
in_a ip addr add 10.99.3.3/32 dev lo
WHY="allow_local" check "403: an address the appliance got after those checks" status_is 403 http://10.99.3.3/
in_a ip addr del 10.99.3.3/32 dev lo
WHY="10.99.3.3" check "502 once that address is gone again (no longer the appliance)" status_is 502 http://10.99.3.3/
WHY="malformed request" check "400: a malformed head" bash -c "
    in_c() { ip netns exec $NS_C \"\$@\"; }
    in_c $TOOLS raw 10.99.1.1 8080 \"'GET http://a.test.example/ HTTP/1.1\\r\\nno colon here\\r\\n\\r\\n'\" |
        grep -q '^HTTP/1.1 400'"
WHY="absolute-form" check "400: origin-form to the proxy" bash -c "
    ip netns exec $NS_C $TOOLS raw 10.99.1.1 8080 \"'GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n'\" | grep -q 'absolute-form'"
big=$(head -c 70000 /dev/zero | tr '\0' a)
WHY="max_header_bytes" check "431: a head over max_header_bytes" status_is 431 -H "X-Big: $big" http://a.test.example/
check "the CA page by onboarding_host" bash -c "
    ip netns exec $NS_C curl -sS --max-time 10 -x http://$PROXY http://mitm.it/cert/pem | cmp - $CA"

# --- the same front end through the TUN --------------------------------------------------------
# With the kernel's local route for the TUN address gone, the client's packets for it are
# routed into the TUN like any others: lwIP terminates them and the front end answers.
in_a ip route del local 10.200.0.1 dev mitm0 table local
check "the host stack no longer owns the TUN address" bash -c "
    ! ip -n $NS_A route show table local | grep -q '^local 10.200.0.1 '"
check "explicit proxy on the TUN address, through lwIP" body_is "hello from nginx" \
    -x http://10.200.0.1:8080 http://a.test.example/index.html
check "the CA page on the TUN address, through lwIP" bash -c "
    ip netns exec $NS_C curl -sS --max-time 10 http://10.200.0.1/cert/pem | cmp - $CA"
in_a ip route add local 10.200.0.1 dev mitm0 table local

# --- access control: a client from elsewhere -------------------------------------------------
in_s ip route add 10.99.1.1/32 via 10.99.2.1
check "403 for a client not on the TUN's or a listening interface's network" bash -c "
    ip netns exec $NS_S curl -sS --max-time 10 -x http://$PROXY http://a.test.example/ | grep -q 'may not use this proxy'"

# --- HAR -------------------------------------------------------------------------------------
# one snapshot of the records for both sides of the comparison (records are written in batches)
check "record: the 403" e2e_http_record 'r["status"]==403'
cp "$FLOWS" "$WORK/snapshot.jsonl"
check "HAR: every http record, as HAR 1.2" bash -c "
    $MITMTUN har $WORK/snapshot.jsonl >$WORK/flows.har && python3 - $WORK/flows.har $WORK/snapshot.jsonl <<'PY'
import json, sys
har = json.load(open(sys.argv[1]))
records = [r for r in map(json.loads, open(sys.argv[2])) if r['type'] == 'http']
log = har['log']
assert log['version'] == '1.2' and log['creator']['name'] == 'mitmtun', log['creator']
entries = log['entries']
assert len(entries) == len(records) > 20, (len(entries), len(records))
for e, r in zip(entries, records):
    assert e['startedDateTime'] == r['ts'] and e['request']['url'] == r['url']
    assert e['request']['method'] == r['method'] and e['response']['status'] == r['status']
    for k in ('blocked', 'dns', 'connect', 'send', 'wait', 'receive', 'ssl'):
        assert isinstance(e['timings'][k], (int, float)), k
    assert e['time'] >= 0 and isinstance(e['request']['headers'], list)
    assert all(set(h) == {'name', 'value'} for h in e['request']['headers'] + e['response']['headers'])
post = [e for e in entries if e['request']['method'] == 'POST']
assert post and post[0]['request']['bodySize'] == 1048576
assert any(e['request']['url'].startswith('https://') and e['timings']['ssl'] >= 0 for e in entries)
PY"
check "HAR: a missing file is named" bash -c "
    out=\$($MITMTUN har $WORK/nope.jsonl 2>&1); [ \$? = 1 ] && echo \"\$out\" | grep -q 'nope.jsonl: No such file'"
bad_lines_skipped() { # a line cut short (crash, full disk) is named and skipped; the rest converts
    local first
    first=$(grep -m1 '"type":"http"' "$WORK/snapshot.jsonl")
    { echo "$first"; echo "not json"; echo "${first:0:40}"; echo "$first"; } >"$WORK/bad.jsonl"
    $MITMTUN har "$WORK/bad.jsonl" >"$WORK/bad.har" 2>"$WORK/bad.err" && return 1 # exit 1
    cat "$WORK/bad.err"
    grep -q 'bad.jsonl:2: not JSON' "$WORK/bad.err" && grep -q 'bad.jsonl:3: not JSON' "$WORK/bad.err" &&
        grep -q '2 of 4 lines skipped' "$WORK/bad.err" &&
        python3 -c "import json; assert len(json.load(open('$WORK/bad.har'))['log']['entries']) == 2"
}
check "HAR: broken lines are named and skipped, the others converted" bad_lines_skipped
check "every connection closed" e2e_wait_tcp_drained 10
e2e_stop_appliance

# --- authentication --------------------------------------------------------------------------
e2e_start_appliance --set proxy.auth=tester:s3cret
WHY="user name and password" check "407 without credentials" status_is 407 http://a.test.example/index.html
check "407 names the scheme" bash -c "
    ip netns exec $NS_C curl -sS -i --max-time 10 -x http://$PROXY http://a.test.example/ | grep -qi '^Proxy-Authenticate: Basic realm=\"mitmtun\"'"
WHY="user name and password" check "407 with a wrong password" status_is 407 -U tester:wrong http://a.test.example/index.html
WHY="user name and password" check "407 with the password cut short" status_is 407 -U tester:s3cre http://a.test.example/index.html
WHY="user name and password" check "407 with the password and more" status_is 407 -U tester:s3cret1 http://a.test.example/index.html
check "200 with the right ones" body_is "hello from nginx" -U tester:s3cret http://a.test.example/index.html
check "the credentials do not go upstream" bash -c "
    ip netns exec $NS_C curl -sS --max-time 10 -x http://$PROXY -U tester:s3cret http://a.test.example:8000/seen |
        python3 -c 'import json,sys; h=[k.lower() for k,v in json.load(sys.stdin)[\"headers\"]]; assert \"proxy-authorization\" not in h, h'"
e2e_stop_appliance

e2e_pass
