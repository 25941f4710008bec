"""Agents against a real redis-server: the README's ACL user writes, the read-only bot reads.

The agent logs in as the user the README's ``ACL SETUSER`` line creates
(parsed from README.md, so the documented line is the one tested); the bot
reads under ``-@all +@read +info +ping``. With 20 agents the snapshot still
takes three round trips.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import redis

from bot.agent import Agent, agent_client
from bot.collect import Collector, redis_client
from bot.collect.host import HostReader
from bot.collect.sidekiq import SidekiqReader
from bot.config import AgentConfig, Config, HostEntry, RedisConfig, Secret
from bot.model import HostSource
from tests.integration.servers import RedisServer, readme_acl
from tests.integration.test_collector import CountingConnection, commandstats
from tests.test_hostwire import STATS

pytestmark = pytest.mark.integration

PASSWORD = "agent-s3cret"


def setup_users(server: RedisServer) -> str:
    """Create the agent's user (README) and a read-only bot user; return the bot's URL."""
    admin = server.client()
    admin.execute_command(*readme_acl("statusbot-agent", PASSWORD))  # type: ignore[no-untyped-call]
    admin.acl_setuser("watcher", enabled=True, passwords=["+w"], keys=["*"],
                      categories=["-@all", "+@read"], commands=["+info", "+ping"])
    return f"redis://watcher:w@127.0.0.1:{server.port}/0"


def agent_config(server: RedisServer, name: str, interval: float = 30.0) -> Config:
    return Config(redis=RedisConfig(url=f"redis://watcher@127.0.0.1:{server.port}/0"),
                  agent=AgentConfig(name=name, interval=interval, password=Secret(PASSWORD)))


def test_the_readme_user_writes_and_the_read_only_bot_reads(redis_server: RedisServer) -> None:
    """An agent under the README's user writes; the bot's read-only user sees a fresh host."""
    bot_url = setup_users(redis_server)
    config = agent_config(redis_server, "worker-2", interval=30.0)
    agent = Agent(agent_client(config.redis, config.agent), name="worker-2", interval=30.0,
                  read=lambda: STATS)
    assert agent.write_once() is None
    admin = redis_server.client()
    assert admin.smembers("statusbot:hosts") == {"worker-2"}
    assert 89_000 < admin.pttl("statusbot:host:worker-2") <= 90_000
    # The agent's user cannot touch Sidekiq's keys, nor read them.
    agent_user = agent_client(config.redis, config.agent)
    with pytest.raises(redis.exceptions.NoPermissionError):
        agent_user.set("queues", "x")
    with pytest.raises(redis.exceptions.NoPermissionError):
        agent_user.delete("queue:default")
    with pytest.raises(redis.exceptions.NoPermissionError):
        agent_user.srem("queues", "default")
    with pytest.raises(redis.exceptions.NoPermissionError):
        agent_user.flushdb()
    bot_config = Config(redis=RedisConfig(url=bot_url), hosts=(HostEntry("db-1", role="db"),))
    collector = Collector(bot_config, client=redis_client(RedisConfig(url=bot_url)))
    try:
        snapshot = collector.collect()
    finally:
        collector.close()
    assert snapshot.redis.reachable
    assert [(h.name, h.source, h.stats == STATS, h.error, h.role) for h in snapshot.hosts] == [
        ("db-1", HostSource.AGENT, False, "no reading in Redis (is its statusbot agent "
                                          "running?)", "db"),
        ("worker-2", HostSource.AGENT, True, None, "")]
    age = snapshot.hosts[1].age_s
    assert age is not None and 0 <= age < 5
    # The bot's user cannot write.
    with pytest.raises(redis.exceptions.NoPermissionError):
        redis_client(RedisConfig(url=bot_url)).set("statusbot:hosts", "x")


def test_the_agent_command_once_with_a_wrong_password_fails_without_printing_it(
        redis_server: RedisServer, tmp_path: Path) -> None:
    """``statusbot agent --once``: 0 with the right password; 1 and one line with a wrong one."""
    setup_users(redis_server)
    for password, status in ((PASSWORD, 0), ("wrong-pass-9", 1)):
        (tmp_path / "pw").write_text(password)
        (tmp_path / "c.toml").write_text(
            f'[redis]\nurl = "redis://127.0.0.1:{redis_server.port}/0"\n'
            f'[agent]\nname = "w-{status}"\ninterval = "1s"\npassword_file = "pw"\n')
        result = subprocess.run([sys.executable, "-m", "bot", "agent", "--once", "--config",
                                 str(tmp_path / "c.toml")], capture_output=True, text=True,
                                timeout=30, check=False)
        assert result.returncode == status, result.stderr
        assert password not in result.stdout + result.stderr
        if status:
            warnings = [line for line in result.stderr.splitlines() if "WARNING" in line]
            assert len(warnings) == 1 and "cannot write to redis://127.0.0.1" in warnings[0]
            assert "AuthenticationError" in warnings[0]
    assert redis_server.client().smembers("statusbot:hosts") == {"w-0"}


def test_twenty_agents_cost_no_extra_round_trip(redis_server: RedisServer) -> None:
    """20 agents: still 3 round trips (SMEMBERS in the 2nd, GET and PTTL in the 3rd)."""
    bot_url = setup_users(redis_server)
    for n in range(20):
        name = f"host-{n:02d}"
        config = agent_config(redis_server, name)
        Agent(agent_client(config.redis, config.agent), name=name, interval=30.0,
              read=lambda: STATS).write_once()
    admin = redis_server.client()
    pool = redis.ConnectionPool.from_url(bot_url, connection_class=CountingConnection,
                                         decode_responses=True)
    collector = Collector(Config(redis=RedisConfig(url=bot_url)),
                          client=redis.Redis(connection_pool=pool))
    collector.host = HostReader(cpu_sample_min=0.0)
    try:
        collector.collect()  # connects: handshake and an untimed PING
        CountingConnection.sends = 0
        before = commandstats(admin)
        snapshot = collector.collect()
        after = commandstats(admin)
    finally:
        collector.close()
    sent = {k.removeprefix("cmdstat_"): after[k] - before.get(k, 0) for k in after
            if after[k] != before.get(k, 0)}
    sent["info"] -= 1  # the test's own INFO commandstats
    assert CountingConnection.sends == 3
    assert sent == {"ping": 1, "info": 1, "smembers": 4, "get": 4 + 20, "zcard": 3, "pttl": 20}
    assert [h.name for h in snapshot.hosts if h.stats == STATS] == [
        f"host-{n:02d}" for n in range(20)]


def test_sidekiq_reader_without_agents_is_unchanged(redis_server: RedisServer) -> None:
    """A SidekiqReader built without an AgentReader does not read the agents' set."""
    admin = redis_server.client()
    admin.sadd("statusbot:hosts", "a")
    reader = SidekiqReader(redis_server.client(), url=redis_server.url)
    reader.read()
    before = commandstats(admin)
    reader.read()
    after = commandstats(admin)
    assert after["cmdstat_smembers"] - before["cmdstat_smembers"] == 3


