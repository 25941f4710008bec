"""Read Sidekiq 7/8's per-minute job metrics and turn them into work per queue.

Sidekiq ≥ 7 adds, at each heartbeat, per job class (``wrapped`` else
``class``) how many jobs ran (``<Class>|p``, failures included), failed
(``<Class>|f``) and the milliseconds the successful ones took
(``<Class>|ms``) to a hash per UTC minute (``reference/sidekiq-redis.md`` §5):

- 7.x: ``j|YYYYMMDD|H:M`` (unpadded), checked against Debian's 7.3.2
  (``metrics/tracking.rb``: ``strftime("%Y%m%d|%-H:%-M")``);
- 8.x: ``j|YYMMDD|H:MM`` (and 10-minute buckets ``j|YYMMDD|H:M``, not read).

The two formats never collide (the dates differ), so both are read: an
upgrade from 7 to 8 inside the window is counted whole. One read is ONE
pipelined round trip of read-only HGETALLs (a user with ``-@all +@read`` is
enough), at most once a minute (``JobMetricsReader`` caches by its clock).
Replies are folded one at a time into per-class totals, so memory is one
minute's hash plus at most ``MAX_CLASSES`` classes.

Sidekiq 6 keeps no metrics: ``summarise`` then estimates from the
``stat:processed`` counter and backlog changes between snapshots, and flags
the answer ``coarse``. Malformed data (a value that is not a count,
a failure count above the runs, an impossible duration, a class name that
is not a Ruby constant, a key of the wrong type) is an anomaly, never an
exception.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

import redis

from bot import defaults
from bot.collect.sidekiq import _command, _error_text, _get_connection, _show, as_count
from bot.mastodon_workers import MAX_CLASS_CHARS, queue_of
from bot.model import Anomaly, SidekiqStats, Snapshot

WINDOW_MINUTES = 15
"""Minutes of metrics read by default (the last complete ones)."""

MAX_WINDOW_MINUTES = 480
"""The longest window: Sidekiq keeps the minute hashes 8 hours."""

READ_INTERVAL_S = 60.0
"""At most one Redis read per this many seconds; in between the last one is reused."""

MAX_CLASSES = 5_000
"""Classes kept by name; more are added up as one overflow (an anomaly). Mastodon has < 200."""

MAX_JOBS_PER_MINUTE = 10_000_000
"""A class running more jobs than this in one minute is a malformed value, not a reading."""

MAX_MS_PER_JOB = 86_400_000
"""A successful job's mean duration above a day (in ms) is a malformed value."""

MIN_SPAN_S = 30.0
"""Two snapshots closer than this give no backlog growth (too short to divide by)."""

_CLASS_NAME = re.compile(r"[A-Z][A-Za-z0-9_]*(?:::[A-Z][A-Za-z0-9_]*)*\Z")
_KINDS = {"p": 0, "f": 1, "ms": 2}


@dataclass(frozen=True, slots=True)
class ClassWork:
    """One job class's totals over the window: runs (failures included), failures, ms."""

    name: str
    queue: str | None
    processed: int
    failed: int
    ms: int


@dataclass(frozen=True, slots=True)
class QueueWork:
    """Work on one queue over the window.

    ``jobs_per_min`` counts runs (failures included); ``mean_s`` is the mean
    duration of a successful job (Sidekiq does not time failures), None when
    none succeeded; ``failure_share`` is failures / runs, None with no run.
    ``backlog_growth_per_min`` comes from the snapshots (None with fewer than
    two far enough apart); ``arrivals_per_min`` = jobs done + backlog growth.
    ``coarse`` marks a Sidekiq 6 estimate (None where it could not be split).
    """

    queue: str
    jobs_per_min: float | None
    mean_s: float | None
    failure_share: float | None
    backlog_growth_per_min: float | None
    arrivals_per_min: float | None
    coarse: bool
    classes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ClassTotals:
    """What one Redis read found: per-class totals over ``minutes`` minutes ending at ``end``."""

    end: float
    minutes: int
    hashes_found: int
    classes: tuple[ClassWork, ...]
    overflow: ClassWork | None
    anomaly_count: int
    anomalies: tuple[Anomaly, ...]
    error: str | None = None


