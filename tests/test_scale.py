"""The pure core at scale: work per tick is linear in its input and every text is capped."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from bot import compose
from bot.compose import Settings, compose_event, mastodon_length, truncate
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

T = 1_796_090_400.0
W = Severity.WARNING


class TooMuchWork(Exception):
    """Raised by a counting measure once it has been handed more than its allowance."""


def counting(allowance: int) -> tuple[Callable[[str], int], list[int]]:
    """Return a measure that counts the characters it is handed, and the running count."""
    seen = [0]

    def measure(text: str) -> int:
        seen[0] += len(text)
        if seen[0] > allowance:
            raise TooMuchWork(f"measured {seen[0]:,} characters")
        return mastodon_length(text)

    return measure, seen


def lines(count: int) -> str:
    return "\n".join(f"queue:queue{i:05d} warning since 14:03: latency 2 min (warning at 1 min)"
                     for i in range(count))


@pytest.mark.parametrize(
    ("text", "budget"),
    [
        pytest.param(lines(1_000), 500, id="1000-lines"),
        pytest.param(lines(10_000), 500, id="10000-lines"),
        pytest.param(lines(10_000), 5, id="10000-lines-tiny-budget"),
        pytest.param("x" * 200_000, 500, id="one-200k-word"),
        pytest.param("word " * 50_000, 500, id="50000-words"),
        pytest.param("https://example.com/" + "a" * 100_000 + " tail " * 1000, 100,
                     id="huge-url"),
        pytest.param("\u0301" * 100_000 + " x" * 1000, 100, id="combining-marks"),
    ],
)
def test_truncate_work_is_linear(text: str, budget: int) -> None:
    """Truncating hands ``measure`` a few times the text, never the text once per cut."""
    measure, seen = counting(allowance=40 * len(text) + 100_000)
    cut = truncate(text, budget, measure)
    assert (mastodon_length(cut) <= budget, cut.endswith("…"), seen[0] <= 40 * len(text)
            + 100_000) == (True, True, True)


@pytest.mark.parametrize(
    ("text", "budget", "expected"),
    [
        pytest.param("alpha beta gamma delta", 16, "alpha beta…", id="word-boundary"),
        pytest.param("alpha beta gamma delta", 100, "alpha beta gamma delta", id="fits"),
        pytest.param("abcdefghijklmnop", 8, "abcdefg…", id="no-space"),
        pytest.param("   alpha beta gamma", 12, "   alpha…", id="leading-spaces"),
        pytest.param("alpha, beta, gamma", 13, "alpha, beta…", id="trailing-comma-trimmed"),
        pytest.param("alpha beta", 0, "", id="no-room"),
        pytest.param("alpha beta", 1, "…", id="room-for-ellipsis-only"),
    ],
)
def test_truncate_still_cuts_at_words(text: str, budget: int, expected: str) -> None:
    """The linear cut gives the same texts as before: the last word boundary that fits."""
    assert truncate(text, budget, len) == expected


def scenario(size: int) -> tuple[Event, Snapshot]:
    names = [f"queue{i:05d}" for i in range(size)]
    affected = tuple(Affected(f"queue:{name}", W, T - 120, W,
                              f"latency 2 min (warning at 1 min) in {name}", 120.0, 130.0)
                     for name in names)
    incident = Incident("inc-1", T - 120, affected, last_announced_at=T)
    queues = tuple(QueueStats(name, 10, 120.0, False, True) for name in names)
    sidekiq = SidekiqStats(
        processed=1, failed=0, processed_today=1, failed_today=0, scheduled=0, retries=0,
        dead=0, enqueued=10 * size, queues=queues, processes=(), processes_registered=1,
        live_processes=1, stale_processes=0, busy=1, concurrency=5, utilisation=0.2,
        anomaly_count=0, anomalies=())
    snapshot = Snapshot(T, RedisStats("redis://127.0.0.1:6379/0", "", True), sidekiq, None)
    return Event(EventKind.OPENED, incident, T, "opened"), snapshot


SETTINGS = Settings(instance="example.social", admin_accts=("alice",))


@pytest.mark.parametrize("size", [pytest.param(n, id=f"{n}-queues") for n in (100, 10_000)])
def test_many_components_compose_within_limits(size: int) -> None:
    """10,000 affected queues give one member sentence and an admin list that says how many."""
    event, snap = scenario(size)
    member, admin = compose_event(event, snap, SETTINGS)
    assert member.text.splitlines()[1:] == ["Some background tasks are delayed.",
                                           "We will post updates in this thread."]
    assert mastodon_length(admin.text) <= SETTINGS.max_characters
    assert f"{size - compose.ADMIN_LIST_MAX:,} more" in admin.text


def test_queues_reply_says_how_many_are_left_out() -> None:
    """The ``queues`` reply lists the worst queues and counts the rest."""
    event, snap = scenario(10_000)
    text = compose.admin_details("queues", snap, event.incident, T, SETTINGS)
    assert mastodon_length(text) <= SETTINGS.max_characters
    assert "and 9,990 more queues" in text


class Churn:
    """A collector for 10,000 queues whose latencies swing across the rule every tick."""

    def __init__(self, queues: int, clock: list[float]) -> None:
        self.queues, self.clock, self.ticks = queues, clock, 0

    def collect(self) -> Snapshot:
        self.ticks += 1
        self.clock[0] = T + 15.0 * self.ticks
        queues = tuple(QueueStats(f"q{i:05d}", 10, 400.0 if (i + self.ticks) % 2 else 100.0,
                                  False, True) for i in range(self.queues))
        sidekiq = SidekiqStats(
            processed=1, failed=0, processed_today=1, failed_today=0, scheduled=0, retries=0,
            dead=0, enqueued=10 * self.queues, queues=queues, processes=(),
            processes_registered=1, live_processes=1, stale_processes=0, busy=1, concurrency=5,
            utilisation=0.2, anomaly_count=0, anomalies=())
        return Snapshot(self.clock[0], RedisStats("redis://127.0.0.1:6379/0", "", True),
                        sidekiq, None)


def test_ten_thousand_churning_queues_without_admins() -> None:
    """The issue's instance: 10,000 queues, a "*" rule, no admins; 40 ticks (10 min).

    Members get the notice and a bounded number of updates (not one per tick),
    and the state written per tick stays small.
    """
    from bot import health, incidents
    from bot.loop import HEALTH_STATE, INCIDENT_STATE, Bot
    from bot.model import PostKind
    from bot.outbox import Outbox
    from bot.store import Store
    from bot.testing import RecordingGateway

    clock = [T]
    store, gateway = Store(":memory:"), RecordingGateway()
    rules = health.rules_from_config({"queue_latency": {"*": {
        "warning": 60, "critical": 300, "for": 0, "clear": 30, "clear_for": 0}}})[0]
    bot = Bot(collector=Churn(10_000, clock), store=store,  # type: ignore[arg-type]
              outbox=Outbox(store, gateway, clock=lambda: clock[0]), gateway=gateway,
              settings=Settings(instance="example.social"), rules=rules,
              policy=incidents.Policy(), profile_field=False, clock=lambda: clock[0])
    largest = 0
    for _ in range(40):
        bot.tick()
        largest = max(largest, *(len(json.dumps(store.get_state(key)))
                                 for key in (HEALTH_STATE, INCIDENT_STATE)))
    kinds = [s.post.kind for s in gateway.statuses.values()]
    assert (kinds[0], len(kinds) <= 1 + 10, largest < 64_000) == (
        PostKind.NOTICE, True, True), (len(kinds), largest)
