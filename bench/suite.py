#!/usr/bin/env python3
"""feedsmith's benchmark harness. Each subcommand measures one thing and writes its raw rows
(one per measurement) to bench/runs/<YYYY-MM-DD>-<machine>/<benchmark>.csv; `report`
regenerates BENCHMARKS.md from the newest CSV of each benchmark and
bench/BENCHMARKS.template.md.

  scale      feedsmith export vs Hugo on generated corpora, then feedsmith serve on them
  serve      HTTP req/s and p99 of feedsmith serve vs nginx (gzip_static), with wrk
  latency    change-to-visible latency of feedsmith serve
  ab-export  export time of two feedsmith binaries, runs interleaved
  pages      sizes of the pages for people at scale, export time without (A) and with them (B)
  stages     criterion's stage benches (benches/stages.rs), run or imported
  report     BENCHMARKS.md from the committed raw data

Talks to 127.0.0.1 only; every server it starts is stopped when its benchmark ends; installs
the Debian packages it needs (time, wrk, nginx, hugo) with apt-get. `SUBCOMMAND --help` lists
the options.
"""
import argparse
import contextlib
import http.client
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
import urllib.parse

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import harness as h  # noqa: E402
import report  # noqa: E402

BIN = h.ROOT / "target" / "release" / "feedsmith"


def corpus_spec(text):
    posts, _, tags = text.replace("/", ":").partition(":")
    return int(posts), int(tags or 200)


def export(binary, config, out, cwd=None):
    """feedsmith export into an emptied OUT under /usr/bin/time (exit 1: some posts skipped)."""
    shutil.rmtree(out, ignore_errors=True)
    return h.timed([binary, "--config", config, "export", "--out", out], cwd=cwd, ok=(0, 1))


def tmpfs_dir(work, name):
    """Outputs go to tmpfs when there is one: on this ext4, creating thousands of files right
    after deleting thousands spends more time in the inode allocator than in either tool."""
    base = pathlib.Path("/dev/shm") if os.access("/dev/shm", os.W_OK) else work
    return pathlib.Path(tempfile.mkdtemp(prefix=f"feedsmith-{name}.", dir=base))


# ---- ab-export -----------------------------------------------------------------------------
def ab_export(args, work):
    h.need("/usr/bin/time")
    c = h.corpus(args.posts, args.tags)
    rec = h.Recorder("ab-export", posts=args.posts, tags=args.tags)
    config = h.write_config(work / "config.toml", c, sample=False)
    out = tmpfs_dir(work, "ab")
    subjects = [(args.label_a, args.a), (args.label_b, args.b)]
    for label, binary in subjects:
        rec.env(f"binary_{label}", f"{binary} sha256:{h.file_id(binary)}")
    try:
        h.warm(c)
        for label, binary in subjects:  # one unrecorded warm-up run each
            export(binary, config, out)
        for run in range(1, args.runs + 1):
            for label, binary in subjects:
                t = export(binary, config, out)
                h.log(f"run {run} {label}: {t['wall']:.2f} s, CPU {t['cpu']:.2f} s, {t['rss']:.0f} MiB")
                rec.add("export", label, run, "wall", t["wall"], "s")
                rec.add("export", label, run, "cpu", round(t["cpu"], 2), "s")
                rec.add("export", label, run, "rss", round(t["rss"], 1), "MiB")
    finally:
        shutil.rmtree(out, ignore_errors=True)
    rec.save()


