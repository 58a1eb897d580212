"""Fails on any BAD note in a redbot HAR report; prints every WARN (explained in README)."""
import json
import sys

url, har = sys.argv[1], sys.argv[2]
entries = json.load(open(har, encoding="utf-8"))["log"]["entries"]
bad = 0
for entry in entries:
    for note in entry.get("_red_messages", []):
        if note["level"] in ("bad", "BAD", "warn", "WARN"):
            print(f"{note['level'].upper()} {url}: {note['note_id']}: {note['summary']}")
        if note["level"].upper() == "BAD":
            bad += 1
print(f"redbot {url}: {sum(len(e.get('_red_messages', [])) for e in entries)} notes, {bad} BAD")
sys.exit(1 if bad else 0)
