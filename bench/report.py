"""BENCHMARKS.md from the raw CSVs in bench/runs/ (the newest run of each benchmark) and the
prose in bench/BENCHMARKS.template.md. Every figure is computed here from raw rows.

The template has one block per benchmark, `<!-- section NAME -->` ... `<!-- end NAME -->`,
with placeholders `{{NAME.part}}`; a block whose benchmark has no raw data is left out and
named where the template says `{{pending}}`. `{{machine}}` is the machine table."""
import csv
import re

import harness as h

TEMPLATE = h.BENCH / "BENCHMARKS.template.md"
BLOCK = re.compile(r"<!-- section (\S+) -->\n(.*?)<!-- end \1 -->\n", re.S)


class Data:
    """The raw rows of one benchmark run."""

    def __init__(self, path):
        self.path = path
        rows = h.read_rows(path)
        self.env = {r["metric"]: r["value"] for r in rows if r["case"] == "env"}
        self.rows = [r for r in rows if r["case"] != "env"]

    def cases(self):
        return list(dict.fromkeys(r["case"] for r in self.rows))

    def values(self, case, subject, metric):
        return [float(r["value"]) for r in self.rows
                if (r["case"], r["subject"], r["metric"]) == (case, subject, metric)]

    def median(self, case, subject, metric):
        return h.summary(self.values(case, subject, metric))[0]

    def cell(self, case, subject, metric, digits=2):
        """'median (min–max)' of the runs, or the one value."""
        v = self.values(case, subject, metric)
        if not v:
            return "–"
        med, lo, hi = h.summary(v)
        return num(med, digits) if num(lo, digits) == num(hi, digits) else f"{num(med, digits)} ({num(lo, digits)}–{num(hi, digits)})"

    def meta(self, key):
        return next(r["meta"][key] for r in self.rows if key in r["meta"])

    def when(self):
        e = self.env
        return (f"Measured {e['started'][:10]} {e['started'][11:19]}–{e['ended'][11:19]} UTC from source at commit `{e['commit']}`; "
                + (f"binary `{e['binary']}`; " if "binary" in e else "") +
                f"load average {e['loadavg_start']} at the start, {e['loadavg_end']} at the end; raw rows: "
                f"[`{self.path.relative_to(h.ROOT)}`]({self.path.relative_to(h.ROOT)}).")


def num(x, digits=2):
    return f"{x:,.{digits}f}"


def ratio(a, b):
    return num(h.ratio(a, b), 2)


def table(header, rows, right_from=1):
    out = ["| " + " | ".join(header) + " |",
           "|" + "|".join("---" if i < right_from else "---:" for i in range(len(header))) + "|"]
    return "\n".join(out + ["| " + " | ".join(map(str, r)) + " |" for r in rows])


# ---- per benchmark -------------------------------------------------------------------------
def ab_export(d):
    subjects = list(dict.fromkeys(r["subject"] for r in d.rows))
    a, b = subjects
    runs = sorted({int(r["run"]) for r in d.rows})
    per_run = lambda s: dict(zip(runs, d.values("export", s, "wall")))
    wa, wb = per_run(a), per_run(b)
    paired = h.summary([h.ratio(wb[r], wa[r]) for r in runs])
    return {
        "posts": num(int(d.meta("posts")), 0), "tags": num(int(d.meta("tags")), 0), "runs": len(runs),
        "a": a, "b": b, "binary_a": d.env[f"binary_{a}"], "binary_b": d.env[f"binary_{b}"],
        "table": table(["binary", "wall s", "CPU s (user + sys)", "peak RSS MiB"],
                       [[f"{s} ({'A' if s == a else 'B'})", d.cell("export", s, "wall"), d.cell("export", s, "cpu"),
                         d.cell("export", s, "rss", 0)] for s in (a, b)]),
        "ratio": ratio(d.median("export", b, "wall"), d.median("export", a, "wall")),
        "cpu_ratio": ratio(d.median("export", b, "cpu"), d.median("export", a, "cpu")),
        "paired": f"{num(paired[0])} ({num(paired[1])}–{num(paired[2])})",
        "runs_table": table(["run", f"{a} wall s", f"{b} wall s", f"{b}/{a}"],
                            [[r, num(wa[r]), num(wb[r]), ratio(wb[r], wa[r])] for r in runs]),
    }


