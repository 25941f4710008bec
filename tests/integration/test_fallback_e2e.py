"""A fallback account on a second mastodon-mock while the instance's mock fails, then is gone.

The bot is built as ``statusbot run`` builds it (real Redis, real HTTP to both
servers, the instance's /health probed) and ticked with an injected clock, a
minute per tick, so the test waits for no timer. The instance's mock first
answers 502 to everything, then is stopped (connection refused), then comes
back on the same port; the fallback's mock meanwhile answers a burst of 503s
and a 429. The fallback account must show exactly one notice and one
resolution, in one thread; the instance its own posts once it is back.
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import pytest

from bot.app import build
from bot.config import load_config
from bot.loop import Bot
from tests.integration.mastodon_mock import ADMIN_USERNAME, BOT_TOKEN, MastodonMock
from tests.integration.servers import RedisServer

pytestmark = pytest.mark.integration

TOKEN_ENV = "STATUSBOT_E2E_TOKEN"
FALLBACK_ENV = "STATUSBOT_E2E_FALLBACK_TOKEN"
PAGE = "https://status.example.org"


class Clock:
    """The injected clock, started at the wall clock's second (the mocks stamp real times)."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now


def config_text(redis_url: str, instance: str, fallback: str, state: Path) -> str:
    return f"""
[redis]
url = "{redis_url}"
socket_timeout = 1

[bot]
interval = 60
state_dir = "{state}"

[mastodon]
api_base_url = "{instance}"
access_token_env = "{TOKEN_ENV}"
admins = ["{ADMIN_USERNAME}"]
request_timeout = 3
retry_after = 30
retry_max = 60
probe_health = true

[posts]
status_every = 0
profile_field = false

[reports]
weekly = "off"
monthly = "off"

[page]
url = "{PAGE}"

[[fallback]]
api_base_url = "{fallback}"
access_token_env = "{FALLBACK_ENV}"
after = "5m"
"""


def statuses(mock: MastodonMock) -> list[dict[str, Any]]:
    return mock.statuses(BOT_TOKEN)


def test_fallback_tells_one_outage_in_one_thread(
        tmp_path: Path, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """502 for minutes, then connection refused: one notice, one resolution, one thread."""
    for name in ("instance", "fallback", "instance-back"):
        (tmp_path / name).mkdir()
    instance = MastodonMock(tmp_path / "instance")
    fallback = MastodonMock(tmp_path / "fallback")
    servers = [instance, fallback]
    try:
        monkeypatch.setenv(TOKEN_ENV, BOT_TOKEN)
        monkeypatch.setenv(FALLBACK_ENV, BOT_TOKEN)  # the fallback mock seeds the same token
        path = tmp_path / "statusbot.toml"
        path.write_text(config_text(redis_server.url, instance.url, fallback.url,
                                    tmp_path / "state"))
        config = load_config(path)
        clock = Clock()

        def start() -> Bot:
            return build(config, out=io.StringIO(), clock=clock)

        def ticks(bot: Bot, count: int) -> None:
            for _ in range(count):
                bot.tick()
                clock.now += 60.0

        bot = start()
        ticks(bot, 3)  # all well: nothing on the fallback, not even a call to post
        assert statuses(fallback) == []
        instance.fault({"match": {"path_regex": ".*"},
                        "effect": {"type": "status", "status": 502}})
        ticks(bot, 4)  # 502 for 4 minutes: not yet
        assert statuses(fallback) == []
        fallback.fault({"match": {"methods": ["POST"], "path": "/api/v1/statuses"},
                        "effect": {"type": "status", "status": 503}, "count": 2})
        instance.stop()  # gone: connection refused
        ticks(bot, 4)
        bot.store.close()  # a restart in the middle of the outage
        bot = start()
        ticks(bot, 2)
        found = statuses(fallback)
        assert len(found) == 1, bot.store.items()
        fallback.fault({"match": {"methods": ["POST"], "path": "/api/v1/statuses"},
                        "effect": {"type": "ratelimit", "headers": {
                            "X-RateLimit-Reset": str(int(clock.now) + 90)}}, "count": 1})
        ticks(bot, 3)
        instance = MastodonMock(tmp_path / "instance-back", port=instance.port)
        servers.append(instance)
        ticks(bot, 4)
        sent = {i.post.kind.value: i for i in bot.store.items()
                if i.post.destination.startswith("fallback:")}
        bot.store.close()
        assert sorted(sent) == ["notice", "resolution"]
        assert sent["notice"].attempts == 3  # two 503s, then taken
        assert sent["resolution"].attempts == 2  # a 429, then taken after its reset
        found = statuses(fallback)
        assert [s["in_reply_to_id"] for s in found] == [None, found[0]["id"]]
        notice, resolution = (s["content"] for s in found)
        assert "cannot be reached since" in notice and PAGE in notice
        assert "can be reached again" in resolution
        assert all(s["visibility"] == "public" for s in found)
        back = statuses(instance)
        assert back, "the instance's own posts went out once it was back"
        assert not any("cannot be reached" in s["content"] for s in back)
    finally:
        for server in servers:
            server.stop()