@dataclass(frozen=True, slots=True)
class JobMetrics:
    """Work per queue over a window of ``minutes`` complete minutes ending at ``end``.

    ``source`` is ``"metrics"`` (Sidekiq ≥ 7's per-minute hashes),
    ``"coarse"`` (Sidekiq 6: counters and backlogs, see ``coarse_note``) or
    ``"none"`` (Redis could not be read: ``error``). ``unmapped`` holds the
    busiest classes whose queue is unknown (at most ``defaults.MAX_ANOMALY_EXAMPLES``),
    ``unmapped_count`` how many there are.
    """

    source: str
    end: float
    minutes: int
    queues: tuple[QueueWork, ...]
    total_jobs_per_min: float | None
    unmapped: tuple[ClassWork, ...]
    unmapped_count: int
    anomaly_count: int
    anomalies: tuple[Anomaly, ...]
    coarse_note: str | None = None
    error: str | None = None

    def queue(self, name: str) -> QueueWork | None:
        """Return the work on queue ``name``, or None."""
        for work in self.queues:
            if work.queue == name:
                return work
        return None


def minute_keys(minute: int, namespace: str = "") -> tuple[str, str]:
    """Return the 7.x and 8.x metrics keys of the UTC minute ``minute`` (epoch seconds // 60)."""
    at = datetime.fromtimestamp(minute * 60, tz=timezone.utc)
    prefix = f"{namespace}:" if namespace else ""
    seven = f"{prefix}j|{at:%Y%m%d}|{at.hour}:{at.minute}"
    eight = f"{prefix}j|{at:%y%m%d}|{at.hour}:{at.minute:02d}"
    return seven, eight


def _pairs(reply: object) -> Iterable[tuple[object, object]] | None:
    if isinstance(reply, dict):  # RESP3
        return reply.items()
    if isinstance(reply, list) and len(reply) % 2 == 0:  # RESP2: field, value, …
        return zip(reply[::2], reply[1::2], strict=True)
    return None


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class _Folder:
    """Adds minute hashes into bounded per-class totals, noting anomalies."""

    def __init__(self, max_classes: int, max_examples: int) -> None:
        self.max_classes = max_classes
        self.max_examples = max_examples
        self.totals: dict[str, list[int]] = {}
        self.overflow = [0, 0, 0]
        self.overflowed = 0
        self.anomaly_count = 0
        self.anomalies: list[Anomaly] = []

    def anomaly(self, key: str, problem: str) -> None:
        self.anomaly_count += 1
        if len(self.anomalies) < self.max_examples:
            self.anomalies.append(Anomaly(key, problem))

    def fold(self, key: str, reply: object) -> bool:
        """Add one HGETALL reply; return whether the hash existed."""
        if isinstance(reply, Exception):
            self.anomaly(key, _error_text(reply))
            return False
        pairs = _pairs(reply)
        if pairs is None:
            self.anomaly(key, f"not a hash reply: {_show(reply)}")
            return False
        minute: dict[str, list[int]] = {}
        found = False
        kinds = _KINDS
        for raw_field, raw_value in pairs:
            found = True
            field = raw_field if type(raw_field) is str else _text(raw_field)
            name, _, kind = field.rpartition("|")
            index = kinds.get(kind)
            if index is None or not name:
                self.anomaly(key, f"unexpected field {_show(field)}")
                continue
            value = raw_value if type(raw_value) is str else _text(raw_value)
            # The common case (a short run of ASCII digits) skips the general parser.
            if len(value) < 19 and value.isascii() and value.isdigit():
                number = int(value)
            else:
                parsed = as_count(value)
                if parsed is None:
                    self.anomaly(key, f"{_show(field)} is not a count: {_show(value)}")
                    continue
                number = parsed
            counts = minute.get(name)
            if counts is None:
                counts = minute[name] = [0, 0, 0]
            counts[index] += number
        for name, (processed, failed, ms) in minute.items():
            problem = None
            if processed > MAX_JOBS_PER_MINUTE:
                problem = f"{processed} runs in one minute"
            elif failed > processed:
                problem = f"{failed} failures but {processed} runs"
            elif ms > max(1, processed - failed) * MAX_MS_PER_JOB:
                problem = f"{ms} ms for {processed - failed} successful runs"
            if problem is not None:
                self.anomaly(key, f"class {_show(name)}: {problem}")
                continue
            self._add(key, name, processed, failed, ms)
        return found

    def _add(self, key: str, name: str, processed: int, failed: int, ms: int) -> None:
        totals = self.totals.get(name)
        if totals is None:
            if len(name) > MAX_CLASS_CHARS or not _CLASS_NAME.match(name):
                self.anomaly(key, f"not a class name: {_show(name)}")
                totals = self.overflow
            elif len(self.totals) >= self.max_classes:
                if self.overflowed == 0:
                    self.anomaly(key, f"more than {self.max_classes} job classes")
                self.overflowed += 1
                totals = self.overflow
            else:
                totals = self.totals[name] = [0, 0, 0]
        totals[0] += processed
        totals[1] += failed
        totals[2] += ms