def pages(d):
    a, b = list(dict.fromkeys(r["subject"] for r in d.rows if r["case"] == "export"))
    one = lambda case, metric: d.values(case, b, metric)[0]
    kib = lambda n: f"{num(n / 1024, 0)} KiB"
    runs = sorted({int(r["run"]) for r in d.rows if r["case"] == "export"})
    files = one("previews", "files")
    return {
        "posts": num(int(d.meta("posts")), 0), "tags": num(int(d.meta("tags")), 0), "runs": len(runs),
        "a": a, "b": b, "binary_a": d.env[f"binary_{a}"], "binary_b": d.env[f"binary_{b}"],
        "dir_gzip": kib(one("directory", "gzip")),
        "sizes": table(["page", "files", "bytes", "gzip (as served)"], [
            ["directory `/`", 1, kib(one("directory", "bytes")), f"**{kib(one('directory', 'gzip'))}**"],
            ["preview pages", num(files, 0), f"{kib(one('previews', 'bytes'))} in all",
             f"{kib(one('previews', 'gzip'))} in all, {num(one('previews', 'gzip') / files / 1024, 1)} KiB each "
             f"on average, {kib(one('previews', 'max_gzip'))} the largest"]]),
        "rows": num(one("directory", "rows"), 0),
        "table": table(["binary", "wall s", "CPU s (user + sys)", "peak RSS MiB"],
                       [[f"{s} ({'A' if s == a else 'B'})", d.cell("export", s, "wall"), d.cell("export", s, "cpu"),
                         d.cell("export", s, "rss", 0)] for s in (a, b)]),
        "ratio": ratio(d.median("export", b, "wall"), d.median("export", a, "wall")),
        "cpu_ratio": ratio(d.median("export", b, "cpu"), d.median("export", a, "cpu")),
        "paired": paired(d, a, b, runs),
    }


def paired(d, a, b, runs):
    """Median (min–max) of the per-run wall ratios B/A."""
    wa, wb = (dict(zip(runs, d.values("export", s, "wall"))) for s in (a, b))
    p = h.summary([h.ratio(wb[r], wa[r]) for r in runs])
    return f"{num(p[0])} ({num(p[1])}–{num(p[2])})"


def stages(d):
    """Criterion's median per benchmark: with one repetition, with criterion's 95 % interval;
    with several, the median (min–max) of the repetitions' medians."""
    runs = sorted({r["run"] for r in d.rows})

    def scaled(*ns):
        unit, div = next((u, v) for u, v in (("s", 1e9), ("ms", 1e6), ("µs", 1e3), ("ns", 1)) if ns[0] >= v)
        digits = 2 if ns[0] / div < 10 else 1
        return f"{num(ns[0] / div, digits)} {unit}" + (f" ({num(ns[1] / div, digits)}–{num(ns[2] / div, digits)})" if ns[1:] else "")

    def time(case, group):
        v = d.values(case, group, "median")
        if len(v) == 1:
            return v[0], scaled(v[0], d.values(case, group, "median_ci_low")[0], d.values(case, group, "median_ci_high")[0])
        med, lo, hi = h.summary(v)
        return med, scaled(med, lo, hi)

    seeds = [c.split("/", 1)[1] for c in d.cases() if c.startswith("body/")]
    rows = []
    for seed in seeds:
        (s, s_txt), (u, u_txt) = time(f"body/{seed}", "body"), time(f"body_unsanitized/{seed}", "body_unsanitized")
        diffs = [a - b for a, b in zip(d.values(f"body/{seed}", "body", "median"),
                                       d.values(f"body_unsanitized/{seed}", "body_unsanitized", "median"))]
        diff = h.summary(diffs)
        size = int(d.values(f"body/{seed}", "body", "throughput")[0])
        rows.append([seed, num(size, 0), s_txt, u_txt,
                     f"{num(diff[0] / 1000, 1)} µs" + (f" ({num(diff[1] / 1000, 1)}–{num(diff[2] / 1000, 1)})" if len(diffs) > 1 else ""),
                     f"{num(diff[0] / u * 100, 0)} %"])
    others = []
    for case in d.cases():
        group = case.split("/", 1)[0]
        if group not in ("body", "body_unsanitized"):
            med, txt = time(case, group)
            size = d.values(case, group, "throughput")
            others.append([f"`{case}`", txt, f"{num(size[0] / (med / 1e9) / 2**20, 0)} MiB/s" if size else ""])
    how = ("median with criterion's 95 % interval" if len(runs) == 1 else
           f"median (min–max) of the {len(runs)} runs' criterion medians; the difference is taken run by run")
    return {"table": table(["seed", "input B", "`body` (sanitized)", "`body_unsanitized`", "difference",
                            "difference / unsanitized"], rows),
            "others": table(["benchmark", "median", "throughput"], others) if others else
            "_Only the `body` groups were run (`cargo bench --bench stages -- body`)._",
            "how": how, "runs": len(runs), "criterion": d.env["criterion"]}


