"""Fallback accounts: when they speak (injected clock), what they say, how it is delivered."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bot import cli, compose
from bot.app import build
from bot.config import (
    BotConfig,
    Config,
    FallbackConfig,
    MastodonConfig,
    PageConfig,
    PostsConfig,
    ReportsConfig,
    Secret,
)
from bot.fallback import (
    FALLBACK_STATE,
    REFUSED_STATE,
    FallbackState,
    Lane,
    Policy,
    Reason,
    Signals,
    Thread,
    news_of,
    posts_failing_since,
    step,
)
from bot.gateway import PermanentError, RetryableError
from bot.health import Mute
from bot.loop import Bot
from bot.model import (
    Affected,
    Incident,
    InstanceHealth,
    Post,
    PostKind,
    QueueStats,
    RedisStats,
    Severity,
    SidekiqStats,
    Snapshot,
)
from bot.store import ItemState
from bot.testing import RecordingGateway

T0 = datetime(2026, 5, 28, 14, 5, tzinfo=timezone.utc).timestamp()
SETTINGS = compose.Settings(instance="example.social")
PAGE = "https://status.example.social"
LANE = Lane("fallback:mastodon.online", after=300.0)


def run(signals: Sequence[Signals], *, lanes: Sequence[Lane] = (LANE,), every: float = 60.0,
        start: float = T0, policy: Policy | None = None, page_url: str = PAGE,
        state: FallbackState | None = None,
        ) -> tuple[FallbackState, list[tuple[float, Post]], list[list[Reason]]]:
    """Drive ``step`` tick by tick with an injected clock; collect the posts and reasons."""
    state = state or FallbackState()
    posts: list[tuple[float, Post]] = []
    reasons: list[list[Reason]] = []
    for index, signal in enumerate(signals):
        now = start + index * every
        state, made, decisions = step(state, signal, lanes, now, SETTINGS, page_url=page_url,
                                      policy=policy)
        posts += [(now - start, post) for post in made]
        reasons.append([d.reason for d in decisions])
    return state, posts, reasons


UP = Signals(web_ok=True)
DOWN = Signals(web_ok=False)


@pytest.mark.parametrize(("down_ticks", "after", "notice_at"), [
    pytest.param(4, 300.0, None, id="4-min-outage-under-5-min"),
    pytest.param(5, 300.0, None, id="5-ticks-is-only-4-min-down"),
    pytest.param(6, 300.0, 300.0, id="notice-at-5-min"),
    pytest.param(20, 300.0, 300.0, id="long-outage-one-notice"),
    pytest.param(3, 60.0, 60.0, id="after-1-min"),
    pytest.param(32, 1800.0, 1800.0, id="after-30-min"),
])
def test_the_notice_comes_after_after(down_ticks: int, after: float,
                                      notice_at: float | None) -> None:
    """The website failing for ``after`` (not a tick less) opens the thread, once."""
    lane = Lane(LANE.destination, after=after)
    _, posts, _ = run([UP, *[DOWN] * down_ticks], lanes=[lane])
    notices = [at - 60.0 for at, post in posts if post.kind is PostKind.NOTICE]
    assert notices == ([] if notice_at is None else [notice_at])


def test_nothing_is_posted_while_the_instance_works() -> None:
    """A day of ticks with the instance answering (or not probed) posts nothing anywhere."""
    state, posts, reasons = run([UP, Signals(), UP] * 480)
    assert posts == [] and state == FallbackState()
    assert {r for tick in reasons for r in tick} == {Reason.QUIET}


def test_a_short_outage_posts_nothing_not_even_a_resolution() -> None:
    """Down for less than ``after``, then back: no notice, so no resolution either."""
    _, posts, reasons = run([DOWN] * 4 + [UP] * 3)
    assert posts == []
    assert [tick[0] for tick in reasons] == [Reason.WAITING] * 4 + [Reason.QUIET] * 3


def test_notice_and_resolution_texts() -> None:
    """The notice names the instance and the time; the resolution replies in its thread."""
    _, posts, _ = run([DOWN] * 6 + [UP])
    (_, notice), (_, resolution) = posts
    assert notice.text == ("example.social cannot be reached since 14:05 UTC. We are working "
                           "on it.\nStatus: https://status.example.social")
    assert notice.key == f"fallback:mastodon.online:{int(T0)}:notice"
    assert (notice.destination, notice.visibility, notice.spoiler_text, notice.parent_key) == (
        "fallback:mastodon.online", "public", "Service notice: example.social", None)
    assert resolution.text == ("example.social can be reached again, after 6 min. Thank you "
                               "for your patience.")
    assert (resolution.kind, resolution.parent_key, resolution.destination) == (
        PostKind.RESOLUTION, notice.key, notice.destination)


def test_no_status_part_without_a_page_url() -> None:
    """Without [page] url the notice ends with its own words."""
    _, posts, _ = run([DOWN] * 6, page_url="")
    assert posts[0][1].text == ("example.social cannot be reached since 14:05 UTC. We are "
                                "working on it.")


@pytest.mark.parametrize(("gate", "since"), [
    pytest.param({"reason": "retry: post: HTTP 502", "since": T0, "failures": 3, "until": 1},
                 T0, id="5xx"),
    pytest.param({"reason": "retry: post: Connection refused", "since": T0, "failures": 1},
                 T0, id="refused"),
    pytest.param({"reason": "rate_limited: HTTP 429", "since": T0, "failures": 1}, None,
                 id="429-answers"),
    pytest.param({"reason": "credentials_rejected: HTTP 401", "since": T0, "failures": 2},
                 None, id="401-answers"),
    pytest.param({"reason": "endpoint_missing: HTTP 404", "since": T0, "failures": 2}, None,
                 id="404-answers"),
    pytest.param({"reason": "retry: x", "since": "yesterday", "failures": 1}, None,
                 id="damaged-since"),
    pytest.param({"reason": "retry: x", "since": float("nan"), "failures": 1}, None,
                 id="nan-since"),
    pytest.param({"reason": "retry: x", "since": T0, "failures": 0}, None, id="no-failures"),
    pytest.param({"reason": None}, None, id="damaged-reason"),
    pytest.param(None, None, id="no-gate"),
])
def test_posts_failing_since(gate: dict[str, Any] | None, since: float | None) -> None:
    """Only a pause for network errors, timeouts and 5xx means the instance cannot be reached."""
    assert posts_failing_since(gate) == since


def test_failing_posts_open_the_thread_without_a_probe() -> None:
    """With no health probe, posts failing for ``after`` (outbox state) are enough."""
    failing = Signals(web_ok=None, posts_failing_since=T0 - 240.0)
    _, posts, reasons = run([failing] * 3 + [Signals()])
    assert [r[0] for r in reasons] == [Reason.WAITING, Reason.NOTICE, Reason.HELD,
                                       Reason.RESOLVED]
    assert "since 14:01 UTC" in posts[0][1].text


def test_the_earlier_signal_dates_the_outage() -> None:
    """Both signals: the outage began at the earlier of the two."""
    _, posts, _ = run([Signals(web_ok=False, posts_failing_since=T0 - 600.0)])
    assert "since 13:55 UTC" in posts[0][1].text


def incident(*components: str, severity: Severity = Severity.CRITICAL) -> Incident:
    return Incident(id="inc-1", opened_at=T0, affected=tuple(
        Affected(c, severity, T0, severity, "why", eta_s=120.0) for c in components))


def test_news_of_the_incident() -> None:
    """Impacts worst first, the website's own left out, no estimates, each sentence once."""
    news = news_of(incident("web", "queue:push", "queue:default", "memory", "swap"), SETTINGS)
    assert news == ("The server is short on memory; pages may be slow or fail.",
                    "Home timelines, notifications and some actions are delayed.",
                    "Your posts reach people on other servers late.")
    assert news_of(None, SETTINGS) == ()


