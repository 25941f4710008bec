"""Capacity advice: which Sidekiq queue is behind, what would help, and what sits idle (pure).

``advise(AdviceInputs, Policy)`` takes measurements (per-queue work, the live
processes, host memory, optionally the database's connections and 30 days of
peaks) and returns an ``Advice``: numbers with their uncertainty, nothing
worded. ``render(advice, wording)`` turns it into admin lines (never member
posts); ``Advice.to_json()`` is the ``statusbot advise --json`` document
(schema in its docstring and in docs/advise.md). Nothing here reads a clock,
the network, a file or the environment.

The arithmetic, per queue:

- arrivals (jobs a minute) = jobs done a minute + growth of the backlog a minute;
- busy threads needed = arrivals a second * mean seconds a job (Little's law)
  * ``Policy.margin``;
- busy threads working on it now = jobs done a second * mean seconds a job
  (Little's law on the measured throughput, so no model of the fetch order is
  needed for sizing);
- threads serving it now, per process, follow Sidekiq's fetch order: strict
  (``-q a -q b``, no weights) gives a queue threads only when every queue before
  it is empty; weighted (``-q a,3 -q b,1``, or all weights 1: random) shares
  the threads left by the queues without a backlog among those with one, by
  weight;
- the memory of a process is fitted by least squares, RSS = base + per_thread *
  concurrency, over the live processes that reported an RSS; with fewer than two
  or no spread in concurrency the fit is a guess from ``defaults``;
- time to catch up = backlog / (capacity - arrivals), only when capacity
  exceeds arrivals.

The one change suggested for a queue behind is a new process serving it first
(``bundle exec sidekiq -c N -q <queue> -q …``), sized to reach the needed
threads and to catch up within ``Policy.catch_up_target``, then cut to the most
threads a process should run, the free database connections and the memory
available (with the fit's uncertainty and a reserve). A change that needs more
memory than is available is never suggested.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from bot import defaults
from bot.wording import DEFAULT_WORDING, Wording, fill, neutral

MiB = 2**20
GiB = 2**30


# --- inputs ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueueWork:
    """Work of one queue over the measuring window.

    ``growth_per_min`` is the change of the backlog a minute (negative: shrinking);
    ``coarse`` marks a Sidekiq 6 estimate (processed counter and backlog changes).
    """

    name: str
    backlog: float
    growth_per_min: float
    done_per_min: float
    mean_job_s: float
    failure_share: float = 0.0
    coarse: bool = False


@dataclass(frozen=True, slots=True)
class LiveProcess:
    """One live Sidekiq process from its heartbeat.

    ``queues`` are ``(name, weight)`` in the order given on the command line; a
    weight of 0 means none was given. All weights 0 is Sidekiq's strict order;
    otherwise the order is weighted random (weights below 1 count as 1).
    """

    identity: str
    concurrency: int
    busy: int
    queues: tuple[tuple[str, int], ...]
    rss_bytes: int | None = None

    @property
    def strict(self) -> bool:
        """True when the queues are fetched in strict order (no weights given)."""
        return all(_num(weight) == 0 for _, weight in self.queues)


HIDDEN_APPLICATION = "(hidden)"
"""The ``by_application`` name of connections the reading role may not see the details of
(it lacks ``pg_monitor``); they are counted as in use."""


@dataclass(frozen=True, slots=True)
class Database:
    """PostgreSQL's connections: ``max_connections``, reserved, in use (``pg_stat_activity``).

    ``reserved`` is ``superuser_reserved_connections`` (+ ``reserved_connections`` from
    PostgreSQL 16), None when not read (``Policy.db_reserved`` is assumed);
    ``by_application`` the client connections in use per ``application_name`` (most
    first; Mastodon's web and Sidekiq leave it empty, ``""``). ``pgbouncer``: the bot
    reaches PostgreSQL through PgBouncer, whose pool, not ``max_connections``, may be
    the limit (its ``SHOW POOLS`` is not read). ``error`` is why the reading failed (one
    line; the numbers are then meaningless and the connections count as not checked).
    """

    max_connections: int = 0
    in_use: int = 0
    pgbouncer: bool = False
    reserved: int | None = None
    by_application: tuple[tuple[str, int], ...] = ()
    error: str | None = None

    @classmethod
    def failed(cls, error: str, *, pgbouncer: bool = False) -> Database:
        """Return the value of a reading that failed for ``error``."""
        return cls(pgbouncer=pgbouncer, error=error)


@dataclass(frozen=True, slots=True)
class Peaks:
    """Peaks over the last 30 days (from history).

    ``busy_by_process`` maps a process identity to the most threads it ever had busy
    at once.
    """

    memory_used_bytes: int | None = None
    memory_total_bytes: int | None = None
    busy_by_process: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AdviceInputs:
    """Everything ``advise`` looks at.

    ``database`` None: not checked; ``peaks`` None: no history. ``memory_host``
    names the host whose available memory this is when the instance has several
    (empty with one).
    """

    queues: tuple[QueueWork, ...]
    processes: tuple[LiveProcess, ...]
    memory_available_bytes: int | None
    database: Database | None = None
    peaks: Peaks | None = None
    memory_host: str = ""


@dataclass(frozen=True, slots=True)
class Policy:
    """The advisor's knobs; every default lives in ``bot.defaults`` with its unit."""

    margin: float = defaults.ADVICE_MARGIN
    catch_up_target_s: float = defaults.ADVICE_CATCH_UP_TARGET
    behind_wait_s: float = defaults.ADVICE_BEHIND_WAIT
    behind_min_jobs: int = defaults.ADVICE_BEHIND_MIN_JOBS
    max_threads: int = defaults.ADVICE_MAX_THREADS
    process_base_bytes: int = defaults.ADVICE_PROCESS_BASE
    thread_cost_bytes: int = defaults.ADVICE_THREAD_COST
    guess_margin: float = defaults.ADVICE_GUESS_MARGIN
    memory_reserve_bytes: int = defaults.ADVICE_MEMORY_RESERVE
    db_reserved: int = defaults.ADVICE_DB_RESERVED
    db_margin: int = defaults.ADVICE_DB_MARGIN
    idle_share: float = defaults.ADVICE_IDLE_SHARE
    server_sizes_gb: tuple[int, ...] = defaults.ADVICE_SERVER_SIZES_GB
    server_headroom: float = defaults.ADVICE_SERVER_HEADROOM
    max_queues: int = defaults.ADVICE_MAX_QUEUES
    max_idle: int = defaults.ADVICE_MAX_IDLE


# --- results -----------------------------------------------------------------------------


class FitKind(str, Enum):
    """How the memory cost was found."""

    FITTED = "fitted"
    ONE_PROCESS = "one_process"
    SAME_CONCURRENCY = "same_concurrency"
    NO_DATA = "no_data"
    IMPLAUSIBLE = "implausible"


@dataclass(frozen=True, slots=True)
class MemoryFit:
    """RSS = base + per_thread * concurrency, and how sure it is.

    ``n`` processes were used; ``r2`` and ``rmse_bytes`` (root mean square
    residual) only for ``FITTED``. ``uncertainty_bytes(threads)`` is what a
    fit check adds to a cost: twice the residual when fitted, ``guess_margin``
    of the cost otherwise.
    """

    kind: FitKind
    base_bytes: float
    per_thread_bytes: float
    n: int
    r2: float | None = None
    rmse_bytes: float | None = None
    concurrency: int | None = None
    guess_margin: float = defaults.ADVICE_GUESS_MARGIN

    @property
    def guess(self) -> bool:
        """True when the cost is assumed, not fitted."""
        return self.kind is not FitKind.FITTED

    def cost(self, threads: int, *, with_base: bool = True) -> float:
        """Bytes ``threads`` more threads take (in a new process when ``with_base``)."""
        return (self.base_bytes if with_base else 0.0) + self.per_thread_bytes * threads

    def uncertainty(self, cost: float) -> float:
        """Bytes to add to ``cost`` before checking that it fits."""
        if self.kind is FitKind.FITTED and self.rmse_bytes is not None:
            return 2 * self.rmse_bytes
        return self.guess_margin * cost


class Limit(str, Enum):
    """What cut a suggested change below the threads the queue needs."""

    THREADS = "threads_per_process"
    DATABASE = "database"
    MEMORY = "memory"


class NoChange(str, Enum):
    """Why a queue behind gets no change."""

    CATCHING_UP = "catching_up"
    NO_TIMINGS = "no_timings"
    NO_MEMORY = "no_memory"
    NO_CONNECTIONS = "no_connections"


@dataclass(frozen=True, slots=True)
class Serving:
    """A live process that serves a queue, and about how many threads it gives it now."""

    identity: str
    label: tuple[str, ...]
    threads: float
    concurrency: int


@dataclass(frozen=True, slots=True)
class Change:
    """One more process: ``bundle exec sidekiq -c <threads> -q <queues[0]> -q …``."""

    threads: int
    queues: tuple[str, ...]
    memory_bytes: float
    memory_uncertainty_bytes: float
    catch_up_s: float | None
    db_pool: int
    limits: tuple[Limit, ...]

    def command(self, name: Any = neutral) -> str:  # noqa: ANN401  (a text function)
        """Return the command line, queue names passed through ``name`` (``neutral`` for texts)."""
        return " ".join(["bundle exec sidekiq", f"-c {self.threads}",
                         *(f"-q {name(q)}" for q in self.queues)])


@dataclass(frozen=True, slots=True)
class QueueAdvice:
    """A queue behind: its figures, what serves it, and the change (or why none)."""

    queue: str
    backlog: float
    growth_per_min: float
    arrivals_per_min: float
    done_per_min: float
    mean_job_s: float | None
    failure_share: float
    coarse: bool
    threads_needed: float | None
    threads_busy: float | None
    catch_up_now_s: float | None
    serving: tuple[Serving, ...]
    change: Change | None
    no_change: NoChange | None
    make_room: IdleProcess | None = None


@dataclass(frozen=True, slots=True)
class IdleProcess:
    """A process whose threads were never all needed: ``peak`` of ``concurrency`` busy at once."""

    identity: str
    label: tuple[str, ...]
    peak: int
    concurrency: int
    freeable_bytes: float


@dataclass(frozen=True, slots=True)
class SmallerServer:
    """Peak memory use against the server's, and the smallest size that would do."""

    peak_bytes: int
    total_bytes: int
    size_gb: int
    left_bytes: float


@dataclass(frozen=True, slots=True)
class Advice:
    """The advisor's answer: queues behind (most urgent first) and idle resources."""

    behind: tuple[QueueAdvice, ...]
    behind_omitted: int
    idle_processes: tuple[IdleProcess, ...]
    smaller_server: SmallerServer | None
    fit: MemoryFit
    memory_available_bytes: int | None
    database: Database | None
    db_free: int | None
    coarse: bool
    margin: float
    memory_host: str = ""
    db_margin: int = defaults.ADVICE_DB_MARGIN

    def to_json(self) -> dict[str, Any]:
        """Return the ``statusbot advise --json`` document (schema version 1).

        Top level: ``schema`` (1), ``behind`` (list, most urgent first),
        ``behind_omitted`` (int), ``idle`` (``processes`` list, ``smaller_server``
        or null), ``memory`` (``available_bytes`` or null, ``host``: the host
        whose memory that is, or null with one host; ``fit``: ``kind``,
        ``base_bytes``, ``per_thread_bytes``, ``n``, ``r2``, ``rmse_bytes``),
        ``database`` (null when no database is configured, else ``error`` (null, or
        why the reading failed: then every number is null), ``max_connections``,
        ``reserved``, ``in_use``, ``margin`` (connections left free), ``free`` (for
        new threads: max_connections - reserved - in_use - margin, at least 0),
        ``pgbouncer`` (bool), ``by_application`` (list of ``application``, raw name
        as PostgreSQL reports it, and ``connections``)), ``coarse`` (bool), ``margin``.
        Each ``behind`` entry: ``queue`` (raw name as in Redis: neutralise before
        showing), ``backlog``, ``growth_per_min``, ``arrivals_per_min``,
        ``done_per_min``, ``mean_job_s``, ``failure_share``, ``coarse``,
        ``threads_needed``, ``threads_busy``, ``catch_up_now_s``, ``serving``
        (``identity``, ``queues``, ``threads``, ``concurrency``), ``change``
        (null or ``command``, ``threads``, ``queues``, ``memory_bytes``,
        ``memory_uncertainty_bytes``, ``catch_up_s``, ``db_pool``, ``limits``),
        ``no_change`` (null or a ``NoChange`` value), ``make_room`` (null or an
        idle process). Numbers are finite or null; bytes are integers.
        """
        return {
            "schema": 1,
            "behind": [_queue_json(item) for item in self.behind],
            "behind_omitted": self.behind_omitted,
            "idle": {
                "processes": [_idle_json(p) for p in self.idle_processes],
                "smaller_server": None if self.smaller_server is None else {
                    "peak_bytes": self.smaller_server.peak_bytes,
                    "total_bytes": self.smaller_server.total_bytes,
                    "size_gb": self.smaller_server.size_gb,
                    "left_bytes": int(self.smaller_server.left_bytes)},
            },
            "memory": {
                "available_bytes": self.memory_available_bytes,
                "host": self.memory_host or None,
                "fit": {"kind": self.fit.kind.value, "base_bytes": int(self.fit.base_bytes),
                        "per_thread_bytes": int(self.fit.per_thread_bytes), "n": self.fit.n,
                        "r2": _opt(self.fit.r2),
                        "rmse_bytes": None if self.fit.rmse_bytes is None
                        else int(self.fit.rmse_bytes)},
            },
            "database": _database_json(self.database, self.db_free, self.db_margin),
            "coarse": self.coarse,
            "margin": self.margin,
        }


def _database_json(database: Database | None, free: int | None,
                   margin: int) -> dict[str, Any] | None:
    if database is None:
        return None
    if database.error is not None:
        return {"error": database.error, "max_connections": None, "reserved": None,
                "in_use": None, "margin": None, "free": None, "pgbouncer": database.pgbouncer,
                "by_application": []}
    return {"error": None, "max_connections": database.max_connections,
            "reserved": database.reserved, "in_use": database.in_use, "margin": margin,
            "free": free, "pgbouncer": database.pgbouncer,
            "by_application": [{"application": name, "connections": count}
                               for name, count in database.by_application]}


def _opt(value: float | None, digits: int = 3) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, digits)


