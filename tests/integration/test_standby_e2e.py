"""A standby bot end to end: two ``statusbot run``, one account, a lease in a real Redis.

Issue 11 §4. Real redis-server with the README's ACL user for the lease, a
real Sidekiq backlog (so an incident is open), mastodon-mock, and two
``statusbot run`` subprocesses with ``[bot] standby = true`` and state
directories of their own. The leader posts the notice and is SIGKILLed; the
backlog is served; the standby takes over within two intervals (measured and
printed) and resolves the incident in the leader's thread, unpinning the
notice. Every status on the mock exactly once. The old leader, started again,
stays standby and posts nothing.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bot.defaults import LEADER_KEY
from bot.loop import heartbeat_role
from tests.integration.conftest import need
from tests.integration.mastodon_mock import ADMIN_USERNAME, BOT_TOKEN, MastodonMock, missing
from tests.integration.servers import RedisServer, Sidekiq, readme_acl, sidekiq_root, wait_for
from tests.integration.test_outage_e2e import assert_posted_once, members

pytestmark = pytest.mark.integration

TOKEN_ENV = "STATUSBOT_E2E_TOKEN"
AGENT_ENV = "STATUSBOT_E2E_AGENT_PASSWORD"
AGENT_PASSWORD = "agent-secret-e2e"
INTERVAL = 0.5


def config_text(redis_url: str, instance: str, state: Path) -> str:
    """Thresholds of seconds; nothing that depends on the day or hour the test runs."""
    return f"""
[redis]
url = "{redis_url}"
socket_timeout = 1

[bot]
interval = {INTERVAL}
state_dir = "{state}"
standby = true

[agent]
username = "statusbot-agent"
password_env = "{AGENT_ENV}"

[mastodon]
api_base_url = "{instance}"
access_token_env = "{TOKEN_ENV}"
admins = ["{ADMIN_USERNAME}"]
request_timeout = 2
retry_after = 1
retry_max = 2
probe_health = false

[posts]
status_every = 0
profile_field = false

[reports]  # no digest whatever the day
weekly = "off"
monthly = "off"

[health.queue_latency.push]
warning = 1
critical = 2
for = 0
clear = 1
clear_for = 1

