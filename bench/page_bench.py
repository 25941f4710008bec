"""What the status page costs (issue 9): a full render, and a tick where nothing changed.

Builds the worst case the page is bounded for: 90 days of history, 30
resolved incidents in them (each with its thread of 6 posts), an open
critical incident with 14 posts, a planned maintenance window. Then times:

- ``page.render`` of the four files from that data (target: at most 20 ms);
- the check a tick makes when nothing the page shows changed: reading the
  open incident's thread and the maintenance windows from the state file
  (``pagefiles.gather_live``, an outbox of ``--outbox`` rows) and comparing
  it with the last render (``PageKeeper.update`` returning False); target:
  at most 1 ms;
- for scale, one ``PageKeeper.update`` that renders and writes (a change),
  and ``gather_past`` from a state file holding 90 days of samples;
- the same check inside the real tick path: a bot built by ``app.build`` as
  ``statusbot run`` builds it (state file on disk, ``[page] dir`` and a
  ``publish_command``), whose instance stays in one critical incident (a
  thread of 14 posts, all sent) while the clock moves on by 10 ms a tick:
  the time of ``Bot._update_page`` as ``Bot.tick`` calls it (the page's whole
  share of the tick: publisher news, ``gather_live``, the comparison), and
  for context the whole ``Bot.tick`` with and without the page. No render may
  happen in those ticks (checked).

Usage: ``.venv/bin/python bench/page_bench.py [--runs 300] [--outbox 5000]``
Prints Markdown (milliseconds: median and 95th percentile of ``--runs``).
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bot import health, page
from bot.app import build
from bot.compose import Settings
from bot.config import BotConfig, Config, MastodonConfig, PageConfig, PostsConfig, ReportsConfig
from bot.handlers import MUTES_STATE, RuntimeMute, mutes_state, runtime_mutes
from bot.history import DAY, History, Sample
from bot.incidents import IncidentState
from bot.model import (
    Affected,
    Incident,
    Post,
    PostKind,
    QueueStats,
    RedisStats,
    Severity,
    SidekiqStats,
    Snapshot,
)
from bot.pagefiles import PageKeeper, gather_live, gather_past, write_files
from bot.store import ItemState, Store
from bot.testing import RecordingGateway

NOW = float(1_780_000_000 // DAY * DAY + 12 * 3600)
URL = "https://example.social"
SETTINGS = Settings(instance="example.social")
SITE = page.Site(SETTINGS, "https://status.example.org", URL, NOW - 200 * DAY)
TEXT = ("Since 11:00 UTC, parts of example.social are not working properly.\n"
        "Your posts reach people on other servers late. Expected to catch up in about 20 min.\n"
        "We will post updates in this thread.")


def open_incident() -> Incident:
    affected = tuple(Affected(c, s, NOW - 3600, s, "r", 1.0, 1.0)
                     for c, s in (("queue:push", Severity.CRITICAL), ("memory", Severity.WARNING),
                                  ("web", Severity.CRITICAL)))
    return Incident(id="inc-99", opened_at=NOW - 3600, affected=affected,
                    severity=Severity.CRITICAL, peak=Severity.CRITICAL)


def fill_store(store: Store, rows: int) -> None:
    """Queue ``rows`` posts: 30 resolved threads, the open one, a maintenance, replies."""
    posts = [Post(f"inc-{n}:{k}", PostKind.NOTICE if k == 0 else PostKind.UPDATE, TEXT,
                  "public", NOW - n * 3 * DAY + 600 * k) for n in range(1, 31) for k in range(6)]
    posts += [Post(f"inc-99:{k}", PostKind.NOTICE if k == 0 else PostKind.UPDATE, TEXT,
                   "public", NOW - 3600 + 60 * k) for k in range(14)]
    posts += [Post("maint:m1:announce", PostKind.NOTICE, "Planned maintenance", "public",
                   NOW - 600)]
    posts += [Post(f"reply:{n}", PostKind.REPLY, "@alice All normal.", "direct", NOW - n)
              for n in range(max(0, rows - len(posts)))]
    store.enqueue(posts)
    store.put_state(MUTES_STATE, mutes_state([RuntimeMute(
        "m1", "maintenance", NOW + DAY, NOW + DAY + 7200, (), "Database upgrade", "alice")]))


def fill_history(history: History) -> None:
    """Record 90 days of samples every 30 s (compacted as the bot would), with gaps."""
    start = NOW // DAY * DAY - 89 * DAY  # UTC midnight, 89 days before today's
    for day in range(90):
        if day % 9 == 0:
            continue  # a day the bot was down
        base = start + day * DAY
        history.record_many(Sample(at=base + 30 * n) for n in range(2880)
                            if base + 30 * n < NOW)
        history.compact(min(NOW, base + DAY))
    history.compact(NOW)
    for n, at in enumerate(NOW - k * 3 * DAY for k in range(1, 31)):
        history.record_incident(Incident(id=f"inc-{n + 1}", opened_at=at, affected=(
            Affected("queue:push", Severity.OK, at, Severity.CRITICAL, "r"),),
            severity=Severity.OK, peak=Severity.CRITICAL, resolved_at=at + 7200))


def timed(action: Callable[[], object], runs: int) -> tuple[float, float]:
    """Return the median and the 95th percentile of ``runs`` timings, in milliseconds."""
    action()  # warm
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.95))]


class SlowPush:
    """A collector whose instance has a late push queue (one steady critical finding)."""

    def __init__(self, clock: list[float]) -> None:
        self.clock = clock

    def collect(self) -> Snapshot:
        """Return the same reading at the clock's time."""
        queue = QueueStats("push", 500, 400.0, False, True)
        sidekiq = SidekiqStats(
            processed=10, failed=0, processed_today=10, failed_today=0, scheduled=0,
            retries=0, dead=0, enqueued=500, queues=(queue,), processes=(),
            processes_registered=1, live_processes=1, stale_processes=0, busy=1,
            concurrency=5, utilisation=0.2, anomaly_count=0, anomalies=())
        return Snapshot(self.clock[0], RedisStats("redis://127.0.0.1:6379/0", "", True),
                        sidekiq, None)


