"""The pieces every benchmark of bench/suite.py shares, each once: raw-row recording, tool
installation, /usr/bin/time runs, servers that are stopped when the block ends, wait-until-up,
a /proc sampler, HTTP on 127.0.0.1, statistics, corpora (generated once and cached) and the
feedsmith config."""
import collections
import csv
import datetime as dt
import hashlib
import http.client
import importlib.util
import os
import pathlib
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RUNS = BENCH / "runs"
GEN = ROOT.parent / "shared" / "bench" / "gen-corpus.py"
HOST = "127.0.0.1"
FIELDS = ["benchmark", "case", "subject", "run", "metric", "value", "unit", "meta"]
# Debian package of each tool a benchmark may need.
PACKAGES = {"/usr/bin/time": "time", "wrk": "wrk", "nginx": "nginx", "hugo": "hugo"}
SBIN = os.pathsep + "/usr/sbin:/sbin"
# Corpora (posts/tags) of `suite.py scale` by default; the report names those a run left out.
SCALE_CORPORA = ["1000/200", "10000/200", "100000/200", "100000/2000"]


def log(msg):
    print(f"[suite {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def which(tool):
    return shutil.which(tool, path=os.environ.get("PATH", "") + SBIN)


def need(*tools):
    """Installs the Debian packages of the tools that are missing."""
    missing = sorted({PACKAGES[t] for t in tools if not which(t)})
    if not missing:
        return
    log(f"installing Debian packages {' '.join(missing)}")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    install = sudo + ["apt-get", "install", "-y", "-qq", *missing]
    quiet = {"stdout": subprocess.DEVNULL, "env": {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}}
    if subprocess.run(install, **quiet).returncode:
        subprocess.run(sudo + ["apt-get", "update", "-qq"], check=True, **quiet)
        subprocess.run(install, check=True, **quiet)


def sh(*cmd, cwd=ROOT):
    """First line of a command's output (stdout, else stderr), or '' when it cannot run."""
    try:
        p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=60)
    except OSError:
        return ""
    return ((p.stdout.strip() or p.stderr.strip()).splitlines() or [""])[0]


# ---- statistics ----------------------------------------------------------------------------
def summary(values):
    """(median, min, max)."""
    v = sorted(values)
    return statistics.median(v), v[0], v[-1]


def ratio(a, b):
    return a / b if b else float("nan")


def percentile(values, p):
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))]


# ---- raw rows ------------------------------------------------------------------------------
def machine():
    """Short machine name for the run directory: CPU count and model, e.g. 2core-amd-epyc."""
    model = cpuinfo().get("model name", "cpu")
    slug = re.sub(r"[^a-z0-9]+", "-", re.sub(r"\(.*?\)|processor|cpu|\d+-core", "", model.lower())).strip("-")
    return f"{os.cpu_count()}core-{'-'.join(slug.split('-')[:3])}"


def cpuinfo():
    out = {}
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
        key, _, value = line.partition(":")
        out.setdefault(key.strip(), value.strip())
    return out


def machine_rows():
    info = cpuinfo()
    mem = dict(line.split(":", 1) for line in pathlib.Path("/proc/meminfo").read_text().splitlines())
    os_name = re.search(r'PRETTY_NAME="(.*)"', pathlib.Path("/etc/os-release").read_text())
    flags = info.get("flags", "").split()
    inotify = pathlib.Path("/proc/sys/fs/inotify")
    return {
        "nproc": os.cpu_count(),
        "cpu_model": info.get("model name", ""),
        "cpu_mhz": info.get("cpu MHz", ""),
        "cpu_cache": info.get("cache size", ""),
        "cpu_simd": " ".join(f for f in ("avx2", "avx512f") if f in flags),
        "hypervisor": "yes" if "hypervisor" in flags else "no",
        "mem_total_kb": mem["MemTotal"].split()[0],
        "swap_total_kb": mem["SwapTotal"].split()[0],
        "os": os_name[1] if os_name else "",
        "kernel": os.uname().release,
        "rustc": sh("rustc", "--version"),
        "python": sys.version.split()[0],
        "inotify_max_user_watches": (inotify / "max_user_watches").read_text().strip(),
        "inotify_max_queued_events": (inotify / "max_queued_events").read_text().strip(),
    }


def loadavg():
    return " ".join(pathlib.Path("/proc/loadavg").read_text().split()[:3])


