#!/usr/bin/env python3
"""Change-to-visible latency: how long from a post file being saved (atomic rename, as
editors do) until `feedsmith serve` answers /rss.xml with a new ETag.

Generates (or reuses) a corpus with ../shared/bench/gen-corpus.py, starts the release binary
on 127.0.0.1 with the given debounce, adds a probe post dated today (so it is in the global
feed), then edits it N times. After each save it polls /rss.xml with If-None-Match (cheap
304s) over one keep-alive connection until the ETag changes. Prints median, p90, p99, min
and max in milliseconds. Loopback only; bounded in edits and time.

Usage: python3 bench/latency.py [--posts 10000] [--edits 200] [--debounce-ms 100]
"""
import argparse
import datetime as dt
import http.client
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
GEN = ROOT.parent / "shared" / "bench" / "gen-corpus.py"


def percentile(values, p):
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--posts", type=int, default=10000)
    ap.add_argument("--tags", type=int, default=200)
    ap.add_argument("--edits", type=int, default=200)
    ap.add_argument("--debounce-ms", type=int, default=100)
    ap.add_argument("--corpus", help="existing corpus dir (default: generate under /tmp)")
    ap.add_argument("--timeout", type=float, default=10.0, help="max seconds per edit")
    args = ap.parse_args()

    corpus = pathlib.Path(args.corpus or f"/tmp/feedsmith-corpus-{args.posts}-{args.tags}")
    if not corpus.exists():
        subprocess.run([sys.executable, str(GEN), "--posts", str(args.posts), "--tags", str(args.tags),
                        "--seed", "1", "--out", str(corpus)], check=True)
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)

    work = pathlib.Path(tempfile.mkdtemp(prefix="feedsmith-latency-"))
    config = work / "config.toml"
    config.write_text(
        f'[site]\ntitle = "bench"\nbase_url = "https://bench.example/"\ntime_zone = "Asia/Shanghai"\n'
        f'[content]\ndir = "{corpus}"\n[watch]\ndebounce_ms = {args.debounce_ms}\n', encoding="utf-8")
    probe = corpus / "zz-latency-probe.md"
    today = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    def save(n):
        tmp = corpus / ".zz-latency-probe.md.tmp"
        tmp.write_text(f"---\ntitle: 'latency probe'\ndate: '{today}'\ntags: [bench]\n---\nedit {n}\n", encoding="utf-8")
        os.replace(tmp, probe)

    save(0)
    server = subprocess.Popen([str(ROOT / "target/release/feedsmith"), "--config", str(config), "serve", "--bind", "127.0.0.1:0"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = server.stdout.readline()
        host, port = line.strip().removeprefix("listening on http://").rstrip("/").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=5)

        def etag(inm=None):
            conn.request("GET", "/rss.xml", headers={"If-None-Match": inm} if inm else {})
            resp = conn.getresponse()
            resp.read()
            return resp.getheader("ETag")

        current = etag()
        samples = []
        for n in range(1, args.edits + 1):
            start = time.perf_counter()
            save(n)
            deadline = start + args.timeout
            while True:
                tag = etag(current)
                if tag != current:
                    samples.append((time.perf_counter() - start) * 1000)
                    current = tag
                    break
                if time.perf_counter() > deadline:
                    print(f"edit {n}: no new ETag within {args.timeout}s", file=sys.stderr)
                    break
                time.sleep(0.001)
            time.sleep(0.05)
    finally:
        server.terminate()
        server.wait(timeout=30)
        probe.unlink(missing_ok=True)

    print(f"corpus: {args.posts} posts, {args.tags} tags; debounce {args.debounce_ms} ms; {len(samples)}/{args.edits} edits seen")
    print("| median ms | p90 ms | p99 ms | min ms | max ms |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    print(f"| {statistics.median(samples):.1f} | {percentile(samples, 90):.1f} | {percentile(samples, 99):.1f} "
          f"| {min(samples):.1f} | {max(samples):.1f} |")


if __name__ == "__main__":
    main()
