"""The tick loop with scripted snapshots, an in-memory store and the recording gateway."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot import compose, health, incidents
from bot.gateway import RecordingGateway, RetryableError
from bot.loop import HEALTH_STATE, INCIDENT_STATE, Bot, heartbeat_age, write_heartbeat
from bot.model import PostKind, QueueStats, RedisStats, SidekiqStats, Snapshot
from bot.outbox import Outbox
from bot.store import Store

START = 1_796_090_400.0  # 2026-12-01T02:00:00Z


def snapshot(at: float, push_latency: float, *, reachable: bool = True) -> Snapshot:
    queue = QueueStats("push", 500 if push_latency else 0, push_latency, False, True)
    sidekiq = SidekiqStats(
        processed=10, failed=0, processed_today=10, failed_today=0, scheduled=0, retries=0,
        dead=0, enqueued=queue.size, queues=(queue,), processes=(), processes_registered=1,
        live_processes=1, stale_processes=0, busy=1, concurrency=5, utilisation=0.2,
        anomaly_count=0, anomalies=())
    redis = RedisStats("redis://127.0.0.1:6379/0", "", reachable)
    return Snapshot(at, redis, sidekiq if reachable else None, None)


class Script:
    """A collector that returns scripted snapshots (or raises), one per tick."""

    def __init__(self, items: list[Snapshot | Exception]) -> None:
        self.items: Iterator[Snapshot | Exception] = iter(items)

    def collect(self) -> Snapshot:
        item = next(self.items)
        if isinstance(item, Exception):
            raise item
        return item


RULES = health.rules_from_config({"queue_latency": {"push": {
    "warning": 60, "critical": 300, "for": 0, "clear": 10, "clear_for": 0}}})[0]


def make_bot(items: list[Snapshot | Exception], *, status_every: float = 0.0,
             clock: list[float] | None = None) -> tuple[Bot, Store, RecordingGateway]:
    now = clock if clock is not None else [START]
    store = Store(":memory:")
    gateway = RecordingGateway()
    settings = compose.Settings(instance="example.social", admin_accts=("alice",))
    bot = Bot(collector=Script(items), store=store,  # type: ignore[arg-type]
              outbox=Outbox(store, gateway, clock=lambda: now[0]), gateway=gateway,
              settings=settings, rules=RULES, policy=incidents.Policy(),
              status_every=status_every, clock=lambda: now[0])
    return bot, store, gateway


def test_incident_is_posted_threaded_and_resolved() -> None:
    """A slow queue opens an incident (notice pinned, admin DM); recovery resolves it."""
    bot, store, gateway = make_bot([snapshot(START, 400), snapshot(START + 30, 0)])
    first = bot.tick()
    assert [e.kind.value for e in first.events] == ["opened"]
    assert [p.kind for p in first.posts] == [PostKind.NOTICE, PostKind.ADMIN]
    second = bot.tick()
    assert [e.kind.value for e in second.events] == ["resolved"]
    notice, admin, resolution, admin_resolved = gateway.statuses.values()
    assert [s.post.visibility for s in (notice, admin, resolution, admin_resolved)] == [
        "public", "direct", "public", "direct"]
    assert resolution.in_reply_to_id == notice.id
    assert gateway.pinned == []  # pinned, then unpinned by the resolution
    assert [c.args[0] for c in gateway.calls_to("pin")] == [notice.id]
    stored = incidents.IncidentState.from_json(store.get_state(INCIDENT_STATE) or {})
    assert stored.open is None
    assert store.get_state(HEALTH_STATE) is not None


def test_profile_field_changes_once_per_state_change() -> None:
    """The Status field is written when the state changes, not on every tick."""
    bot, _, gateway = make_bot([snapshot(START + n, 400 if 2 <= n < 4 else 0)
                                for n in range(6)])
    for _ in range(6):
        bot.tick()
    values = [str(c.args[1]) for c in gateway.calls_to("set_profile_field")]
    assert len(values) == 3, values  # all normal, trouble, all normal again
    assert values[0].startswith("✅") and values[2].startswith("✅")


def test_status_post_once_per_period_and_not_during_incidents() -> None:
    """The all-is-well post is made once a day, and never while an incident is open."""
    day = 86400.0
    items: list[Snapshot | Exception] = [
        snapshot(START, 0), snapshot(START + 60, 0),       # day 1: one status post
        snapshot(START + day, 400),                         # day 2: incident opens
        snapshot(START + day + 60, 400),                    # still open: no status post
    ]
    bot, store, _ = make_bot(items, status_every=day)
    kinds = [[p.kind for p in bot.tick().posts] for _ in items]
    assert kinds == [[PostKind.STATUS], [], [PostKind.NOTICE, PostKind.ADMIN], []]
    assert store.last_created(PostKind.STATUS) == START


def test_a_failing_tick_is_logged_once_and_the_loop_goes_on(
        caplog: pytest.LogCaptureFixture) -> None:
    """An exception repeating every tick is logged once; the loop keeps ticking and stops."""
    boom = RuntimeError("collector exploded")
    items: list[Snapshot | Exception] = [boom, boom, boom, snapshot(START, 0)]
    bot, _, _ = make_bot(items)
    ticks: list[float] = []
    with caplog.at_level(logging.DEBUG, logger="bot.loop"):
        ran = bot.run(0.0, threading.Event(), on_tick=lambda r: ticks.append(r.at), max_ticks=4)
    assert ran == 4 and ticks == [START]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        "tick failed (logged once while it repeats): RuntimeError: collector exploded"]
    assert any("ticks work again" in r.getMessage() for r in caplog.records)


def test_stop_finishes_the_tick_and_flushes() -> None:
    """A stop set during a tick ends the loop after it, with one more delivery pass."""
    stop = threading.Event()
    clock = [START]
    bot, _, gateway = make_bot([snapshot(START, 400)], clock=clock)
    gateway.script("post", RetryableError("503"))
    bot.outbox.backoff_base = bot.outbox.backoff_cap = 1.0

    def after_tick(report: object) -> None:
        del report
        assert gateway.statuses == {}  # the tick's delivery pass failed
        clock[0] += 2  # the pause is over by the time the loop flushes
        stop.set()

    assert bot.run(0.0, stop, on_tick=after_tick) == 1
    assert [s.post.kind for s in gateway.statuses.values()] == [PostKind.NOTICE, PostKind.ADMIN]


def test_unreadable_stored_state_is_kept_aside() -> None:
    """A broken incident state is kept under another name, never silently dropped."""
    bot, store, _ = make_bot([snapshot(START, 0)])
    store.put_state(INCIDENT_STATE, {"version": 99})
    assert bot.incident_state() == incidents.IncidentState()
    assert store.get_state(f"{INCIDENT_STATE}.broken") == {"version": 99}


def test_heartbeat_after_each_completed_tick(tmp_path: Path) -> None:
    """Completed ticks write the heartbeat; a failing tick does not."""
    beat = tmp_path / "state" / "last-tick"
    bot, _, _ = make_bot([RuntimeError("no"), snapshot(START, 0)])
    bot.heartbeat = beat
    bot.run(0.0, threading.Event(), max_ticks=1)
    assert not beat.exists()
    bot.run(0.0, threading.Event(), max_ticks=1)
    assert heartbeat_age(beat, START + 5) == pytest.approx(5.0)


@pytest.mark.parametrize(
    ("age", "status", "says"),
    [
        pytest.param(10.0, 0, "healthy: the last tick completed 10s ago", id="fresh"),
        pytest.param(1000.0, 1, "unhealthy: the last tick completed 16m40s ago (limit 2m30s)",
                     id="stale"),
        pytest.param(None, 1, "unhealthy: no completed tick recorded in", id="never"),
    ],
)
def test_healthcheck_command(tmp_path: Path, age: float | None, status: int, says: str) -> None:
    """`statusbot healthcheck` fails when no tick completed within three intervals + 60 s."""
    config = tmp_path / "c.toml"
    config.write_text(f'[bot]\ninterval = 30\nstate_dir = "{tmp_path / "state"}"\n')
    if age is not None:
        write_heartbeat(tmp_path / "state" / "last-tick", time.time() - age)
    result = subprocess.run([sys.executable, "-m", "bot", "healthcheck", "--config", str(config)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == status
    assert result.stdout.startswith(says), result.stdout


def test_confirm_mode_holds_member_posts_until_the_deadline() -> None:
    """In confirm mode the notice waits; the admin DM says so; after the delay it goes out."""
    bot, store, gateway = make_bot([snapshot(START, 400), snapshot(START + 30, 400),
                                    snapshot(START + 700, 400)])
    bot.confirm_delay = 600.0
    first = bot.tick()
    assert [p.kind for p in first.posts] == [PostKind.ADMIN]
    assert "Members are not told yet" in first.posts[0].text
    assert bot.tick().posts == ()
    third = bot.tick()
    assert [p.kind for p in third.posts] == [PostKind.NOTICE]
    assert any("no answer in time, published" in note for note in third.notes)
    assert [s.post.kind for s in gateway.statuses.values()] == [PostKind.ADMIN,
                                                                PostKind.NOTICE]
    del store


def test_confirm_mode_drops_an_incident_resolved_before_anyone_confirmed() -> None:
    """A blip that resolves while waiting for confirmation is never published."""
    bot, _, gateway = make_bot([snapshot(START, 400), snapshot(START + 30, 0),
                                snapshot(START + 900, 0)])
    bot.confirm_delay = 600.0
    bot.tick()
    second = bot.tick()
    assert [p.kind for p in second.posts] == [PostKind.ADMIN]  # the resolution's admin DM
    assert any("resolved before anyone confirmed" in note for note in second.notes)
    bot.tick()
    assert {s.post.kind for s in gateway.statuses.values()} == {PostKind.ADMIN}


@pytest.mark.parametrize(("times", "expected"), [
    ([0.0, 30.0, 59.9], [False, False, False]),
    ([0.0, 60.0, 61.0, 119.9, 120.0], [False, True, False, False, True]),
    ([0.0, 500.0, 501.0, 559.0, 560.0], [False, True, False, False, True]),
    ([100.0, 100.0, 160.0, 160.0], [False, False, True, False]),
], ids=["not-before-a-minute", "every-minute", "after-a-stall-no-burst", "once-per-due"])
def test_gc_pacer(times: list[float], expected: list[bool]) -> None:
    """A full garbage collection is due once a minute, never in a burst after a stall."""
    from bot.loop import GcPacer

    pacer = GcPacer(60.0)
    assert [pacer.due(t) for t in times] == expected
