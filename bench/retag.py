#!/usr/bin/env python3
"""Copies a corpus made by ../shared/bench/gen-corpus.py with its tag vocabulary widened to
exactly --tags distinct tags, for scale runs beyond what gen-corpus.py can make (its
vocabulary tops out at 795 tags; asked for more, it never finishes).

The 20 most used tags stay as they are; every other tag is split into 2 or 3 spellings
(`tag`, `tag-2`, `tag-3`), picked per post from a hash of the post's path, so the long tail
grows while the shape (Zipf-like popularity, tags per post) stays. Deterministic: same input,
same output.

  python3 bench/retag.py --tags 2000 --src /tmp/c100k --out /tmp/c100k-2000
"""
import argparse
import collections
import hashlib
import os
import re
import sys

TAG_LINE = re.compile(r"^  - (.*)$")


def posts(root):
    for d, _, files in os.walk(root):
        for f in files:
            if f.endswith(".md"):
                yield os.path.join(d, f)


def front_tags(lines):
    """Indexes of the tag list items in the front matter."""
    out, in_tags = [], False
    for i, line in enumerate(lines[1:], 1):
        if line.strip() == "---":
            break
        if line.startswith("tags:"):
            in_tags = True
            continue
        if in_tags and TAG_LINE.match(line):
            out.append(i)
        else:
            in_tags = False
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tags", type=int, required=True)
    ap.add_argument("--src", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    paths = sorted(posts(args.src))
    counts = collections.Counter()
    for p in paths:
        lines = open(p, encoding="utf-8").read().split("\n")
        for i in front_tags(lines):
            counts[TAG_LINE.match(lines[i]).group(1)] += 1
    ranked = [t for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    keep, tail = ranked[:20], ranked[20:]
    need = args.tags - len(keep)
    if not tail or need < len(tail) or need > 3 * len(tail):
        sys.exit(f"cannot make {args.tags} tags from {len(ranked)} (20 kept, tail x2..x3)")
    # The most used tail tags get 3 spellings, the rest 2.
    threes = need - 2 * len(tail)
    ways = {t: (3 if i < threes else 2) for i, t in enumerate(tail)}
    used = set()
    for p in paths:
        rel = os.path.relpath(p, args.src)
        text = open(p, encoding="utf-8").read()
        lines = text.split("\n")
        h = int.from_bytes(hashlib.sha1(rel.encode()).digest()[:4], "big")
        for i in front_tags(lines):
            tag = TAG_LINE.match(lines[i]).group(1)
            n = ways.get(tag, 1)
            k = h % n
            if k:
                tag = f"{tag}-{k + 1}"
            used.add(tag)
            lines[i] = f"  - {tag}"
        dst = os.path.join(args.out, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with open(dst, "w", encoding="utf-8") as f:
            f.write("\n".join(lines))
    print(f"{len(paths)} posts, {len(used)} distinct tags into {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
