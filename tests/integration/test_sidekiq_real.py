"""``statusbot check --json`` against Redis data written by real Sidekiq.

For each Sidekiq (Debian 12's 6.4, with and without redis-namespace, and
Debian 13's 7.3), a scenario enqueues jobs on several queues, schedules some,
runs a worker that fails some jobs into the retry and dead sets and keeps one
thread busy, and SIGKILLs another worker to leave a stale identity. The bot's
reading must then equal what Sidekiq's own Ruby API reports on the same Redis.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.integration.conftest import need
from tests.integration.servers import RedisServer, Sidekiq, sidekiq_root, wait_for

pytestmark = pytest.mark.integration

PLAN = [
    {"class": "OkJob", "queue": "default", "count": 4},
    {"class": "RetryJob", "queue": "default", "count": 3},
    {"class": "DeadJob", "queue": "mailers", "count": 2},
    {"class": "SlowJob", "queue": "default", "count": 1, "args": [600]},
    {"class": "OkJob", "queue": "push", "count": 5},
    {"class": "OkJob", "queue": "ingress", "count": 3},
    {"class": "OkJob", "queue": "pull", "count": 2},
    {"class": "OkJob", "queue": "default", "count": 4, "in": 3600},
]
PROCESSED = 4 + 3 + 2  # OkJob, RetryJob and DeadJob runs; SlowJob is still running
FAILED = 3 + 2
GHOST = "ghost-host:4242:0123456789ab"


@dataclass
class Scenario:
    """A Redis filled by real Sidekiq, and what Sidekiq's API says of it."""

    name: str
    redis: RedisServer
    sidekiq: Sidekiq
    namespace: str
    victim: str
    worker: str
    config: Path

    def key(self, name: str) -> str:
        return f"{self.namespace}:{name}" if self.namespace else name


