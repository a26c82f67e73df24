"""Small network clients and servers for the end-to-end tests. Every wait is bounded."""
import asyncio
import hashlib
import json
import os
import socket
import ssl
import struct
import sys
import threading
import time


def record(path, expr, timeout=5.0, http=False):
    """Prints the last connection record r (tcp or udp) for which expr holds; fails if none
    appears in time."""
    deadline = time.time() + timeout
    while True:
        found = None
        try:
            with open(path) as f:
                for line in f:
                    r = json.loads(line)
                    if (r["type"] == "http") == http and eval("(" + expr + ")", {}, {"r": r}):
                        found = r
        except FileNotFoundError:
            pass
        if found is not None:
            print(json.dumps(found))
            return 0
        if time.time() > deadline:
            print(f"no record with {expr} in {path}")
            return 1
        time.sleep(0.1)


def http_record(path, expr):
    """Prints the last "http" record r for which expr holds; fails if none appears in time."""
    return record(path, expr, http=True)


def connect(host, port, expect, max_seconds):
    """Connects and expects one outcome: ok, refused, unreachable or reset, within max_seconds."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family)
    s.settimeout(float(max_seconds) + 5)
    start = time.time()
    try:
        s.connect((host, int(port)))
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        s.recv(1) or s.recv(1)
        got = "ok"
    except ConnectionRefusedError:
        got = "refused"
    except OSError as e:
        got = {113: "unreachable", 101: "unreachable", 104: "reset"}.get(e.errno, repr(e))
    elapsed = time.time() - start
    print(f"{got} after {1000 * elapsed:.0f} ms")
    return 0 if got == expect and elapsed <= float(max_seconds) else 1


def dns(server, name):
    """Sends an A query over UDP and prints the first answer's address."""
    qid = 0x6d74
    query = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        query += bytes([len(label)]) + label.encode()
    query += b"\0" + struct.pack("!HH", 1, 1)
    family = socket.AF_INET6 if ":" in server else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.settimeout(3)
    s.sendto(query, (server, 53))
    reply, _ = s.recvfrom(4096)
    rid, flags, qd, an = struct.unpack("!HHHH", reply[:8])
    assert rid == qid and an >= 1, f"bad reply id={rid:#x} answers={an}"
    pos = len(query)
    # answer: name (pointer), type, class, ttl, rdlength, rdata
    pos += 2 if reply[pos] & 0xC0 else reply.index(b"\0", pos) + 1 - pos
    rtype, _, _, rdlen = struct.unpack("!HHIH", reply[pos:pos + 10])
    assert rtype == 1 and rdlen == 4
    print(socket.inet_ntoa(reply[pos + 10:pos + 14]))
    return 0