# ---- pages ---------------------------------------------------------------------------------
def pages(args, work):
    """The pages for people on a corpus with many tags: sizes of the directory (`index.html`)
    and of the preview pages in B's export (the .gz siblings are the served gzip bodies),
    then export time of A (a build without pages) and B, runs interleaved."""
    h.need("/usr/bin/time")
    c = h.corpus(args.posts, args.tags)
    rec = h.Recorder("pages", posts=args.posts, tags=args.tags)
    config = h.write_config(work / "config.toml", c)
    out = tmpfs_dir(work, "pages")
    subjects = [(args.label_a, args.a), (args.label_b, args.b)]
    for label, binary in subjects:
        rec.env(f"binary_{label}", f"{binary} sha256:{h.file_id(binary)}")
    try:
        h.warm(c)
        for label, binary in subjects:  # one unrecorded warm-up run each; B's export is measured
            export(binary, config, out)
        size = lambda p: p.stat().st_size
        root = out / "index.html"
        rec.add("directory", args.label_b, 1, "bytes", size(root), "B")
        rec.add("directory", args.label_b, 1, "gzip", size(out / "index.html.gz"), "B")
        rec.add("directory", args.label_b, 1, "rows", root.read_text().count("<li class="), "")
        previews = [p for p in out.rglob("index.html") if p != root]
        gz = [size(p.with_name("index.html.gz")) for p in previews]
        rec.add("previews", args.label_b, 1, "files", len(previews), "")
        rec.add("previews", args.label_b, 1, "bytes", sum(map(size, previews)), "B")
        rec.add("previews", args.label_b, 1, "gzip", sum(gz), "B")
        rec.add("previews", args.label_b, 1, "max_gzip", max(gz), "B")
        for run in range(1, args.runs + 1):
            for label, binary in subjects:
                t = export(binary, config, out)
                h.log(f"run {run} {label}: {t['wall']:.2f} s, CPU {t['cpu']:.2f} s, {t['rss']:.0f} MiB")
                rec.add("export", label, run, "wall", t["wall"], "s")
                rec.add("export", label, run, "cpu", round(t["cpu"], 2), "s")
                rec.add("export", label, run, "rss", round(t["rss"], 1), "MiB")
    finally:
        shutil.rmtree(out, ignore_errors=True)
    rec.save()


# ---- scale ---------------------------------------------------------------------------------
def fetch_all(root, port, accept):
    """Fetches every exported file (not the .gz siblings) over one keep-alive connection:
    (files, non-200 responses, responses not in the first encoding of ACCEPT)."""
    paths = sorted("/" + urllib.parse.quote(str(p.relative_to(root))) for p in root.rglob("*")
                   if p.is_file() and p.suffix != ".gz")
    conn = http.client.HTTPConnection(h.HOST, port, timeout=30)
    want = accept.split(",")[0].strip()
    bad = other = 0
    for path in paths:
        status, headers, _ = h.get(port, path, {"Accept-Encoding": accept} if accept else {}, conn)
        bad += status != 200
        other += headers.get("content-encoding", "") != want
    conn.close()
    return len(paths), bad, other


def scale_serve(args, rec, case, binary, config, out, c, run, work):
    h.warm(c)
    with h.feedsmith_serve(binary, config, work) as s:
        add = lambda metric, value, unit: rec.add(case, "feedsmith serve", run, metric, round(value, 3), unit)
        add("startup", s.wait_up("/rss.xml", status=200), "s")  # exec -> first 200
        add("startup_cpu", s.sample.cpu(), "s")
        loaded = re.search(r"loaded `.*?ms=([0-9.]+)", s.text())
        add("load", float(loaded[1]) / 1000 if loaded else float("nan"), "s")
        add("rss_loaded", s.sample.rss(), "MiB")
        # Worst case for memory: every file asked for in gzip, in brotli (made in the
        # background: asked again until every response is brotli), and uncompressed.
        files, bad, _ = fetch_all(out, s.port, "gzip")
        add("rss_gzip", s.sample.rss(), "MiB")
        deadline = time.monotonic() + 300
        while fetch_all(out, s.port, "br, gzip")[2] and time.monotonic() < deadline:
            time.sleep(2)
        add("rss_brotli", s.sample.rss(), "MiB")
        bad += fetch_all(out, s.port, "")[1]
        add("rss_identity", s.sample.rss(), "MiB")
        cpu0 = s.sample.cpu()
        time.sleep(args.idle)
        add("idle_cpu", (s.sample.cpu() - cpu0) / args.idle * 100, "%")
        add("hwm", s.sample.hwm(), "MiB")
        add("rss_end", s.sample.rss(), "MiB")
        log = s.text()
        add("rebuilds_after_start", max(0, len(re.findall(r": rebuilt\b", log)) - 1), "")
        add("polling", int("falling back to polling" in log), "")
        add("non_200", bad, "")
        h.log(f"{case} serve run {run}: VmRSS {s.sample.rss():.0f} MiB after fetching {files} files 3 times")


