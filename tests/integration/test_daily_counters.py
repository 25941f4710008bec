"""Sidekiq's daily counters read from a real redis-server, with and without a namespace."""

from __future__ import annotations

import logging
from datetime import date

import pytest
import redis

from bot.collect.sidekiq import SidekiqReader
from tests.integration.servers import RedisServer

pytestmark = pytest.mark.integration

TODAY = date(2026, 11, 24)


@pytest.mark.parametrize("namespace", [pytest.param("", id="plain"),
                                       pytest.param("mastodon", id="namespaced")])
def test_daily_counters_in_one_round_trip(redis_server: RedisServer, namespace: str,
                                          caplog: pytest.LogCaptureFixture) -> None:
    """Counters per day, missing days 0, a malformed value 0 and warned about; one MGET."""
    admin = redis_server.client()
    prefix = f"{namespace}:" if namespace else ""
    admin.mset({f"{prefix}stat:processed:2026-11-20": "1500",
                f"{prefix}stat:failed:2026-11-20": "12",
                f"{prefix}stat:processed:2026-11-22": "not-a-number",
                f"{prefix}stat:failed:2026-11-22": "3",
                f"{prefix}stat:processed:2026-11-24": "42",
                "other:stat:processed:2026-11-24": "999"})
    client = redis_server.client()
    client.ping()  # connect first, so the count below is of commands only
    before = int(admin.info("stats")["total_commands_processed"])
    reader = SidekiqReader(client, url=redis_server.url, namespace=namespace)
    with caplog.at_level(logging.WARNING):
        counters = reader.daily_counters(6, TODAY)
    after = int(admin.info("stats")["total_commands_processed"])
    assert counters == {"2026-11-19": (0, 0), "2026-11-20": (1500, 12),
                        "2026-11-21": (0, 0), "2026-11-22": (0, 3),
                        "2026-11-23": (0, 0), "2026-11-24": (42, 0)}
    assert after - before == 2  # the MGET, and the admin's own INFO
    assert "1 malformed Sidekiq daily counters" in caplog.text


def test_daily_counters_when_redis_is_down(redis_server: RedisServer,
                                           caplog: pytest.LogCaptureFixture) -> None:
    """An unreachable Redis gives {} and a warning, never an exception."""
    client = redis.Redis(host="127.0.0.1", port=redis_server.port, decode_responses=True,
                         socket_timeout=1)
    redis_server.stop()
    reader = SidekiqReader(client, url=redis_server.url)
    with caplog.at_level(logging.WARNING):
        assert reader.daily_counters(30, TODAY) == {}
    assert "cannot read Sidekiq's daily counters" in caplog.text
