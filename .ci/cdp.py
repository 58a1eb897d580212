"""A small Chrome DevTools Protocol client for Debian's headless `chromium`, shared by
.ci/browser.py (the browser test) and .ci/screenshots.py (the README's screenshots).

`Chromium()` starts the browser on a private profile (remote debugging on a port the browser
picks, read from its DevToolsActivePort file), connects to its page over a WebSocket (pip
`websocket-client`) and stops it when the `with` block ends, however it ends. Requests to any
origin but the ones allowed are answered by the client itself, never sent: images get a
placeholder picture, everything else an empty 204 (post banners live on the site, which a
test must not reach). Console messages, uncaught exceptions and browser log entries of level
error are collected per page load.
"""
import base64
import json
import os
import pathlib
import shutil
import subprocess
import tempfile
import time
import urllib.request

import websocket  # pip: websocket-client

# A banner stand-in: a soft gradient, no text.
PLACEHOLDER = base64.b64encode(
    b'<svg xmlns="http://www.w3.org/2000/svg" width="640" height="360" viewBox="0 0 640 360">'
    b'<defs><linearGradient id="g" x2="1" y2="1"><stop offset="0" stop-color="#7aa7e0"/>'
    b'<stop offset="1" stop-color="#2f5f9e"/></linearGradient></defs>'
    b'<rect width="640" height="360" fill="url(#g)"/>'
    b'<circle cx="500" cy="110" r="60" fill="#fff" fill-opacity=".25"/></svg>'
).decode()


def binary():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    raise SystemExit("no chromium: apt-get install -y chromium")


class Chromium:
    def __init__(self, allowed_origins=(), timeout=30):
        self.allowed = tuple(allowed_origins)
        self.timeout = timeout
        self.next_id = 0
        self.events = []
        self.problems = []  # console errors, exceptions, log errors of the current load
        self.external = []  # URLs answered without reaching the network

    # ---- lifecycle -----------------------------------------------------------------------
    def __enter__(self):
        self.profile = tempfile.mkdtemp(prefix="feedsmith-chromium.")
        self.log = open(os.path.join(self.profile, "stderr.log"), "w")
        self.proc = subprocess.Popen(
            [binary(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--disable-extensions",
             "--disable-default-apps", "--mute-audio", "--force-color-profile=srgb",
             "--remote-allow-origins=*", "--remote-debugging-address=127.0.0.1",
             "--remote-debugging-port=0", f"--user-data-dir={self.profile}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.log)
        try:
            port = self._port()
            deadline = time.monotonic() + self.timeout
            while True:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
                    pages = [t for t in json.load(r) if t["type"] == "page"]
                if pages or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            self.ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=self.timeout,
                                                  suppress_origin=True)
            for domain in ("Page", "Runtime", "Log"):
                self.call(f"{domain}.enable")
            self.call("Fetch.enable", patterns=[{"urlPattern": "*"}])
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        if getattr(self, "ws", None):
            self.ws.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    def _port(self):
        active = pathlib.Path(self.profile, "DevToolsActivePort")
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited {self.proc.returncode}: "
                                   f"{pathlib.Path(self.log.name).read_text()[-2000:]}")
            if active.is_file() and (lines := active.read_text().split()):
                return int(lines[0])
            time.sleep(0.05)
        raise RuntimeError(f"chromium did not open its debugging port within {self.timeout} s")

    # ---- protocol ------------------------------------------------------------------------
    def _send(self, method, params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        return self.next_id

    def _receive(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no answer from chromium in time")
        self.ws.settimeout(left)
        try:
            message = json.loads(self.ws.recv())
        except websocket.WebSocketTimeoutException as e:
            raise TimeoutError("no answer from chromium in time") from e
        if "method" in message:
            self._event(message)
        return message

    def _event(self, message):
        method, params = message["method"], message.get("params", {})
        if method == "Fetch.requestPaused":
            url = params["request"]["url"]
            if url.startswith(self.allowed):
                self._send("Fetch.continueRequest", {"requestId": params["requestId"]})
            else:
                self.external.append(url)
                image = params.get("resourceType") == "Image"
                self._send("Fetch.fulfillRequest", {
                    "requestId": params["requestId"], "responseCode": 200 if image else 204,
                    "responseHeaders": [{"name": "Content-Type", "value": "image/svg+xml"}] if image else [],
                    "body": PLACEHOLDER if image else ""})
            return
        if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
            self.problems.append(f"console.{params['type']}: {text}")
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.problems.append(f"exception: {details.get('exception', {}).get('description', details['text'])}")
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            entry = params["entry"]
            self.problems.append(f"log ({entry['source']}): {entry['text']} {entry.get('url', '')}".strip())
        self.events.append(message)

    def call(self, method, **params):
        """Sends a command and returns its result (events meanwhile are handled)."""
        sent = self._send(method, params)
        deadline = time.monotonic() + self.timeout
        while True:
            message = self._receive(deadline)
            if message.get("id") == sent:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def wait_for(self, event):
        deadline = time.monotonic() + self.timeout
        while True:
            for i, message in enumerate(self.events):
                if message["method"] == event:
                    return self.events.pop(i)
            self._receive(deadline)

    # ---- pages ---------------------------------------------------------------------------
    def viewport(self, width, height, dark=False, script=True):
        """Window size (a phone below 600 px), light or dark scheme, JavaScript on or off."""
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=width < 600)
        self.call("Emulation.setEmulatedMedia", features=[
            {"name": "prefers-color-scheme", "value": "dark" if dark else "light"}])
        self.call("Emulation.setScriptExecutionDisabled", value=not script)

    def load(self, url, same_document=False):
        """Loads URL and waits for its load event (SAME_DOCUMENT: a fragment of the page
        shown, no load event); console problems are counted from here."""
        self.problems, self.events = [], []
        self.call("Page.navigate", url=url)
        self.wait_for("Page.navigatedWithinDocument" if same_document else "Page.loadEventFired")
        self.pump(0.2)  # late log entries, scripts that run on load

    def pump(self, seconds):
        """Handles whatever arrives for SECONDS."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                self._receive(deadline)
            except TimeoutError:
                return

    def evaluate(self, expression):
        """The JSON value of a JavaScript expression (promises awaited)."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise RuntimeError(f"{expression[:80]}: {details.get('exception', {}).get('description', details['text'])}")
        return result["result"].get("value")

    def screenshot(self, path):
        data = self.call("Page.captureScreenshot", format="png")["data"]
        pathlib.Path(path).write_bytes(base64.b64decode(data))