def udp_refused(host, port):
    """Expects the datagram to be refused (ICMP port unreachable) within two seconds."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.settimeout(2)
    s.connect((host, int(port)))
    start = time.time()
    s.send(b"\xc0QUIC-like initial packet")
    try:
        s.recv(100)
    except ConnectionRefusedError:
        print(f"refused after {1000 * (time.time() - start):.0f} ms")
        return 0
    except socket.timeout:
        print("no answer: not refused")
        return 1
    print("got an answer: not refused")
    return 1


def halfclose_server(port, log):
    """7001-style: read to EOF, then answer. 7002-style: send, half-close, then read to EOF."""
    srv = socket.create_server(("::", int(port)), family=socket.AF_INET6, dualstack_ipv6=True)
    srv.settimeout(60)
    while True:
        conn, _ = srv.accept()
        conn.settimeout(10)
        mode = conn.recv(1)
        if mode == b"U":  # client uploads, half-closes, then reads our answer
            n = 0
            while chunk := conn.recv(65536):
                n += len(chunk)
            conn.sendall(f"got {n}".encode())
        elif mode == b"D":  # we send, half-close, then read what the client still sends
            conn.sendall(b"x" * 100000)
            conn.shutdown(socket.SHUT_WR)
            n = 0
            while chunk := conn.recv(65536):
                n += len(chunk)
            with open(log, "a") as f:
                f.write(f"received {n} after our FIN\n")
        conn.close()


def halfclose_client(host, port, mode):
    s = socket.create_connection((host, int(port)), timeout=10)
    if mode in ("U", "U0"):  # U0: the FIN follows the first byte, while it decides nothing yet
        size = 200000 if mode == "U" else 0
        s.sendall(b"U" + b"y" * size)
        s.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
        print(answer.decode())
        return 0 if answer == f"got {size}".encode() else 1
    s.sendall(b"D")
    got = 0
    while chunk := s.recv(65536):
        got += len(chunk)
    # The server half-closed; this direction must still carry data.
    s.sendall(b"z" * 12345)
    s.shutdown(socket.SHUT_WR)
    s.recv(1)
    print(f"received {got} before the server's FIN")
    return 0 if got == 100000 else 1


async def _fetch(host, port, path, sem_start):
    await sem_start.wait()
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n".encode())
    data = await reader.read()
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return head.split(b" ")[1] if head else b"", hashlib.sha256(body).hexdigest()


async def _concurrent(host, port, n, path, want):
    go = asyncio.Event()
    tasks = [asyncio.create_task(_fetch(host, port, path, go)) for _ in range(n)]
    go.set()
    results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 120)
    good = sum(1 for r in results if not isinstance(r, Exception) and r == (b"200", want))
    errors = [repr(r) for r in results if isinstance(r, Exception)][:5]
    print(f"{good}/{n} complete and byte-exact {errors}")
    return 0 if good == n else 1


def concurrent(host, port, n, path, want):
    """Opens n connections at once, each fetching path; all bodies must hash to want."""
    return asyncio.run(_concurrent(host, port, int(n), path, want))


def hold(host, port, n, seconds):
    """Opens n idle TCP connections and keeps them open for seconds."""
    socks = []
    for _ in range(int(n)):
        socks.append(socket.create_connection((host, int(port)), timeout=10))
    print(f"holding {len(socks)} connections", flush=True)
    time.sleep(float(seconds))
    return 0


def hold_some(host, port, n, seconds, out):
    """Opens n TCP connections one after another, counting refusals (not fatal); writes
    "opened refused" to the file out, then keeps the opened ones for seconds."""
    socks, refused = [], 0
    for _ in range(int(n)):
        try:
            socks.append(socket.create_connection((host, int(port)), timeout=10))
        except ConnectionRefusedError:
            refused += 1
    with open(out + ".tmp", "w") as f:
        f.write(f"{len(socks)} {refused}\n")
    os.rename(out + ".tmp", out)
    time.sleep(float(seconds))
    return 0


def paused_get(host, port, path, pause):
    """GET path with a small receive buffer, stop reading for pause seconds (the window shuts at
    once; the kernel still answers probes), then read to the end: the body must be whole."""
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.settimeout(30)
    s.connect((host, int(port)))
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
    data = s.recv(65536)
    time.sleep(float(pause))
    while chunk := s.recv(1 << 20):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    want = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    print(f"{len(body)} of {want} body bytes after a {pause} s pause")
    return 0 if len(body) == want else 1


def _tls_worker(args):
    host, port, seconds, cafile, names, offset, proxy = args
    import ssl
    ctx = ssl.create_default_context(cafile=cafile)
    deadline = time.time() + seconds
    n = failed = 0
    while time.time() < deadline and failed < 100:
        # "hN.x": a new name each time; "hN%500.x": names cycle through h0..h499 per process offset
        if "N%" in names:
            head, rest = names.split("N%", 1)
            mod, tail = rest.split(".", 1)
            name = f"{head}{(offset + n + failed) % int(mod)}.{tail}"
        elif "N" in names:
            name = names.replace("N", str(offset + n + failed))
        else:
            name = names
        try:
            if proxy: # a CONNECT tunnel through the explicit proxy (host:port)
                phost, pport = proxy.rsplit(":", 1)
                raw = socket.create_connection((phost, int(pport)), timeout=5)
                raw.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    byte = raw.recv(1)
                    if not byte:
                        raise OSError("the proxy closed")
                    head += byte
                if b" 200 " not in head.split(b"\r\n")[0]:
                    raise OSError(head.decode(errors="replace"))
            else:
                raw = socket.create_connection((host, port), timeout=5)
            with ctx.wrap_socket(raw, server_hostname=name) as s:
                s.sendall(f"GET / HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode())
                while s.recv(65536):
                    pass
            n += 1
        except OSError:
            failed += 1
    return n, failed


def tls_rate(host, port, seconds, procs, cafile, names, proxy=""):
    """New TLS connections per second, each one GET; names with N get a distinct N each time;
    with proxy (host:port), each through a CONNECT tunnel."""
    import multiprocessing
    seconds, procs = float(seconds), int(procs)
    with multiprocessing.Pool(procs) as pool:
        spread = 1000000 if "N%" not in names else int(names.split("N%")[1].split(".")[0]) // procs
        counts = pool.map(_tls_worker, [(host, int(port), seconds, cafile, names, i * spread,
                                         proxy) for i in range(procs)])
    done, failed = sum(c[0] for c in counts), sum(c[1] for c in counts)
    if failed:
        print(f"{failed} connections failed", file=sys.stderr)
    print("%.0f" % (done / seconds))
    return 0


def _read_body(rfile, headers):
    """The request body, de-chunked (Content-Length or chunked)."""
    if headers.get("Transfer-Encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int(rfile.readline().split(b";")[0], 16)
            if size == 0:
                while rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return body
            body += rfile.read(size)
            rfile.readline()
    return rfile.read(int(headers.get("Content-Length", 0)))


def http_echo_server(port, cert="", key=""):
    """HTTP/1.1 test server (HTTPS with cert and key): POST/PUT answer {"len","sha256"} of the
    body (100-continue honoured); GET /close answers close-delimited; GET /ws switches to a raw
    echo after 101."""
    import http.server

    early = {"seen": None, "done": threading.Event()}

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _send(self, code, body, ctype="application/json"):
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            if self.path == "/early": # answers first, then reads the body; GET /early-seen
                early["done"].clear() # the last such body is the one reported
                self._send(200, b"{}")
                body = _read_body(self.rfile, self.headers)
                early["seen"] = {"len": len(body), "sha256": hashlib.sha256(body).hexdigest()}
                early["done"].set()
                return
            body = _read_body(self.rfile, self.headers)
            seen = {"len": len(body), "sha256": hashlib.sha256(body).hexdigest(),
                    "expect": self.headers.get("Expect", ""),
                    "proxy_headers": [k for k in self.headers if k.lower().startswith("proxy-")]}
            self._send(200, json.dumps(seen).encode())

        do_PUT = do_POST

        def do_GET(self):
            if self.path == "/early-seen":
                early["done"].wait(5)
                self._send(200, json.dumps(early["seen"]).encode())
            elif self.path == "/close":
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(b"until the end\n" * 1000)
                self.close_connection = True
            elif self.path == "/ws":
                self.send_response(101)
                self.send_header("Upgrade", "websocket")
                self.send_header("Connection", "Upgrade")
                self.end_headers()
                self.wfile.flush()
                self.connection.settimeout(10)
                while True:
                    data = self.connection.recv(65536)
                    if not data:
                        break
                    self.connection.sendall(data)
                self.close_connection = True
            else:
                seen = {"path": self.path, "headers": list(self.headers.items())}
                self._send(200, json.dumps(seen).encode())

    srv = http.server.ThreadingHTTPServer(("", int(port)), Handler)
    srv.daemon_threads = True
    if cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.serve_forever()


def posts(host, port, cafile="", name=""):
    """POSTs on one keep-alive connection (TLS when cafile is given, name as SNI and Host), each
    head and body in one write, of sizes around what the appliance gathers for one write
    upstream (16 KiB), then two in one write: each answer must name its own body's length and
    SHA-256."""
    s = _connect(host, port)
    if cafile:
        s = ssl.create_default_context(cafile=cafile).wrap_socket(s, server_hostname=name)
    f = s.makefile("rb")
    sizes = [0, 1, 700, 16 * 1024 - 100, 16 * 1024 + 1, 70000, 3]
    bodies = [bytes((i * 7 + k) % 251 for k in range(n)) for i, n in enumerate(sizes)]

    def request(body):
        return (f"POST /echo HTTP/1.1\r\nHost: {name or host}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode() + body

    def answered(i):
        status, answer = _read_response(f)
        seen = json.loads(answer or b"{}")
        body = bodies[i]
        if status == "HTTP/1.1 200 OK" and seen.get("len") == len(body) and \
                seen.get("sha256") == hashlib.sha256(body).hexdigest():
            return True
        print(f"POST {i} ({len(body)} bytes): {status} {seen}")
        return False

    for i in range(len(bodies) - 2):
        s.sendall(request(bodies[i]))
        if not answered(i):
            return 1
    s.sendall(request(bodies[-2]) + request(bodies[-1]))
    if not answered(len(bodies) - 2) or not answered(len(bodies) - 1):
        return 1
    print(f"{len(bodies)} POSTs answered, each with its own body")
    return 0


def early_then_elsewhere(proxy, first, second):
    """Through the explicit proxy "h:p", on one connection: a POST to http://first/early that
    the server answers before reading its body, the rest of the body sent only after the
    answer, with a GET of http://second/index.html (nginx, another server) in the same write;
    then a GET of http://first/early-seen. nginx must answer its GET, and the first server
    must have read the body whole: none of it may go to nginx."""
    h, p = proxy.rsplit(":", 1)
    s = _connect(h, p)
    f = s.makefile("rb")
    body = bytes(k % 251 for k in range(100000))
    s.sendall(f"POST http://{first}/early HTTP/1.1\r\nHost: {first}\r\n"
              f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:10])
    status, _ = _read_response(f)
    if status != "HTTP/1.1 200 OK":
        print("POST:", status)
        return 1
    s.sendall(body[10:] + f"GET http://{second}/index.html HTTP/1.1\r\nHost: {second}\r\n\r\n"
              .encode())
    status, answer = _read_response(f)
    if status != "HTTP/1.1 200 OK" or answer != b"hello from nginx\n":
        print("GET from the second server:", status, answer[:200])
        return 1
    s.sendall(f"GET http://{first}/early-seen HTTP/1.1\r\nHost: {first}\r\n\r\n".encode())
    status, answer = _read_response(f)
    want = {"len": len(body), "sha256": hashlib.sha256(body).hexdigest()}
    if status != "HTTP/1.1 200 OK" or json.loads(answer or b"null") != want:
        print("what the first server read:", status, answer)
        return 1
    print("the body went whole to the first server, the GET to the second")
    return 0


def tcp_server(port, greeting):
    """Accepts connections one at a time: sends greeting (may be empty, escapes like \\r\\n
    understood), reads once, closes. A server that closes without answering, or one that speaks
    first."""
    import codecs
    hello = codecs.decode(greeting, "unicode_escape").encode("latin-1")
    s = socket.create_server(("0.0.0.0", int(port)))
    while True:
        c, _ = s.accept()
        try:
            c.settimeout(10)
            if hello:
                c.sendall(hello)
            c.recv(65536)
        except OSError:
            pass
        c.close()


def echo_server(port):
    """Echoes every connection's bytes back until that client closes; connections stay open
    however long they idle."""
    import threading

    def serve(c):
        with c:
            try:
                while data := c.recv(65536):
                    c.sendall(data)
            except OSError:
                pass

    s = socket.create_server(("0.0.0.0", int(port)))
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


def idle_echo(host, port, seconds):
    """Through an echo server: one line echoed, seconds of silence, then another line echoed
    on the same connection."""
    s = _connect(host, port)
    s.settimeout(float(seconds) + 10)
    for i, line in enumerate((b"one\n", b"two\n")):
        if i:
            time.sleep(float(seconds))
        s.sendall(line)
        got = b""
        while len(got) < len(line) and (d := s.recv(64)):
            got += d
        if got != line:
            print(f"sent {line!r}, got {got!r}")
            return 1
        print(f"echoed {line!r}", flush=True)
    return 0


def _connect(host, port):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family)
    s.settimeout(10)
    s.connect((host, int(port)))
    return s


def _read_response(f):
    """A response's status line and its body (by Content-Length) from file f."""
    status = f.readline().decode("latin-1").strip()
    length = 0
    while True:
        line = f.readline().decode("latin-1").strip()
        if not line:
            break
        if line.lower().startswith("content-length:"):
            length = int(line.split(":", 1)[1])
    return status, f.read(length)