def test_followups_are_sparing_and_fold_the_news() -> None:
    """Changes within the gap are folded into one follow-up; reminders are spaced and capped."""
    policy = Policy(update_gap=1800.0, reminder_every=7200.0, max_followups=3)
    one, two = ("Emails are late.",), ("Emails are late.", "Imports are slow.")
    ticks = ([Signals(web_ok=False, news=one)] * 6    # notice at 5 min, with news one
             + [Signals(web_ok=False, news=two)] * 3   # changed: held for the gap...
             + [Signals(web_ok=False, news=one)] * 10  # ...and changed back: nothing to tell
             + [Signals(web_ok=False, news=two)] * 27  # changed again: told at 35 min
             + [Signals(web_ok=False, news=one)] * 600 + [UP])  # 65 min, reminders, the cap
    _, posts, _ = run(ticks, policy=policy)
    kinds = [(at / 60, post.kind, post.key.rsplit(":", 2)[-2:]) for at, post in posts]
    assert kinds == [
        (5.0, PostKind.NOTICE, [str(int(T0)), "notice"]),
        (35.0, PostKind.UPDATE, ["update", "1"]),   # news two, 30 min after the notice
        (65.0, PostKind.UPDATE, ["update", "2"]),   # news one again, 30 min later
        (185.0, PostKind.UPDATE, ["update", "3"]),  # two hours of no change: a reminder
        (646.0, PostKind.RESOLUTION, [str(int(T0)), "resolution"]),  # the cap held the rest
    ]
    update = posts[1][1]
    assert update.text == ("example.social still cannot be reached (since 14:05 UTC, 35 min)."
                           "\nWhat members notice: Emails are late. Imports are slow."
                           "\nStatus: https://status.example.social")
    assert {p.parent_key for _, p in posts[1:]} == {posts[0][1].key}


