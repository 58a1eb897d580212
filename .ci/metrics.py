#!/usr/bin/env python3
"""promtool against /metrics: starts `feedsmith serve` on the sample content through the
benchmark harness (`bench/harness.py`: 127.0.0.1:0, wait until up, always stopped), makes
requests of every route kind and coding, touches off a rebuild, and runs
`promtool check metrics` (Debian package `prometheus`) on what /metrics says. Fails on any
promtool complaint, or when the counters did not move.

Usage: python3 .ci/metrics.py BINARY
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import harness  # noqa: E402


def sample(text, name):
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def main():
    binary = sys.argv[1]
    harness.need("promtool")
    with tempfile.TemporaryDirectory(prefix="feedsmith-metrics.") as work:
        content = os.path.join(work, "content")
        shutil.copytree(os.path.join(ROOT, "content"), content)
        config = harness.write_config(os.path.join(work, "config.toml"), content, watch__debounce_ms="20")
        with harness.feedsmith_serve(binary, config, work) as server:
            server.wait_up("/healthz", 200, timeout=60)
            port = server.port
            for path, headers in [
                ("/rss.xml", {}),
                ("/atom.xml", {"Accept-Encoding": "gzip"}),
                ("/feed.json", {"Accept-Encoding": "br"}),
                ("/feeds.opml", {}),
                ("/", {}),
                ("/nope", {}),
            ]:
                harness.get(port, path, headers)
            _, headers, _ = harness.get(port, "/rss.xml")
            status, _, _ = harness.get(port, "/rss.xml", {"If-None-Match": headers["etag"]})
            assert status == 304, status
            post = next(p for p in harness.md_files(content))
            with open(post, "a", encoding="utf-8") as f:
                f.write("\nOne more line.\n")
            deadline = time.monotonic() + 20
            while True:
                _, _, body = harness.get(port, "/metrics")
                text = body.decode()
                if sample(text, "feedsmith_snapshot_generation") >= 2:
                    break
                if time.monotonic() > deadline:
                    sys.exit("metrics: the rebuild never showed up in feedsmith_snapshot_generation")
                time.sleep(0.05)
            checked = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True)
            out = (checked.stdout + checked.stderr).decode().strip()
            print(out or "promtool check metrics: no problems")
            families = sum(1 for line in text.splitlines() if line.startswith("# TYPE"))
            series = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
            print(f"/metrics: {families} families, {series} series, {len(body)} bytes")
            moved = {
                "requests 304": 'feedsmith_http_requests_total{coding="identity",route="feed",status="304"}',
                "rebuilds ok": 'feedsmith_rebuilds_total{result="ok"}',
            }
            for what, name in moved.items():
                if not any(line.startswith(name + " ") and float(line.rsplit(" ", 1)[1]) >= 1 for line in text.splitlines()):
                    sys.exit(f"metrics: {what} did not move ({name})")
            if checked.returncode != 0 or out:
                sys.exit("promtool check metrics failed")


if __name__ == "__main__":
    main()
