#!/bin/bash
# Transparent HTTP through the TUN: the HTTP layer on port 80, on other ports by detection, and
# inside intercepted TLS; keep-alive, pipelining, HEAD, close-delimited and chunked bodies, a
# WebSocket upgrade, error answers, the CA page, and the "http" records field by field.
source "$(dirname "$0")/lib.sh"
e2e_topology
e2e_http_servers
e2e_start_appliance --set tls.upstream_ca_file="$WORK/pki/uca.crt"
CA=$WORK/ca/ca.crt
S=10.99.2.2
head -c 1048576 /dev/urandom >"$WORK/upload.bin"
UPLOAD_SHA=$(sha256sum <"$WORK/upload.bin" | cut -d' ' -f1)

c_curl() { in_c curl -sS --max-time 10 "$@"; }
body_is() { # want curl-args...
    local want=$1 got
    shift
    got=$(c_curl "$@") || return 1
    [ "$got" = "$want" ] || { echo "got: $got"; return 1; }
}

# --- plain HTTP on port 80 -------------------------------------------------------------------
check "GET through the TUN" body_is "hello from nginx" http://$S/index.html
check "record: every field of a transparent GET" e2e_http_record '
    r["mode"]=="transparent" and r["scheme"]=="http" and r["method"]=="GET"
    and r["url"]=="http://10.99.2.2/index.html" and r["http_version"]=="HTTP/1.1"
    and r["status"]==200 and r["reason"]=="OK" and r["server"]=="10.99.2.2:80"
    and r["client"].startswith("10.99.1.2:") and r["ts"].endswith("Z")
    and ["Host","10.99.2.2"] in r["request_headers"]
    and ["Content-Length","17"] in r["response_headers"]
    and r["request_bytes"]==0 and r["response_bytes"]==17
    and r["timings"]["connect_ms"]>=0 and r["timings"]["tls_ms"]==-1
    and 0<=r["timings"]["ttfb_ms"]<=r["timings"]["total_ms"] and "error" not in r'
check "the URL names the Host the client sent" body_is "hello from nginx" -H "Host: a.test.example" http://$S/index.html
check "record: URL from Host" e2e_http_record 'r["url"]=="http://a.test.example/index.html"'
check "IPv6" body_is "hello from nginx" "http://[fd99:2::2]/index.html"
check "record: IPv6 URL" e2e_http_record 'r["url"]=="http://[fd99:2::2]/index.html" and r["server"]=="[fd99:2::2]:80"'

