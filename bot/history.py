"""Keep the history of what the bot saw: samples at three resolutions, and closed incidents.

Every tick stores one raw :class:`Sample`. :meth:`History.compact` (run about
every ``HISTORY_COMPACT_EVERY`` = 10 min) rolls raw samples older than a day
into 5-minute buckets (min, mean and max of each metric, and how many samples
had it), 5-minute buckets older than 40 days into daily buckets (UTC days),
and deletes daily buckets older than 400 days. :meth:`History.series` reads a
metric back at the finest resolution kept for each stretch of time, and
:meth:`History.coverage` says how much of a window was actually watched: a
stretch when the bot was down is unknown, not healthy.

Each host's memory (this host and every other host that reported, see
:func:`host_samples_from`) is kept beside, one narrow row per host and tick
(bytes used and provisioned), under the same limits but in hourly buckets
(``HOST_HISTORY_BUCKET``); :meth:`History.host_series` reads it back. With 64
hosts at the 30 s tick that is at most 64 x 3,020 raw, 64 x 1,008 hourly and
64 x 402 daily rows; at about 60 bytes a row with its index entry, some 23 MB
at the page fill below (an estimate: unlike the bound above, not measured by a
test). A host that could not be read has no row (unknown, not zero).

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
from bot.config import HOST_NAME
from bot.incidents import component_order
from bot.model import HostPoint, Incident, Point, Severity, Snapshot, plausible_bytes
from bot.store import SAMPLE_METRICS, Store

DAY = 86400
"""Seconds in a (UTC) day: the daily buckets' span."""

RAW_ROW_BYTES = 150
"""Widest raw row on disk: a 15-column record of 8-byte values, its header and cell."""

BUCKET_ROW_BYTES = 440
"""Widest bucket row on disk: 58 columns (56 metric columns, start, samples)."""

PAGE_FILL = 0.75
"""Lowest share of a B-tree page the rows fill, as assumed by the bound."""

LOCAL_HOST_NAME = "this-server"
"""The bot's own host in the per-host history when its hostname is not a valid host name."""


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
class HostSample:
    """One host's memory at one tick, in bytes: used and provisioned."""

    name: str
    used_bytes: float
    total_bytes: float


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
    host_rows: int = 0
    """Per-host rows rolled up or deleted, and host names that had no sample left."""


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


