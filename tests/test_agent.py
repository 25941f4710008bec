"""statusbot agent (writing) and AgentReader (judging what agents wrote), without a server."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
import redis

from bot import defaults
from bot.agent import Agent, AgentError, agent_name, without_user
from bot.collect import hostwire
from bot.collect.agents import EXPIRED, NEVER, AgentReader
from bot.config import AgentConfig, Config, HostEntry, Secret
from bot.model import Anomaly, HostSource
from tests.test_hostwire import STATS


class Pipe:
    """Records what an agent sends; ``fail`` makes execute raise it."""

    def __init__(self, owner: FakeRedis) -> None:
        self.owner = owner
        self.commands: list[tuple[Any, ...]] = []

    def set(self, key: str, value: str, px: int) -> None:
        self.commands.append(("SET", key, value, px))

    def sadd(self, key: str, member: str) -> None:
        self.commands.append(("SADD", key, member))

    def execute(self) -> list[object]:
        if self.owner.fail is not None:
            raise self.owner.fail
        self.owner.sent.append(self.commands)
        return [True, 1]


class FakeRedis:
    """A client whose pipelines record their commands."""

    def __init__(self) -> None:
        self.sent: list[list[tuple[Any, ...]]] = []
        self.fail: Exception | None = None
        self.transaction: list[bool] = []

    def pipeline(self, transaction: bool = True) -> Pipe:
        self.transaction.append(transaction)
        return Pipe(self)


def make_agent(client: FakeRedis, interval: float = 30.0) -> Agent:
    return Agent(client, name="worker-2", interval=interval,  # type: ignore[arg-type]
                 read=lambda: STATS, clock=lambda: 1.7e9, timer=lambda: 5.0)


def test_one_write_is_set_with_expiry_and_sadd_in_one_pipeline() -> None:
    """SET statusbot:host:<name> <json> PX 3 intervals, SADD statusbot:hosts, no MULTI."""
    client = FakeRedis()
    assert make_agent(client, interval=0.5).write_once() is None
    [commands] = client.sent
    assert client.transaction == [False]
    (verb, key, value, px), sadd = commands
    assert (verb, key, px) == ("SET", "statusbot:host:worker-2", 1500)
    assert sadd == ("SADD", "statusbot:hosts", "worker-2")
    reading, problem = hostwire.decode(value, "worker-2")
    assert problem is None and reading is not None
    assert (reading.stats, reading.at, reading.interval) == (STATS, 1.7e9, 0.5)


def test_redis_down_is_logged_once_and_the_agent_goes_on(
        caplog: pytest.LogCaptureFixture) -> None:
    """Three failing writes: one warning; the recovery: one info line."""
    client = FakeRedis()
    agent = make_agent(client)
    client.fail = redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. "
                                        "Connection refused.")
    with caplog.at_level(logging.DEBUG, logger="statusbot.agent"):
        problems = [agent.write_once() for _ in range(3)]
        client.fail = None
        assert agent.write_once() is None
    assert problems[0] == problems[2] and problems[0] is not None
    assert problems[0].startswith("cannot write to Redis: ConnectionError: Error 111")
    levels = [(r.levelname, r.getMessage().split(";")[0]) for r in caplog.records
              if r.levelno >= logging.INFO]
    assert levels == [("WARNING", problems[0]), ("INFO", "writing statusbot:host:worker-2 again")]
    assert agent.written == 1


def test_a_failing_host_reading_never_stops_the_agent() -> None:
    """A host reading that fails (psutil trouble) is a logged problem, not an exception."""
    def broken() -> Any:
        raise OSError("no /proc")

    agent = Agent(FakeRedis(), name="w", interval=1.0, read=broken)  # type: ignore[arg-type]
    assert agent.write_once() == "cannot read this host: OSError: no /proc"


def test_run_stops_when_told() -> None:
    """``run`` writes until the stop event is set (here after the third write)."""
    client = FakeRedis()
    stop = threading.Event()
    def read() -> Any:
        if len(client.sent) >= 2:
            stop.set()
        return STATS

    agent = Agent(client, name="w", interval=0.01, read=read)  # type: ignore[arg-type]
    agent.run(stop)
    assert len(client.sent) == 3 and stop.is_set()


@pytest.mark.parametrize(("configured", "hostname", "expected"), [
    pytest.param("db-1", "ignored", "db-1", id="configured"),
    pytest.param("", "web.example.org", "web.example.org", id="hostname"),
    pytest.param("", "@someone", None, id="hostname-mention"),
    pytest.param("", "x" * 65, None, id="hostname-too-long"),
    pytest.param("", "", None, id="hostname-empty"),
])
def test_the_name_defaults_to_a_valid_hostname(configured: str, hostname: str,
                                               expected: str | None) -> None:
    """[agent] name, else the hostname when it is a plain name, else a configuration error."""
    config = Config(agent=AgentConfig(name=configured))
    if expected is None:
        with pytest.raises(AgentError, match="set \\[agent\\] name"):
            agent_name(config, lambda: hostname)
    else:
        assert agent_name(config, lambda: hostname) == expected


@pytest.mark.parametrize(("url", "expected"), [
    ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ("redis://watcher@127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ("rediss://bot@redis.example:6380/2", "rediss://redis.example:6380/2"),
])
def test_the_agent_logs_in_as_its_own_user(url: str, expected: str) -> None:
    """The bot's user name is dropped from [redis] url; [agent] username replaces it."""
    assert without_user(url) == expected