def read_totals(
    client: redis.Redis, end_minute: int, minutes: int, *, namespace: str = "",
    max_classes: int = MAX_CLASSES, max_examples: int = defaults.MAX_ANOMALY_EXAMPLES,
) -> ClassTotals:
    """Read the ``minutes`` minute hashes before ``end_minute`` in one round trip; never raises.

    ``end_minute`` is epoch seconds // 60 of the first minute NOT read (the
    current, incomplete one). Both the 7.x and 8.x keys of each minute are
    read. Redis trouble gives totals with ``error`` set and nothing counted.
    """
    minutes = max(1, min(int(minutes), MAX_WINDOW_MINUTES))
    keys = [key for minute in range(end_minute - minutes, end_minute)
            for key in minute_keys(minute, namespace)]
    folder = _Folder(max_classes, max_examples)
    found = 0
    pool = client.connection_pool
    try:
        connection = _get_connection(pool)
    except redis.RedisError as exc:
        return ClassTotals(end_minute * 60.0, minutes, 0, (), None, 0, (), _error_text(exc))
    try:
        connection.send_packed_command(  # type: ignore[no-untyped-call]
            [b"".join(_command("HGETALL", key) for key in keys)])
        read = getattr(getattr(connection, "_parser", None), "read_response", None)
        for key in keys:
            if read is not None:
                reply = read()
            else:
                try:
                    reply = connection.read_response()
                except redis.ResponseError as exc:
                    reply = exc
            found += folder.fold(key, reply)
    except (redis.RedisError, OSError) as exc:
        connection.disconnect()  # type: ignore[no-untyped-call]  # replies may be left unread
        pool.release(connection)
        return ClassTotals(end_minute * 60.0, minutes, 0, (), None, 0, (), _error_text(exc))
    except BaseException:
        connection.disconnect()  # type: ignore[no-untyped-call]
        pool.release(connection)
        raise
    pool.release(connection)
    classes = tuple(ClassWork(name, None, *values) for name, values in folder.totals.items())
    overflow = (ClassWork("(other classes)", None, *folder.overflow)
                if any(folder.overflow) else None)
    return ClassTotals(end_minute * 60.0, minutes, found, classes, overflow,
                       folder.anomaly_count, tuple(folder.anomalies))


