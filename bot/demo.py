"""``statusbot demo``: a self-contained demonstration with throwaway local servers.

It starts a ``redis-server`` and mastodon-mock (a local Mastodon-compatible
server) on free loopback ports, plays a small Sidekiq against that Redis (one
process heartbeat; jobs pushed onto the ``push`` queue faster than they are
worked, then worked off quickly), and runs the real bot against both with
thresholds of seconds instead of minutes. Every status the bot publishes is
printed as a member would see it. A backlog builds and drains within about two
minutes; then everything is stopped and removed.

The simulated Sidekiq writes to the demo's own throwaway Redis; the bot itself
only reads, as always.
"""

from __future__ import annotations

import html
import importlib.util
import json
import logging
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import redis

from bot import health
from bot.app import build
from bot.config import (
    BotConfig,
    Config,
    MastodonConfig,
    PostsConfig,
    RedisConfig,
    ReportsConfig,
    Secret,
)

log = logging.getLogger(__name__)

BOT_TOKEN = "statusbot-demo-token"  # noqa: S105 - the throwaway demo server's seeded token
ADMIN = "admin"
QUEUES = ("default", "push", "ingress", "mailers", "pull", "scheduler", "fasp")


def missing() -> list[str]:
    """Return what the demo needs and this machine lacks, as install hints."""
    needs = []
    if shutil.which("redis-server") is None:
        needs.append("redis-server (apt-get install redis-server)")
    if importlib.util.find_spec("mastodon_mock") is None:
        needs.append("mastodon-mock (pip install 'statusbot[demo]')")
    return needs


def free_port() -> int:
    """Return a free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], bool], seconds: float, what: str) -> None:
    """Poll ``check`` until true; raise RuntimeError naming ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not start within {seconds:.0f} s")


class FakeSidekiq(threading.Thread):
    """A tiny stand-in for Sidekiq that writes its Redis layout (demo Redis only).

    For ``build_for`` seconds it pushes ``rate_in`` jobs a second onto ``push``
    and works ``slow_rate`` a second; afterwards it works ``fast_rate`` a second,
    so the backlog drains.
    """

    def __init__(self, client: redis.Redis, *, build_for: float = 45.0, rate_in: int = 30,
                 slow_rate: int = 5, fast_rate: int = 400) -> None:
        super().__init__(daemon=True, name="fake-sidekiq")
        self.client = client
        self.build_for = build_for
        self.rate_in = rate_in
        self.slow_rate = slow_rate
        self.fast_rate = fast_rate
        self.stop = threading.Event()
        self.identity = f"demo-worker:{os.getpid()}:{secrets.token_hex(6)}"
        self.started = time.time()

    def run(self) -> None:
        """Beat, push and work once a second until stopped."""
        info = json.dumps({"hostname": "demo-worker", "pid": os.getpid(), "tag": "mastodon",
                           "started_at": self.started, "concurrency": 25, "queues": QUEUES,
                           "labels": [], "identity": self.identity, "version": "7.3.9"})
        self.client.sadd("queues", *QUEUES)
        processed = 0
        while not self.stop.wait(1.0):
            now = time.time()
            building = now - self.started < self.build_for
            pipe = self.client.pipeline()
            if building:
                for n in range(self.rate_in):
                    pipe.lpush("queue:push", json.dumps({
                        "class": "ActivityPub::DeliveryWorker", "queue": "push", "args": [n],
                        "jid": secrets.token_hex(12), "retry": 16,
                        "created_at": now, "enqueued_at": now}))
            for _ in range(self.slow_rate if building else self.fast_rate):
                pipe.rpop("queue:push")
            results = pipe.execute()
            processed += sum(1 for r in results[self.rate_in if building else 0:] if r)
            self.client.set("stat:processed", processed)
            self.client.sadd("processes", self.identity)
            self.client.hset(self.identity, mapping={
                "info": info, "busy": 5 if building else 25, "beat": now, "quiet": "false",
                "rss": 300_000, "rtt_us": 100})
            self.client.expire(self.identity, 60)


def strip_html(content: str) -> str:
    """Return a status's HTML as the text a member reads."""
    text = re.sub(r"<br\s*/?>|</p>\s*<p>", "\n", content)
    return html.unescape(re.sub(r"<[^>]+>", "", text))


def show(status: dict[str, Any], out: TextIO) -> None:
    """Print one status as members see it."""
    where = "reply in the thread" if status.get("in_reply_to_id") else "new post"
    if status["visibility"] == "direct":
        where = "direct message to the admins, with the numbers"
    out.write(f"\n┌─ {status['visibility']}, {where}"
              + (f", CW: {status['spoiler_text']}" if status.get("spoiler_text") else "")
              + "\n")
    for line in strip_html(status["content"]).splitlines():
        out.write(f"│ {line}\n")
    out.write("└─\n")
    out.flush()


