"""Capacity advice against real Sidekiq (issue 10): known arrivals, too few threads.

Jobs sleeping ``SECONDS`` arrive on ``push`` at ``RATE`` a second (a thread of
the test pushes them as Sidekiq's client does), while one process with
``THREADS`` threads serves it: the queue needs RATE x SECONDS = 5 busy threads
(Little's law) and grows by RATE - THREADS / SECONDS = 8 jobs a second.
After ``WINDOW`` whole minutes with every thread busy, the advisor's inputs
are built from a snapshot (``bot.collect``), the job metrics
(``JobMetricsReader``) and the host's memory, exactly as a caller would.

- Its threads needed, before the margin (``threads_needed / margin``), must be
  within ±25 % of RATE x SECONDS with Sidekiq 7.3.2's job metrics, ±50 % with
  Sidekiq 6.4.1's coarse estimate.
- The process it suggests (its ``-c`` and ``-q``) is then started beside the
  first, arrivals going on: the time until the backlog is back under
  ``ADVICE_BEHIND_MIN_JOBS`` must be within ±30 % of its catch-up estimate.

Run with ``-s`` to see the measured figures (bench/RESULTS.md keeps them).
"""

from __future__ import annotations

import json
import math
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
import redis

from bot import advice, defaults
from bot.collect.host import HostReader
from bot.collect.jobmetrics import JobMetricsReader
from bot.collect.sidekiq import SidekiqReader
from bot.model import Snapshot
from tests.integration.conftest import need
from tests.integration.servers import RedisServer, Sidekiq, sidekiq_root, wait_for

pytestmark = [pytest.mark.integration]

QUEUE = "push"
SECONDS = 0.25
RATE = 20.0
"""Jobs pushed a second."""
THREADS = 3
TRUE_NEEDED = RATE * SECONDS
WINDOW = 1
SNAPSHOT_EVERY = 10.0
TOLERANCE = {7: 0.25, 6: 0.50}
CATCH_UP_TOLERANCE = 0.30
POLICY = advice.Policy(catch_up_target_s=120.0)
"""A two-minute catch-up target: the suggested process is larger, the test shorter."""


class Enqueuer:
    """Pushes ``SlowJob`` jobs at a steady rate on one queue, as Sidekiq's client writes them."""

    def __init__(self, client: redis.Redis, rate: float) -> None:
        self._client = client
        self._rate = rate
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.pushed = 0
        self.started = 0.0
        self.stopped = 0.0

    def _job(self, now: float) -> str:
        return json.dumps({"class": "SlowJob", "args": [SECONDS], "retry": True,
                           "queue": QUEUE, "jid": uuid.uuid4().hex[:24],
                           "created_at": now, "enqueued_at": now})

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            now = time.time()
            due = int((now - self.started) * self._rate) - self.pushed
            if due <= 0:
                continue
            pipe = self._client.pipeline(transaction=False)
            pipe.sadd("queues", QUEUE)
            pipe.lpush(f"queue:{QUEUE}", *(self._job(now) for _ in range(due)))
            pipe.execute()
            self.pushed += due

    def start(self) -> None:
        """Start pushing."""
        self.started = time.time()
        self._thread.start()

    def stop(self) -> None:
        """Stop pushing and wait for the thread."""
        self._stop.set()
        self._thread.join(5)
        self.stopped = time.time()

    @property
    def measured_rate(self) -> float:
        """Jobs pushed a second so far."""
        end = self.stopped or time.time()
        return self.pushed / max(1e-9, end - self.started)


@dataclass
class Run:
    """One real Sidekiq with its Redis."""

    major: int
    server: RedisServer
    sidekiq: Sidekiq


@dataclass
class Outcome:
    """What one scenario measured."""

    major: int
    source: str
    raw_needed: float
    threads_needed: float
    margin: float
    catch_up_s: float
    caught_up_s: float
    line: str


@pytest.fixture
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Run]]:
    """Two fresh redis-servers, each with a real Sidekiq (7.3.2 in its chroot, 6.4.1 here)."""
    need(None if shutil.which("redis-server") else "redis-server is not installed")
    found: list[Run] = []
    try:
        for major in (7, 6):
            root, missing = sidekiq_root(major)
            need(missing)
            server = RedisServer(tmp_path_factory.mktemp(f"advice{major}"))
            found.append(Run(major, server, Sidekiq(root, server.url)))
        yield found
    except Exception:
        for run in found:
            print(run.sidekiq.log_tail())
        raise
    finally:
        for run in found:
            run.sidekiq.stop()
            run.server.stop()


def inputs_from(snapshot: Snapshot, metrics_queue: object,
                memory_available: int | None) -> advice.AdviceInputs:
    """Build the advisor's inputs from a snapshot, the job metrics of the queue and host memory."""
    from bot.collect.jobmetrics import QueueWork as MetricsWork

    assert isinstance(metrics_queue, MetricsWork)
    stats = snapshot.sidekiq
    assert stats is not None
    backlog = {queue.name: queue.size for queue in stats.queues}
    work = advice.QueueWork(
        name=metrics_queue.queue, backlog=backlog.get(metrics_queue.queue, 0),
        growth_per_min=metrics_queue.backlog_growth_per_min or 0.0,
        done_per_min=metrics_queue.jobs_per_min or 0.0,
        mean_job_s=metrics_queue.mean_s or 0.0,
        failure_share=metrics_queue.failure_share or 0.0, coarse=metrics_queue.coarse)
    processes = tuple(
        advice.LiveProcess(identity=p.identity, concurrency=p.concurrency or 0, busy=p.busy or 0,
                           queues=tuple((name, 0) for name in p.queues),
                           rss_bytes=None if p.rss_kb is None else p.rss_kb * 1024)
        for p in stats.processes if p.alive)
    return advice.AdviceInputs(queues=(work,), processes=processes,
                               memory_available_bytes=memory_available)