def _backlogs(snapshots: Sequence[Snapshot]) -> list[tuple[float, SidekiqStats]]:
    return sorted(((s.collected_at, s.sidekiq) for s in snapshots
                   if s.sidekiq is not None and math.isfinite(s.collected_at)),
                  key=lambda pair: pair[0])


_Ends = tuple[SidekiqStats, SidekiqStats, float]


def _ends(snapshots: Sequence[Snapshot], start: float, end: float) -> _Ends | None:
    """Return the snapshots nearest the window's start and end, and their span in seconds."""
    usable = [pair for pair in _backlogs(snapshots) if pair[0] <= end + MIN_SPAN_S]
    if len(usable) < 2:
        return None
    first = min(usable, key=lambda pair: abs(pair[0] - start))
    last = usable[-1]
    span = last[0] - first[0]
    if span < MIN_SPAN_S:
        return None
    return first[1], last[1], span


def _growth(first: SidekiqStats, last: SidekiqStats, span: float) -> dict[str, float]:
    before = {queue.name: queue.size for queue in first.queues}
    after = {queue.name: queue.size for queue in last.queues}
    return {name: (after.get(name, 0) - before.get(name, 0)) * 60.0 / span
            for name in set(before) | set(after)}


def uses_metrics(snapshots: Sequence[Snapshot]) -> bool:
    """Whether the newest snapshot's live processes run Sidekiq ≥ 7 (which keeps metrics)."""
    for _, stats in reversed(_backlogs(snapshots)):
        versions = [p.version for p in stats.processes if p.alive and p.version]
        return any(v.split(".", 1)[0].isdigit() and int(v.split(".", 1)[0]) >= 7
                   for v in versions)
    return False


def summarise(totals: ClassTotals, snapshots: Sequence[Snapshot],
              oldest_classes: Mapping[str, str] | None = None,
              max_examples: int = defaults.MAX_ANOMALY_EXAMPLES) -> JobMetrics:
    """Turn per-class totals and successive snapshots into work per queue (pure).

    With metrics (some hash found, or live processes on Sidekiq ≥ 7) the
    figures come from them; otherwise (Sidekiq 6) from the counters, coarse.
    """
    end, minutes = totals.end, totals.minutes
    start = end - minutes * 60.0
    ends = _ends(snapshots, start, end)
    growth = _growth(*ends) if ends is not None else {}
    if totals.error is not None:
        return JobMetrics("none", end, minutes, (), None, (), 0, totals.anomaly_count,
                          totals.anomalies, error=totals.error)
    if totals.hashes_found == 0 and not uses_metrics(snapshots):
        return _coarse(totals, snapshots, ends, growth)
    per_queue: dict[str, list[int]] = {}
    names: dict[str, list[str]] = {}
    unmapped: list[ClassWork] = []
    for work in totals.classes:
        queue = queue_of(work.name, oldest_classes)
        if queue is None:
            unmapped.append(work)
            continue
        sums = per_queue.setdefault(queue, [0, 0, 0])
        sums[0] += work.processed
        sums[1] += work.failed
        sums[2] += work.ms
        names.setdefault(queue, []).append(work.name)
    if totals.overflow is not None:
        unmapped.append(totals.overflow)
    queues = []
    for queue in sorted(set(per_queue) | set(growth)):
        processed, failed, ms = per_queue.get(queue, [0, 0, 0])
        rate = processed / minutes
        grown = growth.get(queue)
        queues.append(QueueWork(
            queue, rate,
            ms / 1000.0 / (processed - failed) if processed > failed else None,
            failed / processed if processed else None,
            grown, None if grown is None else max(0.0, rate + grown), False,
            tuple(sorted(names.get(queue, []))[:max_examples]),
        ))
    total = sum(work.processed for work in totals.classes)
    total += totals.overflow.processed if totals.overflow is not None else 0
    unmapped.sort(key=lambda work: -work.processed)
    return JobMetrics("metrics", end, minutes, tuple(queues), total / minutes,
                      tuple(unmapped[:max_examples]), len(unmapped),
                      totals.anomaly_count, totals.anomalies)