def scale(args, work):
    h.need("/usr/bin/time", *([] if args.no_hugo else ["hugo"]))
    rec = h.Recorder("scale", runs=args.runs, serve_runs=args.serve_runs or args.runs, idle_s=args.idle)
    rec.env("binary", f"{args.bin} sha256:{h.file_id(args.bin)}")
    if not args.no_hugo:
        rec.env("hugo", h.sh("hugo", "version"))
    cfg = (h.ROOT / "config.toml").read_text()
    site_values = {k: re.search(rf'^{k} *= *"(.*)"', cfg, re.M)[1] for k in ("title", "base_url", "time_zone")}
    for posts, tags in map(corpus_spec, args.corpora):
        case = f"{posts}/{tags}"
        c = h.corpus(posts, tags)
        rec.add(case, "corpus", "", "bytes", sum(os.path.getsize(p) for p in h.md_files(c)), "B")
        rec.add(case, "corpus", "", "distinct_tags", tags, "")
        config = h.write_config(work / f"config-{posts}-{tags}.toml", c)
        # The same without archive pages: closer to Hugo's work (the newest 20 per feed).
        bare = h.write_config(work / f"config-{posts}-{tags}-bare.toml", c, feed__archives="false")
        site = work / f"hugo-{posts}-{tags}"
        h.fill("hugo-config.toml", site / "config.toml", content=c, base=site_values["base_url"],
               title=site_values["title"], tz=site_values["time_zone"])
        h.fill("hugo-rss.xml", site / "layouts" / "_default" / "rss.xml")
        out, hout, bout = tmpfs_dir(work, "export"), tmpfs_dir(work, "hugo"), tmpfs_dir(work, "bare")
        try:
            for run in range(1, args.runs + 1):
                h.warm(c)
                t = export(args.bin, config, out, cwd=work)
                feeds = re.search(r"exported (\d+) feeds", t["stdout"])
                measured = [("feedsmith export", t, int(feeds[1]) if feeds else 0, out)]
                h.warm(c)
                t = export(args.bin, bare, bout, cwd=work)
                feeds = re.search(r"exported (\d+) feeds", t["stdout"])
                measured.append(("feedsmith export, no archives", t, int(feeds[1]) if feeds else 0, bout))
                if not args.no_hugo:
                    shutil.rmtree(hout, ignore_errors=True)
                    shutil.rmtree(site / "resources", ignore_errors=True)
                    ht = h.timed(["hugo", "--quiet", "--source", site, "--destination", hout])
                    measured.append(("hugo", ht, len(list(hout.rglob("index.xml"))), hout))
                for subject, t, feeds, d in measured:
                    h.log(f"{case} run {run} {subject}: {t['wall']:.2f} s, CPU {t['cpu']:.2f} s, {t['rss']:.0f} MiB")
                    sizes = [p.stat().st_size for p in d.rglob("*") if p.is_file()]
                    for metric, value, unit in (("wall", t["wall"], "s"), ("cpu", round(t["cpu"], 2), "s"),
                                                ("rss", round(t["rss"], 1), "MiB"), ("feeds", feeds, ""),
                                                ("files", len(sizes), ""), ("bytes", sum(sizes), "B")):
                        rec.add(case, subject, run, metric, value, unit)
            for run in range(1, (args.serve_runs or args.runs) + 1) if not args.no_serve else ():
                scale_serve(args, rec, case, args.bin, config, out, c, run, work)
        finally:
            shutil.rmtree(out, ignore_errors=True)
            shutil.rmtree(bout, ignore_errors=True)
            shutil.rmtree(hout, ignore_errors=True)
    rec.save()