def test_each_fallback_has_its_own_after_and_thread() -> None:
    """Two fallbacks: each speaks after its own ``after``; both resolve on the same tick."""
    quick, slow = Lane("fallback:a.example", after=60.0), Lane("fallback:b.example", 600.0)
    _, posts, _ = run([DOWN] * 12 + [UP], lanes=[quick, slow])
    assert [(at, p.destination, p.kind) for at, p in posts] == [
        (60.0, "fallback:a.example", PostKind.NOTICE),
        (600.0, "fallback:b.example", PostKind.NOTICE),
        (720.0, "fallback:a.example", PostKind.RESOLUTION),
        (720.0, "fallback:b.example", PostKind.RESOLUTION)]
    assert len({p.key for _, p in posts}) == 4


def test_a_new_outage_is_a_new_thread() -> None:
    """After a resolution, the next outage opens a thread of its own (new keys)."""
    _, posts, _ = run([DOWN] * 6 + [UP] * 2 + [DOWN] * 6 + [UP])
    keys = [p.key for _, p in posts]
    assert len(keys) == len(set(keys)) == 4
    assert posts[2][1].parent_key is None and posts[3][1].parent_key == posts[2][1].key


def test_a_removed_fallback_forgets_its_thread() -> None:
    """A thread of a fallback no longer configured is dropped, not posted to."""
    state, _, _ = run([DOWN] * 6)
    state, posts, decisions = step(state, UP, [], T0 + 600, SETTINGS)
    assert (posts, decisions, dict(state.threads)) == ([], [], {})


def test_texts_fit_the_fallback_server() -> None:
    """Long news and a long instance name are cut; the status link is kept whole."""
    settings = compose.Settings(instance="x" * 400 + ".example")
    news = tuple(f"Sentence {i} " + "word " * 40 for i in range(10))
    state = FallbackState()
    made: list[Post] = []
    for index in range(40):
        state, posts, _ = step(state, Signals(web_ok=False, news=news[: index % 10 + 1]),
                               [LANE], T0 + index * 3600.0, settings, page_url=PAGE)
        made += posts
    assert made
    for post in made:
        assert compose.mastodon_length(post.spoiler_text + post.text) <= 500
        assert post.text.endswith("Status: https://status.example.social")


