"""The readings the collectors produce: frozen values the rest of the bot consumes.

The field names here are the JSON schema of ``statusbot check --json``
(documented in ``docs/snapshot.md``); renaming one is a breaking change.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from dataclasses import dataclass, field
from typing import Any

from bot.defaults import HOST_BYTES_MAX

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
    queue, and None when the oldest job could not be read. ``oldest_class`` is
    that job's class (ActiveJob's ``wrapped`` class first), None for an empty
    queue or when it is not a plain Ruby class name of at most
    ``MAX_CLASS_CHARS`` characters (so it is safe to show as it is).
    """

    name: str
    size: int
    latency_s: float | None
    paused: bool
    served: bool
    oldest_class: str | None = None


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
    queue_weights: tuple[int, ...] = ()
    """One weight per name in ``queues`` (0: none given, Sidekiq's strict order when all
    are 0): from ``info.weights``/``capsules`` (Sidekiq ≥ 7), or from names repeated in
    ``info.queues`` (a weighted layout written expanded); () when unknown."""


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
class Point:
    """One point of a metric's history: a raw sample (``count`` 1) or a bucket starting at ``at``.

    ``min``, ``mean`` and ``max`` are the bucket's (all equal for a raw sample).
    """

    at: float
    min: float
    mean: float
    max: float
    count: int


@dataclass(frozen=True, slots=True)
class HostPoint:
    """One point of a host's memory history, in bytes: a raw sample or a bucket from ``at``.

    ``min``, ``mean`` and ``max`` are the memory used over the ``count``
    samples (all equal for a raw sample); ``total`` is the memory provisioned
    (the largest seen in the bucket).
    """

    at: float
    min: float
    mean: float
    max: float
    count: int
    total: float


def plausible_bytes(*values: float) -> bool:
    """Return True when every value is a finite memory size from 0 to ``HOST_BYTES_MAX``."""
    return all(math.isfinite(v) and 0 <= v <= HOST_BYTES_MAX for v in values)


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


HOST_SCHEMA_VERSION = 1
"""Version of a host reading as an agent writes it to Redis (``statusbot:host:<name>``)."""


class HostSource(str, enum.Enum):
    """Where a host reading came from."""

    LOCAL = "local"
    """psutil on the host the bot runs on."""
    AGENT = "agent"
    """``statusbot agent`` on another host, through Redis."""
    NODE_EXPORTER = "node_exporter"
    """Prometheus' node_exporter, read over HTTP."""


@dataclass(frozen=True, slots=True)
class HostReading:
    """One other host's reading, as the bot saw it this tick.

    ``stats`` is None when the host is not reporting (an agent's reading
    expired or was unusable, an exporter failed): ``error`` then says why in
    one line, for admins. ``age_s`` is how old an agent's reading is (None for
    exporters, read now). ``role`` and ``member_visible`` come from the host's
    ``[[hosts]]`` entry when there is one (defaults otherwise).
    """

    name: str
    source: HostSource
    stats: HostStats | None
    error: str | None = None
    age_s: float | None = None
    role: str = ""
    member_visible: bool = False


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything one tick collected.

    ``sidekiq`` is None when Redis could not be read; ``host`` is None when
    the host reading failed (``host_error`` says why). ``hosts`` are the
    other hosts (agents through Redis, node_exporters), sorted by name;
    ``host_anomalies`` the agent readings that could not be used (another
    schema, garbage), each counted, never raised.
    """

    collected_at: float
    redis: RedisStats
    sidekiq: SidekiqStats | None
    host: HostStats | None
    host_error: str | None = None
    hosts: tuple[HostReading, ...] = ()
    host_anomalies: tuple[Anomaly, ...] = ()
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
    ``disk:<path>``, ``redis`` (unreachable), ``dead`` (dead-set growth), ``web`` (the
    instance's /health), ``streaming``; for another host ``memory@<host>``,
    ``swap@<host>``, ``disk@<host>:<path>`` and ``host@<host>`` (not reporting).
    ``reason`` is the technical one-liner for admins and logs; ``muted`` says why
    it is not announced (a root cause, a maintenance window, a silence, a host
    members do not hear about), None when it is.
    """

    component: str
    severity: Severity
    reason: str
    value: float | None = None
    since: float | None = None
    muted: str | None = None
    eta_s: float | None = None
    """For a queue whose backlog is shrinking: estimated seconds until it has caught up."""


class EventKind(enum.Enum):
    """What happened to the open incident in one step."""

    OPENED = "opened"
    WORSENED = "worsened"
    IMPROVED = "improved"
    COMPONENT_ADDED = "component_added"
    COMPONENT_CLEARED = "component_cleared"
    REMINDER = "reminder"
    NOTE = "note"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class Affected:
    """One component that is not OK within an incident."""

    component: str
    severity: Severity
    since: float
    peak: Severity
    reason: str
    value: float | None = None
    peak_value: float | None = None
    eta_s: float | None = None


@dataclass(frozen=True, slots=True)
class Incident:
    """The one open incident: every component that is not OK, grouped.

    ``id`` is stable for the incident's life and goes into every idempotency
    key of its posts. ``sequence`` counts the events announced so far (the
    opening is 0), so ``f"{id}:{sequence}"`` names each post of the thread.
    """

    id: str
    opened_at: float
    affected: tuple[Affected, ...]
    cleared: tuple[str, ...] = ()
    severity: Severity = Severity.WARNING
    peak: Severity = Severity.WARNING
    sequence: int = 0
    reminders: int = 0
    last_announced_at: float = 0.0
    acknowledged: bool = False
    resolved_at: float | None = None
    manual: bool = False
    """Declared or taken over by an admin: it ends only when an admin resolves it."""


@dataclass(frozen=True, slots=True)
class Event:
    """One thing to tell people about an incident (the output of ``incidents.step``).

    ``incident`` is the incident as it is after the event; ``reason`` says why
    the event was raised (logged, and shown by ``--dry-run``); ``changes``
    lists every component change folded into this event.
    """

    kind: EventKind
    incident: Incident
    at: float
    reason: str
    changes: tuple[str, ...] = ()
    note: str = ""
    """An admin's own words for members (manual incidents, updates, resolutions)."""


class PostKind(enum.Enum):
    """What a post is for; decides its visibility and its place in a thread."""

    NOTICE = "notice"
    UPDATE = "update"
    RESOLUTION = "resolution"
    ADMIN = "admin"
    STATUS = "status"
    CATCHUP = "catchup"
    REPLY = "reply"


INSTANCE = ""
"""``Post.destination`` of the posts to the instance the bot watches (the default)."""


@dataclass(frozen=True, slots=True)
class Post:
    """One status to publish, as composed; the outbox stores and delivers it.

    ``key`` is the stable idempotency key: composing the same event again
    gives the same key, so a post is never published twice. ``parent_key``
    makes it a reply to the post with that key (sent first). ``pin`` pins it
    once sent; ``unpin_key`` unpins the post with that key once this one is sent.
    ``media`` attaches files: each is (path to a local file written before the
    post is queued, alt text); the outbox uploads each once and waits for the
    instance to process it before posting. ``destination`` says where it goes:
    ``INSTANCE`` (empty) for the instance the bot watches, ``fallback:<host>`` for a
    fallback account on another server (``bot/fallback.py``); each destination is
    delivered by an outbox of its own.
    """

    key: str
    kind: PostKind
    text: str
    visibility: str
    created_at: float
    spoiler_text: str = ""
    language: str = "en"
    parent_key: str | None = None
    pin: bool = False
    unpin_key: str | None = None
    media: tuple[tuple[str, str], ...] = ()
    destination: str = ""