# ---- serve ---------------------------------------------------------------------------------
def wrk(args, port, path, headers, seconds):
    """req/s, p99 ms, non-2xx/3xx responses and socket errors of one wrk run."""
    cmd = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{seconds}s", "--latency"]
    for header in headers:
        cmd += ["-H", header]
    text = subprocess.run(cmd + [f"http://{h.HOST}:{port}{path}"], capture_output=True, text=True,
                          check=True, timeout=seconds + 60).stdout
    p99 = re.search(r"^\s*99%\s+([0-9.]+)(us|ms|s)\s*$", text, re.M)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return {"rps": float(re.search(r"Requests/sec:\s+([0-9.]+)", text)[1]),
            "p99": float(p99[1]) * {"us": 0.001, "ms": 1, "s": 1000}[p99[2]],
            "non2xx3xx": int(bad[1]) if bad else 0,
            "socket_errors": sum(map(int, errors.groups())) if errors else 0}


def check(name, port, path, export_dir):
    """The server returns the exported bytes, a gzip body with an ETag, and a 304 for it:
    (identity bytes, gzip bytes, gzip ETag)."""
    try:
        status, _, body = h.get(port, path)
    except OSError as e:
        sys.exit(f"{name} {path} on port {port}: {e}")
    if status != 200 or body != (export_dir / urllib.parse.unquote(path.lstrip("/"))).read_bytes():
        sys.exit(f"{name} {path}: status {status} or body differs from the exported file")
    _, headers, gz = h.get(port, path, {"Accept-Encoding": "gzip"})
    etag = headers.get("etag")
    if headers.get("content-encoding") != "gzip" or not etag:
        sys.exit(f"{name} {path}: no gzip body or no ETag")
    status = h.get(port, path, {"Accept-Encoding": "gzip", "If-None-Match": etag})[0]
    if status != 304:
        sys.exit(f"{name} {path}: If-None-Match {etag} gave {status}, not 304")
    return len(body), len(gz), etag


