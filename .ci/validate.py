"""Validates exported feeds with feedparser (bozo must be 0 for every RSS/Atom feed) and
checks every JSON Feed parses and carries the fields JSON Feed 1.1 requires."""
import json
import pathlib
import sys

import feedparser

root = pathlib.Path(sys.argv[1])
failures = 0
count = 0
for path in sorted(root.rglob("*")):
    if path.suffix == ".xml":
        count += 1
        d = feedparser.parse(path.read_bytes())
        if d.bozo or d.version not in ("rss20", "atom10") or not d.entries:
            failures += 1
            print(f"FAIL {path}: bozo={d.bozo} {d.get('bozo_exception')} version={d.version}")
    elif path.suffix == ".json":
        count += 1
        feed = json.loads(path.read_text(encoding="utf-8"))
        problems = []
        if feed.get("version") != "https://jsonfeed.org/version/1.1":
            problems.append("version")
        if not isinstance(feed.get("title"), str):
            problems.append("title")
        for item in feed.get("items", []):
            if not isinstance(item.get("id"), str):
                problems.append("item id")
            if "content_html" not in item and "content_text" not in item:
                problems.append(f"item {item.get('id')} has no content")
            for key in ("url", "image"):
                if key in item and not item[key].startswith(("http://", "https://")):
                    problems.append(f"item {key} not absolute")
        if problems:
            failures += 1
            print(f"FAIL {path}: {problems}")
print(f"feedparser/json: {count} feeds checked, {failures} failed")
sys.exit(1 if failures else 0)
