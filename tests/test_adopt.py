"""A lost state file: the pinned notice is picked up, never doubled (bot/adopt.py)."""

from __future__ import annotations

import io
import shutil
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from bot import adopt, compose, incidents
from bot.apidata import pinned_from_api
from bot.app import build
from bot.config import load_config
from bot.console import ConsoleGateway
from bot.gateway import Gateway, PinnedStatus, RetryableError
from bot.loop import Bot, heartbeat_problem
from bot.model import Post, PostKind
from bot.outbox import Outbox
from bot.store import ADOPT_STATE, Store
from bot.testing import RecordingGateway
from tests.test_loop import RULES, snapshot

T0 = 1_796_090_400.0  # 2026-12-01T02:00:00Z
SETTINGS = compose.Settings(instance="example.social", admin_accts=("alice",))


class Clocked:
    """Scripted snapshots; collecting one moves the shared clock to its time."""

    def __init__(self, latencies: Sequence[tuple[float, float]], now: list[float]) -> None:
        self.items = iter(latencies)
        self.now = now

    def collect(self):  # type: ignore[no-untyped-def]
        at, latency = next(self.items)
        self.now[0] = at
        return snapshot(at, latency)


def life(tmp_path: Path, gateway: RecordingGateway, ticks: Sequence[tuple[float, float]],
         *, for_s: float = 0) -> Bot:
    """Build the bot as `statusbot run` does (state in tmp_path/state) and run ``ticks``."""
    config = tmp_path / "c.toml"
    config.write_text(f"""
[bot]
interval = 30
state_dir = "{tmp_path / 'state'}"
[mastodon]
api_base_url = "https://example.social"
access_token_env = "T"
admins = ["alice"]
probe_health = false
[commands]
enabled = false
[posts]
status_every = 0
profile_field = false
[health.queue_latency.push]
warning = 60
critical = 300
for = {for_s}
clear = 10
clear_for = 0
""")
    now = [ticks[0][0]]
    bot = build(load_config(config, environ={"T": "token"}), out=io.StringIO(),
                gateway=gateway, clock=lambda: now[0])
    bot.collector = Clocked(ticks, now)  # type: ignore[assignment]
    bot.reports = None
    bot.heartbeat = tmp_path / "state" / "last-tick"
    try:
        bot.run(0.0, threading.Event(), max_ticks=len(ticks))
    finally:
        bot.store.close()
    return bot


def top_level(gateway: RecordingGateway) -> list[str]:
    return [s.id for s in gateway.statuses.values()
            if s.post.visibility == "public" and s.in_reply_to_id is None]


def replies_to(gateway: RecordingGateway, status_id: str) -> list[str]:
    return [s.post.text for s in gateway.statuses.values() if s.in_reply_to_id == status_id]


BROKEN = 400.0


@pytest.mark.parametrize(
    ("for_s", "second", "adopted_reply"),
    [
        pytest.param(0, [(T0 + 600, BROKEN), (T0 + 630, 0.0)], False, id="still-broken"),
        pytest.param(0, [(T0 + 600, 0.0), (T0 + 630, 0.0)], True, id="fixed-meanwhile"),
        pytest.param(60, [(T0 + 600, BROKEN), (T0 + 661, BROKEN), (T0 + 700, 0.0)], False,
                     id="on-its-way-then-fires"),
        pytest.param(60, [(T0 + 600, BROKEN), (T0 + 630, 0.0), (T0 + 660, 0.0)], True,
                     id="on-its-way-then-clears"),
    ],
)
def test_lost_state_file_continues_the_pinned_thread(
        tmp_path: Path, for_s: float, second: list[tuple[float, float]],
        adopted_reply: bool) -> None:
    """State dir deleted during an incident: no second notice; the pinned one is closed once."""
    gateway = RecordingGateway()
    first = [(T0, BROKEN), (T0 + 61, BROKEN)]
    life(tmp_path, gateway, first, for_s=for_s)
    [notice] = top_level(gateway)
    assert gateway.pinned == [notice]
    shutil.rmtree(tmp_path / "state")
    life(tmp_path, gateway, second, for_s=for_s)
    assert top_level(gateway) == [notice], "a second incident notice was posted"
    replies = replies_to(gateway, notice)
    closing = [t for t in replies if t.startswith("Resolved")]
    assert len(closing) == 1, replies
    assert closing[0].startswith("Resolved: example.social works") is adopted_reply
    assert gateway.pinned == []
    admin = [s.post.text for s in gateway.statuses.values() if s.post.kind is PostKind.ADMIN]
    assert sum("found its pinned notice" in t for t in admin) == 1, admin
    asked = len(gateway.calls_to("pinned_statuses"))
    life(tmp_path, gateway, [(T0 + 900, 0.0)], for_s=for_s)  # a plain restart: nothing more
    assert len(gateway.calls_to("pinned_statuses")) == asked
    assert replies_to(gateway, notice) == replies


