"""The Sidekiq reader against a real redis-server, with keys the test writes itself.

Covers what Debian cannot produce (Sidekiq 8's layout), data of the wrong
shape, the round-trip bound, and Redis being unreachable.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from typing import Any, ClassVar

import pytest
import redis
from redis.connection import Connection

from bot.collect import redis_client
from bot.collect.sidekiq import MAX_JOB_CHARS, SidekiqReader
from bot.config import RedisConfig
from bot.demo import free_port
from bot.model import Anomaly
from tests.integration.servers import RedisServer, readme_acl

pytestmark = pytest.mark.integration

QUEUES = ("default", "push", "ingress", "mailers", "pull", "scheduler", "fasp")


def sidekiq8_job(queue: str, enqueued_ms: int, n: int) -> str:
    """A job as Sidekiq 8 writes it: integer-millisecond timestamps."""
    return json.dumps({
        "retry": True, "queue": queue, "class": "Sidekiq::ActiveJob::Wrapper",
        "wrapped": "ActionMailer::MailDeliveryJob", "args": [{"n": n}],
        "jid": f"{n:024x}", "created_at": enqueued_ms - 5, "enqueued_at": enqueued_ms,
    })


def write_sidekiq8(client: redis.Redis, now: float, jobs_per_queue: int = 2,
                   prefix: str = "") -> dict[str, str]:
    """Write the Sidekiq 8.1 layout (reference §2, §3) and return the identities."""
    pipe = client.pipeline(transaction=False)
    for index, queue in enumerate(QUEUES[:5]):
        pipe.sadd(f"{prefix}queues", queue)
        # LPUSH: oldest job at the tail. The oldest is 10 s * (index + 1) old.
        for n in range(jobs_per_queue):
            age = 10.0 * (index + 1) - n * 0.001
            pipe.lpush(f"{prefix}queue:{queue}", sidekiq8_job(queue, int((now - age) * 1000), n))
    pipe.sadd(f"{prefix}queues", "fasp")  # registered but empty: the list key is gone
    pipe.sadd(f"{prefix}paused", "pull")
    for name, count in (("schedule", 3), ("retry", 2), ("dead", 1)):
        for n in range(count):
            pipe.zadd(f"{prefix}{name}", {sidekiq8_job("default", int(now * 1000), n): now + n})
    today = time.strftime("%Y-%m-%d", time.gmtime(now))
    pipe.mset({f"{prefix}stat:processed": 1000, f"{prefix}stat:failed": 10,
               f"{prefix}stat:processed:{today}": 100, f"{prefix}stat:failed:{today}": 1})
    identities = {"live": "web1:101:0123456789ab", "old": "web2:202:ba9876543210"}
    ages_and_busy = ((3.0, 4), (45.0, 2))
    for identity, (beat_age, busy) in zip(identities.values(), ages_and_busy, strict=True):
        info = {
            "hostname": identity.split(":")[0], "started_at": now - 600, "pid": int(
                identity.split(":")[1]), "tag": "mastodon", "labels": [], "identity": identity,
            "queues": ["default", "push", "ingress", "mailers"], "version": "8.1.6",
            "embedded": False, "weights": [{"default": 8, "push": 6, "ingress": 4, "mailers": 2}],
            "capsules": {"default": {"concurrency": 10, "mode": "weighted",
                                     "weights": {"default": 8, "push": 6, "ingress": 4,
                                                 "mailers": 2}}},
        }
        pipe.sadd(f"{prefix}processes", identity)
        pipe.hset(f"{prefix}{identity}", mapping={
            "info": json.dumps(info), "busy": busy, "beat": now - beat_age, "quiet": "false",
            "rss": 512000, "rtt_us": 120, "concurrency": 10})
        pipe.hset(f"{prefix}{identity}:work", "abc", json.dumps({
            "queue": "default", "payload": sidekiq8_job("default", int(now * 1000), 0),
            "run_at": int(now)}))
    pipe.execute()
    return identities


def reader_for(server: RedisServer, **kwargs: Any) -> SidekiqReader:
    client = redis_client(RedisConfig(url=server.url))
    return SidekiqReader(client, url=server.url, **kwargs)


@pytest.mark.parametrize("namespace", ["", "mastodon"])
def test_sidekiq8_layout(redis_server: RedisServer, namespace: str) -> None:
    """Integer-ms timestamps, the concurrency hash field, capsules, paused queues."""
    now = time.time()
    prefix = f"{namespace}:" if namespace else ""
    ids = write_sidekiq8(redis_server.client(), now, prefix=prefix)
    redis_stats, stats = reader_for(redis_server, namespace=namespace).read()
    assert redis_stats.reachable and stats is not None
    assert redis_stats.version and redis_stats.rtt_ms is not None
    assert (stats.processed, stats.failed, stats.processed_today, stats.failed_today) == (
        1000, 10, 100, 1)
    assert (stats.scheduled, stats.retries, stats.dead, stats.enqueued) == (3, 2, 1, 10)
    latency = {q.name: q.latency_s for q in stats.queues}
    assert sorted(latency) == sorted((*QUEUES[:5], "fasp"))
    for index, queue in enumerate(QUEUES[:5]):
        assert latency[queue] == pytest.approx(10.0 * (index + 1), abs=0.5)
    assert latency["fasp"] == 0.0
    by_name = {q.name: q for q in stats.queues}
    assert (by_name["pull"].paused, by_name["pull"].served) == (True, False)
    assert (by_name["push"].paused, by_name["push"].served) == (False, True)
    assert by_name["fasp"].size == 0
    assert (by_name["push"].oldest_class, by_name["fasp"].oldest_class) == (
        "ActionMailer::MailDeliveryJob", None)
    process = {p.identity: p for p in stats.processes}
    assert process[ids["live"]].alive and process[ids["live"]].concurrency == 10
    assert process[ids["old"]].stale_reason == "no heartbeat for 45 s"
    assert (stats.live_processes, stats.stale_processes, stats.busy, stats.concurrency) == (
        1, 1, 4, 10)
    assert stats.utilisation == pytest.approx(0.4)
    assert stats.anomaly_count == 0


def test_malformed_data_is_counted_not_fatal(redis_server: RedisServer) -> None:
    """Wrong key types, bad JSON and junk counters become anomalies, never a crash."""
    now = time.time()
    client = redis_server.client()
    write_sidekiq8(client, now)
    client.rpush("queue:push", "{truncated")  # the oldest job
    client.delete("queue:ingress")
    client.set("queue:ingress", "not a list")
    client.delete("dead")
    client.set("dead", "not a zset")
    client.set("stat:failed", "lots")
    client.sadd("processes", "broken:1:000000000000")
    client.hset("broken:1:000000000000", mapping={"info": "{", "beat": "x"})
    client.sadd("processes", "wrongtype:1:000000000000")
    client.set("wrongtype:1:000000000000", "a string")
    redis_stats, stats = reader_for(redis_server).read()
    assert redis_stats.reachable and stats is not None
    problems = {(a.key, a.problem.split(":")[0]) for a in stats.anomalies}
    assert problems == {
        ("queue:push", "oldest job is not valid JSON"),
        ("queue:ingress", "ResponseError"),
        ("dead", "ResponseError"),
        ("stat:failed", "not a number"),
        ("broken:1:000000000000", "heartbeat info is not a JSON object"),
        ("broken:1:000000000000", "malformed beat"),
        ("wrongtype:1:000000000000", "ResponseError"),
    }
    assert stats.anomaly_count == 7
    queue = {q.name: q for q in stats.queues}
    assert (queue["push"].size, queue["push"].latency_s) == (3, None)
    assert (queue["ingress"].size, queue["ingress"].latency_s) == (0, None)
    assert (stats.dead, stats.failed, stats.processed) == (0, 0, 1000)
    assert stats.live_processes == 1


def test_anomaly_examples_are_capped(redis_server: RedisServer) -> None:
    """All anomalies are counted, a bounded number kept as examples."""
    client = redis_server.client()
    for n in range(30):
        client.sadd("queues", f"q{n}")
        client.lpush(f"queue:q{n}", "garbage")
    _, stats = reader_for(redis_server, max_anomaly_examples=5).read()
    assert stats is not None
    assert (stats.anomaly_count, len(stats.anomalies)) == (30, 5)
    assert stats.anomalies[0] == Anomaly("queue:q0", "oldest job is not valid JSON")


class CountingConnection(Connection):
    """A redis-py connection that counts what it sends: one write is one round trip."""

    sends = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        type(self).sends += 1
        super().send_packed_command(command, check_health)  # type: ignore[no-untyped-call]


def commandstats(client: redis.Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    return {name: int(value["calls"]) for name, value in stats.items()}


@pytest.mark.parametrize("jobs", [10, 10_000])
def test_round_trips_are_bounded(redis_server: RedisServer, jobs: int) -> None:
    """Three round trips and the same commands per snapshot at 10 and 10,000 jobs."""
    now = time.time()
    client = redis_server.client()
    write_sidekiq8(client, now)
    pipe = client.pipeline(transaction=False)
    for n in range(jobs):
        queue = QUEUES[n % len(QUEUES)]
        pipe.sadd("queues", queue)
        pipe.lpush(f"queue:{queue}", sidekiq8_job(queue, int(now * 1000), n))
    pipe.execute()

    pool = redis.ConnectionPool(connection_class=CountingConnection, host="127.0.0.1",
                                port=redis_server.port, decode_responses=True)
    reader = SidekiqReader(redis.Redis(connection_pool=pool), url=redis_server.url)
    reader.read()  # connects: handshake and an untimed PING
    CountingConnection.sends = 0
    before = commandstats(client)
    _, stats = reader.read()
    after = commandstats(client)
    sent = {k.removeprefix("cmdstat_"): after[k] - before.get(k, 0) for k in after
            if after[k] != before.get(k, 0)}
    sent["info"] -= 1  # the test's own INFO commandstats
    assert stats is not None and stats.enqueued == jobs + 10
    assert CountingConnection.sends == 3
    queues, processes = len(stats.queues), len(stats.processes)
    assert sent == {"ping": 1, "info": 1, "smembers": 3, "get": 4, "zcard": 3,
                    "llen": queues, "lindex": queues, "hmget": processes}
    assert set(sent) <= {"ping", "info", "smembers", "get", "zcard", "llen", "lindex", "hmget"}


def test_unreachable_redis(tmp_path: Any) -> None:
    """A Redis that refuses connections gives reachable=False with the error, no stats."""
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    reader = SidekiqReader(redis_client(RedisConfig(url=url, socket_timeout=1)), url=url)
    redis_stats, stats = reader.read()
    assert stats is None
    assert not redis_stats.reachable
    assert redis_stats.error is not None and "Connection refused" in redis_stats.error


def test_silent_server_times_out() -> None:
    """A server that accepts but never answers costs one socket timeout, not a hang."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
        reader = SidekiqReader(redis_client(RedisConfig(url=url, socket_timeout=0.5)), url=url)
        started = time.monotonic()
        redis_stats, stats = reader.read()
    assert stats is None and not redis_stats.reachable
    assert "Timeout" in (redis_stats.error or "")
    assert time.monotonic() - started < 5


