"""The tick loop with scripted snapshots, an in-memory store and the recording gateway."""

from __future__ import annotations

import dataclasses
import io
import itertools
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from bot import compose, health, incidents
from bot.app import build
from bot.cli import main
from bot.config import BotConfig, Config, MastodonConfig, PostsConfig, ReportsConfig
from bot.gateway import RetryableError
from bot.loop import (
    HEALTH_STATE,
    INCIDENT_STATE,
    REPORTS_STATE,
    Bot,
    heartbeat_age,
    write_heartbeat,
)
from bot.model import PostKind, QueueStats, RedisStats, SidekiqStats, Snapshot
from bot.outbox import Outbox
from bot.pagefiles import site_since
from bot.store import ItemState, Store
from bot.testing import RecordingGateway

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
        pytest.param(10.0, 0, "healthy: the last tick completed 10s ago\n", id="fresh"),
        pytest.param(1000.0, 1,
                     "unhealthy: the last tick completed 16m40s ago (limit 2m30s)\n",
                     id="stale"),
        pytest.param(None, 1, "unhealthy: no completed tick recorded in", id="never"),
    ],
)
def test_healthcheck_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str], age: float | None,
                             status: int, says: str) -> None:
    """`statusbot healthcheck` fails when no tick completed within three intervals + 60 s."""
    config = tmp_path / "c.toml"
    config.write_text(f'[bot]\ninterval = 30\nstate_dir = "{tmp_path / "state"}"\n')
    if age is not None:
        write_heartbeat(tmp_path / "state" / "last-tick", START - age)
    monkeypatch.setattr(time, "time", lambda: START)  # the check's clock, not the machine's
    assert main(["healthcheck", "--config", str(config)]) == status
    assert capsys.readouterr().out.startswith(says)


def test_healthcheck_entry_point(tmp_path: Path) -> None:
    """`python -m bot healthcheck` exits non-zero when no tick was ever recorded."""
    config = tmp_path / "c.toml"
    config.write_text(f'[bot]\ninterval = 30\nstate_dir = "{tmp_path / "state"}"\n')
    result = subprocess.run([sys.executable, "-m", "bot", "healthcheck", "--config", str(config)],
                            capture_output=True, text=True, check=False)
    assert (result.returncode, result.stdout.split(" in ")[0]) == (
        1, "unhealthy: no completed tick recorded")


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


@pytest.mark.parametrize(("error", "calls_at"), [
    pytest.param(RetryableError("HTTP 503", status=503), [0, 30, 90, 210, 450],
                 id="503-backs-off"),
    pytest.param(RetryableError("read timed out"), [0, 30, 90, 210, 450], id="timeout-backs-off"),
])
def test_profile_field_follows_the_outbox_backoff(error: Exception,
                                                  calls_at: list[int]) -> None:
    """While the instance fails, the Status field is retried on the outbox backoff."""
    clock = [START]
    ticks = 31
    bot, _, gateway = make_bot([snapshot(START + 30 * n, 400) for n in range(ticks)],
                               clock=clock)
    gateway.down = error  # 30 s doubling up to 15 min (the outbox's defaults)
    tried: list[int] = []
    for n in range(ticks - 1):
        clock[0] = START + 30 * n
        before = len(gateway.calls_to("set_profile_field"))
        bot.tick()
        if len(gateway.calls_to("set_profile_field")) > before:
            tried.append(30 * n)
    assert tried == calls_at
    gateway.down = None  # back: the next due attempt goes through, then no call per tick
    clock[0] = START + 30 * (ticks - 1) + 900
    bot.tick()
    assert gateway.fields and len(gateway.calls_to("set_profile_field")) == len(calls_at) + 1


def test_burst_after_a_short_outage_repeats_nothing() -> None:
    """135 s down with reminders queued: back, the thread gets no stale run of repeats."""
    clock = [START]
    ticks = 40
    bot, store, gateway = make_bot([snapshot(START + 15 * n, 400) for n in range(ticks)],
                                   clock=clock)
    bot.policy = incidents.Policy(reminder_every_s=30, max_reminders=20)
    for n in range(ticks):
        clock[0] = START + 15 * n
        gateway.down = RetryableError("HTTP 503", status=503) if 1 <= n <= 9 else None
        bot.tick()
    thread = [s for s in gateway.statuses.values() if s.post.visibility == "public"]
    notice, *replies = thread
    texts = [s.post.text for s in replies]
    assert all(a != b for a, b in itertools.pairwise(texts)), texts
    superseded = [i for i in store.items([ItemState.FOLDED])
                  if (i.last_error or "").startswith("superseded by")]
    assert superseded, "the outage queued reminders that a later one superseded"
    assert all(i.post.parent_key == notice.post.key for i in superseded)
    assert store.counts()["pending"] == 0


# --- signals (stop_on_signals) -------------------------------------------------------------


class Signalling:
    """A collector that raises ``signals`` in its own process mid-tick, then works on."""

    def __init__(self, signals: list[int]) -> None:
        self.signals = signals
        self.finished = False

    def collect(self) -> Snapshot:
        import signal

        for signum in self.signals:
            signal.raise_signal(signum)
        for _ in range(200_000):  # the rest of a long tick; a pending interrupt lands here
            pass
        self.finished = True
        return snapshot(START, 0)