def serve(args, work):
    h.need("wrk", "nginx")
    if args.corpus:
        c = h.corpus(args.corpus, args.tags)
        config, content = h.write_config(work / "config.toml", c), f"{args.corpus} posts, {args.tags} tags"
    else:
        config, content = h.ROOT / "config.toml", f"sample content/ ({len(list(h.md_files(h.ROOT / 'content')))} posts)"
    export_dir = work / "export"
    export(args.bin, config, export_dir, cwd=h.ROOT)
    tag = args.tag or max((export_dir / "tags").glob("*/rss.xml"), key=lambda p: (p.stat().st_size, p)).parent.name
    paths = ["/rss.xml", "/" + urllib.parse.quote(f"tags/{tag}/rss.xml")]
    if args.metrics_cost:  # the same build with metrics off, as the baseline
        args.baseline = args.bin
        args.baseline_config = h.write_config(work / "config-metrics-off.toml",
                                              h.corpus(args.corpus, args.tags) if args.corpus else h.ROOT / "content",
                                              server__metrics="false")
    if args.baseline:  # an older build, serving its own export of the same content
        base_config = args.baseline_config or config
        export(args.baseline, base_config, work / "export-base", cwd=h.ROOT)
    with contextlib.ExitStack() as stack:
        fs = stack.enter_context(h.feedsmith_serve(args.bin, config, work))
        fs.wait_up("/healthz")
        base = None
        if args.baseline:
            base = stack.enter_context(h.Server(
                "feedsmith-base", [args.baseline, "--config", base_config, "serve", "--bind", f"{h.HOST}:0"],
                work, None, env={**os.environ, "RUST_LOG": "info"}))
            base.wait_up("/healthz")
        workers = re.search(r"starting (\d+) workers", fs.text())
        workers = int(workers[1]) if workers else os.cpu_count()
        rec = h.Recorder("metrics-cost" if args.metrics_cost else "serve", content=content.replace(" ", "_"), workers=workers, threads=args.threads,
                         connections=args.connections, duration_s=args.duration, warmup_s=args.warmup)
        rec.env("binary", f"{args.bin} sha256:{h.file_id(args.bin)}")
        if base:
            rec.env("baseline", f"{args.baseline} sha256:{h.file_id(args.baseline)}")
        rec.env("nginx", h.sh(h.which("nginx"), "-v").removeprefix("nginx version: ").replace("/", " "))
        rec.env("wrk", h.sh("wrk", "-v").split(" [")[0])
        ng = work / "nginx"
        (ng / "tmp").mkdir(parents=True)
        cache_control = re.search(r'^cache_control *= *"(.*)"', pathlib.Path(config).read_text(), re.M)[1]
        ng_port = h.free_port()
        h.fill("nginx.conf", ng / "nginx.conf", workers=workers, dir=ng, host=h.HOST, port=ng_port,
               root=export_dir, cache_control=cache_control)
        os.chmod(work, 0o755)  # nginx workers may run as an unprivileged user
        with h.Server("nginx", [h.which("nginx"), "-p", ng, "-c", ng / "nginx.conf", "-e", ng / "error.log"],
                      work, ng_port) as nginx:
            nginx.wait_up("/", timeout=10)
            servers = [("feedsmith", fs), ("nginx", nginx)] + ([("feedsmith-base", base)] if base else [])
            etags = {}
            for name, s in servers:
                for path in paths:
                    exported = work / "export-base" if name == "feedsmith-base" else export_dir
                    plain, gz, etags[name, path] = check(name, s.port, path, exported)
                    rec.add(f"plain {path}", name, "", "bytes", plain, "B")
                    rec.add(f"gzip {path}", name, "", "bytes", gz, "B")
            cases = {"plain": lambda name, path: [],
                     "gzip": lambda name, path: ["Accept-Encoding: gzip"],
                     "304": lambda name, path: ["Accept-Encoding: gzip", f"If-None-Match: {etags[name, path]}"]}
            for path in paths:
                for name, s in servers if args.warmup else ():
                    wrk(args, s.port, path, ["Accept-Encoding: gzip"], args.warmup)
                for kind, headers in cases.items():
                    for run in range(1, args.runs + 1):
                        for name, s in servers:  # peers interleaved run by run
                            r = wrk(args, s.port, path, headers(name, path), args.duration)
                            h.log(f"{name} {kind} {path} run {run}: {r['rps']:.0f} req/s, p99 {r['p99']:.2f} ms")
                            for metric, unit in (("rps", "req/s"), ("p99", "ms"), ("non2xx3xx", ""), ("socket_errors", "")):
                                rec.add(f"{kind} {path}", name, run, metric, r[metric], unit)
        rec.add("after", "feedsmith", "", "rss", round(fs.sample.rss(), 1), "MiB")
    rec.save()


# ---- latency -------------------------------------------------------------------------------
REBUILT = re.compile(r"rebuilt .*?files_changed=(\d+) .*?generation=(\d+) ms=([\d.]+)")


def rebuilds(server, seen):
    """(files_changed, ms) of the `rebuilt` log lines of SERVER past generation SEEN[0]."""
    out = []
    for files, gen, ms in REBUILT.findall(server.text()):
        if int(gen) > seen[0]:
            seen[0] = int(gen)
            out.append((int(files), float(ms)))
    return out


