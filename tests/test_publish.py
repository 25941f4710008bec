"""The publish command of the status page: real child processes, an injected clock.

Every run here is a real ``sh`` (or ``sleep``) started by ``Publisher``. The
publisher decides by the test's clock, so timeouts and the backoff are exact
whatever the machine's speed; the only real waiting is for a child to exit,
bounded by a generous liveness limit that no assertion depends on.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot import pagetick
from bot.app import build
from bot.config import BotConfig, Config, MastodonConfig, PageConfig, PostsConfig, ReportsConfig
from bot.loop import Bot
from bot.model import PostKind
from bot.publish import Failure, News, Publisher, Reason, command_line, program_name
from bot.testing import RecordingGateway
from tests.test_loop import START, Healthy

LIVENESS = 30.0
"""Real seconds a child may take to start or exit before a test gives up (never reached)."""


_MADE: list[Publisher] = []
"""Publishers made by a test, closed (their process groups killed) after it, pass or fail."""


@pytest.fixture(autouse=True)
def _kill_leftovers() -> Iterator[None]:
    yield
    while _MADE:
        _MADE.pop().close(grace=0)


class Clock:
    """The publisher's monotonic clock, moved by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def eventually(condition: Callable[[], bool], what: str) -> None:
    """Wait in real time until ``condition`` holds (a liveness bound, not a timing claim)."""
    limit = time.monotonic() + LIVENESS
    while not condition():
        if time.monotonic() > limit:
            pytest.fail(f"still waiting after {LIVENESS:.0f} s: {what}")
        time.sleep(0.01)


def settle(publisher: Publisher) -> None:
    """Poll until the run in flight is over (the clock does not move)."""
    def over() -> bool:
        publisher.poll()
        return not publisher.running
    eventually(over, "the publish command to exit")


def sh(script: str) -> tuple[str, ...]:
    """Return a publish command running ``script`` with the page directory as ``$1``."""
    return ("sh", "-c", script, "sh", "{dir}")


