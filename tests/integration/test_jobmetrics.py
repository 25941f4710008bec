"""Job metrics from a real redis-server holding Sidekiq 7 and 8 minute hashes, hostile ones too."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
import redis

from bot.collect import redis_client
from bot.collect.jobmetrics import (
    MAX_JOBS_PER_MINUTE,
    JobMetricsReader,
    minute_keys,
    read_totals,
    summarise,
)
from bot.config import RedisConfig
from bot.model import ProcessStats, QueueStats, RedisStats, SidekiqStats, Snapshot
from tests.integration.servers import RedisServer

pytestmark = pytest.mark.integration

NOW = 1_767_225_600.0 + 3 * 3600 + 7 * 60 + 30  # 2026-01-01 03:07:30 UTC
MINUTE = int(NOW // 60)


def stats(sizes: Mapping[str, int], processed: int = 0, failed: int = 0, busy: int = 0,
          version: str | None = "7.3.2") -> SidekiqStats:
    """A snapshot's Sidekiq part with these backlogs and counters."""
    queues = tuple(QueueStats(name, size, 0.0, False, True) for name, size in sizes.items())
    process = ProcessStats("h:1:abc", True, None, "h", 1, "mastodon", version, tuple(sizes), 5,
                           busy, 100_000, False, 1.0, NOW - 3600)
    return SidekiqStats(processed, failed, 0, 0, 0, 0, 0, sum(sizes.values()), queues,
                        (process,), 1, 1, 0, busy, 5, busy / 5, 0, ())


def snap(at: float, sidekiq: SidekiqStats) -> Snapshot:
    """A snapshot taken at ``at``."""
    return Snapshot(at, RedisStats("redis://x", "", True), sidekiq, None)


def seed(client: redis.Redis, minutes_back: range, fields: Mapping[str, object],
         eight: bool = False) -> None:
    """Write ``fields`` into the 7.x (or 8.x) hash of each minute ``minutes_back`` before NOW's."""
    for back in minutes_back:
        key = minute_keys(MINUTE - back)[1 if eight else 0]
        client.hset(key, mapping={name: str(value) for name, value in fields.items()})


@pytest.mark.parametrize(("minute", "seven", "eight"), [
    pytest.param(MINUTE, "j|20260101|3:7", "j|260101|3:07", id="unpadded-vs-padded"),
    pytest.param(MINUTE + 3 * 60 + 3, "j|20260101|6:10", "j|260101|6:10", id="two-digits"),
    pytest.param(MINUTE - 188, "j|20251231|23:59", "j|251231|23:59", id="day-before"),
])
def test_minute_keys(minute: int, seven: str, eight: str) -> None:
    """The 7.x key is Sidekiq 7.3.2's strftime('%Y%m%d|%-H:%-M'); 8.x pads the minute."""
    assert minute_keys(minute) == (seven, eight)


@pytest.mark.parametrize("eight", [False, True], ids=["sidekiq7", "sidekiq8"])
def test_work_per_queue(redis_server: RedisServer, eight: bool) -> None:
    """Runs, failures and ms over 10 minutes give jobs/min, mean s, failure share, arrivals."""
    client = redis_server.client()
    seed(client, range(1, 11), {"ActivityPub::DeliveryWorker|p": 60,
                                "ActivityPub::DeliveryWorker|f": 6,
                                "ActivityPub::DeliveryWorker|ms": 27_000,
                                "LinkCrawlWorker|p": 5, "LinkCrawlWorker|ms": 10_000,
                                "CustomWorker|p": 2, "CustomWorker|ms": 100}, eight)
    seed(client, range(11, 20), {"LinkCrawlWorker|p": 1000}, eight)  # outside the window
    seed(client, range(0, 1), {"LinkCrawlWorker|p": 1000}, eight)  # the current minute
    start, end = (MINUTE - 10) * 60.0, MINUTE * 60.0
    snapshots = [snap(start + 2, stats({"push": 100, "pull": 0})),
                 snap(end - 10, stats({"push": 400, "pull": 0}))]
    totals = read_totals(client, MINUTE, 10)
    metrics = summarise(totals, snapshots)
    assert (metrics.source, metrics.anomaly_count, totals.hashes_found) == ("metrics", 0, 10)
    push = metrics.queue("push")
    assert push is not None
    growth = 300 * 60 / (end - 10 - start - 2)
    assert push.jobs_per_min == 60.0
    assert push.mean_s == pytest.approx(0.5)  # 27 s over 54 successful runs
    assert push.failure_share == pytest.approx(0.1)
    assert push.backlog_growth_per_min == pytest.approx(growth)
    assert push.arrivals_per_min == pytest.approx(60 + growth)
    pull = metrics.queue("pull")
    assert pull is not None and (pull.jobs_per_min, pull.mean_s, pull.failure_share) == (
        5.0, 2.0, 0.0)
    assert [(c.name, c.processed) for c in metrics.unmapped] == [("CustomWorker", 20)]
    assert metrics.total_jobs_per_min == 67.0