def check(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot", "check", *args], capture_output=True,
                          text=True, timeout=60, check=False, env=env)


def test_check_exit_status(redis_server: RedisServer, tmp_path: Any) -> None:
    """0 when Redis was read, 1 with a one-line reason when not, 2 for a config error."""
    write_sidekiq8(redis_server.client(), time.time())
    env = {"PATH": "/usr/bin:/bin", "REDIS_URL": redis_server.url}
    ok = check(env=env)
    assert ok.returncode == 0, ok.stderr
    assert "default" in ok.stdout and "web1:101:0123456789ab" in ok.stdout
    as_json = check("--json", env=env)
    assert json.loads(as_json.stdout)["sidekiq"]["enqueued"] == 10

    down = check(env={**env, "REDIS_URL": f"redis://:hunter2@127.0.0.1:{free_port()}/0"})
    assert down.returncode == 1
    assert down.stderr.count("\n") == 1 and "cannot read Redis at redis://127.0.0.1:" in down.stderr
    assert "hunter2" not in down.stdout + down.stderr

    bad = tmp_path / "bad.toml"
    bad.write_text("[redis]\nurl = 5\n")
    broken = check("--config", str(bad), env=env)
    assert broken.returncode == 2
    assert f"{bad}: redis.url: must be a redis:// URL, got int 5" in broken.stderr


