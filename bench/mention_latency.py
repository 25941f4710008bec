"""Time from a mention being posted to the bot's reply appearing, over the stream and by polling.

Runs the real intake (``bot.mentions.Intake`` with the Mastodon.py gateway,
``Outbox`` delivery, SQLite state) on a thread, the way the tick loop runs it
between ticks (``Intake.serve`` delivering the outbox after each drain),
against mastodon-mock on loopback. Another account mentions the bot, one
mention at a time after a random pause of 0-1 s, and listens on its own user
stream for the reply (the reply mentions it, so a notification arrives).
The clock starts just before the mention's POST is sent and stops when the
reply's notification reaches the poster.

Two modes in one run, N mentions each (after 3 warm-up mentions):
stream (the user stream, backfill every 300 s) and polling alone (no stream,
backfill every 1 s; the paginated-request budget is lifted for this, as
loopback is never rate limited, while the default is 100 per 15 min).

    .venv/bin/python bench/mention_latency.py [--n 50] [--write]
"""

from __future__ import annotations

import argparse
import http.client
import importlib.metadata
import json
import logging
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from bot.demo import free_port, wait_until
from bot.gateway import Mention
from bot.mastodon_api import MastodonGateway
from bot.mentions import Intake, ReplyLimiter, reply_key, reply_parent
from bot.model import Post, PostKind
from bot.outbox import Outbox
from bot.store import Store

TOKEN = "latency-bot-token"  # noqa: S105 - the throwaway server's seeded token
HEADING = "## Mention to reply latency"
WARMUP = 3


class Api:
    """Plain HTTP to the mock, as the poster."""

    def __init__(self, base: str) -> None:
        self.base = base

    def request(self, method: str, path: str, token: str | None = None,
                form: dict[str, str] | None = None,
                body: dict[str, str] | None = None) -> dict[str, Any]:
        """Make one request; return the JSON object it answers."""
        headers = {"Accept": "application/json"}
        data = None
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self.base + path, data=data, headers=headers,  # noqa: S310
                                         method=method)
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            answer: dict[str, Any] = json.loads(response.read())
        return answer


class ReplyWatcher:
    """The poster's user stream: records when each reply (a mention of the poster) arrives."""

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.token = token
        self.arrived: dict[str, float] = {}
        self.events: dict[str, threading.Event] = {}
        self.connected = threading.Event()
        self._lock = threading.Lock()
        threading.Thread(target=self._run, daemon=True).start()

    def expect(self, status_id: str) -> threading.Event:
        """Return the event set when the reply to ``status_id`` has arrived."""
        with self._lock:
            event = self.events.setdefault(status_id, threading.Event())
            if status_id in self.arrived:
                event.set()
            return event

    def _run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        connection.request("GET", "/api/v1/streaming/user",
                           headers={"Authorization": f"Bearer {self.token}"})
        response = connection.getresponse()
        name = ""
        while True:
            raw = response.readline()
            if not raw:
                return
            line = raw.decode().rstrip("\n")
            if line.startswith(":"):
                self.connected.set()
            elif line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: ") and name == "notification":
                self._notification(json.loads(line[6:]), time.perf_counter())

    def _notification(self, data: dict[str, Any], at: float) -> None:
        status = data.get("status") or {}
        parent = status.get("in_reply_to_id")
        if data.get("type") != "mention" or parent is None:
            return
        with self._lock:
            self.arrived.setdefault(str(parent), at)
            event = self.events.get(str(parent))
        if event is not None:
            event.set()


def reply_to(mention: Mention) -> list[Post]:
    """Answer like a command does: direct, threaded under the mention."""
    return [Post(key=reply_key(mention), kind=PostKind.REPLY,
                 text=f"@{mention.acct} All systems are working normally.",
                 visibility="direct", created_at=time.time(), parent_key=reply_parent(mention))]


def run_mode(api: Api, base: str, port: int, poster: str, watcher: ReplyWatcher,
             state: Path, *, stream: bool, n: int, rng: random.Random,
             ) -> tuple[list[float], int]:
    """Measure ``n`` mentions in one mode; return latencies (s) and the bot's API calls."""
    store = Store(state)
    gateway = MastodonGateway(base, TOKEN, request_timeout=10.0)
    intake = Intake(store, gateway, reply_to, clock=time.time, stream=stream,
                    backfill_every=300.0 if stream else 1.0,
                    paginated_budget=100 if stream else 100_000,
                    limiter=ReplyLimiter(per_account=100_000, total=100_000))
    outbox = Outbox(store, gateway, clock=time.time, backoff_base=0.2, backoff_cap=1.0)
    stop = threading.Event()
    intake.start(ensure_policy=True)
    intake.drain()  # the start-up backfill: sets the cursor past the other mode's mentions
    thread = threading.Thread(
        target=intake.serve, args=(3600.0, stop, lambda _: outbox.deliver(time.time())),
        kwargs={"slice_s": 1.0}, daemon=True)
    thread.start()
    if stream:
        wait_until(lambda: intake.stream_state.value == "receiving", 10, "the bot's stream")
    calls_before = gateway.calls
    latencies: list[float] = []
    try:
        for i in range(WARMUP + n):
            time.sleep(rng.uniform(0.0, 1.0))
            started = time.perf_counter()
            status = api.request("POST", "/api/v1/statuses", poster,
                                 form={"status": f"@statusbot status ({i})",
                                       "visibility": "direct"})
            event = watcher.expect(str(status["id"]))
            if not event.wait(15):
                raise RuntimeError(f"no reply to mention {i} within 15 s")
            if i >= WARMUP:
                latencies.append(watcher.arrived[str(status["id"])] - started)
    finally:
        stop.set()
        intake.wake()
        thread.join(10)
        intake.close()
        store.close()
    return latencies, gateway.calls - calls_before


