#!/usr/bin/env bash
# A/B export timing of two feedsmith binaries on one corpus, runs interleaved (A, B, A, B, ...)
# so that machine noise hits both alike. Each run exports into an empty directory on tmpfs
# (/dev/shm) with the default config pointed at the corpus; wall seconds and peak RSS come
# from /usr/bin/time. Prints every run, then median (min-max) per binary and the ratio B/A.
#
# Usage: bench/ab-export.sh A_BIN B_BIN CORPUS_DIR [RUNS]
#   e.g. a release build of the previous commit (git worktree) as A, target/release/feedsmith
#   as B, and a corpus from ../shared/bench/gen-corpus.py --posts 10000 --tags 200 --seed 1.
set -euo pipefail
a=$1 b=$2 corpus=$3 runs=${4:-7}
[ -x /usr/bin/time ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null; }
work=$(mktemp -d /dev/shm/ab-export.XXXXXX)
trap 'rm -rf "$work"' EXIT
printf '[content]\ndir = "%s"\n' "$corpus" > "$work/config.toml"
one() { # bin label
  rm -rf "$work/out"
  /usr/bin/time -f "%e %M" -o "$work/time" "$1" --config "$work/config.toml" export --out "$work/out" >/dev/null 2>&1 || true
  read -r secs kib < "$work/time"
  echo "$2 $secs $((kib / 1024))" | tee -a "$work/runs"
}
cat "$corpus"/*/* >/dev/null 2>&1 || true # warm the page cache
one "$a" warm-a >/dev/null; one "$b" warm-b >/dev/null
: > "$work/runs"
for _ in $(seq 1 "$runs"); do one "$a" A; one "$b" B; done
python3 - "$work/runs" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    label, secs, mib = line.split()
    runs.setdefault(label, []).append((float(secs), int(mib)))
med = {}
for label in ("A", "B"):
    secs = [s for s, _ in runs[label]]
    mib = [m for _, m in runs[label]]
    med[label] = statistics.median(secs)
    print(f"{label}: {med[label]:.2f} s ({min(secs):.2f}-{max(secs):.2f}), peak RSS {statistics.median(mib)} MiB ({min(mib)}-{max(mib)})")
print(f"B/A wall: {med['B'] / med['A']:.3f}")
PY
