"""Gathering the advisor's inputs from snapshots, job metrics and history."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from bot import advice
from bot.advice import LiveProcess, Peaks, QueueWork
from bot.advising import (
    gather,
    live_processes,
    memory_room,
    oldest_classes,
    peaks_from,
    queue_work,
)
from bot.collect import jobmetrics
from bot.collect.sidekiq import parse_info
from bot.history import DAY, History, Sample
from bot.model import (
    HostReading,
    HostSource,
    HostStats,
    ProcessStats,
    QueueStats,
    RedisStats,
    SidekiqStats,
    Snapshot,
)
from bot.store import Store

T = 1_800_000_000.0
MB = 2**20
GB = 2**30


def process(identity: str, queues: tuple[str, ...], weights: tuple[int, ...] = (), *,
            concurrency: int = 10, busy: int = 2, rss_kb: int | None = 400_000,
            alive: bool = True, quiet: bool = False) -> ProcessStats:
    return ProcessStats(identity, alive, None if alive else "heartbeat expired", "w1", 1,
                        "mastodon", "7.3.2", queues, concurrency, busy, rss_kb, quiet, 1.0,
                        T - 100, weights)


def snapshot(queues: dict[str, int], processes: tuple[ProcessStats, ...] = (),
             available: int | None = 4 * GB, at: float = T,
             classes: dict[str, str] | None = None) -> Snapshot:
    classes = classes or {}
    stats = SidekiqStats(
        processed=0, failed=0, processed_today=0, failed_today=0, scheduled=0, retries=0,
        dead=0, enqueued=sum(queues.values()),
        queues=tuple(QueueStats(name, size, 0.0, False, True, classes.get(name))
                     for name, size in queues.items()),
        processes=processes, processes_registered=len(processes),
        live_processes=sum(p.alive for p in processes), stale_processes=0,
        busy=sum(p.busy or 0 for p in processes),
        concurrency=sum(p.concurrency or 0 for p in processes), utilisation=None,
        anomaly_count=0, anomalies=())
    host = None if available is None else HostStats(
        hostname="h", memory_total_bytes=16 * GB, memory_available_bytes=available,
        memory_percent=50.0, swap_total_bytes=0, swap_used_bytes=0, swap_percent=0.0,
        load_1m=0.0, load_5m=0.0, load_15m=0.0, cpu_count=2, cpu_percent=1.0, disks=(),
        roles=())
    return Snapshot(at, RedisStats("redis://127.0.0.1:6379/0", "", True), stats, host)


def metrics(*work: jobmetrics.QueueWork, note: str | None = None) -> jobmetrics.JobMetrics:
    return jobmetrics.JobMetrics("coarse" if note else "metrics", T, 15, tuple(work), None,
                                 (), 0, 0, (), coarse_note=note)


def measured(queue: str, per_min: float | None, mean: float | None,
             growth: float | None = None, coarse: bool = False) -> jobmetrics.QueueWork:
    return jobmetrics.QueueWork(queue, per_min, mean, 0.0 if per_min else None, growth,
                                None, coarse, ())


@pytest.mark.parametrize(
    ("info", "expected"),
    [
        pytest.param({"queues": ["push", "push", "push", "default"]},
                     (("push", "default"), (3, 1)), id="sidekiq6-expanded-weights"),
        pytest.param({"queues": ["push", "default"]}, (("push", "default"), (0, 0)),
                     id="sidekiq6-strict"),
        pytest.param({"queues": ["default", "push"], "weights": [{"default": 8, "push": 6}]},
                     (("default", "push"), (8, 6)), id="sidekiq7-weights"),
        pytest.param({"queues": ["default", "push"], "weights": [{"default": 0, "push": 0}]},
                     (("default", "push"), (0, 0)), id="sidekiq7-strict"),
        pytest.param({"queues": ["a", "b"], "weights": [{"a": "3", "b": 10**9}]},
                     (("a", "b"), (0, 0)), id="hostile-weights-read-as-none"),
        pytest.param({"queues": ["a"], "weights": "x"}, (("a",), (0,)), id="weights-not-list"),
        pytest.param({"capsules": {"default": {"concurrency": 5, "weights": {"a": 2, "b": 1}}}},
                     (("a", "b"), (2, 1)), id="sidekiq8-capsules"),
        pytest.param({}, ((), ()), id="nothing"),
    ],
)
def test_heartbeat_weights(info: dict[str, Any],
                           expected: tuple[tuple[str, ...], tuple[int, ...]]) -> None:
    """Weights come from Sidekiq ≥ 7's weights, or from repeats in an expanded queue list."""
    parsed = parse_info(json.dumps(info))
    assert (parsed.queues, parsed.queue_weights) == expected


