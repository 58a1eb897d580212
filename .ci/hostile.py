#!/usr/bin/env python3
"""Hostile clients against the real `feedsmith serve` binary, on 127.0.0.1 only; every step
is bounded in time and every server it starts is killed on exit.

    python3 .ci/hostile.py BINARY [--only NAME ...] [--conns 400] [--requests 2000]

Checks (each asserts; the script exits 1 on the first failure):
  pipelining   CONNS connections each send REQUESTS pipelined GETs of /rss.xml and never read
               (SO_RCVBUF 4096), twice: VmRSS stays under start + 100 MiB while they hang,
               the server closes them after `write_timeout_s`, and within 20 s of the
               sockets closing VmRSS is back within 20 MiB of its start
  smuggling    Content-Length + Transfer-Encoding, then a second request on the same connection:
               answered 400 and the connection closed, the second request never answered
  host         HTTP/1.1 without Host: 400; HTTP/1.0 without Host: 200
  body         a GET with a body over the limit: 413 and closed
  pipelined    legitimate pipelining (20 requests in one write) gets 20 answers in order
  shutdown     SIGTERM while 50 keep-alive clients loop on requests, 50 sit idle and 5 pipeline
               without reading: exits 0 within `shutdown_timeout_s` (5) + 1.5 s
  maxconn      past `max_connections`, new connections are closed and the log says why
  deletion     20,000 posts under one directory, `rm -rf` of it: served within 2 s of the rm
               ending, /healthz
               still ok, no warning logged
  export       `export` into a full filesystem (a 200 KiB tmpfs; skipped unless root): exit 2,
               no temp file left
"""

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import harness  # noqa: E402  (one server, config and /proc harness with the benchmarks)

HOST = harness.HOST
MIB = 1024


class Server:
    """`feedsmith serve` on 127.0.0.1:0 with the sample content and extra [server] keys,
    started, sampled and stopped by the benchmark harness (`bench/harness.py`); killed by
    `kill()`."""

    def __init__(self, binary, server_keys="", content_dir=None):
        self.dir = tempfile.mkdtemp(prefix="feedsmith-hostile.")
        overrides = {}
        if not os.environ.get("HOSTILE_BASELINE"):  # measuring a build without these keys
            for line in filter(None, server_keys.splitlines()):
                key, value = (part.strip() for part in line.split("=", 1))
                overrides["server__" + key] = value
        config = harness.write_config(
            os.path.join(self.dir, "config.toml"),
            content_dir or os.path.join(ROOT, "content"),
            export__dir='"%s"' % os.path.join(self.dir, "feeds"),
            **overrides,
        )
        self.server = harness.feedsmith_serve(binary, config, self.dir)
        self.proc = self.server.proc
        try:
            self.server.wait_up("/healthz", 200, timeout=60)
        except RuntimeError as e:
            self.kill()
            raise SystemExit("server did not start: %s" % e)
        self.port = self.server.port
        self.pid = self.proc.pid

    def rss_kb(self):
        return int(harness.Proc(self.pid).rss() * 1024)

    def fds(self):
        return len(os.listdir("/proc/%d/fd" % self.pid))

    def logtext(self):
        return self.server.text()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        subprocess.run(["rm", "-rf", self.dir], check=False)


def connect(port, rcvbuf=None, timeout=5):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    s.connect((HOST, port))
    return s


def read_until_closed(s, limit=1 << 20):
    """Everything the server sends until it closes (or 5 s of silence)."""
    data = b""
    s.settimeout(5)
    while len(data) < limit:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            return data, False
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


def get(port, path="/healthz", host="x"):
    s = connect(port)
    s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (path, host)).encode())
    data, _ = read_until_closed(s)
    s.close()
    return data


def status_codes(data):
    return [int(c) for c in re.findall(rb"HTTP/1\.1 (\d{3}) ", data)]


def check(cond, message):
    if not cond:
        raise AssertionError(message)
    print("  ok: " + message)


# ---- attacks --------------------------------------------------------------------------------


