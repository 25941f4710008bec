"""Read Sidekiq's queues, sets, counters and processes straight from Redis.

The only module that knows Sidekiq's Redis layout (see
``reference/sidekiq-redis.md`` in the design notes). It is read-only: it sends
PING, INFO, SMEMBERS, GET, ZCARD, LLEN, LINDEX, HMGET and PTTL, nothing else (a
user with ``-@all +@read +info +ping`` is enough), and never ``KEYS`` or a
scan of job bodies. One snapshot costs exactly three round trips on an open
connection (the first snapshot adds the connection's own handshake and one
untimed PING), whatever the number of jobs, queues and processes:

1. PING (timed: the round-trip time reported for Redis);
2. one pipeline: INFO, the ``queues``/``processes``/``paused`` sets, the
   counters and the three sorted sets' sizes;
3. one pipeline: LLEN and the oldest job (LINDEX -1) of every queue, and the
   heartbeat fields of every registered process (``info`` only for an
   identity not seen before: Sidekiq writes it once per process life).

With an ``AgentReader`` (``bot.collect.agents``), the same round trips also
read the other hosts' agents: SMEMBERS of ``statusbot:hosts`` in the second,
GET and PTTL of each ``statusbot:host:<name>`` in the third. These keys are
the bot's own, never under redis-namespace's prefix.

The pipelines are encoded once and sent as bytes on one connection of the
client's pool. Data of the wrong shape (malformed or deeply nested JSON, a
key of the wrong type, a missing hash, a non-finite, negative or out-of-range
number, an oversized job) is counted as an anomaly in the snapshot and never
raises.
"""

from __future__ import annotations

import json
import logging
import re
import reprlib
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

import redis

from bot import defaults
from bot.collect.agents import AgentReader
from bot.mastodon_workers import MAX_CLASS_CHARS
from bot.model import Anomaly, ProcessStats, QueueStats, RedisStats, SidekiqStats

INFO_SECTIONS = ("server", "clients", "memory")
"""The INFO sections the Redis reading uses (version and uptime, clients, memory)."""

MAX_JOB_CHARS = 1_048_576
"""A job JSON longer than this is not parsed (an anomaly); its latency comes from its ends."""

MAX_INFO_CHARS = 65_536
"""A heartbeat ``info`` longer than this is not parsed (an anomaly); real ones are < 2 KB."""

PROCESS_FIELDS = ("info", "busy", "beat", "quiet", "rss", "concurrency")
"""Heartbeat hash fields of a process (``concurrency`` exists from Sidekiq 8.1.2)."""

PROCESS_FIELDS_AFTER = ("busy", "beat", "quiet", "rss", "concurrency")
"""The fields read at every snapshot of a process already known."""

PROCESS_FIELDS_FIRST = (*PROCESS_FIELDS_AFTER, "info")
"""The fields read the first time an identity is seen (``info`` is written once per life)."""


MAX_COUNT = 2**63 - 1
"""The largest counter, size or count read from Redis (Redis integers are signed 64-bit)."""

MAX_EPOCH_S = 32_503_680_000.0
"""The latest timestamp taken for real (the year 3000); later ones are malformed."""

_MAX_NUMBER_CHARS = 64
"""A hash field longer than this is not a number (and is not handed to ``float``)."""

_STAMP = re.compile(r'"(enqueued_at|created_at)"\s*:\s*(-?[0-9][0-9.eE+-]{0,40})')
_ENDS = 4096
"""Characters read at each end of a job too large to parse, looking for its timestamps."""


def _show(value: object) -> str:
    """Return a short, bounded text of a value from Redis for an anomaly message."""
    if isinstance(value, str):
        text = repr(value[:48])
    elif isinstance(value, (list, dict)):
        text = reprlib.repr(value)  # bounded depth and length
    else:
        text = repr(value)
    return text[:40]


def as_count(value: object) -> int | None:
    """Return a count (0 to ``MAX_COUNT``) from a Redis value, or None if it is not one.

    Hash fields and counters are strings; JSON gives ints and floats. A float
    (or a string like ``"12.0"``) is truncated. Non-finite, negative, too large
    and wrongly typed values are None.
    """
    if isinstance(value, bool):
        return None
    number: int
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        if len(value) > _MAX_NUMBER_CHARS:
            return None
        try:
            number = int(value)
        except ValueError:
            try:
                decimal = float(value)
            except ValueError:
                return None
            if not -1.0 < decimal < MAX_COUNT:  # also False for NaN and infinities
                return None
            number = int(decimal)
    elif isinstance(value, float):
        if not -1.0 < value < MAX_COUNT:
            return None
        number = int(value)
    else:
        return None
    return number if 0 <= number <= MAX_COUNT else None


