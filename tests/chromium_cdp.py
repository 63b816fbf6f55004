"""Headless Chromium driven over its DevTools protocol, for tests that need a real browser.

One page: load a URL, collect console errors, uncaught exceptions and failed loads, evaluate
JavaScript, take a screenshot. Chromium picks a free port (``--remote-debugging-port=0``) and
names it in ``DevToolsActivePort``; the protocol listens on 127.0.0.1 only.
"""
from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--no-default-browser-check",
         "--mute-audio", "--autoplay-policy=no-user-gesture-required", "--remote-debugging-port=0")


def chromium_exe() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


class Chromium:
    def __init__(self, exe: str, profile: Path, width: int = 1280, height: int = 900, timeout_s: float = 60.0):
        import websocket  # websocket-client (dev extra)

        self.timeout_s = timeout_s
        self.proc = subprocess.Popen([exe, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
                                      "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            port = self._port(profile / "DevToolsActivePort")
            pages = self._until(lambda: [t for t in json.load(urllib.request.urlopen(
                f"http://127.0.0.1:{port}/json/list", timeout=5)) if t.get("type") == "page"], "a page target")
            self.ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=timeout_s,
                                                  suppress_origin=True)
        except BaseException:
            self.close()
            raise
        self._id = 0
        self.events: list[dict] = []
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                  mobile=False)

    def _until(self, get, what: str):
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited ({self.proc.returncode}): {self.proc.stderr.read()[-500:]!r}")
            try:
                value = get()
            except OSError:
                value = None
            if value:
                return value
            time.sleep(0.1)
        raise TimeoutError(f"chromium: no {what} after {self.timeout_s} s")

    def _port(self, path: Path) -> int:
        text = self._until(lambda: path.read_text().strip() if path.exists() else "", "DevToolsActivePort")
        return int(text.splitlines()[0])

    def call(self, method: str, **params) -> dict:
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_event(self, method: str) -> dict:
        for e in self.events:
            if e.get("method") == method:
                return e
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            msg = json.loads(self.ws.recv())
            self.events.append(msg)
            if msg.get("method") == method:
                return msg
        raise TimeoutError(f"no {method} event after {self.timeout_s} s")

    def load(self, url: str) -> None:
        self.events.clear()
        self.call("Page.navigate", url=url)
        self.wait_event("Page.loadEventFired")

    def evaluate(self, expression: str):
        res = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in res:
            raise RuntimeError(f"{expression}: {res['exceptionDetails'].get('text')}")
        return res["result"].get("value")

    def wait_for(self, expression: str):
        """Poll ``expression`` until it is truthy (processing events meanwhile); its value."""
        def get():
            self.call("Runtime.evaluate", expression="0")  # drains pending events into self.events
            return self.evaluate(expression)
        return self._until(get, f"truthy {expression}")

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions, failed resource loads and error log entries so far."""
        out = []
        for e in self.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in p["args"]))
            elif m == "Runtime.exceptionThrown":
                out.append("exception: " + str(p["exceptionDetails"].get("exception", {}).get("description")
                                                or p["exceptionDetails"].get("text")))
            elif m == "Log.entryAdded" and p["entry"].get("level") == "error":
                out.append(f"log: {p['entry'].get('text')} {p['entry'].get('url', '')}")
            elif m == "Network.loadingFailed" and not p.get("canceled"):
                out.append(f"network: {p.get('errorText')} ({p.get('type')})")
        return out

    def screenshot(self, path: Path) -> Path:
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))
        return path

    def close(self) -> None:
        ws = getattr(self, "ws", None)
        if ws is not None:
            try:
                ws.close()
            except OSError:
                pass
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()