@pytest.mark.parametrize("data", [
    pytest.param({"web_down_since": "noon"}, id="since-text"),
    pytest.param({"web_down_since": 1e300}, id="since-huge"),
    pytest.param({"web_down_since": True}, id="since-bool"),
    pytest.param({"threads": []}, id="threads-list"),
    pytest.param({"threads": {"fallback:a": 3}}, id="thread-number"),
    pytest.param({"threads": {"fallback:a": {"since": T0, "notice_key": 5, "last_at": T0}}},
                 id="key-number"),
    pytest.param({"threads": {"fallback:a": {"since": T0, "notice_key": "k", "last_at": T0,
                                             "followups": -1}}}, id="negative-count"),
    pytest.param({"threads": {"fallback:a": {"since": T0, "notice_key": "k", "last_at": T0,
                                             "news": [1]}}}, id="news-numbers"),
])
def test_damaged_state_is_an_error_not_a_guess(data: dict[str, Any]) -> None:
    """A damaged stored state raises ValueError naming what is wrong."""
    with pytest.raises(ValueError, match=r"\S"):
        FallbackState.from_json(data)


def test_state_round_trip() -> None:
    """What to_json writes, from_json reads back."""
    state = FallbackState(T0, {"fallback:a": Thread(T0, "k", T0 + 60, 2, ("a", "b"))})
    assert FallbackState.from_json(state.to_json()) == state



# --- the edge: a Bot built as `statusbot run` builds it, fake servers, an injected clock -----

FB = "fallback:backup.example"


class Clock:
    """The injected clock: every part of the bot reads it."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class Healthy:
    """A collector reading a healthy Sidekiq at the clock's time."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def collect(self) -> Snapshot:
        queue = QueueStats("default", 0, 0.0, False, True)
        sidekiq = SidekiqStats(
            processed=10, failed=0, processed_today=10, failed_today=0, scheduled=0,
            retries=0, dead=0, enqueued=0, queues=(queue,), processes=(),
            processes_registered=1, live_processes=1, stale_processes=0, busy=0,
            concurrency=5, utilisation=0.0, anomaly_count=0, anomalies=())
        return Snapshot(self.clock(), RedisStats("redis://127.0.0.1:6379/0", "", True),
                        sidekiq, None)


class Prober:
    """The instance's /health as the test says it is."""

    def __init__(self) -> None:
        self.web_ok = True

    def read(self) -> InstanceHealth:
        return InstanceHealth(self.web_ok, True, None if self.web_ok else "HTTP 502")