def vm_hwm(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmHWM:"))


def latency_run(rec, label, binary, spec, args, work, run):
    """One server of BINARY on corpus SPEC: start-up to the first 200, single edits of a probe
    post (change-to-visible, and the rebuild work the server logs for it), a burst of new
    posts and their removal (until /healthz counts them), VmHWM at the end."""
    posts, tags = spec
    c = h.corpus(posts, tags)
    case = f"{posts}/{tags}"
    config = h.write_config(work / f"config-{label}.toml", c, watch__debounce_ms=args.debounce_ms)
    probe, tmp = c / "zz-latency-probe.md", c / ".zz-latency-probe.md.tmp"
    burst = c / "zz-latency-burst"
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    def save(n):  # write + rename, as editors save
        tmp.write_text(f"---\ntitle: 'latency probe'\ndate: '{now}'\ntags: [bench]\n---\nedit {n}\n", encoding="utf-8")
        os.replace(tmp, probe)

    shutil.rmtree(burst, ignore_errors=True)
    save(0)
    h.warm(c)
    try:
        with h.feedsmith_serve(binary, config, work) as s:
            startup = s.wait_up("/rss.xml", status=200, timeout=1800)
            rec.add(case, label, run, "startup", round(startup, 2), "s")
            seen = [0]
            rebuilds(s, seen)
            conn = http.client.HTTPConnection(h.HOST, s.port, timeout=30)
            etag = lambda inm=None: h.get(s.port, "/rss.xml", {"If-None-Match": inm} if inm else {}, conn)[1].get("etag")
            health = lambda: json.loads(h.get(s.port, "/healthz", None, conn)[2])
            current = etag()
            for n in range(1, args.edits + 1):
                time.sleep(args.pause)
                start = time.perf_counter()
                save(n)
                # Poll with If-None-Match (cheap 304s) until the ETag changes.
                while (tag := etag(current)) == current and time.perf_counter() - start < args.timeout:
                    time.sleep(0.001)
                if tag == current:
                    h.log(f"{label} {case} edit {n}: no new ETag within {args.timeout} s")
                    rec.add(f"{case} edit", label, run, "timeout", 1)
                    continue
                seen_ms = round((time.perf_counter() - start) * 1000, 2)
                done = rebuilds(s, seen)
                rec.add(f"{case} edit", label, run, "latency", seen_ms, "ms", edit=n)
                if done:
                    rec.add(f"{case} edit", label, run, "work", round(sum(ms for _, ms in done), 2), "ms", edit=n)
                current = tag
            if args.burst:
                base = health()["posts"]
                for what, want in (("burst add", base + args.burst), ("burst remove", base)):
                    time.sleep(2 * args.debounce_ms / 1000)
                    rebuilds(s, seen)
                    start = time.perf_counter()
                    if what == "burst add":
                        burst.mkdir()
                        for i in range(args.burst):
                            (burst / f"b{i:04d}.md").write_text(
                                f"---\ntitle: 'burst {i}'\ndate: '{now}'\ntags: [bench, burst{i % 50}]\n---\nburst {i}\n",
                                encoding="utf-8")
                    else:
                        shutil.rmtree(burst)
                    written = time.perf_counter() - start
                    while (got := health()["posts"]) != want and time.perf_counter() - start < args.timeout * 6:
                        time.sleep(0.005)
                    elapsed = time.perf_counter() - start
                    if got != want:
                        h.log(f"{label} {case} {what}: {got} posts, not {want}, after {elapsed:.1f} s")
                        rec.add(f"{case} {what} {args.burst}", label, run, "timeout", 1)
                        continue
                    time.sleep(0.05)
                    done = rebuilds(s, seen)
                    rec.add(f"{case} {what} {args.burst}", label, run, "latency", round(elapsed * 1000, 1), "ms")
                    rec.add(f"{case} {what} {args.burst}", label, run, "written", round(written * 1000, 1), "ms")
                    rec.add(f"{case} {what} {args.burst}", label, run, "work", round(sum(ms for _, ms in done), 1), "ms")
                    rec.add(f"{case} {what} {args.burst}", label, run, "rebuilds", len(done))
                    h.log(f"{label} {case} {what}: visible in {elapsed * 1000:.0f} ms, {len(done)} rebuilds "
                          f"{sum(ms for _, ms in done):.0f} ms of work")
            rec.add(case, label, run, "hwm", round(vm_hwm(s.proc.pid), 1), "MiB")
    finally:
        probe.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)
        shutil.rmtree(burst, ignore_errors=True)