check "keep-alive: two requests on one connection" bash -c "
    out=\$(ip netns exec $NS_C curl -sS --max-time 10 http://$S/pipe/1.txt http://$S/pipe/2.txt) &&
    [ \"\$out\" = \"\$(printf '1\n2')\" ]"
check "record: both on one connection, the second without connect time" e2e_http_record '
    r["url"].endswith("/pipe/2.txt") and r["timings"]["connect_ms"]==-1'
check "pipelined requests answered in order" in_c $TOOLS pipeline $S 80 8
check "pipelined, then a FIN: every request answered" in_c $TOOLS pipeline $S 80 5 "" fin
check "HEAD: headers, no body" bash -c "
    out=\$(ip netns exec $NS_C curl -sS --max-time 10 -I http://$S/index.html) &&
    echo \"\$out\" | grep -q '^Content-Length: 17' && echo \"\$out\" | grep -q '^HTTP/1.1 200'"
check "record: HEAD" e2e_http_record 'r["method"]=="HEAD" and r["status"]==200 and r["response_bytes"]==0'

# --- detection on other ports; bodies ----------------------------------------------------------
check "POST with a chunked 1 MiB body (port 8000, detected)" bash -c "
    ip netns exec $NS_C curl -sS --max-time 10 -H 'Transfer-Encoding: chunked' \
        --data-binary @$WORK/upload.bin http://$S:8000/echo | grep -q '\"len\": 1048576, \"sha256\": \"$UPLOAD_SHA\"'"
check "record: POST, request_bytes counts the body" e2e_http_record '
    r["method"]=="POST" and r["url"]=="http://10.99.2.2:8000/echo" and r["request_bytes"]==1048576
    and ["Transfer-Encoding","chunked"] in r["request_headers"] and r["status"]==200'
check "POSTs of 0 to 70,000 bytes on one connection, head and body in one write" \
    in_c $TOOLS posts $S 8000
check "the same inside TLS (port 8444, detected)" in_c $TOOLS posts $S 8444 "$CA" a.test.example
check "record: a POST inside TLS, its body counted" e2e_http_record '
    r["url"]=="https://a.test.example:8444/echo" and r["request_bytes"]==70000 and r["status"]==200'
check "Expect: 100-continue" bash -c "
    ip netns exec $NS_C curl -sS -v --max-time 10 -H 'Expect: 100-continue' \
        --data-binary @$WORK/upload.bin http://$S:8000/echo 2>&1 | grep -q '< HTTP/1.1 100 Continue'"
check "close-delimited response, whole" bash -c "
    [ \$(ip netns exec $NS_C curl -sS --max-time 10 http://$S:8000/close | wc -c) = 14000 ]"
check "record: close-delimited" e2e_http_record 'r["url"].endswith(":8000/close") and r["response_bytes"]==14000'
check "WebSocket: 101, then raw bytes both ways" in_c $TOOLS ws $S 8000 /ws
check "record: the upgrade" e2e_http_record 'r["url"].endswith("/ws") and r["status"]==101'

# --- errors the appliance answers ----------------------------------------------------------
big=$(head -c 70000 /dev/zero | tr '\0' a)
check "431 for a head over max_header_bytes" bash -c "
    ip netns exec $NS_C curl -sS --max-time 10 -o /dev/null -w '%{http_code}' -H 'X-Big: $big' http://$S/ | grep -qx 431"
check "record: 431 with the reason" e2e_http_record 'r["status"]==431 and "max_header_bytes" in r["error"]'
check "502 when the server closes without answering" bash -c "
    out=\$(ip netns exec $NS_C curl -sS --max-time 10 -w '%{http_code}' http://$S:8001/) ;
    echo \"\$out\" | grep -q 'closed the connection before responding' && echo \"\$out\" | grep -q '502\$'"
check "record: 502" e2e_http_record 'r["status"]==502 and r["server"]=="10.99.2.2:8001"'

# --- HTTPS: the HTTP layer inside intercepted TLS --------------------------------------------
check "HTTPS (HTTP/1.1) through the TUN" body_is "hello from nginx" --http1.1 --cacert "$CA" \
    --resolve a.test.example:443:$S https://a.test.example/index.html
check "record: https with the tls object and its timing" e2e_http_record '
    r["scheme"]=="https" and r["url"]=="https://a.test.example/index.html" and r["status"]==200
    and r["tls"]["sni"]=="a.test.example" and r["tls"]["intercepted"] and r["tls"]["alpn"]=="http/1.1"
    and r["timings"]["tls_ms"]>=0 and r["mode"]=="transparent"'
check "HTTPS without ALPN" body_is "hello from nginx" --http1.1 --no-alpn --cacert "$CA" \
    --resolve a.test.example:443:$S https://a.test.example/pipe/3.txt -o /dev/null -w 'hello from nginx'
check "record: no ALPN, still HTTP" e2e_http_record 'r["url"]=="https://a.test.example/pipe/3.txt" and r["tls"]["alpn"]==""'
check "h2 and http/1.1 offered: HTTP/1.1 chosen ([tls] http2 = no)" body_is "1.1" --http2 \
    --cacert "$CA" --resolve b.test.example:443:$S https://b.test.example/index.html \
    -o /dev/null -w '%{http_version}'
check "record: that exchange, with alpn http/1.1" e2e_http_record '
    r["url"]=="https://b.test.example/index.html" and r["status"]==200
    and r["tls"]["alpn"]=="http/1.1" and r["tls"]["sni"]=="b.test.example"'
h2_only() { # a client that offers only h2 keeps it: the server's SETTINGS come back through
    ip netns exec "$NS_C" timeout 10 python3 - "$CA" "$S" <<'PY'
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
ctx.set_alpn_protocols(["h2"])
with ctx.wrap_socket(socket.create_connection((sys.argv[2], 443), timeout=5),
                     server_hostname="b.test.example") as s:
    assert s.selected_alpn_protocol() == "h2", s.selected_alpn_protocol()
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0]))
    head = s.recv(9)
    assert len(head) == 9 and head[3] == 4, head  # a SETTINGS frame
PY
}
check "h2 only offered: h2 kept, relayed as bytes" h2_only
check "record: no http record for h2, a tcp one with alpn h2" bash -c "
    ! $TOOLS http-record $FLOWS 'r[\"method\"]==\"PRI\"' >/dev/null &&
    $TOOLS record $FLOWS 'r.get(\"tls\",{}).get(\"alpn\")==\"h2\" and r[\"tls\"][\"sni\"]==\"b.test.example\"'"

# --- the CA page --------------------------------------------------------------------------
check "CA page at the TUN address" bash -c "
    ip netns exec $NS_C curl -sS --max-time 10 http://10.200.0.1/ | grep -q 'Android'"
check "its PEM is ca.crt" bash -c "
    ip netns exec $NS_C curl -sS --max-time 10 http://10.200.0.1/cert/pem | cmp - $CA"
check "onboarding_host through the TUN: the DER form" bash -c "
    ip netns exec $NS_C curl -sS --max-time 10 -H 'Host: mitm.it' http://$S/cert/cer |
        cmp - <(openssl x509 -in $CA -outform der)"
check "record: the CA page" e2e_http_record 'r["url"]=="http://mitm.it/cert/cer" and r["status"]==200'
check "unknown page: 404" bash -c "
    ip netns exec $NS_C curl -sS --max-time 10 -o /dev/null -w '%{http_code}' http://10.200.0.1/nope | grep -qx 404"

# The server closes an idle keep-alive connection (nginx: keepalive_timeout 1s) while the
# client's stays open: the next request is sent on a new upstream connection, TLS when the
# stream is.
check "HTTP: a request after the server closed between requests" \
    in_c $TOOLS pause-get $S 8081 2
check "HTTPS: a request after the server closed between requests" \
    in_c $TOOLS pause-get $S 8443 2 "$CA" a.test.example
check "record: the second HTTPS request went out over TLS again" e2e_http_record '
    r["url"]=="https://a.test.example:8443/index.html?again" and r["status"]==200
    and r["timings"]["connect_ms"]>=0 and r["timings"]["tls_ms"]>=0'

check "every connection closed" e2e_wait_tcp_drained 10
e2e_stop_appliance

# --- body capture: [log] body_max, gzip decoded with body_decode ------------------------------
e2e_start_appliance --set log.body_max=100 --set log.body_decode=yes --set proxy.idle_timeout=2
check "[proxy] idle_timeout closes a silent keep-alive connection" in_c $TOOLS idle-closed $S 80 2
check "gzip response" bash -c "
    ip netns exec $NS_C curl -sS --max-time 10 --compressed http://$S/text.txt | cmp - $WORK/www/text.txt"
check "record: the first 100 bytes, decoded" e2e_http_record '
    r["url"].endswith("/text.txt") and ["Content-Encoding","gzip"] in r["response_headers"]
    and r["response_body"]==open("'"$WORK"'/www/text.txt").read()[:100]
    and r["response_bytes"] < 20000'
check "request body captured" bash -c "
    ip netns exec $NS_C curl -sS --max-time 10 --data-binary 'name=value&other=1' http://$S:8000/echo >/dev/null"
check "record: request_body" e2e_http_record 'r["method"]=="POST" and r.get("request_body")=="name=value&other=1"'
check "binary bodies as base64" bash -c "
    ip netns exec $NS_C curl -sS --max-time 10 --data-binary @$WORK/upload.bin http://$S:8000/echo >/dev/null"
check "record: base64 of the first 100 bytes" e2e_http_record '
    r["request_bytes"]==1048576 and r.get("request_body_encoding")=="base64"
    and __import__("base64").b64decode(r["request_body"])==open("'"$WORK"'/upload.bin","rb").read(100)'

# --- log rotation: SIGUSR2 reopens the flows file ------------------------------------------------
rotated() { # the flows file moved away, SIGUSR2, then one more exchange: it lands in a new file
    e2e_records_settle
    mv "$FLOWS" "$FLOWS.1"
    kill -USR2 "$APP_PID"
    for _ in $(seq 50); do grep -q "flows: reopened" "$APP_LOG" && break; sleep 0.1; done
    c_curl -o /dev/null "http://$S/index.html?after-rotation"
    e2e_http_record 'r["url"].endswith("?after-rotation")' >/dev/null &&
        ! grep -q 'after-rotation' "$FLOWS.1" && grep -q '"url":"http://10.99.2.2/index.html"' "$FLOWS.1"
}
check "SIGUSR2 after a rotation: new records in a new file, the old ones kept" rotated
e2e_stop_appliance
e2e_pass