def test_the_readme_user_writes_in_another_database(redis_server: RedisServer) -> None:
    """A Redis URL naming database 3 makes redis-py send SELECT: the README's user may."""
    setup_users(redis_server)
    config = Config(redis=RedisConfig(url=f"redis://127.0.0.1:{redis_server.port}/3"),
                    agent=AgentConfig(name="worker-3", interval=30.0, password=Secret(PASSWORD)))
    agent = Agent(agent_client(config.redis, config.agent), name="worker-3", interval=30.0,
                  read=lambda: STATS)
    assert agent.write_once() is None
    assert redis_server.client(db=3).smembers("statusbot:hosts") == {"worker-3"}
    assert redis_server.client().smembers("statusbot:hosts") == set()


def test_agent_retire_removes_the_host_under_the_readme_user(
        redis_server: RedisServer, tmp_path: Path) -> None:
    """``statusbot agent --retire``: the reading and the name go; the bot stops expecting it."""
    setup_users(redis_server)
    (tmp_path / "pw").write_text(PASSWORD)
    admin = redis_server.client()
    for name in ("old-box", "keeper"):
        (tmp_path / "c.toml").write_text(
            f'[redis]\nurl = "redis://127.0.0.1:{redis_server.port}/0"\n'
            f'[agent]\nname = "{name}"\ninterval = "1s"\npassword_file = "pw"\n')
        once = subprocess.run([sys.executable, "-m", "bot", "agent", "--once", "--config",
                               str(tmp_path / "c.toml")], capture_output=True, text=True,
                              timeout=30, check=False)
        assert once.returncode == 0, once.stderr
    assert admin.smembers("statusbot:hosts") == {"old-box", "keeper"}
    (tmp_path / "c.toml").write_text(
        f'[redis]\nurl = "redis://127.0.0.1:{redis_server.port}/0"\n'
        f'[agent]\nname = "old-box"\npassword_file = "pw"\n')
    result = subprocess.run([sys.executable, "-m", "bot", "agent", "--retire", "--config",
                             str(tmp_path / "c.toml")], capture_output=True, text=True,
                            timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("old-box: reading and name removed from redis://127.0.0.1:")
    assert admin.smembers("statusbot:hosts") == {"keeper"}
    assert admin.exists("statusbot:host:old-box") == 0
    assert admin.exists("statusbot:host:keeper") == 1
    assert PASSWORD not in result.stdout + result.stderr
