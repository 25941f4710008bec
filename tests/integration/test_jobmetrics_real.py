"""Job metrics as real Sidekiq 7.3.2 (Debian 13) writes them: known work on one queue.

A worker with 4 threads serves only ``push``, which holds far more jobs
than it can run, each sleeping 0.5 s: the truth is 4 x 60 / 0.5 = 480 jobs a
minute of 0.5 s each, and the backlog shrinking by as much (no arrivals).
The metrics of two whole minutes while all threads are busy must agree
within ±25 %, read as a read-only ACL user.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Iterator

import pytest

from bot.collect import redis_client
from bot.collect.jobmetrics import JobMetricsReader, minute_keys
from bot.collect.sidekiq import SidekiqReader
from bot.config import RedisConfig
from bot.model import Snapshot
from tests.integration.conftest import need
from tests.integration.servers import RedisServer, Sidekiq, sidekiq_root, wait_for

pytestmark = pytest.mark.integration

THREADS = 4
SECONDS = 0.5
TRUE_RATE = THREADS * 60 / SECONDS
WINDOW = 2


@pytest.fixture
def sidekiq7(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RedisServer, Sidekiq]]:
    """A fresh redis-server and Debian 13's Sidekiq 7.3 writing to it."""
    need(None if shutil.which("redis-server") else "redis-server is not installed")
    root, missing = sidekiq_root(7)
    need(missing)
    server = RedisServer(tmp_path_factory.mktemp("jobmetrics7"))
    sidekiq = Sidekiq(root, server.url)
    try:
        yield server, sidekiq
    except Exception:
        print(sidekiq.log_tail())
        raise
    finally:
        sidekiq.stop()
        server.stop()


def test_real_sidekiq7_rate_and_duration(sidekiq7: tuple[RedisServer, Sidekiq]) -> None:
    """Jobs/min and mean seconds from Sidekiq 7.3.2's own metrics are within ±25 % of the truth."""
    server, sidekiq = sidekiq7
    admin = server.client()
    sidekiq.enqueue([{"class": "SlowJob", "queue": "push", "count": 3000, "args": [SECONDS]}])
    sidekiq.start_worker(["push"], THREADS)
    snapshot_reader = SidekiqReader(server.client(), url=server.url)

    def snapshot() -> Snapshot:
        redis_stats, stats = snapshot_reader.read()
        return Snapshot(time.time(), redis_stats, stats, None)

    def all_busy() -> bool:
        stats = snapshot().sidekiq
        return stats is not None and stats.busy == THREADS

    wait_for(all_busy, 60, "4 busy threads")
    # The first whole minute after a full beat (10 s) of busy threads.
    first = math.ceil((time.time() + 10) / 60)
    time.sleep(max(0.0, first * 60 - time.time()))
    snapshots = [snapshot()]
    time.sleep(max(0.0, (first + WINDOW) * 60 - time.time()))
    snapshots.append(snapshot())
    time.sleep(12)  # the beat after the window's end flushes its last seconds
    assert admin.exists(minute_keys(first)[0]), "Sidekiq 7.3 wrote no j|YYYYMMDD|H:M hash"

    admin.acl_setuser("watcher", enabled=True, passwords=["+s3cret"], keys=["*"],
                      categories=["-@all", "+@read"], commands=["+info", "+ping"])
    url = f"redis://watcher:s3cret@127.0.0.1:{server.port}/0"
    reader = JobMetricsReader(redis_client(RedisConfig(url=url)), minutes=WINDOW,
                              clock=lambda: (first + WINDOW) * 60 + 12.0)
    metrics = reader.read(snapshots, {"push": "SlowJob"})
    assert (metrics.source, metrics.anomaly_count) == ("metrics", 0)
    push = metrics.queue("push")
    assert push is not None and push.classes == ("SlowJob",)
    assert push.jobs_per_min == pytest.approx(TRUE_RATE, rel=0.25)
    assert push.mean_s == pytest.approx(SECONDS, rel=0.25)
    assert push.failure_share == 0.0
    # Nothing arrives: the backlog shrinks by what is done.
    assert push.backlog_growth_per_min == pytest.approx(-TRUE_RATE, rel=0.25)
    assert push.arrivals_per_min is not None and push.arrivals_per_min < 0.25 * TRUE_RATE