def latency(args, work):
    """Change-to-visible latency per corpus, this build and (with --baseline) an older one,
    servers alternating (baseline first in odd runs)."""
    specs = [corpus_spec(c) for c in args.corpora]
    rec = h.Recorder("latency", debounce_ms=args.debounce_ms, edits=args.edits, burst=args.burst)
    subjects = [("after", args.bin)] + ([("before", args.baseline)] if args.baseline else [])
    for label, binary in subjects:
        rec.env(f"binary_{label}", f"{binary} sha256:{h.file_id(binary)}")
    for spec in specs:
        for run in range(1, args.runs + 1):
            order = subjects if run % 2 == 0 else subjects[::-1]
            for label, binary in order:
                h.log(f"{label} on {spec[0]}/{spec[1]}, run {run}")
                latency_run(rec, label, binary, spec, args, work, run)
    rec.save()


# ---- stages --------------------------------------------------------------------------------
def stages(args, work):
    """Runs `cargo bench --bench stages -- FILTER` --repeat times (unless --import-only) and
    records criterion's estimates (target/criterion/<group>/<id>/new/) of the given groups
    after each, with the repetition as the run index."""
    rec = h.Recorder("stages", repeat=args.repeat)
    lock = (h.ROOT / "Cargo.lock").read_text()
    rec.env("criterion", re.search(r'name = "criterion"\nversion = "(.*)"', lock)[1])
    for run in range(1, args.repeat + 1):
        started = time.time()
        if not args.import_only:
            subprocess.run(["cargo", "bench", "--locked", "--bench", "stages", "--", *args.filter], cwd=h.ROOT,
                           check=True, timeout=3600)
        for group in args.groups:
            for new in sorted((h.ROOT / "target" / "criterion" / group).glob("*/new")):
                if (new / "estimates.json").stat().st_mtime < started and not args.import_only:
                    sys.exit(f"{new} was not written by this run (does the filter match group {group}?)")
                est = json.loads((new / "estimates.json").read_text())
                case = f"{group}/{new.parent.name}"
                for stat in ("median", "mean"):
                    rec.add(case, group, run, stat, est[stat]["point_estimate"], "ns")
                    rec.add(case, group, run, f"{stat}_ci_low", est[stat]["confidence_interval"]["lower_bound"], "ns")
                    rec.add(case, group, run, f"{stat}_ci_high", est[stat]["confidence_interval"]["upper_bound"], "ns")
                throughput = json.loads((new / "benchmark.json").read_text()).get("throughput") or {}
                for kind, value in throughput.items():
                    rec.add(case, group, run, "throughput", value, kind)
    # cargo bench relinks target/release/feedsmith with the dev-dependencies' features; put
    # back the binary `cargo build --release --locked` makes, which the other benchmarks measure.
    if not args.import_only:
        subprocess.run(["cargo", "build", "--release", "--locked"], cwd=h.ROOT, check=True, timeout=3600)
    rec.save()