def _queue_json(item: QueueAdvice) -> dict[str, Any]:
    change = item.change
    return {
        "queue": item.queue, "backlog": int(item.backlog),
        "growth_per_min": _opt(item.growth_per_min),
        "arrivals_per_min": _opt(item.arrivals_per_min),
        "done_per_min": _opt(item.done_per_min), "mean_job_s": _opt(item.mean_job_s),
        "failure_share": _opt(item.failure_share), "coarse": item.coarse,
        "threads_needed": _opt(item.threads_needed), "threads_busy": _opt(item.threads_busy),
        "catch_up_now_s": _opt(item.catch_up_now_s, 0),
        "serving": [{"identity": s.identity, "queues": list(s.label), "threads": _opt(s.threads, 1),
                     "concurrency": s.concurrency} for s in item.serving],
        "change": None if change is None else {
            "command": change.command(str), "threads": change.threads,
            "queues": list(change.queues), "memory_bytes": int(change.memory_bytes),
            "memory_uncertainty_bytes": int(change.memory_uncertainty_bytes),
            "catch_up_s": _opt(change.catch_up_s, 0), "db_pool": change.db_pool,
            "limits": [limit.value for limit in change.limits]},
        "no_change": None if item.no_change is None else item.no_change.value,
        "make_room": None if item.make_room is None else _idle_json(item.make_room),
    }


