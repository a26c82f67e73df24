"""Small network clients and servers for the end-to-end tests. Every wait is bounded."""
import asyncio
import hashlib
import json
import socket
import struct
import sys
import time


def record(path, expr, timeout=5.0):
    """Prints the last flow record r for which expr holds; fails if none appears in time."""
    deadline = time.time() + timeout
    while True:
        found = None
        try:
            with open(path) as f:
                for line in f:
                    r = json.loads(line)
                    if eval(expr, {}, {"r": r}):
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
    if mode == "U":
        s.sendall(b"U" + b"y" * 200000)
        s.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
        print(answer.decode())
        return 0 if answer == b"got 200000" else 1
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


def _tls_worker(args):
    host, port, seconds, cafile, names, offset = args
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
            raw = socket.create_connection((host, port), timeout=5)
            with ctx.wrap_socket(raw, server_hostname=name) as s:
                s.sendall(f"GET / HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode())
                while s.recv(65536):
                    pass
            n += 1
        except OSError:
            failed += 1
    return n, failed


def tls_rate(host, port, seconds, procs, cafile, names):
    """New TLS connections per second, each one GET; names with N get a distinct N each time."""
    import multiprocessing
    seconds, procs = float(seconds), int(procs)
    with multiprocessing.Pool(procs) as pool:
        spread = 1000000 if "N%" not in names else int(names.split("N%")[1].split(".")[0]) // procs
        counts = pool.map(_tls_worker, [(host, int(port), seconds, cafile, names, i * spread)
                                        for i in range(procs)])
    done, failed = sum(c[0] for c in counts), sum(c[1] for c in counts)
    if failed:
        print(f"{failed} connections failed", file=sys.stderr)
    print("%.0f" % (done / seconds))
    return 0


if __name__ == "__main__":
    cmd, args = sys.argv[1].replace("-", "_"), sys.argv[2:]
    sys.exit(globals()[cmd](*args))