def serve(d):
    paths = list(dict.fromkeys(c.split(" ", 1)[1] for c in d.cases() if " " in c))
    rows = []
    for path in paths:
        for kind, label in (("plain", "plain"), ("gzip", "gzip"), ("304", "304 (gzip ETag)")):
            case = f"{kind} {path}"
            size = d.values(case, "feedsmith", "bytes")
            fr, nr = d.median(case, "feedsmith", "rps"), d.median(case, "nginx", "rps")
            fp, np_ = d.median(case, "feedsmith", "p99"), d.median(case, "nginx", "p99")
            rows.append([f"`{path}`", label, num(size[0], 0) if size else 0,
                         d.cell(case, "feedsmith", "rps", 0), d.cell(case, "nginx", "rps", 0), ratio(fr, nr),
                         d.cell(case, "feedsmith", "p99"), d.cell(case, "nginx", "p99"), ratio(fp, np_)])
    before = []
    for path in paths if "baseline" in d.env else ():
        for kind in ("plain", "gzip", "304"):
            case = f"{kind} {path}"
            br, ar = d.median(case, "feedsmith-base", "rps"), d.median(case, "feedsmith", "rps")
            before.append([f"`{path}`", kind, d.cell(case, "feedsmith-base", "rps", 0),
                           d.cell(case, "feedsmith", "rps", 0), ratio(ar, br)])
    errors = sum(float(r["value"]) for r in d.rows if r["metric"] in ("non2xx3xx", "socket_errors"))
    m = {k: d.meta(k) for k in ("content", "workers", "threads", "connections", "duration_s", "warmup_s")}
    return {**m, "content": m["content"].replace("_", " "),
            "runs": max(int(r["run"]) for r in d.rows if r["run"]), "nginx": d.env["nginx"], "wrk": d.env["wrk"],
            "errors": "none" if not errors else f"{errors:.0f} (see the raw rows)",
            "table": table(["feed", "case", "bytes", "feedsmith req/s", "nginx req/s", "req/s fs/nginx",
                            "feedsmith p99 ms", "nginx p99 ms", "p99 fs/nginx"], rows, right_from=2),
            "rss": num(d.values("after", "feedsmith", "rss")[0], 1),
            "baseline": ("Before/after, in the same runs (the three servers alternate run by run): "
                         f"`--baseline` {d.env['baseline']} against the current build.\n\n"
                         + table(["feed", "case", "before req/s", "after req/s", "after/before"], before, right_from=2)
                         if before else "_No baseline build in this run._")}


def metrics_cost(d):
    paths = list(dict.fromkeys(c.split(" ", 1)[1] for c in d.cases() if " " in c))
    rows = []
    for path in paths:
        for kind in ("plain", "gzip", "304"):
            case = f"{kind} {path}"
            off, on = d.median(case, "feedsmith-base", "rps"), d.median(case, "feedsmith", "rps")
            rows.append([f"`{path}`", kind, d.cell(case, "feedsmith-base", "rps", 0),
                         d.cell(case, "feedsmith", "rps", 0), ratio(on, off),
                         d.cell(case, "feedsmith-base", "p99"), d.cell(case, "feedsmith", "p99")])
    m = {k: d.meta(k) for k in ("content", "workers", "threads", "connections", "duration_s", "warmup_s")}
    return {**m, "content": m["content"].replace("_", " "),
            "runs": max(int(r["run"]) for r in d.rows if r["run"]),
            "wrk": d.env["wrk"], "binary": d.env["binary"],
            "table": table(["feed", "case", "metrics off req/s", "metrics on req/s", "on/off",
                            "off p99 ms", "on p99 ms"], rows, right_from=2)}