def _idle_json(item: IdleProcess) -> dict[str, Any]:
    return {"identity": item.identity, "queues": list(item.label), "peak": item.peak,
            "concurrency": item.concurrency, "freeable_bytes": int(item.freeable_bytes)}


# --- sanitising --------------------------------------------------------------------------


def _num(value: object, default: float = 0.0, low: float = 0.0,
         high: float = 1e12) -> float:
    """Return a finite number within [low, high]; anything else (NaN, inf, text) is ``default``."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return default
    if not math.isfinite(number):
        return default
    return min(high, max(low, number))


def _int(value: object, default: int = 0, low: int = 0, high: int = 10**12) -> int:
    return int(_num(value, default, low, high))


def _clean_queue(item: QueueWork) -> QueueWork:
    mean = _num(item.mean_job_s, 0.0, 0.0, 86400.0)
    return QueueWork(
        name=str(item.name), backlog=_num(item.backlog), done_per_min=_num(item.done_per_min),
        growth_per_min=_num(item.growth_per_min, 0.0, -1e12, 1e12), mean_job_s=mean,
        failure_share=_num(item.failure_share, 0.0, 0.0, 1.0), coarse=bool(item.coarse))


def _clean_process(item: LiveProcess) -> LiveProcess:
    rss = None if item.rss_bytes is None else _int(item.rss_bytes, -1, -1, 2**50)
    return LiveProcess(
        identity=str(item.identity), concurrency=_int(item.concurrency, 0, 0, 100_000),
        busy=_int(item.busy, 0, 0, 100_000),
        queues=tuple((str(name), _int(weight, 0, 0, 1_000_000)) for name, weight in item.queues),
        rss_bytes=rss if rss is not None and rss > 0 else None)


# --- arithmetic --------------------------------------------------------------------------


def threads_needed(arrivals_per_min: float, mean_job_s: float, margin: float) -> float:
    """Busy threads a queue needs: arrivals a second * mean job time (Little's law) * margin."""
    return max(0.0, arrivals_per_min) / 60 * max(0.0, mean_job_s) * max(1.0, margin)


def catch_up_seconds(backlog: float, capacity_per_min: float,
                     arrivals_per_min: float) -> float | None:
    """Return seconds to work off ``backlog`` at ``capacity`` against ``arrivals``.

    None when capacity does not exceed arrivals: it never catches up.
    """
    spare = capacity_per_min - arrivals_per_min
    if spare <= 0 or not math.isfinite(spare):
        return None
    return max(0.0, backlog) / spare * 60


def fit_memory(processes: Iterable[LiveProcess], policy: Policy = Policy()) -> MemoryFit:
    """Fit RSS = base + per_thread * concurrency by least squares over ``processes``.

    One process, or all with the same concurrency: the per-thread cost is the
    default and the base what is left of the RSS seen (a guess, said so).
    No RSS at all, or a fit with a negative cost: both defaults (a guess).
    """
    points = [(float(p.concurrency), float(p.rss_bytes)) for p in processes
              if p.rss_bytes is not None and p.rss_bytes > 0 and p.concurrency > 0]
    per_thread = float(policy.thread_cost_bytes)
    margin = policy.guess_margin
    if not points:
        return MemoryFit(FitKind.NO_DATA, float(policy.process_base_bytes), per_thread, 0,
                         guess_margin=margin)
    n = len(points)
    mean_c = math.fsum(c for c, _ in points) / n
    mean_r = math.fsum(r for _, r in points) / n
    sxx = math.fsum((c - mean_c) ** 2 for c, _ in points)
    if n == 1 or sxx == 0:
        kind = FitKind.ONE_PROCESS if n == 1 else FitKind.SAME_CONCURRENCY
        base = max(float(policy.process_base_bytes) / 2, mean_r - per_thread * mean_c)
        return MemoryFit(kind, base, per_thread, n, concurrency=int(mean_c), guess_margin=margin)
    sxy = math.fsum((c - mean_c) * (r - mean_r) for c, r in points)
    slope = sxy / sxx
    base = mean_r - slope * mean_c
    if slope < 0 or base < 0:
        return MemoryFit(FitKind.IMPLAUSIBLE, float(policy.process_base_bytes), per_thread, n,
                         guess_margin=margin)
    residual = math.fsum((r - base - slope * c) ** 2 for c, r in points)
    syy = math.fsum((r - mean_r) ** 2 for _, r in points)
    r2 = 1.0 if syy == 0 else max(0.0, 1 - residual / syy)
    rmse = math.sqrt(residual / n)
    return MemoryFit(FitKind.FITTED, base, slope, n, r2=r2, rmse_bytes=rmse, guess_margin=margin)


def _steady_threads(queue: QueueWork) -> float:
    """Busy threads a queue's arrivals keep occupied (no margin)."""
    return max(0.0, queue.done_per_min + queue.growth_per_min) / 60 * queue.mean_job_s


def serving_threads(process: LiveProcess, work: Mapping[str, QueueWork],
                    sharers: Mapping[str, int]) -> dict[str, float]:
    """About how many of ``process``'s threads each of its queues gets now.

    Strict order: each queue in turn takes its steady need (split over the
    ``sharers`` processes serving it) and a queue with a backlog takes all that is
    left, so the queues after it get nothing. Weighted: the queues without a
    backlog take their steady need; the rest is shared among those with a
    backlog by weight (at least 1 each).
    """
    left = float(process.concurrency)
    names = list(dict.fromkeys(name for name, _ in process.queues))
    result = dict.fromkeys(names, 0.0)

    def need(name: str) -> float:
        queue = work.get(name)
        return 0.0 if queue is None else _steady_threads(queue) / max(1, sharers.get(name, 1))

    if process.strict:
        for name in names:
            queue = work.get(name)
            if queue is not None and queue.backlog > 0:
                result[name] = left
                return result
            taken = min(left, need(name))
            result[name] = taken
            left -= taken
        return result
    weights: dict[str, int] = {}
    for name, weight in process.queues:
        weights[name] = weights.get(name, 0) + max(1, weight)
    backlogged = [n for n in names if (q := work.get(n)) is not None and q.backlog > 0]
    for name in names:
        if name not in backlogged:
            taken = min(left, need(name))
            result[name] = taken
            left -= taken
    total = sum(weights[n] for n in backlogged)
    for name in backlogged:
        result[name] = left * weights[name] / total if total else 0.0
    return result


def _is_behind(queue: QueueWork, policy: Policy) -> bool:
    if queue.backlog < max(1, policy.behind_min_jobs):
        return False
    if queue.done_per_min <= 0:
        return True
    return queue.backlog / queue.done_per_min * 60 >= policy.behind_wait_s


def _urgency(queue: QueueWork) -> tuple[float, float]:
    wait = math.inf if queue.done_per_min <= 0 else queue.backlog / queue.done_per_min
    return (-wait, -queue.backlog)


# --- the advisor -------------------------------------------------------------------------


def advise(inputs: AdviceInputs, policy: Policy = Policy()) -> Advice:
    """Return the advice for ``inputs``. Never raises on data: bad numbers count as unknown or 0."""
    queues: dict[str, QueueWork] = {}
    for raw in inputs.queues:
        queue = _clean_queue(raw)
        queues.setdefault(queue.name, queue)
    processes = [_clean_process(p) for p in inputs.processes]
    available = (None if inputs.memory_available_bytes is None
                 else _int(inputs.memory_available_bytes, 0, 0, 2**50))
    database, db_free = _clean_database(inputs.database, policy)
    db_margin = _int(policy.db_margin, 0, 0, 10**6)
    fit = fit_memory(processes, policy)

    sharers: dict[str, int] = {}
    for process in processes:
        for name in dict.fromkeys(name for name, _ in process.queues):
            sharers[name] = sharers.get(name, 0) + 1
    peaks = inputs.peaks or Peaks()
    idle = _idle_processes(processes, peaks, fit, policy)

    behind_all = sorted((q for q in queues.values() if _is_behind(q, policy)), key=_urgency)
    shown = behind_all[:max(0, policy.max_queues)]
    shown_names = {q.name for q in shown}
    serving: dict[str, list[Serving]] = {name: [] for name in shown_names}
    if shown_names:
        for process in processes:
            if not shown_names.intersection(name for name, _ in process.queues):
                continue
            label = _label(process)
            for name, threads in serving_threads(process, queues, sharers).items():
                if name in serving:
                    serving[name].append(Serving(process.identity, label, threads,
                                                 process.concurrency))
    others = [q.name for q in behind_all]
    advice = [_advise_queue(q, tuple(serving[q.name]), others, queues, fit, available, db_free,
                            idle, policy) for q in shown]
    return Advice(
        behind=tuple(advice), behind_omitted=len(behind_all) - len(shown),
        idle_processes=tuple(idle[:max(0, policy.max_idle)]),
        smaller_server=_smaller_server(peaks, policy), fit=fit,
        memory_available_bytes=available, database=database, db_free=db_free,
        coarse=any(q.coarse for q in shown), margin=max(1.0, _num(policy.margin, 1.0, 1.0, 10.0)),
        db_margin=db_margin, memory_host=inputs.memory_host)


def _clean_database(database: Database | None,
                    policy: Policy) -> tuple[Database | None, int | None]:
    """Return the database reading with sane numbers, and the connections free for threads.

    Free = max_connections - reserved - in use - ``policy.db_margin``, at least 0;
    None when there is no reading or it failed.
    """
    if database is None:
        return None, None
    pgbouncer = bool(database.pgbouncer)
    if database.error is not None:
        return Database.failed(neutral(str(database.error), 300), pgbouncer=pgbouncer), None
    maximum = _int(database.max_connections, 0, 0, 10**7)
    in_use = _int(database.in_use, 0, 0, 10**7)
    reserved = (max(0, _int(policy.db_reserved, 0, 0, 10**7)) if database.reserved is None
                else _int(database.reserved, 0, 0, 10**7))
    apps = tuple((str(name), _int(count, 0, 0, 10**7))
                 for name, count in tuple(database.by_application)[:100])
    clean = Database(maximum, in_use, pgbouncer, reserved, apps)
    free = max(0, maximum - reserved - in_use - _int(policy.db_margin, 0, 0, 10**6))
    return clean, free


def _label(process: LiveProcess, limit: int = 3) -> tuple[str, ...]:
    return tuple(dict.fromkeys(name for name, _ in process.queues))[:limit]


def _advise_queue(queue: QueueWork, serving: tuple[Serving, ...], behind: Sequence[str],
                  queues: Mapping[str, QueueWork], fit: MemoryFit, available: int | None,
                  db_free: int | None, idle: Sequence[IdleProcess], policy: Policy) -> QueueAdvice:
    margin = max(1.0, _num(policy.margin, 1.0, 1.0, 10.0))
    arrivals = max(0.0, queue.done_per_min + queue.growth_per_min)
    timed = queue.mean_job_s > 0
    needed = threads_needed(arrivals, queue.mean_job_s, margin) if timed else None
    busy = queue.done_per_min / 60 * queue.mean_job_s if timed else None
    now = catch_up_seconds(queue.backlog, queue.done_per_min, arrivals)
    base = QueueAdvice(
        queue=queue.name, backlog=queue.backlog, growth_per_min=queue.growth_per_min,
        arrivals_per_min=arrivals, done_per_min=queue.done_per_min,
        mean_job_s=queue.mean_job_s if timed else None, failure_share=queue.failure_share,
        coarse=queue.coarse, threads_needed=needed, threads_busy=busy, catch_up_now_s=now,
        serving=serving, change=None, no_change=None)
    if now is not None and now <= policy.catch_up_target_s:
        return _replace(base, no_change=NoChange.CATCHING_UP)
    if needed is None or busy is None:
        return _replace(base, no_change=NoChange.NO_TIMINGS)
    target = max(1.0, policy.catch_up_target_s)
    wanted = max(needed, (arrivals + queue.backlog / target * 60) / 60 * queue.mean_job_s)
    threads = max(1, min(10**6, math.ceil(wanted - busy)))
    limits: list[Limit] = []
    cap = max(1, policy.max_threads)
    if threads > cap:
        threads, limits = cap, [Limit.THREADS]
    if db_free is not None and threads > db_free:
        if db_free < 1:
            return _replace(base, no_change=NoChange.NO_CONNECTIONS)
        threads = db_free
        limits.append(Limit.DATABASE)
    if available is not None:
        room = available - max(0, policy.memory_reserve_bytes)

        def fits(count: int) -> bool:
            cost = fit.cost(count)
            return cost + fit.uncertainty(cost) <= room

        if not fits(threads):
            while threads > 1 and not fits(threads):
                threads -= 1
            if not fits(threads):
                return _replace(base, no_change=NoChange.NO_MEMORY,
                                make_room=_room_maker(queue.name, idle))
            limits.append(Limit.MEMORY)
    cost = fit.cost(threads)
    capacity = queue.done_per_min + threads * 60 / queue.mean_job_s
    after = [name for name in behind if name != queue.name][:2]
    if not after and "default" in queues and queue.name != "default":
        after = ["default"]
    change = Change(threads=threads, queues=(queue.name, *after), memory_bytes=cost,
                    memory_uncertainty_bytes=fit.uncertainty(cost),
                    catch_up_s=catch_up_seconds(queue.backlog, capacity, arrivals),
                    db_pool=threads, limits=tuple(limits))
    return _replace(base, change=change)


def _replace(item: QueueAdvice, **changes: Any) -> QueueAdvice:  # noqa: ANN401
    values = {name: getattr(item, name) for name in item.__dataclass_fields__}
    values.update(changes)
    return QueueAdvice(**values)


def _room_maker(queue: str, idle: Sequence[IdleProcess]) -> IdleProcess | None:
    """Return the idle process (not serving ``queue``) whose spare threads free the most memory."""
    candidates = [p for p in idle if queue not in p.label and p.freeable_bytes > 0]
    return max(candidates, key=lambda p: p.freeable_bytes, default=None)


def _idle_processes(processes: Sequence[LiveProcess], peaks: Peaks, fit: MemoryFit,
                    policy: Policy) -> list[IdleProcess]:
    """Return the processes whose 30-day peak of busy threads stayed at or below ``idle_share``."""
    found: list[IdleProcess] = []
    busy_by = peaks.busy_by_process if isinstance(peaks.busy_by_process, Mapping) else {}
    for process in processes:
        if process.identity not in busy_by or process.concurrency < 2:
            continue
        peak = _int(busy_by[process.identity], -1, -1, 100_000)
        if peak < 0:
            continue
        peak = max(peak, process.busy)
        if peak > process.concurrency * policy.idle_share:
            continue
        keep = max(1, math.ceil(peak * max(1.0, policy.margin)))
        spare = max(0, process.concurrency - keep)
        found.append(IdleProcess(process.identity, _label(process), peak, process.concurrency,
                                 fit.cost(spare, with_base=False)))
    found.sort(key=lambda p: (-(p.concurrency - p.peak), p.identity))
    return found


def smaller_server(peak_bytes: float | None, total_bytes: float | None,
                   policy: Policy | None = None) -> SmallerServer | None:
    """Return the smallest server size below ``total_bytes`` that keeps the headroom at the peak.

    None when there is no such size, or when either figure is unknown or
    garbage (the monthly donor report's "a smaller server would have been
    enough" sentence, and the advice's idle memory).
    """
    def whole(value: float | None) -> int | None:
        if value is None or not math.isfinite(value):
            return None
        return int(value)

    return _smaller_server(Peaks(memory_used_bytes=whole(peak_bytes),
                                 memory_total_bytes=whole(total_bytes)), policy or Policy())


def _smaller_server(peaks: Peaks, policy: Policy) -> SmallerServer | None:
    """Return the smallest server size below the current one keeping the headroom at the peak."""
    peak = None if peaks.memory_used_bytes is None else _int(peaks.memory_used_bytes, -1, -1, 2**50)
    total = None if peaks.memory_total_bytes is None else _int(peaks.memory_total_bytes, -1, -1,
                                                                2**50)
    if peak is None or total is None or peak < 0 or total <= 0 or peak > total:
        return None
    for size in sorted(policy.server_sizes_gb):
        size_bytes = _num(size, 0.0, 0.0, 2**20) * GiB
        if size_bytes <= 0 or size_bytes >= total * 0.9:
            continue
        left = size_bytes - peak
        if left >= size_bytes * policy.server_headroom:
            return SmallerServer(peak, total, int(size), left)
    return None


# --- wording -----------------------------------------------------------------------------


def memory_text(amount: float, words: Wording = DEFAULT_WORDING) -> str:
    """Bytes for admins: "450 MB" (to 10 MB), "2.1 GB" (from 1 GB, one decimal)."""
    amount = _num(amount, 0.0, 0.0, 2**60)
    if amount >= GiB:
        shown = f"{amount / GiB:,.1f}".removesuffix(".0")
        return fill(words.admin_advice_unit_gb,
                    amount=shown.replace(",", words.thousands_separator))
    megabytes = amount / MiB
    rounded = round(megabytes / 10) * 10 if megabytes >= 100 else max(1, round(megabytes))
    return fill(words.admin_advice_unit_mb, amount=str(rounded))


def count_text(value: float, words: Wording = DEFAULT_WORDING) -> str:
    """Return a count with thousands grouped ("4,200"), to 2 significant digits from 1,000."""
    value = _num(value, 0.0, -1e15, 1e15)
    number = abs(value)
    if number >= 1000:
        digits = len(str(int(number))) - 2
        number = round(number / 10**digits) * 10**digits
    shown = round(number) if number >= 10 else round(number, 1)
    text = f"{shown:,}".replace(",", words.thousands_separator)
    if text.endswith(".0"):
        text = text[:-2]
    return ("-" if value < 0 and shown else "") + text


def duration_text(seconds: float, words: Wording = DEFAULT_WORDING) -> str:
    """Return a rounded estimate: minutes up to 10, then steps of 5, 10 and 60 min."""
    minutes = _num(seconds, 0.0, 0.0, 1e10) / 60
    step = 1 if minutes <= 10 else 5 if minutes <= 60 else 10 if minutes <= 180 else 60
    minutes = max(1, round(minutes / step)) * step
    days, rest = divmod(int(minutes), 1440)
    hours, mins = divmod(rest, 60)
    parts = [(days, words.unit_day), (hours, words.unit_hour), (mins, words.unit_minute)]
    return " ".join(f"{amount} {unit}" for amount, unit in parts if amount)[:40] or (
        f"1 {words.unit_minute}")


def _seconds_text(seconds: float) -> str:
    if seconds >= 10:
        return f"{seconds:,.0f} s"
    return f"{seconds:.2g} s" if seconds >= 0.01 else f"{seconds * 1000:.2g} ms"


def _queues_text(names: Iterable[str]) -> str:
    return ", ".join(neutral(name) for name in names)


def _available_text(advice: Advice, words: Wording) -> str:
    """Return the ``{available}`` of the advice: the amount, with its host if several."""
    if advice.memory_available_bytes is None:
        return words.admin_advice_memory_unknown
    amount = memory_text(advice.memory_available_bytes, words)
    if not advice.memory_host:
        return amount
    return fill(words.admin_advice_memory_on_host, host=neutral(advice.memory_host),
                amount=amount)


def render(advice: Advice, words: Wording = DEFAULT_WORDING) -> list[str]:
    """Return the advice as admin lines, queue names neutralised. Never for member posts."""
    lines: list[str] = []
    available = _available_text(advice, words)
    if not advice.behind:
        lines.append(words.admin_advice_none_behind)
    for item in advice.behind:
        lines.append(" ".join(_queue_lines(item, advice, available, words)))
    if advice.behind_omitted:
        lines.append(fill(words.admin_advice_more, count=f"{advice.behind_omitted:,}".replace(
            ",", words.thousands_separator)))
    lines.extend(database_lines(advice, words))
    if advice.behind and any(i.change is not None for i in advice.behind):
        lines.append(_fit_line(advice.fit, words))
    if advice.coarse:
        lines.append(words.admin_advice_coarse)
    for process in advice.idle_processes:
        lines.append(fill(words.admin_advice_idle_threads, peak=str(process.peak),
                          concurrency=str(process.concurrency),
                          queues=_queues_text(process.label)))
    server = advice.smaller_server
    if server is not None:
        lines.append(fill(words.admin_advice_idle_memory,
                          peak=memory_text(server.peak_bytes, words),
                          total=memory_text(server.total_bytes, words),
                          size=fill(words.admin_advice_unit_gb, amount=str(server.size_gb)),
                          left=memory_text(server.left_bytes, words)))
    return lines


def summary(advice: Advice, words: Wording = DEFAULT_WORDING) -> str | None:
    """Return the most urgent queue's advice in short: its state and the change (or why none).

    Leaves out the arithmetic (``admin_advice_needs``); None when no queue is behind.
    For the admin message of a queue incident, never for member posts.
    """
    if not advice.behind:
        return None
    item = advice.behind[0]
    available = _available_text(advice, words)
    lines = _queue_lines(item, advice, available, words)
    if item.threads_needed is not None and item.mean_job_s is not None:
        del lines[1]
    return " ".join(lines)


def _queue_lines(item: QueueAdvice, advice: Advice, available: str, words: Wording) -> list[str]:
    rate = count_text(abs(item.growth_per_min), words)
    trend = (fill(words.admin_advice_growing, rate=rate) if item.growth_per_min >= 0.5 else
             fill(words.admin_advice_shrinking, rate=rate) if item.growth_per_min <= -0.5 else
             words.admin_advice_steady)
    out = [fill(words.admin_advice_behind, queue=neutral(item.queue),
                backlog=count_text(item.backlog, words), trend=trend)]
    if item.threads_needed is not None and item.mean_job_s is not None:
        shown = [fill(words.admin_advice_serving, queues=_queues_text(s.label),
                      threads=f"{s.threads:.0f}", concurrency=str(s.concurrency))
                 for s in item.serving[:3]]
        if len(item.serving) > 3:
            shown.append(fill(words.admin_advice_serving_more, count=str(len(item.serving) - 3)))
        out.append(fill(words.admin_advice_needs, needed=f"{math.ceil(item.threads_needed)}",
                        arrivals=count_text(item.arrivals_per_min, words),
                        seconds=_seconds_text(item.mean_job_s), margin=f"{advice.margin:g}",
                        busy=f"{item.threads_busy or 0:.0f}",
                        serving=", ".join(shown) or words.admin_advice_unserved))
    change = item.change
    if item.no_change is NoChange.CATCHING_UP and item.catch_up_now_s is not None:
        out.append(fill(words.admin_advice_catching_up,
                        duration=duration_text(item.catch_up_now_s, words)))
    elif item.no_change is NoChange.NO_TIMINGS:
        out.append(words.admin_advice_no_timings)
    elif item.no_change is NoChange.NO_MEMORY:
        cost = advice.fit.cost(1)
        out.append(fill(words.admin_advice_nothing_fits, reason=fill(
            words.admin_advice_no_memory, cost=memory_text(cost + advice.fit.uncertainty(cost),
                                                           words), available=available)))
        if item.make_room is not None:
            room = item.make_room
            out.append(fill(words.admin_advice_make_room, queues=_queues_text(room.label),
                            peak=str(room.peak), concurrency=str(room.concurrency),
                            memory=memory_text(room.freeable_bytes, words)))
    elif item.no_change is NoChange.NO_CONNECTIONS and advice.database is not None:
        full = advice.database
        template = (words.admin_advice_no_pgbouncer if full.pgbouncer
                    else words.admin_advice_no_connections)
        out.append(fill(words.admin_advice_nothing_fits,
                        reason=fill(template, **_db_figures(advice))))
    elif change is not None:
        values = {"command": change.command(), "cost": memory_text(change.memory_bytes, words),
                  "available": available, "pool": str(change.db_pool)}
        if change.catch_up_s is not None:
            out.append(fill(words.admin_advice_change,
                            duration=duration_text(change.catch_up_s, words), **values))
        else:
            out.append(fill(words.admin_advice_change_slow, **values))
        db = advice.database
        if db is None or db.error is not None:
            out.append(fill(words.admin_advice_db_unchecked, why=_db_unchecked(db, words),
                            pool=str(change.db_pool)))
        elif Limit.DATABASE in change.limits:
            template = (words.admin_advice_pgbouncer_limit if db.pgbouncer
                        else words.admin_advice_db_limit)
            out.append(fill(template, threads=str(change.threads), **_db_figures(advice)))
    return out


def _db_figures(advice: Advice) -> dict[str, str]:
    db = advice.database or Database()
    return {"used": str(db.in_use), "max": str(db.max_connections),
            "reserved": str(db.reserved or 0), "margin": str(advice.db_margin)}


def _db_unchecked(db: Database | None, words: Wording) -> str:
    """Why the connections were not checked: none configured, or the reading's error."""
    if db is None or db.error is None:
        return words.admin_advice_db_unconfigured
    return neutral(db.error, 300)


def database_lines(advice: Advice, words: Wording = DEFAULT_WORDING) -> list[str]:
    """Return the admin lines on the database's connections (or why they were not checked)."""
    db = advice.database
    if db is None or db.error is not None:
        return [fill(words.admin_advice_database_unchecked, why=_db_unchecked(db, words))]
    names = {"": words.admin_advice_db_unnamed, HIDDEN_APPLICATION: words.admin_advice_db_hidden}
    applications = ", ".join(f"{names.get(name) or neutral(name, 64)} {count}"
                             for name, count in db.by_application[:6])
    if len(db.by_application) > 6:
        applications += ", \N{HORIZONTAL ELLIPSIS}"
    lines = [fill(words.admin_advice_database, applications=applications or "none",
                  free=str(advice.db_free or 0), **_db_figures(advice))]
    if db.pgbouncer:
        lines.append(words.admin_advice_database_pgbouncer)
    return lines


def _fit_line(fit: MemoryFit, words: Wording) -> str:
    base, per_thread = memory_text(fit.base_bytes, words), memory_text(fit.per_thread_bytes, words)
    if fit.kind is FitKind.FITTED:
        return fill(words.admin_advice_fit, count=str(fit.n), base=base, per_thread=per_thread,
                    r2=f"{fit.r2 or 0:.2f}", error=memory_text(fit.rmse_bytes or 0, words))
    why = {FitKind.ONE_PROCESS: words.admin_advice_guess_one,
           FitKind.SAME_CONCURRENCY: fill(words.admin_advice_guess_same,
                                          concurrency=str(fit.concurrency)),
           FitKind.NO_DATA: words.admin_advice_guess_none,
           FitKind.IMPLAUSIBLE: words.admin_advice_guess_odd}[fit.kind]
    return fill(words.admin_advice_fit_guess, why=why, base=base, per_thread=per_thread)