def _read_head(s):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head.decode("latin-1"), rest


def ws(host, port, target, proxy=""):
    """Asks host:port (or the explicit proxy "h:p", absolute-form) to upgrade target to a
    WebSocket, then checks that 3 messages come back byte-exact."""
    h, p = (proxy.rsplit(":", 1) if proxy else (host, port))
    s = _connect(h, p)
    url = f"http://{host}:{port}{target}" if proxy else target
    s.sendall(f"GET {url} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
              "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
              "Sec-WebSocket-Version: 13\r\n\r\n".encode())
    head, rest = _read_head(s)
    print(head.splitlines()[0] if head else "no response")
    if not head.startswith("HTTP/1.1 101"):
        return 1
    for i in range(3):
        msg = (f"message {i} " * (1 + 1000 * i)).encode()
        s.sendall(msg)
        got = rest
        rest = b""
        while len(got) < len(msg):
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        if got != msg:
            print(f"message {i}: sent {len(msg)} bytes, got {len(got)} back")
            return 1
    print("3 messages echoed")
    return 0


def raw(host, port, request, halfclose=""):
    """Sends request (a Python string literal), half-closing after it when halfclose is given,
    and prints the response's status line and body."""
    import ast
    s = _connect(host, port)
    s.sendall(ast.literal_eval(request).encode("latin-1"))
    if halfclose:
        s.shutdown(socket.SHUT_WR)
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        pass
    head, _, body = data.partition(b"\r\n\r\n")
    print(head.decode("latin-1"))
    print(body.decode("latin-1"))
    return 0