def alive(pid: int) -> bool:
    """Say whether process ``pid`` runs (a zombie nobody reaped counts as dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def publisher(command: tuple[str, ...], directory: Path, clock: Clock,
              timeout: float = 60.0, **options: Any) -> Publisher:
    """Return a publisher driven by ``poll()`` and ``clock`` (``options`` override)."""
    made = Publisher(command, str(directory), timeout=timeout,
                     **{"background": False, "clock": clock, **options})
    _MADE.append(made)
    return made


# --- the command line ------------------------------------------------------------------------


def test_command_line_fills_in_dir_and_keeps_braces() -> None:
    """{dir} becomes the directory; {{ and }} are braces; the program is named alone."""
    argv = ("/usr/bin/rsync", "-a", "{dir}/", "status@host:/srv/{{x}}")
    assert command_line(argv, "/var/lib/page") == [
        "/usr/bin/rsync", "-a", "/var/lib/page/", "status@host:/srv/{x}"]
    assert program_name(argv) == "rsync"


# --- one run -----------------------------------------------------------------------------------


def test_success_publishes_and_resets(tmp_path: Path) -> None:
    """A run that exits 0 did its work (in {dir}); nothing is pending, nothing to tell."""
    clock = Clock()
    pub = publisher(sh('echo "$1" > "$1/published"'), tmp_path, clock)
    pub.changed()
    assert pub.poll() is not None and pub.running
    settle(pub)
    assert (tmp_path / "published").read_text().strip() == str(tmp_path)
    assert (pub.started, pub.succeeded, pub.failures, pub.pending) == (1, 1, 0, False)
    assert pub.poll() is None  # nothing to do until the next change
    assert pub.news() == []


@pytest.mark.parametrize(("command", "failure"), [
    pytest.param(sh("exit 3"), Failure(Reason.EXIT, "3"), id="exit-status"),
    pytest.param(sh("kill -TERM $$"), Failure(Reason.SIGNAL, "SIGTERM"), id="signal"),
    pytest.param(("/nonexistent/rclone", "sync", "{dir}", "remote:b"),
                 Failure(Reason.NOT_STARTED, "No such file or directory"), id="no-program"),
])
def test_failure_is_named_and_retried_later(tmp_path: Path, command: tuple[str, ...],
                                            failure: Failure) -> None:
    """A failed run is told apart by its reason, and retried 30 s later, not before."""
    clock = Clock()
    pub = publisher(command, tmp_path, clock)
    pub.changed()
    pub.poll()
    settle(pub)
    assert pub.last_failure == failure
    assert (pub.failures, pub.pending, pub.next_try) == (1, True, clock.now + 30.0)
    clock.now += 29.9
    pub.poll()
    assert pub.started == 1
    clock.now += 0.1
    pub.poll()
    assert pub.started == 2


def test_stderr_is_logged_but_never_the_command_line(tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    """The log names the program and the end of its stderr, never its arguments (secrets)."""
    clock = Clock()
    pub = publisher(("sh", "-c", "echo 'remote refused' >&2; exit 1", "s3cr3t-token"),
                    tmp_path, clock)
    with caplog.at_level(logging.DEBUG, logger="bot.publish"):
        pub.changed()
        pub.poll()
        settle(pub)
    assert "remote refused" in caplog.text
    assert "sh: exit 1" in caplog.text
    assert "s3cr3t" not in caplog.text


def test_hanging_command_is_killed_with_its_children_at_the_timeout(tmp_path: Path) -> None:
    """At the timeout the whole process group dies: the command and what it started."""
    clock = Clock()
    script = 'sleep 1000 & echo $! > "$1/child"; sleep 1000'
    pub = publisher(sh(script), tmp_path, clock, timeout=60.0)
    pub.changed()
    pub.poll()
    leader = pub.pid
    assert leader is not None
    eventually(lambda: (tmp_path / "child").is_file()
               and (tmp_path / "child").read_text().strip().isdigit(), "the child's pid")
    child = int((tmp_path / "child").read_text())
    assert os.getpgid(leader) == leader != os.getpgid(0)  # a group of its own
    clock.now += 59.9
    pub.poll()
    assert pub.running and alive(leader) and alive(child)  # not before the timeout
    clock.now += 0.1
    pub.poll()
    assert pub.pid is None
    assert pub.last_failure == Failure(Reason.TIMEOUT, "60")
    eventually(lambda: not alive(child), "the child to die")
    assert not alive(leader)
    assert (pub.failures, pub.next_try) == (1, clock.now + 30.0)


# --- retries and coalescing -------------------------------------------------------------------


def test_backoff_doubles_from_30_s_to_30_min(tmp_path: Path) -> None:
    """Pauses after failures in a row: 30 s, 60 s, … capped at 30 min; no run in between."""
    clock = Clock()
    pub = publisher(sh("exit 1"), tmp_path, clock)
    pub.changed()
    pauses = []
    for n in range(1, 10):
        pub.poll()
        assert pub.started == n
        settle(pub)
        pauses.append(pub.next_try - clock.now)
        clock.now = pub.next_try - 0.5
        pub.poll()
        assert pub.started == n and not pub.running  # still backing off
        clock.now = pub.next_try
    assert pauses == [30, 60, 120, 240, 480, 960, 1800, 1800, 1800]


def test_success_after_failures_resets_the_pause(tmp_path: Path) -> None:
    """After a success, the next failure waits 30 s again."""
    clock = Clock()
    (tmp_path / "rc").write_text("1")
    pub = publisher(sh('exit "$(cat "$1/rc")"'), tmp_path, clock)
    pub.changed()
    for _ in range(3):
        pub.poll()
        settle(pub)
        clock.now = pub.next_try
    (tmp_path / "rc").write_text("0")
    pub.poll()
    settle(pub)
    assert (pub.failures, pub.succeeded) == (0, 1)
    (tmp_path / "rc").write_text("1")
    pub.changed()
    pub.poll()
    settle(pub)
    assert pub.next_try == clock.now + 30.0


def test_changes_during_a_run_coalesce_into_one_more_run(tmp_path: Path) -> None:
    """Five changes while a run is in flight make exactly one further run."""
    clock = Clock()
    script = 'while [ ! -e "$1/gate" ]; do sleep 0.01; done; echo run >> "$1/runs"'
    pub = publisher(sh(script), tmp_path, clock)
    pub.changed()
    pub.poll()
    for _ in range(5):
        pub.changed()
        pub.poll()
    assert (pub.started, pub.running, pub.pending) == (1, True, True)
    (tmp_path / "gate").touch()
    settle(pub)  # the first run ends, the second one starts in the same poll
    assert pub.started == 2
    settle(pub)
    assert pub.poll() is None
    assert ((tmp_path / "runs").read_text().split(), pub.started, pub.succeeded) == (
        ["run", "run"], 2, 2)


def test_changes_while_backing_off_wait_for_the_retry(tmp_path: Path) -> None:
    """A change during the pause after a failure does not cut the pause short."""
    clock = Clock()
    pub = publisher(sh("exit 1"), tmp_path, clock)
    pub.changed()
    pub.poll()
    settle(pub)
    pub.changed()
    pub.poll()
    assert pub.started == 1
    clock.now = pub.next_try
    pub.poll()
    assert pub.started == 2


# --- what the admins hear ---------------------------------------------------------------------


def test_told_once_when_failing_and_once_when_recovered(tmp_path: Path) -> None:
    """Two failures in a row are news once; further failures are not; the success is news once."""
    clock = Clock()
    (tmp_path / "rc").write_text("7")
    pub = publisher(sh('exit "$(cat "$1/rc")"'), tmp_path, clock)
    pub.changed()
    heard: list[list[News]] = []
    for _ in range(5):
        pub.poll()
        settle(pub)
        heard.append(pub.news())
        clock.now = pub.next_try
    assert heard == [[], [News(Failure(Reason.EXIT, "7"), 2)], [], [], []]
    (tmp_path / "rc").write_text("0")
    pub.poll()
    settle(pub)
    assert pub.news() == [News(None, 5)]
    pub.changed()
    pub.poll()
    settle(pub)
    assert pub.news() == []
    (tmp_path / "rc").write_text("1")  # a new streak is news again
    for _ in range(2):
        pub.changed()
        pub.poll()
        settle(pub)
        clock.now = pub.next_try
    assert [n.failing for n in pub.news()] == [True]


def test_one_failure_repaired_by_its_retry_is_not_news(tmp_path: Path) -> None:
    """A blip (one failure, then the retry works) is logged, not told."""
    clock = Clock()
    (tmp_path / "rc").write_text("1")
    pub = publisher(sh('exit "$(cat "$1/rc")"'), tmp_path, clock)
    pub.changed()
    pub.poll()
    settle(pub)
    (tmp_path / "rc").write_text("0")
    clock.now = pub.next_try
    pub.poll()
    settle(pub)
    assert (pub.succeeded, pub.news()) == (1, [])


def test_told_before_a_restart_means_recovery_is_news(tmp_path: Path) -> None:
    """A publisher started knowing the admins were told reports the first success."""
    clock = Clock()
    pub = publisher(sh("exit 0"), tmp_path, clock, told=True)
    pub.changed()
    pub.poll()
    settle(pub)
    assert pub.news() == [News(None, 0)]


# --- in the background ------------------------------------------------------------------------


def test_background_thread_runs_and_close_waits_for_a_short_run(tmp_path: Path) -> None:
    """With its own thread a change is published without any poll; close lets it finish."""
    pub = Publisher(sh('sleep 0.2; touch "$1/done"'), str(tmp_path), timeout=60.0)
    _MADE.append(pub)
    pub.changed()
    pub.close(grace=LIVENESS)
    assert (tmp_path / "done").is_file()
    assert (pub.started, pub.succeeded, pub.running) == (1, 1, False)
    pub.changed()  # after close: ignored
    assert pub.started == 1


def page_bot(tmp_path: Path, clock: list[float], command: tuple[str, ...],
             timeout: float = 60.0) -> Bot:
    """Build the bot as `statusbot run` does, with a status page and a publish command."""
    config = dataclasses.replace(
        Config(), bot=BotConfig(interval=30.0, state_dir=str(tmp_path / "state")),
        mastodon=MastodonConfig(admins=("alice",)), posts=PostsConfig(status_every=0.0),
        reports=ReportsConfig(weekly=None, monthly=None, chart=False),
        page=PageConfig(dir=str(tmp_path / "page"), publish_command=command,
                        publish_timeout=timeout))
    bot = build(config, out=io.StringIO(), gateway=RecordingGateway(),
                clock=lambda: clock[0])
    bot.collector = Healthy(clock)  # type: ignore[assignment]
    return bot


def test_a_hanging_publish_never_blocks_the_tick(tmp_path: Path) -> None:
    """Ticks return while the publish command hangs; stopping the bot kills it."""
    clock = [START]
    bot = page_bot(tmp_path, clock, sh('echo $$ > "$1/../pid"; exec sleep 1000'))
    report = bot.tick()  # writes the page, asks for a run
    assert bot.page is not None and bot.page.publisher is not None
    publisher = bot.page.publisher
    _MADE.append(publisher)
    eventually(lambda: (tmp_path / "pid").is_file()
               and (tmp_path / "pid").read_text().strip().isdigit(), "the command to start")
    pid = int((tmp_path / "pid").read_text())
    clock[0] += 30
    for _ in range(3):  # more ticks while it hangs
        bot.tick()
        clock[0] += 30
    assert report.new_posts == 0 and (tmp_path / "page" / "index.html").is_file()
    assert alive(pid) and publisher.running and publisher.started == 1
    bot.page.close(grace=0)
    assert not alive(pid) and not publisher.running


def test_admins_hear_of_a_failing_publish_once_through_the_outbox(tmp_path: Path) -> None:
    """Failing publishing is one DM naming the program only; its recovery one more."""
    clock, fake = [START], Clock()
    (tmp_path / "rc").write_text("5")
    command = ("sh", "-c", 'exit "$(cat "$0/../rc")"', "{dir}", "password=hunter2")
    bot = page_bot(tmp_path, clock, command)
    config = bot.page_setup.args[0]  # type: ignore[union-attr]
    bot.page_setup = lambda now: pagetick.start(config, bot.store, bot.history,  # type: ignore[arg-type]
                                                bot.settings, now, clock=fake, background=False)
    for _ in range(4):  # a tick, then the run it asked for fails
        bot.tick()
        assert bot.page is not None and bot.page.publisher is not None
        pub = bot.page.publisher
        _MADE.append(pub)
        pub.changed()
        pub.poll()
        settle(pub)
        fake.now = pub.next_try
        clock[0] += 30
    (tmp_path / "rc").write_text("0")
    pub.poll()
    settle(pub)
    for _ in range(2):
        bot.tick()
        clock[0] += 30
    gateway = bot.gateway
    assert isinstance(gateway, RecordingGateway)
    admin = [s.post.text for s in gateway.statuses.values() if s.post.kind is PostKind.ADMIN]
    assert len(admin) == 2, admin
    failing, recovered = admin
    assert "status page is not being published: sh failed 2 times" in failing
    assert "because it exited with status 5" in failing
    assert "published again (sh works again after failing for" in recovered
    assert all("hunter2" not in text and str(tmp_path) not in text for text in admin)
    assert bot.store.get_state(pagetick.PUBLISH_STATE) == {}
