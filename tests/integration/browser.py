"""Headless Debian ``chromium`` driven over the DevTools protocol through a pipe.

``Chromium`` starts the browser with ``--remote-debugging-pipe``: it reads
protocol commands from its fd 3 and writes replies and events to its fd 4,
each message a JSON object ended by a NUL byte. No port is opened, and
nothing beyond the standard library is needed. Each browser gets a
throwaway profile (``--user-data-dir``) and is told not to reach any
service of its own (updates, safe browsing, metrics); ``--no-sandbox`` only
when running as root, where Chromium refuses to start otherwise.

``Chromium.tab()`` opens a ``Tab``: load a page, set its viewport, emulate
``prefers-color-scheme``, turn JavaScript off, evaluate an expression, take
a screenshot, and read the requests it made. ``close()`` (also on leaving a
``with`` block) asks the browser to quit and then kills its whole process
group, so no renderer or GPU process outlives a test.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

CALL_TIMEOUT = 60.0
"""Seconds one protocol command may take (a page load, an axe run) before the test fails."""

FLAGS = (
    "--headless",
    "--remote-debugging-pipe",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-extensions",
    "--disable-sync",
    "--disable-breakpad",
    "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication,"
    "CertificateTransparencyComponentUpdater",
    "--metrics-recording-only",
    "--no-pings",
    "--safebrowsing-disable-auto-update",
    "--mute-audio",
    "--hide-scrollbars",
    "--force-color-profile=srgb",
    "--font-render-hinting=none",
    "--allow-file-access-from-files",
)
"""Headless, piped, and quiet: no first-run UI, no traffic of the browser's own."""


def chromium_path() -> str | None:
    """Return Debian's ``chromium`` (or ``$STATUSBOT_CHROMIUM``), None when there is none."""
    chosen = os.environ.get("STATUSBOT_CHROMIUM")
    if chosen:
        return chosen if os.access(chosen, os.X_OK) else None
    return shutil.which("chromium")


def missing() -> str | None:
    """Return why the browser tests cannot run here, or None when they can."""
    if chromium_path() is None:
        return "chromium is not installed (apt-get install chromium)"
    return None


def version() -> str:
    """Return what ``chromium --version`` says."""
    path = chromium_path()
    if path is None:
        return "none"
    result = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60,
                            check=False)
    return result.stdout.strip() or result.stderr.strip()


class ProtocolError(RuntimeError):
    """The browser answered a command with an error, or did not answer in time."""