def pipeline(host, port, n, proxy="", halfclose=""):
    """Sends n GETs for /pipe/<i>.txt in one write (then a FIN with halfclose); checks the n
    responses come in order."""
    h, p = (proxy.rsplit(":", 1) if proxy else (host, port))
    s = _connect(h, p)
    prefix = f"http://{host}:{port}" if proxy else ""
    reqs = "".join(f"GET {prefix}/pipe/{i}.txt HTTP/1.1\r\nHost: {host}\r\n\r\n"
                   for i in range(int(n)))
    s.sendall(reqs.encode())
    if halfclose:
        s.shutdown(socket.SHUT_WR)
    buf = b""
    for i in range(int(n)):
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                print(f"connection closed after {i} responses")
                return 1
            buf += chunk
        head, _, buf = buf.partition(b"\r\n\r\n")
        length = int([l.split(b":")[1] for l in head.split(b"\r\n")
                      if l.lower().startswith(b"content-length:")][0])
        while len(buf) < length:
            buf += s.recv(65536)
        body, buf = buf[:length], buf[length:]
        if body != f"{i}\n".encode():
            print(f"response {i}: {body!r}")
            return 1
    print(f"{n} pipelined responses in order")
    return 0


def idle_closed(host, port, seconds):
    """One keep-alive GET, then silence: the server must close within seconds (+2 s), and not
    much before."""
    s = _connect(host, port)
    s.settimeout(float(seconds) + 5)
    s.sendall(f"GET /index.html HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    head, rest = _read_head(s)
    if not head.startswith("HTTP/1.1 200"):
        print("no response:", head)
        return 1
    start = time.time()
    try:
        while s.recv(65536):
            pass
    except socket.timeout:
        print("still open after", time.time() - start)
        return 1
    waited = time.time() - start
    print(f"closed after {waited:.1f} s idle")
    return 0 if float(seconds) - 0.5 <= waited <= float(seconds) + 2 else 1


def pause_get(host, port, seconds, cafile="", name="", proxy="", sni="yes"):
    """Two GETs of /index.html (the second with "?again") on one keep-alive connection (TLS when
    cafile is given, with name as SNI unless sni is "no"; through the explicit proxy "h:p" by
    CONNECT when given), seconds apart: both must be 200 with nginx's page, whatever the server
    did with its side of the connection meanwhile."""
    if proxy:
        h, p = proxy.rsplit(":", 1)
        s = _connect(h, p)
        s.sendall(f"CONNECT {name or host}:{port} HTTP/1.1\r\nHost: {name or host}\r\n\r\n".encode())
        head, rest = _read_head(s)
        if not head.startswith("HTTP/1.1 200") or rest:
            print("CONNECT:", head)
            return 1
    else:
        s = _connect(host, port)
    if cafile:
        ctx = ssl.create_default_context(cafile=cafile)
        ctx.set_alpn_protocols(["http/1.1"])
        if sni == "no":
            ctx.check_hostname = False  # the certificate is still verified against the CA
        s = ctx.wrap_socket(s, server_hostname=(name or host) if sni != "no" else None)
    f = s.makefile("rb")
    for i in range(2):
        if i:
            time.sleep(float(seconds))
        target = "/index.html?again" if i else "/index.html"
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: {name or host}\r\n\r\n".encode())
        status, body = _read_response(f)
        body = body.decode("latin-1")
        print(f"request {i + 1}: {status} {body.strip()!r}")
        if not status.startswith("HTTP/1.1 200") or body != "hello from nginx\n":
            return 1
    return 0


def connect_tunnel(proxy, target, expect):
    """CONNECT target through proxy "h:p"; after 200, expects the bytes expect from the server."""
    h, p = proxy.rsplit(":", 1)
    s = _connect(h, p)
    s.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    head, rest = _read_head(s)
    print(head.splitlines()[0] if head else "no response")
    if not head.startswith("HTTP/1.1 200"):
        return 1
    while len(rest) < len(expect):
        chunk = s.recv(4096)
        if not chunk:
            break
        rest += chunk
    print(rest)
    return 0 if rest.startswith(expect.encode()) else 1


def urllib_get(proxy, url):
    """python3 urllib through the explicit proxy: prints the status and body length."""
    import urllib.request
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": proxy}))
    with opener.open(url, timeout=10) as resp:
        body = resp.read()
    print(resp.status, len(body))
    return 0 if resp.status == 200 else 1


def tls_counting_server(port, cert, key, mode="keep", idle="30", keep_alive=""):
    """HTTPS/1.1 on port (plain HTTP/1.1 when cert is "-"), keep-alive: each response's body
    names the connection (numbered from 1 in the order of their first requests) and the request
    on it that it answers, "conn=N req=M". mode "once": a second request on a connection is not
    answered, the connection closes instead (a server that closed an idle connection just as
    the request came). idle: seconds a connection may wait for a request. keep_alive: a
    "Keep-Alive: timeout=" value to announce."""
    import socketserver
    import threading
    ctx = None
    if cert != "-":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
    lock = threading.Lock()
    accepted = [0]

    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            try:
                s = ctx.wrap_socket(self.request, server_side=True) if ctx else self.request
            except (OSError, ssl.SSLError):
                return
            n = 0
            s.settimeout(float(idle))
            f = s.makefile("rb")
            try:
                for m in range(1, 1000):
                    if not f.readline(65536):
                        return
                    if not n: # numbered here: a readiness probe sends nothing
                        with lock:
                            accepted[0] += 1
                            n = accepted[0]
                    length = 0
                    for _ in range(100):
                        h = f.readline(65536)
                        if h in (b"\r\n", b"\n", b""):
                            break
                        name, _, value = h.decode("latin-1").partition(":")
                        if name.strip().lower() == "content-length":
                            length = int(value)
                    if length:
                        f.read(length)
                    if mode == "once" and m > 1:
                        return
                    body = f"conn={n} req={m}\n".encode()
                    ka = f"Keep-Alive: timeout={keep_alive}\r\n" if keep_alive else ""
                    s.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{ka}\r\n"
                              .encode() + body)
            except (OSError, ssl.SSLError, ValueError):
                return
            finally:
                f.close()
                s.close()

    class Server(socketserver.ThreadingTCPServer):
        address_family = socket.AF_INET6 # and IPv4, mapped
        allow_reuse_address = True
        daemon_threads = True

    with Server(("::", int(port)), Handler) as srv:
        srv.serve_forever()


