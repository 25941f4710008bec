"""The monthly donor report end to end: history on disk, the chart, mastodon-mock."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.history import History, Sample
from bot.store import Store
from tests.integration.conftest import need
from tests.integration.mastodon_mock import BOT_TOKEN, MastodonMock, missing
from tests.integration.servers import RedisServer

pytestmark = pytest.mark.integration
TOKEN_ENV = "STATUSBOT_REPORT_TOKEN"


def test_monthly_report_with_its_chart_is_posted_once(tmp_path: Path) -> None:
    """`statusbot report monthly` posts the text with the chart and its alt text, once."""
    need(None if shutil.which("redis-server") else "redis-server is not installed")
    need(missing())
    need(None if importlib.util.find_spec("matplotlib") else
         "matplotlib is not installed (the chart extra)")
    redis = RedisServer(tmp_path)
    mock = MastodonMock(tmp_path)
    try:
        state = tmp_path / "state"
        history = History(Store(state / "statusbot.sqlite3"), interval=300)
        now = time.time()
        history.record_many(
            Sample(at=at, memory_used_percent=40.0, memory_used_bytes=3 << 30,
                   memory_total_bytes=8 << 30, cpu_percent=12.0, disk_used_percent=30.0,
                   queue_latency_s=5.0, enqueued=3, busy=1, concurrency=5, live_processes=1,
                   redis_ok=True)
            for at in range(int(now - 70 * 86400), int(now), 300))
        history.store.close()
        config = tmp_path / "statusbot.toml"
        config.write_text(f"""
[redis]
url = "{redis.url}"
[bot]
interval = 300
state_dir = "{state}"
[mastodon]
api_base_url = "{mock.url}"
access_token_env = "{TOKEN_ENV}"
probe_health = false
[reports]
weekly = "mon 09:00"
monthly = "1 09:00"
monthly_cost = 40
donation_url = "https://example.org/donate"
""")
        env = {**os.environ, TOKEN_ENV: BOT_TOKEN}
        run = [sys.executable, "-m", "bot", "report", "monthly", "--config", str(config)]
        first = subprocess.run(run, env=env, capture_output=True, text=True, timeout=120,
                               check=False)
        assert first.returncode == 0, first.stderr
        assert "sent now: True" in first.stderr, first.stderr
        second = subprocess.run(run, env=env, capture_output=True, text=True, timeout=120,
                                check=False)
        assert second.returncode == 0, second.stderr
        statuses = mock.statuses(BOT_TOKEN)
        assert len(statuses) == 1, [s["content"] for s in statuses]
        assert len(statuses[0]["media_attachments"]) == 1, first.stderr[-2000:]
        (media,) = statuses[0]["media_attachments"]
        assert media["type"] == "image"
        description = media["description"]
        assert "GiB" in description and len(description) <= 1500
        assert "example.org/donate" in statuses[0]["content"]
    finally:
        mock.stop()
        redis.stop()
