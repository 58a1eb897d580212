#!/usr/bin/env python3
"""Two feedsmith replicas behind the real deploy/nginx.conf, on 127.0.0.1 only. Every wait
has a deadline, the whole run is bounded (SIGALRM), and everything started is stopped.

    python3 .ci/replicas.py [BINARY]     (default: $FEEDSMITH_BIN, else target/release/feedsmith)

The replicas serve one shared copy of content/ (plus one post with tags that need
percent-encoding, 内核 and C#) with identical config files in two directories (only
`--bind` differs); B starts a second after A. nginx runs deploy/nginx.conf with only the
ports, `user`, and the pid, log and cache paths replaced (the diff is printed).

Checks, in order (exit 1 with a message on the first failure):
  identical   every file (from each replica's index page and OPML) in identity, gzip and br:
              byte-identical bodies and identical ETag, Last-Modified, Content-Type,
              Cache-Control on A and B; neither replica's port appears in any body; nginx
              serves the same bytes and ETag at /feeds/<file>
  self        rel="self" (RSS, Atom) and feed_url (JSON Feed) of every feed fetched through
              nginx equal the URL it was fetched at
  conditional an ETag from A gets 304 from B and from nginx
  revalidate  once max-age has passed, nginx revalidates its entries with conditional
              requests, and both replicas answer them 304 (nginx's access log)
  private     /feeds/healthz, /feeds/metrics (also as /feeds/feeds/healthz, %68ealthz, ./, //)
              are 404 on the public server; the internal
              server's /healthz answers 200, Cache-Control: no-store
  change      a post is edited: A and B converge to one new ETag (time printed), nginx
              serves the new bytes for every file after max-age (time printed)
  stale       both replicas stopped: nginx still answers 200 with the last good bytes for
              every file, after their max-age (X-Cache-Status STALE or UPDATING)
  recover     the post is edited again while they are down, they are started again (B
              first): nginx serves the new version (time printed)
"""
import difflib
import getpass
import gzip
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import harness  # noqa: E402

HOST = harness.HOST
TOTAL_S = 170  # the whole run; CI budget is 3 minutes
MAX_AGE = 2
CACHE_CONTROL = f"max-age={MAX_AGE}, stale-while-revalidate=60"
CODINGS = {"identity": None, "gzip": "gzip", "br": "br, gzip"}
EXTRA_POST = "zh/news/replicas/replicas.md"
STARTED = time.monotonic()


class Fail(Exception):
    pass


def say(msg):
    print(f"[replicas {time.monotonic() - STARTED:6.2f}s] {msg}", flush=True)


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def poll(what, fn, timeout, interval=0.05):
    """Calls fn until it returns a true value; that value and the seconds it took."""
    start = time.monotonic()
    while True:
        value = fn()
        if value:
            return value, time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise Fail(f"{what}: not within {timeout} s")
        time.sleep(interval)


def get(port, path, coding="identity", headers=None):
    h = dict(headers or {})
    if CODINGS[coding]:
        h["Accept-Encoding"] = CODINGS[coding]
    return harness.get(port, path, h)


def decoded(headers, body):
    return gzip.decompress(body) if headers.get("content-encoding") == "gzip" else body


# ---- nginx: the shipped file with the documented substitutions ------------------------------
def nginx_config(work, public, internal, replicas):
    """deploy/nginx.conf with listen ports, upstream servers, user, pid, log and cache paths
    replaced; each replacement must match as often as expected. Prints the diff."""
    shipped = (ROOT / "deploy" / "nginx.conf").read_text()
    upstream = iter(replicas)
    subs = [
        (r"^user \S+;", f"user {getpass.getuser()};", 1),
        (r"^pid \S+;", f"pid {work}/nginx.pid;", 1),
        (r"^error_log \S+", f"error_log {work}/error.log", 1),
        (r"access_log \S+", f"access_log {work}/access.log", 1),
        (r"proxy_cache_path \S+", f"proxy_cache_path {work}/cache", 1),
        (r"^(\s*)listen 80;", rf"\1listen {HOST}:{public};", 1),
        (r"^\s*listen \[::\]:80;\n", "", 1),
        (r"listen 127\.0\.0\.1:8079;", f"listen {HOST}:{internal};", 1),
        (r"server 127\.0\.0\.1:\d+ ", lambda m: f"server {HOST}:{next(upstream)} ", len(replicas)),
    ]
    text = shipped
    for pattern, repl, count in subs:
        text, n = re.subn(pattern, repl, text, flags=re.M)
        check(n == count, f"deploy/nginx.conf: `{pattern}` matched {n} times, expected {count}")
    diff = difflib.unified_diff(shipped.splitlines(), text.splitlines(), "deploy/nginx.conf", "ci copy", n=0, lineterm="")
    say("nginx config = deploy/nginx.conf with:\n  " + "\n  ".join(line for line in diff if line[:1] in "+-"))
    path = pathlib.Path(work) / "nginx.conf"
    path.write_text(text)
    return path