def pipelining(binary, conns, requests):
    srv = Server(binary, "write_timeout_s = 5")
    try:
        get(srv.port, "/rss.xml")
        time.sleep(0.5)
        start = srv.rss_kb()
        base_fds = srv.fds()
        afters = []
        for rnd in (1, 2):
            socks = attack(srv.port, conns, requests)
            peak = start
            for _ in range(20):
                peak = max(peak, srv.rss_kb())
                time.sleep(0.1)
            print("  round %d: VmRSS start %d kB, while %d connections hang %d kB (%+.1f MiB)"
                  % (rnd, start, conns, peak, (peak - start) / MIB))
            check(peak - start < 100 * MIB, "VmRSS under start + 100 MiB during %d non-reading pipelining connections" % conns)
            # The server must close them after write_timeout_s (5 s) of no write progress,
            # while the clients still read nothing: its open descriptors fall back.
            t0 = time.time()
            while time.time() - t0 < 15 and srv.fds() > base_fds + 5:
                time.sleep(0.2)
            left = max(srv.fds() - base_fds, 0)
            print("  server-side connections left %.1f s later: %d of %d" % (time.time() - t0, left, conns))
            check(left <= 5, "the server closes connections that do not read (write_timeout_s = 5)")
            for s, _ in socks:
                s.close()
            # jemalloc's background threads return freed pages within seconds (dirty-page
            # decay): wait up to 20 s for VmRSS to come back near where it started.
            t0 = time.time()
            while time.time() - t0 < 20 and srv.rss_kb() - start > 20 * MIB:
                time.sleep(0.5)
            afters.append(srv.rss_kb())
            print("  VmRSS %.1f s after the sockets closed: %d kB (%+.1f MiB from start)"
                  % (time.time() - t0, afters[-1], (afters[-1] - start) / MIB))
            check(afters[-1] - start < 20 * MIB, "VmRSS back within start + 20 MiB after the attack")
        check(afters[1] - afters[0] < 20 * MIB, "a second attack leaves no more behind (< 20 MiB)")
        check(b"200 OK" in get(srv.port, "/rss.xml"), "still serving")
    finally:
        srv.kill()


def attack(port, conns, requests):
    """CONNS sockets (SO_RCVBUF 4096) that send REQUESTS pipelined GETs, for at most 4 s."""
    payload = b"GET /rss.xml HTTP/1.1\r\nHost: x\r\n\r\n" * requests
    socks = []
    for _ in range(conns):
        s = connect(port, rcvbuf=4096)
        s.setblocking(False)
        socks.append([s, 0])
    deadline = time.time() + 4
    while time.time() < deadline and any(sent < len(payload) for _, sent in socks):
        for entry in socks:
            s, sent = entry
            if sent < len(payload):
                try:
                    entry[1] += s.send(payload[sent:sent + 65536])
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    entry[1] = len(payload)
        time.sleep(0.01)
    return socks


def exchange(port, request):
    """Sends REQUEST on a new connection: (status codes, raw answer, closed by the server)."""
    s = connect(port)
    s.sendall(request)
    data, closed = read_until_closed(s)
    s.close()
    return status_codes(data), data, closed


