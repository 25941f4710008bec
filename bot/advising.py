"""Gather the capacity advisor's inputs from what the bot reads (an edge of ``bot.advice``).

``inputs_from`` builds ``advice.AdviceInputs`` from a ``Snapshot`` (live
processes: concurrency, busy threads, queues with their weights, RSS; each
queue's backlog; the host's available memory), the ``JobMetrics`` of
``collect/jobmetrics.py`` (jobs a minute, mean job time, failures, backlog
growth per queue) and, when a ``History`` is given, the 30-day peaks.
The database reading (``collect/database.py``, when ``[postgres]`` or
Mastodon's ``DB_*`` give one) is passed in; without it the advice says the
connections could not be checked.

What the figures can and cannot say:

- a queue without job metrics (Sidekiq 6 with several queues backlogged, or
  no job of it ran in the window) has no timings: the advice says so rather
  than guess;
- backlog growth needs two snapshots at least ``jobmetrics.MIN_SPAN_S`` apart;
  without it growth counts as 0 (arrivals = jobs done) and ``growth_known``
  is False;
- the history keeps the busy threads of all processes together, so a
  process's own 30-day peak is known only when one process runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bot import advice
from bot.advice import AdviceInputs, Database, LiveProcess, Peaks, QueueWork
from bot.collect.jobmetrics import JobMetrics
from bot.history import DAY, History
from bot.model import ProcessStats, Snapshot
from bot.wording import DEFAULT_WORDING, Wording, fill, neutral

PEAK_WINDOW_S = 30 * DAY
"""How far back the idle-resource peaks look (seconds)."""


@dataclass(frozen=True, slots=True)
class Gathered:
    """The advisor's inputs and what the reading could not tell.

    ``growth_known`` is False when no backlog growth was measured (one snapshot);
    ``coarse_note`` carries ``JobMetrics.coarse_note``; ``metrics_error`` the
    reason job metrics could not be read; ``history`` whether a history was
    looked at.
    """

    inputs: AdviceInputs
    growth_known: bool
    coarse_note: str | None = None
    metrics_error: str | None = None
    history: bool = False


def oldest_classes(snapshot: Snapshot) -> dict[str, str]:
    """Return queue → class of its oldest job, for the queues where the snapshot read one."""
    if snapshot.sidekiq is None:
        return {}
    return {q.name: q.oldest_class for q in snapshot.sidekiq.queues
            if q.oldest_class is not None}


def process_queues(process: ProcessStats) -> tuple[tuple[str, int], ...]:
    """Return ``(queue, weight)`` in the process's order; weight 0 where none is known."""
    weights = process.queue_weights
    if len(weights) != len(process.queues):
        weights = tuple(0 for _ in process.queues)
    return tuple(zip(process.queues, weights, strict=True))


def live_processes(snapshot: Snapshot) -> tuple[LiveProcess, ...]:
    """Return the live, working (not quiet) Sidekiq processes as the advisor sees them."""
    if snapshot.sidekiq is None:
        return ()
    found = []
    for process in snapshot.sidekiq.processes:
        if not process.alive or process.quiet:
            continue
        found.append(LiveProcess(
            identity=process.identity, concurrency=process.concurrency or 0,
            busy=process.busy or 0, queues=process_queues(process),
            rss_bytes=None if process.rss_kb is None else process.rss_kb * 1024))
    return tuple(found)


def queue_work(snapshot: Snapshot, metrics: JobMetrics | None) -> tuple[QueueWork, ...]:
    """Return each queue's backlog and work: the snapshot's queues, plus any metrics know of."""
    sizes: dict[str, int] = {}
    if snapshot.sidekiq is not None:
        sizes = {q.name: q.size for q in snapshot.sidekiq.queues}
    measured = {w.queue: w for w in metrics.queues} if metrics is not None else {}
    work = []
    for name in sorted(set(sizes) | set(measured)):
        found = measured.get(name)
        if found is None:
            work.append(QueueWork(name, sizes.get(name, 0), 0.0, 0.0, 0.0))
            continue
        work.append(QueueWork(
            name=name, backlog=sizes.get(name, 0),
            growth_per_min=found.backlog_growth_per_min or 0.0,
            done_per_min=found.jobs_per_min or 0.0,
            mean_job_s=found.mean_s or 0.0,
            failure_share=found.failure_share or 0.0,
            coarse=found.coarse))
    return tuple(work)


def _peak(history: History, metric: str, start: float, end: float) -> float | None:
    points = history.series(metric, start, end)
    return max((p.max for p in points), default=None)