def start_nginx(work, config, port):
    nginx = harness.which("nginx")
    if not nginx:
        harness.need("nginx")
        nginx = harness.which("nginx")
    test = subprocess.run([nginx, "-t", "-p", work, "-c", config], capture_output=True, text=True, timeout=30)
    check(test.returncode == 0, f"nginx -t rejects the config:\n{test.stderr}")
    return harness.Server("nginx", [nginx, "-p", work, "-c", config, "-g", "daemon off;"], work, port)


# ---- feedsmith replicas ---------------------------------------------------------------------
def replica(name, binary, config, work, port):
    return harness.Server(name, [binary, "--config", config, "serve", "--bind", f"{HOST}:{port}"], work, port,
                          env={**os.environ, "RUST_LOG": "info"})


def up(server, path="/healthz", timeout=30):
    try:
        return server.wait_up(path, 200, timeout=timeout)
    except RuntimeError as e:
        raise Fail(str(e)) from None


def write_post(content, title, body):
    """Writes the extra post atomically (temp file + rename, as editors and git do)."""
    path = content / EXTRA_POST
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(".replicas.md.tmp")
    tmp.write_text(f"---\ntitle: '{title}'\ndate: '2024-12-01 10:00'\ntags: [内核, 'C#', openEuler]\n---\n\n{body}\n",
                   encoding="utf-8")
    os.replace(tmp, path)


def write_config(path, content, public_url):
    """The sample config with the test's cache_control and debounce, and server.public_url
    (commented out in config.toml, so set here) = nginx's public URL."""
    harness.write_config(path, content, server__cache_control=f'"{CACHE_CONTROL}"', watch__debounce_ms=100)
    text, n = re.subn(r"^\[server\]\n", f'[server]\npublic_url = "{public_url}"\n', path.read_text(), flags=re.M)
    check(n == 1, "config.toml has no [server] section")
    path.write_text(text)
    return path


# ---- the files ------------------------------------------------------------------------------
def file_list(port, public):
    """Relative paths of every file a replica serves, from its index page and OPML: each
    URL there under PUBLIC, plus the index and OPML themselves."""
    found = {"", "feeds.opml"}
    for page in ("/", "/feeds.opml"):
        status, headers, body = get(port, page)
        check(status == 200, f"replica :{port} {page}: {status}")
        for url in re.findall(r'(?:href|xmlUrl)="([^"]+)"', body.decode()):
            url = url.replace("&amp;", "&")
            if url.startswith(public):
                found.add(url[len(public):])
    return sorted(found)


def fetch_all(port, paths, prefix="/"):
    """{(path, coding): (status, headers, body)} of every file in every coding."""
    return {(p, c): get(port, prefix + p, c) for p in paths for c in CODINGS}


SAME = ("etag", "last-modified", "content-type", "content-encoding", "cache-control", "vary")


