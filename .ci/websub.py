#!/usr/bin/env python3
"""WebSub end to end with a real hub: flask-websub's hub (Celery in eager mode with the
in-memory broker, so no worker or broker process) and a small subscriber run in this
process on 127.0.0.1; `feedsmith serve` is started through the benchmark harness
(`bench/harness.py`) with `websub.hubs` pointing at the hub and its feeds under a `/feeds/`
`server.public_url`. The subscriber discovers the hub from a tag feed's `Link` header,
subscribes through the hub (which verifies intent with a challenge), then a post of that tag
is edited: feedsmith notifies the hub, the hub re-fetches the feed and delivers it, and the
subscriber must receive exactly the feed now served, with the edit, within 30 s. Loopback
only; everything started is stopped.

Needs: pip install flask-websub==0.4.1 celery==5.7.0
Usage: python3 .ci/websub.py BINARY
"""
import http.server
import logging
import os
import pathlib
import re
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import harness  # noqa: E402

HOST = harness.HOST
TAG = "websub"
DEADLINE_S = 30


def post(title, tag, body):
    return f'---\ntitle: "{title}"\ndate: 2024-05-01\ntags:\n  - {tag}\n---\n{body}\n'


def start_hub(work):
    """flask-websub's hub on 127.0.0.1:0 in a thread: (url, server)."""
    from celery import Celery
    from flask import Flask
    from flask_websub.hub import Hub, SQLite3HubStorage
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app = Flask("hub")
    # Publishing over HTTP is off by default in flask-websub ("nice for testing").
    app.config["PUBLISH_SUPPORTED"] = True
    celery = Celery("hub", broker="memory://")
    celery.conf.update(task_always_eager=True, task_eager_propagates=True)
    hub = Hub(SQLite3HubStorage(os.path.join(work, "hub.sqlite3")), celery,
              PUBLISH_SUPPORTED=True, REQUEST_TIMEOUT=10, MAX_ATTEMPTS=3)
    app.register_blueprint(hub.build_blueprint(url_prefix="/hub"))
    server = make_server(HOST, 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://{HOST}:{server.server_port}/hub", server


class Subscriber(http.server.ThreadingHTTPServer):
    """Answers the hub's intent verification for the topic it asked for, and records every
    content distribution (WebSub §5.3, §7)."""

    def __init__(self, topic):
        self.topic, self.deliveries, self.verified = topic, [], threading.Event()
        self.lock = threading.Lock()
        super().__init__((HOST, 0), SubscriberHandler)

    @property
    def callback(self):
        return f"http://{HOST}:{self.server_port}/callback"


class SubscriberHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
        if query.get("hub.mode") == "subscribe" and query.get("hub.topic") == self.server.topic:
            challenge = query.get("hub.challenge", "").encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(challenge)))
            self.end_headers()
            self.wfile.write(challenge)
            self.server.verified.set()
        else:
            self.send_error(404)

    def do_POST(self):
        length = min(int(self.headers.get("Content-Length", "0")), 1 << 20)
        body = self.rfile.read(length)
        with self.server.lock:
            self.server.deliveries.append((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def discover(url):
    """(hub, self) from a feed's `Link` header (WebSub §4)."""
    with urllib.request.urlopen(url, timeout=10) as response:
        link = response.headers.get("Link", "")
    rels = {rel: href for href, rel in re.findall(r'<([^>]*)>;\s*rel="([^"]*)"', link)}
    if "hub" not in rels or "self" not in rels:
        sys.exit(f"FAIL: {url} has no hub/self Link header: {link!r}")
    return rels["hub"], rels["self"]


def wait_for(what, check, server):
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        if (found := check()) is not None:
            return found
        time.sleep(0.05)
    sys.exit(f"FAIL: {what} within {DEADLINE_S} s\n--- feedsmith log:\n{server.text()[-3000:]}")


def main():
    binary = os.path.abspath(sys.argv[1])
    with tempfile.TemporaryDirectory(prefix="feedsmith-websub.") as work:
        content = pathlib.Path(work, "content")
        (content / "news").mkdir(parents=True)
        (content / "news/a.md").write_text(post("First version", TAG, "Before the edit."))
        (content / "news/b.md").write_text(post("Another post", "other", "Untouched."))
        hub_url, hub_server = start_hub(work)
        port = harness.free_port()
        # Feed URLs must be the ones the hub can fetch: the server's own address (under a
        # path prefix, as behind a proxy); posts stay on the site's URL.
        public = f"http://{HOST}:{port}/feeds/"
        config = pathlib.Path(work, "config.toml")
        config.write_text(
            '[site]\nbase_url = "https://www.example.org/"\n'
            f'[server]\npublic_url = "{public}"\n'
            f'[content]\ndir = "{content}"\n'
            "[watch]\ndebounce_ms = 50\n"
            f'[websub]\nhubs = ["{hub_url}"]\ntimeout_s = 10\nretries = 2\n'
        )
        cmd = [binary, "--config", config, "serve", "--bind", f"{HOST}:{port}"]
        env = {**os.environ, "RUST_LOG": "info,feedsmith::websub=debug"}
        subscriber = None
        try:
            with harness.Server("feedsmith", cmd, work, port, env=env) as server:
                server.wait_up("/healthz", 200, timeout=60)
                topic_url = f"{public}tags/{TAG}/atom.xml"
                found_hub, self_url = discover(topic_url)
                assert found_hub == hub_url and self_url == topic_url, (found_hub, self_url)
                print(f"discovered hub {found_hub} for {self_url}")

                subscriber = Subscriber(self_url)
                threading.Thread(target=subscriber.serve_forever, daemon=True).start()
                form = urllib.parse.urlencode({"hub.mode": "subscribe", "hub.topic": self_url,
                                               "hub.callback": subscriber.callback}).encode()
                with urllib.request.urlopen(found_hub, form, timeout=30) as response:
                    if response.status != 202:
                        sys.exit(f"FAIL: hub answered {response.status} to subscribe")
                if not subscriber.verified.wait(DEADLINE_S):
                    sys.exit("FAIL: the hub did not verify the subscription")
                print(f"subscribed {subscriber.callback} (intent verified by the hub)")
                if subscriber.deliveries:
                    sys.exit(f"FAIL: content delivered before any change: {subscriber.deliveries}")

                (content / "news/a.md").write_text(post("Edited through the hub", TAG, "After the edit."))
                headers, body = wait_for(
                    "the subscriber received the edited feed through the hub",
                    lambda: next(((h, b) for h, b in list(subscriber.deliveries)
                                  if b"Edited through the hub" in b), None),
                    server)
                with urllib.request.urlopen(self_url, timeout=10) as response:
                    served = response.read()
                if body != served:
                    sys.exit("FAIL: the delivered feed is not the feed served now")
                kinds = {k.lower(): v for k, v in headers.items()}
                print(f"delivered through the hub: {len(body)} bytes of "
                      f"{kinds.get('content-type', '?')}, Link: {kinds.get('link', '?')}")
                log = server.text()
                if "websub" not in log or "refused" in log or "giving up" in log:
                    print(log[-3000:])
                    sys.exit("FAIL: the feedsmith log shows a failed notification")
                print("PASS: a change reached the subscriber through flask-websub's hub")
        finally:
            if subscriber is not None:
                subscriber.shutdown()
                subscriber.server_close()
            hub_server.shutdown()


if __name__ == "__main__":
    main()