@pytest.mark.parametrize(
    ("signals", "finished", "flushed"),
    [
        pytest.param(["SIGTERM"], True, True, id="one-sigterm-finishes-the-tick"),
        pytest.param(["SIGINT"], True, True, id="one-sigint-finishes-the-tick"),
        pytest.param(["SIGTERM", "SIGTERM"], False, False, id="second-sigterm-interrupts"),
        pytest.param(["SIGINT", "SIGTERM"], False, False, id="sigint-then-sigterm-interrupts"),
    ],
)
def test_a_second_signal_interrupts_a_running_tick(signals: list[str], finished: bool,
                                                   flushed: bool) -> None:
    """One signal lets the tick finish and flushes; a second stops at once, mid-tick."""
    import signal

    from bot.loop import stop_on_signals

    bot, _, _ = make_bot([])
    collector = Signalling([signal.Signals[name] for name in signals])
    bot.collector = collector  # type: ignore[assignment]
    flushes: list[bool] = []
    bot.flush = lambda: flushes.append(True)  # type: ignore[method-assign]
    stop = threading.Event()
    with stop_on_signals(stop):
        ticks = bot.run(0.0, stop)
    assert (ticks, collector.finished, stop.is_set(), bool(flushes)) == (
        1 if finished else 0, finished, True, flushed)


def test_signal_handlers_are_restored_after_the_block() -> None:
    """Outside ``stop_on_signals`` SIGINT and SIGTERM are handled as before."""
    import signal

    from bot.loop import stop_on_signals

    before = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    with stop_on_signals(threading.Event()):
        inside = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    assert (inside != before,
            (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))) == (
        True, before)


def empty_sidekiq(at: float) -> Snapshot:
    """A Redis that holds nothing Sidekiq ever wrote (wrong URL, database or namespace)."""
    sidekiq = SidekiqStats(
        processed=0, failed=0, processed_today=0, failed_today=0, scheduled=0, retries=0,
        dead=0, enqueued=0, queues=(), processes=(), processes_registered=0,
        live_processes=0, stale_processes=0, busy=0, concurrency=0, utilisation=None,
        anomaly_count=0, anomalies=())
    return Snapshot(at, RedisStats("redis://127.0.0.1:6379/5", "", True), sidekiq, None)


def test_a_redis_without_sidekiq_is_told_to_the_admins_once() -> None:
    """No trace of Sidekiq: one admin DM (never a member post); again only after it was seen."""
    ticks = [empty_sidekiq(START + 120 * i) for i in range(6)]
    ticks += [snapshot(START + 720, 0), *(empty_sidekiq(START + 840 + 120 * i) for i in range(4))]
    clock = [START]
    bot, _store, gateway = make_bot(list(ticks), clock=clock)
    for item in ticks:
        clock[0] = item.collected_at
        bot.tick()
    told = [s.post for s in gateway.statuses.values()]
    assert [(p.kind, p.visibility) for p in told] == [(PostKind.ADMIN, "direct")] * 2
    assert all("no trace of Sidekiq" in p.text and "6379/5" in p.text
               and p.text.startswith("@alice ") for p in told)


# --- reports of a freshly started bot (its real start-up path, an injected clock) ---------


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


class Healthy:
    """A collector that reads a healthy instance at the injected clock's time."""

    def __init__(self, clock: list[float]) -> None:
        self.clock = clock

    def collect(self) -> Snapshot:
        return snapshot(self.clock[0], 0)


def fresh_bot(tmp_path: Path, clock: list[float], zone: str = "UTC",
              ) -> tuple[Bot, RecordingGateway]:
    """Build the bot as `statusbot run` does (state on disk, default report slots)."""
    config = dataclasses.replace(
        Config(), bot=BotConfig(interval=300.0, state_dir=str(tmp_path / "state")),
        mastodon=MastodonConfig(timezone=zone), posts=PostsConfig(status_every=0.0),
        reports=ReportsConfig(chart=False))
    gateway = RecordingGateway()
    bot = build(config, out=io.StringIO(), gateway=gateway, clock=lambda: clock[0])
    bot.collector = Healthy(clock)  # type: ignore[assignment]
    bot.daily_counters = lambda days, today: {}
    return bot, gateway


def run_until(bot: Bot, clock: list[float], end: float, step: float = 300.0) -> list[str]:
    """Tick every ``step`` seconds from the clock's time until ``end``; return the notes."""
    notes: list[str] = []
    while clock[0] < end:
        notes += bot.tick().notes
        clock[0] += step
    return notes


def report_keys(gateway: RecordingGateway) -> list[str]:
    return [s.post.key for s in gateway.statuses.values()
            if s.post.key.startswith(("digest:", "report:"))]