HUGE = "9" * 400


@pytest.mark.parametrize(
    ("setup", "key", "problem"),
    [
        *[pytest.param({"set": ("stat:processed", value)}, "stat:processed", "not a number",
                       id=f"counter-{name}")
          for name, value in (("inf", "inf"), ("nan", "nan"), ("1e400", "1e400"),
                              ("400-digits", HUGE), ("negative", "-7"))],
        *[pytest.param({"hset": ("web9:9:000000000009", field, value), "known": known},
                       "web9:9:000000000009", f"malformed {field}",
                       id=f"{field}-{name}" + ("-known-process" if known else ""))
          for field in ("busy", "concurrency", "rss", "beat")
          for name, value in (("inf", "inf"), ("nan", "nan"), ("1e400", "1e400"),
                              ("400-digits", HUGE), ("negative", "-5"), ("word", "lots"))
          for known in (False, True)],
        pytest.param({"hset": ("web9:9:000000000009", "info", "[" * 200_000 + "]" * 200_000)},
                     "web9:9:000000000009", "heartbeat info is larger than",
                     id="info-200000-brackets"),
        pytest.param({"hset": ("web9:9:000000000009", "info", "[" * 30_000 + "]" * 30_000)},
                     "web9:9:000000000009", "heartbeat info is nested too deeply",
                     id="info-30000-brackets"),
        pytest.param({"job": "[" * 200_000 + "]" * 200_000}, "queue:hostile",
                     "oldest job is nested too deeply", id="job-200000-brackets"),
        *[pytest.param({"job": f'{{"class":"X","{field}":{value}}}'}, "queue:hostile",
                       f"oldest job has a malformed {field}", id=f"job-{field}-{name}")
          for field in ("enqueued_at", "created_at")
          for name, value in (("inf", "Infinity"), ("nan", "NaN"), ("1e400", "1e400"),
                              ("400-digits", HUGE), ("negative", "-1"), ("string", '"soon"'))],
        pytest.param({"job": '{"args":["' + "x" * MAX_JOB_CHARS + '"],"enqueued_at":1}'},
                     "queue:hostile", f"oldest job is larger than {MAX_JOB_CHARS} characters",
                     id="job-over-size-limit"),
    ],
)
def test_hostile_value_is_an_anomaly(redis_server: RedisServer, setup: dict[str, Any],
                                     key: str, problem: str) -> None:
    """One hostile value is one anomaly; the backlog beside it is still read right."""
    now = time.time()
    client = redis_server.client()
    ids = write_sidekiq8(client, now)
    client.sadd("processes", "web9:9:000000000009")
    client.hset("web9:9:000000000009", mapping={
        "info": json.dumps({"hostname": "web9", "pid": 9, "queues": ["default"],
                            "version": "8.1.6"}),
        "busy": 1, "beat": now - 1, "quiet": "false", "rss": 1000, "concurrency": 5})
    reader = reader_for(redis_server)
    if setup.get("known"):  # the process was read before, with good values
        assert reader.read()[1] is not None
    if "set" in setup:
        client.set(*setup["set"])
    if "hset" in setup:
        name, field, value = setup["hset"]
        client.hset(name, field, value)
    if "job" in setup:
        client.sadd("queues", "hostile")
        client.rpush("queue:hostile", setup["job"])
    redis_stats, stats = reader.read()
    assert redis_stats.reachable and stats is not None
    assert [(a.key, a.problem.startswith(problem)) for a in stats.anomalies] == [(key, True)]
    latency = {q.name: q.latency_s for q in stats.queues}
    assert latency["mailers"] == pytest.approx(40.0, abs=0.5)  # the real backlog stands
    assert stats.enqueued == 10 + ("job" in setup)
    process = {p.identity: p for p in stats.processes}
    assert process[ids["live"]].alive and process[ids["live"]].busy == 4
    assert all(p.rss_kb is None or p.rss_kb >= 0 for p in stats.processes)


