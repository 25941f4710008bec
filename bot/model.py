"""The readings the collectors produce: frozen values the rest of the bot consumes.

The field names here are the JSON schema of ``statusbot check --json``
(documented in ``docs/snapshot.md``); renaming one is a breaking change.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 1
"""Version of the snapshot JSON schema; raised on any incompatible change."""


@dataclass(frozen=True, slots=True)
class Anomaly:
    """One piece of Redis data that did not have the shape Sidekiq writes."""

    key: str
    problem: str


@dataclass(frozen=True, slots=True)
class QueueStats:
    """One Sidekiq queue.

    ``latency_s`` is the age in seconds of the oldest job, 0.0 for an empty
    queue, and None when the oldest job could not be read.
    """

    name: str
    size: int
    latency_s: float | None
    paused: bool
    served: bool


@dataclass(frozen=True, slots=True)
class ProcessStats:
    """One Sidekiq process registered in the ``processes`` set.

    ``alive`` is False for an identity left behind by a process that died
    (its heartbeat hash expired, or its last beat is older than the stale limit).
    """

    identity: str
    alive: bool
    stale_reason: str | None
    hostname: str | None
    pid: int | None
    tag: str | None
    version: str | None
    queues: tuple[str, ...]
    concurrency: int | None
    busy: int | None
    rss_kb: int | None
    quiet: bool
    beat_age_s: float | None
    started_at: float | None


@dataclass(frozen=True, slots=True)
class RedisStats:
    """Redis itself, as seen from the bot."""

    url: str
    namespace: str
    reachable: bool
    error: str | None = None
    rtt_ms: float | None = None
    version: str | None = None
    used_memory_bytes: int | None = None
    maxmemory_bytes: int | None = None
    maxmemory_policy: str | None = None
    connected_clients: int | None = None
    uptime_s: int | None = None


@dataclass(frozen=True, slots=True)
class SidekiqStats:
    """Sidekiq's queues, sets, counters and processes at one moment.

    ``processes_registered`` counts the ``processes`` set as Sidekiq's own
    ``Stats#processes_size`` does (stale identities included); ``live_processes``
    counts only those with a fresh heartbeat. ``busy``, ``concurrency`` and
    ``utilisation`` add up live processes only.
    """

    processed: int
    failed: int
    processed_today: int
    failed_today: int
    scheduled: int
    retries: int
    dead: int
    enqueued: int
    queues: tuple[QueueStats, ...]
    processes: tuple[ProcessStats, ...]
    processes_registered: int
    live_processes: int
    stale_processes: int
    busy: int
    concurrency: int
    utilisation: float | None
    anomaly_count: int
    anomalies: tuple[Anomaly, ...]

    def queue(self, name: str) -> QueueStats | None:
        """Return the queue called ``name``, or None when Sidekiq has no such queue."""
        for queue in self.queues:
            if queue.name == name:
                return queue
        return None


@dataclass(frozen=True, slots=True)
class DiskStats:
    """Usage of the filesystem holding ``path`` (or the error reading it)."""

    path: str
    total_bytes: int | None
    used_bytes: int | None
    free_bytes: int | None
    percent: float | None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class RoleMemory:
    """Resident memory of the processes that play one Mastodon role on this host."""

    role: str
    processes: int
    rss_bytes: int


@dataclass(frozen=True, slots=True)
class HostStats:
    """Memory, CPU, load and disks of the host the bot runs on."""

    hostname: str
    memory_total_bytes: int
    memory_available_bytes: int
    memory_percent: float
    swap_total_bytes: int
    swap_used_bytes: int
    swap_percent: float
    load_1m: float
    load_5m: float
    load_15m: float
    cpu_count: int | None
    cpu_percent: float | None
    disks: tuple[DiskStats, ...]
    roles: tuple[RoleMemory, ...]
    unreadable_processes: int = 0


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything one tick collected.

    ``sidekiq`` is None when Redis could not be read; ``host`` is None when
    the host reading failed (``host_error`` says why).
    """

    collected_at: float
    redis: RedisStats
    sidekiq: SidekiqStats | None
    host: HostStats | None
    host_error: str | None = None
    schema: int = field(default=SCHEMA_VERSION)

    def to_dict(self) -> dict[str, Any]:
        """Return the snapshot as plain JSON-ready data (the ``check --json`` schema)."""
        return dataclasses.asdict(self)


class Severity(enum.IntEnum):
    """How bad a component is, in the order glances uses: higher is worse."""

    OK = 0
    WARNING = 1
    CRITICAL = 2


@dataclass(frozen=True, slots=True)
class InstanceHealth:
    """The instance's own health endpoints, probed over HTTP.

    ``web_ok`` is /health (200 with ``OK`` or ``{"status":"UP"}``), ``streaming_ok``
    /api/v1/streaming/health; None when not probed. ``error`` says what failed.
    """

    web_ok: bool | None = None
    streaming_ok: bool | None = None
    web_error: str | None = None
    streaming_error: str | None = None


@dataclass(frozen=True, slots=True)
class Finding:
    """One component's judged state at one tick (the output of ``health.evaluate``).

    ``component`` is one of: ``queue:<name>`` (latency of a queue),
    ``unserved:<name>`` (no live process serves a queue), ``memory``, ``swap``,
    ``redis`` (unreachable), ``dead`` (dead-set growth), ``web`` (the
    instance's /health), ``streaming``. ``reason`` is the technical one-liner
    for admins and logs; ``muted`` says why it is not announced (a root cause,
    a maintenance window, a silence), None when it is.
    """

    component: str
    severity: Severity
    reason: str
    value: float | None = None
    since: float | None = None
    muted: str | None = None
