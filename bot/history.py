"""Keep the history of what the bot saw: samples at three resolutions, and closed incidents.

Every tick stores one raw :class:`Sample`. :meth:`History.compact` (run about
every ``HISTORY_COMPACT_EVERY`` = 10 min) rolls raw samples older than a day
into 5-minute buckets (min, mean and max of each metric, and how many samples
had it), 5-minute buckets older than 40 days into daily buckets (UTC days),
and deletes daily buckets older than 400 days. :meth:`History.series` reads a
metric back at the finest resolution kept for each stretch of time, and
:meth:`History.coverage` says how much of a window was actually watched: a
stretch when the bot was down is unknown, not healthy.

Jobs processed per day do not come from here but from Sidekiq's own daily
counters (``SidekiqReader.daily_counters``), which go back years, to before
the bot ran.

Bounded disk use (the worst case, proved by ``tests/test_history.py``). With
the default limits and the 30 s tick, the sample tables hold at most:

========== =============================================== ======== ==========
table      rows                                             rows     bytes
========== =============================================== ======== ==========
samples_raw (1 day + 10 min compaction + 5 min) / 30 s      2,910    ≤ 0.59 MB
samples_5m  288 a day x (40 days + 2 days of alignment)     12,096   ≤ 7.10 MB
samples_1d  400 days + 2                                    402      ≤ 0.24 MB
========== =============================================== ======== ==========

Bytes are rows x the widest row (``RAW_ROW_BYTES``, ``BUCKET_ROW_BYTES``:
every value an 8-byte REAL) over a page fill of ``PAGE_FILL``, so the whole
history stays under ``bound(30).bytes`` = 7,914,160 bytes (7.9 MB), whatever
the instance and however long the bot runs. Measured after 422 simulated days
(see the test): at most 2,880 raw, 11,232 5-minute and 360 daily rows, in
5,996,544 bytes of pages (135,168 of them free for reuse). A faster tick only
grows the raw table (``bound(10)`` is 8,730 raw rows, 9.1 MB); closed
incidents add about 200 bytes each; the WAL file comes on top until its
checkpoint (SQLite's default: 1,000 pages).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any

from bot import defaults
from bot.incidents import component_order
from bot.model import Incident, Point, Severity, Snapshot
from bot.store import SAMPLE_METRICS, Store

DAY = 86400
"""Seconds in a (UTC) day: the daily buckets' span."""

RAW_ROW_BYTES = 150
"""Widest raw row on disk: a 15-column record of 8-byte values, its header and cell."""

BUCKET_ROW_BYTES = 440
"""Widest bucket row on disk: 58 columns (56 metric columns, start, samples)."""

PAGE_FILL = 0.75
"""Lowest share of a B-tree page the rows fill, as assumed by the bound."""


@dataclass(frozen=True, slots=True)
class Sample:
    """What one tick saw, flattened to the numbers the history keeps.

    A field is None when it is unknown: the host fields when the host could
    not be read, the Sidekiq fields when Redis was down. ``queue_latency_s``
    is the largest latency of any queue.
    """

    at: float
    memory_used_percent: float | None = None
    memory_used_bytes: int | None = None
    memory_total_bytes: int | None = None
    swap_used_percent: float | None = None
    cpu_percent: float | None = None
    load_1m: float | None = None
    disk_used_percent: float | None = None
    queue_latency_s: float | None = None
    enqueued: int | None = None
    busy: int | None = None
    concurrency: int | None = None
    live_processes: int | None = None
    redis_ok: bool = False
    incident_open: bool = False

    def values(self) -> tuple[float | None, ...]:
        """Return the metric values in ``SAMPLE_METRICS`` order (booleans as 0 or 1)."""
        return tuple(_number(getattr(self, name)) for name in SAMPLE_METRICS)


if tuple(f.name for f in fields(Sample))[1:] != SAMPLE_METRICS:  # pragma: no cover
    raise ImportError("bot.history.Sample and bot.store.SAMPLE_METRICS disagree")


@dataclass(frozen=True, slots=True)
class ClosedIncident:
    """A resolved incident as the history keeps it."""

    id: str
    opened_at: float
    resolved_at: float
    components: tuple[str, ...]
    peak: Severity
    manual: bool

    @property
    def duration_s(self) -> float:
        """Seconds from opening to resolution."""
        return self.resolved_at - self.opened_at


@dataclass(frozen=True, slots=True)
class IncidentStats:
    """Incidents within a window, their durations clipped to it.

    ``components`` maps each affected component to the number of incidents
    it was part of, in the bot's usual component order.
    """

    count: int
    total_s: float
    longest_s: float
    components: dict[str, int]


@dataclass(frozen=True, slots=True)
class CompactReport:
    """What one compaction removed (rolled up into a coarser table, or deleted)."""

    raw_rolled: int
    fine_rolled: int
    daily_deleted: int