class Chromium:
    """One headless Chromium process and the protocol connection to it."""

    def __init__(self, *, extra_flags: tuple[str, ...] = ()) -> None:
        path = chromium_path()
        if path is None:
            raise FileNotFoundError(missing())
        self.profile = Path(tempfile.mkdtemp(prefix="statusbot-chromium-"))
        self._lock = threading.Lock()
        self._answered = threading.Condition(self._lock)
        self._replies: dict[int, dict[str, Any]] = {}
        self._events: list[dict[str, Any]] = []
        self._next_id = 0
        self._closed = False
        flags = [*FLAGS, f"--user-data-dir={self.profile}", *extra_flags]
        if os.geteuid() == 0:
            flags.append("--no-sandbox")  # Chromium will not start as root with its sandbox
        # to_browser: we write, it reads on fd 3; from_browser: it writes on fd 4, we read.
        to_read, self._to_browser = os.pipe()
        self._from_browser, from_write = os.pipe()
        # Copies above 4, so that placing them on 3 and 4 cannot overwrite one with the other.
        child_in = fcntl.fcntl(to_read, fcntl.F_DUPFD_CLOEXEC, 10)
        child_out = fcntl.fcntl(from_write, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(to_read)
        os.close(from_write)
        self.log = self.profile / "chromium.log"
        try:
            with open(self.log, "wb") as log:
                # bash (dash takes no fd above 9) moves the pipe ends to fds 3 and 4,
                # then becomes chromium: same pid, same process group.
                self.process = subprocess.Popen(
                    ["bash", "-c", f'exec 3<&{child_in} 4>&{child_out} {child_in}<&- '
                                 f'{child_out}>&-; exec "$@"', "bash", path, *flags, "about:blank"],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    pass_fds=(child_in, child_out), start_new_session=True)
        except BaseException:
            for fd in (child_in, child_out, self._to_browser, self._from_browser):
                os.close(fd)
            shutil.rmtree(self.profile, ignore_errors=True)
            raise
        os.close(child_in)
        os.close(child_out)
        self._reader = threading.Thread(target=self._read, name="chromium-pipe", daemon=True)
        self._reader.start()
        try:
            self.product = str(self.call("Browser.getVersion")["product"])
        except BaseException:
            self.close()
            raise

    # --- the pipe ----------------------------------------------------------------------------

    def _read(self) -> None:
        buffer = b""
        try:
            while True:
                chunk = os.read(self._from_browser, 1 << 16)
                if not chunk:
                    break
                buffer += chunk
                *messages, buffer = buffer.split(b"\0")
                for raw in messages:
                    message = json.loads(raw)
                    with self._lock:
                        if "id" in message:
                            self._replies[message["id"]] = message
                        else:
                            self._events.append(message)
                        self._answered.notify_all()
        except OSError:
            pass
        finally:
            with self._lock:
                self._closed = True
                self._answered.notify_all()

    def call(self, method: str, params: dict[str, Any] | None = None, *,
             session: str | None = None, timeout: float = CALL_TIMEOUT) -> dict[str, Any]:
        """Send one command and return its result; raise ``ProtocolError`` on an error."""
        with self._lock:
            self._next_id += 1
            ident = self._next_id
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        try:
            os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        except OSError as exc:
            raise ProtocolError(f"{method}: the browser is gone ({exc}); {self.log_tail()}") \
                from exc
        with self._answered:
            if not self._answered.wait_for(lambda: ident in self._replies or self._closed,
                                           timeout):
                raise ProtocolError(f"{method}: no answer in {timeout:.0f} s")
            reply = self._replies.pop(ident, None)
        if reply is None:
            raise ProtocolError(f"{method}: the browser closed the pipe; {self.log_tail()}")
        if "error" in reply:
            raise ProtocolError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    def events(self, session: str | None = None, method: str | None = None,
               ) -> list[dict[str, Any]]:
        """Return the events received so far (of one session, of one method)."""
        with self._lock:
            return [e for e in self._events
                    if (session is None or e.get("sessionId") == session)
                    and (method is None or e.get("method") == method)]

    def wait_event(self, predicate: Callable[[dict[str, Any]], bool],
                   timeout: float = CALL_TIMEOUT, after: int = 0) -> dict[str, Any]:
        """Wait for an event (from index ``after`` on) that ``predicate`` accepts; return it."""
        found: list[dict[str, Any]] = []

        def seen() -> bool:
            found[:] = [e for e in self._events[after:] if predicate(e)]
            return bool(found) or self._closed

        with self._answered:
            if not self._answered.wait_for(seen, timeout) or not found:
                raise ProtocolError(f"no such event in {timeout:.0f} s")
        return found[0]

    def event_count(self) -> int:
        """Return how many events were received so far (for ``wait_event(after=...)``)."""
        with self._lock:
            return len(self._events)

    def log_tail(self) -> str:
        """Return the end of the browser's own output, for failure messages."""
        try:
            return "chromium said: " + self.log.read_text(errors="replace")[-1500:]
        except OSError:
            return "no chromium log"

    # --- tabs and the end --------------------------------------------------------------------

    def tab(self) -> Tab:
        """Open a new blank tab and attach to it."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})
        return Tab(self, str(target), str(session["sessionId"]))

    def close(self) -> None:
        """Ask the browser to quit, then kill whatever is left of its process group."""
        if self.process.poll() is None:
            with contextlib.suppress(ProtocolError, OSError):
                self.call("Browser.close", timeout=5)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(5)
        # Renderer, GPU and zygote processes share the group that start_new_session made.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for fd in (self._to_browser, self._from_browser):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._reader.join(5)
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()


class Tab:
    """One page of the browser, attached in flat mode (commands carry its session id)."""

    def __init__(self, browser: Chromium, target: str, session: str) -> None:
        self.browser = browser
        self.target = target
        self.session = session
        for domain in ("Page", "Network", "Runtime"):
            self.call(f"{domain}.enable")

    def call(self, method: str, params: dict[str, Any] | None = None,
             timeout: float = CALL_TIMEOUT) -> dict[str, Any]:
        """Send a command to this tab."""
        return self.browser.call(method, params, session=self.session, timeout=timeout)

    def viewport(self, width: int, height: int, *, mobile: bool | None = None,
                 scale: float = 1.0) -> None:
        """Emulate a screen of ``width`` by ``height`` CSS pixels (mobile below 600 px)."""
        self.call("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": scale,
            "mobile": width < 600 if mobile is None else mobile})

    def color_scheme(self, scheme: str) -> None:
        """Emulate ``prefers-color-scheme``: "light" or "dark" ("" for the default)."""
        self.call("Emulation.setEmulatedMedia",
                  {"features": [{"name": "prefers-color-scheme", "value": scheme}]})

    def javascript(self, enabled: bool) -> None:
        """Allow or forbid the page's own scripts (DevTools' evaluate still works)."""
        self.call("Emulation.setScriptExecutionDisabled", {"value": not enabled})

    def load(self, url: str) -> None:
        """Navigate to ``url`` and wait for its load event."""
        mark = self.browser.event_count()
        reply = self.call("Page.navigate", {"url": url})
        if reply.get("errorText"):
            raise ProtocolError(f"cannot load {url}: {reply['errorText']}")
        self.browser.wait_event(lambda e: e.get("sessionId") == self.session
                                and e.get("method") == "Page.loadEventFired", after=mark)

    def evaluate(self, expression: str, *, timeout: float = CALL_TIMEOUT) -> Any:
        """Evaluate ``expression`` in the page (awaiting a promise) and return its JSON value."""
        reply = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                               "awaitPromise": True}, timeout=timeout)
        if "exceptionDetails" in reply:
            details = reply["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise ProtocolError(f"evaluate failed: {text}")
        return reply["result"].get("value")

    def requested(self) -> list[str]:
        """Return every URL this tab asked for, as the Network domain saw it."""
        return [e["params"]["request"]["url"]
                for e in self.browser.events(self.session, "Network.requestWillBeSent")]

    def screenshot(self, path: Path, *, full_page: bool = True) -> None:
        """Write a PNG of the viewport, or of the whole page's height."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = self.call("Page.getLayoutMetrics")["cssContentSize"]
            width = self.evaluate("document.documentElement.clientWidth")
            params.update(captureBeyondViewport=True, clip={
                "x": 0, "y": 0, "width": width, "height": size["height"], "scale": 1})
        data = self.call("Page.captureScreenshot", params)["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        """Close the tab."""
        with contextlib.suppress(ProtocolError):
            self.browser.call("Target.closeTarget", {"targetId": self.target})


@contextlib.contextmanager
def chromium() -> Iterator[Chromium]:
    """Start a browser for a ``with`` block and kill it afterwards, whatever happened."""
    browser = Chromium()
    try:
        yield browser
    finally:
        browser.close()