def test_the_password_never_shows() -> None:
    """The agent's config prints no password."""
    config = AgentConfig(password=Secret("hunter2"))
    assert "hunter2" not in repr(config) and "hunter2" not in str(config)


# --- AgentReader -----------------------------------------------------------------------------

def text(name: str = "worker-2", interval: float = 30.0) -> str:
    return hostwire.encode(STATS, name=name, at=1.7e9, interval=interval, took_ms=1.0)


def test_fresh_expired_and_never_seen_hosts() -> None:
    """A reading is fresh (age from its TTL), then expired (age counted on), or never came."""
    now = [1000.0]
    reader = AgentReader([HostEntry("db-1", role="db", member_visible=True)],
                         clock=lambda: now[0])
    names = reader.select({"worker-2"})
    assert names == ["db-1", "worker-2"]
    fresh = reader.build(names, [None, -2, text(), 80_000])
    assert [(r.name, r.source, r.stats is not None, r.error, r.age_s, r.role, r.member_visible)
            for r in fresh] == [
        ("db-1", HostSource.AGENT, False, NEVER, None, "db", True),
        ("worker-2", HostSource.AGENT, True, None, 10.0, "", False)]
    now[0] = 1100.0
    gone = reader.build(reader.select({"worker-2"}), [None, -2, None, -2])
    assert (gone[1].stats, gone[1].error, gone[1].age_s) == (None, EXPIRED, 110.0)
    assert reader.anomalies == ()


def test_garbage_is_an_anomaly_and_the_hosts_error() -> None:
    """Another schema or garbage: the host does not report, the anomaly names its key."""
    reader = AgentReader()
    names = reader.select(["a", "b"])
    other = text("a").replace('"v":1', '"v":2')
    readings = reader.build(names, [other, 1000, "garbage", 1000])
    assert [(r.name, r.stats, r.error) for r in readings] == [
        ("a", None, "reading has schema version 2, this bot reads 1 (upgrade the bot or the "
                    "agent)"),
        ("b", None, "reading is not valid JSON")]
    assert [a.key for a in reader.anomalies] == ["statusbot:host:a", "statusbot:host:b"]


def test_names_are_checked_and_capped() -> None:
    """Names that are not host names, exporters' names and names past the cap are anomalies."""
    reader = AgentReader([HostEntry("db-1", node_exporter="http://127.0.0.1:9100/metrics")],
                         most=3)
    names = reader.select(["@someone", "x y", "db-1", "h4", "h3", "h2", "h1"])
    assert names == ["h1", "h2", "h3"]
    reader.build(names, [None, -2] * 3)
    assert reader.anomalies == (
        Anomaly("statusbot:hosts", "holds a name that is not a host name: '@someone'"),
        Anomaly("statusbot:host:db-1",
                "is also a [[hosts]] node_exporter: its agent's reading is ignored"),
        Anomaly("statusbot:hosts", "holds 2 names that are not host names"),
        Anomaly("statusbot:hosts", "names 4 hosts: only the first 3 are read (the [[hosts]] "
                                   "ones, then by name)"))


def test_redis_errors_and_odd_replies_never_raise() -> None:
    """A refused SMEMBERS, a refused GET, a key with no expiry: anomalies, no exception."""
    reader = AgentReader()
    names = reader.select(redis.ResponseError("NOPERM this user has no permissions"))
    assert names == []
    names = reader.select(["a", "b"])
    readings = reader.build(names, [redis.ResponseError("WRONGTYPE"), -1, text("b"), -1])
    assert readings[0].error == "ResponseError: WRONGTYPE" and readings[0].stats is None
    assert readings[1].stats == STATS and readings[1].age_s is None
    assert [a.problem for a in reader.anomalies] == [
        "ResponseError: WRONGTYPE",
        "has no expiry: it would never show the host as not reporting"]


def test_redis_unreachable_means_no_agent_readings() -> None:
    """While Redis is down the agents are unread (health keeps their hosts as they were)."""
    reader = AgentReader()
    reader.build(reader.select(["a"]), [text("a"), 1000])
    reader.unread()
    assert (reader.readings, reader.anomalies) == ((), ())


def test_the_cap_is_hosts_max() -> None:
    """By default at most HOSTS_MAX names are read per snapshot."""
    reader = AgentReader()
    assert len(reader.select([f"h{n}" for n in range(defaults.HOSTS_MAX + 5)])) == \
        defaults.HOSTS_MAX