def run_check(config: Path, *extra: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``statusbot check --json`` as a user would and return its JSON."""
    result = subprocess.run(
        [sys.executable, "-m", "bot", "check", "--json", "--config", str(config), *extra],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, **(env or {})},
    )
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def identity_of(server: RedisServer, namespace: str, pid: int) -> str | None:
    """Return the identity a Sidekiq process with ``pid`` registered, once it has."""
    client = server.client()
    prefix = f"{namespace}:" if namespace else ""
    for member in client.smembers(f"{prefix}processes"):
        identity = str(member)
        info = client.hget(f"{prefix}{identity}", "info")
        if info and json.loads(info).get("pid") == pid:
            return identity
    return None


FLAVOURS = {"sidekiq6": (6, ""), "sidekiq6-namespace": (6, "mastodon"), "sidekiq7": (7, "")}
NAMESPACE_GEM = Path("/usr/lib/ruby/vendor_ruby/redis/namespace.rb")


@pytest.fixture(scope="module", params=sorted(FLAVOURS))
def scenario(request: pytest.FixtureRequest,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    """Fill a fresh Redis with real Sidekiq and leave it in a steady state."""
    major, namespace = FLAVOURS[request.param]
    need(None if shutil.which("redis-server") else "redis-server is not installed")
    root, missing = sidekiq_root(major)
    need(missing)
    if namespace:
        need(None if NAMESPACE_GEM.exists() else "ruby-redis-namespace is not installed")
    workdir = tmp_path_factory.mktemp(request.param)
    server = RedisServer(workdir)
    sidekiq = Sidekiq(root, server.url, namespace)
    try:
        yield _fill(request.param, server, sidekiq, namespace, workdir)
    except Exception:
        print(sidekiq.log_tail())
        raise
    finally:
        sidekiq.stop()
        server.stop()


def _fill(name: str, server: RedisServer, sidekiq: Sidekiq, namespace: str,
          workdir: Path) -> Scenario:
    prefix = f"{namespace}:" if namespace else ""
    client = server.client()
    sidekiq.enqueue(PLAN)

    # A worker that dies without a clean shutdown leaves its identity behind.
    victim = sidekiq.start_worker(["scheduler"], 1)
    victim_id: list[str] = []

    def registered() -> bool:
        found = identity_of(server, namespace, victim.pid)
        victim_id[:] = [found] if found else []
        return found is not None

    wait_for(registered, 60, "the victim worker's heartbeat")
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    killed_at = time.time()
    # Queued after the victim died: nothing live serves it.
    sidekiq.enqueue([{"class": "OkJob", "queue": "scheduler", "count": 1}])

    worker = sidekiq.start_worker(["default", "mailers"], 2)

    def settled() -> bool:
        found = identity_of(server, namespace, worker.pid)
        return (
            found is not None
            and client.llen(f"{prefix}queue:default") == 0
            and client.llen(f"{prefix}queue:mailers") == 0
            and client.zcard(f"{prefix}retry") == 3
            and client.zcard(f"{prefix}dead") == 2
            and client.get(f"{prefix}stat:processed") == str(PROCESSED)
            and client.get(f"{prefix}stat:failed") == str(FAILED)
            and client.hget(f"{prefix}{found}", "busy") == "1"
        )

    wait_for(settled, 90, "the worker to process its jobs and report them", interval=0.5)
    worker_id = identity_of(server, namespace, worker.pid)
    assert worker_id is not None
    # Stale after three missed beats: 15 s on Sidekiq 6, 30 s on 7.
    stale_after = 30 if name == "sidekiq7" else 15
    time.sleep(max(0.0, killed_at + stale_after + 2 - time.time()))
    # An identity whose heartbeat hash has expired (60 s after a crash).
    client.sadd(f"{prefix}processes", GHOST)

    config = workdir / "statusbot.toml"
    config.write_text(f'[redis]\nurl = "{server.url}"\nnamespace = "{namespace}"\n')
    return Scenario(name, server, sidekiq, namespace, victim_id[0], worker_id, config)


def test_check_json_equals_sidekiq_api(scenario: Scenario) -> None:
    """Sizes and counts equal Sidekiq's own API exactly; latency within one second."""
    theirs = scenario.sidekiq.api()
    ours = run_check(scenario.config)
    sk = ours["sidekiq"]
    assert ours["redis"]["reachable"] is True
    expected_version = "7." if scenario.name == "sidekiq7" else "6.4"
    assert theirs["sidekiq_version"].startswith(expected_version)

    for name in ("processed", "failed", "processed_today", "failed_today", "scheduled",
                 "retries", "dead", "enqueued"):
        assert (name, sk[name]) == (name, theirs[name])
    assert (sk["processed"], sk["failed"], sk["retries"], sk["dead"], sk["scheduled"]) == (
        PROCESSED, FAILED, 3, 2, 4)
    assert sk["processes_registered"] == theirs["processes_size"] == 3
    assert sk["busy"] == theirs["workers_size"] == 1

    assert [q["name"] for q in sk["queues"]] == [q["name"] for q in theirs["queues"]]
    offset = ours["collected_at"] - theirs["now"]
    for mine, their in zip(sk["queues"], theirs["queues"], strict=True):
        assert (mine["name"], mine["size"], mine["paused"]) == (
            their["name"], their["size"], their["paused"])
        # An empty queue has latency 0 on both sides, however long after Sidekiq we read.
        expected = their["latency"] + offset if their["size"] else 0.0
        assert mine["latency_s"] == pytest.approx(expected, abs=1.0), mine
    assert {q["name"]: q["size"] for q in sk["queues"]} == {
        "default": 0, "mailers": 0, "push": 5, "ingress": 3, "pull": 2, "scheduler": 1}

    # Sidekiq lists every identity whose heartbeat hash still exists.
    listed = {p["identity"]: p for p in sk["processes"] if p["stale_reason"] != "heartbeat expired"}
    assert set(listed) == {p["identity"] for p in theirs["processes"]}
    for their in theirs["processes"]:
        mine = listed[their["identity"]]
        assert (mine["hostname"], mine["pid"], mine["tag"], mine["queues"],
                mine["concurrency"], mine["busy"], mine["quiet"], mine["rss_kb"]) == (
            their["hostname"], their["pid"], their["tag"], their["queues"],
            their["concurrency"], their["busy"], their["quiet"] == "true", their["rss"])
        assert mine["beat_age_s"] == pytest.approx(theirs["now"] - their["beat"] + offset,
                                                   abs=1.0)


def test_stale_identities_are_not_live(scenario: Scenario) -> None:
    """A SIGKILLed worker and an expired identity are stale; only the live worker serves."""
    sk = run_check(scenario.config)["sidekiq"]
    by_id = {p["identity"]: p for p in sk["processes"]}
    assert set(by_id) == {scenario.victim, scenario.worker, GHOST}
    assert by_id[scenario.worker]["alive"] is True
    assert by_id[scenario.victim]["alive"] is False
    assert by_id[scenario.victim]["stale_reason"].startswith("no heartbeat for")
    assert by_id[GHOST] == {**by_id[GHOST], "alive": False, "stale_reason": "heartbeat expired"}
    assert (sk["live_processes"], sk["stale_processes"]) == (1, 2)
    assert (sk["busy"], sk["concurrency"], sk["utilisation"]) == (1, 2, 0.5)
    served = {q["name"]: q["served"] for q in sk["queues"]}
    assert served == {"default": True, "mailers": True, "push": False, "ingress": False,
                      "pull": False, "scheduler": False}
    assert sk["anomaly_count"] == 0


def test_read_only_acl_user(scenario: Scenario) -> None:
    """Connected as a user allowed only read commands, INFO and PING, the reading is the same."""
    admin = scenario.redis.client()
    admin.acl_setuser("statusbot", enabled=True, passwords=["+ro-secret"],
                      keys=["~*"], commands=["-@all", "+@read", "+info", "+ping"])
    config = scenario.config.with_name("acl.toml")
    config.write_text(
        f'[redis]\nurl = "redis://statusbot@127.0.0.1:{scenario.redis.port}/0"\n'
        f'namespace = "{scenario.namespace}"\npassword_env = "STATUSBOT_TEST_REDIS_PASSWORD"\n'
    )
    as_admin = run_check(scenario.config)
    as_reader = run_check(config, env={"STATUSBOT_TEST_REDIS_PASSWORD": "ro-secret"})

    def stable(snapshot: dict[str, Any]) -> dict[str, Any]:
        sk = dict(snapshot["sidekiq"])
        sk["queues"] = [{**q, "latency_s": None} for q in sk["queues"]]
        sk["processes"] = [
            {**p, "beat_age_s": None, "rss_kb": None,
             "stale_reason": re.sub(r"\d+", "N", p["stale_reason"] or "")}
            for p in sk["processes"]
        ]
        return sk

    assert as_reader["redis"]["reachable"] is True
    assert as_reader["redis"]["url"] == f"redis://statusbot@127.0.0.1:{scenario.redis.port}/0"
    assert stable(as_reader) == stable(as_admin)
    # The user really is read-only.
    reader = scenario.redis.client(username="statusbot", password="ro-secret")
    with pytest.raises(redis.exceptions.NoPermissionError):
        reader.set(scenario.key("statusbot-probe"), "x")
