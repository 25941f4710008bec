"""``statusbot run`` end to end: real redis-server, real Sidekiq, mastodon-mock as the instance.

Real Sidekiq (Debian's 6.4) enqueues a backlog with no worker running; the
bot, run as a user would run it, opens an incident (a pinned public notice and
an admin DM); a real worker then drains the queue and the bot resolves the
incident in the same thread and unpins the notice. The same scenario runs
under faults injected into mastodon-mock and with the bot SIGKILLed and
restarted mid-delivery; every expected post must appear exactly once, in
thread order. Redis stopped and restarted during a run gives one incident.
"""

from __future__ import annotations

import http.server
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import need
from tests.integration.mastodon_mock import (
    ADMIN_USERNAME,
    BOT_TOKEN,
    MastodonMock,
    missing,
)
from tests.integration.servers import RedisServer, Sidekiq, sidekiq_root, wait_for

pytestmark = pytest.mark.integration

JARGON = re.compile(r"sidekiq|redis|queue|latency|\bpush\b|ingress|\brss\b|swap", re.IGNORECASE)
TOKEN_ENV = "STATUSBOT_E2E_TOKEN"


def config_text(redis_url: str, mock_url: str, state: Path, *, retry: float = 1.0) -> str:
    """A config with thresholds of seconds, so a real backlog trips them quickly."""
    return f"""
[redis]
url = "{redis_url}"
socket_timeout = 1

[bot]
interval = 0.5
state_dir = "{state}"

[mastodon]
api_base_url = "{mock_url}"
access_token_env = "{TOKEN_ENV}"
admins = ["{ADMIN_USERNAME}"]
request_timeout = 2
retry_after = {retry}
retry_max = {retry * 4}
probe_health = false

[posts]
status_every = 0
profile_field = true

[reports]  # not under test here: no digest whatever the day
weekly = "off"
monthly = "off"

[health.queue_latency.push]
warning = 2
critical = 4
for = 0
clear = 1
clear_for = 1

[health.unserved]
warning = 3600
critical = 7200

[health.redis_unreachable]
warning = 1
critical = 2
clear_for = 1

"""


@dataclass
class Instance:
    """The servers of one scenario and the bot's config."""

    redis: RedisServer
    mock: MastodonMock
    sidekiq: Sidekiq
    config: Path
    workdir: Path
    bots: list[subprocess.Popen[str]] = field(default_factory=list)

    def start_bot(self) -> subprocess.Popen[str]:
        with (self.workdir / "bot.log").open("a") as log:
            bot = subprocess.Popen(
                [sys.executable, "-m", "bot", "run", "--config", str(self.config)],
                env={**os.environ, TOKEN_ENV: BOT_TOKEN}, stdout=log, stderr=subprocess.STDOUT,
                text=True,
            )
        self.bots.append(bot)
        return bot

    def log(self) -> str:
        path = self.workdir / "bot.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def statuses(self) -> list[dict[str, Any]]:
        return self.mock.statuses(BOT_TOKEN)

    def pinned(self) -> list[str]:
        return [s["id"] for s in self.mock.statuses(BOT_TOKEN, pinned=True)]


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[Instance]:
    need(None if shutil.which("redis-server") else "redis-server is not installed")
    need(missing())
    root, problem = sidekiq_root(6)
    if problem is not None:
        root, problem = sidekiq_root(7)
    need(problem)
    redis = RedisServer(tmp_path)
    mock = MastodonMock(tmp_path)
    sidekiq = Sidekiq(root, redis.url)
    config = tmp_path / "statusbot.toml"
    config.write_text(config_text(redis.url, mock.url, tmp_path / "state"))
    instance = Instance(redis, mock, sidekiq, config, tmp_path)
    try:
        yield instance
    finally:
        for bot in instance.bots:  # a failed test must not leave a bot running
            if bot.poll() is None:
                bot.kill()
                bot.wait()
        sidekiq.stop()
        mock.stop()
        redis.stop()


def stop(bot: subprocess.Popen[str]) -> int:
    """SIGTERM the bot and return its exit status."""
    bot.send_signal(signal.SIGTERM)
    return bot.wait(30)


def member_posts(statuses: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s for s in statuses if s["visibility"] in {"public", "unlisted"}]


def wait_for_notice(instance: Instance, bot: subprocess.Popen[str]) -> dict[str, Any]:
    def noticed() -> bool:
        assert bot.poll() is None, instance.log()
        return any(s["visibility"] == "public" for s in instance.statuses())

    wait_for(noticed, 60, "the incident notice", interval=0.3)
    return member_posts(instance.statuses())[0]