def compare_replicas(a, b, paths):
    """Every file in every coding: same status, body and headers SAME on A and B. br bodies
    are made in the background, so br requests are repeated until both answer br."""
    ra, rb = fetch_all(a.port, paths), fetch_all(b.port, paths)
    for p in paths:
        for server in (a, b):
            poll(f"{server.name} /{p}: br body", lambda: get(server.port, "/" + p, "br")[1].get("content-encoding") == "br",
                 timeout=20)
        ra[(p, "br")], rb[(p, "br")] = get(a.port, "/" + p, "br"), get(b.port, "/" + p, "br")
    for (p, c), (sa, ha, ba) in ra.items():
        sb, hb, bb = rb[(p, c)]
        check(sa == sb == 200, f"/{p} ({c}): A {sa}, B {sb}")
        for h in SAME:
            check(ha.get(h) == hb.get(h), f"/{p} ({c}): {h} differs: A {ha.get(h)!r}, B {hb.get(h)!r}")
        check(ba == bb, f"/{p} ({c}): bodies differ between A and B ({len(ba)} and {len(bb)} bytes)")
        text = decoded(ha, ba) if c != "br" else b""
        for port in (a.port, b.port):
            check(f":{port}".encode() not in text, f"/{p}: the body names a replica's port {port}")
    etags = {ra[(p, c)][1]["etag"] for p in paths for c in CODINGS}
    check(len(etags) == 3 * len(paths), "two files or codings share an ETag")
    return ra


def nginx_serves(nginx, replica, paths, codings=tuple(CODINGS)):
    """Every file through nginx: status 200 with the replica's bytes and ETag."""
    out = {(p, c): get(nginx.port, "/feeds/" + p, c) for p in paths for c in codings}  # asks for all: each
    # stale entry answered starts its own background update
    same = all(s == 200 and body == replica[k][2] and h.get("etag") == replica[k][1]["etag"]
               for k, (s, h, body) in out.items())
    return same and out


def wait_nginx(nginx, replica, paths, timeout, what):
    return poll(what, lambda: nginx_serves(nginx, replica, paths), timeout)


LOG_LINE = re.compile(r'"GET (?P<path>\S+) [^"]*" (?P<status>\d+) .* cache=(?P<cache>\S*) '
                      r'upstream=(?:\S+, )*(?P<upstream>\S*) upstream_status=(?:\S+, )*(?P<upstream_status>\S*)$')


def revalidations(nginx, work, paths, ports):
    """Asks nginx for every file; the number of 304s from replicas in its access log once
    every port in PORTS has answered one, else None."""
    for p in paths:
        for c in CODINGS:
            check(get(nginx.port, "/feeds/" + p, c)[0] == 200, f"nginx /feeds/{p} ({c}): not 200")
    answered = [m for line in (work / "access.log").read_text().splitlines() if (m := LOG_LINE.search(line))
                and m["upstream_status"] == "304"]
    by = {int(m["upstream"].rsplit(":", 1)[1]) for m in answered}
    return len(answered) if by >= ports else None


def self_links(nginx, paths):
    """rel="self" (RSS atom:link, Atom link) and JSON Feed feed_url equal the URL fetched."""
    n = 0
    for p in paths:
        url = f"http://{HOST}:{nginx.port}/feeds/{p}"
        status, _, body = get(nginx.port, "/feeds/" + p)
        check(status == 200, f"nginx /feeds/{p}: {status}")
        if p.endswith(".json"):
            found = [json.loads(body)["feed_url"]]
        elif p.endswith(".xml"):
            links = re.findall(r"<(?:atom:)?link\b[^>]*>", body.decode())
            found = [re.search(r'href="([^"]*)"', tag)[1] for tag in links if 'rel="self"' in tag]
        else:
            continue
        check(found == [url], f"{url}: self link {found}, expected the URL it was fetched at")
        n += 1
    return n


