#!/usr/bin/env python3
"""Runs the W3C Feed Validation Service's own code on every .xml feed of an export.

The validator is not on any package registry: clone w3c/feedvalidator into a scratch folder
outside this repository, `pip install lxml html5lib rdflib`, and point FEEDVALIDATOR at its
`src` folder. Each feed is validated with its own `rel="self"` URL as its location (so
SelfDoesntMatchLocation means a real mismatch) at the online service's "AA" level.

Usage: FEEDVALIDATOR=/scratch/feedvalidator/src bench/w3c-validate.py EXPORT_DIR [--quiet NAME,...]
Prints each event (file, class, message) except the --quiet ones, then counts per class.
Exit status 1 when any event outside --quiet was logged.
"""
import os
import re
import sys

sys.path.insert(0, os.environ.get("FEEDVALIDATOR", "feedvalidator/src"))
import feedvalidator  # noqa: E402
from feedvalidator import compatibility  # noqa: E402
from feedvalidator.formatter.text_plain import Formatter  # noqa: E402

root = sys.argv[1]
quiet = set()
if "--quiet" in sys.argv:
    quiet = set(sys.argv[sys.argv.index("--quiet") + 1].split(","))
counts = {}
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
        for event in compatibility.AA(events):
            kind = event.__class__.__name__
            counts[kind] = counts.get(kind, 0) + 1
            if kind not in quiet:
                print(os.path.relpath(path, root), kind, Formatter([event])[0][:300])
print("events:", counts or "none")
sys.exit(1 if any(k not in quiet for k in counts) else 0)