def utc_now():
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Recorder:
    """Raw rows of one benchmark run, written to bench/runs/<date>-<machine>/<benchmark>.csv
    (one row per measurement; `env` rows describe the run). `meta` is added to every row."""

    def __init__(self, benchmark, **meta):
        self.benchmark, self.meta, self.rows = benchmark, meta, []
        self.dir = RUNS / f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d}-{machine()}"
        dirty = sh("git", "status", "--porcelain", "--", "src", "benches", "Cargo.toml", "Cargo.lock")
        # The last commit that changed what is built (bench/ changes nothing measured).
        source = sh("git", "log", "-1", "--format=%h", "--", "src", "benches", "Cargo.toml", "Cargo.lock")
        self.env("commit", source + (" (modified)" if dirty else ""))
        self.env("started", utc_now())
        self.env("loadavg_start", loadavg())

    def add(self, case, subject, run, metric, value, unit="", **meta):
        meta = " ".join(f"{k}={v}" for k, v in {**self.meta, **meta}.items())
        self.rows.append([self.benchmark, case, subject, run, metric, value, unit, meta])

    def env(self, key, value):
        self.rows.append([self.benchmark, "env", "", "", key, value, "", ""])

    def save(self):
        self.env("ended", utc_now())
        self.env("loadavg_end", loadavg())
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / "machine.csv", "w", newline="") as f:
            csv.writer(f).writerows([("key", "value"), *machine_rows().items()])
        path = self.dir / f"{self.benchmark}.csv"
        with open(path, "w", newline="") as f:
            csv.writer(f).writerows([FIELDS, *self.rows])
        log(f"wrote {len(self.rows)} rows to {path.relative_to(ROOT)}")