def host_samples_from(snapshot: Snapshot,
                      limit: int = defaults.HOSTS_MAX) -> list[HostSample]:
    """Return each host's memory from a snapshot: this host first, then the others by name.

    This host goes by its hostname (``LOCAL_HOST_NAME`` when that is not a
    valid host name). A host that could not be read (no stats, an error)
    gives no sample, not a zero; so do an invalid name, a name seen already
    this tick, and values that are not finite or out of range. At most
    ``limit`` hosts.
    """
    found: list[HostSample] = []
    seen: set[str] = set()

    def add(name: str, total: float, available: float) -> None:
        if len(found) >= limit or name in seen or not HOST_NAME.fullmatch(name):
            return
        values = (float(total), float(available))
        if not plausible_bytes(*values) or values[0] <= 0:
            return
        seen.add(name)
        found.append(HostSample(name, max(0.0, values[0] - values[1]), values[0]))

    local = snapshot.host
    if local is not None:
        name = local.hostname if HOST_NAME.fullmatch(local.hostname or "") else LOCAL_HOST_NAME
        add(name, local.memory_total_bytes, local.memory_available_bytes)
    for reading in sorted(snapshot.hosts, key=lambda r: r.name):
        stats = reading.stats
        if stats is None or reading.error:
            continue
        add(reading.name, stats.memory_total_bytes, stats.memory_available_bytes)
    return found


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
                 compact_every: float = defaults.HISTORY_COMPACT_EVERY,
                 host_bucket: int = defaults.HOST_HISTORY_BUCKET,
                 host_names_max: int = defaults.HOST_HISTORY_NAMES_MAX) -> None:
        if DAY % bucket or raw_keep < bucket or fine_keep < raw_keep + DAY \
                or DAY % host_bucket or raw_keep < host_bucket:
            raise ValueError("history: the buckets must divide a day, and the limits grow")
        self.store = store
        self.interval = interval
        self.raw_keep = raw_keep
        self.bucket = bucket
        self.fine_keep = fine_keep
        self.daily_keep = daily_keep
        self.compact_every = compact_every
        self.host_bucket = host_bucket
        self.host_names_max = host_names_max
        self._compacted_at: float | None = None

    def record(self, sample: Sample) -> None:
        """Store one raw sample (a sample at the same time replaces it)."""
        self.store.add_samples([(sample.at, *sample.values())])

    def record_many(self, samples: Iterable[Sample]) -> int:
        """Store many raw samples in one transaction; return how many."""
        return self.store.add_samples((s.at, *s.values()) for s in samples)

    def record_hosts(self, at: float, samples: Iterable[HostSample]) -> int:
        """Store each host's memory at ``at`` in one transaction; return how many were kept.

        Samples with an invalid name or values (see ``host_samples_from``) are
        left out, as are hosts past ``defaults.HOSTS_MAX`` in one call and new
        names once ``host_names_max`` are kept.
        """
        rows: dict[str, tuple[str, float, float]] = {}
        for sample in samples:
            used, total = float(sample.used_bytes), float(sample.total_bytes)
            if len(rows) >= defaults.HOSTS_MAX or sample.name in rows \
                    or not HOST_NAME.fullmatch(sample.name) \
                    or not plausible_bytes(used, total) or total <= 0:
                continue
            rows[sample.name] = (sample.name, min(used, total), total)
        if not rows:
            return 0
        return self.store.add_host_samples(at, rows.values(), self.host_names_max)

    def compact(self, now: float) -> CompactReport:
        """Roll up and expire samples as of ``now``; running it again changes nothing.

        Each host's memory follows the same limits, with ``host_bucket`` buckets.
        """
        raw_before = (now - self.raw_keep) // self.bucket * self.bucket
        fine_before = (now - self.fine_keep) // DAY * DAY
        drop_before = (now - self.daily_keep) // DAY * DAY
        raw, fine, daily = self.store.compact_samples(raw_before, fine_before, self.bucket,
                                                      drop_before)
        host_raw_before = (now - self.raw_keep) // self.host_bucket * self.host_bucket
        hosts = self.store.compact_host_samples(host_raw_before, fine_before, self.host_bucket,
                                                drop_before)
        self._compacted_at = now
        return CompactReport(raw, fine, daily, sum(hosts))

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
            # a raw sample (span 0) at ``start`` is inside the window; a bucket is when
            # it ends after ``start``
            inside = at >= start if span == 0.0 else at + span > start
            if n and low is not None and mean is not None and high is not None and inside:
                points.append(Point(at, low, mean, high, n))
        return points

    def host_series(self, start: float, end: float) -> dict[str, tuple[HostPoint, ...]]:
        """Return each host's memory over ``[start, end)``, by name, finest resolution kept.

        As ``series``: raw samples come as points of count 1, older stretches as
        buckets (``at`` their start, which may precede ``start``). A host with
        no sample in the window is not in the result.
        """
        by_name: dict[str, dict[str, list[tuple[float, float, float, float, float, int]]]] = {}
        for resolution in ("raw", "1h", "1d"):
            for name, at, low, mean, high, total, samples in self.store.host_sample_rows(
                    resolution, start, end):
                by_name.setdefault(name, {}).setdefault(resolution, []).append(
                    (at, low, mean, high, total, samples))
        found: dict[str, tuple[HostPoint, ...]] = {}
        for name, tables in by_name.items():
            rows = {resolution: [(at, low, mean, high, n, n) for at, low, mean, high, _, n
                                 in tables.get(resolution, [])]
                    for resolution in ("raw", "1h", "1d")}
            totals = {(span, row[0]): row[4] for span, resolution in
                      ((0.0, "raw"), (float(self.host_bucket), "1h"), (float(DAY), "1d"))
                      for row in tables.get(resolution, [])}
            points = []
            for (when, least, average, most, n, _), span in finest(
                    rows["raw"], rows["1h"], rows["1d"], bucket=self.host_bucket):
                inside = when >= start if span == 0.0 else when + span > start
                if inside and n and least is not None and average is not None \
                        and most is not None:
                    points.append(HostPoint(when, least, average, most, n,
                                            totals[(span, when)]))
            if points:
                found[name] = tuple(points)
        return found

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