_MAX_EPOCH_MS = int(MAX_EPOCH_S * 1000)


def epoch_seconds(value: object) -> float | None:
    """Return an epoch timestamp from Sidekiq data in seconds, or None if it is not one.

    Sidekiq ≤ 7 writes float seconds, Sidekiq 8 integer milliseconds. The
    magnitude decides, not the type: any value above 1e11 is milliseconds (no
    date before 1973 is, in milliseconds, below it; no date before the year
    5000 is, in seconds, above it), so an integer-seconds value written by
    another client is still read right. Numeric strings (hash fields) count.
    Non-finite, non-positive and values after ``MAX_EPOCH_S`` are None.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        if len(value) > _MAX_NUMBER_CHARS:
            return None
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, int):
        if not 0 < value <= _MAX_EPOCH_MS:  # compared as ints: 10**400 never becomes a float
            return None
        seconds = float(value)
    elif isinstance(value, float):
        seconds = value
    else:
        return None
    if not 0.0 < seconds <= MAX_EPOCH_S * 1000:  # also False for NaN and infinities
        return None
    if seconds > defaults.MILLISECONDS_THRESHOLD:
        seconds /= 1000.0
    return seconds if seconds <= MAX_EPOCH_S else None


def _stamp_from_ends(raw: str) -> float | None:
    """Return the timestamp of a job too large to parse, found near either end."""
    found: dict[str, str] = {}
    for part in (raw[:_ENDS], raw[-_ENDS:]):
        for match in _STAMP.finditer(part):
            found.setdefault(match.group(1), match.group(2))
    text = found.get("enqueued_at", found.get("created_at"))
    if text is None:
        return None
    try:
        number: float = int(text) if text.lstrip("-").isdigit() else float(text)
    except ValueError:
        return None
    return epoch_seconds(number)


_CLASS_NAME = re.compile(r"[A-Z][A-Za-z0-9_]*(?:::[A-Z][A-Za-z0-9_]*)*\Z")

OldestJob = tuple[float | None, float | None, str | None, str | None]
"""(enqueued at, fixed latency, problem, job class) of a queue's oldest job."""


def job_class(job: dict[str, Any]) -> str | None:
    """Return a job's class (ActiveJob's ``wrapped`` first), None unless a plain Ruby class name.

    Only ``A::B``-shaped names of at most ``MAX_CLASS_CHARS`` characters are
    kept, so the result can never form a mention, hashtag, link or control
    sequence.
    """
    for name in ("wrapped", "class"):
        value = job.get(name)
        if isinstance(value, str):
            if len(value) <= MAX_CLASS_CHARS and _CLASS_NAME.match(value):
                return value
            return None
    return None


def oldest_job(raw: str) -> OldestJob:
    """Read the oldest job of a queue: (enqueued at, fixed latency, problem, class).

    The latency is ``now - at`` when ``at`` is known, else the fixed latency
    (0.0 for a job without timestamps, None for one that cannot be read).
    Independent of the clock, so that a job still at the tail is read once.
    The class is ``job_class``'s (None for a job that is not parsed).
    """
    if len(raw) > MAX_JOB_CHARS:
        problem = f"oldest job is larger than {MAX_JOB_CHARS} characters"
        return _stamp_from_ends(raw), None, problem, None
    try:
        job = json.loads(raw)
    except RecursionError:
        return None, None, "oldest job is nested too deeply", None
    except ValueError:
        return None, None, "oldest job is not valid JSON", None
    if not isinstance(job, dict):
        return None, None, "oldest job is not a JSON object", None
    kind = job_class(job)
    for name in ("enqueued_at", "created_at"):
        if name in job:
            at = epoch_seconds(job[name])
            if at is None:
                return None, None, f"oldest job has a malformed {name}: {_show(job[name])}", kind
            return at, None, None, kind
    return None, 0.0, "oldest job has neither enqueued_at nor created_at", kind


def job_latency(raw: str | None, now: float) -> tuple[float | None, str | None]:
    """Return (latency in seconds, problem) for the oldest job of a queue.

    ``raw`` is the job JSON at the tail of the list (None for an empty queue,
    latency 0.0). Like Sidekiq, the age is measured from ``enqueued_at``,
    falling back to ``created_at`` (Sidekiq ≥ 8.1.2); a job with neither
    has latency 0.0 as in Sidekiq, reported as a problem. A job that is not a
    JSON object has an unknown latency (None). A job longer than
    ``MAX_JOB_CHARS`` is not parsed: it is a problem, and its latency comes
    from a timestamp found near either end, if any. Never raises.
    """
    if raw is None:
        return 0.0, None
    at, fixed, problem, _ = oldest_job(raw)
    return (fixed if at is None else max(0.0, now - at)), problem


