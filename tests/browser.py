"""A headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``):
no driver package, no port. Used by the report's browser test."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from typing import Any

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--remote-debugging-pipe"]


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    """``with Browser() as b: b.open(url)`` -> page facts; events are kept in ``b.events``."""

    def __init__(self, timeout: float = 60.0):
        self.timeout = timeout
        self.events: list[dict[str, Any]] = []
        self._id = 0

    def __enter__(self) -> Browser:
        to_chrome_r, self._w = os.pipe()
        self._r, from_chrome_w = os.pipe()
        self._profile = tempfile.mkdtemp(prefix="chromium-")

        def fds() -> None:  # Chromium reads commands on fd 3 and writes replies on fd 4 (kept: pass_fds)
            os.dup2(to_chrome_r, 3)
            os.dup2(from_chrome_w, 4)

        self.proc = subprocess.Popen([chromium_path(), *FLAGS, f"--user-data-dir={self._profile}", "about:blank"],
                                     preexec_fn=fds, pass_fds=(3, 4, to_chrome_r, from_chrome_w),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buf = b""
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.send("Browser.close")
        except Exception:  # noqa: BLE001 - closing a browser that already went away
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.close(self._w)
        os.close(self._r)
        shutil.rmtree(self._profile, ignore_errors=True)

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        while True:
            reply = self._next()
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def wait_for(self, method: str) -> dict:
        for e in self.events:
            if e.get("method") == method:
                return e
        while True:
            e = self._next()
            if e.get("method") == method:
                return e

    def _next(self) -> dict:
        deadline = time.monotonic() + self.timeout
        while b"\0" not in self._buf:
            if time.monotonic() > deadline:
                raise TimeoutError("no answer from Chromium")
            chunk = os.read(self._r, 1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed its DevTools pipe")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        msg = json.loads(raw)
        if "method" in msg:
            self.events.append(msg)
        return msg

    def open(self, url: str, probe: str | None = None) -> dict[str, Any]:
        """Load ``url``; return its images (complete, naturalWidth), the console errors and, given a
        JavaScript expression ``probe``, its value on the loaded page."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable", session=session)
        self.send("Page.navigate", {"url": url}, session=session)
        self.wait_for("Page.loadEventFired")
        images = self.send("Runtime.evaluate", {
            "expression": "Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight])",
            "returnByValue": True}, session=session)["result"]["value"]
        title = self.send("Runtime.evaluate", {"expression": "document.title", "returnByValue": True},
                          session=session)["result"]["value"]
        value = None if probe is None else self.send(
            "Runtime.evaluate", {"expression": probe, "returnByValue": True, "awaitPromise": True},  # a Promise: awaited
            session=session)["result"].get("value")
        errors = [e for e in self.events
                  if e.get("method") == "Runtime.exceptionThrown"
                  or (e.get("method") == "Runtime.consoleAPICalled" and e["params"].get("type") == "error")
                  or (e.get("method") == "Log.entryAdded" and e["params"]["entry"].get("level") == "error")]
        return {"images": images, "title": title, "errors": errors, "probe": value}
