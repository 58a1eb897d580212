#!/usr/bin/env python3
"""The pages for people in a real browser: Debian's headless `chromium`, driven over the
DevTools protocol (.ci/cdp.py), against `feedsmith serve` started through the benchmark
harness (bench/harness.py: 127.0.0.1:0, wait until up, always stopped).

Two sites: the sample content (one language, Chinese) and a generated one (English and
Chinese, 30 and 24 tags, hostile and very long names, banners). On each, the directory `/`
and a tag's preview page must:
  - load with no console error, uncaught exception or browser log error;
  - link only to URLs that answer 200 from the server under test (every `<a>` and `<link>`,
    subscribe links included; post links and banners live on the site, `site.base_url`:
    they must be absolute and are answered by the browser client, never fetched);
  - show the tag's newest post (the first item of the tag's JSON Feed, from the server);
  - not overflow horizontally at 390 px (document.documentElement.scrollWidth <= 390);
  - have no serious or critical axe-core violation, in the light and the dark scheme.
On the generated directory the tag filter works with JavaScript (typing) and without it
(first-letter links), and the copy button copies the absolute feed URL.

Usage: python3 .ci/browser.py BINARY AXE_JS   (AXE_JS: axe-core's axe.min.js, from npm)
Needs: apt-get install chromium; pip install websocket-client; npm install axe-core.
"""
import json
import os
import sys
import tempfile
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
sys.path.insert(0, os.path.join(ROOT, ".ci"))
import cdp  # noqa: E402
import harness  # noqa: E402

PHONE = 390
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        failures.append(what)


# ---- a generated multilingual site ---------------------------------------------------------
LONG = "Pneumonoultramicroscopicsilicovolcanoconiosis" * 3  # no break opportunity
EN_TAGS = ["Linux", "Rust", "C++", "<script>alert(1)</script>", "AI & ML", "\"quoted\" 'tag'", LONG,
           "kernel", "cloud", "edge", "security", "storage", "network", "release", "docs", "infra",
           "build", "gpu", "desktop", "tracing", "2024", "42", "mm", "fs", "ops", "ci", "sig-kernel",
           "sig-infra", "benchmark", "meetup"]
ZH_TAGS = ["内核", "云原生", "安全", "社区", "开源", "发行版", "容器", "虚拟化", "数据库", "编译器",
           "性能优化", "机密计算", "大模型", "高校", "实习", "迁移", "生态", "金融", "电力", "运营商",
           "可信计算", "热补丁", "文档", "测试"]


def generate(root):
    """Writes the posts: every tag on at least one post, the first tags on many."""
    def post(rel, title, day, tags, banner=None, summary=None):
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        lines = ["---", f"title: {json.dumps(title, ensure_ascii=False)}", f"date: 2024-10-{day:02d}",
                 "tags:"] + [f"  - {json.dumps(t, ensure_ascii=False)}" for t in tags]
        if banner:
            lines.append(f"banner: {banner}")
        if summary:
            lines.append(f"summary: {json.dumps(summary, ensure_ascii=False)}")
        lines += ["---", "", "Body text.", ""]
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(lines))

    for i in range(30):
        tags = [EN_TAGS[0], EN_TAGS[i], EN_TAGS[(i * 7) % len(EN_TAGS)]]
        title = f"Post {i}: <b>bold</b> & \"quotes\"" if i % 5 else f"Post {i} {LONG}"
        post(f"en/blog/p{i}.md", title, 1 + i % 28, list(dict.fromkeys(tags)),
             banner=f"img/en-{i}.png" if i % 2 else None,
             summary=f"Summary {i} with https://example.org/a/very/long/url/{LONG} inside.")
    for i in range(24):
        tags = [ZH_TAGS[0], ZH_TAGS[i], ZH_TAGS[(i * 5) % len(ZH_TAGS)]]
        post(f"zh/news/p{i}.md", f"第{i}篇：openEuler 社区新闻标题很长很长很长很长很长很长很长", 1 + i % 28,
             list(dict.fromkeys(tags)), banner="img/zh.png", summary="这是一段摘要。" * 10)


# ---- checks --------------------------------------------------------------------------------
LINKS = """[...document.querySelectorAll('a[href], link[href]')]
  .filter(e => e.getAttribute('rel') !== 'icon').map(e => e.href)"""


def check_links(browser, port, page, origin, site):
    links = sorted(set(browser.evaluate(LINKS)))
    ours = [u for u in links if u.startswith(origin)]
    others = [u for u in links if not u.startswith(origin)]
    check(all(u.startswith(site) for u in others), f"{page}: links off the server are posts on the site "
          f"({[u for u in others if not u.startswith(site)][:3]})")
    bad = []
    for url in ours:
        parts = urllib.parse.urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        status = harness.get(port, path)[0]
        if status != 200:
            bad.append(f"{status} {url}")
    check(not bad and len(ours) > 3, f"{page}: {len(ours)} links and subscribe URLs answer 200 {bad[:5]}")


def check_axe(browser, axe, page, scheme):
    browser.evaluate(axe + "; true")
    violations = browser.evaluate("""axe.run(document, {resultTypes: ['violations']}).then(r =>
      r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                              nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))})))""")
    for v in violations:
        print(f"     axe {v['impact']}: {v['id']}: {v['help']} {v['nodes']}")
    severe = [v["id"] for v in violations if v["impact"] in ("serious", "critical")]
    check(not severe, f"{page} ({scheme}): no serious or critical axe-core violation {severe}")


