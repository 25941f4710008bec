"""Commands by mention end to end: ``statusbot run`` against mastodon-mock and redis-server.

Seeded accounts: the local admin ``ops``, a local member ``bob``, a remote
``ops@evil.example`` with the admin's username, and a bot account. Each sends
commands by direct mention; only the admin's act, replies come back direct,
every mention is answered once, and the admin's actions are in the audit.
Maintenance and confirm mode run with durations of seconds.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.integration.conftest import need
from tests.integration.mastodon_mock import (
    ADMIN_TOKEN,
    ADMIN_USERNAME,
    BOT_TOKEN,
    MastodonMock,
    missing,
)
from tests.integration.servers import RedisServer, wait_for

pytestmark = pytest.mark.integration

TOKEN_ENV = "STATUSBOT_CMD_TOKEN"
ACCOUNTS: list[dict[str, Any]] = [
    {"username": "bob", "access_token": "bob-token"},
    {"username": ADMIN_USERNAME, "domain": "evil.example", "access_token": "evil-token"},
    {"username": "otherbot", "bot": True, "access_token": "otherbot-token"},
]
TOKENS = {"ops": ADMIN_TOKEN, "bob": "bob-token", "ops@evil.example": "evil-token",
          "otherbot": "otherbot-token"}


def text(status: dict[str, Any]) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", status["content"])).strip()


@dataclass
class Setup:
    redis: RedisServer
    mock: MastodonMock
    config: Path
    workdir: Path
    bots: list[subprocess.Popen[str]] = field(default_factory=list)

    def start(self) -> subprocess.Popen[str]:
        with (self.workdir / "bot.log").open("a") as log:
            bot = subprocess.Popen(
                [sys.executable, "-m", "bot", "run", "-v", "--config", str(self.config)],
                env={**os.environ, TOKEN_ENV: BOT_TOKEN}, stdout=log,
                stderr=subprocess.STDOUT, text=True)
        self.bots.append(bot)
        wait_for(lambda: "answering mentions" in self.log(), 60, "the mention intake")
        return bot

    def log(self) -> str:
        path = self.workdir / "bot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def say(self, who: str, command: str, visibility: str = "direct") -> str:
        """Post a mention of the bot as ``who``; return the status id."""
        status, body = self.mock.request(
            "POST", "/api/v1/statuses", token=TOKENS[who],
            form=[("status", f"@statusbot {command}"), ("visibility", visibility)])
        assert status == 200, body
        return str(body["id"])

    def bot_statuses(self) -> list[dict[str, Any]]:
        return self.mock.statuses(BOT_TOKEN)

    def replies_to(self, status_id: str) -> list[dict[str, Any]]:
        return [s for s in self.bot_statuses() if s["in_reply_to_id"] == status_id]


def config_text(redis_url: str, mock_url: str, state: Path, extra: str = "") -> str:
    return f"""
[redis]
url = "{redis_url}"

[bot]
interval = 1
state_dir = "{state}"

[mastodon]
api_base_url = "{mock_url}"
access_token_env = "{TOKEN_ENV}"
admins = ["{ADMIN_USERNAME}"]
request_timeout = 3
retry_after = 1
retry_max = 4
probe_health = false

[posts]
status_every = 0

[reports]  # not under test here: no digest whatever the day
weekly = "off"
monthly = "off"