@pytest.mark.parametrize(
    ("start", "until", "zone", "posted", "skipped"),
    [
        pytest.param("2026-12-01T05:30", "2026-12-07T10:00", "UTC", ["digest:2026-W49"],
                     ["digest:2026-W48", "report:2026-11"], id="tuesday-after-the-monday-slot"),
        pytest.param("2027-02-01T09:30", "2027-02-02T10:00", "UTC", [],
                     ["digest:2027-W04", "report:2027-01"],
                     id="first-of-the-month-after-both-slots"),
        pytest.param("2026-12-31T23:58", "2027-01-11T10:00", "UTC", ["digest:2027-W01"],
                     ["report:2026-12", "digest:2026-W53"], id="new-years-eve-week-53"),
        pytest.param("2026-10-19T07:30", "2026-11-02T09:00", "Europe/Berlin",
                     ["digest:2026-W43", "digest:2026-W44"], ["digest:2026-W42", "report:2026-10"],
                     id="berlin-dst-end"),
    ],
)
def test_a_fresh_bot_reports_only_on_time_it_watched(
        tmp_path: Path, start: str, until: str, zone: str, posted: list[str],
        skipped: list[str]) -> None:
    """A fresh start posts no report about unwatched time, and each watched period once."""
    clock = [utc(start)]
    bot, gateway = fresh_bot(tmp_path, clock, zone)
    notes = run_until(bot, clock, utc(until))
    assert report_keys(gateway) == posted
    assert [n.split()[2] for n in notes if "not posted" in n] == skipped
    for text in (s.post.text for s in gateway.statuses.values()):
        assert "I was not watching" not in text


def test_the_digest_goes_out_at_the_local_slot_across_a_dst_change(tmp_path: Path) -> None:
    """Monday 09:00 Berlin is 07:00 UTC before the October change and 08:00 after it."""
    clock = [utc("2026-10-19T07:30")]
    bot, gateway = fresh_bot(tmp_path, clock, "Europe/Berlin")
    run_until(bot, clock, utc("2026-10-26T07:55"))
    assert report_keys(gateway) == []
    run_until(bot, clock, utc("2026-10-26T08:05"))
    assert report_keys(gateway) == ["digest:2026-W43"]


def test_a_restarted_bot_keeps_its_first_start(tmp_path: Path) -> None:
    """A restart is no fresh start: the week watched since the first start is reported."""
    clock = [utc("2026-12-01T05:30")]
    bot, _ = fresh_bot(tmp_path, clock)
    run_until(bot, clock, utc("2026-12-04T00:00"))
    bot.store.close()
    bot, gateway = fresh_bot(tmp_path, clock)
    notes = run_until(bot, clock, utc("2026-12-07T09:30"))
    assert report_keys(gateway) == ["digest:2026-W49"]
    assert "not watched for 20 h 30 min, 12% of the time" in next(
        s.post.text for s in gateway.statuses.values())
    assert not [n for n in notes if "not posted" in n]


def test_the_state_file_is_dated_by_the_injected_clock(tmp_path: Path) -> None:
    """The state file's birth (the status page's components' created_at) is the bot's clock's."""
    clock = [utc("2026-12-08T05:30")]
    bot, _ = fresh_bot(tmp_path, clock)
    run_until(bot, clock, utc("2026-12-08T05:40"))
    assert site_since(bot.store, fallback=0.0) == utc("2026-12-08T05:30")


@pytest.mark.parametrize(
    "stored",
    [
        pytest.param({"first_start": "yesterday", "skipped": {}}, id="text"),
        pytest.param({"first_start": float("nan"), "skipped": {}}, id="nan"),
        pytest.param({"first_start": True, "skipped": {}}, id="bool"),
        pytest.param({"first_start": 1.0, "skipped": ["digest:2026-W49"]}, id="skipped-list"),
        pytest.param({}, id="empty"),
    ],
)
def test_an_unreadable_report_state_posts_nothing_older(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, stored: dict[str, object]) -> None:
    """A broken report record is said in the log and counts as a first start now."""
    clock = [utc("2026-12-01T05:30")]
    bot, gateway = fresh_bot(tmp_path, clock)
    bot.store.put_state(REPORTS_STATE, stored)
    with caplog.at_level(logging.ERROR):
        run_until(bot, clock, utc("2026-12-01T06:00"))
    assert report_keys(gateway) == []
    assert "stored report state unreadable" in caplog.text
    assert bot.store.get_state(REPORTS_STATE) == {
        "first_start": utc("2026-12-01T05:30"),
        "skipped": {"digest:2026-W48": "its period ended before the bot first started"}}


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


def test_release_memory_collects_cycles_and_trims_the_heap(monkeypatch: pytest.MonkeyPatch) -> None:
    """The periodic release frees unreachable cycles and calls malloc_trim where glibc has it."""
    import gc
    import platform
    import weakref

    from bot import loop

    class Node:
        other: object = None

    real_trim = loop._malloc_trim
    gc.disable()
    try:
        first, second = Node(), Node()
        first.other, second.other = second, first
        alive = weakref.ref(first)
        del first, second
        trimmed: list[int] = []
        monkeypatch.setattr(loop, "_malloc_trim", lambda: trimmed.append)
        loop.release_memory()
    finally:
        gc.enable()
    assert alive() is None
    assert trimmed == [0]
    if platform.libc_ver()[0] == "glibc":
        assert real_trim() is not None
