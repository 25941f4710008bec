"""Sample history: downsampling, retention, coverage, incident history, the disk bound."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot import defaults
from bot.history import (
    DAY,
    LOCAL_HOST_NAME,
    ClosedIncident,
    History,
    HostSample,
    Sample,
    bound,
    host_samples_from,
    incident_stats,
    sample_from,
)
from bot.model import (
    Affected,
    DiskStats,
    HostPoint,
    HostReading,
    HostSource,
    HostStats,
    Incident,
    Point,
    QueueStats,
    RedisStats,
    Severity,
    SidekiqStats,
    Snapshot,
)
from bot.store import _MIGRATIONS, _SCHEMA, SAMPLE_METRICS, SCHEMA_VERSION, Store

T0 = float(1_780_000_000 // DAY * DAY)  # a UTC midnight
"""Start of every simulated timeline."""


@pytest.fixture
def store() -> Iterator[Store]:
    s = Store(":memory:")
    yield s
    s.close()


def raw_row(at: float, value: float | None, metric: str = "cpu_percent",
            ) -> tuple[float | None, ...]:
    values: list[float | None] = [None] * len(SAMPLE_METRICS)
    values[SAMPLE_METRICS.index(metric)] = value
    values[SAMPLE_METRICS.index("redis_ok")] = 1.0
    return (at, *values)


def test_version_2_file_is_migrated_and_keeps_its_data(tmp_path: Path) -> None:
    """A schema-2 file gains the history tables; its state and notifications survive."""
    path = tmp_path / "state.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(_SCHEMA + _MIGRATIONS[2])
        db.execute("INSERT INTO schema_version (version) VALUES (2)")
        db.execute("INSERT INTO state (name, value, updated_at) VALUES ('a', '{\"x\": 1}', 0)")
        db.execute("INSERT INTO notifications (id, handled_at, result) VALUES ('7', 1, 'ok')")
    db.close()
    with Store(path) as store:
        assert store.get_state("a") == {"x": 1}
        assert store.is_handled("7")
        assert store.sample_counts() == {"raw": 0, "5m": 0, "1d": 0}
        History(store).record(Sample(at=T0, cpu_percent=5.0, redis_ok=True))
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        assert db.execute("SELECT cpu_percent FROM samples_raw").fetchall() == [(5.0,)]
    db.close()


@pytest.mark.parametrize(("values", "expected"), [
    pytest.param([1.0, 2.0, 6.0], [Point(T0, 1.0, 3.0, 6.0, 3)], id="one-bucket"),
    pytest.param([4.0, None, 8.0], [Point(T0, 4.0, 6.0, 8.0, 2)], id="unknown-skipped"),
    pytest.param([None, None], [], id="all-unknown-no-point"),
    pytest.param([1.0] * 5 + [5.0] * 5 + [3.0] * 10,
                 [Point(T0, 1.0, 3.0, 5.0, 10), Point(T0 + 300, 3.0, 3.0, 3.0, 10)],
                 id="two-buckets"),
])
def test_raw_samples_downsample_to_five_minute_buckets(
        store: Store, values: list[float | None], expected: list[Point]) -> None:
    """Raw samples older than a day become 5-minute min/mean/max buckets."""
    history = History(store)
    store.add_samples(raw_row(T0 + 30 * i, v) for i, v in enumerate(values))
    report = history.compact(T0 + 2 * DAY)
    assert report.raw_rolled == len(values)
    assert expected == history.series("cpu_percent", T0, T0 + DAY)
    assert history.compact(T0 + 2 * DAY).raw_rolled == 0
    assert expected == history.series("cpu_percent", T0, T0 + DAY)


@pytest.mark.parametrize(("first", "late", "expected"), [
    pytest.param([2.0, 4.0], [9.0], Point(T0, 2.0, 5.0, 9.0, 3), id="late-max"),
    pytest.param([None], [1.0, 3.0], Point(T0, 1.0, 2.0, 3.0, 2), id="late-fills-unknown"),
])
def test_late_samples_merge_into_an_existing_bucket(
        store: Store, first: list[float | None], late: list[float], expected: Point) -> None:
    """A sample stored after its bucket was compacted is merged into it, not lost."""
    history = History(store)
    store.add_samples(raw_row(T0 + 10 * i, v) for i, v in enumerate(first))
    history.compact(T0 + 2 * DAY)
    store.add_samples(raw_row(T0 + 100 + 10 * i, v) for i, v in enumerate(late))
    history.compact(T0 + 2 * DAY)
    assert [expected] == history.series("cpu_percent", T0, T0 + DAY)


@pytest.mark.parametrize(("buckets", "expected"), [
    pytest.param([[10.0, 20.0], [40.0]], Point(T0, 10.0, 70 / 3, 40.0, 3), id="weighted-mean"),
    pytest.param([[5.0], [None], [7.0, 9.0]], Point(T0, 5.0, 7.0, 9.0, 3), id="gap-bucket"),
])
def test_five_minute_buckets_roll_into_daily_buckets(
        store: Store, buckets: list[list[float | None]], expected: Point) -> None:
    """Buckets older than 40 days become daily ones: min of mins, mean weighted by count."""
    history = History(store)
    store.add_samples(raw_row(T0 + 300 * b + 10 * i, v)
                      for b, values in enumerate(buckets) for i, v in enumerate(values))
    history.compact(T0 + 2 * DAY)
    history.compact(T0 + 45 * DAY)
    assert store.sample_counts() == {"raw": 0, "5m": 0, "1d": 1}
    assert [expected] == history.series("cpu_percent", T0, T0 + DAY)
    assert history.compact(T0 + 400 * DAY + DAY).daily_deleted == 1
    assert store.sample_counts() == {"raw": 0, "5m": 0, "1d": 0}


def test_series_uses_the_finest_resolution_of_each_stretch(store: Store) -> None:
    """Daily buckets for old days, 5-minute ones for last month, raw samples for today."""
    history = History(store)
    now = T0 + 50 * DAY
    store.add_samples(raw_row(at, 1.0) for at in
                      (T0 + 5 * DAY, T0 + 30 * DAY, now - 600, now - 30))
    history.compact(now)
    points = history.series("cpu_percent", T0, now)
    assert [(p.at, p.count) for p in points] == [
        (T0 + 5 * DAY, 1), (T0 + 30 * DAY, 1), (now - 600, 1), (now - 30, 1)]
    assert store.sample_counts() == {"raw": 2, "5m": 1, "1d": 1}


@pytest.mark.parametrize(("times", "start", "end", "expected"), [
    pytest.param([T0 + 30 * i for i in range(20)], T0, T0 + 600, 600.0, id="full"),
    pytest.param([T0 + 30 * i for i in range(10)] + [T0 + 1200 + 30 * i for i in range(10)],
                 T0, T0 + 1500, 600.0, id="gap-not-covered"),
    pytest.param([T0 + 30 * i for i in range(20)], T0 + 150, T0 + 450, 300.0, id="clipped"),
    pytest.param([], T0, T0 + 600, 0.0, id="bot-down"),
])
def test_coverage_of_raw_samples(store: Store, times: list[float], start: float, end: float,
                                 expected: float) -> None:
    """Each raw sample covers one interval; a gap when the bot was down is not covered."""
    history = History(store)
    store.add_samples(raw_row(at, 1.0) for at in times)
    assert expected == history.coverage(start, end)


@pytest.mark.parametrize(("samples", "start", "end", "expected"), [
    pytest.param(10, T0, T0 + 300, 300.0, id="full-bucket"),
    pytest.param(4, T0, T0 + 300, 120.0, id="partial-bucket"),
    pytest.param(10, T0 + 150, T0 + 300, 150.0, id="half-window"),
    pytest.param(10, T0 + 300, T0 + 900, 0.0, id="outside"),
])
def test_coverage_of_buckets(store: Store, samples: int, start: float, end: float,
                             expected: float) -> None:
    """A 5-minute bucket covers its sample count times the interval, at most 300 s."""
    history = History(store)
    store.add_samples(raw_row(T0 + 30 * i, 1.0) for i in range(samples))
    history.compact(T0 + 2 * DAY)
    assert expected == history.coverage(start, end)


def closed(incident_id: str, opened: float, resolved: float,
           components: tuple[str, ...] = ("memory",)) -> ClosedIncident:
    return ClosedIncident(incident_id, opened, resolved, components, Severity.WARNING, False)


@pytest.mark.parametrize(("incidents", "expected"), [
    pytest.param([closed("a", T0 + 100, T0 + 400)], (1, 300.0, 300.0), id="inside"),
    pytest.param([closed("a", T0 - 500, T0 + 100)], (1, 100.0, 100.0), id="clipped-start"),
    pytest.param([closed("a", T0 + 3000, T0 + 5000)], (1, 600.0, 600.0), id="clipped-end"),
    pytest.param([closed("a", T0 - 10, T0 + 4000)], (1, 3600.0, 3600.0), id="spans-window"),
    pytest.param([closed("a", T0 - 500, T0), closed("b", T0 + 3600, T0 + 4000)],
                 (0, 0.0, 0.0), id="touching-outside"),
    pytest.param([closed("a", T0 + 10, T0 + 70), closed("b", T0 + 100, T0 + 400)],
                 (2, 360.0, 300.0), id="two"),
])
def test_incident_stats_clip_to_the_window(
        incidents: list[ClosedIncident], expected: tuple[int, float, float]) -> None:
    """Durations count only the part inside the window."""
    stats = incident_stats(incidents, T0, T0 + 3600)
    assert expected == (stats.count, stats.total_s, stats.longest_s)


def incident(incident_id: str, opened: float, resolved: float | None) -> Incident:
    return Incident(
        id=incident_id, opened_at=opened, resolved_at=resolved, peak=Severity.CRITICAL,
        affected=(Affected("queue:default", Severity.OK, opened, Severity.CRITICAL, "slow"),
                  Affected("memory", Severity.OK, opened, Severity.WARNING, "high")))


def test_incidents_are_recorded_once_and_summarised(store: Store) -> None:
    """record_incident is idempotent by id; stats count components per incident."""
    history = History(store)
    assert history.record_incident(incident("i1", T0, T0 + 600))
    assert not history.record_incident(incident("i1", T0, T0 + 600))
    assert history.record_incident(incident("i2", T0 + 1000, T0 + 1100))
    with pytest.raises(ValueError, match="still open"):
        history.record_incident(incident("i3", T0, None))
    found = history.incidents_between(T0 + 500, T0 + 2000)
    assert [(i.id, i.components, i.peak) for i in found] == [
        ("i1", ("memory", "queue:default"), Severity.CRITICAL),
        ("i2", ("memory", "queue:default"), Severity.CRITICAL)]
    stats = history.incident_stats(T0 + 500, T0 + 2000)
    assert (stats.count, stats.total_s, stats.longest_s) == (2, 200.0, 100.0)
    assert stats.components == {"memory": 2, "queue:default": 2}


HOST = HostStats(
    hostname="h", memory_total_bytes=1000, memory_available_bytes=250, memory_percent=75.0,
    swap_total_bytes=0, swap_used_bytes=0, swap_percent=0.0, load_1m=1.5, load_5m=1.0,
    load_15m=0.5, cpu_count=4, cpu_percent=12.0,
    disks=(DiskStats("/", 100, 40, 60, 40.0),), roles=())
SIDEKIQ = SidekiqStats(
    processed=0, failed=0, processed_today=0, failed_today=0, scheduled=0, retries=0, dead=0,
    enqueued=7, queues=(QueueStats("default", 5, 12.5, False, True),
                        QueueStats("push", 2, 3.0, False, True)),
    processes=(), processes_registered=1, live_processes=1, stale_processes=0, busy=3,
    concurrency=10, utilisation=0.3, anomaly_count=0, anomalies=())
UP = RedisStats("redis://x", "", reachable=True)
DOWN = RedisStats("redis://x", "", reachable=False, error="refused")


@pytest.mark.parametrize(("snapshot", "expected"), [
    pytest.param(Snapshot(T0, UP, SIDEKIQ, HOST), Sample(
        T0, 75.0, 750, 1000, 0.0, 12.0, 1.5, 40.0, 12.5, 7, 3, 10, 1, True, True), id="all"),
    pytest.param(Snapshot(T0, DOWN, None, HOST), Sample(
        T0, 75.0, 750, 1000, 0.0, 12.0, 1.5, 40.0, redis_ok=False, incident_open=True),
        id="redis-down"),
    pytest.param(Snapshot(T0, UP, SIDEKIQ, None, "boom"), Sample(
        T0, queue_latency_s=12.5, enqueued=7, busy=3, concurrency=10, live_processes=1,
        redis_ok=True, incident_open=True), id="host-unknown"),
])
def test_sample_from_snapshot(snapshot: Snapshot, expected: Sample) -> None:
    """What a snapshot lacks is None in the sample, never 0."""
    assert expected == sample_from(snapshot, incident_open=True)


def test_documented_bound_for_the_default_interval() -> None:
    """The module docstring's figures are what bound() computes for a 30 s tick."""
    worst = bound(30.0)
    assert (worst.raw_rows, worst.fine_rows, worst.daily_rows) == (2910, 12096, 402)
    assert worst.bytes < 8_000_000


