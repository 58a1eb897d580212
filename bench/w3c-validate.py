#!/usr/bin/env python3
"""Runs the W3C Feed Validation Service's own code on every .xml feed of an export.

The validator is not on any package registry: clone w3c/feedvalidator into a scratch folder
outside this repository, `pip install lxml html5lib rdflib`, and point FEEDVALIDATOR at its
`src` folder. Each feed is validated with its own `rel="self"` URL as its location (so
SelfDoesntMatchLocation means a real mismatch) at the online service's "AA" level.

With --serve BINARY instead of EXPORT_DIR, it starts `feedsmith serve` on the sample content
with `server.public_url` = http://127.0.0.1:PORT/feeds/ and validates every feed of the OPML
list (each in RSS and Atom, plus the archive pages they link to) over HTTP, as the online
service does: the location is then the URL fetched, so a `rel="self"` that does not name
where the feed is served gives SelfDoesntMatchLocation.

Usage: FEEDVALIDATOR=/scratch/feedvalidator/src bench/w3c-validate.py EXPORT_DIR [--quiet NAME,...]
       FEEDVALIDATOR=... bench/w3c-validate.py --serve BINARY [--quiet NAME,...]
Prints each event (file or URL, class, message) except the --quiet ones, then counts per
class. Exit status 1 when any event outside --quiet was logged.
"""
import os
import re
import sys

sys.path.insert(0, os.environ.get("FEEDVALIDATOR", "feedvalidator/src"))
import feedvalidator  # noqa: E402
from feedvalidator import compatibility  # noqa: E402
from feedvalidator.formatter.text_plain import Formatter  # noqa: E402

quiet = set()
if "--quiet" in sys.argv:
    quiet = set(sys.argv[sys.argv.index("--quiet") + 1].split(","))
counts = {}


def report(where, events):
    for event in compatibility.AA(events):
        kind = event.__class__.__name__
        counts[kind] = counts.get(kind, 0) + 1
        if kind not in quiet:
            print(where, kind, Formatter([event])[0][:300])


def served(binary):
    """Validates every feed of the running sample server over HTTP under a /feeds/ prefix."""
    import tempfile
    import urllib.request
    from xml.etree import ElementTree

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__))))
    import harness

    with tempfile.TemporaryDirectory(prefix="feedsmith-w3c.") as work:
        port = harness.free_port()
        public = f"http://{harness.HOST}:{port}/feeds/"
        config = harness.write_config(
            os.path.join(work, "config.toml"), os.path.join(harness.ROOT, "content"),
            server__bind=f'"{harness.HOST}:{port}"',
        )
        text = open(config).read().replace("[server]\n", f'[server]\npublic_url = "{public}"\n', 1)
        open(config, "w").write(text)
        with harness.Server("feedsmith", [binary, "--config", config, "serve"], work, port) as server:
            server.wait_up("/healthz", 200, timeout=60)
            opml = urllib.request.urlopen(public + "feeds.opml").read()
            feeds = [o.get("xmlUrl") for o in ElementTree.fromstring(opml).iter("outline")]
            urls = [u for rss in feeds for u in (rss, rss[: -len("rss.xml")] + "atom.xml")]
            seen = set()
            while urls:
                url = urls.pop(0)
                if url in seen:
                    continue
                seen.add(url)
                try:
                    result = feedvalidator.validateURL(url, firstOccurrenceOnly=1, wantRawData=1)
                    events, raw = result["loggedEvents"], result.get("rawdata", b"")
                except feedvalidator.logging.ValidationFailure as failure:
                    events, raw = [failure.event], b""
                report(url, events)
                # Follow archive links (RFC 5005), when there are any.
                if isinstance(raw, str):
                    raw = raw.encode()
                for tag in re.findall(rb"<(?:atom:)?link\b[^>]*>", raw or b""):
                    if re.search(rb'rel="(prev|next)-archive"', tag):
                        href = re.search(rb'href="([^"]+)"', tag).group(1).decode().replace("&amp;", "&")
                        urls.append(href)
            print("validated over HTTP:", len(seen), "documents under", public)


if sys.argv[1] == "--serve":
    served(sys.argv[2])
    print("events:", counts or "none")
    sys.exit(1 if any(k not in quiet for k in counts) else 0)

root = sys.argv[1]
for dirpath, _, files in sorted(os.walk(root)):
    for name in sorted(files):
        if not name.endswith(".xml"):
            continue
        path = os.path.join(dirpath, name)
        data = open(path, "rb").read()
        self_url = "http://example.org/"
        for tag in re.findall(rb"<(?:atom:)?link\b[^>]*>", data):
            if b'rel="self"' in tag:
                self_url = re.search(rb'href="([^"]+)"', tag).group(1).decode().replace("&amp;", "&")
                break
        try:
            events = feedvalidator.validateString(
                data.decode("utf-8"), firstOccurrenceOnly=1, base=self_url
            )["loggedEvents"]
        except feedvalidator.logging.ValidationFailure as failure:
            events = [failure.event]
        report(os.path.relpath(path, root), events)
print("events:", counts or "none")
sys.exit(1 if any(k not in quiet for k in counts) else 0)
