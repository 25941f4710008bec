"""The instance down end to end: ``statusbot run``, a fallback account and the status page.

Issue 9 §3. Real redis-server, a real Sidekiq backlog (so an incident is
open), two mastodon-mock servers (the instance and a fallback account on
another server) and ``statusbot run`` as a subprocess with ``[page] dir``.
The instance's mock first answers 502 to everything (its /health too), then is
stopped (connection refused); the bot is SIGKILLed during the outage and
started again; the fallback's mock answers a burst of 503s to the notice and a
429 with a reset to the resolution; then the instance comes back on the same
port, with what it held before (its database is a file).

Asserted: the fallback got exactly one notice and one resolution, in one
thread, nothing before the outage; the instance kept its own incident thread,
got what was queued while it was down once it was back, each post once
(distinct texts, one idempotency key each); while the instance was down the
page showed the incident, and feed.atom (read by feedparser) and both
Statuspage JSON files agree with it.

Everything is waited for by polling with a timeout; the bot's thresholds are
seconds, so the run takes well under a minute on an idle machine. What is not
shown here: the catch-up *post* (``compose.catchup``) folds member notices
still unsent after ``defaults.IDEMPOTENCY_WINDOW`` (50 minutes), far longer
than a test run; tests/test_outbox.py covers it with an injected clock.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import feedparser
import pytest

from bot.store import Store
from tests.integration.conftest import need
from tests.integration.mastodon_mock import ADMIN_USERNAME, BOT_TOKEN, MastodonMock, missing
from tests.integration.servers import RedisServer, Sidekiq, sidekiq_root, wait_for

pytestmark = pytest.mark.integration

TOKEN_ENV = "STATUSBOT_E2E_TOKEN"
FALLBACK_ENV = "STATUSBOT_E2E_FALLBACK_TOKEN"
PAGE_URL = "https://status.example.org"
POSTS = {"methods": ["POST"], "path": "/api/v1/statuses"}


def config_text(redis_url: str, instance: str, fallback: str, state: Path, page: Path) -> str:
    """Thresholds of seconds; nothing that depends on the day or hour the test runs."""
    return f"""
[redis]
url = "{redis_url}"
socket_timeout = 1

[bot]
interval = 0.5
state_dir = "{state}"

[mastodon]
api_base_url = "{instance}"
access_token_env = "{TOKEN_ENV}"
admins = ["{ADMIN_USERNAME}"]
request_timeout = 2
retry_after = 1
retry_max = 2
probe_health = true

[posts]
status_every = 0
profile_field = false

[reports]  # no digest whatever the day
weekly = "off"
monthly = "off"

[page]
dir = "{page}"
url = "{PAGE_URL}"

[[fallback]]
api_base_url = "{fallback}"
access_token_env = "{FALLBACK_ENV}"
after = "2s"

[health.queue_latency.push]
warning = 1
critical = 2
for = 0
clear = 1
clear_for = 1

[health.unserved]
warning = 3600
critical = 7200

[health.web_down]
warning = 1
critical = 2
clear_for = 1
"""


@dataclass
class Scene:
    """The servers, the bot's config and the bots started."""

    workdir: Path
    redis: RedisServer
    sidekiq: Sidekiq
    instance: MastodonMock
    fallback: MastodonMock
    config: Path
    page: Path
    mocks: list[MastodonMock] = field(default_factory=list)
    bots: list[subprocess.Popen[str]] = field(default_factory=list)

    def start_bot(self) -> subprocess.Popen[str]:
        with (self.workdir / "bot.log").open("a") as log:
            bot = subprocess.Popen(
                [sys.executable, "-m", "bot", "run", "--config", str(self.config)],
                env={**os.environ, TOKEN_ENV: BOT_TOKEN, FALLBACK_ENV: BOT_TOKEN},
                stdout=log, stderr=subprocess.STDOUT, text=True)
        self.bots.append(bot)
        return bot

    def log(self) -> str:
        path = self.workdir / "bot.log"
        return path.read_text(errors="replace")[-6000:] if path.exists() else ""

    def alive(self, bot: subprocess.Popen[str]) -> None:
        assert bot.poll() is None, self.log()