def test_listing_fails_then_works_holds_the_new_notice(tmp_path: Path) -> None:
    """While the pins cannot be read and an incident is open, its notice waits."""
    gateway = RecordingGateway()
    life(tmp_path, gateway, [(T0, BROKEN)])
    [notice] = top_level(gateway)
    shutil.rmtree(tmp_path / "state")
    gateway.script("pinned_statuses", RetryableError("timeout"))
    life(tmp_path, gateway, [(T0 + 600, BROKEN), (T0 + 630, BROKEN), (T0 + 660, 0.0)])
    assert top_level(gateway) == [notice]
    assert any(t.startswith("Resolved after") for t in replies_to(gateway, notice))
    assert gateway.pinned == []


def test_a_hand_pinned_post_is_left_alone(tmp_path: Path) -> None:
    """A post an admin pinned by hand is neither answered nor unpinned."""
    gateway = RecordingGateway()
    intro = Post(key="intro", kind=PostKind.STATUS, text="Hi, I am the status bot.",
                         visibility="public", created_at=T0)
    intro_id = gateway.post(intro, None)
    gateway.pin(intro_id)
    life(tmp_path, gateway, [(T0, 0.0), (T0 + 30, 0.0)])
    assert gateway.pinned == [intro_id] and replies_to(gateway, intro_id) == []
    with Store(tmp_path / "state" / "statusbot.sqlite3") as store:
        assert store.get_state(ADOPT_STATE) is None


def test_state_file_deleted_while_running(tmp_path: Path) -> None:
    """Deleted under the running bot: logged, admins told once, heartbeat unhealthy."""
    gateway = RecordingGateway()
    now = [T0]
    config_dir = tmp_path / "state"
    store = Store(config_dir / "statusbot.sqlite3")
    bot = Bot(collector=Clocked([(T0, 0.0), (T0 + 30, 0.0), (T0 + 60, 0.0)], now),  # type: ignore[arg-type]
              store=store, outbox=Outbox(store, gateway, clock=lambda: now[0]),
              gateway=gateway, settings=SETTINGS, rules=RULES, policy=incidents.Policy(),
              heartbeat=config_dir / "last-tick", clock=lambda: now[0])
    bot.run(0.0, threading.Event(), max_ticks=1)
    assert heartbeat_problem(config_dir / "last-tick") is None
    shutil.rmtree(config_dir)
    bot.run(0.0, threading.Event(), max_ticks=2)
    admin = [s.post.text for s in gateway.statuses.values() if s.post.kind is PostKind.ADMIN]
    assert len(admin) == 1 and "was deleted" in admin[0], admin
    assert "was deleted" in (heartbeat_problem(config_dir / "last-tick") or "")
    store.close()


def pinned(status_id: str = "7", *, cw: str = "Service notice: disruption",
           visibility: str = "public", reply: str | None = None) -> PinnedStatus:
    return PinnedStatus(status_id, T0, visibility, cw, "Since 02:00 UTC, parts of …", reply)


@pytest.mark.parametrize(
    ("status", "notice"),
    [
        pytest.param(pinned(), True, id="critical-notice"),
        pytest.param(pinned(cw="Service notice: some delays"), True, id="warning-notice"),
        pytest.param(pinned(cw="  Service notice:\nsome delays "), True, id="spaces"),
        pytest.param(pinned(cw=""), False, id="no-cw"),
        pytest.param(pinned(cw="Service notice: resolved"), False, id="resolution-cw"),
        pytest.param(pinned(reply="5"), False, id="a-reply"),
        pytest.param(pinned(visibility="direct"), False, id="direct"),
        pytest.param(pinned(cw="@alice Service notice: disruption"), False, id="injected"),
    ],
)
def test_is_notice(status: PinnedStatus, notice: bool) -> None:
    """Only top-level member posts with a notice CW are the bot's notices."""
    assert adopt.is_notice(status, SETTINGS) is notice