[commands]
backfill_every = 2
{extra}
"""


@pytest.fixture
def setup(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Setup]:
    need(None if shutil.which("redis-server") else "redis-server is not installed")
    need(missing())
    server = RedisServer(tmp_path)
    mock = MastodonMock(tmp_path, extra_accounts=ACCOUNTS)
    extra = getattr(request, "param", "")
    config = tmp_path / "statusbot.toml"
    config.write_text(config_text(server.url, mock.url, tmp_path / "state", extra))
    ready = Setup(server, mock, config, tmp_path)
    try:
        yield ready
    finally:
        for bot in ready.bots:
            if bot.poll() is None:
                bot.kill()
                bot.wait()
        mock.stop()
        server.stop()


def stop(setup: Setup, bot: subprocess.Popen[str]) -> None:
    bot.send_signal(signal.SIGTERM)
    assert bot.wait(30) == 0, setup.log()[-3000:]


CASES = [
    # (who, command, answered, reply starts with, acts)
    ("ops", "help", True, "@ops Admin commands", False),
    ("ops", "queues", True, "@ops All normal", False),
    ("ops", "incident Media uploads fail; we are on it.", True, "@ops Posted to members", True),
    ("bob", "status", True, "@bob ", False),
    ("bob", "incident fake outage", True, "@bob Sorry, only the admins", False),
    ("ops@evil.example", "incident fake outage", True, "@ops@evil.example Sorry", False),
    ("ops@evil.example", "resolve", True, "@ops@evil.example Sorry", False),
    ("otherbot", "status", False, "", False),
    ("ops", "resolve Uploads work again.", True, "@ops Resolved in the thread", True),
]


def test_only_the_admin_acts_and_everyone_gets_one_answer(setup: Setup) -> None:
    """Admin by id and full acct; namesakes, members and bots cannot act."""
    bot = setup.start()
    asked: list[tuple[str, bool, str, str]] = []
    for who, command, answered, starts, _ in CASES:
        status_id = setup.say(who, command)
        asked.append((status_id, answered, starts, who))
        if answered:  # in order, so that incident/resolve happen in sequence
            wait_for(lambda sid=status_id: bool(setup.replies_to(sid)), 30,  # type: ignore[misc]
                     f"the reply to {who}: {command}", interval=0.2)
    time.sleep(3)  # a backfill round: nothing answered twice, the bot not at all
    for status_id, answered, starts, who in asked:
        replies = setup.replies_to(status_id)
        assert len(replies) == (1 if answered else 0), (who, [text(r) for r in replies])
        if answered:
            assert text(replies[0]).startswith(starts), text(replies[0])
            assert replies[0]["visibility"] == "direct"
    members = [s for s in setup.bot_statuses() if s["visibility"] == "public"]
    assert [text(s).split(".")[0] for s in members] == [
        "Media uploads fail; we are on it", "Resolved after less than a minute: 127"]
    assert members[1]["in_reply_to_id"] == members[0]["id"]
    stop(setup, bot)
    audit = subprocess.run([sys.executable, "-m", "bot", "audit", "--config", str(setup.config)],
                           env={**os.environ, TOKEN_ENV: BOT_TOKEN}, capture_output=True,
                           text=True, check=True).stdout
    assert re.search(r"@?ops\b.*incident", audit), audit
    assert "ops@evil.example" in audit and "refused" in audit, audit
    assert "bob" in audit


@pytest.mark.parametrize("setup", ['incident_mode = "confirm"\nconfirm_delay = 3600'],
                         indirect=True)
def test_confirm_mode_publishes_only_on_confirm(setup: Setup) -> None:
    """A new incident's notice waits for the admin's confirm; the DM says so."""
    client = redis.Redis(port=setup.redis.port, decode_responses=True)
    identity = "web1:1:0123456789ab"
    client.sadd("queues", "push")
    client.lpush("queue:push", json.dumps({"class": "X", "queue": "push", "args": [],
                                           "enqueued_at": time.time() - 7200}))
    client.sadd("processes", identity)
    client.hset(identity, mapping={"info": json.dumps({"hostname": "web1", "pid": 1,
                                                       "queues": ["default"], "concurrency": 5,
                                                       "version": "7.3.9"}),
                                   "busy": 0, "beat": time.time(), "quiet": "false"})
    setup.config.write_text(setup.config.read_text() + """