def tick_path(root: Path, runs: int, outbox: int) -> dict[str, tuple[float, float]]:
    """Time the page's share of real ``Bot.tick`` calls that change nothing on the page."""
    clock = [NOW]
    rules = health.rules_from_config({"queue_latency": {"push": {
        "warning": 60, "critical": 300, "for": 0, "clear": 10, "clear_for": 0}}})[0]
    config = Config(
        bot=BotConfig(interval=30.0, state_dir=str(root / "tick-state")),
        mastodon=MastodonConfig(api_base_url=URL, admins=("alice",), probe_health=False),
        posts=PostsConfig(status_every=0.0), health=rules,
        reports=ReportsConfig(weekly=None, monthly=None, chart=False),
        page=PageConfig(dir=str(root / "tick-site"), url="https://status.example.org",
                        publish_command=("true", "{dir}")))
    bot = build(config, out=io.StringIO(), gateway=RecordingGateway(),
                clock=lambda: clock[0])
    bot.collector = SlowPush(clock)  # type: ignore[assignment]
    fill_store(bot.store, outbox)
    mark_sent(bot.store)  # all delivered long ago (nothing stale to fold into a catch-up)
    bot.tick()  # opens the incident, writes the page, asks for a publish
    incident = bot.incident_state().open
    assert incident is not None
    assert bot.page is not None
    bot.store.enqueue(Post(f"{incident.id}:{k}", PostKind.UPDATE, TEXT, "public",
                           NOW + k) for k in range(2, 14))
    mark_sent(bot.store)
    clock[0] += 0.01
    bot.tick()  # the page shows the thread
    renders = [0]
    real_render = page.render

    def counting(data: page.PageData, now: float) -> dict[str, bytes]:
        renders[0] += 1
        return real_render(data, now)

    page.render = counting
    inner: list[float] = []
    real_update = bot._update_page  # what Bot.tick calls

    def timed_update(state: IncidentState, windows: Sequence[RuntimeMute], now: float) -> None:
        start = time.perf_counter()
        real_update(state, windows, now)
        inner.append((time.perf_counter() - start) * 1000)

    bot._update_page = timed_update  # type: ignore[method-assign]

    def ticks(count: int) -> list[float]:
        spent = []
        for _ in range(count):
            clock[0] += 0.01
            start = time.perf_counter()
            bot.tick()
            spent.append((time.perf_counter() - start) * 1000)
        return spent

    ticks(20)
    inner.clear()
    with_page = ticks(runs)
    page_part = list(inner)
    assert renders[0] == 0, "an unchanged tick rendered the page"
    publisher = bot.page.publisher
    keep = bot.page
    bot.page = None
    without_page = ticks(runs)
    bot.page = keep
    page.render = real_render
    keep.close(grace=5.0)
    assert publisher is not None
    assert publisher.started >= 1
    bot.store.close()
    return {"page": spread(page_part), "with": spread(with_page),
            "without": spread(without_page)}