def smuggling(binary):
    srv = Server(binary)
    try:
        codes, _, closed = exchange(
            srv.port,
            b"POST /rss.xml HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"0\r\n\r\n"
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        )
        print("  answers: %s, closed by server: %s" % (codes, closed))
        check(codes == [400], "Content-Length with Transfer-Encoding: one 400, the smuggled request unanswered")
        check(closed, "the connection is closed after it (RFC 9112 6.1)")
        codes, _, closed = exchange(
            srv.port,
            b"GET /rss.xml HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        )
        check(codes == [413] and closed, "a chunked request body: 413, closed, nothing after it answered")
    finally:
        srv.kill()


def host(binary):
    srv = Server(binary)
    try:
        codes, _, closed = exchange(srv.port, b"GET /rss.xml HTTP/1.1\r\n\r\n")
        check(codes == [400] and closed, "HTTP/1.1 without Host: 400 and closed (RFC 9112 3.2)")
        _, data, _ = exchange(srv.port, b"GET /rss.xml HTTP/1.0\r\n\r\n")
        check(data.startswith(b"HTTP/1.0 200") or data.startswith(b"HTTP/1.1 200"), "HTTP/1.0 without Host: 200")
        codes, _, closed = exchange(srv.port, b"GET /rss.xml HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
        check(codes == [400] and closed, "two Host fields: 400 and closed")
    finally:
        srv.kill()


def body(binary):
    srv = Server(binary)
    try:
        codes, _, closed = exchange(
            srv.port,
            b"GET /rss.xml HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"a" * 100000,
        )
        check(codes == [413] and closed, "a body over the limit: 413 and closed")
        codes, _, _ = exchange(
            srv.port,
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        check(codes == [200, 200], "a small body is skipped and the next request answered")
    finally:
        srv.kill()


def pipelined(binary):
    srv = Server(binary)
    try:
        s = connect(srv.port)
        paths = ["/rss.xml", "/healthz", "/atom.xml", "/nope", "/feed.json"] * 4
        reqs = b"".join(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % p).encode() for p in paths[:-1])
        reqs += ("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % paths[-1]).encode()
        s.sendall(reqs)
        data, closed = read_until_closed(s, limit=1 << 26)
        s.close()
        expected = [404 if p == "/nope" else 200 for p in paths]
        check(status_codes(data) == expected and closed, "20 pipelined requests: 20 answers in order")
        # Keep-alive: one connection, many sequential requests.
        s = connect(srv.port)
        n = 0
        for _ in range(200):
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            buf = b""
            while b"}" not in buf:
                buf += s.recv(65536)
            n += 1
        s.close()
        check(n == 200, "200 sequential keep-alive requests on one connection")
    finally:
        srv.kill()


def shutdown(binary):
    srv = Server(binary, "shutdown_timeout_s = 5")
    stop = threading.Event()
    served = [0]

    def busy():
        try:
            s = connect(srv.port)
            while not stop.is_set():
                s.sendall(b"GET /rss.xml HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n")
                buf = b""
                while True:
                    m = re.search(rb"content-length: (\d+)\r\n.*?\r\n\r\n", buf, re.S | re.I)
                    if m and len(buf) >= m.end() + int(m.group(1)):
                        break
                    chunk = s.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                served[0] += 1
        except OSError:
            return

    try:
        threads = [threading.Thread(target=busy, daemon=True) for _ in range(50)]
        for t in threads:
            t.start()
        idle = [connect(srv.port) for _ in range(50)]
        for s in idle:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            s.recv(65536)
        # And 5 clients that pipeline requests and never read: only the timeout ends them.
        stuck = attack(srv.port, 5, 2000)
        time.sleep(2)
        before = served[0]
        t0 = time.time()
        srv.proc.send_signal(signal.SIGTERM)
        try:
            code = srv.proc.wait(timeout=8)
        except subprocess.TimeoutExpired:
            code = None
        took = time.time() - t0
        stop.set()
        print("  %d responses before SIGTERM; exited with %s in %.2f s" % (before, code, took))
        check(before > 0, "clients were being served")
        check(code == 0 and took < 6.5, "SIGTERM under load: exit 0 within shutdown_timeout_s (5) + 1.5 s")
        for s in idle + [s for s, _ in stuck]:
            s.close()
    finally:
        stop.set()
        srv.kill()


def maxconn(binary):
    srv = Server(binary, "max_connections = 20")
    try:
        held = [connect(srv.port) for _ in range(20)]
        for s in held:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            s.recv(65536)
        s = connect(srv.port)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        data, closed = read_until_closed(s)
        s.close()
        check(data == b"" and closed, "the 21st connection is closed unanswered")
        check("connection limit" in srv.logtext(), "the log says the connection limit was reached")
        for s in held:
            s.close()
        time.sleep(0.3)
        check(b"200 OK" in get(srv.port), "accepts again once connections close")
    finally:
        srv.kill()


def export_full(binary):
    """`export` into a 200 KiB tmpfs (the sample export is ~700 KiB): exit 2, no temp file."""
    mnt = tempfile.mkdtemp(prefix="feedsmith-full.")
    try:
        if os.geteuid() != 0 or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", mnt], capture_output=True
        ).returncode != 0:
            print("  skipped: cannot mount a tmpfs here (needs root)")
            return
        try:
            r = subprocess.run([binary, "--config", os.path.join(ROOT, "config.toml"), "export", "--out", mnt],
                               capture_output=True, timeout=60)
            temps = [f for _, _, fs in os.walk(mnt) for f in fs if f.endswith(".tmp")]
            print("  exit %d: %s" % (r.returncode, r.stderr.decode().strip().splitlines()[-1:]))
            check(r.returncode == 2 and b"No space left" in r.stderr, "a full filesystem: exit 2 with the reason")
            check(not temps, "no temp file left (%d found)" % len(temps))
        finally:
            subprocess.run(["umount", mnt], check=False)
    finally:
        os.rmdir(mnt)


def deletion(binary):
    """20,000 posts under one directory, `rm -rf` of it: published within 2 s, no problem."""
    import json
    import shutil
    content = tempfile.mkdtemp(prefix="feedsmith-del.")
    try:
        with open(os.path.join(content, "keep.md"), "w") as f:
            f.write("---\ntitle: Kept\ndate: 2024-01-01\n---\nx\n")
        bulk = os.path.join(content, "bulk")
        for i in range(20000):
            d = os.path.join(bulk, "d%d" % (i % 20))
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, "p%d.md" % i), "w") as f:
                f.write("---\ntitle: Bulk %d\ndate: 2024-02-01\n---\nx\n" % i)
        srv = Server(binary, content_dir=content)
        try:
            def health():
                body = get(srv.port, "/healthz").split(b"\r\n\r\n", 1)[1]
                return json.loads(body)
            check(health()["posts"] == 20001, "20,001 posts served")
            t0 = time.time()
            shutil.rmtree(bulk)
            rm = time.time() - t0
            while time.time() - t0 < 30 and health()["posts"] != 1:
                time.sleep(0.02)
            took = time.time() - t0
            h = health()
            print("  rm -rf took %.2f s; published %.2f s after it began (%.2f s after it ended); problems %s; log warnings %d"
                  % (rm, took, took - rm, h["problems"], srv.logtext().count(" WARN ")))
            for line in srv.logtext().splitlines():
                if "rebuilt" in line:
                    print("    " + line[line.find("files_changed"):])
            # From the end of `rm -rf` (which itself takes 0.3-1 s here): the watcher sees
            # the last events a debounce after it.
            check(h["posts"] == 1 and took - rm < 2, "a 20,000-file deletion is served within 2 s of rm -rf ending")
            check(h["status"] == "ok" and "cannot read" not in srv.logtext(), "a vanished file is no problem and no warning")
        finally:
            srv.kill()
    finally:
        shutil.rmtree(content, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--only", action="append")
    ap.add_argument("--conns", type=int, default=400)
    ap.add_argument("--requests", type=int, default=2000)
    args = ap.parse_args()
    steps = {
        "smuggling": lambda: smuggling(args.binary),
        "host": lambda: host(args.binary),
        "body": lambda: body(args.binary),
        "pipelined": lambda: pipelined(args.binary),
        "maxconn": lambda: maxconn(args.binary),
        "shutdown": lambda: shutdown(args.binary),
        "pipelining": lambda: pipelining(args.binary, args.conns, args.requests),
        "export": lambda: export_full(args.binary),
        "deletion": lambda: deletion(args.binary),
    }
    failed = 0
    for name, step in steps.items():
        if args.only and name not in args.only:
            continue
        print("== " + name)
        t0 = time.time()
        try:
            step()
        except (AssertionError, OSError) as e:
            print("  FAILED: %s" % e)
            failed += 1
        print("  (%.1f s)" % (time.time() - t0))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