def run_demo(out: TextIO = sys.stdout, *, seconds: float = 240.0,
             build_for: float = 45.0) -> int:
    """Run the demonstration; return the exit status.

    ``build_for`` is how long the backlog builds; ``seconds`` bounds the whole run.
    """
    needs = missing()
    if needs:
        out.write("statusbot demo needs: " + "; ".join(needs) + "\n")
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="statusbot-demo-"))
    processes: list[subprocess.Popen[bytes]] = []
    sidekiq: FakeSidekiq | None = None
    try:
        redis_port, mock_port = free_port(), free_port()
        processes.append(subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(redis_port), "--save", "",
             "--appendonly", "no", "--dir", str(workdir)], stdout=subprocess.DEVNULL))
        (workdir / "mock.toml").write_text(
            f'[[seed.accounts]]\nusername = "statusbot"\naccess_token = "{BOT_TOKEN}"\n'
            f'[[seed.accounts]]\nusername = "{ADMIN}"\nrole = "admin"\n'
            f'access_token = "{ADMIN}-token"\n')
        with (workdir / "mock.log").open("wb") as mock_log:
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "mastodon_mock", "serve", "--in-memory", "--host",
                 "127.0.0.1", "--port", str(mock_port), "--config", str(workdir / "mock.toml"),
                 "--log-level", "warning"], stdout=mock_log, stderr=subprocess.STDOUT,
                cwd=workdir))
        client = redis.Redis(port=redis_port, decode_responses=True)
        wait_until(lambda: bool(client.ping()), 10, "redis-server")
        api = f"http://127.0.0.1:{mock_port}"
        wait_until(lambda: urllib.request.urlopen(api + "/health", timeout=1).status == 200,  # noqa: S310
                   30, "mastodon-mock")
        out.write(f"Throwaway Redis on 127.0.0.1:{redis_port}, a local Mastodon on {api}.\n"
                  "A simulated Sidekiq falls behind on delivering posts to other servers for "
                  f"about {build_for:.0f} s, then catches up.\n"
                  "The bot uses thresholds of seconds here (minutes in real life). "
                  "Its posts, as members see them:\n")
        sidekiq = FakeSidekiq(client, build_for=build_for)
        sidekiq.start()
        config = demo_config(redis_port, api, workdir)
        bot = build(config, out=out)
        seen: set[str] = set()
        stop = threading.Event()
        deadline = time.monotonic() + seconds

        def after_tick(report: object) -> None:
            del report
            for status in statuses(api):
                if status["id"] not in seen:
                    seen.add(status["id"])
                    show(status, out)
                    if "Resolved" in status["content"]:
                        stop.set()
            if time.monotonic() > deadline:
                out.write("\nThe demo ran out of time.\n")
                stop.set()

        bot.run(config.bot.interval, stop, on_tick=after_tick)
        bot.store.close()
        out.write(f"\nDone: {len(seen)} statuses published, each once. "
                  "Everything was local and has been removed.\n")
        return 0
    finally:
        if sidekiq is not None:
            sidekiq.stop.set()
            sidekiq.join(5)
        for process in processes:
            process.kill()
            process.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


def demo_config(redis_port: int, api: str, workdir: Path) -> Config:
    """Return the bot's configuration for the demo: the real bot, thresholds of seconds."""
    rules, problems = health.rules_from_config({
        "queue_latency": {"push": {"warning": 10, "critical": 25, "for": 0, "clear": 2,
                                   "clear_for": 4}},
    })
    if problems:
        raise ValueError(problems)
    return Config(
        redis=RedisConfig(url=f"redis://127.0.0.1:{redis_port}/0", source="demo"),
        bot=BotConfig(interval=2.0, state_dir=str(workdir / "state")),
        mastodon=MastodonConfig(api_base_url=api, access_token=Secret(BOT_TOKEN),
                                admins=(ADMIN,), request_timeout=5.0, retry_after=2.0,
                                retry_max=8.0),
        posts=PostsConfig(status_every=0.0, profile_field=True),
        reports=ReportsConfig(weekly=None, monthly=None),  # the demo shows an incident only
        health=rules,
    )


def statuses(api: str) -> list[dict[str, Any]]:
    """Return the demo bot's statuses, oldest first."""
    def get(path: str) -> Any:  # noqa: ANN401 - JSON
        request = urllib.request.Request(api + path,  # noqa: S310 - the demo's own local server
                                         headers={"Authorization": f"Bearer {BOT_TOKEN}"})
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return json.loads(response.read())

    me = get("/api/v1/accounts/verify_credentials")
    found: list[dict[str, Any]] = get(f"/api/v1/accounts/{me['id']}/statuses?limit=40")
    return sorted(found, key=lambda s: int(s["id"]))
