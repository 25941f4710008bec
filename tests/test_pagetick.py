"""The status page in the running bot: written on change, refreshed now and then, never a crash.

The bot is built as ``statusbot run`` builds it (state on disk, ``[page] dir``
set) with a scripted healthy or slow instance and the recording gateway; the
clock is the test's. Renders are counted by wrapping ``page.render``.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from bot import defaults, page, pagefiles
from bot.app import build
from bot.config import BotConfig, Config, MastodonConfig, PageConfig, PostsConfig, ReportsConfig
from bot.loop import Bot
from bot.model import PostKind, Snapshot
from bot.pagefiles import PageKeeper
from bot.pagetick import PageTick
from bot.store import Store
from bot.testing import RecordingGateway
from tests.test_loop import RULES, START, snapshot

assert START % defaults.PAGE_REFRESH == 0  # ticks START..START+270 share a refresh period


class Instance:
    """A collector reading the instance at the test's clock; ``slow`` makes the push queue late."""

    def __init__(self, clock: list[float]) -> None:
        self.clock = clock
        self.slow = False

    def collect(self) -> Snapshot:
        return snapshot(self.clock[0], 400 if self.slow else 0)


def page_bot(tmp_path: Path, clock: list[float], *, directory: Path | None = None,
             dry_run: bool = False, no_page: bool = False) -> tuple[Bot, Instance, Path]:
    """Build the bot as `statusbot run` does, with ``[page] dir`` (default tmp/page)."""
    directory = directory or tmp_path / "page"
    page_config = PageConfig() if no_page else PageConfig(dir=str(directory),
                                                          url="https://status.example.org")
    config = dataclasses.replace(
        Config(), bot=BotConfig(interval=30.0, state_dir=str(tmp_path / "state")),
        mastodon=MastodonConfig(api_base_url="https://example.social", admins=("alice",),
                                probe_health=False),
        posts=PostsConfig(status_every=0.0), health=RULES,
        reports=ReportsConfig(weekly=None, monthly=None, chart=False),
        page=page_config)
    bot = build(config, out=io.StringIO(), gateway=RecordingGateway(),
                clock=lambda: clock[0], dry_run=dry_run)
    instance = Instance(clock)
    bot.collector = instance  # type: ignore[assignment]
    return bot, instance, directory


@pytest.fixture
def renders(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the time of every page render."""
    seen: list[float] = []
    real = page.render

    def counting(data: page.PageData, now: float) -> dict[str, bytes]:
        seen.append(now)
        return real(data, now)

    monkeypatch.setattr(page, "render", counting)
    return seen


def sent(bot: Bot, kind: PostKind) -> list[str]:
    gateway = bot.gateway
    assert isinstance(gateway, RecordingGateway)
    return [s.post.text for s in gateway.statuses.values() if s.post.kind is kind]


def updated_at(directory: Path) -> str:
    """The page's "last checked" time, as the Statuspage JSON carries it."""
    summary = json.loads((directory / "api/v2/summary.json").read_text())
    return str(summary["page"]["updated_at"])


def inode(path: Path) -> int:
    return path.stat().st_ino  # an atomic replace makes a new one


def test_written_on_change_and_not_on_an_unchanged_tick(tmp_path: Path,
                                                         renders: list[float]) -> None:
    """First tick writes all files; quiet ticks write nothing; an incident writes at once."""
    clock = [START]
    bot, instance, directory = page_bot(tmp_path, clock)
    bot.tick()
    assert sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file()) \
        == sorted(page.FILES)
    before = inode(directory / "index.html")
    for _ in range(5):
        clock[0] += 30
        bot.tick()
    assert renders == [START]
    assert inode(directory / "index.html") == before
    instance.slow = True
    clock[0] += 30
    bot.tick()
    assert renders == [START, START + 180]
    assert inode(directory / "index.html") != before
    status = json.loads((directory / "api/v2/status.json").read_text())
    assert status["status"]["indicator"] != "none"
    clock[0] += 30
    bot.tick()  # still open, same components: nothing to write
    assert renders == [START, START + 180]


def test_a_sent_post_is_linked_in_the_same_tick(tmp_path: Path) -> None:
    """The page is written after delivery, so the notice links to its status at once."""
    clock = [START]
    bot, instance, directory = page_bot(tmp_path, clock)
    instance.slow = True
    bot.tick()
    gateway = bot.gateway
    assert isinstance(gateway, RecordingGateway)
    notice = next(s for s in gateway.statuses.values() if s.post.kind is PostKind.NOTICE)
    link = f'href="https://example.social/statuses/{notice.id}"'
    assert link in (directory / "index.html").read_text()


def test_last_checked_is_refreshed_once_per_period(tmp_path: Path,
                                                    renders: list[float]) -> None:
    """Over 20 quiet minutes of 30-s ticks the page is rewritten once per 5 min, not per tick."""
    clock = [START]
    bot, _, directory = page_bot(tmp_path, clock)
    checked = []
    for _ in range(40):
        bot.tick()
        checked.append(updated_at(directory))
        clock[0] += 30
    period = defaults.PAGE_REFRESH
    assert renders == [START, START + period, START + 2 * period, START + 3 * period]
    assert sorted(set(checked)) == [page.iso(at)[:-1] + ".000Z" for at in renders]