def test_queue_named_like_a_mention_is_data(redis_server: RedisServer) -> None:
    """A queue named ``@someone`` is read and reported like any other queue."""
    now = time.time()
    client = redis_server.client()
    write_sidekiq8(client, now)
    client.sadd("queues", "@someone")
    client.lpush("queue:@someone", sidekiq8_job("@someone", int((now - 5) * 1000), 1))
    _, stats = reader_for(redis_server).read()
    assert stats is not None and stats.anomaly_count == 0
    queue = {q.name: q for q in stats.queues}["@someone"]
    assert queue.size == 1
    assert queue.latency_s == pytest.approx(5.0, abs=0.5)


def test_check_survives_hostile_data(redis_server: RedisServer) -> None:
    """`check` prints the snapshot (exit 0) with hostile values in Redis beside a backlog."""
    now = time.time()
    client = redis_server.client()
    write_sidekiq8(client, now)
    client.set("stat:failed", "1e400")
    client.hset("web1:101:0123456789ab", mapping={"busy": "inf", "rss": "-512000"})
    client.sadd("queues", "deep")
    client.rpush("queue:deep", "[" * 200_000 + "]" * 200_000)
    env = {"PATH": "/usr/bin:/bin", "REDIS_URL": redis_server.url}
    result = check("--json", env=env)
    assert result.returncode == 0, result.stderr
    snapshot = json.loads(result.stdout)["sidekiq"]
    assert snapshot["anomaly_count"] == 4
    assert {p["identity"]: p["rss_kb"] for p in snapshot["processes"]}[
        "web1:101:0123456789ab"] is None