# ---- CLI -----------------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=str(BIN), help="feedsmith binary for scale, serve and latency (default: %(default)s)")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ab-export", help="export time of binaries A and B, runs interleaved (A, B, A, B, ...)")
    p.add_argument("--a", default="/tmp/feedsmith-base", help="binary A (default %(default)s)")
    p.add_argument("--b", default=str(BIN), help="binary B (default target/release/feedsmith)")
    p.add_argument("--label-a", default="base")
    p.add_argument("--label-b", default="new")
    p.add_argument("--posts", type=int, default=10000)
    p.add_argument("--tags", type=int, default=200)
    p.add_argument("--runs", type=int, default=7)
    p.set_defaults(run=ab_export)

    p = sub.add_parser("pages", help="pages for people at scale: directory size, export time A (no pages) vs B")
    p.add_argument("--a", default="/tmp/feedsmith-base", help="binary without pages (default %(default)s)")
    p.add_argument("--b", default=str(BIN), help="binary B (default target/release/feedsmith)")
    p.add_argument("--label-a", default="base")
    p.add_argument("--label-b", default="pages")
    p.add_argument("--posts", type=int, default=10000)
    p.add_argument("--tags", type=int, default=2000)
    p.add_argument("--runs", type=int, default=5)
    p.set_defaults(run=pages)

    p = sub.add_parser("scale", help="export vs Hugo and serve memory/start-up on generated corpora")
    p.add_argument("corpora", nargs="*", default=h.SCALE_CORPORA, metavar="POSTS[:TAGS]",
                   help="default: %(default)s")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--idle", type=float, default=3, help="seconds of idle-CPU sampling per serve run")
    p.add_argument("--no-hugo", action="store_true")
    p.add_argument("--serve-runs", type=int, help="serve runs per corpus (default: --runs)")
    p.add_argument("--no-serve", action="store_true")
    p.set_defaults(run=scale)

    p = sub.add_parser("serve", help="req/s and p99 vs nginx with wrk (global feed and largest tag feed)")
    p.add_argument("--corpus", type=int, help="a generated corpus of N posts instead of the sample content/")
    p.add_argument("--tags", type=int, default=200)
    p.add_argument("--tag", help="tag feed to hit (default: the one with the largest rss.xml)")
    p.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    p.add_argument("--warmup", type=int, default=2, help="wrk warm-up per server and URL, seconds (0: none)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--baseline", help="an older feedsmith binary, measured in the same runs (before/after)")
    p.add_argument("--baseline-config", help="config for --baseline (an older build may reject newer keys)")
    p.add_argument("--metrics-cost", action="store_true",
                   help="the baseline is this build with [server] metrics = false (recorded as metrics-cost)")
    p.set_defaults(run=serve)

    p = sub.add_parser("latency", help="save a probe post, poll /rss.xml until its ETag changes; bursts")
    p.add_argument("--corpora", nargs="*", default=["10000/200", "100000/2000"], help="POSTS/TAGS (default: %(default)s)")
    p.add_argument("--edits", type=int, default=100)
    p.add_argument("--burst", type=int, default=1000, help="posts added at once, then removed (0: none)")
    p.add_argument("--runs", type=int, default=1, help="servers per binary and corpus")
    p.add_argument("--baseline", help="an older feedsmith binary, measured in the same runs (before/after)")
    p.add_argument("--debounce-ms", type=int, default=100)
    p.add_argument("--pause", type=float, default=0.3,
                   help="seconds between a visible edit and the next save (over two debounce periods: an isolated edit)")
    p.add_argument("--timeout", type=float, default=10.0, help="max seconds per edit")
    p.set_defaults(run=latency)

    p = sub.add_parser("stages", help="criterion stage benches into raw rows")
    p.add_argument("--filter", nargs="*", default=["body"], help="criterion filter (default: %(default)s)")
    p.add_argument("--groups", nargs="*", default=["body", "body_unsanitized"])
    p.add_argument("--repeat", type=int, default=1, help="cargo bench runs, one after the other")
    p.add_argument("--import-only", action="store_true", help="record the existing target/criterion results")
    p.set_defaults(run=stages)

    p = sub.add_parser("report", help="regenerate BENCHMARKS.md from bench/runs/*/*.csv")
    p.add_argument("--out", default=str(h.ROOT / "BENCHMARKS.md"))
    p.set_defaults(run=lambda args, work: report.write(pathlib.Path(args.out)))

    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanups
    if args.command in ("scale", "serve", "latency") and not os.access(args.bin, os.X_OK):
        sys.exit(f"no binary at {args.bin}: cargo build --release --locked first")
    with tempfile.TemporaryDirectory(prefix="feedsmith-suite.") as work:
        args.run(args, pathlib.Path(work))


if __name__ == "__main__":
    main()
