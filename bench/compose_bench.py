"""How composing scales with the number of affected components (issue 8).

Builds an incident with N affected queues (a ``"*"`` rule firing for every
queue) and a snapshot with N queues, then times, for N in 100, 1,000, 10,000:

- ``compose_event`` of the opening (member notice and admin message);
- ``admin_details("queues")`` (the ``queues`` command's reply);
- ``truncate`` of the admin message's full text (every component line and
  the whole queue list joined) down to 500 characters, and how many
  characters ``measure`` was handed in doing so (a counting measure: the
  figure that shows linear or quadratic work independently of machine speed).

A second table times the pure core of one tick on the same queues with a
``"*"`` rule whose latencies swing across it every tick (``health.evaluate``,
``incidents.step``, composing the events) and gives the size of the health
and incident state as the tick loop writes it (JSON).

Usage: ``.venv/bin/python bench/compose_bench.py [--sizes 100,1000,10000] [--repeat 3]``
Prints Markdown tables (best of ``--repeat`` runs, milliseconds).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections.abc import Callable

from bot import compose, health, incidents
from bot.model import (
    Affected,
    Event,
    EventKind,
    Incident,
    QueueStats,
    RedisStats,
    Severity,
    SidekiqStats,
    Snapshot,
)

NOW = 1_796_090_400.0


def scenario(size: int) -> tuple[Event, Snapshot]:
    """Return the opening event and snapshot of an incident with ``size`` affected queues."""
    names = [f"queue{i:05d}" for i in range(size)]
    affected = tuple(Affected(component=f"queue:{name}", severity=Severity.WARNING,
                              since=NOW - 120, peak=Severity.WARNING,
                              reason=f"latency 2 min (warning at 1 min) in {name}",
                              value=120.0, peak_value=130.0)
                     for name in names)
    incident = Incident(id="inc-1", opened_at=NOW - 120, affected=affected,
                        last_announced_at=NOW)
    event = Event(kind=EventKind.OPENED, incident=incident, at=NOW, reason="opened")
    queues = tuple(QueueStats(name, 10, 120.0, False, True) for name in names)
    sidekiq = SidekiqStats(
        processed=1, failed=0, processed_today=1, failed_today=0, scheduled=0, retries=0,
        dead=0, enqueued=10 * size, queues=queues, processes=(), processes_registered=1,
        live_processes=1, stale_processes=0, busy=1, concurrency=5, utilisation=0.2,
        anomaly_count=0, anomalies=())
    snapshot = Snapshot(NOW, RedisStats("redis://127.0.0.1:6379/0", "", True), sidekiq, None)
    return event, snapshot


def best(repeat: int, work: Callable[[], object]) -> float:
    """Return the fastest of ``repeat`` runs of ``work`` in milliseconds."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        times.append((time.perf_counter() - started) * 1000)
    return min(times)


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    settings = compose.Settings(instance="example.social", admin_accts=("alice",))
    print("| Components | text (chars) | compose_event ms | admin_details(queues) ms "
          "| truncate ms | chars measured by truncate | longest post |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    sizes = [int(s) for s in args.sizes.split(",")]
    for size in sizes:
        print(row(size, args.repeat, settings), flush=True)
    print("\n| Queues | evaluate ms | step ms | compose ms | whole core tick ms "
          "| health state bytes | incident state bytes |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for size in sizes:
        print(core_row(size, args.repeat, settings), flush=True)


def swinging(snapshot: Snapshot, tick: int) -> Snapshot:
    """Return ``snapshot`` ``tick`` ticks (30 s) later, every other queue across the rule."""
    assert snapshot.sidekiq is not None
    queues = tuple(dataclasses.replace(q, latency_s=400.0 if (i + tick) % 2 else 100.0)
                   for i, q in enumerate(snapshot.sidekiq.queues))
    return dataclasses.replace(snapshot, collected_at=NOW + 30 * tick,
                               sidekiq=dataclasses.replace(snapshot.sidekiq, queues=queues))


def core_row(size: int, repeat: int, settings: compose.Settings) -> str:
    """Time the pure core of one tick with ``size`` swinging queues; return its table row."""
    rules = health.rules_from_config({"queue_latency": {"*": {
        "warning": 60, "critical": 300, "for": 0, "clear": 30, "clear_for": 0}}})[0]
    policy = incidents.Policy()
    _, base = scenario(size)
    health_state, incident_state = health.HealthState.initial(), incidents.IncidentState()
    for tick in range(3):  # open the incident and fill the samples
        snap = swinging(base, tick)
        health_state, findings = health.evaluate(snap, health_state, rules, snap.collected_at)
        incident_state, _ = incidents.step(incident_state, findings, snap.collected_at, policy)
    best_ms = [float("inf")] * 4
    for round_ in range(repeat):
        snap = swinging(base, 3 + 2 * round_)  # 30 s or more on, every queue changed
        started = time.perf_counter()
        new_health, findings = health.evaluate(snap, health_state, rules, snap.collected_at)
        evaluated = time.perf_counter()
        new_incidents, events = incidents.step(incident_state, findings, snap.collected_at,
                                               policy)
        stepped = time.perf_counter()
        for event in events:
            compose.compose_event(event, snap, settings)
        done = time.perf_counter()
        spans = (evaluated - started, stepped - evaluated, done - stepped, done - started)
        best_ms = [min(b, 1000 * t) for b, t in zip(best_ms, spans, strict=True)]
    health_bytes = len(json.dumps(new_health.to_json()))
    incident_bytes = len(json.dumps(new_incidents.to_json()))
    return (f"| {size:,} | {best_ms[0]:.1f} | {best_ms[1]:.1f} | {best_ms[2]:.1f} "
            f"| {best_ms[3]:.1f} | {health_bytes:,} | {incident_bytes:,} |")


def row(size: int, repeat: int, settings: compose.Settings) -> str:
    """Measure one size; return its table row."""
    event, snapshot = scenario(size)
    lines = [f"{a.component} warning since 14:03: {a.reason}" for a in event.incident.affected]
    if snapshot.sidekiq is not None:
        lines.append("Queues: " + ", ".join(q.name for q in snapshot.sidekiq.queues))
    text = "\n".join(lines)
    measured = [0]

    def counting(part: str) -> int:
        measured[0] += len(part)
        return compose.mastodon_length(part)

    posts = compose.compose_event(event, snapshot, settings)
    longest = max(compose.mastodon_length(p.text) + len(p.spoiler_text or "") for p in posts)
    compose_ms = best(repeat, lambda: compose.compose_event(event, snapshot, settings))
    details_ms = best(repeat, lambda: compose.admin_details(
        "queues", snapshot, event.incident, NOW, settings))
    truncate_ms = best(repeat, lambda: compose.truncate(text, 500, counting))
    chars = measured[0] // repeat
    return (f"| {size:,} | {len(text):,} | {compose_ms:.1f} | {details_ms:.1f} "
            f"| {truncate_ms:.1f} | {chars:,} | {longest} |")


if __name__ == "__main__":
    main()