class RecordingConnection(Connection):
    """A redis-py connection that keeps every command it sends, as bytes."""

    sent: ClassVar[list[bytes]] = []

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        parts = [command] if isinstance(command, (bytes, str)) else list(command)
        type(self).sent.append(b"".join(p.encode() if isinstance(p, str) else bytes(p)
                                        for p in parts))
        super().send_packed_command(command, check_health)  # type: ignore[no-untyped-call]


def write_processes(client: redis.Redis, identities: list[str], now: float) -> None:
    pipe = client.pipeline(transaction=False)
    for identity in identities:
        pipe.sadd("processes", identity)
        pipe.hset(identity, mapping={
            "info": json.dumps({"hostname": identity.split(":")[0], "pid": 1,
                                "queues": ["default"], "version": "7.3.2", "concurrency": 5}),
            "busy": 1, "beat": now - 1, "quiet": "false", "rss": 1000})
    pipe.execute()


@pytest.mark.parametrize(
    ("processes", "left", "joined", "info_reads"),
    [
        pytest.param(10, 0, 0, [10, 0, 0], id="10-processes"),
        pytest.param(1_100, 0, 0, [1_100, 0, 0], id="1100-processes-past-the-old-lru"),
        pytest.param(1_100, 3, 2, [1_100, 2, 0], id="3-left-2-joined"),
    ],
)
def test_info_is_read_once_per_identity(redis_server: RedisServer, processes: int, left: int,
                                        joined: int, info_reads: list[int]) -> None:
    """A heartbeat's info is read the first time its identity is seen, not every snapshot."""
    now = time.time()
    client = redis_server.client()
    identities = [f"w{n}:1:{n:012x}" for n in range(processes)]
    write_processes(client, identities, now)
    pool = redis.ConnectionPool(connection_class=RecordingConnection, host="127.0.0.1",
                                port=redis_server.port, decode_responses=True)
    reader = SidekiqReader(redis.Redis(connection_pool=pool), url=redis_server.url)
    reads, live = [], []
    for snapshot in range(3):
        RecordingConnection.sent = []
        _, stats = reader.read()
        assert stats is not None
        reads.append(b"".join(RecordingConnection.sent).count(b"$4\r\ninfo\r\n"))
        live.append(stats.live_processes)
        if snapshot == 0:
            client.srem("processes", *identities[:left]) if left else None
            write_processes(client, [f"new{n}:2:{n:012x}" for n in range(joined)], now)
    assert reads == info_reads
    assert live == [processes, processes - left + joined, processes - left + joined]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param({}, {"alive": True, "busy": 4, "quiet": False, "rss_kb": 512000,
                          "concurrency": 10, "hostname": "web1"}, id="unchanged"),
        pytest.param({"busy": 7, "quiet": "true", "rss": 1, "concurrency": 3},
                     {"alive": True, "busy": 7, "quiet": True, "rss_kb": 1, "concurrency": 3},
                     id="new-beat-values"),
        pytest.param({"beat": -45.0}, {"alive": False, "stale_reason": "no heartbeat for 45 s"},
                     id="stale"),
        pytest.param({"beat": 45.0}, {"alive": True, "beat_age_s": 0.0}, id="beat-in-future"),
        pytest.param(None, {"alive": False, "stale_reason": "heartbeat expired",
                            "hostname": None, "busy": None}, id="hash-expired"),
    ],
)
def test_known_process_next_beat(redis_server: RedisServer,
                                 change: dict[str, str | int | float] | None,
                                 expected: dict[str, Any]) -> None:
    """A known process's later beats are read right; an expired hash is not its old info."""
    now = time.time()
    client = redis_server.client()
    write_sidekiq8(client, now)
    reader = reader_for(redis_server, clock=lambda: now)
    assert reader.read()[1] is not None
    identity = "web1:101:0123456789ab"
    if change is None:
        client.delete(identity)
    else:
        if "beat" in change:
            change["beat"] = now + float(change["beat"])
        for field, value in change.items():
            client.hset(identity, field, value)
    _, stats = reader.read()
    assert stats is not None and stats.anomaly_count == 0
    process = {p.identity: p for p in stats.processes}[identity]
    actual = {name: getattr(process, name) for name in expected}
    assert actual == expected