class World:
    """The instance and one fallback server (recording fakes), and a bot on a state file."""

    def __init__(self, tmp_path: Path, *, after: float = 300.0) -> None:
        self.tmp_path = tmp_path
        self.clock = Clock()
        self.home = RecordingGateway(clock=self.clock, idempotency_window=3600.0)
        self.away = RecordingGateway(clock=self.clock, idempotency_window=3600.0)
        self.prober = Prober()
        self.config = Config(
            bot=BotConfig(interval=60.0, state_dir=str(tmp_path / "state")),
            mastodon=MastodonConfig(api_base_url="https://example.social",
                                    access_token=Secret("main"), admins=("ops",),
                                    retry_after=30.0, retry_max=120.0),
            posts=PostsConfig(status_every=0.0, profile_field=False),
            reports=ReportsConfig(weekly=None, monthly=None, chart=False),
            page=PageConfig(url=PAGE),
            fallbacks=(FallbackConfig("https://backup.example", Secret("fb"), after=after),))
        self.bot = self.start()

    def start(self) -> Bot:
        """Build the bot (again, as after a restart) on the same state file."""
        bot = build(self.config, out=io.StringIO(), gateway=self.home, clock=self.clock,
                    fallback_gateways={FB: self.away})
        bot.collector = Healthy(self.clock)  # type: ignore[assignment]
        bot.prober = self.prober  # type: ignore[assignment]
        bot.adopter = None
        bot.history = None
        return bot

    def restart(self) -> None:
        self.bot.store.close()
        self.bot = self.start()

    def ticks(self, count: int, every: float = 60.0) -> None:
        for _ in range(count):
            self.bot.tick()
            self.clock.now += every

    def fallback_posts(self) -> list[tuple[str, str | None]]:
        """(kind, in_reply_to_id) of the statuses on the fallback server, in order."""
        return [(s.post.kind.value, s.in_reply_to_id) for s in self.away.statuses.values()]


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_the_fallback_speaks_only_while_the_instance_is_down(world: World) -> None:
    """Down (502, /health failing) for 10 min with a restart in it: one notice, one resolution.

    The instance's own thread waits and goes out once it is back; nothing is
    posted on the fallback before, or after.
    """
    world.ticks(5)
    assert world.away.statuses == {} and world.away.calls_to("post") == []
    world.prober.web_ok = False
    world.home.down = RetryableError("post: HTTP 502", status=502)
    world.ticks(4)
    assert world.away.statuses == {}  # 4 min: not yet
    world.ticks(3)
    assert world.fallback_posts() == [("notice", None)]
    world.restart()  # killed mid-outage: the thread state is in the file
    world.ticks(4)
    world.prober.web_ok = True
    world.home.down = None
    world.clock.now += 120.0  # past the instance outbox's backoff
    world.ticks(3)
    notice, resolution = world.away.statuses.values()
    assert world.fallback_posts() == [("notice", None), ("resolution", notice.id)]
    assert "cannot be reached since 14:10 UTC" in notice.post.text
    assert notice.post.text.endswith("Status: https://status.example.social")
    assert resolution.post.text.startswith("example.social can be reached again, after ")
    world.ticks(10)
    assert len(world.away.statuses) == 2
    home = [s.post.kind for s in world.home.statuses.values() if s.post.kind is not PostKind.ADMIN]
    assert home[0] is PostKind.NOTICE and home[-1] is PostKind.RESOLUTION  # the instance's own
    assert world.bot.fallbacks is not None and world.bot.fallbacks.pending() == {FB: 0}
    stored = world.bot.store.get_state(FALLBACK_STATE)
    assert stored is not None and stored["threads"] == {}


@pytest.mark.parametrize(("components", "notice_minute"), [
    pytest.param((), 20, id="whole-instance-window: notice only when it overruns"),
    pytest.param(("web",), 20, id="window-on-the-website"),
    pytest.param(("queue:*",), 5, id="window-on-queues-only-does-not-hold-it"),
])
def test_planned_downtime_opens_no_thread(world: World, components: tuple[str, ...],
                                          notice_minute: int) -> None:
    """A maintenance window or silence over the website holds the notice back.

    The downtime was announced; members on the fallback hear of it only when it
    outlasts its window (the outage is then dated from its real start).
    """
    start = world.clock.now
    world.bot.mutes = (Mute(start, start + 20 * 60, components, "maintenance"),)
    world.prober.web_ok = False
    world.home.down = RetryableError("post: HTTP 502", status=502)
    minutes: list[int] = []
    for minute in range(26):
        world.bot.tick()
        if world.away.statuses and not minutes:
            minutes.append(minute)
        world.clock.now += 60.0
    assert minutes == [notice_minute]
    (notice,) = world.away.statuses.values()
    assert notice.post.kind is PostKind.NOTICE
    assert f"since {datetime.fromtimestamp(start, timezone.utc):%H:%M} UTC" in notice.post.text