def test_an_unwritable_dir_is_told_once_and_posts_go_out(tmp_path: Path,
                                                         renders: list[float],
                                                         caplog: pytest.LogCaptureFixture,
                                                         ) -> None:
    """A file where the page dir should be: one admin DM, posts still sent, retried, recovered."""
    clock = [START]
    blocker = tmp_path / "page"
    blocker.write_text("not a directory")
    bot, instance, directory = page_bot(tmp_path, clock, directory=blocker / "site")
    instance.slow = True
    with caplog.at_level(logging.WARNING):
        for _ in range(6):
            bot.tick()
            clock[0] += 30
    assert len(sent(bot, PostKind.NOTICE)) == 1  # the incident is posted as ever
    told = [t for t in sent(bot, PostKind.ADMIN) if "status page cannot be written" in t]
    assert len(told) == 1, told
    assert f"{blocker}/site" in caplog.text.replace("\u2024", ".")
    retry = defaults.PAGE_WRITE_RETRY
    assert renders == [START, START + retry, START + 2 * retry]  # not on every tick
    assert sum("cannot write the status page" in r.message for r in caplog.records) == 1
    blocker.unlink()
    clock[0] = renders[-1] + retry
    with caplog.at_level(logging.WARNING):
        bot.tick()
    assert (directory / "index.html").is_file()
    assert "written again" in caplog.text
    assert bot.page is not None and bot.page.problem is None
    assert len([t for t in sent(bot, PostKind.ADMIN)
                if "status page cannot be written" in t]) == 1


def test_a_page_failure_never_fails_the_tick(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             caplog: pytest.LogCaptureFixture) -> None:
    """A bug or a broken read while gathering the page is logged once; posts go out."""
    clock = [START]
    bot, instance, _ = page_bot(tmp_path, clock)

    def broken(*args: object, **kwargs: object) -> page.Live:
        raise RuntimeError("database disk image is malformed")

    monkeypatch.setattr("bot.pagetick.gather_live", broken)
    instance.slow = True
    with caplog.at_level(logging.ERROR):
        for _ in range(3):
            report = bot.tick()
            assert report.delivery is not None
            clock[0] += 30
    assert len(sent(bot, PostKind.NOTICE)) == 1
    assert sum("status page not updated" in r.message for r in caplog.records) == 1


def test_publish_is_asked_only_when_a_file_changed(tmp_path: Path) -> None:
    """The tick asks for a run after a write, not after an unchanged tick."""
    clock = [START]
    store = Store(tmp_path / "state.sqlite3")
    calls: list[str] = []

    class Spy:
        program = "spy"
        told = False

        def changed(self) -> None:
            calls.append("changed")

        def news(self) -> list[object]:
            return []

    bot, _, directory = page_bot(tmp_path, clock)
    assert bot.history is not None
    keeper = PageKeeper(directory, pagefiles.site_for(Config(), bot.settings, store, START))
    bot.page = PageTick(keeper, bot.store, bot.history, bot.settings, "",
                        publisher=Spy())  # type: ignore[arg-type]
    bot.page_setup = None
    wrote = []
    for _ in range(12):
        assert bot.page is not None
        before = list(calls)
        bot.tick()
        wrote.append(calls != before)
        clock[0] += 30
    assert wrote == [True] + [False] * 9 + [True, False]  # START, then START + 300
    store.close()


@pytest.mark.parametrize(("no_page", "dry_run"), [
    pytest.param(True, False, id="no-page-dir"),
    pytest.param(False, True, id="dry-run"),
])
def test_no_page_without_dir_or_in_a_dry_run(tmp_path: Path, no_page: bool,
                                             dry_run: bool) -> None:
    """Without [page] dir, or with --dry-run, nothing is set up and nothing is written."""
    clock = [START]
    bot, _, _ = page_bot(tmp_path, clock, dry_run=dry_run, no_page=no_page)
    assert bot.page_setup is None
    bot.tick()
    assert bot.page is None
    assert not (tmp_path / "page").exists()


def test_a_bot_without_a_page_never_imports_the_renderer(tmp_path: Path) -> None:
    """`statusbot run` without [page] dir loads neither bot.page nor bot.publish."""
    script = (
        "import io, sys\n"
        "from bot.app import build\n"
        "from bot.config import BotConfig, Config\n"
        f"bot = build(Config(bot=BotConfig(state_dir={str(tmp_path)!r})), out=io.StringIO())\n"
        "assert bot.page_setup is None\n"
        "print(sorted(m for m in ('bot.page', 'bot.pagefiles', 'bot.pagetick', 'bot.publish')"
        " if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=False, timeout=120)
    assert (done.returncode, done.stdout.strip()) == (0, "[]"), done.stderr


def test_build_sets_up_the_page_only_with_a_dir(tmp_path: Path) -> None:
    """With [page] dir the first tick makes the page's part; the config's own check agrees."""
    clock = [START]
    bot, _, directory = page_bot(tmp_path, clock)
    tick_part, setup = made(bot)
    assert tick_part is None and setup is not None
    bot.tick()
    tick_part, setup = made(bot)
    assert isinstance(tick_part, PageTick) and setup is None
    assert tick_part.publisher is None
    assert pagefiles.page_dir_problem(str(directory)) is None



def made(bot: Bot) -> tuple[PageTick | None, object]:
    """Return the bot's page part and its setup (a call, so that type narrowing forgets them)."""
    return bot.page, bot.page_setup