@pytest.fixture
def scene(tmp_path: Path) -> Iterator[Scene]:
    need(None if shutil.which("redis-server") else "redis-server is not installed")
    need(missing())
    root, problem = sidekiq_root(6)
    if problem is not None:
        root, problem = sidekiq_root(7)
    need(problem)
    for name in ("instance", "fallback", "instance-back"):
        (tmp_path / name).mkdir()
    redis = RedisServer(tmp_path)
    mocks: list[MastodonMock] = []
    sidekiq: Sidekiq | None = None
    scene: Scene | None = None
    try:
        mocks.append(MastodonMock(tmp_path / "instance", database=tmp_path / "instance.db"))
        mocks.append(MastodonMock(tmp_path / "fallback", database=tmp_path / "fallback.db"))
        sidekiq = Sidekiq(root, redis.url)
        config = tmp_path / "statusbot.toml"
        page = tmp_path / "page"
        config.write_text(config_text(redis.url, mocks[0].url, mocks[1].url,
                                      tmp_path / "state", page))
        scene = Scene(tmp_path, redis, sidekiq, mocks[0], mocks[1], config, page, mocks)
        yield scene
    finally:
        for bot in scene.bots if scene is not None else []:
            if bot.poll() is None:
                bot.kill()
                bot.wait()
        if sidekiq is not None:
            sidekiq.stop()
        for mock in mocks:
            mock.stop()
        redis.stop()


# --- reading what the servers and the page hold ------------------------------------------------


def stamp(status: dict[str, Any]) -> datetime:
    """When the mock created a status (its own clock, the same machine's)."""
    return datetime.fromisoformat(status["created_at"].replace("Z", "+00:00"))


def members(statuses: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s for s in statuses if s["visibility"] in {"public", "unlisted"}]


def text_of(status: dict[str, Any]) -> str:
    """A status's text without the mock's HTML."""
    return html.unescape(re.sub(r"<[^>]+>", "\n", status["content"]))


def idempotency_keys(database: Path) -> dict[int, list[str]]:
    """Read the mock's database: the Idempotency-Keys each status was posted with."""
    with sqlite3.connect(database) as db:
        rows = db.execute("SELECT status_id, key FROM idempotency").fetchall()
    keys: dict[int, list[str]] = {}
    for status_id, key in rows:
        keys.setdefault(int(status_id), []).append(key)
    return keys


def assert_posted_once(statuses: list[dict[str, Any]], database: Path) -> None:
    """Every status has its own text and exactly one Idempotency-Key, none shared."""
    texts = [(s["spoiler_text"], s["content"]) for s in statuses]
    assert len(texts) == len(set(texts)), "a post was published twice"
    keys = idempotency_keys(database)
    assert {int(s["id"]) for s in statuses} == set(keys), "a status posted without its key"
    assert all(len(k) == 1 for k in keys.values()), keys
    flat = [k[0] for k in keys.values()]
    assert len(flat) == len(set(flat)), flat


@dataclass(frozen=True)
class Page:
    """The four files of the status page, read together."""

    html: str
    feed: Any
    status: dict[str, Any]
    summary: dict[str, Any]


def read_page(directory: Path) -> Page:
    return Page(
        (directory / "index.html").read_text(encoding="utf-8"),
        feedparser.parse((directory / "feed.atom").read_bytes()),
        json.loads((directory / "api/v2/status.json").read_text(encoding="utf-8")),
        json.loads((directory / "api/v2/summary.json").read_text(encoding="utf-8")),
    )