[health.unserved]
warning = 3600
critical = 7200
"""


@dataclass
class Scene:
    """The servers, the two bots' configs and the bots started."""

    workdir: Path
    redis: RedisServer
    sidekiq: Sidekiq
    instance: MastodonMock
    bots: list[subprocess.Popen[str]] = field(default_factory=list)

    def config(self, name: str) -> Path:
        path = self.workdir / f"{name}.toml"
        if not path.exists():
            path.write_text(config_text(self.redis.url, self.instance.url, self.workdir / name))
        return path

    def start_bot(self, name: str) -> subprocess.Popen[str]:
        with (self.workdir / f"{name}.log").open("a") as log:
            bot = subprocess.Popen(
                [sys.executable, "-m", "bot", "run", "--config", str(self.config(name))],
                env={**os.environ, TOKEN_ENV: BOT_TOKEN, AGENT_ENV: AGENT_PASSWORD},
                stdout=log, stderr=subprocess.STDOUT, text=True)
        self.bots.append(bot)
        return bot

    def log(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace")[-6000:] if path.exists() else ""

    def alive(self, bot: subprocess.Popen[str], name: str) -> None:
        assert bot.poll() is None, self.log(name)

    def leader(self) -> str | None:
        value = self.redis.client().get(LEADER_KEY)
        return None if value is None else str(value)

    def role(self, name: str) -> str | None:
        return heartbeat_role(self.workdir / name / "last-tick")


def held_by(value: str | None, bot: subprocess.Popen[str]) -> bool:
    """The lease id is hostname:pid:random."""
    return value is not None and value.split(":")[-2] == str(bot.pid)


@pytest.fixture
def scene(tmp_path: Path) -> Iterator[Scene]:
    need(None if shutil.which("redis-server") else "redis-server is not installed")
    need(missing())
    root, problem = sidekiq_root(6)
    if problem is not None:
        root, problem = sidekiq_root(7)
    need(problem)
    (tmp_path / "instance").mkdir()
    redis = RedisServer(tmp_path)
    mock: MastodonMock | None = None
    sidekiq: Sidekiq | None = None
    scene: Scene | None = None
    try:
        redis.client().execute_command(*readme_acl("statusbot-agent", AGENT_PASSWORD))  # type: ignore[no-untyped-call]
        mock = MastodonMock(tmp_path / "instance", database=tmp_path / "instance.db")
        sidekiq = Sidekiq(root, redis.url)
        scene = Scene(tmp_path, redis, sidekiq, mock)
        yield scene
    finally:
        for bot in scene.bots if scene is not None else []:
            if bot.poll() is None:
                bot.kill()
                bot.wait()
        if sidekiq is not None:
            sidekiq.stop()
        if mock is not None:
            mock.stop()
        redis.stop()


def test_standby_takes_over_and_resolves_in_the_same_thread(scene: Scene) -> None:
    """SIGKILL the leader after the notice: the standby resolves in its thread, each post once."""
    instance = scene.instance
    scene.sidekiq.enqueue([{"class": "OkJob", "queue": "push", "count": 50}])
    first = scene.start_bot("a")
    wait_for(lambda: held_by(scene.leader(), first), 30, "the first bot to take the lease")
    second = scene.start_bot("b")

    def noticed() -> bool:
        scene.alive(first, "a")
        return bool(members(instance.statuses(BOT_TOKEN)))

    wait_for(noticed, 60, "the incident notice from the leader", interval=0.2)
    wait_for(lambda: scene.role("b") == "standby", 30, "the second bot to stand by")
    time.sleep(4 * INTERVAL)  # the standby sees the incident for a few ticks
    [notice] = members(instance.statuses(BOT_TOKEN))
    assert [s["id"] for s in instance.statuses(BOT_TOKEN, pinned=True)] == [notice["id"]]
    assert held_by(scene.leader(), first)

    first.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    first.wait(10)
    scene.sidekiq.start_worker(["push"], 2)

    def taken_over() -> bool:
        scene.alive(second, "b")
        return held_by(scene.leader(), second)

    wait_for(taken_over, 30, "the standby to take the lease", interval=0.02)
    takeover = time.monotonic() - killed
    print(f"\nstandby took over {takeover:.2f} s after the SIGKILL "
          f"(interval {INTERVAL} s, lease {2 * INTERVAL} s)")
    # A liveness bound, not the figure: bench/standby_bench.py measures the takeover
    # against "within two intervals" (the lease's logic is tested with a pinned clock).
    assert takeover <= 10.0, scene.log("b")

    def resolved() -> bool:
        scene.alive(second, "b")
        return any(s["in_reply_to_id"] == notice["id"] and "Resolved" in s["content"]
                   for s in instance.statuses(BOT_TOKEN))

    wait_for(resolved, 60, "the resolution in the leader's thread", interval=0.2)
    wait_for(lambda: instance.statuses(BOT_TOKEN, pinned=True) == [], 30, "the unpin")
    statuses = instance.statuses(BOT_TOKEN)
    thread = members(statuses)
    assert thread[0]["id"] == notice["id"], "a second notice"
    assert [s["in_reply_to_id"] for s in thread[1:]] == [notice["id"]] * (len(thread) - 1)
    assert sum("Resolved" in s["content"] for s in thread) == 1

    # The old leader comes back: it stays standby and posts nothing.
    again = scene.start_bot("a")
    wait_for(lambda: scene.role("a") == "standby" and again.poll() is None, 30,
             "the old leader to stand by")
    time.sleep(6 * INTERVAL)
    scene.alive(again, "a")
    assert scene.role("a") == "standby" and held_by(scene.leader(), second)
    assert instance.statuses(BOT_TOKEN) == statuses, "the returning leader posted"
    for bot in (again, second):
        bot.send_signal(signal.SIGTERM)
    assert again.wait(30) == 0, scene.log("a")
    assert second.wait(30) == 0, scene.log("b")
    instance.stop()
    assert_posted_once(statuses, scene.workdir / "instance.db")