def _unique(names: Iterable[object]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for name in names:
        if isinstance(name, str):
            seen.setdefault(name, None)
    return tuple(seen)


def _process_queues(info: dict[str, Any]) -> tuple[str, ...]:
    queues = info.get("queues")
    if isinstance(queues, list):
        return _unique(queues)
    # Without `queues`, fall back to the capsules' weights (Sidekiq ≥ 7).
    names: list[object] = []
    capsules = info.get("capsules")
    if isinstance(capsules, dict):
        for capsule in capsules.values():
            if isinstance(capsule, dict) and isinstance(capsule.get("weights"), dict):
                names.extend(capsule["weights"])
    weights = info.get("weights")
    if not names and isinstance(weights, list):
        for weight in weights:
            if isinstance(weight, dict):
                names.extend(weight)
    return _unique(names)


MAX_WEIGHT = 1000
"""A queue weight above this (or not an integer) is read as 0: none given."""


def _process_weights(info: dict[str, Any], names: tuple[str, ...]) -> tuple[int, ...]:
    """Return one weight per queue name (see ``ProcessStats.queue_weights``); never raises."""
    found: dict[str, int] = {}
    maps: list[object] = []
    capsules = info.get("capsules")
    if isinstance(capsules, dict):
        maps.extend(c.get("weights") for c in capsules.values() if isinstance(c, dict))
    weights = info.get("weights")
    if isinstance(weights, list):
        maps.extend(weights)
    for mapping in maps:
        if isinstance(mapping, dict):
            for name, weight in mapping.items():
                number = (weight if isinstance(weight, int) and not isinstance(weight, bool)
                          and 0 <= weight <= MAX_WEIGHT else 0)
                found[name] = max(found.get(name, 0), number)
    if found:
        return tuple(found.get(name, 0) for name in names)
    queues = info.get("queues")
    if isinstance(queues, list) and len(queues) > len(names):
        counts: dict[str, int] = {}
        for name in queues:
            if isinstance(name, str):
                counts[name] = counts.get(name, 0) + 1
        if any(count > 1 for count in counts.values()):
            return tuple(min(MAX_WEIGHT, counts.get(name, 0)) for name in names)
    if isinstance(queues, list) or maps:
        return tuple(0 for _ in names)
    return ()


def _info_concurrency(info: dict[str, Any], problems: list[str]) -> int | None:
    if "concurrency" in info:  # Sidekiq ≤ 8.1.1
        value = info["concurrency"]
        concurrency = as_count(value) if isinstance(value, int) else None
        if concurrency is None:
            problems.append(f"malformed info.concurrency: {_show(value)}")
        return concurrency
    capsules = info.get("capsules")
    if isinstance(capsules, dict):
        counts = [c.get("concurrency") for c in capsules.values() if isinstance(c, dict)]
        numbers = [as_count(n) for n in counts if isinstance(n, int)]
        if numbers and len(numbers) == len(counts) and None not in numbers:
            return min(MAX_COUNT, sum(n for n in numbers if n is not None))
    return None


def _major_version(version: str | None) -> int | None:
    match = re.match(r"(\d{1,9})\.", version or "")
    return int(match.group(1)) if match else None


def _stale_limit(major: int | None, configured: float) -> float:
    if configured > 0:
        return configured
    beat = (
        defaults.BEAT_INTERVAL_SIDEKIQ7
        if major is not None and major >= 7
        else defaults.BEAT_INTERVAL_SIDEKIQ6
    )
    return beat * defaults.MISSED_BEATS_STALE


def stale_limit(info: dict[str, Any], configured: float) -> float:
    """Return the heartbeat age in seconds beyond which a process is stale.

    ``configured`` wins when positive. Otherwise three heartbeats: Sidekiq
    writes ``version`` into ``info`` from 7.0.2 and beats every 10 s from 7.0;
    without it (6.x) it beats every 5 s.
    """
    version = info.get("version")
    return _stale_limit(_major_version(version if isinstance(version, str) else None),
                        configured)


@dataclass(frozen=True, slots=True)
class HeartbeatInfo:
    """What one heartbeat's ``info`` JSON says; it changes only when a process restarts."""

    hostname: str | None = None
    pid: int | None = None
    tag: str | None = None
    version: str | None = None
    queues: tuple[str, ...] = ()
    concurrency: int | None = None
    started_at: float | None = None
    major: int | None = None
    queue_weights: tuple[int, ...] = ()
    problems: tuple[str, ...] = ()
    stale_limit: float = _stale_limit(None, 0.0)
    """Three beats of this Sidekiq version, the stale limit unless one is configured."""


_MAX_PID = 2**32


def parse_info(raw: str) -> HeartbeatInfo:
    """Parse a heartbeat's ``info`` JSON; malformed parts are ``problems``, never raised."""
    if len(raw) > MAX_INFO_CHARS:
        return HeartbeatInfo(
            problems=(f"heartbeat info is larger than {MAX_INFO_CHARS} characters",))
    try:
        info = json.loads(raw)
    except RecursionError:
        return HeartbeatInfo(problems=("heartbeat info is nested too deeply",))
    except ValueError:
        info = None
    if not isinstance(info, dict):
        return HeartbeatInfo(problems=("heartbeat info is not a JSON object",))
    problems: list[str] = []

    def text(name: str) -> str | None:
        value = info.get(name)
        return value if isinstance(value, str) else None

    pid = info.get("pid")
    if isinstance(pid, int) and not isinstance(pid, bool) and not 0 < pid < _MAX_PID:
        problems.append(f"malformed info.pid: {_show(pid)}")
        pid = None
    started_at = epoch_seconds(info.get("started_at"))
    if started_at is None and info.get("started_at") is not None:
        problems.append(f"malformed info.started_at: {_show(info['started_at'])}")
    version = text("version")
    queues = _process_queues(info)
    return HeartbeatInfo(
        hostname=text("hostname"),
        pid=pid if isinstance(pid, int) and not isinstance(pid, bool) else None,
        tag=text("tag"),
        version=version,
        queues=queues,
        concurrency=_info_concurrency(info, problems),
        started_at=started_at,
        major=_major_version(version),
        problems=tuple(problems),
        stale_limit=_stale_limit(_major_version(version), 0.0),
        queue_weights=_process_weights(info, queues),
    )


_NO_INFO = HeartbeatInfo()


def _beat_seconds(value: object) -> float | None:
    """``epoch_seconds`` with a fast path for the common case, float seconds as text."""
    if type(value) is str and len(value) <= _MAX_NUMBER_CHARS:
        try:
            seconds = float(value)
        except ValueError:
            return None
        if 0.0 < seconds <= MAX_EPOCH_S:
            return seconds
    return epoch_seconds(value)


def _field_count(identity: str, name: str, value: object,
                 anomalies: list[Anomaly]) -> int | None:
    """Return a heartbeat hash field as a count; a malformed one is an anomaly and None."""
    if value is None:
        return None
    try:
        number = int(value)  # type: ignore[call-overload]  # the common case, "25"
    except (TypeError, ValueError, OverflowError):
        parsed = as_count(value)
    else:
        parsed = number if 0 <= number <= MAX_COUNT and not isinstance(value, bool) else None
    if parsed is None:
        anomalies.append(Anomaly(identity, f"malformed {name}: {_show(value)}"))
    return parsed


def build_process(
    identity: str,
    info: HeartbeatInfo | None,
    fields: Sequence[object],
    now: float,
    stale_after: float,
    anomalies: list[Anomaly],
) -> ProcessStats:
    """Build one process from its parsed ``info`` and its other heartbeat fields.

    ``info`` is None when the hash is gone; ``fields`` start with ``busy, beat,
    quiet, rss, concurrency``. Problems are appended to ``anomalies``.
    """
    if info is None:
        return ProcessStats(identity, False, "heartbeat expired", None, None, None, None, (),
                            None, None, None, False, None, None)
    for problem in info.problems:
        anomalies.append(Anomaly(identity, problem))
    busy = _field_count(identity, "busy", fields[0], anomalies)
    rss = _field_count(identity, "rss", fields[3], anomalies)
    # The hash field (Sidekiq ≥ 8.1.2) wins over info's.
    concurrency = _field_count(identity, "concurrency", fields[4], anomalies)
    beat = fields[1]
    beat_at = _beat_seconds(beat)
    beat_age = None if beat_at is None else max(0.0, now - beat_at)
    if beat_age is None:
        stale: str | None = "no heartbeat time"
        anomalies.append(Anomaly(identity, f"malformed beat: {_show(beat)}"))
    elif beat_age > (stale_after if stale_after > 0 else info.stale_limit):
        stale = f"no heartbeat for {beat_age:.0f} s"
    else:
        stale = None
    return ProcessStats(
        identity, stale is None, stale, info.hostname, info.pid, info.tag, info.version,
        info.queues, concurrency if concurrency is not None else info.concurrency, busy, rss,
        fields[2] == "true", beat_age, info.started_at, info.queue_weights,
    )


def parse_process(
    identity: str,
    fields: Sequence[object],
    now: float,
    stale_after: float = defaults.PROCESS_STALE_AFTER,
) -> tuple[ProcessStats, list[Anomaly]]:
    """Build one process from its heartbeat hash fields (in ``PROCESS_FIELDS`` order).

    A process is alive only if its hash still exists (``info`` is set) and its
    last ``beat`` is younger than the stale limit. An identity whose hash has
    expired is the trace of a process killed without a clean shutdown.
    """
    raw_info, busy, beat, quiet, rss, concurrency = (list(fields) + [None] * 6)[:6]
    anomalies: list[Anomaly] = []
    info = None if raw_info is None else parse_info(str(raw_info))
    process = build_process(identity, info, (busy, beat, quiet, rss, concurrency), now,
                            stale_after, anomalies)
    return process, anomalies


def _command(*args: str | bytes) -> bytes:
    """Return one Redis command in the wire protocol (RESP), ready to send."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode() if isinstance(arg, str) else arg
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


PING = _command("PING")

_INFO_FIELDS = tuple(
    (name, f"\n{name}:")
    for name in ("redis_version", "used_memory", "maxmemory", "maxmemory_policy",
                 "connected_clients", "uptime_in_seconds")
)


def parse_redis_info(text: str) -> dict[str, str]:
    """Return the few INFO fields the snapshot reports, as text."""
    text = "\n" + text
    fields: dict[str, str] = {}
    for name, needle in _INFO_FIELDS:
        start = text.find(needle)
        if start >= 0:
            start += len(needle)
            end = text.find("\n", start)
            fields[name] = text[start:end if end >= 0 else len(text)].rstrip("\r")
    return fields


@dataclass(slots=True)
class _Known:
    """A process identity seen before: its parsed ``info`` and its pre-encoded HMGET."""

    info: HeartbeatInfo
    command: bytes
    """HMGET of the heartbeat fields without ``info`` (which Sidekiq never rewrites)."""


@dataclass
class _Pending:
    """What the second round trip found, needed to build the third."""

    queues: list[str]
    processes: list[str]
    paused: set[str]


class SidekiqReader:
    """Take snapshots of one Sidekiq installation through a redis-py client.

    ``client`` should be created with ``decode_responses=True``; ``namespace``
    is redis-namespace's key prefix (set members stay unprefixed). ``url`` is
    shown in the snapshot and must already be free of secrets.

    The reader sends its pipelines pre-encoded on one connection of the
    client's pool, and keeps, per process identity in the ``processes`` set,
    the parsed ``info`` (written once per process life) so that a heartbeat's
    ``info`` is read and parsed once, and per queue its oldest job as long as
    it stays the oldest. Identities and queues that leave their set are
    forgotten at the next snapshot.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        url: str,
        namespace: str = "",
        stale_after: float = defaults.PROCESS_STALE_AFTER,
        max_anomaly_examples: int = defaults.MAX_ANOMALY_EXAMPLES,
        clock: Callable[[], float] = time.time,
        timer: Callable[[], float] = time.perf_counter,
        agents: AgentReader | None = None,
    ) -> None:
        self._client = client
        self.agents = agents
        """Reads the other hosts' agents in the same round trips (None: not read)."""
        self._host_commands: dict[str, bytes] = {}
        self._url = url
        self._namespace = namespace
        self._stale_after = stale_after
        self._max_examples = max_anomaly_examples
        self._clock = clock
        self._timer = timer
        self._connected = False
        self._connection: redis.Connection | None = None
        # Only the INFO sections the snapshot reports (several at once needs Redis 7;
        # on an older server the first snapshot falls back to the whole INFO).
        self._info_sections: tuple[str, ...] = INFO_SECTIONS
        self._first: tuple[tuple[int, tuple[str, ...], bool], bytes] = ((-1, (), False), b"")
        self._known: dict[str, _Known] = {}
        self._queue_commands: dict[str, bytes] = {}
        self._oldest: dict[str, tuple[str, OldestJob]] = {}

    def key(self, name: str) -> str:
        """Return the Redis key for Sidekiq's ``name``, with the namespace prefix."""
        return f"{self._namespace}:{name}" if self._namespace else name

    def read(self) -> tuple[RedisStats, SidekiqStats | None]:
        """Take one snapshot; never raises for Redis trouble nor for Redis data.

        An unreachable or refusing Redis gives ``reachable=False`` with the
        error, and no Sidekiq stats.
        """
        pool = self._client.connection_pool
        try:
            # The reader keeps one connection of the pool for itself, saving the pool's
            # checks at every snapshot; it goes back to the pool on any trouble.
            connection = self._connection if self._connection is not None else (
                _get_connection(pool))
            self._connection = connection
            try:
                if not self._connected:
                    # Connect outside the timed PING, so round trip means round trip.
                    _exchange(connection, PING, 1)
                    self._connected = True
                started = self._timer()
                _exchange(connection, PING, 1)
                rtt_ms = (self._timer() - started) * 1000.0
                agents = self.agents
                first = _exchange(connection, self._first_command(), 12 if agents else 11)
                pending, info, counters, anomalies = self._parse_first(first[:11])
                command, count = self._second_command(pending)
                names: list[str] = []
                if agents is not None:
                    names = agents.select(first[11])
                    command += self._hosts_command(names)
                total = count + 2 * len(names)
                second = _exchange(connection, command, total) if total else []
            except BaseException:
                connection.disconnect()  # type: ignore[no-untyped-call]  # replies may be left unread
                self._connection = None
                pool.release(connection)
                raise
        except redis.RedisError as exc:
            self._connected = False
            if self.agents is not None:
                self.agents.unread()
            return self._unreachable(exc), None
        if agents is not None:
            agents.build(names, second[count:])
        now = self._clock()
        stats = self._parse_second(pending, counters, second[:count], anomalies, now)
        return self._redis_stats(rtt_ms, info), stats

    def daily_counters(self, days: int, today: date) -> dict[str, tuple[int, int]]:
        """Return Sidekiq's own jobs processed and failed per UTC day, for ``days`` days.

        Keys are ISO dates, oldest first, ending with ``today``; a day without
        a counter (nothing ran, or before Sidekiq kept them) reads (0, 0).
        Sidekiq keeps these counters 5 years, so they cover the time before
        the bot ran. One MGET, read-only; ``days`` is capped at
        ``DAILY_COUNTERS_MAX_DAYS``. A value that is not a number reads 0 and
        is counted in a warning. Never raises for Redis trouble: logs it and
        returns {}.
        """
        log = logging.getLogger(__name__)
        days_read = max(0, min(int(days), defaults.DAILY_COUNTERS_MAX_DAYS))
        if days_read == 0:
            return {}
        dates = [(today - timedelta(days=back)).isoformat()
                 for back in range(days_read - 1, -1, -1)]
        keys = [self.key(f"stat:{name}:{day}") for day in dates for name in ("processed", "failed")]
        try:
            values = list(self._client.mget(keys))
        except redis.RedisError as exc:
            log.warning("cannot read Sidekiq's daily counters: %s", _error_text(exc))
            return {}
        numbers: list[int] = []
        malformed: list[str] = []
        for key, value in zip(keys, values, strict=True):
            number = as_count(value) if value is not None else 0
            if number is None:
                malformed.append(key)
                number = 0
            numbers.append(number)
        if malformed:
            log.warning("%d malformed Sidekiq daily counters read as 0 (first: %s)",
                        len(malformed), malformed[0])
        return {day: (numbers[2 * i], numbers[2 * i + 1]) for i, day in enumerate(dates)}

    def _first_command(self) -> bytes:
        day = int(self._clock() // 86_400)
        cache_key = (day, self._info_sections, self.agents is not None)
        if self._first[0] != cache_key:
            today = datetime.fromtimestamp(day * 86_400, tz=timezone.utc).strftime("%Y-%m-%d")
            commands = [_command("INFO", *self._info_sections)]
            commands += [_command("SMEMBERS", self.key(name))
                         for name in ("queues", "processes", "paused")]
            commands += [_command("GET", self.key(f"stat:{name}"))
                         for name in ("processed", "failed", f"processed:{today}",
                                      f"failed:{today}")]
            commands += [_command("ZCARD", self.key(name))
                         for name in ("schedule", "retry", "dead")]
            if self.agents is not None:
                commands.append(_command("SMEMBERS", defaults.HOSTS_KEY))  # never namespaced
            self._first = (cache_key, b"".join(commands))
        return self._first[1]

    def _hosts_command(self, names: Sequence[str]) -> bytes:
        """Return GET and PTTL of each agent's reading, pre-encoded (cached per name)."""
        cache = self._host_commands
        parts: list[bytes] = []
        for name in names:
            command = cache.get(name)
            if command is None:
                key = defaults.HOST_KEY_PREFIX + name
                command = cache[name] = _command("GET", key) + _command("PTTL", key)
            parts.append(command)
        if len(cache) > len(names):
            wanted = set(names)
            for name in [n for n in cache if n not in wanted]:
                del cache[name]
        return b"".join(parts)

    def _parse_first(
        self, results: list[Any]
    ) -> tuple[_Pending, dict[str, str], list[int], list[Anomaly]]:
        anomalies: list[Anomaly] = []
        info_raw, queues, processes, paused, *numbers = results
        info: dict[str, str] = {}
        if isinstance(info_raw, str):
            info = parse_redis_info(info_raw)
        elif isinstance(info_raw, redis.ResponseError) and self._info_sections:
            self._info_sections = ()  # Redis < 7: one section at most; ask for all from now on
        elif isinstance(info_raw, Exception):
            anomalies.append(Anomaly("INFO", _error_text(info_raw)))
        sets: list[set[str]] = []
        for name, value in (("queues", queues), ("processes", processes), ("paused", paused)):
            if isinstance(value, Exception):
                anomalies.append(Anomaly(self.key(name), _error_text(value)))
                value = set()
            sets.append(set(map(str, value)))
        names = ("stat:processed", "stat:failed", "stat:processed:today", "stat:failed:today")
        counters: list[int] = []
        for name, value in zip((*names, "schedule", "retry", "dead"), numbers, strict=True):
            if isinstance(value, Exception):
                anomalies.append(Anomaly(self.key(name), _error_text(value)))
                value = 0
            number = as_count(value) if value is not None else 0
            if number is None:
                anomalies.append(Anomaly(self.key(name), f"not a number: {_show(value)}"))
                number = 0
            counters.append(number)
        pending = _Pending(queues=sorted(sets[0]), processes=sorted(sets[1]), paused=sets[2])
        return pending, info, counters, anomalies

    def _second_command(self, pending: _Pending) -> tuple[bytes, int]:
        """Return the second pipeline, pre-encoded, and how many replies it brings."""
        parts: list[bytes] = []
        queue_commands = self._queue_commands
        for name in pending.queues:
            command = queue_commands.get(name)
            if command is None:
                key = self.key(f"queue:{name}")
                command = _command("LLEN", key) + _command("LINDEX", key, "-1")
                queue_commands[name] = command
            parts.append(command)
        if len(queue_commands) > len(pending.queues):
            wanted = set(pending.queues)
            for name in [n for n in queue_commands if n not in wanted]:
                del queue_commands[name]
        known = self._known
        for identity in pending.processes:
            entry = known.get(identity)
            parts.append(entry.command if entry is not None
                         else _command("HMGET", self.key(identity), *PROCESS_FIELDS_FIRST))
        return b"".join(parts), 2 * len(pending.queues) + len(pending.processes)

    def _read_processes(
        self, identities: list[str], replies: list[Any], now: float, anomalies: list[Anomaly]
    ) -> list[ProcessStats]:
        known = self._known
        seen: dict[str, _Known] = {}
        processes: list[ProcessStats] = []
        append = processes.append
        stale_after = self._stale_after
        for identity, fields in zip(identities, replies, strict=True):
            entry = known.get(identity)
            if entry is not None and type(fields) is list and len(fields) == 5:
                seen[identity] = entry
                info = entry.info
                # The common case inline (hundreds of processes per snapshot): every
                # field well formed. Anything else goes the long way, build_process.
                busy, beat, quiet, rss, concurrency = fields
                try:
                    busy_n, rss_n, beat_at = int(busy), int(rss), float(beat)
                    concurrency_n = (info.concurrency if concurrency is None
                                     else int(concurrency))
                except (TypeError, ValueError):
                    pass
                else:
                    if (0 <= busy_n <= MAX_COUNT and 0 <= rss_n <= MAX_COUNT
                            and 0.0 < beat_at <= MAX_EPOCH_S and not info.problems
                            and (concurrency_n is None or 0 <= concurrency_n <= MAX_COUNT)):
                        age = now - beat_at if now > beat_at else 0.0
                        limit = stale_after if stale_after > 0 else info.stale_limit
                        stale = None if age <= limit else f"no heartbeat for {age:.0f} s"
                        append(ProcessStats(
                            identity, stale is None, stale, info.hostname, info.pid, info.tag,
                            info.version, info.queues, concurrency_n, busy_n, rss_n,
                            quiet == "true", age, info.started_at, info.queue_weights))
                        continue
                # Every field gone: the hash expired (the process was killed).
                append(build_process(identity, info if fields != _GONE else None, fields, now,
                                     stale_after, anomalies))
                continue
            if isinstance(fields, Exception):
                anomalies.append(Anomaly(self.key(identity), _error_text(fields)))
                fields = [None] * len(PROCESS_FIELDS_FIRST)
            if len(fields) == len(PROCESS_FIELDS_FIRST):  # info was read
                raw_info = fields[-1]
                parsed = None if raw_info is None else parse_info(str(raw_info))
                if parsed is not None:
                    entry = _Known(parsed, _command("HMGET", self.key(identity),
                                                    *PROCESS_FIELDS_AFTER))
            else:
                parsed = entry.info if entry is not None and fields != _GONE else None
            if entry is not None:
                seen[identity] = entry
            append(build_process(identity, parsed, fields, now, stale_after, anomalies))
        self._known = seen  # identities that left the set are forgotten
        return processes

    def _read_queues(
        self, pending: _Pending, results: list[Any], served: set[str], now: float,
        anomalies: list[Anomaly],
    ) -> list[QueueStats]:
        cache = self._oldest
        kept: dict[str, tuple[str, OldestJob]] = {}
        queues: list[QueueStats] = []
        for index, name in enumerate(pending.queues):
            size, oldest = results[2 * index], results[2 * index + 1]
            paused, is_served = name in pending.paused, name in served
            if isinstance(size, Exception) or isinstance(oldest, Exception):
                error = size if isinstance(size, Exception) else oldest
                anomalies.append(Anomaly(self.key(f"queue:{name}"), _error_text(error)))
                queues.append(QueueStats(name, 0, None, paused, is_served))
                continue
            kind: str | None = None
            if oldest is None:
                latency: float | None = 0.0
            else:
                raw = str(oldest)
                cached = cache.get(name)
                read = cached[1] if cached is not None and cached[0] == raw else oldest_job(raw)
                if len(raw) <= MAX_JOB_CHARS:  # an oversized job is not kept between snapshots
                    kept[name] = (raw, read)
                at, fixed, problem, kind = read
                latency = fixed if at is None else max(0.0, now - at)
                if problem:
                    anomalies.append(Anomaly(self.key(f"queue:{name}"), problem))
            count = size if type(size) is int else as_count(size) or 0
            queues.append(QueueStats(name, count, latency, paused, is_served, kind))
        self._oldest = kept
        return queues

    def _parse_second(
        self,
        pending: _Pending,
        counters: list[int],
        results: list[Any],
        anomalies: list[Anomaly],
        now: float,
    ) -> SidekiqStats:
        offset = 2 * len(pending.queues)
        processes = self._read_processes(pending.processes, results[offset:], now, anomalies)
        live = [p for p in processes if p.alive]
        served = {name for p in live for name in p.queues}
        queues = self._read_queues(pending, results[:offset], served, now, anomalies)
        busy = sum(p.busy or 0 for p in live)
        concurrency = sum(p.concurrency or 0 for p in live)
        processed, failed, processed_today, failed_today, scheduled, retries, dead = counters
        return SidekiqStats(
            processed=processed,
            failed=failed,
            processed_today=processed_today,
            failed_today=failed_today,
            scheduled=scheduled,
            retries=retries,
            dead=dead,
            enqueued=sum(q.size for q in queues),
            queues=tuple(queues),
            processes=tuple(processes),
            processes_registered=len(processes),
            live_processes=len(live),
            stale_processes=len(processes) - len(live),
            busy=busy,
            concurrency=concurrency,
            utilisation=busy / concurrency if concurrency else None,
            anomaly_count=len(anomalies),
            anomalies=tuple(anomalies[: self._max_examples]),
        )

    def _redis_stats(self, rtt_ms: float, info: dict[str, str]) -> RedisStats:
        def number(name: str) -> int | None:
            value = info.get(name)
            return None if value is None else as_count(value)

        version = info.get("redis_version")
        policy = info.get("maxmemory_policy")
        return RedisStats(
            url=self._url,
            namespace=self._namespace,
            reachable=True,
            error=None,
            rtt_ms=rtt_ms,
            version=version,
            used_memory_bytes=number("used_memory"),
            maxmemory_bytes=number("maxmemory"),
            maxmemory_policy=policy,
            connected_clients=number("connected_clients"),
            uptime_s=number("uptime_in_seconds"),
        )

    def _unreachable(self, exc: redis.RedisError) -> RedisStats:
        return RedisStats(self._url, self._namespace, reachable=False, error=_error_text(exc))


_GONE = [None] * 5


def _get_connection(pool: redis.ConnectionPool) -> redis.Connection:
    """Return a connected connection from a redis-py pool (any redis-py from 5.0)."""
    try:
        return pool.get_connection()
    except TypeError:  # redis-py < 5.3 wants a command name
        return pool.get_connection("PING")


def _exchange(connection: redis.Connection, command: bytes, replies: int) -> list[Any]:
    """Send pre-encoded commands and read their replies; an error reply is returned, not raised.

    Connection trouble raises (a ``redis.RedisError``). The replies are read
    straight from the connection's reply parser when it has one (it returns
    error replies as values), which spares redis-py's per-reply wrapper:
    hundreds of HMGET replies make that worth it.
    """
    connection.send_packed_command([command])  # type: ignore[no-untyped-call]
    read = getattr(getattr(connection, "_parser", None), "read_response", None)
    try:
        if read is not None:
            return [read() for _ in range(replies)]
    except OSError as exc:  # what the parser does not wrap itself
        raise redis.ConnectionError(f"Error while reading from Redis: {exc}") from exc
    results: list[Any] = []
    for _ in range(replies):
        try:
            results.append(connection.read_response())
        except redis.ResponseError as exc:  # the reply is consumed; the rest follow
            results.append(exc)
    return results


def _error_text(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text}"