def test_live_processes_carry_weights_rss_and_skip_dead_and_quiet() -> None:
    """Only live, working processes count; RSS is in bytes; weights pair with their queues."""
    shot = snapshot({"push": 0}, (
        process("a", ("push", "default"), (3, 1), rss_kb=1000),
        process("b", ("pull",), (), rss_kb=None),
        process("dead", ("push",), alive=False),
        process("quiet", ("push",), quiet=True),
    ))
    expected = (LiveProcess("a", 10, 2, (("push", 3), ("default", 1)), 1_024_000),
                LiveProcess("b", 10, 2, (("pull", 0),), None))
    assert live_processes(shot) == expected


@pytest.mark.parametrize(
    ("work", "expected"),
    [
        pytest.param(measured("push", 120.0, 0.5, 30.0),
                     QueueWork("push", 4200, 30.0, 120.0, 0.5, 0.0, False), id="metrics"),
        pytest.param(measured("push", 120.0, 0.5, None),
                     QueueWork("push", 4200, 0.0, 120.0, 0.5, 0.0, False), id="growth-unknown"),
        pytest.param(measured("push", None, None, 12.0, coarse=True),
                     QueueWork("push", 4200, 12.0, 0.0, 0.0, 0.0, True), id="coarse-unsplit"),
        pytest.param(None, QueueWork("push", 4200, 0.0, 0.0, 0.0), id="no-metrics"),
    ],
)
def test_queue_work(work: jobmetrics.QueueWork | None, expected: QueueWork) -> None:
    """A queue's figures come from its metrics; what is unknown is 0 (no timings: no sizing)."""
    found = queue_work(snapshot({"push": 4200}), metrics(work) if work else None)
    assert found == (expected,)


def test_oldest_classes_only_where_read() -> None:
    """Queues whose oldest class is unknown are left out of the map."""
    shot = snapshot({"push": 3, "x": 1, "y": 0}, classes={"x": "CustomWorker"})
    assert oldest_classes(shot) == {"x": "CustomWorker"}


def test_gather_advises_a_queue_behind() -> None:
    """Snapshot + metrics → inputs; the advisor then suggests a process that fits."""
    shot = snapshot({"push": 4200, "default": 0},
                    (process("p1", ("default", "push"), (0, 0), concurrency=5, busy=5),))
    found = gather(shot, metrics(measured("push", 60.0, 2.0, 120.0)))
    assert found.growth_known and found.inputs.memory_available_bytes == 4 * GB
    assert found.inputs.database is None and found.inputs.peaks is None
    result = advice.advise(found.inputs)
    assert [item.queue for item in result.behind] == ["push"]
    change = result.behind[0].change
    assert change is not None and change.queues[0] == "push"
    assert change.memory_bytes + change.memory_uncertainty_bytes <= 4 * GB
    assert any("could not check" in line.lower() or "not checked" in line.lower()
               for line in advice.render(result))


def test_gather_without_host_or_growth() -> None:
    """No host reading: memory unknown; one snapshot: growth not known."""
    found = gather(snapshot({"push": 10}, available=None), metrics(measured("push", 6.0, 1.0)))
    assert (found.inputs.memory_available_bytes, found.growth_known) == (None, False)


@pytest.fixture
def history() -> Iterator[History]:
    store = Store(":memory:")
    yield History(store)
    store.close()


def test_peaks_from_history(history: History) -> None:
    """30-day peaks: most memory used, the total, and one process's busy peak."""
    history.record_many([
        Sample(at=T - 40 * DAY, memory_used_bytes=15 * GB, memory_total_bytes=16 * GB, busy=9),
        Sample(at=T - 5 * DAY, memory_used_bytes=5 * GB, memory_total_bytes=16 * GB, busy=3),
        Sample(at=T - 60, memory_used_bytes=4 * GB, memory_total_bytes=16 * GB, busy=1),
    ])
    one = (LiveProcess("p1", 25, 1, (("pull", 0),), None),)
    assert peaks_from(history, T, one) == Peaks(5 * GB, 16 * GB, {"p1": 3})
    two = (*one, LiveProcess("p2", 5, 0, (("push", 0),), None))
    assert peaks_from(history, T, two) == Peaks(5 * GB, 16 * GB, {})