def scale(d):
    cases = [c for c in d.cases() if "/" in c]
    label = lambda c: " / ".join(num(int(x), 0) for x in c.split("/"))
    hugo = any(r["subject"] == "hugo" for r in d.rows)
    fs, hg = "feedsmith export", "hugo"
    export_rows, serve_rows = [], []
    for c in cases:
        out = lambda s: f"{d.cell(c, s, 'feeds', 0)} / {d.cell(c, s, 'files', 0)} / {num(d.median(c, s, 'bytes') / 1e6, 1)}"
        row = [label(c), num(d.values(c, "corpus", "bytes")[0] / 2**20, 0), out(fs)]
        for metric, digits in (("wall", 2), ("cpu", 2), ("rss", 0)):
            row.append(d.cell(c, fs, metric, digits))
            if hugo:
                row += [d.cell(c, hg, metric, digits), ratio(d.median(c, hg, metric), d.median(c, fs, metric))]
        if hugo:
            row.insert(3, out(hg))
        export_rows.append(row)
        s = "feedsmith serve"
        if d.values(c, s, "startup"):
            serve_rows.append([label(c)] + [d.cell(c, s, m, dg) for m, dg in (
                ("startup", 2), ("startup_cpu", 2), ("load", 2), ("rss_loaded", 0), ("rss_gzip", 0), ("rss_brotli", 0),
                ("rss_identity", 0), ("rss_end", 0), ("hwm", 0), ("idle_cpu", 1), ("rebuilds_after_start", 0))])
    bare, bare_rows = "feedsmith export, no archives", []
    for c in cases:
        if hugo and d.values(c, bare, "wall"):
            bare_rows.append([label(c), f"{d.cell(c, bare, 'files', 0)} / {num(d.median(c, bare, 'bytes') / 1e6, 1)}"]
                             + [x for m in ("wall", "cpu") for x in (d.cell(c, bare, m, 2), ratio(d.median(c, hg, m), d.median(c, bare, m)))])
    head = ["posts / tags", "corpus MiB", "feedsmith feeds / files / MB"]
    if hugo:
        head += ["Hugo feeds / files / MB"]
    for what in ("wall s", "CPU s", "peak RSS MiB"):
        head += [f"feedsmith {what}"] + ([f"Hugo {what}", "Hugo/fs"] if hugo else [])
    bad = sum(float(r["value"]) for r in d.rows if r["metric"] in ("non_200", "polling"))
    serve_runs = next((r["meta"]["serve_runs"] for r in d.rows if "serve_runs" in r["meta"]), d.meta("runs"))
    return {"runs": d.meta("runs"), "serve_runs": serve_runs, "idle": d.meta("idle_s"), "hugo": d.env.get("hugo", "not run").split(" BuildDate")[0],
            "corpora": ", ".join(label(c) for c in cases),
            "missing": ", ".join(label(c) for c in h.SCALE_CORPORA if c not in cases) or "none",
            "export_table": table(head, export_rows, right_from=1),
            "bare_table": table(["posts / tags", "files / MB", "wall s", "Hugo/fs wall", "CPU s", "Hugo/fs CPU"],
                                bare_rows, right_from=1) if bare_rows else "_Not measured in this run._",
            "serve_table": table(["posts / tags", "exec → first 200 s", "CPU s by then", "load (log) s",
                                  "VmRSS loaded MiB", "+ all gzip", "+ all brotli", "+ all identity", "VmRSS at the end", "VmHWM MiB",
                                  "idle CPU %", "rebuilds after start"], serve_rows) if serve_rows else
            "_Not measured in this run (`--no-serve`)._",
            "problems": "none" if not bad else f"{bad:.0f} non-200 responses or polling fallbacks (see the raw rows)"}