def scenario(run: Run, first: int) -> Outcome:
    """Busy threads from minute ``first``; the advice after ``WINDOW`` minutes; its catch-up."""
    server, sidekiq = run.server, run.sidekiq
    reader = SidekiqReader(server.client(), url=server.url)
    host = HostReader()
    snapshots: list[Snapshot] = []

    def snapshot() -> Snapshot:
        redis_stats, stats = reader.read()
        taken = Snapshot(time.time(), redis_stats, stats, None)
        snapshots.append(taken)
        return taken

    enqueuer = Enqueuer(server.client(), RATE)
    sidekiq.start_worker([QUEUE], THREADS)
    enqueuer.start()
    try:
        def all_busy() -> bool:
            stats = snapshot().sidekiq
            return stats is not None and stats.busy == THREADS and stats.enqueued > 0

        wait_for(all_busy, 90, f"{THREADS} busy threads and a backlog")
        assert time.time() + 10 <= first * 60, "busy too late for the first whole minute"
        flush = (first + WINDOW) * 60 + 12.0  # the beat after the window flushes its last seconds
        while time.time() < flush:
            time.sleep(max(0.0, min(SNAPSHOT_EVERY, flush - time.time())))
            snapshot()
        # The class of the queue's oldest job maps SlowJob (not a Mastodon worker) to ``push``,
        # as the snapshot's oldest job does.
        oldest = json.loads(server.client().lindex(f"queue:{QUEUE}", -1) or "{}").get("class")
        metrics = JobMetricsReader(server.client(), minutes=WINDOW,
                                   clock=lambda: (first + WINDOW) * 60 + 12.0).read(
            snapshots, {QUEUE: oldest} if isinstance(oldest, str) else None)
        assert metrics.source == ("metrics" if run.major >= 7 else "coarse"), metrics
        work = metrics.queue(QUEUE)
        assert work is not None, metrics
        memory = host.read().memory_available_bytes
        inputs = inputs_from(snapshots[-1], work, memory)
        result = advice.advise(inputs, POLICY)
        [item] = result.behind
        assert item.queue == QUEUE and item.threads_needed is not None, item
        raw_needed = item.threads_needed / result.margin
        change = item.change
        assert change is not None and change.catch_up_s is not None, item
        assert change.queues[0] == QUEUE

        # The process the advice suggests, beside the first; arrivals go on.
        started = time.time()
        sidekiq.start_worker(list(change.queues), change.threads)
        admin = server.client()
        deadline = started + 3 * change.catch_up_s + 60
        while admin.llen(f"queue:{QUEUE}") > defaults.ADVICE_BEHIND_MIN_JOBS:
            assert time.time() < deadline, "the backlog did not come down"
            time.sleep(0.25)
        caught_up = time.time() - started
    finally:
        enqueuer.stop()
    line = (f"Sidekiq {run.major} ({metrics.source}): pushed {enqueuer.measured_rate:.2f}/s "
            f"(nominal {RATE}), D={SECONDS}s, -c {THREADS}; measured done "
            f"{work.jobs_per_min}/min, mean {work.mean_s} s, growth "
            f"{work.backlog_growth_per_min}/min; arrivals {item.arrivals_per_min:.1f}/min; "
            f"threads needed {raw_needed:.2f} before margin ({item.threads_needed:.2f} with "
            f"x{result.margin:g}) vs truth {TRUE_NEEDED:.2f}; backlog {item.backlog:.0f}; "
            f"advice {change.command()} catch-up {change.catch_up_s:.1f} s; measured "
            f"{caught_up:.1f} s")
    return Outcome(run.major, metrics.source, raw_needed, item.threads_needed, result.margin,
                   change.catch_up_s, caught_up, line)


def test_advice_against_real_sidekiq(runs: list[Run]) -> None:
    """Threads needed within ±25 % (7) or ±50 % (6) of R x D; the advice catches up in time.

    Both Sidekiqs run at once (each with its own Redis), over the same whole minutes.
    """
    # Whole minutes from the first that starts at least 40 s from now (time to boot
    # both Sidekiqs and fill every thread, plus a full beat of busy threads).
    first = math.ceil((time.time() + 40) / 60)
    with ThreadPoolExecutor(len(runs)) as pool:
        outcomes = list(pool.map(lambda run: scenario(run, first), runs))
    for outcome in outcomes:
        print(f"\n{outcome.line}")
    for outcome in outcomes:
        assert outcome.raw_needed == pytest.approx(TRUE_NEEDED, rel=TOLERANCE[outcome.major])
        assert outcome.caught_up_s == pytest.approx(outcome.catch_up_s, rel=CATCH_UP_TOLERANCE)