def test_planned_is_a_reason_to_wait_in_the_step() -> None:
    """Pure: ``planned`` keeps a lane waiting; an open thread goes on as before."""
    planned = Signals(web_ok=False, planned=True)
    _, posts, reasons = run([planned] * 10)
    assert posts == [] and {r for tick in reasons for r in tick} == {Reason.WAITING}
    state, posts, _ = run([DOWN] * 6)
    assert [p.kind for _, p in posts] == [PostKind.NOTICE]
    _, posts, _ = run([planned, UP], state=state, start=T0 + 3600)
    assert [p.kind for _, p in posts] == [PostKind.RESOLUTION]


def test_after_a_long_outage_the_instance_gets_its_catchup(world: World) -> None:
    """Down for 70 min: the fallback tells it in one thread; the instance sums it up once back."""
    world.prober.web_ok = False
    world.home.down = RetryableError("post: Connection refused")
    world.ticks(70)
    world.prober.web_ok = True
    world.home.down = None
    world.clock.now += 120.0
    world.ticks(5)
    notice, resolution = world.away.statuses.values()
    assert (notice.post.kind, resolution.post.kind, resolution.in_reply_to_id) == (
        PostKind.NOTICE, PostKind.RESOLUTION, notice.id)
    assert "after 1 h 1" in resolution.post.text
    home = [s.post for s in world.home.statuses.values()]
    assert [p.kind for p in home].count(PostKind.CATCHUP) == 1
    assert all(p.destination == "" for p in home)


@pytest.mark.parametrize("fault", [
    pytest.param(RetryableError("post: HTTP 503", status=503), id="503"),
    pytest.param(RetryableError("post: rate limited", status=429, retry_at=T0 + 1500.0),
                 id="429"),
])
def test_a_failing_fallback_holds_up_nothing(world: World, fault: Exception) -> None:
    """The fallback server failing: the instance's posts go out as usual; the notice waits."""
    world.prober.web_ok = False  # the website is down, the API still takes posts
    world.away.down = fault
    world.ticks(12)
    assert world.away.statuses == {}
    home = [s.post.kind for s in world.home.statuses.values()]
    assert PostKind.NOTICE in home and PostKind.ADMIN in home  # the instance's own incident
    world.away.down = None
    world.ticks(20)
    assert [k for k, _ in world.fallback_posts()] == ["notice"]
    items = world.bot.store.items()
    assert [i.key for i in items if i.post.destination == FB and i.state is ItemState.SENT] \
        == [f"{FB}:{int(T0)}:notice"]


def test_a_refused_fallback_token_is_told_once_and_loses_nothing(world: World) -> None:
    """A 401 at the start-up check: one admin message on the instance; the posts wait."""
    world.away.script("probe", PermanentError("verify_credentials: HTTP 401: invalid", status=401))
    world.away.down = None
    world.ticks(2)
    refusals = [s for s in world.home.statuses.values() if s.post.key.startswith(f"{FB}:refused")]
    assert len(refusals) == 1
    assert refusals[0].post.kind is PostKind.ADMIN and refusals[0].post.visibility == "direct"
    assert "backup.example refused its token" in refusals[0].post.text
    world.restart()
    world.away.down = PermanentError("post: HTTP 401: invalid", status=401)
    world.prober.web_ok = False
    world.ticks(10)  # the notice is due; the server refuses it
    assert len([s for s in world.home.statuses.values()
                if s.post.key.startswith(f"{FB}:refused")]) == 1  # told once, restart or not
    assert [i.state for i in world.bot.store.items() if i.post.destination == FB] == [
        ItemState.PENDING]
    world.away.down = None  # the admin fixed the token
    world.clock.now += 200.0
    world.ticks(2)
    assert [k for k, _ in world.fallback_posts()] == ["notice"]
    assert world.bot.store.get_state(REFUSED_STATE) == {}