def peaks_from(history: History, now: float, processes: Sequence[LiveProcess],
               window: float = PEAK_WINDOW_S) -> Peaks | None:
    """Return the peaks of the last ``window`` seconds before ``now``; None without samples.

    The memory peak is the host's most used at once; the total its largest. A
    process's busy peak is known only when one process runs (history keeps
    the sum).
    """
    start = now - window
    used = _peak(history, "memory_used_bytes", start, now)
    total = _peak(history, "memory_total_bytes", start, now)
    busy = _peak(history, "busy", start, now)
    if used is None and total is None and busy is None:
        return None
    by_process: Mapping[str, int] = {}
    if busy is not None and len(processes) == 1:
        by_process = {processes[0].identity: int(busy)}
    return Peaks(memory_used_bytes=None if used is None else int(used),
                 memory_total_bytes=None if total is None else int(total),
                 busy_by_process=by_process)


def memory_room(snapshot: Snapshot) -> tuple[int | None, str]:
    """Return the available memory a new Sidekiq process would use, and whose host it is.

    With one host (no ``[[hosts]]``, no agents) it is that host's, and the name is
    empty. With several, it is the most available on a host where a live Sidekiq
    process runs (its heartbeat's hostname matched to a host reading's name, or
    the bot's own host), named so that admins know where to start the process;
    when none of the read hosts runs Sidekiq, the bot's own host, named too.
    """
    local = snapshot.host
    room: dict[str, int] = {}
    if local is not None:
        room[local.hostname] = local.memory_available_bytes
    for reading in snapshot.hosts:
        if reading.stats is not None:
            room.setdefault(reading.name, reading.stats.memory_available_bytes)
    if len(room) <= 1:
        return (None if local is None else local.memory_available_bytes), ""
    sidekiq_hosts = set()
    if snapshot.sidekiq is not None:
        sidekiq_hosts = {p.hostname for p in snapshot.sidekiq.processes
                         if p.alive and p.hostname}
    candidates = {name: free for name, free in room.items() if name in sidekiq_hosts}
    if candidates:
        name = max(sorted(candidates), key=lambda n: candidates[n])
        return candidates[name], name
    if local is not None:
        return local.memory_available_bytes, local.hostname
    return None, ""


def gather(snapshot: Snapshot, metrics: JobMetrics | None,
           history: History | None = None, database: Database | None = None) -> Gathered:
    """Return the advisor's inputs from the snapshot, job metrics, history and database.

    ``database`` None: no database configured (the advice says it could not check).
    """
    processes = live_processes(snapshot)
    peaks = (peaks_from(history, snapshot.collected_at, processes)
             if history is not None else None)
    available, memory_host = memory_room(snapshot)
    inputs = AdviceInputs(
        queues=queue_work(snapshot, metrics), processes=processes,
        memory_available_bytes=available, database=database, peaks=peaks,
        memory_host=memory_host)
    growth_known = metrics is not None and any(
        w.backlog_growth_per_min is not None for w in metrics.queues)
    return Gathered(inputs, growth_known,
                    None if metrics is None else metrics.coarse_note,
                    None if metrics is None else metrics.error, history is not None)


def advise(gathered: Gathered, policy: advice.Policy | None = None) -> advice.Advice:
    """Return the advisor's answer for what was gathered."""
    return advice.advise(gathered.inputs, policy or advice.Policy())


def advice_lines(gathered: Gathered, result: advice.Advice,
                 words: Wording = DEFAULT_WORDING) -> list[str]:
    """Return ``advice.render``'s lines plus what the reading could not tell (admins only)."""
    lines = advice.render(result, words)
    if gathered.metrics_error is not None:
        lines.append(fill(words.admin_advice_metrics_error,
                          error=neutral(gathered.metrics_error, 200)))
    if not gathered.growth_known and result.behind:
        lines.append(words.admin_advice_growth_unknown)
    if not gathered.history:
        lines.append(words.admin_advice_no_history)
    return lines


def queue_waiting(snapshot: Snapshot, min_jobs: int = advice.Policy().behind_min_jobs) -> bool:
    """Whether some queue holds at least ``min_jobs`` jobs (the job metrics are worth reading)."""
    return snapshot.sidekiq is not None and any(
        q.size >= min_jobs for q in snapshot.sidekiq.queues)


def help_text(snapshot: Snapshot, metrics: JobMetrics | None,
              history: History | None = None, words: Wording = DEFAULT_WORDING,
              database: Database | None = None) -> str | None:
    """Return the short advice for a queue incident's admin message, None when none is behind."""
    return advice.summary(advise(gather(snapshot, metrics, history, database)), words)