def drain_and_wait_for_resolution(instance: Instance, bot: subprocess.Popen[str] | None,
                                  notice: dict[str, Any]) -> None:
    instance.sidekiq.start_worker(["push"], 2)

    def resolved() -> bool:
        if bot is not None:
            assert bot.poll() is None, instance.log()
        return any(s["in_reply_to_id"] == notice["id"] and "Resolved" in s["content"]
                   for s in instance.statuses())

    wait_for(resolved, 90, "the resolution in the notice's thread", interval=0.3)
    wait_for(lambda: notice["id"] not in instance.pinned(), 30, "the notice to be unpinned")


def assert_one_incident_thread(statuses: list[dict[str, Any]]) -> None:
    """One pinned-then-unpinned notice, its replies in order, admin DMs, no duplicate."""
    members = member_posts(statuses)
    notice, *replies = members
    assert notice["in_reply_to_id"] is None
    assert notice["spoiler_text"] and notice["language"] == "en"
    assert "other servers" in notice["content"]
    assert [r["in_reply_to_id"] for r in replies] == [notice["id"]] * len(replies)
    assert "Resolved" in replies[-1]["content"]
    for status in members:
        assert not JARGON.search(status["content"] + status["spoiler_text"]), status["content"]
    texts = [s["content"] for s in statuses]
    assert len(texts) == len(set(texts)), "a post was published twice"
    admin = [s for s in statuses if s["visibility"] == "direct"]
    assert len(admin) >= 2
    assert all(f"@{ADMIN_USERNAME}" in s["content"] for s in admin)
    assert any("queue:push" in s["content"] for s in admin)


def backlog(instance: Instance, jobs: int = 50) -> None:
    """Real Sidekiq enqueues a backlog on the push queue; no worker runs."""
    instance.sidekiq.enqueue([{"class": "OkJob", "queue": "push", "count": jobs}])
    time.sleep(4.5)  # older than the critical level before the bot starts


def test_incident_opens_and_resolves_in_one_thread(instance: Instance) -> None:
    """Notice + admin DM, pinned; drained by a real worker; resolved in the thread, unpinned."""
    backlog(instance)
    bot = instance.start_bot()
    notice = wait_for_notice(instance, bot)
    wait_for(lambda: notice["id"] in instance.pinned(), 30, "the notice to be pinned")
    assert any(s["visibility"] == "direct" for s in instance.statuses())
    drain_and_wait_for_resolution(instance, bot, notice)
    healthcheck = subprocess.run(
        [sys.executable, "-m", "bot", "healthcheck", "--config", str(instance.config)],
        capture_output=True, text=True, check=False, env={**os.environ, TOKEN_ENV: BOT_TOKEN})
    assert healthcheck.returncode == 0, healthcheck.stdout + healthcheck.stderr
    assert stop(bot) == 0, instance.log()
    assert_one_incident_thread(instance.statuses())
    fields = {f["name"]: f["value"] for f in instance.mock.account(BOT_TOKEN)["fields"]}
    assert "Status" in fields
    assert instance.mock.account(BOT_TOKEN)["bot"] is True


def reset_in(seconds: float) -> str:
    """An ISO 8601 reset time, as real Mastodon sends it."""
    moment = datetime.now(timezone.utc) + timedelta(seconds=seconds)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


FAULTS: dict[str, list[dict[str, Any]]] = {
    "503-burst": [{"effect": {"type": "status", "status": 503}, "count": 3}],
    "timeout": [{"effect": {"type": "timeout"}, "count": 1}],
    "429-with-reset": [{"effect": {"type": "ratelimit",
                                   "headers": {"X-RateLimit-Reset": "RESET"}}, "count": 1}],
    "mixed": [{"effect": {"type": "status", "status": 502}, "count": 1},
              {"effect": {"type": "timeout"}, "count": 1},
              {"effect": {"type": "status", "status": 504}, "count": 1}],
}


@pytest.mark.parametrize("faults", sorted(FAULTS))
def test_faults_on_posting(instance: Instance, faults: str) -> None:
    """Under 5xx bursts, timeouts and a 429 every post still appears exactly once, in order."""
    for rule in FAULTS[faults]:
        body = {**rule, "match": {"methods": ["POST"], "path": "/api/v1/statuses"}}
        if "headers" in body["effect"]:
            body["effect"] = {**body["effect"], "headers": {"X-RateLimit-Reset": reset_in(2)}}
        instance.mock.fault(body)
    backlog(instance)
    bot = instance.start_bot()
    notice = wait_for_notice(instance, bot)
    drain_and_wait_for_resolution(instance, bot, notice)
    assert stop(bot) == 0, instance.log()
    assert_one_incident_thread(instance.statuses())
    assert instance.mock.request("GET", "/api/v1/_mock/faults")[1] == [], "a fault never fired"