@dataclass(frozen=True, slots=True)
class Bound:
    """The most rows, and bytes, the sample tables can hold (see the module docstring)."""

    raw_rows: int
    fine_rows: int
    daily_rows: int

    @property
    def bytes(self) -> int:
        """Worst-case bytes of the three tables' rows, pages included."""
        rows = self.raw_rows * RAW_ROW_BYTES + (self.fine_rows + self.daily_rows) \
            * BUCKET_ROW_BYTES
        return math.ceil(rows / PAGE_FILL)


def bound(interval: float = defaults.INTERVAL, *,
          raw_keep: float = defaults.HISTORY_RAW_KEEP,
          bucket: int = defaults.HISTORY_BUCKET,
          fine_keep: float = defaults.HISTORY_FINE_KEEP,
          daily_keep: float = defaults.HISTORY_DAILY_KEEP,
          compact_every: float = defaults.HISTORY_COMPACT_EVERY) -> Bound:
    """Return the most rows each table holds with one sample every ``interval`` seconds.

    Raw rows wait up to one compaction period and one bucket past ``raw_keep``;
    5-minute rows span ``fine_keep`` plus a day of alignment, plus a day
    for the margin; daily rows ``daily_keep`` plus two days.
    """
    raw = math.ceil((raw_keep + compact_every + bucket) / interval)
    fine = math.ceil((fine_keep + 2 * DAY) / bucket)
    daily = math.ceil(daily_keep / DAY) + 2
    return Bound(raw, fine, daily)


def sample_from(snapshot: Snapshot, incident_open: bool) -> Sample:
    """Flatten a snapshot into a sample; what the snapshot lacks stays None."""
    values: dict[str, Any] = {}
    host = snapshot.host
    if host is not None:
        disk = host.disks[0].percent if host.disks else None
        values.update(
            memory_used_percent=host.memory_percent,
            memory_used_bytes=max(0, host.memory_total_bytes - host.memory_available_bytes),
            memory_total_bytes=host.memory_total_bytes,
            swap_used_percent=host.swap_percent,
            cpu_percent=host.cpu_percent,
            load_1m=host.load_1m,
            disk_used_percent=disk,
        )
    sidekiq = snapshot.sidekiq
    if sidekiq is not None:
        latencies = [q.latency_s for q in sidekiq.queues if q.latency_s is not None]
        unknown = len(latencies) < len(sidekiq.queues)
        values.update(
            queue_latency_s=max(latencies) if latencies else (None if unknown else 0.0),
            enqueued=sidekiq.enqueued,
            busy=sidekiq.busy,
            concurrency=sidekiq.concurrency,
            live_processes=sidekiq.live_processes,
        )
    return Sample(at=snapshot.collected_at, redis_ok=snapshot.redis.reachable,
                  incident_open=incident_open, **values)


_Row = tuple[float, float | None, float | None, float | None, int, int]


def finest(raw: Sequence[_Row], fine: Sequence[_Row], daily: Sequence[_Row],
           bucket: int = defaults.HISTORY_BUCKET) -> list[tuple[_Row, float]]:
    """Merge rows of the three resolutions, keeping the finest for each stretch.

    A bucket that holds any finer row is dropped (this happens only to
    samples stored late, until the next compaction merges them). Returns
    ``(row, span in seconds)`` pairs, oldest first; a raw row's span is 0.
    """
    raw_times = sorted(r[0] for r in raw)
    fine_times = sorted(r[0] for r in fine)

    def holds(times: Sequence[float], start: float, span: float) -> bool:
        # bisect, not a scan: 90 days hold ~12,000 buckets against ~3,000 raw rows
        index = bisect.bisect_left(times, start)
        return index < len(times) and times[index] < start + span

    kept: list[tuple[_Row, float]] = [(r, 0.0) for r in raw]
    kept += [(r, float(bucket)) for r in fine if not holds(raw_times, r[0], bucket)]
    kept += [(r, float(DAY)) for r in daily
             if not holds(raw_times, r[0], DAY) and not holds(fine_times, r[0], DAY)]
    kept.sort(key=lambda pair: pair[0][0])
    return kept


def covered(rows: Iterable[tuple[_Row, float]], start: float, end: float,
            interval: float) -> float:
    """Return the seconds of ``[start, end)`` the rows (from :func:`finest`) cover.

    A raw sample covers the ``interval`` after it; a bucket covers its sample
    count x ``interval``, at most its span, spread evenly over the span (so a
    bucket half inside the window counts half).
    """
    total = 0.0
    reach = start  # raw samples: the union of [at, at + interval), clipped
    for row, span in rows:
        at, samples = row[0], row[5]
        if span == 0.0:
            low, high = max(at, reach, start), min(at + interval, end)
            if high > low:
                total += high - low
                reach = high
            continue
        inside = min(at + span, end) - max(at, start)
        if inside > 0:
            total += min(samples * interval, span) * inside / span
    return total