def test_a_simulated_year_stays_within_the_bound(store: Store) -> None:
    """Fourteen months of samples, compacted every 10 min, never exceed the documented bound.

    The first 420 days are sampled every 5 min (to run in seconds), the last
    two at the real 30 s, so every table reaches its steady state.
    """
    history = History(store)
    worst = bound(defaults.INTERVAL)
    values = tuple(float(v) + 0.123456789 for v in range(len(SAMPLE_METRICS)))
    now, largest = T0, {"raw": 0, "5m": 0, "1d": 0}
    for end, step in ((T0 + 420 * DAY, 300.0), (T0 + 422 * DAY, defaults.INTERVAL)):
        while now < end:
            batch = int(defaults.HISTORY_COMPACT_EVERY // step)
            store.add_samples((now + step * i, *values) for i in range(batch))
            now += defaults.HISTORY_COMPACT_EVERY
            history.compact(now)
            if now % DAY == 0:
                counts = store.sample_counts()
                largest = {k: max(largest[k], counts[k]) for k in counts}
    counts = store.sample_counts()
    largest = {k: max(largest[k], counts[k]) for k in counts}
    size, free = store.disk_usage()
    assert counts["raw"] == 2880 and counts["1d"] == 360
    assert largest["raw"] <= worst.raw_rows
    assert largest["5m"] <= worst.fine_rows
    assert largest["1d"] <= worst.daily_rows
    assert size <= worst.bytes
    assert size - free <= worst.bytes
    assert history.coverage(now - DAY, now) == pytest.approx(DAY, abs=defaults.INTERVAL)


# --- the window's edges ------------------------------------------------------------------


@pytest.mark.parametrize(("start", "expected"), [
    pytest.param(T0, [T0, T0 + 30], id="sample-at-start-kept"),
    pytest.param(T0 + 1, [T0 + 30], id="sample-before-start-left-out"),
    pytest.param(T0 - 30, [T0 - 30, T0, T0 + 30], id="all-inside"),
])
def test_series_keeps_a_raw_sample_at_the_window_start(store: Store, start: float,
                                                       expected: list[float]) -> None:
    """A raw sample taken exactly at ``start`` is inside ``[start, end)``, as in coverage."""
    history = History(store)
    store.add_samples(raw_row(at, 1.0) for at in (T0 - 30, T0, T0 + 30))
    assert expected == [p.at for p in history.series("cpu_percent", start, T0 + 60)]


# --- each host's memory --------------------------------------------------------------------


def stats(total: float, available: float, hostname: str = "h") -> HostStats:
    return HostStats(hostname=hostname, memory_total_bytes=int(total),
                     memory_available_bytes=available,  # type: ignore[arg-type]
                     memory_percent=0.0, swap_total_bytes=0, swap_used_bytes=0,
                     swap_percent=0.0, load_1m=0.0, load_5m=0.0, load_15m=0.0, cpu_count=1,
                     cpu_percent=0.0, disks=(), roles=())


def reading(name: str, host: HostStats | None, error: str | None = None) -> HostReading:
    return HostReading(name, HostSource.AGENT, host, error)


@pytest.mark.parametrize(("local", "others", "expected"), [
    pytest.param(stats(8e9, 2e9, "web-1"), [reading("db-1", stats(16e9, 4e9))],
                 [("web-1", 6e9, 8e9), ("db-1", 12e9, 16e9)], id="local-first-then-others"),
    pytest.param(stats(8e9, 2e9, "bad name!"), [],
                 [(LOCAL_HOST_NAME, 6e9, 8e9)], id="local-invalid-hostname"),
    pytest.param(None, [reading("db-1", None, "expired"), reading("db-2", stats(4e9, 1e9)),
                        reading("db-3", stats(4e9, 1e9), "stale")],
                 [("db-2", 3e9, 4e9)], id="not-reporting-gives-no-sample"),
    pytest.param(None, [reading("@evil\u202e", stats(4e9, 1e9)), reading("", stats(4e9, 1e9)),
                        reading("x" * 65, stats(4e9, 1e9))],
                 [], id="invalid-names-left-out"),
    pytest.param(None, [reading("nan", stats(4e9, float("nan"))),
                        reading("huge", stats(1e300, 0)), reading("zero", stats(0, 0)),
                        reading("ok", stats(4e9, 5e9))],
                 [("ok", 0.0, 4e9)], id="garbage-values-left-out"),
    pytest.param(stats(8e9, 2e9, "web-1"), [reading("web-1", stats(4e9, 1e9))],
                 [("web-1", 6e9, 8e9)], id="duplicate-name-this-host-wins"),
])
def test_host_samples_from_snapshot(local: HostStats | None, others: list[HostReading],
                                    expected: list[tuple[str, float, float]]) -> None:
    """Every host that reported gives (name, used, total); nothing else gives a sample."""
    snapshot = Snapshot(T0, UP, None, local, hosts=tuple(others))
    assert expected == [(s.name, s.used_bytes, s.total_bytes)
                        for s in host_samples_from(snapshot)]


def test_host_samples_are_capped_per_tick() -> None:
    """At most HOSTS_MAX hosts a tick, by name."""
    others = tuple(reading(f"h{i:03d}", stats(4e9, 1e9)) for i in range(100))
    found = host_samples_from(Snapshot(T0, UP, None, None, hosts=others))
    assert [s.name for s in found] == [f"h{i:03d}" for i in range(defaults.HOSTS_MAX)]


def test_each_host_is_kept_through_compaction(store: Store) -> None:
    """Raw → hourly after a day → daily after 40 days → gone after 400; names go with them.

    The clock is the ``now`` each call is given, so the test runs the same any day.
    """
    history = History(store)
    for i in range(120):  # an hour of 30 s ticks; db-1 misses the second half hour
        at = T0 + 30 * i
        samples = [HostSample("web-1", 1e9 + i * 1e7, 8e9)]
        if i < 60:
            samples.append(HostSample("db-1", 4e9, 16e9))
        assert history.record_hosts(at, samples) == len(samples)
    assert store.host_sample_counts() == {"raw": 180, "1h": 0, "1d": 0, "names": 2}
    raw = history.host_series(T0, T0 + 3600)
    assert (len(raw["web-1"]), len(raw["db-1"])) == (120, 60)
    assert raw["db-1"][0] == HostPoint(T0, 4e9, 4e9, 4e9, 1, 16e9)

    history.compact(T0 + 2 * DAY)
    hourly = history.host_series(T0, T0 + DAY)
    assert store.host_sample_counts() == {"raw": 0, "1h": 2, "1d": 0, "names": 2}
    assert hourly == {
        "db-1": (HostPoint(T0, 4e9, 4e9, 4e9, 60, 16e9),),
        "web-1": (HostPoint(T0, 1e9, pytest.approx(1e9 + 59.5e7), 1e9 + 119e7,  # type: ignore[arg-type]
                            120, 8e9),)}
    history.compact(T0 + 45 * DAY)
    assert store.host_sample_counts() == {"raw": 0, "1h": 0, "1d": 2, "names": 2}
    assert history.host_series(T0, T0 + DAY)["db-1"] == (HostPoint(T0, 4e9, 4e9, 4e9, 60, 16e9),)
    history.compact(T0 + 402 * DAY)
    assert store.host_sample_counts() == {"raw": 0, "1h": 0, "1d": 0, "names": 0}


@pytest.mark.parametrize(("sample", "kept"), [
    pytest.param(HostSample("db-1", 1e9, 2e9), 1, id="valid"),
    pytest.param(HostSample("db 1", 1e9, 2e9), 0, id="space-in-name"),
    pytest.param(HostSample("@db", 1e9, 2e9), 0, id="mention-name"),
    pytest.param(HostSample("db-1", float("nan"), 2e9), 0, id="nan"),
    pytest.param(HostSample("db-1", 1e9, float("inf")), 0, id="infinite"),
    pytest.param(HostSample("db-1", 1e9, 1e300), 0, id="huge"),
    pytest.param(HostSample("db-1", -1.0, 2e9), 0, id="negative"),
    pytest.param(HostSample("db-1", 0.0, 0.0), 0, id="no-memory"),
])
def test_record_hosts_refuses_garbage(store: Store, sample: HostSample, kept: int) -> None:
    """Only valid names and finite, in-range sizes reach the state file."""
    assert kept == History(store).record_hosts(T0, [sample])
    assert store.host_sample_counts()["raw"] == kept


def test_host_series_keeps_a_raw_sample_at_the_window_start(store: Store) -> None:
    """As ``series``: a host's raw sample exactly at ``start`` is in the window."""
    history = History(store)
    history.record_hosts(T0, [HostSample("db-1", 1e9, 2e9)])
    history.record_hosts(T0 - 30, [HostSample("db-1", 1e9, 2e9)])
    assert [p.at for p in history.host_series(T0, T0 + 60)["db-1"]] == [T0]