def latency(d):
    """Change-to-visible and rebuild work per corpus and case, before/after when a baseline ran."""
    subjects = [s for s in ("before", "after") if any(r["subject"] == s for r in d.rows)]
    stat = lambda v: f"{num(h.summary(v)[0], 1)} / {num(h.percentile(v, 99), 1)}" if v else "–"
    rows, start_rows = [], []
    for case in d.cases():
        corpus, _, what = case.partition(" ")
        posts, tags = corpus.split("/")
        name = f"{int(posts):,} × {int(tags):,}"
        if not what:
            start_rows.append([name] + [d.cell(case, s, m, dg) for s in subjects for m, dg in (("startup", 1), ("hwm", 0))])
            continue
        row = [name, what.replace("edit", "one edit")]
        for s in subjects:
            seen = d.values(case, s, "latency")
            timeouts = len(d.values(case, s, "timeout"))
            row += [f"{len(seen)} of {len(seen) + timeouts}", stat(seen), stat(d.values(case, s, "work"))]
        rows.append(row)
    head = ["posts × tags", "change"]
    for s in subjects:
        head += [f"{s}: seen", f"{s}: visible ms (median / p99)", f"{s}: rebuild work ms (median / p99)"]
    shead = ["posts × tags"] + [f"{s}: {m}" for s in subjects for m in ("exec → first 200 s", "VmHWM MiB")]
    return {"debounce": d.meta("debounce_ms"), "edits": d.meta("edits"), "burst": d.meta("burst"),
            "table": table(head, rows, right_from=2), "start_table": table(shead, start_rows), "when": d.when()}


def targets(data):
    """The performance targets of issue 6 (and issue 4's latency), from whatever raw data there
    is; a target without data says so."""
    rows = []

    def row(target, ok, measured):
        rows.append([target, measured if ok is not None else "not measured in the committed runs",
                     "" if ok is None else ("met" if ok else "**not met**")])

    sc, sv, la = data.get("scale"), data.get("serve"), data.get("latency")
    has = lambda case, subject, metric: sc is not None and bool(sc.values(case, subject, metric))
    fs, serve_ = "feedsmith export", "feedsmith serve"
    if has("10000/200", "hugo", "wall"):
        r, rc = (h.ratio(sc.median("10000/200", "hugo", m), sc.median("10000/200", fs, m)) for m in ("wall", "cpu"))
        row("export 10,000 posts ≥ 5× faster than Hugo (aim 10×)", r >= 5, f"{num(r)}× wall, {num(rc)}× CPU")
    else:
        row("export 10,000 posts ≥ 5× faster than Hugo (aim 10×)", None, "")
    for corpus, want in (("10000/200", 4), ("100000/200", 8)):
        target = f"export {int(corpus.split('/')[0]):,} posts ≥ {want}× faster than Hugo, same run (issue 13)"
        if has(corpus, "hugo", "wall"):
            r, rc = (h.ratio(sc.median(corpus, "hugo", m), sc.median(corpus, fs, m)) for m in ("wall", "cpu"))
            row(target, r >= want, f"{num(r)}× wall, {num(rc)}× CPU")
        else:
            row(target, None, "")
    wall = sc.median("100000/200", fs, "wall") if has("100000/200", fs, "wall") else None
    row("export 100,000 posts (200 tags) in under 10 s", None if wall is None else wall < 10, f"{num(wall or 0)} s")
    if has("10000/200", fs, "rss") and has("10000/200", serve_, "hwm"):
        e, s = sc.median("10000/200", fs, "rss"), max(sc.values("10000/200", serve_, "hwm"))
        row("peak memory < 250 MiB exporting / serving 10,000 posts", max(e, s) < 250,
            f"{num(e, 0)} MiB export (median); serve VmHWM {num(s, 0)} MiB (highest run; every file fetched in every encoding)")
    else:
        row("peak memory < 250 MiB exporting / serving 10,000 posts", None, "")
    hwm = max(sc.values("100000/2000", serve_, "hwm")) if has("100000/2000", serve_, "hwm") else None
    row("< 1 GiB serving 100,000 posts × 2,000 tags", None if hwm is None else hwm < 1024,
        f"VmHWM {num(hwm or 0, 0)} MiB (highest run)")
    if sv is not None:
        ratios = {c: h.ratio(sv.median(c, "feedsmith", "rps"), sv.median(c, "nginx", "rps"))
                  for c in sv.cases() if c.split(" ")[0] in ("gzip", "304")}
        row("serving ≥ nginx req/s for 200 gzip and 304", min(ratios.values()) >= 1,
            "; ".join(f"{c.split(' ')[0]} `{c.split(' ')[1]}` {num(r)}×" for c, r in ratios.items()))
    else:
        row("serving ≥ nginx req/s for 200 gzip and 304", None, "")
    la_values = lambda case, metric: la.values(case, "after", metric) if la is not None else []
    debounce = int(la.meta("debounce_ms")) if la is not None else 0
    for corpus, limit in (("100000/2000", 20), ("10000/200", 10)):
        work = la_values(f"{corpus} edit", "work")
        posts, tags = (int(x) for x in corpus.split("/"))
        row(f"one edit at {posts:,} × {tags:,}: rebuild work p99 < {limit} ms (issue 13)",
            None if not work else h.percentile(work, 99) < limit,
            f"{num(h.percentile(work, 99), 1) if work else 0} ms p99 ({len(work)} edits)")
    seen = la_values("100000/2000 edit", "latency")
    row("one edit at 100,000 × 2,000: change-to-visible p99 < debounce + 30 ms (issue 13)",
        None if not seen else h.percentile(seen, 99) < debounce + 30,
        f"{num(h.percentile(seen, 99), 1) if seen else 0} ms p99 at {debounce} ms debounce")
    burst = la_values(f"100000/2000 burst add {la.meta('burst') if la is not None else ''}", "latency")
    row("1,000 new posts at 100,000 × 2,000 visible within 2 s (issue 13)",
        None if not burst else max(burst) < 2000, f"{num(max(burst) if burst else 0, 0)} ms (slowest run)")
    return table(["target", "measured (medians unless said)", ""], rows, right_from=3)