COARSE_NOTE = (
    "Sidekiq 6 keeps no per-job metrics: estimated from the processed counter and "
    "the backlogs between snapshots; the mean job time is busy threads / jobs per second"
)
"""Why a Sidekiq 6 answer is coarse (shown with it)."""


def _coarse(totals: ClassTotals, snapshots: Sequence[Snapshot],
            ends: _Ends | None, growth: dict[str, float]) -> JobMetrics:
    end, minutes = totals.end, totals.minutes
    if ends is None:
        return JobMetrics("coarse", end, minutes, (), None, (), 0, totals.anomaly_count,
                          totals.anomalies, coarse_note=COARSE_NOTE)
    first, last, span = ends
    done = last.processed - first.processed
    failed = last.failed - first.failed
    anomalies = list(totals.anomalies)
    if done < 0 or failed < 0 or failed > done:
        anomalies.append(Anomaly("stat:processed", "the counters went back between snapshots"))
        return JobMetrics("coarse", end, minutes, (), None, (), 0, totals.anomaly_count + 1,
                          tuple(anomalies), coarse_note=COARSE_NOTE)
    rate = done * 60.0 / span
    window = [stats for at, stats in _backlogs(snapshots)
              if first.processed <= stats.processed <= last.processed and at <= end + MIN_SPAN_S]
    busy = sum(stats.busy for stats in window) / len(window) if window else 0.0
    mean_s = busy * span / done if done else None
    # Jobs done can be told apart by queue only when one queue alone had a backlog.
    backlogged = {queue.name for stats in window for queue in stats.queues if queue.size > 0}
    queues = []
    for queue in sorted(growth):
        own = rate if backlogged == {queue} else None
        queues.append(QueueWork(
            queue, own, mean_s if own is not None else None,
            failed / done if own is not None and done else None,
            growth[queue], None if own is None else max(0.0, own + growth[queue]), True, (),
        ))
    return JobMetrics("coarse", end, minutes, tuple(queues), rate, (), 0,
                      totals.anomaly_count, tuple(anomalies), coarse_note=COARSE_NOTE)


class JobMetricsReader:
    """Reads the metrics at most once per ``interval`` seconds of its clock; read-only.

    ``read`` always recomputes the per-queue figures from the snapshots it is
    given (pure), but asks Redis again only when the last read is ``interval``
    old, so a tick every 10 s costs one round trip a minute.
    """

    def __init__(self, client: redis.Redis, *, namespace: str = "",
                 minutes: int = WINDOW_MINUTES, interval: float = READ_INTERVAL_S,
                 max_classes: int = MAX_CLASSES,
                 clock: Callable[[], float] = time.time) -> None:
        self._client = client
        self._namespace = namespace
        self._minutes = max(1, min(int(minutes), MAX_WINDOW_MINUTES))
        self._interval = interval
        self._max_classes = max_classes
        self._clock = clock
        self._last: tuple[float, ClassTotals] | None = None
        self.reads = 0
        """How many times Redis was read (for tests and the bench)."""

    def totals(self) -> ClassTotals:
        """Return the per-class totals, from Redis when the cached ones are ``interval`` old."""
        now = self._clock()
        if self._last is not None and 0.0 <= now - self._last[0] < self._interval:
            return self._last[1]
        self.reads += 1
        totals = read_totals(self._client, int(now // 60), self._minutes,
                             namespace=self._namespace, max_classes=self._max_classes)
        self._last = (now, totals)
        return totals

    def read(self, snapshots: Sequence[Snapshot],
             oldest_classes: Mapping[str, str] | None = None) -> JobMetrics:
        """Return the work per queue, from the (cached) totals and the snapshots passed in."""
        return summarise(self.totals(), snapshots, oldest_classes)