def read_rows(path):
    """Rows of a raw CSV as dicts, with `meta` parsed into a dict."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        row["meta"] = dict(kv.split("=", 1) for kv in row["meta"].split())
    return rows


# ---- processes -----------------------------------------------------------------------------
def timed(cmd, cwd=None, env=None, timeout=1800, ok=(0,)):
    """Runs cmd under /usr/bin/time: wall s, CPU s (user + system), peak RSS MiB, output."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as t:
        p = subprocess.run(["/usr/bin/time", "-f", "%e %U %S %M", "-o", t.name, *map(str, cmd)],
                           cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
        wall, user, system, kib = t.read().split()[-4:]
    if p.returncode not in ok:
        raise RuntimeError(f"{cmd[0]} exited {p.returncode}: {p.stderr[-2000:]}")
    return {"wall": float(wall), "cpu": float(user) + float(system), "rss": int(kib) / 1024,
            "stdout": p.stdout, "rc": p.returncode}


class Proc:
    """/proc sampler of one process: VmRSS and VmHWM in MiB, CPU seconds (user + system)."""

    def __init__(self, pid):
        self.pid = pid

    def _status(self, key):
        for line in pathlib.Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
        raise KeyError(key)

    def rss(self):
        return self._status("VmRSS")

    def hwm(self):
        return self._status("VmHWM")

    def cpu(self):
        fields = pathlib.Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port():
    """A free port below the kernel's ephemeral range (32768 and up): a port from that range
    can be taken meanwhile by an outgoing connection's source port (or even connect to
    itself), and a server that expects it then fails to listen while a poll "succeeds"."""
    for port in random.Random().sample(range(20000, 32000), 200):
        with socket.socket() as s:
            try:
                s.bind((HOST, port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 20000-31999")


class Server:
    """A server process started for a benchmark (output to WORK/NAME.log), stopped with
    SIGTERM (SIGKILL after 15 s) when the `with` block ends, however it ends. With port=None
    the port is read from a `listening on http://HOST:PORT/` line of its output (a server
    bound to port 0: no race with other processes for a port chosen in advance)."""

    def __init__(self, name, cmd, work, port, env=None, cwd=None):
        self.name, self.port, self.log = name, port, pathlib.Path(work) / f"{name}.log"
        self.started = time.perf_counter()
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(list(map(str, cmd)), stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env, cwd=cwd)
        self.sample = Proc(self.proc.pid)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def text(self):
        return re.sub(r"\x1b\[[0-9;]*m", "", self.log.read_text(errors="replace"))

    def wait_up(self, path="/", status=None, timeout=600, interval=0.02):
        """Polls PATH until it answers (with STATUS, if given); seconds since the start."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.proc.returncode}:\n{self.text()[-3000:]}")
            if self.port is None and (m := re.search(r"listening on http://[^/]*:(\d+)/", self.text())):
                self.port = int(m[1])
            try:
                if self.port and (status is None or get(self.port, path)[0] == status):
                    return time.perf_counter() - self.started
            except OSError:
                pass
            time.sleep(interval)
        raise RuntimeError(f"{self.name} not up on port {self.port} within {timeout} s")


def feedsmith_serve(binary, config, work):
    return Server("feedsmith", [binary, "--config", config, "serve", "--bind", f"{HOST}:0"],
                  work, None, env={**os.environ, "RUST_LOG": "info"})


# ---- HTTP on 127.0.0.1 ---------------------------------------------------------------------
def get(port, path, headers=None, conn=None):
    """(status, headers with lower-case names, body) of one GET, on CONN if given."""
    c = conn or http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        body = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body
    finally:
        if conn is None:
            c.close()


# ---- corpora and config --------------------------------------------------------------------
def md_files(root):
    for d, _, files in os.walk(root):
        yield from (os.path.join(d, f) for f in files if f.endswith(".md"))


def warm(root):
    """Reads a corpus into the page cache (this VM reclaims idle page cache quickly)."""
    for p in md_files(root):
        with open(p, "rb") as f:
            f.read()


def max_tags():
    """How many distinct tags gen-corpus.py can make (asked for more, it never finishes)."""
    spec = importlib.util.spec_from_file_location("gen", GEN)
    g = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(g)
    synthetic = len(g.CJK_MORPH_A) * len(g.CJK_MORPH_B) + len(g.ASCII_WORDS) * (1 + len(g.ASCII_WORDS))
    return len(set(g.BASE_TAGS)) + synthetic - len(g.VARIANTS)


def corpus(posts, tags):
    """gen-corpus.py --seed 1 corpus, cached in the temp dir under the name benches/stages.rs
    uses; past gen-corpus's tag limit, widened by widen_tags."""
    d = pathlib.Path(tempfile.gettempdir()) / f"feedsmith-bench-corpus-{posts}-{tags}-1"
    if (d / ".complete").is_file():
        return d
    shutil.rmtree(d, ignore_errors=True)
    limit = max_tags()
    if tags > limit:
        widen_tags(corpus(posts, limit), d, tags)
    else:
        log(f"generating {posts} posts, {tags} tags into {d}")
        subprocess.run([sys.executable, GEN, "--posts", str(posts), "--tags", str(tags), "--seed", "1",
                        "--out", d], check=True, stderr=subprocess.DEVNULL)
    subprocess.run(["sync"], check=True)
    (d / ".complete").touch()
    return d


TAG_LINE = re.compile(r"^  - (.*)$")


def front_tags(lines):
    """Indexes of the tag list items in a post's front matter."""
    out, in_tags = [], False
    for i, line in enumerate(lines[1:], 1):
        if line.strip() == "---":
            break
        if line.startswith("tags:"):
            in_tags = True
            continue
        in_tags = in_tags and bool(TAG_LINE.match(line))
        if in_tags:
            out.append(i)
    return out


def widen_tags(src, out, tags):
    """Copies SRC to OUT with exactly TAGS distinct tags: the 20 most used stay, every other
    tag is split into 2 or 3 spellings (`tag`, `tag-2`, `tag-3`) picked per post from a hash
    of its path, so the long tail grows while the popularity shape stays. Deterministic."""
    log(f"widening {src} to {tags} tags into {out}")
    texts = {os.path.relpath(p, src): open(p, encoding="utf-8").read().split("\n") for p in md_files(src)}
    counts = collections.Counter(TAG_LINE.match(lines[i])[1] for lines in texts.values() for i in front_tags(lines))
    ranked = [t for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    keep, tail = ranked[:20], ranked[20:]
    need_ = tags - len(keep)
    if not tail or need_ < len(tail) or need_ > 3 * len(tail):
        sys.exit(f"cannot make {tags} tags from {len(ranked)} (20 kept, tail x2..x3)")
    threes = need_ - 2 * len(tail)  # the most used tail tags get 3 spellings, the rest 2
    ways = {t: (3 if i < threes else 2) for i, t in enumerate(tail)}
    for rel, lines in sorted(texts.items()):
        h = int.from_bytes(hashlib.sha1(rel.encode()).digest()[:4], "big")
        for i in front_tags(lines):
            tag = TAG_LINE.match(lines[i])[1]
            k = h % ways.get(tag, 1)
            lines[i] = f"  - {tag}-{k + 1}" if k else lines[i]
        dst = pathlib.Path(out, rel)
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text("\n".join(lines), encoding="utf-8")


def write_config(path, content_dir, sample=True, **overrides):
    """The sample config.toml with [content] dir replaced and SECTION__KEY=value overrides of
    keys it lists; sample=False writes only [content] dir (every other key at its default)."""
    if not sample:
        pathlib.Path(path).write_text(f'[content]\ndir = "{content_dir}"\n')
        return path
    overrides = {**{k.replace("__", "."): v for k, v in overrides.items()}, "content.dir": f'"{content_dir}"'}
    section, out = "", []
    for line in (ROOT / "config.toml").read_text().splitlines():
        if m := re.match(r"\[(\w+)\]", line):
            section = m[1]
        if m := re.match(r"(\w+) *=", line):
            key = f"{section}.{m[1]}"
            line = f"{m[1]} = {overrides.pop(key)}" if key in overrides else line
        out.append(line)
    if overrides:
        raise KeyError(f"not in config.toml: {', '.join(overrides)}")
    pathlib.Path(path).write_text("\n".join(out) + "\n")
    return path


def fill(template, dest, **values):
    """Copies bench/templates/TEMPLATE to DEST with every @NAME@ replaced by values[NAME]."""
    text = (BENCH / "templates" / template).read_text()
    dest = pathlib.Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(re.sub(r"@(\w+)@", lambda m: str(values[m[1]]), text))
    return dest


def file_id(path):
    """sha256 prefix of a binary, to tell which build was measured."""
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()[:12]
