"""Headless Chromium driven over the DevTools protocol on a pipe, with the standard library only.

``--remote-debugging-pipe`` makes Chromium read protocol messages on its file descriptor 3 and
answer on 4, each message JSON ending in a NUL byte (what Puppeteer's pipe transport does). No
port is opened and no driver or client library is needed. Every host name resolves to nothing
(``--host-resolver-rules``), so a page can reach 127.0.0.1 and nothing else: a test that uses
this never touches the network.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import signal
import tempfile
import time
from typing import Any

FLAGS = [
    "--headless",
    "--no-sandbox",  # as root in a container there is no user namespace to sandbox in
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--no-first-run",
    "--no-default-browser-check",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--window-size=1280,900",
]


def find_chromium() -> str | None:
    """The path of Debian's ``chromium`` (or another Chromium/Chrome on PATH), or None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _high_pipe() -> tuple[int, int]:
    """A pipe whose two ends are above 4, so putting them on 3 and 4 cannot clobber either."""
    ends = []
    for fd in os.pipe():
        ends.append(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10))
        os.close(fd)
    return ends[0], ends[1]


class Chromium:
    """One headless browser; ``with Chromium(path) as browser: browser.open(url)``."""

    def __init__(self, path: str, *, timeout: float = 60.0) -> None:
        self.timeout = timeout
        self._profile = tempfile.TemporaryDirectory(prefix="chromium-profile-")
        to_browser, self._to_browser = _high_pipe()
        self._from_browser, from_browser = _high_pipe()
        argv = [path, *FLAGS, f"--user-data-dir={self._profile.name}", "--remote-debugging-pipe"]
        # posix_spawn puts the pipe's ends on the child's 3 and 4; every other descriptor of ours
        # is close-on-exec, as Python opens them.
        self._pid = os.posix_spawn(
            path,
            argv,
            os.environ,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
                (os.POSIX_SPAWN_DUP2, to_browser, 3),
                (os.POSIX_SPAWN_DUP2, from_browser, 4),
            ],
        )
        os.close(to_browser)
        os.close(from_browser)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        self._targets: dict[str, str] = {}  # session -> tab

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (OSError, RuntimeError, TimeoutError):
            pass
        deadline = time.monotonic() + 10
        while os.waitpid(self._pid, os.WNOHANG) == (0, 0):
            if time.monotonic() > deadline:
                os.kill(self._pid, signal.SIGKILL)
                os.waitpid(self._pid, 0)
                break
            time.sleep(0.1)
        os.close(self._to_browser)
        os.close(self._from_browser)
        self._profile.cleanup()

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("Chromium did not answer in time")
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if ready:
                chunk = os.read(self._from_browser, 1 << 20)
                if not chunk:
                    raise RuntimeError("Chromium closed its end of the pipe (it exited)")
                self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """Send one command and wait for its result; events that arrive meanwhile are kept."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def open(self, url: str) -> str:
        """Open ``url`` in a new tab and return the tab's session, with network events on."""
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self._targets[session] = target
        self.send("Network.enable", session)
        self.send("Runtime.enable", session)
        self.send("Page.enable", session)
        since = len(self.events)
        self.send("Page.navigate", session, url=url)
        self.wait_for(session, "Page.loadEventFired", since=since)
        return session

    def close_tab(self, session: str) -> None:
        """Close the tab that ``open`` gave ``session``."""
        self.send("Target.closeTarget", targetId=self._targets.pop(session))

    def wait_for(self, session: str, method: str, *, since: int = 0) -> dict[str, Any]:
        """Wait until the tab sends the event ``method`` (kept from ``since`` on); its params."""
        deadline = time.monotonic() + self.timeout
        seen = since
        while True:
            for event in self.events[seen:]:
                if event.get("sessionId") == session and event.get("method") == method:
                    return event.get("params", {})
            seen = len(self.events)
            self.events.append(self._read_message(deadline))

    def evaluate(self, session: str, expression: str) -> Any:
        """The value of a JavaScript expression in the tab (a promise is awaited)."""
        result = self.send(
            "Runtime.evaluate",
            session,
            expression=expression,
            awaitPromise=True,
            returnByValue=True,
            timeout=self.timeout * 1000,
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"the page's script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def session_events(self, session: str, method: str) -> list[dict[str, Any]]:
        """The events ``method`` (e.g. ``Network.requestWillBeSent``) the tab has sent so far."""
        return [
            e["params"]
            for e in self.events
            if e.get("sessionId") == session and e.get("method") == method
        ]