@pytest.mark.parametrize(
    ("orphans", "key", "open_", "quiet", "waited", "attach", "close", "wait"),
    [
        pytest.param([], "inc-9:0", True, False, 0.0, None, [], False, id="nothing-pinned"),
        pytest.param([pinned("7"), pinned("12")], "inc-9:0", True, False, 0.0, "12", ["7"],
                     False, id="unsent-notice-newest-attached"),
        pytest.param([pinned("7")], "inc-9:0", False, True, 0.0, "7", [], False,
                     id="resolved-meanwhile-still-attached"),
        pytest.param([pinned("7")], None, True, False, 0.0, None, ["7"], False,
                     id="open-with-its-own-notice"),
        pytest.param([pinned("7"), pinned("12")], None, False, True, 0.0, None, ["12", "7"],
                     False, id="quiet-all-closed"),
        pytest.param([pinned("7")], None, False, False, 10.0, None, [], True,
                     id="on-its-way-waits"),
        pytest.param([pinned("7")], None, False, False, adopt.ADOPT_WAIT, None, ["7"], False,
                     id="waited-long-enough"),
        pytest.param([pinned("99999999999999999999"), pinned("100000000000000000000")],
                     "inc-9:0", True, False, 0.0, "100000000000000000000",
                     ["99999999999999999999"], False, id="bigint-ids"),
    ],
)
def test_plan(orphans: list[PinnedStatus], key: str | None, open_: bool, quiet: bool,
              waited: float, attach: str | None, close: list[str], wait: bool) -> None:
    """Attach the newest to an unsent notice, close the rest; wait while something brews."""
    chosen = adopt.plan(orphans, key, open_, quiet, waited)
    assert (chosen.attach.id if chosen.attach else None, [s.id for s in chosen.close],
            chosen.wait) == (attach, close, wait)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param({"id": "12", "visibility": "public", "spoiler_text": "CW",
                      "content": "<p>a &amp; b<br>c</p>", "in_reply_to_id": None,
                      "created_at": "2026-12-01T02:00:00.000Z"},
                     PinnedStatus("12", T0, "public", "CW", "a & b c"), id="api-json"),
        pytest.param({"id": 12, "content": None}, PinnedStatus("12", 0.0, "", "", ""),
                     id="int-id-nulls"),
        pytest.param({"id": "x1"}, None, id="junk-id"),
        pytest.param(["not", "a", "status"], None, id="not-a-mapping"),
        pytest.param({"id": "3", "content": "x" * 100_000}, PinnedStatus(
            "3", 0.0, "", "", "x" * 5000), id="huge"),
    ],
)
def test_pinned_from_api(raw: object, expected: PinnedStatus | None) -> None:
    """API statuses are read defensively: junk is dropped, text is plain and bounded."""
    assert pinned_from_api(raw) == expected


@pytest.mark.parametrize("make", [
    pytest.param(lambda: ConsoleGateway(io.StringIO()), id="console"),
    pytest.param(RecordingGateway, id="recording"),
])
def test_gateways_list_what_is_pinned(make: Callable[[], Gateway]) -> None:
    """pinned_statuses lists the pinned statuses only, with their CW and text."""
    gateway = make()
    notice = Post(key="inc-1:0", kind=PostKind.NOTICE, text="Since 02:00 …",
                  visibility="public", created_at=T0, spoiler_text="Service notice: disruption")
    other = Post(key="status:x", kind=PostKind.STATUS, text="All normal", visibility="public",
                 created_at=T0)
    first, second = gateway.post(notice, None), gateway.post(other, None)
    gateway.pin(first)
    gateway.pin(second)
    gateway.unpin(second)
    assert gateway.pinned_statuses() == [
        PinnedStatus(first, T0, "public", "Service notice: disruption", "Since 02:00 …")]