[health.queue_latency.push]
warning = 5
critical = 10
for = 0
[health.unserved]
warning = 3600
critical = 7200
""")
    bot = setup.start()
    wait_for(lambda: any("Members are not told yet" in text(s) for s in setup.bot_statuses()),
             30, "the draft for the admins", interval=0.3)
    client.hset(identity, "beat", time.time())
    assert not [s for s in setup.bot_statuses() if s["visibility"] == "public"]
    setup.say("ops", "confirm")
    wait_for(lambda: any(s["visibility"] == "public" for s in setup.bot_statuses()), 30,
             "the confirmed notice", interval=0.3)
    notices = [s for s in setup.bot_statuses() if s["visibility"] == "public"]
    assert len(notices) == 1 and "other servers" in text(notices[0])
    stop(setup, bot)


def test_maintenance_announced_started_and_ended(setup: Setup) -> None:
    """`maintenance +2s 3s …`: announcement now, then start and end in its thread."""
    bot = setup.start()
    setup.say("ops", "maintenance +2s 3s database upgrade")

    def maintenance_posts() -> list[dict[str, Any]]:
        return [s for s in setup.bot_statuses()
                if s["visibility"] == "public" and s["spoiler_text"] == "Planned maintenance"]

    wait_for(lambda: len(maintenance_posts()) == 3, 40, "announcement, start and end",
             interval=0.3)
    announce, started, ended = maintenance_posts()
    assert "database upgrade" in text(announce)
    assert text(started).startswith("Maintenance has started")
    assert text(ended).startswith("Maintenance is over")
    assert started["in_reply_to_id"] == ended["in_reply_to_id"] == announce["id"]
    stop(setup, bot)


EVERY_COMMAND = ["help", "status", "queues", "memory", "processes", "report", "confirm",
                 "incident Media uploads fail.", "update A disk is being replaced.", "ack",
                 "silence 1h queue:pull", "unsilence", "maintenance +1h 10m database upgrade",
                 "resolve Uploads work again.", "frobnicate"]
ADMIN_ONLY = {"queues", "memory", "processes", "report", "incident", "update", "ack",
              "silence", "unsilence", "maintenance", "resolve"}


@pytest.mark.parametrize("setup", ["replies_per_account = 100\nreplies_per_hour = 1000"],
                         indirect=True)
def test_each_account_sends_each_command(setup: Setup) -> None:
    """Admin, member, remote namesake and bot each send every command; only the admin acts."""
    bot = setup.start()
    for command in EVERY_COMMAND:
        for who in ("bob", "ops@evil.example", "otherbot", "ops"):
            status_id = setup.say(who, command)
            if who == "otherbot":
                continue
            wait_for(lambda sid=status_id: bool(setup.replies_to(sid)), 30,  # type: ignore[misc]
                     f"the reply to {who}: {command}", interval=0.2)
            (answer,) = setup.replies_to(status_id)
            assert answer["visibility"] == "direct"
            said = text(answer)
            refused = "Sorry, only the admins" in said
            word = command.split()[0]
            assert refused == (who != "ops" and word in ADMIN_ONLY), (who, command, said)
    members = [text(s).split(".")[0] for s in setup.bot_statuses()
               if s["visibility"] == "public"]
    assert len(members) == 4, members
    assert members[:2] == ["Media uploads fail", "A disk is being replaced"], members
    assert members[2].startswith("Planned maintenance from"), members
    assert members[3] == "Resolved after less than a minute: 127", members
    replied_to_bot = [s for s in setup.bot_statuses()
                      if "@otherbot" in text(s)]
    assert replied_to_bot == []
    stop(setup, bot)


def audit_without_token(setup: Setup) -> str:
    """`statusbot audit` as an operator runs it: no access token in the environment."""
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
    return subprocess.run([sys.executable, "-m", "bot", "audit", "-n", "9" * 30, "--config",
                           str(setup.config)], env=env, capture_output=True, text=True,
                          check=True).stdout


@pytest.mark.parametrize("setup", ["replies_per_account = 2\nreplies_per_hour = 4"],
                         indirect=True)
def test_spent_reply_limits_never_stop_the_admin(setup: Setup) -> None:
    """Members spend the account and global limits; all six admin commands still run."""
    bot = setup.start()
    answered = [setup.say("bob", "status"), setup.say("bob", "status"),
                setup.say("ops@evil.example", "status"),
                setup.say("ops@evil.example", "status")]
    for status_id in answered:
        wait_for(lambda sid=status_id: bool(setup.replies_to(sid)), 30,  # type: ignore[misc]
                 "the members' replies", interval=0.2)
    dropped = setup.say("bob", "status")
    wait_for(lambda: "from @bob not answered" in setup.log(), 30, "bob rate limited",
             interval=0.2)
    commands = ["incident Uploads fail.", "update A disk is being replaced.", "ack",
                "queues", "update The disk is replaced.", "resolve Uploads work again."]
    for command in commands:  # one after the other: each must have run for the next
        status_id = setup.say("ops", command)
        wait_for(lambda sid=status_id: bool(setup.replies_to(sid)), 30,  # type: ignore[misc]
                 f"the reply to ops: {command}", interval=0.2)
    public = [s for s in setup.bot_statuses() if s["visibility"] == "public"]
    [notice] = [s for s in public if text(s).startswith("Uploads fail")]
    thread = [notice, *(s for s in public if s["in_reply_to_id"] == notice["id"])]
    assert [text(s).split(".")[0] for s in thread] == [
        "Uploads fail", "A disk is being replaced", "The disk is replaced",
        "Resolved after less than a minute: 127"]
    assert setup.replies_to(dropped) == []
    stop(setup, bot)
    audit = audit_without_token(setup)
    assert re.search(r"@bob .* status\s+-> dropped: rate limited: account", audit), audit
    over = re.findall(r"@ops \(\d+\)  (\w+) .*\(reply over the limit: \w+\)$", audit,
                      re.MULTILINE)
    assert over == [c.split()[0] for c in commands], audit


def test_lost_state_replays_no_earlier_command(setup: Setup) -> None:
    """A fresh state dir answers no mention from before its start, and a new one at once."""
    bot = setup.start()
    incident = setup.say("ops", "incident Uploads fail.")
    wait_for(lambda: bool(setup.replies_to(incident)), 30, "the incident's reply", interval=0.2)
    question = setup.say("bob", "status")
    wait_for(lambda: bool(setup.replies_to(question)), 30, "bob's reply", interval=0.2)
    stop(setup, bot)
    shutil.rmtree(setup.workdir / "state")
    (setup.workdir / "bot.log").unlink()
    bot = setup.start()
    after = setup.say("bob", "status")
    wait_for(lambda: bool(setup.replies_to(after)), 30, "the new mention's reply",
             interval=0.2)
    time.sleep(3)  # a backfill round: an earlier mention answered again would show by now
    assert [len(setup.replies_to(s)) for s in (incident, question, after)] == [1, 1, 1]
    notices = [s for s in setup.bot_statuses()
               if s["visibility"] == "public" and text(s).startswith("Uploads fail")]
    assert len(notices) == 1
    assert "2 earlier mention(s) left alone" in setup.log()
    stop(setup, bot)