def test_a_fallback_that_does_not_answer_is_checked_again_later(world: World) -> None:
    """No answer to the token check: a warning, and one more try 10 minutes later."""
    world.away.script("probe", RetryableError("connection refused"))
    world.ticks(5)
    assert len(world.away.calls_to("probe")) == 1
    world.ticks(6)
    assert len(world.away.calls_to("probe")) == 2
    world.ticks(20)
    assert len(world.away.calls_to("probe")) == 2 and world.home.statuses == {}


# --- check and config-check: the tokens, without posting -------------------------------------


class Server(BaseHTTPRequestHandler):
    """A fallback server that takes one token, refuses the others, and records requests."""

    seen: list[tuple[str, str]] = []  # noqa: RUF012 - shared by the handler's instances

    def do_GET(self) -> None:
        self.seen.append(("GET", self.path))
        good = self.headers.get("Authorization") == "Bearer good-token"
        if self.path != "/api/v1/accounts/verify_credentials":
            status, body = 404, {"error": "Record not found"}
        elif good:
            status, body = 200, {"id": "7", "username": "status", "acct": "status"}
        else:
            status, body = 401, {"error": "The access token is invalid"}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        self.seen.append(("POST", self.path))
        self.send_response(500)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fallback_server() -> Iterator[str]:
    Server.seen = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Server)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def fallback_file(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "statusbot.toml"
    path.write_text(f"""
[bot]
state_dir = "{tmp_path / 'state'}"

[redis]
url = "redis://127.0.0.1:1/0"
socket_timeout = 0.2

[mastodon]
api_base_url = "https://example.social"

[[fallback]]
api_base_url = "{url}"
access_token_env = "FB_TOKEN"
""")
    return path


@pytest.mark.parametrize(("token", "status", "line"), [
    pytest.param("good-token", 0, "fallback[0]: 127.0.0.1:{port} took the token", id="taken"),
    pytest.param("bad-token", 2, "fallback[0]: 127.0.0.1:{port} refused the token "
                 "(verify_credentials: HTTP 401: Unauthorized The access token is invalid)",
                 id="refused"),
])
def test_config_check_asks_the_fallback_server(
        tmp_path: Path, fallback_server: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], token: str, status: int, line: str) -> None:
    """config-check reads the fallback account (one GET, no post); a refusal exits 2."""
    monkeypatch.setenv("STATUSBOT_ACCESS_TOKEN", "main-token")
    monkeypatch.setenv("FB_TOKEN", token)
    path = fallback_file(tmp_path, fallback_server)
    assert cli.main(["config-check", str(path)]) == status
    out, err = capsys.readouterr()
    port = fallback_server.rsplit(":", 1)[1]
    assert f"{path}: {line.format(port=port)}" in (out + err).splitlines()
    assert token not in out + err and "main-token" not in out + err
    assert Server.seen == [("GET", "/api/v1/accounts/verify_credentials")]


def test_check_asks_the_fallback_server_too(
        tmp_path: Path, fallback_server: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """``statusbot check`` says whether the fallback takes its token; JSON stays clean."""
    monkeypatch.setenv("STATUSBOT_ACCESS_TOKEN", "main-token")
    monkeypatch.setenv("FB_TOKEN", "bad-token")
    path = fallback_file(tmp_path, fallback_server)
    assert cli.main(["check", "--json", "--config", str(path)]) == 1  # Redis is unreachable
    out, err = capsys.readouterr()
    json.loads(out)
    assert "refused the token" in err and "bad-token" not in out + err
    assert [m for m, _ in Server.seen] == ["GET"]


def test_config_check_with_a_silent_fallback_server_warns(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A fallback server that does not answer is a warning (checked again at run time)."""
    from bot.demo import free_port

    monkeypatch.setenv("STATUSBOT_ACCESS_TOKEN", "main-token")
    monkeypatch.setenv("FB_TOKEN", "good-token")
    path = fallback_file(tmp_path, f"http://127.0.0.1:{free_port()}")
    assert cli.main(["config-check", str(path)]) == 0
    _, err = capsys.readouterr()
    assert "fallback[0]: warning: 127.0.0.1:" in err and "did not answer" in err
