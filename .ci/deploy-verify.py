#!/usr/bin/env python3
"""Checks deploy/feedsmith.service, on a copy whose only change is ExecStart's binary path
(systemd-analyze verify needs the binary to exist; the committed unit names
/usr/local/bin/feedsmith):

  verify    `systemd-analyze verify` accepts it with no message at all (unknown keys and
            bad values are only warnings there, with exit code 0)
  exposure  `systemd-analyze security --offline=yes` rates it at most EXPOSURE (lower is
            tighter: 0 to 10)
  syscalls  every system call the binary makes while serving, compressing, rebuilding after
            an edit, pinging a WebSub hub (a stub on 127.0.0.1), reloading on SIGHUP and
            stopping on SIGTERM (traced with strace -f) is
            allowed by the unit's SystemCallFilter= lines; skipped with a warning where
            ptrace is not permitted; and every socket it opens is of a family
            RestrictAddressFamilies= allows

Usage: python3 .ci/deploy-verify.py [BINARY]   (default target/release/feedsmith)
"""
import http.server
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import harness  # noqa: E402

UNIT = ROOT / "deploy" / "feedsmith.service"
EXPOSURE = 2.0
SHIPPED_BINARY = "/usr/local/bin/feedsmith"


def fail(msg):
    sys.exit(f"deploy-verify: FAIL: {msg}")


def unit_copy(binary, work):
    text = UNIT.read_text()
    copy, n = re.subn(rf"^ExecStart={re.escape(SHIPPED_BINARY)} ", f"ExecStart={binary} ", text, flags=re.M)
    if n != 1:
        fail(f"{UNIT.name}: expected one `ExecStart={SHIPPED_BINARY} ...` line, found {n}")
    path = pathlib.Path(work) / UNIT.name
    path.write_text(copy)
    print(f"{UNIT.name}: checking a copy with ExecStart={binary} ...")
    return path


def verify(unit):
    p = subprocess.run(["systemd-analyze", "verify", unit], capture_output=True, text=True, timeout=60)
    out = (p.stdout + p.stderr).strip()
    if p.returncode or out:
        fail(f"systemd-analyze verify (exit {p.returncode}):\n{out}")
    print("verify: systemd-analyze verify accepts it, no message", flush=True)


def exposure(unit):
    threshold = f"--threshold={round(EXPOSURE * 10)}"  # in tenths
    p = subprocess.run(["systemd-analyze", "security", "--offline=yes", threshold, unit],
                       capture_output=True, text=True, timeout=60)
    level = re.search(r"Overall exposure level for \S+: (\S+ \S+)", p.stdout + p.stderr)
    if p.returncode or not level:
        fail(f"systemd-analyze security: exposure over {EXPOSURE} (exit {p.returncode}):\n{p.stdout}{p.stderr}")
    print(f"exposure: {level[1]} (at most {EXPOSURE} allowed)")


def expand(name, cache={}):
    """System call names of a name or @group (`systemd-analyze syscall-filter`, recursively)."""
    if not name.startswith("@"):
        return {name}
    if name not in cache:
        out = subprocess.run(["systemd-analyze", "syscall-filter", name], capture_output=True, text=True,
                             check=True, timeout=60).stdout
        words = [w.strip() for w in out.splitlines()[1:] if w.strip() and not w.strip().startswith("#")]
        cache[name] = set().union(*(expand(w) for w in words))
    return cache[name]


def allowed_syscalls(text):
    """What the unit's SystemCallFilter= lines allow: the allow-lists minus the `~` lists."""
    allow, deny = set(), set()
    for value in re.findall(r"^SystemCallFilter=(.*)$", text, flags=re.M):
        names = value.lstrip("~").split()
        (deny if value.startswith("~") else allow).update(*(expand(n) for n in names))
    if not allow:
        fail("no SystemCallFilter= allow-list in the unit")
    return allow - deny


def wait_new_generation(generation, old, what):
    deadline = time.monotonic() + 10
    while generation() == old:
        if time.monotonic() > deadline:
            fail(f"no rebuild within 10 s of {what}")
        time.sleep(0.05)