def test_both_formats_add_up(redis_server: RedisServer) -> None:
    """An upgrade from 7 to 8 inside the window: both halves are counted."""
    client = redis_server.client()
    seed(client, range(1, 6), {"LinkCrawlWorker|p": 10, "LinkCrawlWorker|ms": 1000})
    seed(client, range(6, 11), {"LinkCrawlWorker|p": 30, "LinkCrawlWorker|ms": 3000}, eight=True)
    metrics = summarise(read_totals(client, MINUTE, 10), [])
    pull = metrics.queue("pull")
    assert pull is not None and (pull.jobs_per_min, pull.mean_s) == (20.0, 0.1)


def test_oldest_job_maps_unknown_class(redis_server: RedisServer) -> None:
    """A class outside the table goes to the queue whose oldest job is of that class."""
    client = redis_server.client()
    seed(client, range(1, 3), {"Custom::ThingWorker|p": 4, "Custom::ThingWorker|ms": 400})
    metrics = summarise(read_totals(client, MINUTE, 2), [],
                        {"default": "OtherWorker", "custom": "Custom::ThingWorker"})
    custom = metrics.queue("custom")
    assert custom is not None and custom.jobs_per_min == 4.0 and metrics.unmapped_count == 0


HOSTILE = {
    "not-a-number": ({"LinkCrawlWorker|p": "lots"}, "is not a count"),
    "negative": ({"LinkCrawlWorker|p": "-5"}, "is not a count"),
    "nan": ({"LinkCrawlWorker|p": "nan"}, "is not a count"),
    "inf": ({"LinkCrawlWorker|ms": "inf"}, "is not a count"),
    "huge": ({"LinkCrawlWorker|p": str(10**30)}, "is not a count"),
    "too-many-runs": ({"LinkCrawlWorker|p": str(MAX_JOBS_PER_MINUTE + 1)}, "runs in one minute"),
    "failures-above-runs": ({"LinkCrawlWorker|p": "1", "LinkCrawlWorker|f": "3"},
                            "failures but 1 runs"),
    "impossible-duration": ({"LinkCrawlWorker|p": "1", "LinkCrawlWorker|ms": str(10**15)},
                            "ms for 1 successful runs"),
    "mention": ({"@someone|p": "3"}, "not a class name"),
    "control-characters": ({"Evil\x1b[2JWorker|p": "3"}, "not a class name"),
    "long-name": ({"A" * 300 + "|p": "3"}, "not a class name"),
    "unknown-field": ({"LinkCrawlWorker|x": "3"}, "unexpected field"),
    "no-separator": ({"LinkCrawlWorker": "3"}, "unexpected field"),
}