def p95(values: list[float]) -> float:
    """Return the 95th percentile (inclusive method)."""
    return statistics.quantiles(values, n=20, method="inclusive")[18]


def write_section(text: str) -> None:
    """Replace this benchmark's section of RESULTS.md, leaving every other section alone.

    A new section goes before "Requests to the instance when all is well",
    whose writer keeps only what comes before its own heading.
    """
    results = Path(__file__).with_name("RESULTS.md")
    old = results.read_text() if results.exists() else "# Benchmark results\n"
    if HEADING in old:
        before, rest = old.split(HEADING, 1)
        after = rest[rest.index("\n## "):] if "\n## " in rest else ""
        new = before + text.rstrip() + "\n" + after
    else:
        anchor = "## Requests to the instance when all is well"
        if anchor in old:
            head, tail = old.split(anchor, 1)
            new = head + text.rstrip() + "\n\n" + anchor + tail
        else:
            new = old.rstrip() + "\n\n" + text.rstrip() + "\n"
    results.write_text(new)


def main() -> int:
    """Run both modes and print (or write) the results."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=50, help="mentions per mode")
    parser.add_argument("--write", action="store_true", help="record in bench/RESULTS.md")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    rng = random.Random(20261128)
    workdir = Path(tempfile.mkdtemp(prefix="statusbot-latency-"))
    port = free_port()
    (workdir / "mock.toml").write_text(
        '[database]\npath = ":memory:"\n'
        f'[[seed.accounts]]\nusername = "statusbot"\naccess_token = "{TOKEN}"\n')
    with (workdir / "mock.log").open("wb") as sink:
        server = subprocess.Popen(
            [sys.executable, "-m", "mastodon_mock", "serve", "--in-memory", "--host",
             "127.0.0.1", "--port", str(port), "--config", str(workdir / "mock.toml"),
             "--log-level", "warning"], stdout=sink, stderr=subprocess.STDOUT, cwd=workdir)
    base = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    try:
        def up() -> bool:
            try:
                with urllib.request.urlopen(base + "/health", timeout=1) as response:  # noqa: S310
                    return bool(response.status == 200)
            except (OSError, urllib.error.URLError):
                return False

        wait_until(up, 30, "mastodon-mock")
        api = Api(base)
        poster = str(api.request("POST", "/api/v1/_mock/dev_user",
                                 body={"username": "alice"})["access_token"])
        watcher = ReplyWatcher(port, poster)
        if not watcher.connected.wait(10):
            raise RuntimeError("the poster's stream did not connect")
        results = {}
        for name, stream in (("stream", True), ("polling alone (every 1 s)", False)):
            results[name] = run_mode(api, base, port, poster, watcher,
                                     workdir / f"state-{stream}.sqlite3", stream=stream,
                                     n=args.n, rng=rng)
    finally:
        server.kill()
        server.wait()
        shutil.rmtree(workdir, ignore_errors=True)
    took = time.monotonic() - started

    rows = []
    for name, (latencies, calls) in results.items():
        ms = [x * 1000 for x in latencies]
        rows.append(f"| {name} | {len(ms)} | {statistics.median(ms):.0f} | {p95(ms):.0f} | "
                    f"{min(ms):.0f} | {max(ms):.0f} | {calls} |")
    replies = WARMUP + args.n
    versions = ", ".join(f"{d} {importlib.metadata.version(d)}"
                         for d in ("Mastodon.py", "mastodon-mock"))
    lines = [
        HEADING,
        "",
        f"Command: `.venv/bin/python bench/mention_latency.py --n {args.n} --write`",
        "",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} (the run took "
        f"{took:.0f} s); {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{versions}, everything on loopback.",
        "- Set-up: the real intake (`Intake.serve`, Mastodon.py gateway, outbox delivery "
        "after each drain, SQLite state) on a thread; another account posts one direct "
        f"mention at a time after a random 0-1 s pause ({WARMUP} warm-up mentions per mode "
        "not counted) and waits for the reply. Latency: from just before the mention's "
        "POST is sent to the reply's mention notification reaching the poster over its "
        "own user stream. The reply limiter is lifted (one account gets every reply) and, "
        "for polling, the paginated-request budget too.",
        "",
        "| Mode | N | median (ms) | p95 (ms) | min (ms) | max (ms) | bot API requests |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        "Polling alone waits for the next 1 s backfill (half a second on average), then "
        "costs a paginated request per second (two when it finds something), at least 900 "
        "per 15 min: three times what Mastodon "
        "allows an account (300 per 15 min on requests with min_id), so 1 s polling is "
        "for loopback only. The default (stream, backfill every 300 s) makes 12 paginated "
        f"requests an hour when nothing is missed. 'Bot API requests' counts what the bot "
        f"asked the mock from the first warm-up mention to the last reply: {replies} replies, "
        "the rest notification pages (over the stream: the backfill that follows its "
        "connection).",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_section(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
