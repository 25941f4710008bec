"""The must-show of issue 11 part 1, end to end with real processes.

One redis-server, one real prometheus-node-exporter and three ``statusbot
agent`` processes (names agent-a, agent-b, agent-c; interval 0.5 s, so a
reading expires 1.5 s after the last write) logged in as the README's ACL
user. ``statusbot check --json`` (a subprocess, read-only Redis user) lists
exactly four other hosts: the three agents and the exporter; this machine's
own reading is ``host``, not one of ``hosts``. Then the bot's ticks run in
this process with the recording gateway and a pinned clock (30 s a tick, so
the not-reporting rule's minute passes without waiting): a per-host memory
override on agent-b fires and the admins' message names agent-b; agent-c is
stopped, its reading expires in Redis, and the admins are told it is not
reporting exactly once.
"""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.app import build
from bot.config import load_config
from bot.model import PostKind
from bot.testing import RecordingGateway
from bot.wording import neutral
from tests.integration.servers import NodeExporter, RedisServer, stop_process, wait_for
from tests.integration.test_agents import PASSWORD, setup_users

pytestmark = pytest.mark.integration

AGENTS = ("agent-a", "agent-b", "agent-c")
START = 1_800_000_000.0
"""The pinned clock's start (the rules need minutes; the day does not matter)."""


@pytest.fixture
def agents(redis_server: RedisServer,
           tmp_path: Path) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """Three ``statusbot agent`` processes writing every 0.5 s under the README's user."""
    setup_users(redis_server)
    (tmp_path / "agent-password").write_text(PASSWORD)
    running: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name in AGENTS:
            config = tmp_path / f"{name}.toml"
            config.write_text(
                f'[redis]\nurl = "redis://127.0.0.1:{redis_server.port}/0"\n'
                f'[agent]\nname = "{name}"\ninterval = 0.5\n'
                f'password_file = "agent-password"\n')
            with (tmp_path / f"{name}.log").open("wb") as log:
                running[name] = subprocess.Popen(
                    [sys.executable, "-m", "bot", "agent", "--config", str(config)],
                    stdout=log, stderr=subprocess.STDOUT)
        admin = redis_server.client()
        wait_for(lambda: all(admin.exists(f"statusbot:host:{n}") for n in AGENTS), 20,
                 "three agents' readings")
        yield running
    finally:
        for process in running.values():
            stop_process(process)


def bot_config(tmp_path: Path, redis: RedisServer, exporter: NodeExporter) -> Path:
    path = tmp_path / "bot.toml"
    path.write_text(f"""
[redis]
url = "redis://watcher@127.0.0.1:{redis.port}/0"
password_file = "bot-password"

[bot]
interval = 30
state_dir = "{tmp_path / 'state'}"

[mastodon]
admins = ["alice"]

[posts]
status_every = 0

[reports]
weekly = "off"
monthly = "off"

[health.unserved]
warning = 3600
critical = 7200

[[hosts]]
name = "exporter-1"
node_exporter = "{exporter.url}"
timeout = 5

[[hosts]]
name = "agent-b"
role = "sidekiq"

[hosts.health.memory_available_percent]  # above any real value: fires for agent-b only
warning = 99.99
critical = 1
for = 0
""")
    (tmp_path / "bot-password").write_text("w")
    (tmp_path / "state").mkdir()
    return path


def test_three_agents_and_an_exporter(redis_server: RedisServer, node_exporter: NodeExporter,
                                      agents: dict[str, subprocess.Popen[bytes]],
                                      tmp_path: Path) -> None:
    """Four hosts listed; a per-host memory rule names agent-b; agent-c stopped: told once."""
    config_path = bot_config(tmp_path, redis_server, node_exporter)
    result = subprocess.run([sys.executable, "-m", "bot", "check", "--json", "--config",
                             str(config_path)], capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0, result.stderr
    snapshot = json.loads(result.stdout)
    assert [(h["name"], h["source"], h["error"]) for h in snapshot["hosts"]] == [
        ("agent-a", "agent", None), ("agent-b", "agent", None), ("agent-c", "agent", None),
        ("exporter-1", "node_exporter", None)]
    assert all(h["stats"]["memory_total_bytes"] > 0 for h in snapshot["hosts"])
    assert snapshot["host"] is not None and snapshot["host_anomalies"] == []  # this machine

    clock = [START]
    config = load_config(str(config_path), need_token=False)
    gateway = RecordingGateway()
    bot = build(config, out=io.StringIO(), gateway=gateway, clock=lambda: clock[0])

    def tick() -> list[str]:
        before = len(gateway.statuses)
        bot.tick()
        clock[0] += 30
        return [s.post.text for s in list(gateway.statuses.values())[before:]]

    try:
        first = tick()
        memory = [t for t in first if "memory on agent-b" in t]
        assert len(memory) == 1, first
        assert f"{neutral('memory@agent-b')} warning since" in memory[0]
        assert "exporter-1" not in memory[0] and "agent-a" not in memory[0]
        for _ in range(2):
            tick()

        agents["agent-c"].send_signal(signal.SIGTERM)
        assert agents["agent-c"].wait(10) == 0
        admin = redis_server.client()
        stopped = time.monotonic()
        wait_for(lambda: not admin.exists("statusbot:host:agent-c"), 5, "agent-c's expiry")
        assert time.monotonic() - stopped < 2.5  # three intervals of 0.5 s, not longer

        texts: list[str] = []
        for _ in range(8):  # four minutes on the pinned clock
            texts += tick()
        told = [t for t in texts if "agent-c" in t and "not reporting" in t]
        assert len(told) == 1, texts
        assert "host agent-c is not reporting" in told[0]
        # Members hear of neither host (neither is member-visible): two admin messages in all.
        assert [(s.post.kind, s.post.visibility) for s in gateway.statuses.values()] == [
            (PostKind.ADMIN, "direct"), (PostKind.ADMIN, "direct")]
        last = bot.last_snapshot
        assert last is not None
        assert {h.name: h.error for h in last.hosts} == {
            "agent-a": None, "agent-b": None, "agent-c": "reading expired", "exporter-1": None}
    finally:
        bot.store.close()
        bot.collector.close()