@pytest.mark.parametrize(("fields", "problem"), list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_values_are_anomalies(redis_server: RedisServer, fields: Mapping[str, str],
                                      problem: str) -> None:
    """Each malformed value is one anomaly; the sound data beside it still counts."""
    client = redis_server.client()
    seed(client, range(1, 2), {**fields, "ActivityPub::DeliveryWorker|p": 6})
    metrics = summarise(read_totals(client, MINUTE, 1), [])
    assert metrics.anomaly_count >= 1
    assert problem in metrics.anomalies[0].problem
    push = metrics.queue("push")
    assert push is not None and push.jobs_per_min == 6.0
    assert all(c.name.isprintable() and len(c.name) < 300 for c in metrics.unmapped)
    pull = metrics.queue("pull")
    assert pull is None or pull.jobs_per_min == 0.0  # the malformed runs are not counted


def test_wrong_key_type(redis_server: RedisServer) -> None:
    """A minute key that is not a hash is an anomaly naming the key."""
    client = redis_server.client()
    client.set(minute_keys(MINUTE - 1)[0], "x")
    seed(client, range(2, 3), {"LinkCrawlWorker|p": 4})
    metrics = summarise(read_totals(client, MINUTE, 2), [])
    assert metrics.anomaly_count == 1 and "WRONGTYPE" in metrics.anomalies[0].problem
    assert metrics.anomalies[0].key == minute_keys(MINUTE - 1)[0]
    pull = metrics.queue("pull")
    assert pull is not None and pull.jobs_per_min == 2.0


def test_thousands_of_classes_are_bounded(redis_server: RedisServer) -> None:
    """Classes beyond the cap add up into one overflow; runs are still all counted."""
    client = redis_server.client()
    seed(client, range(1, 3), {f"Spam{i}Worker|p": 1 for i in range(3000)})
    totals = read_totals(client, MINUTE, 2, max_classes=1000)
    assert len(totals.classes) == 1000
    assert totals.overflow is not None and totals.overflow.processed == 2 * 2000
    metrics = summarise(totals, [])
    assert metrics.total_jobs_per_min == 3000.0
    assert metrics.anomaly_count == 1 and "more than 1000" in metrics.anomalies[0].problem
    assert len(metrics.unmapped) <= 20 and metrics.unmapped_count == 1001


def test_unreachable_redis(redis_server: RedisServer) -> None:
    """Redis down: no figures, the error said, no exception."""
    client = redis_server.client(socket_timeout=1)
    redis_server.stop()
    metrics = summarise(read_totals(client, MINUTE, 5), [])
    assert metrics.source == "none" and metrics.error and "Error" in metrics.error


def test_reads_once_a_minute_in_one_round_trip(redis_server: RedisServer) -> None:
    """Ten reads in a minute ask Redis once, with one pipeline of 2 HGETALL per minute."""
    admin = redis_server.client()
    seed(admin, range(1, 16), {"LinkCrawlWorker|p": 3})
    admin.config_resetstat()
    clock = [NOW]
    reader = JobMetricsReader(redis_server.client(), minutes=15, clock=lambda: clock[0])
    for tick in range(10):
        clock[0] = NOW + tick * 5
        metrics = reader.read([])
        pull = metrics.queue("pull")
        assert pull is not None and pull.jobs_per_min == 3.0
    assert reader.reads == 1
    clock[0] = NOW + 60
    reader.read([])
    assert reader.reads == 2
    info = admin.info("commandstats")
    assert info["cmdstat_hgetall"]["calls"] == 2 * 2 * 15
    # Besides the handshake (HELLO), nothing but HGETALL: read-only.
    assert set(info) - {"cmdstat_hello"} == {"cmdstat_hgetall", "cmdstat_config|resetstat"}


def test_read_only_acl_user(redis_server: RedisServer) -> None:
    """The read works for a user allowed only `-@all +@read +info +ping`."""
    admin = redis_server.client()
    seed(admin, range(1, 4), {"LinkCrawlWorker|p": 3, "LinkCrawlWorker|ms": 300})
    admin.acl_setuser("watcher", enabled=True, passwords=["+s3cret"], keys=["*"],
                      categories=["-@all", "+@read"], commands=["+info", "+ping"])
    url = f"redis://watcher:s3cret@127.0.0.1:{redis_server.port}/0"
    reader = JobMetricsReader(redis_client(RedisConfig(url=url)), minutes=3,
                              clock=lambda: NOW)
    metrics = reader.read([])
    pull = metrics.queue("pull")
    assert metrics.anomaly_count == 0 and pull is not None and pull.jobs_per_min == 3.0


def test_sidekiq6_coarse_estimate(redis_server: RedisServer) -> None:
    """No metrics and Sidekiq 6 processes: counters and backlogs, flagged coarse."""
    client = redis_server.client()
    start = (MINUTE - 10) * 60.0
    snapshots = [snap(start + 10 * i, stats({"push": 1000 + 50 * i, "pull": 0},
                                            processed=10_000 + 100 * i, failed=10 * i, busy=5,
                                            version=None))
                 for i in range(61)]
    metrics = summarise(read_totals(client, MINUTE, 10), snapshots)
    assert metrics.source == "coarse" and metrics.coarse_note
    push = metrics.queue("push")
    assert push is not None and push.coarse
    assert push.jobs_per_min == pytest.approx(600.0)
    assert push.mean_s == pytest.approx(0.5)  # 5 busy threads / 10 jobs a second
    assert push.failure_share == pytest.approx(0.1)
    assert push.backlog_growth_per_min == pytest.approx(300.0)
    assert push.arrivals_per_min == pytest.approx(900.0)
    pull = metrics.queue("pull")
    assert pull is not None and pull.jobs_per_min is None and pull.backlog_growth_per_min == 0.0