class History:
    """The samples and closed incidents kept in the state file.

    ``interval`` is the tick interval (seconds a raw sample stands for);
    the other arguments are the retention limits of the module docstring.
    """

    def __init__(self, store: Store, *, interval: float = defaults.INTERVAL,
                 raw_keep: float = defaults.HISTORY_RAW_KEEP,
                 bucket: int = defaults.HISTORY_BUCKET,
                 fine_keep: float = defaults.HISTORY_FINE_KEEP,
                 daily_keep: float = defaults.HISTORY_DAILY_KEEP,
                 compact_every: float = defaults.HISTORY_COMPACT_EVERY) -> None:
        if DAY % bucket or raw_keep < bucket or fine_keep < raw_keep + DAY:
            raise ValueError("history: the bucket must divide a day, and the limits grow")
        self.store = store
        self.interval = interval
        self.raw_keep = raw_keep
        self.bucket = bucket
        self.fine_keep = fine_keep
        self.daily_keep = daily_keep
        self.compact_every = compact_every
        self._compacted_at: float | None = None

    def record(self, sample: Sample) -> None:
        """Store one raw sample (a sample at the same time replaces it)."""
        self.store.add_samples([(sample.at, *sample.values())])

    def record_many(self, samples: Iterable[Sample]) -> int:
        """Store many raw samples in one transaction; return how many."""
        return self.store.add_samples((s.at, *s.values()) for s in samples)

    def compact(self, now: float) -> CompactReport:
        """Roll up and expire samples as of ``now``; running it again changes nothing."""
        raw_before = (now - self.raw_keep) // self.bucket * self.bucket
        fine_before = (now - self.fine_keep) // DAY * DAY
        drop_before = (now - self.daily_keep) // DAY * DAY
        raw, fine, daily = self.store.compact_samples(raw_before, fine_before, self.bucket,
                                                      drop_before)
        self._compacted_at = now
        return CompactReport(raw, fine, daily)

    def maybe_compact(self, now: float) -> CompactReport | None:
        """Compact when ``compact_every`` has passed since the last time (or never ran)."""
        if self._compacted_at is not None and now - self._compacted_at < self.compact_every:
            return None
        return self.compact(now)

    def _rows(self, metric: str | None, start: float, end: float) -> list[tuple[_Row, float]]:
        raw, fine, daily = (self.store.sample_rows(r, metric, start, end)
                            for r in ("raw", "5m", "1d"))
        return finest(raw, fine, daily, bucket=self.bucket)

    def series(self, metric: str, start: float, end: float) -> list[Point]:
        """Return ``metric`` over ``[start, end)`` at the finest resolution kept, oldest first.

        Raw samples come as points of count 1; older stretches as 5-minute
        or daily buckets (``at`` their start, which may precede ``start``).
        Samples without the metric give no point.
        """
        points = []
        for (at, low, mean, high, n, _), span in self._rows(metric, start, end):
            if n and low is not None and mean is not None and high is not None \
                    and at + span > start:
                points.append(Point(at, low, mean, high, n))
        return points

    def coverage(self, start: float, end: float) -> float:
        """Return the seconds of ``[start, end)`` the bot watched (see :func:`covered`)."""
        return covered(self._rows(None, start, end), start, end, self.interval)

    def record_incident(self, incident: Incident) -> bool:
        """Remember a resolved incident; True when new (an id is recorded once).

        Raises ValueError for an incident that is still open.
        """
        if incident.resolved_at is None:
            raise ValueError(f"incident {incident.id} is still open")
        return self.store.add_closed_incident(
            incident.id, incident.opened_at, incident.resolved_at,
            sorted({a.component for a in incident.affected} | set(incident.cleared),
                   key=component_order),
            incident.peak.name, incident.manual)

    def incidents_between(self, start: float, end: float) -> list[ClosedIncident]:
        """Return the resolved incidents that overlap ``[start, end)``, oldest first."""
        return [ClosedIncident(i, opened, resolved, tuple(components), _peak(peak), manual)
                for i, opened, resolved, components, peak, manual
                in self.store.closed_incidents(start, end)]

    def incident_stats(self, start: float, end: float) -> IncidentStats:
        """Return count, total and longest duration, and components of ``[start, end)``."""
        return incident_stats(self.incidents_between(start, end), start, end)


def incident_stats(incidents: Iterable[ClosedIncident], start: float,
                   end: float) -> IncidentStats:
    """Summarise ``incidents`` within ``[start, end)``, their durations clipped to it."""
    durations: list[float] = []
    components: dict[str, int] = {}
    for incident in incidents:
        inside = min(incident.resolved_at, end) - max(incident.opened_at, start)
        if inside <= 0:
            continue
        durations.append(inside)
        for component in incident.components:
            components[component] = components.get(component, 0) + 1
    ordered = {c: components[c] for c in sorted(components, key=component_order)}
    return IncidentStats(len(durations), sum(durations), max(durations, default=0.0), ordered)


def _number(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return float(value)
    raise TypeError(f"not a sample value: {value!r}")


def _peak(name: str) -> Severity:
    try:
        return Severity[name]
    except KeyError:
        return Severity.WARNING