def website_down_on_page(directory: Path) -> bool:
    """The page's JSON says the website is out and an incident is open."""
    try:
        summary = json.loads((directory / "api/v2/summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    web = [c for c in summary["components"] if c["id"].endswith("-web")]
    return bool(summary["incidents"]) and bool(web) and web[0]["status"] == "major_outage"


def assert_page_agrees(page: Page) -> dict[str, Any]:
    """The HTML, the feed and both JSON files tell the same open incident; return it."""
    # The overall state: one indicator, said in the page's top line.
    assert page.status["status"] == page.summary["status"]
    assert page.status["page"] == page.summary["page"]
    assert page.status["status"]["indicator"] in {"major", "critical"}, page.status
    description = page.summary["status"]["description"]
    assert f'role="status">{html.escape(description)}</p>' in page.html
    # Each part of the service in the same state in the HTML.
    for component in page.summary["components"]:
        assert (f'<span>{html.escape(component["name"])}</span> '
                f'<span class="s {component["status"]}">') in page.html, component
    # The open incident: its name and every update, in order.
    [incident] = page.summary["incidents"]
    assert incident["resolved_at"] is None and incident["impact"] in {"major", "critical"}
    assert f"<strong>{html.escape(incident['name'])}</strong>" in page.html
    bodies = [u["body"] for u in reversed(incident["incident_updates"])]  # oldest first
    shown = re.findall(r'<ol class="updates">(.*?)</ol>', page.html, re.DOTALL)
    assert shown, "no updates listed on the page"
    listed = [html.unescape(p) for p in re.findall(r"<p>(.*?)</p>", shown[0], re.DOTALL)]
    assert listed == bodies
    # The feed: parsed without complaint, the same updates under the incident's name.
    assert page.feed.bozo == 0, page.feed.get("bozo_exception")
    assert page.feed.version == "atom10"
    entries = [e for e in page.feed.entries if e.title.startswith(f"{incident['name']}: ")]
    assert [e.content[0].value for e in reversed(entries)] == bodies
    stamps = [e.updated_parsed for e in page.feed.entries]
    assert stamps == sorted(stamps, reverse=True)
    result: dict[str, Any] = incident
    return result


# --- the scenario ------------------------------------------------------------------------------


def reset_in(seconds: float) -> str:
    """An ISO 8601 X-RateLimit-Reset, as real Mastodon sends it."""
    moment = datetime.now(timezone.utc) + timedelta(seconds=seconds)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def read_page_settled(directory: Path) -> Page:
    """Read the four files until two reads agree (the running bot replaces them one by one)."""
    last: Page | None = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        page = read_page(directory)
        if last is not None and (page.html, page.status, page.summary) == (
                last.html, last.status, last.summary) and page.feed == last.feed:
            return page
        last = page
        time.sleep(0.3)
    raise TimeoutError("the status page never settled")


def test_instance_down_fallback_and_page(scene: Scene) -> None:
    """502, then gone, a SIGKILL and restart, faults on the fallback; back on the same port."""
    instance, fallback = scene.instance, scene.fallback
    scene.sidekiq.enqueue([{"class": "OkJob", "queue": "push", "count": 50}])
    bot = scene.start_bot()
    beat = scene.workdir / "state" / "last-tick"

    def ticks(count: int) -> None:
        """Wait for ``count`` more completed ticks of the running bot."""
        for _ in range(count):
            seen = beat.stat().st_mtime_ns if beat.exists() else 0

            def beat_moved(seen: int = seen) -> bool:
                return beat.exists() and beat.stat().st_mtime_ns != seen

            wait_for(beat_moved, 30, "a tick", interval=0.05)
            scene.alive(bot)

    # 1. All works: the backlog's incident is told on the instance, nothing on the fallback.
    def noticed() -> bool:
        scene.alive(bot)
        return any(s["visibility"] == "public" for s in instance.statuses(BOT_TOKEN))

    wait_for(noticed, 60, "the incident notice on the instance", interval=0.3)
    notice = members(instance.statuses(BOT_TOKEN))[0]
    wait_for(lambda: (scene.page / "index.html").exists(), 30, "the status page")
    assert fallback.statuses(BOT_TOKEN) == []

    # 2. The instance answers 502 to everything, /health included; the fallback's first
    #    answers to a post are 503s.
    outage = datetime.now(timezone.utc)
    fallback.fault({"match": POSTS, "effect": {"type": "status", "status": 503}, "count": 2})
    instance.fault({"match": {"path_regex": ".*"}, "effect": {"type": "status", "status": 502}})

    def told_elsewhere() -> bool:
        scene.alive(bot)
        return bool(fallback.statuses(BOT_TOKEN))

    wait_for(told_elsewhere, 60, "the notice on the fallback", interval=0.3)

    # 3. The instance is gone altogether; the bot is killed and started again meanwhile.
    instance.stop()
    ticks(2)
    bot.send_signal(signal.SIGKILL)
    bot.wait(10)
    bot = scene.start_bot()
    ticks(3)  # a few ticks of the restarted bot while the instance is gone
    assert len(fallback.statuses(BOT_TOKEN)) == 1, "a second notice after the restart"

    # 4. While it is down the page shows the incident as it grew: the website part is out
    #    once the incident's next update is due (updates are spaced a minute apart).
    def website_out() -> bool:
        scene.alive(bot)
        return website_down_on_page(scene.page)

    wait_for(website_out, 90, "the page to show the website out", interval=0.3)
    page = read_page_settled(scene.page)
    incident = assert_page_agrees(page)
    web = [c for c in page.summary["components"] if c["id"].endswith("-web")]
    assert web[0]["status"] == "major_outage", page.summary["components"]
    bodies = [u["body"] for u in reversed(incident["incident_updates"])]
    assert len(bodies) >= 2, incident
    assert bodies[0].splitlines()[0] in text_of(notice)
    host = urlsplit(instance.url).hostname
    assert page.html.count(f"Not yet posted on {host}.") == len(bodies) - 1, \
        "the updates composed while the instance is down are not marked unsent"
    assert f'<a href="{instance.url}/statuses/{notice["id"]}">' in page.html  # the notice, sent
    assert len(fallback.statuses(BOT_TOKEN)) == 1

    # 5. The fallback rate-limits the next post; the instance comes back where it was.
    fallback.fault({"match": POSTS, "effect": {"type": "ratelimit", "headers": {
        "X-RateLimit-Reset": reset_in(2)}}, "count": 1})
    back = MastodonMock(scene.workdir / "instance-back", port=instance.port,
                        database=scene.workdir / "instance.db")
    scene.mocks.append(back)
    since_back = datetime.now(timezone.utc)

    def resolved_elsewhere() -> bool:
        scene.alive(bot)
        return len(fallback.statuses(BOT_TOKEN)) >= 2

    wait_for(resolved_elsewhere, 60, "the resolution on the fallback", interval=0.3)

    def caught_up() -> bool:
        scene.alive(bot)
        said = "\n".join(text_of(s) for s in back.statuses(BOT_TOKEN))
        return all(body.splitlines()[0] in said for body in bodies)

    wait_for(caught_up, 60, "what was said while down to reach the instance", interval=0.3)

    # 6. The backlog is served: the instance's incident resolves in its own thread.
    scene.sidekiq.start_worker(["push"], 2)

    def resolved_here() -> bool:
        scene.alive(bot)
        return any(s["in_reply_to_id"] == notice["id"] and "Resolved" in s["content"]
                   for s in back.statuses(BOT_TOKEN))

    wait_for(resolved_here, 90, "the resolution in the instance's thread", interval=0.3)
    bot.send_signal(signal.SIGTERM)
    assert bot.wait(30) == 0, scene.log()

    # The fallback: one notice, one resolution, one thread, nothing before the outage.
    told = fallback.statuses(BOT_TOKEN)
    assert len(told) == 2, [text_of(s) for s in told]
    first, last = told
    assert [first["in_reply_to_id"], last["in_reply_to_id"]] == [None, first["id"]]
    assert all(stamp(s) >= outage for s in told)
    assert "cannot be reached since" in text_of(first) and PAGE_URL in text_of(first)
    assert "can be reached again" in text_of(last)
    assert fallback.request("GET", "/api/v1/_mock/faults")[1] == [], "a fault never fired"
    store = Store(scene.workdir / "state" / "statusbot.sqlite3")
    try:
        queued = {i.post.kind.value: i for i in store.items()
                  if i.post.destination.startswith("fallback:")}
    finally:
        store.close()
    assert sorted(queued) == ["notice", "resolution"]
    assert queued["notice"].attempts == 3  # two 503s, then taken
    assert queued["resolution"].attempts == 2  # a 429, then taken after its reset
    fallback.stop()
    assert_posted_once(told, scene.workdir / "fallback.db")

    # The instance: its own thread; what was composed while it was down, posted once back.
    statuses = back.statuses(BOT_TOKEN)
    thread = members(statuses)
    assert thread[0]["id"] == notice["id"]
    assert [s["in_reply_to_id"] for s in thread[1:]] == [notice["id"]] * (len(thread) - 1)
    late = [s for s in thread if stamp(s) >= since_back]
    for body in bodies[1:]:
        assert [s for s in late if body.splitlines()[0] in text_of(s)], body
    assert not any("cannot be reached" in s["content"] for s in statuses)
    back.stop()
    assert_posted_once(statuses, scene.workdir / "instance.db")