# ---- the run ------------------------------------------------------------------------------
def run(binary, work):
    content = work / "content"
    shutil.copytree(ROOT / "content", content)
    write_post(content, "副本测试 v1", "第一版。")
    public, internal, port_a, port_b = (harness.free_port() for _ in range(4))
    public_url = f"http://{HOST}:{public}/feeds/"

    # Identical config files in two directories; only `serve --bind` differs. Posts stay on
    # the sample's site.base_url; the feeds are where nginx serves them.
    configs = []
    for name in ("a", "b"):
        (work / name).mkdir()
        configs.append(write_config(work / name / "config.toml", content, public_url))
    say(f"replicas A :{port_a}, B :{port_b}; nginx :{public} (internal :{internal}); server.public_url = {public_url}")

    conf = nginx_config(work, public, internal, [port_a, port_b])
    a = replica("A", binary, configs[0], work, port_a)
    b = nginx = None
    try:
        say(f"A up in {up(a):.2f} s")
        time.sleep(1)  # B starts later: nothing in a body may depend on start time
        b = replica("B", binary, configs[1], work, port_b)
        say(f"B up in {up(b):.2f} s")
        nginx = start_nginx(str(work), str(conf), public)
        say(f"nginx up in {up(nginx, '/feeds/rss.xml'):.2f} s")

        paths = file_list(a.port, public_url)
        check(paths == file_list(b.port, public_url), "A and B list different files")
        check(any("%E5%86%85%E6%A0%B8" in p.upper() for p in paths), f"no feed of tag 内核 in {paths}")
        check(len(paths) > 10, f"only {len(paths)} files found: {paths}")
        t = time.monotonic()
        ra = compare_replicas(a, b, paths)
        say(f"identical: {len(paths)} files x {len(CODINGS)} codings, same bytes and headers on A and B "
            f"({time.monotonic() - t:.2f} s)")
        wait_nginx(nginx, ra, paths, 10, "nginx serves the replicas' bytes")
        say(f"identical through nginx: {len(paths)} files x {len(CODINGS)} codings")
        say(f"self: {self_links(nginx, paths)} feeds, rel=self = the URL fetched through nginx")

        for c in ("identity", "gzip"):
            etag = ra[("rss.xml", c)][1]["etag"]
            for server, port in (("B", b.port), ("nginx", public)):
                path = "/feeds/rss.xml" if server == "nginx" else "/rss.xml"
                s, h, body = get(port, path, c, {"If-None-Match": etag})
                check(s == 304 and not body, f"{server} {path} ({c}) with A's ETag {etag}: {s}, expected 304")
                check(h.get("etag") == etag, f"{server} 304 carries ETag {h.get('etag')}, expected {etag}")
        say("conditional: A's ETags get 304 from B and from nginx (identity, gzip)")

        t = time.monotonic()
        revalidated, took = poll("both replicas answer nginx's revalidations with 304",
                                 lambda: revalidations(nginx, work, paths, {port_a, port_b}), timeout=MAX_AGE + 10,
                                 interval=0.2)
        say(f"revalidate: {revalidated} revalidations answered 304, by both replicas, "
            f"{time.monotonic() - t:.2f} s after the first pass (max-age {MAX_AGE} s)")

        for path in ("/healthz", "/metrics", "/feeds/healthz"):  # so nginx's 404s below are its own doing
            check(get(a.port, path)[0] == 200, f"replica A {path}: not 200")
        for path in ("/feeds/healthz", "/feeds/metrics", "/metrics", "/healthz", "/feeds/feeds/healthz",
                     "/feeds/%68ealthz", "/feeds/./feeds/healthz", "/feeds//healthz", "/feeds/healthz?x"):
            s = get(public, path)[0]
            check(s == 404, f"public nginx {path}: {s}, expected 404")
        s, h, body = get(internal, "/healthz")
        check(s == 200 and h.get("cache-control") == "no-store" and json.loads(body)["status"] == "ok",
              f"internal nginx /healthz: {s} {h.get('cache-control')} {body[:200]!r}")
        say("private: /healthz and /metrics (200 on a replica) 404 on the public server; internal /healthz 200, "
            "no-store")

        # A post changes in the shared content directory.
        old = ra[("rss.xml", "gzip")][1]["etag"]
        t0 = time.monotonic()
        write_post(content, "副本测试 v2", "第二版。")

        def converged():
            ea, eb = (get(s.port, "/rss.xml", "gzip")[1]["etag"] for s in (a, b))
            return ea == eb != old and ea

        new, took = poll("A and B converge to one new ETag", converged, timeout=10, interval=0.02)
        say(f"change: A and B both serve ETag {new} (was {old}) {took:.2f} s after the edit")
        nginx_rss_etag = lambda: get(public, "/feeds/rss.xml", "gzip")[1].get("etag")  # noqa: E731
        poll("nginx serves the new rss.xml", lambda: nginx_rss_etag() == new, timeout=MAX_AGE + 15, interval=0.02)
        say(f"change: nginx serves the new rss.xml {time.monotonic() - t0:.2f} s after the edit (max-age {MAX_AGE} s, "
            f"which nginx counts in whole seconds from when it last fetched the file)")
        ra = compare_replicas(a, b, paths)
        say("change: every file identical on A and B again")
        last_good, took = wait_nginx(nginx, ra, paths, MAX_AGE + 15, "nginx serves every new file")
        say(f"change: nginx serves the new version of every file ({took:.2f} s more)")

        # Every replica down: the last good feeds, stale.
        t = time.monotonic()
        for server in (a, b):
            server.__exit__(None, None, None)
        say(f"stale: A and B stopped ({time.monotonic() - t:.2f} s)")
        def all_stale():
            statuses = {}
            for (p, c), (_, h0, body0) in last_good.items():
                s, h, body = get(public, "/feeds/" + p, c)
                check(s == 200 and body == body0 and h.get("etag") == h0.get("etag"),
                      f"replicas down: nginx /feeds/{p} ({c}): {s}, {'same' if body == body0 else 'other'} body")
                statuses[h.get("x-cache-status")] = statuses.get(h.get("x-cache-status"), 0) + 1
            return set(statuses) <= {"STALE", "UPDATING"} and statuses

        statuses, took = poll("nginx serves every file stale", all_stale, timeout=MAX_AGE + 10, interval=0.2)
        say(f"stale: with every replica down nginx serves the last good bytes of all {len(last_good)} responses "
            f"(every one stale {took:.2f} s after the stop; X-Cache-Status {statuses})")

        # Back up, after another edit made while they were down.
        write_post(content, "副本测试 v3", "第三版。")
        t = time.monotonic()
        b = replica("B2", binary, configs[1], work, port_b)
        a = replica("A2", binary, configs[0], work, port_a)
        up(b), up(a)
        t0 = time.monotonic()
        say(f"recover: B and A up again in {t0 - t:.2f} s")
        newer = get(a.port, "/rss.xml", "gzip")[1]["etag"]
        check(newer != new, "the edit made while the replicas were down is not served")
        poll("nginx serves the new rss.xml after the replicas are back", lambda: nginx_rss_etag() == newer,
             timeout=MAX_AGE + 20, interval=0.02)
        say(f"recover: nginx serves the new rss.xml {time.monotonic() - t0:.2f} s after the replicas are up "
            f"(a failed replica is asked again after fail_timeout, 5 s)")
        ra = compare_replicas(a, b, paths)
        _, took = wait_nginx(nginx, ra, paths, MAX_AGE + 20, "nginx serves the replicas' new bytes after they are back")
        say(f"recover: nginx serves the new version of every file ({took:.2f} s more)")
    finally:
        for server in (nginx, a, b):
            if server:
                server.__exit__(None, None, None)


def main():
    binary = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("FEEDSMITH_BIN", ROOT / "target/release/feedsmith"))
    if not binary.is_file():
        sys.exit(f"replicas: no binary at {binary} (cargo build --release, or pass its path)")

    def timeout(*_):
        raise Fail(f"the whole run took over {TOTAL_S} s")

    signal.signal(signal.SIGALRM, timeout)
    signal.alarm(TOTAL_S)
    with tempfile.TemporaryDirectory(prefix="feedsmith-replicas.") as work:
        work = pathlib.Path(work)
        try:
            run(binary.resolve(), work)
        except (Fail, OSError) as e:
            print(f"\nreplicas: FAIL: {e}", file=sys.stderr)
            for log in ("A.log", "B.log", "A2.log", "B2.log", "nginx.log", "error.log"):
                if (work / log).is_file():
                    tail = (work / log).read_text(errors="replace")[-2000:]
                    print(f"--- {log} (end)\n{tail}", file=sys.stderr)
            sys.exit(1)
        finally:
            signal.alarm(0)
    say("all checks passed")


if __name__ == "__main__":
    main()