def check_page(browser, port, axe, path, site, newest=None):
    origin = f"http://{harness.HOST}:{port}/"
    url = origin + path.lstrip("/")
    browser.viewport(1280, 900)
    browser.load(url)
    check(not browser.problems, f"{path}: loads with no console error {browser.problems[:3]}")
    check_links(browser, port, path, origin, site)
    if newest is not None:
        titles = browser.evaluate("[...document.querySelectorAll('article h3 a')].map(a => a.textContent)")
        check(titles[:1] == [newest], f"{path}: shows the tag's newest post first ({newest!r})")
    check_axe(browser, axe, path, "light")
    browser.viewport(1280, 900, dark=True)
    browser.load(url)
    check_axe(browser, axe, path, "dark")
    browser.viewport(PHONE, 844)
    browser.load(url)
    width = browser.evaluate("document.documentElement.scrollWidth")
    check(width <= PHONE, f"{path}: nothing overflows at {PHONE} px (scrollWidth {width})")
    check(not browser.problems, f"{path}: no console error at {PHONE} px {browser.problems[:3]}")


def newest_of(port, tag_dir):
    status, _, body = harness.get(port, f"/{tag_dir}feed.json")
    assert status == 200, f"/{tag_dir}feed.json: {status}"
    return json.loads(body)["items"][0]["title"]


def check_filter(browser, port):
    """The generated directory's English tag list: filter box and first-letter links."""
    url = f"http://{harness.HOST}:{port}/"
    visible = """[...document.querySelectorAll('#en-tags ol > li')]
      .filter(li => getComputedStyle(li).display !== 'none').map(li => [li.className, li.querySelector('.n').textContent])"""
    browser.viewport(1280, 900)
    browser.load(url)
    rows = browser.evaluate(visible)
    check(len(rows) == len(EN_TAGS), f"/: all {len(EN_TAGS)} English tags listed ({len(rows)})")
    browser.evaluate("""(() => { const q = document.querySelector('#en-tags input');
      q.value = 'SIG'; q.dispatchEvent(new Event('input')); })()""")
    rows = browser.evaluate(visible)
    check(sorted(n for _, n in rows) == ["sig-infra", "sig-kernel"], f"/: typing 'SIG' filters to {rows}")
    status = browser.evaluate("document.querySelector('#en-tags output').textContent")
    check(status.startswith("2"), f"/: the filter says how many match ({status!r})")
    # Without JavaScript: no filter box, and a first-letter link shows that letter only.
    browser.viewport(1280, 900, script=False)
    browser.load(url)
    hidden = browser.evaluate("getComputedStyle(document.querySelector('#en-tags .flt')).display")
    check(hidden == "none", "/ without JavaScript: the filter box (which needs it) is hidden")
    letter = browser.evaluate("""(() => { const a = [...document.querySelectorAll('#en-tags .az a')]
      .find(a => a.textContent === 'S'); return a.getAttribute('href'); })()""")
    browser.load(url + letter, same_document=True)
    rows = browser.evaluate(visible)
    names = [n for _, n in rows]
    check(names and all(n.upper().startswith("S") for n in names) and len(names) < len(EN_TAGS),
          f"/ without JavaScript: {letter} shows the tags under S only ({names})")
    browser.viewport(1280, 900)


def check_copy(browser, port):
    origin = f"http://{harness.HOST}:{port}"
    browser.call("Browser.grantPermissions", origin=origin,
                 permissions=["clipboardReadWrite", "clipboardSanitizedWrite"])
    browser.call("Emulation.setFocusEmulationEnabled", enabled=True)  # the clipboard wants focus
    browser.load(origin + "/en/tags/linux/")
    browser.evaluate("document.querySelector('button.cp').click(), true")
    browser.pump(0.3)
    copied = browser.evaluate("navigator.clipboard.readText()")
    expected = origin + "/en/tags/linux/rss.xml"
    check(copied == expected, f"/en/tags/linux/: the copy button copies the absolute feed URL ({copied!r})")


def main():
    binary, axe_path = sys.argv[1], sys.argv[2]
    axe = open(axe_path, encoding="utf-8").read()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="feedsmith-browser.") as work:
        generated = os.path.join(work, "generated")
        generate(generated)
        sites = [("sample", os.path.join(ROOT, "content"), "tags/openeuler/"),
                 ("generated", generated, "en/tags/linux/")]
        for name, content, tag_dir in sites:
            print(f"--- {name} site ({content})", flush=True)
            config = harness.write_config(os.path.join(work, f"{name}.toml"), content)
            with harness.feedsmith_serve(binary, config, work) as server:
                server.wait_up("/healthz", 200, timeout=60)
                origin = f"http://{harness.HOST}:{server.port}/"
                with cdp.Chromium(allowed_origins=[origin]) as browser:
                    site = "https://www.openeuler.org/"
                    check_page(browser, server.port, axe, "/", site)
                    check_page(browser, server.port, axe, "/" + tag_dir, site, newest_of(server.port, tag_dir))
                    if name == "generated":
                        check_page(browser, server.port, axe, "/zh/tags/内核/", site,
                                   newest_of(server.port, "zh/tags/%E5%86%85%E6%A0%B8/"))
                        check_filter(browser, server.port)
                        check_copy(browser, server.port)
                    check(all(u.startswith(site) for u in browser.external),
                          f"{name}: the only requests off the server were for the site's images "
                          f"({len(browser.external)}, answered by the client)")
    print(f"{len(failures)} failed in {time.monotonic() - started:.0f} s")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
