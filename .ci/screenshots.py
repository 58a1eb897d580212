#!/usr/bin/env python3
"""Regenerates the README's screenshots of the pages for people: the directory `/` and the
preview page of the tag openEuler, on the sample content, at desktop (1280 px) and phone
(390 px) widths, in the light and the dark scheme, into docs/pages-*.png.

The server is started through the benchmark harness (bench/harness.py); the browser is
Debian's headless `chromium` driven over the DevTools protocol (.ci/cdp.py). Banners live on
the site (`site.base_url`), which is never fetched: they show as a placeholder picture.
Chinese text needs a CJK font (Debian: fonts-noto-cjk).

Usage: python3 .ci/screenshots.py BINARY
Needs: apt-get install chromium fonts-noto-cjk; pip install websocket-client.
"""
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
sys.path.insert(0, os.path.join(ROOT, ".ci"))
import cdp  # noqa: E402
import harness  # noqa: E402

PAGES = [("directory", "/"), ("tag", "/tags/openeuler/")]
DEVICES = [("desktop", 1280, 860), ("phone", 390, 844)]


def main():
    binary = sys.argv[1]
    fonts = subprocess.run(["fc-list", ":lang=zh"], capture_output=True, text=True).stdout
    if not fonts.strip():
        sys.exit("no CJK font: apt-get install fonts-noto-cjk")
    out = os.path.join(ROOT, "docs")
    os.makedirs(out, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="feedsmith-screenshots.") as work:
        config = harness.write_config(os.path.join(work, "config.toml"), os.path.join(ROOT, "content"))
        with harness.feedsmith_serve(binary, config, work) as server:
            server.wait_up("/healthz", 200, timeout=60)
            origin = f"http://{harness.HOST}:{server.port}/"
            with cdp.Chromium(allowed_origins=[origin]) as browser:
                for name, path in PAGES:
                    for device, width, height in DEVICES:
                        for scheme in ("light", "dark"):
                            browser.viewport(width, height, dark=scheme == "dark")
                            browser.load(origin + path.lstrip("/"))
                            browser.pump(0.5)  # banners in view
                            file = os.path.join(out, f"pages-{name}-{device}-{scheme}.png")
                            browser.screenshot(file)
                            print(os.path.relpath(file, ROOT))


if __name__ == "__main__":
    main()