def test_no_samples_no_peaks(history: History) -> None:
    """An empty history gives no peaks (the advice says nothing about idle resources)."""
    assert peaks_from(history, T, ()) is None


def test_idle_findings_through_gather(history: History) -> None:
    """With history, idle threads and a smaller server come out of the advisor."""
    history.record_many([Sample(at=T - DAY, memory_used_bytes=5 * GB,
                                memory_total_bytes=16 * GB, busy=3)])
    shot = snapshot({"pull": 0}, (process("p1", ("pull",), concurrency=25, busy=1),))
    result = advice.advise(gather(shot, metrics(), history).inputs)
    assert [(p.peak, p.concurrency) for p in result.idle_processes] == [(3, 25)]
    assert result.smaller_server is not None and result.smaller_server.size_gb == 8


def _reading(name: str, available: int | None) -> HostReading:
    stats = None if available is None else HostStats(
        hostname=name, memory_total_bytes=16 * GB, memory_available_bytes=available,
        memory_percent=50.0, swap_total_bytes=0, swap_used_bytes=0, swap_percent=0.0,
        load_1m=0.0, load_5m=0.0, load_15m=0.0, cpu_count=2, cpu_percent=1.0, disks=(),
        roles=())
    return HostReading(name, HostSource.AGENT, stats, None if stats else "not reporting")


def _on(shot: Snapshot, *readings: HostReading, hostnames: dict[str, str] | None = None
        ) -> Snapshot:
    hostnames = hostnames or {}
    assert shot.sidekiq is not None
    processes = tuple(replace(p, hostname=hostnames.get(p.identity, p.hostname))
                      for p in shot.sidekiq.processes)
    return replace(shot, hosts=readings, sidekiq=replace(shot.sidekiq, processes=processes))


@pytest.mark.parametrize(("readings", "hostnames", "expected"), [
    pytest.param((), {}, (4 * GB, ""), id="one-host-unnamed"),
    pytest.param((_reading("sk1", 1 * GB), _reading("sk2", 6 * GB)),
                 {"p1": "sk1", "p2": "sk2"}, (6 * GB, "sk2"), id="most-room-among-sidekiq-hosts"),
    pytest.param((_reading("sk1", 1 * GB), _reading("db", 12 * GB)),
                 {"p1": "sk1", "p2": "sk1"}, (1 * GB, "sk1"), id="db-host-not-a-candidate"),
    pytest.param((_reading("sk1", None), _reading("db", 12 * GB)),
                 {"p1": "sk1", "p2": "sk1"}, (4 * GB, "h"), id="sidekiq-host-silent-local"),
    pytest.param((_reading("web", 9 * GB),), {"p1": "h", "p2": "h"}, (4 * GB, "h"),
                 id="local-runs-sidekiq"),
])
def test_memory_room_on_several_hosts(readings: tuple[HostReading, ...],
                                      hostnames: dict[str, str],
                                      expected: tuple[int, str]) -> None:
    """With several hosts the advice uses the Sidekiq host with the most room, and names it."""
    shot = _on(snapshot({"push": 4200}, (process("p1", ("push",)), process("p2", ("push",)))),
               *readings, hostnames=hostnames)
    assert memory_room(shot) == expected


def test_advice_names_the_host_of_its_memory() -> None:
    """The suggested process's memory is that of the named host; hostile names neutralised."""
    shot = _on(snapshot({"push": 4200, "default": 0},
                        (process("p1", ("default", "push"), (0, 0), concurrency=5, busy=5),)),
               _reading("@someone", 6 * GB), hostnames={"p1": "@someone"})
    found = gather(shot, metrics(measured("push", 60.0, 2.0, 120.0)))
    result = advice.advise(found.inputs)
    assert result.to_json()["memory"] == {**result.to_json()["memory"], "host": "@someone",
                                          "available_bytes": 6 * GB}
    text = " ".join(advice.render(result))
    assert "would cost about 430 MB (\uff20someone: 6 GB available)" in text
    assert "@someone" not in text