SECTIONS = {"ab-export": ab_export, "pages": pages, "stages": stages, "serve": serve,
            "metrics-cost": metrics_cost, "scale": scale, "latency": latency}


def machine(run_dir):
    with open(run_dir / "machine.csv", newline="") as f:
        m = dict(list(csv.reader(f))[1:])
    mem = int(m["mem_total_kb"])
    return table(["", ""], [
        ["CPUs", f"{m['nproc']} (`nproc`); \"{m['cpu_model']}\", {m['cpu_mhz']} MHz, {m['cpu_cache']} cache, "
                 f"{m['cpu_simd'] or 'no AVX2'}; {'a VM' if m['hypervisor'] == 'yes' else 'bare metal'}"],
        ["memory", f"{num(mem, 0)} kB MemTotal ({mem / 2**20:.1f} GiB), swap {num(int(m['swap_total_kb']), 0)} kB"],
        ["OS", f"{m['os']}, Linux {m['kernel']}"],
        ["toolchain", f"{m['rustc']}; Python {m['python']}"],
        ["inotify", f"`max_user_watches` {m['inotify_max_user_watches']}, "
                    f"`max_queued_events` {m['inotify_max_queued_events']}"],
    ], right_from=2)


def write(out):
    newest = {}
    for path in sorted(h.RUNS.glob("*/*.csv")):
        if path.stem in SECTIONS:
            newest[path.stem] = path  # run dirs sort by date
    text = TEMPLATE.read_text()
    pending = []

    def section(m):
        name, body = m[1], m[2]
        if name not in newest:
            pending.append(name)
            return ""
        d = Data(newest[name])
        values = {**SECTIONS[name](d), "when": d.when()}
        return re.sub(r"\{\{" + re.escape(name) + r"\.(\w+)\}\}", lambda p: str(values[p[1]]), body)

    text = BLOCK.sub(section, text)
    text = text.replace("{{targets}}", targets({name: Data(path) for name, path in newest.items()}))
    runs = sorted({p.parent for p in newest.values()})
    text = text.replace("{{machine}}", machine(runs[-1]) if runs else "_No raw data._")
    text = text.replace("{{runs}}", ", ".join(f"`{r.relative_to(h.ROOT)}`" for r in runs) or "none")
    text = text.replace("{{pending}}", ", ".join(f"`{p}`" for p in pending) if pending else "none")
    if left := re.findall(r"\{\{[\w.-]+\}\}", text):
        raise SystemExit(f"unfilled placeholders in {TEMPLATE.name}: {', '.join(sorted(set(left)))}")
    out.write_text(text)
    h.log(f"wrote {out} from {len(newest)} raw files; without data: {', '.join(pending) or 'none'}")
