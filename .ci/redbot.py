#!/usr/bin/env python3
"""REDbot against the running sample server: starts `feedsmith serve` with the sample
config through the benchmark harness (`bench/harness.py`: 127.0.0.1:0, wait until up,
always stopped), runs redbot on a few feeds, and fails on any BAD note (WARNs are printed;
the README explains them).

Usage: python3 .ci/redbot.py BINARY
"""
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import harness  # noqa: E402

PATHS = ["rss.xml", "tags/openeuler/atom.xml", "feed.json"]


def notes(url, har):
    """Prints the BAD and WARN notes of one redbot HAR report; the number of BAD ones."""
    entries = json.loads(har)["log"]["entries"]
    bad = 0
    for entry in entries:
        for note in entry.get("_red_messages", []):
            level = note["level"].upper()
            if level in ("BAD", "WARN"):
                print(f"{level} {url}: {note['note_id']}: {note['summary']}")
            bad += level == "BAD"
    print(f"redbot {url}: {sum(len(e.get('_red_messages', [])) for e in entries)} notes, {bad} BAD")
    return bad


def main():
    binary = sys.argv[1]
    with tempfile.TemporaryDirectory(prefix="feedsmith-redbot.") as work:
        config = harness.write_config(os.path.join(work, "config.toml"), os.path.join(ROOT, "content"))
        with harness.feedsmith_serve(binary, config, work) as server:
            server.wait_up("/healthz", 200, timeout=60)
            bad = 0
            for path in PATHS:
                url = f"http://{harness.HOST}:{server.port}/{path}"
                har = subprocess.run(["redbot", "-o", "har", url], check=True, capture_output=True, text=True).stdout
                bad += notes(url, har)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