def traced_syscalls(binary, work):
    """Names of the system calls feedsmith makes through a short life, or None if strace
    cannot trace here."""
    strace = shutil.which("strace")
    if not strace:
        print("warning: strace not installed; system calls not checked")
        return None
    content = pathlib.Path(work) / "content"
    shutil.copytree(ROOT / "content", content)
    pings = []

    class Hub(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            pings.append(self.path)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    hub = http.server.ThreadingHTTPServer((harness.HOST, 0), Hub)
    threading.Thread(target=hub.serve_forever, daemon=True).start()
    hub_url = f"http://{harness.HOST}:{hub.server_address[1]}/"
    config = harness.write_config(pathlib.Path(work) / "config.toml", content, watch__debounce_ms=50,
                                  websub__hubs=f'["{hub_url}"]')
    summary = pathlib.Path(work) / "strace.txt"
    cmd = [strace, "-f", "-qq", "-C", "-o", summary, binary, "--config", config, "serve", "--bind", f"{harness.HOST}:0"]
    with harness.Server("feedsmith-strace", cmd, work, None, env={**os.environ, "RUST_LOG": "info"}) as server:
        try:
            server.wait_up("/healthz", 200, timeout=30)
        except RuntimeError as e:
            if "ptrace" in str(e) or "Operation not permitted" in str(e):
                print(f"warning: strace cannot trace here; system calls not checked:\n{e}")
                return None
            raise
        children = pathlib.Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children").read_text().split()
        pid = int(children[0])
        for coding in ("identity", "gzip", "br", "br", "br"):
            for path in ("/", "/rss.xml", "/tags/openeuler/atom.xml", "/feed.json", "/feeds.opml", "/nope"):
                harness.get(server.port, path, {"Accept-Encoding": coding})
            time.sleep(0.2)  # brotli bodies are made in the background

        def generation():
            return re.search(rb'"generation":(\d+)', harness.get(server.port, "/healthz")[2])[1]

        g = generation()
        post = next(content.rglob("*.md"))
        post.write_text(post.read_text() + "\nOne more line.\n")
        wait_new_generation(generation, g, "the edit")
        deadline = time.monotonic() + 15
        while not pings:
            if time.monotonic() > deadline:
                fail("the WebSub hub stub got no publish request within 15 s of the edit")
            time.sleep(0.05)
        g = generation()
        os.kill(pid, signal.SIGHUP)
        wait_new_generation(generation, g, "SIGHUP")
        os.kill(pid, signal.SIGTERM)
        server.proc.wait(timeout=30)
    hub.shutdown()
    trace, _, table = summary.read_text().partition("% time ")  # -C: the trace, then the summary
    families = set(re.findall(r"\bsocket(?:pair)?\((AF_\w+)", trace))
    used = set()
    for line in table.splitlines()[2:]:
        fields = line.split()
        if fields and re.fullmatch(r"[0-9.]+", fields[0]) and fields[-1] != "total":
            used.add(fields[-1])
    if not used:
        fail(f"strace recorded no system calls:\n{summary.read_text()[-3000:]}")
    return used, families


def main():
    binary = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "target/release/feedsmith").resolve()
    if not binary.is_file():
        fail(f"no binary at {binary}")
    with tempfile.TemporaryDirectory(prefix="feedsmith-deploy-verify.") as work:
        unit = unit_copy(binary, work)
        verify(unit)
        exposure(unit)
        traced = traced_syscalls(binary, work)
        if traced is not None:
            used, families = traced
            denied = sorted(used - allowed_syscalls(UNIT.read_text()))
            if denied:
                fail(f"feedsmith makes system calls the unit's SystemCallFilter= denies: {', '.join(denied)}")
            print(f"syscalls: all {len(used)} system calls feedsmith made (serve, gzip/br, rebuild, "
                  f"WebSub ping, SIGHUP, SIGTERM) are allowed by SystemCallFilter=")
            allowed = set(re.search(r"^RestrictAddressFamilies=(.*)$", UNIT.read_text(), re.M)[1].split())
            if not families <= allowed:
                fail(f"feedsmith opens sockets of families RestrictAddressFamilies= denies: {sorted(families - allowed)}")
            print(f"sockets: families {', '.join(sorted(families))}, all in RestrictAddressFamilies=")

if __name__ == "__main__":
    main()