def test_sigkill_mid_delivery_and_restart(instance: Instance) -> None:
    """Killed while a post is in flight and restarted: nothing lost, nothing twice."""
    instance.mock.fault({"match": {"methods": ["POST"], "path": "/api/v1/statuses"},
                         "effect": {"type": "latency", "delay_ms": 1500}, "count": 2})
    backlog(instance)
    bot = instance.start_bot()
    time.sleep(1.2)  # the first post's request is being held by the server
    bot.send_signal(signal.SIGKILL)
    bot.wait(10)
    bot = instance.start_bot()
    notice = wait_for_notice(instance, bot)
    bot.send_signal(signal.SIGKILL)  # and once more, between the notice and the resolution
    bot.wait(10)
    instance.sidekiq.start_worker(["push"], 2)
    bot = instance.start_bot()
    drain_and_wait_for_resolution(instance, bot, notice)
    assert stop(bot) == 0, instance.log()
    assert_one_incident_thread(instance.statuses())
    assert instance.mock.request("GET", "/api/v1/_mock/faults")[1] == [], "a fault never fired"


def test_redis_restart_is_one_incident(instance: Instance) -> None:
    """Redis stopped and restarted: one incident for it, no storm of queue alerts."""
    instance.sidekiq.start_worker(["push", "default"], 2)
    time.sleep(2)
    bot = instance.start_bot()
    time.sleep(2)
    port = instance.redis.port
    instance.redis.stop()
    notice = wait_for_notice(instance, bot)
    assert "Background work has stopped" in notice["content"], notice["content"]
    time.sleep(3)
    restarted = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
         "--appendonly", "no", "--dir", str(instance.workdir)],
        stdout=subprocess.DEVNULL)
    try:
        def resolved() -> bool:
            assert bot.poll() is None, instance.log()
            return any(s["in_reply_to_id"] == notice["id"] and "Resolved" in s["content"]
                       for s in instance.statuses())

        wait_for(resolved, 60, "the resolution after Redis is back", interval=0.3)
        assert stop(bot) == 0, instance.log()
    finally:
        restarted.kill()
        restarted.wait()
    members = member_posts(instance.statuses())
    thread = "\n---\n".join(s["content"] for s in members)
    # One incident: one notice, every other member post in its thread (it may say the
    # outage got worse once it passed the critical level), none about delays.
    assert [s["in_reply_to_id"] for s in members[1:]] == [notice["id"]] * (len(members) - 1)
    assert len(members) <= 3, thread
    assert "late" not in thread and "delayed" not in thread, thread
    admin = [s["content"] for s in instance.statuses() if s["visibility"] == "direct"]
    assert not any("queue:" in text for text in admin), admin


def test_dry_run_prints_and_sends_nothing(instance: Instance) -> None:
    """--dry-run with a configured instance prints posts and decisions, posts nothing."""
    backlog(instance)
    result = subprocess.run(
        [sys.executable, "-m", "bot", "run", "--dry-run", "--once", "--config",
         str(instance.config)],
        env={**os.environ, TOKEN_ENV: BOT_TOKEN}, capture_output=True, text=True, timeout=60,
        check=False)
    assert result.returncode == 0, result.stderr
    assert "public, new thread" in result.stdout and "CW: Service notice" in result.stdout
    assert "finding queue:push critical" in result.stdout
    assert "event opened" in result.stdout
    assert instance.statuses() == []
    assert not (instance.workdir / "state").exists()