def mark_sent(store: Store) -> None:
    """Mark every pending post as published."""
    for n, item in enumerate(store.items((ItemState.PENDING,))):
        store.mark_sent(item.key, str(10_000 + n), NOW)


def spread(times: list[float]) -> tuple[float, float]:
    """Return the median and the 95th percentile of ``times``."""
    times = sorted(times)
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.95))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--outbox", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        store = Store(root / "state.sqlite3")
        history = History(store, interval=30.0)
        fill_store(store, args.outbox)
        built = time.perf_counter()
        fill_history(history)
        built = time.perf_counter() - built
        incident = open_incident()
        live = gather_live(store, incident, runtime_mutes(store), URL)
        past = gather_past(store, history, NOW, SETTINGS, URL)
        data = page.PageData(SITE, live, past, NOW)
        files = page.render(data, NOW)
        sizes = {name: len(content) for name, content in files.items()}

        render = timed(lambda: page.render(data, NOW), args.runs)

        keeper = PageKeeper(root / "site", SITE)
        keeper.update(live, lambda: past, NOW)

        def unchanged_tick() -> None:
            fresh = gather_live(store, incident, runtime_mutes(store), URL)
            if keeper.update(fresh, lambda: past, NOW + 30):
                raise AssertionError("an unchanged tick rendered the page")

        check = timed(unchanged_tick, args.runs * 10)
        compare = timed(lambda: keeper.update(live, lambda: past, NOW + 30), args.runs * 10)
        moment = [NOW]

        def changed_tick() -> None:
            moment[0] += 1
            changed = dataclasses.replace(live, posts=(*live.posts, page.PagePost(
                f"inc-99:{moment[0]}", moment[0], "New update")))
            keeper.update(changed, lambda: past, moment[0])

        changed = timed(changed_tick, args.runs)
        gather = timed(lambda: gather_past(store, history, NOW, SETTINGS, URL),
                       max(10, args.runs // 10))
        unchanged_write = timed(lambda: write_files(root / "site2", files), args.runs)
        store.close()
        in_tick = tick_path(root, args.runs * 3, args.outbox)

    print(f"- Machine: {platform.machine()}, Python {platform.python_version()}, "
          f"{platform.system()} {platform.release()}")
    print(f"- Data: {len(past.days)} days ({sum(1 for d in past.days if d.watched_s == 0)} "
          f"not watched), {len(past.incidents)} resolved incidents with "
          f"{sum(len(i.posts) for i in past.incidents)} posts, an open incident with "
          f"{len(live.posts)} posts, {len(live.maintenance)} maintenance window; outbox "
          f"{args.outbox:,} rows; history built in {built:.1f} s")
    print("- Sizes (bytes): " + ", ".join(f"{n} {s:,}" for n, s in sizes.items()))
    print()
    print("| What | median ms | p95 ms | target |")
    print("|---|---:|---:|---|")
    rows = [
        ("full render, 4 files (`page.render`)", render, "≤ 20 ms"),
        ("unchanged tick: `gather_live` + `PageKeeper.update` → False", check, "≤ 1 ms"),
        ("... of which the comparison alone (`PageKeeper.update` → False)", compare, ""),
        ("changed tick: render + atomic write of what changed (`PageKeeper.update`)",
         changed, ""),
        ("`gather_past` (90 days of samples, 30 threads) from the state file", gather, ""),
        ("`write_files` with every file already up to date", unchanged_write, ""),
    ]
    rows += [
        ("unchanged tick inside `Bot.tick`: `Bot._update_page` (publisher news, "
         "`gather_live`, comparison)", in_tick["page"], "≤ 1 ms"),
        ("whole `Bot.tick`, page configured (no render)", in_tick["with"], ""),
        ("whole `Bot.tick`, page taken out", in_tick["without"], ""),
    ]
    for name, (median, p95), target in rows:
        print(f"| {name} | {median:.3f} | {p95:.3f} | {target} |")


if __name__ == "__main__":
    main()