def test_read_only_acl_user(redis_server: RedisServer) -> None:
    """A snapshot needs only read commands: it works for `-@all +@read +info +ping`."""
    now = time.time()
    admin = redis_server.client()
    write_sidekiq8(admin, now)
    admin.acl_setuser("watcher", enabled=True, passwords=["+s3cret"], keys=["*"],
                      categories=["-@all", "+@read"], commands=["+info", "+ping"])
    url = f"redis://watcher:s3cret@127.0.0.1:{redis_server.port}/0"
    reader = SidekiqReader(redis_client(RedisConfig(url=url)), url=redis_server.url)
    for _ in range(2):  # the first reads every info, the second only the known fields
        redis_stats, stats = reader.read()
        assert redis_stats.reachable and stats is not None
        assert (stats.anomaly_count, stats.live_processes, stats.enqueued) == (0, 1, 10)
        assert redis_stats.version is not None and redis_stats.used_memory_bytes


def test_the_readme_read_only_user_reads_another_database(redis_server: RedisServer) -> None:
    """The README's read-only ACL line works for a Redis URL naming database 3 (SELECT)."""
    admin = redis_server.client()
    admin.execute_command(*readme_acl("statusbot", "s3cret"))  # type: ignore[no-untyped-call]
    write_sidekiq8(redis_server.client(db=3), time.time())
    url = f"redis://statusbot:s3cret@127.0.0.1:{redis_server.port}/3"
    reader = SidekiqReader(redis_client(RedisConfig(url=url)), url=url)
    redis_stats, stats = reader.read()
    assert redis_stats.reachable and stats is not None, redis_stats
    assert (stats.live_processes, stats.enqueued) == (1, 10)
    with pytest.raises(redis.exceptions.NoPermissionError):
        redis_client(RedisConfig(url=url)).set("queues", "x")