@pytest.mark.parametrize("meanwhile", [
    pytest.param("still-broken", id="still-broken"),
    pytest.param("fixed", id="fixed-meanwhile"),
])
def test_state_dir_deleted_between_runs_keeps_one_thread(instance: Instance,
                                                         meanwhile: str) -> None:
    """Stopped, state dir deleted, restarted: no second notice; the pinned one closes once."""
    backlog(instance)
    bot = instance.start_bot()
    notice = wait_for_notice(instance, bot)
    wait_for(lambda: notice["id"] in instance.pinned(), 30, "the notice to be pinned")
    assert stop(bot) == 0, instance.log()
    shutil.rmtree(instance.workdir / "state")
    if meanwhile == "fixed":
        instance.sidekiq.start_worker(["push"], 2)
        wait_for(lambda: instance.sidekiq.api()["enqueued"] == 0, 60, "the queue to drain")
    bot = instance.start_bot()
    if meanwhile == "fixed":
        wait_for(lambda: notice["id"] not in instance.pinned(), 60, "the notice to be unpinned")
    else:
        time.sleep(3)  # a few ticks with the incident still there
        drain_and_wait_for_resolution(instance, bot, notice)
    assert stop(bot) == 0, instance.log()
    statuses = instance.statuses()
    members = member_posts(statuses)
    assert [s["id"] for s in members if s["in_reply_to_id"] is None] == [notice["id"]], \
        "a second notice was posted"
    closing = [s for s in members if "Resolved" in s["content"]]
    assert len(closing) == 1 and closing[0]["in_reply_to_id"] == notice["id"], closing
    assert instance.pinned() == []
    if meanwhile == "still-broken":
        assert_one_incident_thread(statuses)
    adopted = [s for s in statuses if "found its pinned notice" in s["content"]]
    assert len(adopted) == 1 and adopted[0]["visibility"] == "direct", adopted


def test_state_dir_deleted_while_running_is_noticed(instance: Instance) -> None:
    """The state dir deleted under a running bot: admins told once, healthcheck unhealthy."""
    bot = instance.start_bot()
    beat = instance.workdir / "state" / "last-tick"
    wait_for(beat.exists, 30, "a completed tick")
    shutil.rmtree(instance.workdir / "state")

    def told() -> bool:
        assert bot.poll() is None, instance.log()
        return any("was deleted" in s["content"] for s in instance.statuses())

    wait_for(told, 30, "the admin message about the lost state file", interval=0.3)
    time.sleep(2)  # more ticks: still one message
    healthcheck = subprocess.run(
        [sys.executable, "-m", "bot", "healthcheck", "--config", str(instance.config)],
        capture_output=True, text=True, check=False, env={**os.environ, TOKEN_ENV: BOT_TOKEN})
    assert stop(bot) == 0, instance.log()
    assert healthcheck.returncode == 1, healthcheck.stdout
    assert "was deleted" in healthcheck.stdout, healthcheck.stdout
    told_admins = [s for s in instance.statuses() if "was deleted" in s["content"]]
    assert len(told_admins) == 1 and told_admins[0]["visibility"] == "direct", told_admins


class _NotFound(http.server.BaseHTTPRequestHandler):
    """Any request: 404 with a JSON body, like a web server in front of no Mastodon."""

    def _answer(self) -> None:
        body = b'{"error":"Record not found"}'
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

    def log_message(self, format: str, *args: object) -> None:
        del format, args


def test_wrong_instance_url_then_fixed_publishes_the_notice_once(instance: Instance) -> None:
    """An api_base_url where no Mastodon answers: posts 404 and wait (said once); fixed, once."""
    wrong = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotFound)
    threading.Thread(target=wrong.serve_forever, daemon=True).start()
    instance.config.write_text(config_text(
        instance.redis.url, f"http://127.0.0.1:{wrong.server_address[1]}",
        instance.workdir / "state"))
    backlog(instance)
    try:
        bot = instance.start_bot()
        wait_for(lambda: "api_base_url" in instance.log(), 60, "the 404 to be noticed",
                 interval=0.3)
        time.sleep(4)  # a few more backoff rounds at the wrong URL
        assert bot.poll() is None, instance.log()
        assert instance.statuses() == []
        assert stop(bot) == 0, instance.log()
    finally:
        wrong.shutdown()
        wrong.server_close()
    assert instance.log().count("has no such API endpoint") == 1, instance.log()
    listed = subprocess.run(
        [sys.executable, "-m", "bot", "outbox", "--config", str(instance.config)],
        env={**os.environ, TOKEN_ENV: BOT_TOKEN}, capture_output=True, text=True, timeout=60,
        check=False)
    assert listed.returncode == 0, listed.stderr
    assert "pending" in listed.stdout and "failed " not in listed.stdout, listed.stdout
    instance.config.write_text(config_text(instance.redis.url, instance.mock.url,
                                           instance.workdir / "state"))
    bot = instance.start_bot()
    notice = wait_for_notice(instance, bot)
    drain_and_wait_for_resolution(instance, bot, notice)
    assert stop(bot) == 0, instance.log()
    assert_one_incident_thread(instance.statuses())