def tls_burst_server(port, cert, key, first=""):
    """TLS on port, each connection left open afterwards: answers a GET with its head and its
    body as two TLS records, and a line "go" with three records ("one", "two", "three", a line
    each), sent corked so that they arrive in one piece. first: TLS 1.2, and the server speaks
    first: two records ("hello", "there") in one piece with its last handshake message."""
    import threading
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    if first:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2

    def serve(c):
        try:
            if first: # each flight waits up to 200 ms for more; the last one for the records
                c.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
            s = ctx.wrap_socket(c, server_side=True)
            s.settimeout(10)
            f = s.makefile("rb")
            if first:
                s.sendall(b"hello\n")
                s.sendall(b"there\n")
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)
                f.read(1)
                return
            first_line = f.readline(65536)
            if first_line.startswith(b"GET"):
                while f.readline(65536) not in (b"\r\n", b"\n", b""):
                    pass
                pieces = [b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n", b"burst\n"]
            else:
                pieces = [b"one\n", b"two\n", b"three\n"]
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
            for piece in pieces:
                s.sendall(piece)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)
            f.read(1) # until the client goes
        except (OSError, ssl.SSLError):
            pass
        c.close()

    srv = socket.create_server(("0.0.0.0", int(port)))
    while True:
        c, _ = srv.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


if __name__ == "__main__":
    cmd, args = sys.argv[1].replace("-", "_"), sys.argv[2:]
    sys.exit(globals()[cmd](*args))
