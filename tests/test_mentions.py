"""Mention intake with the RecordingGateway: exactly once, cursor, limits, errors, schema v2."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from bot import defaults
from bot.apidata import mention_from_notification, page_mentions
from bot.console import ConsoleGateway
from bot.gateway import Mention, MentionedAccount, PermanentError, RetryableError, id_order
from bot.mastodon_api import _mention_listener
from bot.mentions import (
    Backfill,
    Handled,
    Intake,
    Limit,
    Outcome,
    PolicyResult,
    ReplyLimiter,
    Result,
    Source,
    StreamState,
    TokenBucket,
    ensure_notification_policy,
    format_audit,
    generic_error_reply,
    reply_key,
    reply_parent,
    reply_visibility,
)
from bot.model import Post, PostKind
from bot.outbox import backoff_delay
from bot.store import SCHEMA_VERSION, AuditEntry, Store
from bot.testing import RecordingGateway

T0 = 1_780_000_000.0


class Clock:
    """A settable clock."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def answer(mention: Mention) -> list[Post]:
    """The test handler: one reply per mention, as the commands handler would."""
    return [Post(key=reply_key(mention), kind=PostKind.REPLY,
                 text=f"@{mention.acct} ok", visibility=reply_visibility(mention.visibility),
                 created_at=mention.created_at, parent_key=reply_parent(mention))]


class Recorder:
    """A handler that records the notification ids it saw and can be told to fail."""

    def __init__(self, fail_on: frozenset[str] = frozenset()) -> None:
        self.seen: list[str] = []
        self.fail_on = fail_on

    def __call__(self, mention: Mention) -> list[Post]:
        self.seen.append(mention.notification_id)
        if mention.notification_id in self.fail_on or "boom" in mention.content:
            raise ValueError("handler bug")
        return answer(mention)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def gateway(clock: Clock) -> RecordingGateway:
    return RecordingGateway(clock=clock)


@pytest.fixture
def store() -> Iterator[Store]:
    s = Store(":memory:")
    yield s
    s.close()


def make_intake(store: Store, gateway: RecordingGateway, clock: Clock,
                handler: Any = answer, **kwargs: Any) -> Intake:
    return Intake(store, gateway, handler, clock=clock, **kwargs)


def replies(store: Store) -> list[str]:
    """Keys of the replies in the outbox, in order."""
    return [item.key for item in store.items() if item.post.kind is PostKind.REPLY]


def mention_json(notification_id: Any = "20", *, type_: str = "mention",
                 status: Any = "default", account: Any = "default") -> dict[str, Any]:
    author = {"id": "7", "username": "alice", "acct": "alice@elsewhere.example", "bot": False}
    return {
        "id": notification_id,
        "type": type_,
        "created_at": "2026-01-01T00:00:00.000Z",
        "account": author if account == "default" else account,
        "status": {
            "id": "110", "visibility": "direct", "spoiler_text": "",
            "content": '<p><span class="h-card"><a class="u-url mention">@<span>statusbot'
                       "</span></a></span> status</p>",
            "in_reply_to_id": None, "created_at": datetime(2026, 1, 1, tzinfo=timezone.utc),
            "mentions": [{"id": "1", "acct": "statusbot"}],
        } if status == "default" else status,
    }


# --- parsing ----------------------------------------------------------------------------


def test_mention_from_notification_reads_every_field() -> None:
    """A mention notification becomes a Mention with ids as text and an epoch time."""
    assert mention_from_notification(mention_json()) == Mention(
        notification_id="20", status_id="110", account_id="7", acct="alice@elsewhere.example",
        bot=False, visibility="direct",
        content='<p><span class="h-card"><a class="u-url mention">@<span>statusbot'
                "</span></a></span> status</p>",
        spoiler_text="", mentions=(MentionedAccount("1", "statusbot"),),
        created_at=datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp(), in_reply_to_id=None)


@pytest.mark.parametrize("notification", [
    pytest.param(mention_json(type_="favourite"), id="not-a-mention"),
    pytest.param(mention_json(status=None), id="status-deleted"),
    pytest.param(mention_json(account=None, status={"id": "1"}), id="no-author"),
    pytest.param({"type": "mention"}, id="empty"),
])
def test_unusable_notifications_are_none(notification: dict[str, Any]) -> None:
    """Anything but a mention with a status and an author is skipped."""
    assert mention_from_notification(notification) is None


def test_integer_ids_and_text_times_are_read() -> None:
    """Ids may come as ints; a created_at may be ISO text."""
    data = mention_json(20)
    data["status"] = {**data["status"], "id": 110, "created_at": "2026-01-01T00:00:10Z"}
    mention = mention_from_notification(data)
    assert mention is not None
    assert (mention.notification_id, mention.status_id, mention.created_at) == (
        "20", "110", datetime(2026, 1, 1, 0, 0, 10, tzinfo=timezone.utc).timestamp())


@pytest.mark.parametrize(("value", "expected"), [
    pytest.param("9", 9, id="small"),
    pytest.param("10", 10, id="ten-after-nine"),
    pytest.param("9007199254740993", 9007199254740993, id="beyond-float"),
    pytest.param(None, -1, id="none"),
    pytest.param("abc", -1, id="junk"),
])
def test_id_order(value: str | None, expected: int) -> None:
    """Ids order as exact integers."""
    assert id_order(value) == expected


def test_paging_stops_when_the_server_ignores_min_id() -> None:
    """A server that answers every page with the same items does not make us loop."""
    calls: list[str | None] = []

    def fetch(min_id: str | None, limit: int) -> list[tuple[str, Mention | None]]:
        calls.append(min_id)
        return [("5", None), ("4", None)]

    assert page_mentions(fetch, None, 40, None) == []
    assert calls == [None, "5"]


def test_paging_goes_past_unusable_notifications(gateway: RecordingGateway) -> None:
    """Pages continue after the highest id, even when a page held nothing usable."""
    pages: dict[str | None, list[tuple[str, Mention | None]]] = {
        None: [("3", None)], "3": [("4", gateway.mention("a", "x", deliver=False))], "4": []}
    got = page_mentions(lambda m, n: pages[m], None, 40, None)
    assert [m.notification_id for m in got] == [gateway.inbox[0].notification_id]


def test_fake_pages_oldest_first_with_min_id(gateway: RecordingGateway) -> None:
    """mentions_since pages through min_id like Mastodon, and returns oldest first."""
    gateway.page_size = 2
    made = [gateway.mention("alice", f"m{i}", deliver=False) for i in range(5)]
    got = gateway.mentions_since(made[0].notification_id, 40)
    assert [m.notification_id for m in got] == [m.notification_id for m in made[1:]]
    assert [c.args[0] for c in gateway.calls_to("notifications")] == [
        made[0].notification_id, made[2].notification_id, made[4].notification_id]


# --- the stream listener (Mastodon.py) ------------------------------------------------


class FakeResponse:
    """What Mastodon.py reads an SSE connection from."""

    status_code = 200

    def __init__(self, body: bytes) -> None:
        self.body = body

    def iter_content(self, chunk_size: int = 1) -> Iterator[bytes]:
        for i in range(0, len(self.body), chunk_size):
            yield self.body[i:i + chunk_size]

    def close(self) -> None:
        pass


def sse(name: str, data: str) -> bytes:
    return f"event: {name}\ndata: {data}\n\n".encode()


def test_listener_never_lets_a_callback_raise(caplog: pytest.LogCaptureFixture) -> None:
    """A raising callback is logged; the next events are still handed on."""
    import json

    got: list[str] = []
    connects: list[int] = []

    def on_mention(mention: Mention) -> None:
        got.append(mention.notification_id)
        if mention.notification_id == "20":
            raise RuntimeError("handler bug")

    def on_reconnect() -> None:
        connects.append(1)
        raise RuntimeError("reconnect bug")

    listener: Any = _mention_listener(on_mention, on_reconnect)
    first = json.dumps(mention_json("20"), default=str)
    second = json.dumps(mention_json("21"), default=str)
    body = (b":connected\n\n" + sse("notification", first) + sse("update", "{}")
            + sse("notification", json.dumps(mention_json("22", type_="follow"), default=str))
            + sse("notification", second))
    with caplog.at_level(logging.ERROR, logger="bot.gateway"):
        listener.handle_stream(FakeResponse(body))
    assert (got, connects) == (["20", "21"], [1])
    assert "on_mention raised" in caplog.text and "on_reconnect raised" in caplog.text


# --- store: schema v2, claims, cursor, audit ---------------------------------------------


def test_schema_v1_file_is_migrated_and_keeps_its_data(tmp_path: Path) -> None:
    """A version 1 file gains the notifications and audit tables; outbox and state survive."""
    path = tmp_path / "state.sqlite3"
    with Store(path) as old:
        old.enqueue([Post(key="n1", kind=PostKind.NOTICE, text="queues are slow",
                          visibility="public", created_at=T0)])
        old.put_state("incidents", {"open": "i1"})
    with sqlite3.connect(path) as db:  # make it exactly what statusbot 0.1 wrote
        db.execute("DROP TABLE notifications")
        db.execute("DROP TABLE audit")
        db.execute("UPDATE schema_version SET version = 1")
    with Store(path) as new:
        assert [i.post.text for i in new.items()] == ["queues are slow"]
        assert new.get_state("incidents") == {"open": "i1"}
        assert new.claim("5", at=T0, result="answered")
        assert new.add_audit(AuditEntry(T0, "1", "ops", "silence", "2h", "ok")) == 1
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    assert SCHEMA_VERSION >= 2


def test_claim_and_enqueue_is_all_or_nothing(store: Store) -> None:
    """The first claim writes the reply, audit and state; a second writes nothing."""
    post = Post(key="reply:5", kind=PostKind.REPLY, text="@ops ok", visibility="direct",
                created_at=T0, parent_key="status:9")
    entry = AuditEntry(T0, "1", "ops", "ack", "", "ok", "5")
    assert store.claim_and_enqueue("5", [post], at=T0, result="answered", account_id="1",
                                   audit=[entry], states={"silence": {"until": 1.0}})
    again = Post(key="reply:5-bis", kind=PostKind.REPLY, text="@ops again",
                 visibility="direct", created_at=T0)
    assert not store.claim_and_enqueue("5", [again], at=T0 + 1, result="answered",
                                       audit=[entry], states={"silence": {"until": 2.0}})
    handled = store.handled("5")
    assert handled is not None
    assert (handled.result, handled.replies, handled.account_id) == ("answered", 1, "1")
    assert [i.key for i in store.items()] == ["reply:5"]
    assert [(a.command, a.notification_id) for a in store.audit()] == [("ack", "5")]
    assert store.get_state("silence") == {"until": 1.0}


def test_failed_claim_transaction_leaves_nothing(store: Store) -> None:
    """A claim whose transaction fails leaves the mention unclaimed and nothing queued."""
    bad = Post(key="reply:6", kind=PostKind.REPLY, text="x", visibility="direct",
               created_at=T0)
    with pytest.raises(TypeError):
        store.claim_and_enqueue("6", [bad], at=T0, result="answered",
                                states={"x": {"not json": object()}})
    assert not store.is_handled("6")
    assert store.items() == []


@pytest.mark.parametrize(("steps", "expected"), [
    pytest.param(["9", "10"], "10", id="ten-after-nine"),
    pytest.param(["10", "9"], "10", id="never-back"),
    pytest.param(["9007199254740993", "9007199254740992"], "9007199254740993", id="bigint"),
    pytest.param(["5", "5"], "5", id="same"),
])
def test_cursor_only_moves_forward(store: Store, steps: list[str], expected: str) -> None:
    """The cursor compares ids as integers and never moves backwards."""
    for step in steps:
        store.advance_mentions_cursor(step)
    assert store.mentions_cursor() == expected


def test_cursor_refuses_junk(store: Store) -> None:
    """Only decimal ids can be a cursor."""
    with pytest.raises(ValueError, match="not a notification id"):
        store.advance_mentions_cursor("abc")


def test_audit_lists_the_newest_oldest_first(store: Store) -> None:
    """audit(limit) returns the last entries in the order they happened."""
    for i in range(5):
        store.add_audit(AuditEntry(T0 + i, "1", "ops", f"cmd{i}", "", "ok"))
    assert [e.command for e in store.audit(3)] == ["cmd2", "cmd3", "cmd4"]
    assert [e.seq for e in store.audit(3)] == [3, 4, 5]


def test_format_audit_says_who_what_when_result() -> None:
    """One line per entry: sequence, UTC time, acct and id, command, result."""
    text = format_audit([AuditEntry(T0, "109", "ops", "silence", "queue:push 2h", "ok",
                                    seq=7)])
    assert text == "     7  2026-05-28 20:26:40 UTC  @ops (109)  silence queue:push 2h  -> ok"


def test_prune_notifications(store: Store) -> None:
    """Old claims are forgotten, recent ones kept."""
    store.claim("1", at=T0, result="answered")
    store.claim("2", at=T0 + 100, result="answered")
    assert store.prune_notifications(T0 + 50) == 1
    assert (store.is_handled("1"), store.is_handled("2")) == (False, True)


# --- limits (pure) ---------------------------------------------------------------------


@pytest.mark.parametrize(("takes", "at", "level"), [
    pytest.param([], T0, 5.0, id="starts-full"),
    pytest.param([T0] * 5, T0, 0.0, id="emptied"),
    pytest.param([T0] * 5, T0 + 120, 1.0, id="refills-one-per-120s"),
    pytest.param([T0] * 5, T0 + 6000, 5.0, id="never-above-capacity"),
    pytest.param([T0 + 10], T0, 4.0, id="time-going-back-refills-nothing"),
])
def test_token_bucket(takes: list[float], at: float, level: float) -> None:
    """5 tokens per 600 s refill evenly and cap at 5."""
    bucket = TokenBucket(5, 600.0)
    for when in takes:
        bucket.take(when)
    assert bucket.level(at) == pytest.approx(level)


def test_token_bucket_ready_at() -> None:
    """An empty bucket has a token again after window / capacity."""
    bucket = TokenBucket(100, 900.0)
    bucket.take(T0, 100)
    assert bucket.ready_at(T0) == pytest.approx(T0 + 9)
    assert bucket.ready_at(T0 + 9) == T0 + 9


@pytest.mark.parametrize(("replies", "check", "expected"), [
    pytest.param([("a", T0)] * 4, ("a", T0), Limit.ALLOWED, id="fifth-allowed"),
    pytest.param([("a", T0)] * 5, ("a", T0), Limit.ACCOUNT, id="sixth-refused"),
    pytest.param([("a", T0)] * 5, ("b", T0), Limit.ALLOWED, id="other-account-unaffected"),
    pytest.param([("a", T0)] * 5, ("a", T0 + 119), Limit.ACCOUNT, id="not-yet-refilled"),
    pytest.param([("a", T0)] * 5, ("a", T0 + 120), Limit.ALLOWED, id="refilled-after-120s"),
    pytest.param([(f"x{i}", T0) for i in range(8)], ("new", T0), Limit.GLOBAL,
                 id="global-cap"),
    pytest.param([(f"x{i}", T0) for i in range(8)], ("new", T0 + 450), Limit.ALLOWED,
                 id="global-refills"),
])
def test_reply_limiter(replies: list[tuple[str, float]], check: tuple[str, float],
                       expected: Limit) -> None:
    """5 per account per 10 min, 8 per hour overall (test setting)."""
    limiter = ReplyLimiter(per_account=5, account_window=600.0, total=8, total_window=3600.0)
    for account, at in replies:
        limiter.record(account, at)
    assert limiter.check(*check) is expected


def test_reply_limiter_state_is_bounded() -> None:
    """A flood of distinct accounts keeps at most max_accounts buckets; idle ones go first."""
    limiter = ReplyLimiter(per_account=2, account_window=60.0, total=10**6, max_accounts=100)
    limiter.record("busy", T0 + 1000, 2)
    for i in range(1000):
        limiter.record(f"a{i}", T0 + i)
    assert len(limiter) <= 100
    assert limiter.check("busy", T0 + 1000) is Limit.ACCOUNT


def test_backoff_delay() -> None:
    """Doubling from the base, capped."""
    assert [backoff_delay(n, 5.0, 30.0) for n in range(6)] == [0.0, 5.0, 10.0, 20.0, 30.0, 30.0]


# --- the intake: exactly once -------------------------------------------------------------


def test_stream_mention_is_answered_once(store: Store, gateway: RecordingGateway,
                                         clock: Clock) -> None:
    """A streamed mention is claimed and its reply queued as a reply to the status."""
    intake = make_intake(store, gateway, clock)
    intake.start()
    first = intake.drain()
    assert (first.backfill, first.stream, first.handled) == (
        Backfill.RAN, StreamState.RECEIVING, ())
    mention = gateway.mention("ops", "status", visibility="direct")
    report = intake.drain()
    assert report.handled == (Handled(mention.notification_id, "ops", Source.STREAM,
                                      Result.ANSWERED, "", 1),)
    [item] = store.items()
    assert (item.post.parent_key, item.post.visibility) == (
        f"status:{mention.status_id}", "direct")
    assert store.mentions_cursor() is None  # the stream never moves the cursor


def test_overlap_of_stream_and_backfill_is_handled_once(store: Store, gateway: RecordingGateway,
                                                       clock: Clock) -> None:
    """The same notification from the stream and from the backfill is handled once."""
    handler = Recorder()
    intake = make_intake(store, gateway, clock, handler)
    intake.start()
    intake.drain()
    mention = gateway.mention("alice", "status")  # queued from the stream
    assert gateway.stream is not None
    gateway.stream.reconnect()  # makes a backfill due in the same drain
    report = intake.drain()
    assert (handler.seen, report.duplicates, [h.source for h in report.handled]) == (
        [mention.notification_id], 1, [Source.BACKFILL])
    assert store.mentions_cursor() == mention.notification_id
    assert replies(store) == [reply_key(mention)]


def test_cut_stream_is_backfilled_on_reconnect(store: Store, gateway: RecordingGateway,
                                              clock: Clock) -> None:
    """Mentions sent while the stream was cut come from the backfill after reconnecting."""
    intake = make_intake(store, gateway, clock)
    intake.start()
    intake.drain()
    stream = gateway.stream
    assert stream is not None
    before = gateway.mention("alice", "one")
    intake.drain()
    stream.cut()
    lost = [gateway.mention("alice", f"lost {i}") for i in range(3)]
    assert stream.delivered == [before.notification_id]
    quiet = intake.drain()
    assert (quiet.handled, quiet.backfill, quiet.stream) == ((), Backfill.NOT_DUE,
                                                             StreamState.CONNECTING)
    stream.reconnect()
    after = intake.drain()
    assert [(h.notification_id, h.source) for h in after.handled] == [
        (m.notification_id, Source.BACKFILL) for m in lost]
    assert replies(store) == [reply_key(m) for m in [before, *lost]]


def test_higher_stream_id_does_not_hide_a_missed_lower_one(
        store: Store, gateway: RecordingGateway, clock: Clock) -> None:
    """A mention missed while cut is still found after a later one came over the stream."""
    intake = make_intake(store, gateway, clock)
    intake.start()
    intake.drain()
    stream = gateway.stream
    assert stream is not None
    stream.cut()
    missed = gateway.mention("alice", "missed")
    stream.connected = True  # back without Mastodon.py telling us (no on_reconnect)
    seen = gateway.mention("alice", "seen")
    assert [h.notification_id for h in intake.drain().handled] == [seen.notification_id]
    clock.advance(300)  # the timer's backfill
    report = intake.drain()
    assert [h.notification_id for h in report.handled] == [missed.notification_id]
    assert store.mentions_cursor() == seen.notification_id


def test_restart_handles_each_mention_once(tmp_path: Path, gateway: RecordingGateway,
                                           clock: Clock) -> None:
    """A new Intake and Store on the same file answer only what was not answered."""
    path = tmp_path / "state.sqlite3"
    handled: list[str] = []
    store = Store(path)
    intake = make_intake(store, gateway, clock)
    intake.start()
    intake.drain()
    early = [gateway.mention("alice", f"early {i}") for i in range(3)]
    handled += [h.notification_id for h in intake.drain().handled]
    intake.close()
    store.close()
    while_down = [gateway.mention("bob", f"down {i}") for i in range(2)]
    clock.advance(60)
    store = Store(path)
    intake = make_intake(store, gateway, clock)
    intake.start()
    report = intake.drain()
    handled += [h.notification_id for h in report.handled]
    late = gateway.mention("carol", "late")
    handled += [h.notification_id for h in intake.drain().handled]
    everything = [m.notification_id for m in [*early, *while_down, late]]
    assert handled == everything
    assert replies(store) == [f"reply:{n}" for n in everything]
    # No backfill had found a mention yet, so the cursor was unset: the restart's
    # backfill read the newest page again and skipped the early ones as handled.
    assert report.duplicates == 3
    store.close()


@pytest.mark.parametrize(("ages", "stream"), [
    pytest.param([1200.0], False, id="admin-incident-20-min-old"),
    pytest.param([3000.0, 1200.0, 60.0, 1.0], True, id="last-hour-with-stream"),
    pytest.param([7200.0, 30.0], False, id="older-and-newer-than-max-age"),
    pytest.param([], True, id="never-mentioned"),
])
def test_fresh_state_acts_on_no_earlier_mention(store: Store, gateway: RecordingGateway,
                                                clock: Clock, ages: list[float],
                                                stream: bool) -> None:
    """A fresh state starts its cursor at the newest mention: none before runs, a new one does."""
    old = [gateway.mention("ops", "incident Uploads fail", created_at=T0 - age, deliver=False)
           for age in ages]
    handler = Recorder()
    intake = make_intake(store, gateway, clock, handler, stream=stream)
    intake.start()
    first = intake.drain()
    clock.advance(300)
    second = intake.drain()
    assert (handler.seen, store.items(), first.handled, second.handled) == ([], [], (), ())
    assert store.mentions_cursor() == (old[-1].notification_id if old else None)
    new = gateway.mention("ops", "status", deliver=stream)
    clock.advance(0 if stream else 300)
    report = intake.drain()
    assert [(h.notification_id, h.result) for h in report.handled] == [
        (new.notification_id, Result.ANSWERED)]
    assert handler.seen == [new.notification_id]


def test_fresh_state_unreachable_at_start_acts_on_mentions_made_since(
        store: Store, gateway: RecordingGateway, clock: Clock) -> None:
    """When the first look fails, mentions made after the start still run; older ones do not."""
    old = gateway.mention("ops", "incident Uploads fail", created_at=T0 - 600, deliver=False)
    gateway.script("notifications", RetryableError("HTTP 503", status=503))
    handler = Recorder()
    intake = make_intake(store, gateway, clock, handler, stream=False)
    intake.start()
    clock.advance(60)
    since = gateway.mention("ops", "status", deliver=False)
    clock.advance(60)
    report = intake.drain()
    assert [(h.notification_id, h.result) for h in report.handled] == [
        (since.notification_id, Result.ANSWERED)]
    assert handler.seen == [since.notification_id]
    assert store.mentions_cursor() == since.notification_id != old.notification_id


def test_bots_are_not_answered(store: Store, gateway: RecordingGateway, clock: Clock) -> None:
    """A mention from a bot account is claimed as ignored, without a reply."""
    intake = make_intake(store, gateway, clock, stream=False)
    gateway.mention("otherbot", "help", bot=True)
    [handled] = intake.drain().handled
    assert (handled.result, handled.replies, store.items()) == (Result.IGNORED_BOT, 0, [])


# --- the intake: errors, limits, budget ----------------------------------------------------


def test_handler_error_is_claimed_and_answered_generically(
        store: Store, gateway: RecordingGateway, clock: Clock,
        caplog: pytest.LogCaptureFixture) -> None:
    """A handler bug is logged with its traceback, answered once, never retried."""
    handler = Recorder()
    intake = make_intake(store, gateway, clock, handler)
    intake.start()
    intake.drain()
    bad = gateway.mention("ops", "boom", visibility="public")
    good = gateway.mention("ops", "status")
    with caplog.at_level(logging.ERROR, logger="bot.mentions"):
        report = intake.drain()
    assert [(h.result, h.detail) for h in report.handled] == [
        (Result.ERROR, "ValueError"), (Result.ANSWERED, "")]
    assert "handler bug" in caplog.text and "Traceback" in caplog.text
    handled = store.handled(bad.notification_id)
    assert handled is not None and handled.result == "error: ValueError"
    assert next(i.post for i in store.items()) == generic_error_reply(bad, T0)[0]
    assert generic_error_reply(bad, T0)[0].visibility == "unlisted"
    clock.advance(300)
    intake.drain()
    assert handler.seen == [bad.notification_id, good.notification_id]


def test_replies_are_rate_limited_per_account(store: Store, gateway: RecordingGateway,
                                              clock: Clock) -> None:
    """A flood from one account gets 5 replies; the rest are claimed as rate limited."""
    handler = Recorder()
    intake = make_intake(store, gateway, clock, handler)
    intake.start()
    intake.drain()
    for i in range(8):
        gateway.mention("flood", f"status {i}")
    gateway.mention("ops", "status")
    results = [(h.acct, h.result, h.detail) for h in intake.drain().handled]
    assert results == ([("flood", Result.ANSWERED, "")] * 5
                       + [("flood", Result.RATE_LIMITED, "account")] * 3
                       + [("ops", Result.ANSWERED, "")])
    assert len(handler.seen) == 6
    assert len(replies(store)) == 6


def test_limits_survive_a_restart(tmp_path: Path, gateway: RecordingGateway,
                                  clock: Clock) -> None:
    """Replies given before a restart still count against the account."""
    path = tmp_path / "s.sqlite3"
    with Store(path) as store:
        intake = make_intake(store, gateway, clock, stream=False)
        for i in range(5):
            gateway.mention("flood", f"status {i}")
        assert len(intake.drain().handled) == 5
    clock.advance(10)
    with Store(path) as store:
        intake = make_intake(store, gateway, clock, stream=False)
        gateway.mention("flood", "again")
        [handled] = intake.drain().handled
        assert handled.result is Result.RATE_LIMITED


def test_outcome_commits_audit_and_state_with_the_claim(
        store: Store, gateway: RecordingGateway, clock: Clock) -> None:
    """An Outcome's audit entries (with the notification id) and states are stored."""
    def handler(mention: Mention) -> Outcome:
        return Outcome(posts=answer(mention), detail="silence",
                       audit=[AuditEntry(T0, mention.account_id, mention.acct, "silence",
                                         "2h", "silenced")],
                       states={"silence": {"until": T0 + 7200}})

    gateway.mention("ops", "silence 2h", account_id="109")
    [handled] = make_intake(store, gateway, clock, handler, stream=False).drain().handled
    assert (handled.result, handled.detail) == (Result.ANSWERED, "silence")
    [entry] = store.audit()
    assert (entry.account_id, entry.acct, entry.command, entry.result,
            entry.notification_id) == ("109", "ops", "silence", "silenced",
                                       handled.notification_id)
    assert store.get_state("silence") == {"until": T0 + 7200}


def test_handler_without_reply(store: Store, gateway: RecordingGateway, clock: Clock) -> None:
    """A handler that returns nothing claims the mention as 'no reply'."""
    gateway.mention("alice", "thanks!")
    [handled] = make_intake(store, gateway, clock, lambda m: [],
                            stream=False).drain().handled
    assert (handled.result, handled.replies) == (Result.NO_REPLY, 0)


def test_backfill_timer_and_budget(store: Store, gateway: RecordingGateway,
                                   clock: Clock) -> None:
    """Polling runs every backfill_every and never beyond the paginated budget."""
    intake = make_intake(store, gateway, clock, stream=False, backfill_every=1.0,
                         paginated_budget=3, paginated_window=900.0)
    outcomes = []
    for _ in range(6):
        outcomes.append(intake.drain().backfill)
        clock.advance(1.0)
    assert outcomes == [Backfill.RAN] * 3 + [Backfill.OUT_OF_BUDGET] * 3
    assert len(gateway.calls_to("notifications")) == 3
    clock.advance(300.0)  # one request's worth refilled
    assert intake.drain().backfill is Backfill.RAN


def test_reconnect_storm_stays_within_the_budget(store: Store, gateway: RecordingGateway,
                                                 clock: Clock) -> None:
    """Each reconnect asks for a backfill; the budget bounds the requests."""
    intake = make_intake(store, gateway, clock, paginated_budget=5)
    intake.start()
    stream = gateway.stream
    assert stream is not None
    for _ in range(50):
        stream.cut()
        stream.reconnect()
        intake.drain()
        clock.advance(0.5)
    assert len(gateway.calls_to("notifications")) == 5


def test_long_backlog_is_fetched_over_several_drains(store: Store, gateway: RecordingGateway,
                                                    clock: Clock) -> None:
    """With max_pages per backfill the rest follows in the next drains, in order."""
    gateway.page_size = 2
    store.advance_mentions_cursor("999")
    made = [gateway.mention("alice", f"m{i}", deliver=False) for i in range(7)]
    intake = make_intake(store, gateway, clock, stream=False, max_pages=2,
                         limiter=ReplyLimiter(per_account=100))
    got: list[str] = []
    for _ in range(4):
        got += [h.notification_id for h in intake.drain().handled]
    assert got == [m.notification_id for m in made]


@pytest.mark.parametrize(("error", "paused_for"), [
    pytest.param(RetryableError("HTTP 503", status=503), 30.0, id="5xx-backoff"),
    pytest.param(RetryableError("rate limited", status=429, retry_at=T0 + 500), 500.0,
                 id="429-reset"),
    pytest.param(PermanentError("HTTP 403", status=403), 30.0, id="403-backoff"),
])
def test_backfill_failure_pauses_polling(store: Store, gateway: RecordingGateway, clock: Clock,
                                         error: Exception, paused_for: float,
                                         caplog: pytest.LogCaptureFixture) -> None:
    """A failed backfill is retried after its backoff or reset, logged once."""
    intake = make_intake(store, gateway, clock, stream=False)
    gateway.script("notifications", error, error)
    with caplog.at_level(logging.WARNING, logger="bot.mentions"):
        assert intake.drain().backfill is Backfill.FAILED
        clock.advance(paused_for - 1)
        assert intake.drain().backfill is Backfill.PAUSED
        clock.advance(1)
        assert intake.drain().backfill is Backfill.FAILED
    assert caplog.text.count("mention backfill failed") == 1
    gateway.mention("alice", "hi")
    clock.advance(3600)
    assert len(intake.drain().handled) == 1


def test_dead_stream_is_restarted_with_backoff(store: Store, gateway: RecordingGateway,
                                               clock: Clock) -> None:
    """A stream whose thread died is replaced after the backoff; a backfill runs meanwhile."""
    intake = make_intake(store, gateway, clock, restart_base=5.0)
    intake.start()
    intake.drain()
    first = gateway.stream
    assert first is not None
    first.die()
    missed = gateway.mention("alice", "while dead")
    report = intake.drain()
    assert (report.stream, [h.notification_id for h in report.handled]) == (
        StreamState.DOWN, [missed.notification_id])
    clock.advance(4.9)
    assert intake.drain().stream is StreamState.DOWN
    clock.advance(0.1)
    assert intake.drain().stream is StreamState.RECEIVING
    assert len(gateway.streams) == 2
    streamed = gateway.mention("alice", "after")
    assert [h.source for h in intake.drain().handled] == [Source.STREAM]
    assert store.is_handled(streamed.notification_id)


def test_stream_that_cannot_open_is_retried(store: Store, gateway: RecordingGateway,
                                            clock: Clock) -> None:
    """A failure to open the stream is retried with a doubling delay; polling goes on."""
    error = RetryableError("connection refused")
    gateway.script("stream_mentions", error, error)
    intake = make_intake(store, gateway, clock, restart_base=5.0)
    intake.start()
    assert intake.stream_state is StreamState.DOWN
    clock.advance(5)
    assert intake.drain().stream is StreamState.DOWN
    clock.advance(9.9)
    assert intake.drain().stream is StreamState.DOWN
    clock.advance(0.1)
    assert intake.drain().stream is StreamState.RECEIVING
    assert len(gateway.calls_to("stream_mentions")) == 3


def test_full_queue_drops_to_the_backfill(store: Store, gateway: RecordingGateway,
                                          clock: Clock) -> None:
    """When the queue is full, the dropped mentions come from the backfill."""
    intake = make_intake(store, gateway, clock, queue_size=2,
                         limiter=ReplyLimiter(per_account=100))
    intake.start()
    intake.drain()
    made = [gateway.mention("alice", f"m{i}") for i in range(5)]
    report = intake.drain()
    assert [h.notification_id for h in report.handled] == [m.notification_id for m in made]
    assert (report.backfill, report.duplicates) == (Backfill.RAN, 2)  # the two queued ones


def test_drain_waits_for_a_mention_from_another_thread(store: Store,
                                                       gateway: RecordingGateway) -> None:
    """drain(timeout) returns as soon as the stream's thread queues a mention."""
    intake = Intake(store, gateway, answer, clock=time.time)
    intake.start()
    intake.drain()
    timer = threading.Timer(0.05, lambda: gateway.mention("alice", "hi",
                                                          created_at=time.time()))
    started = time.monotonic()
    timer.start()
    report = intake.drain(timeout=60.0)
    took = time.monotonic() - started
    timer.join()
    # Woken by the mention, not by the end of the wait: far from 60 s on any machine.
    assert len(report.handled) == 1 and took < 30.0


def test_serve_calls_back_after_each_drain(store: Store, gateway: RecordingGateway) -> None:
    """serve() calls on_drain after every drain, at once after an answer; stops on the event."""
    stop = threading.Event()
    intake = Intake(store, gateway, answer, clock=time.time)
    intake.start()
    seen: list[int] = []

    def on_drain(report: Any) -> None:
        seen.append(report.replies)
        if len(seen) == 1:  # after a first empty drain, however long it took
            threading.Thread(target=lambda: gateway.mention(
                "alice", "hi", created_at=time.time())).start()
        if report.replies:
            stop.set()

    answered: list[int] = []
    started = time.monotonic()
    assert intake.serve(60.0, stop, on_drain, slice_s=0.1,
                        on_replies=lambda r: answered.append(r.replies)) == 1
    assert seen[-1] == 1 and set(seen[:-1]) == {0} and len(seen) >= 2
    assert answered == [1]
    assert time.monotonic() - started < 30.0  # stopped by the event, not by the 60 s


def test_serve_survives_a_failing_callback(store: Store, gateway: RecordingGateway,
                                           caplog: pytest.LogCaptureFixture) -> None:
    """An exception in on_drain is logged once and serving goes on until the time is up."""
    intake = Intake(store, gateway, answer, clock=time.time)
    calls: list[int] = []

    def on_drain(report: Any) -> None:
        calls.append(1)
        raise OSError("disk full")

    with caplog.at_level(logging.WARNING, logger="bot.mentions"):
        intake.serve(0.5, None, on_drain, slice_s=0.05)
    assert len(calls) >= 2 and caplog.text.count("disk full") == 1


# --- policy, console ---------------------------------------------------------------------


@pytest.mark.parametrize(("policy", "expected", "changed"), [
    pytest.param({"for_private_mentions": "filter", "for_not_following": "accept"},
                 PolicyResult.CHANGED, {"for_private_mentions": "accept"}, id="default-4.3"),
    pytest.param({"for_private_mentions": "accept"}, PolicyResult.ALREADY, None,
                 id="already"),
    pytest.param({}, PolicyResult.NO_POLICY, None, id="before-4.3"),
])
def test_notification_policy(gateway: RecordingGateway, policy: dict[str, str],
                             expected: PolicyResult, changed: dict[str, str] | None) -> None:
    """Private mentions are accepted; nothing else is touched."""
    gateway.policy = dict(policy)
    assert ensure_notification_policy(gateway) is expected
    calls = gateway.calls_to("set_notification_policy")
    assert [c.args[0] for c in calls] == ([changed] if changed else [])


def test_notification_policy_warns_about_other_filters(
        gateway: RecordingGateway, caplog: pytest.LogCaptureFixture) -> None:
    """A policy that filters other accounts is left alone, with a warning naming whom."""
    gateway.policy = {"for_private_mentions": "accept", "for_not_following": "filter"}
    with caplog.at_level(logging.WARNING, logger="bot.mentions"):
        assert ensure_notification_policy(gateway) is PolicyResult.ALREADY
    assert "for_not_following=filter" in caplog.text and "follow the admins" in caplog.text


def test_notification_policy_failure_is_logged_not_raised(
        gateway: RecordingGateway, caplog: pytest.LogCaptureFixture) -> None:
    """A missing scope (403) is an error in the log naming the scopes, not a crash."""
    gateway.script("set_notification_policy", PermanentError("HTTP 403", status=403))
    with caplog.at_level(logging.ERROR, logger="bot.mentions"):
        assert ensure_notification_policy(gateway) is PolicyResult.FAILED
    assert "write:notifications" in caplog.text


def test_resolve_account(gateway: RecordingGateway) -> None:
    """Known accts resolve to (id, acct, bot); unknown ones are a 404."""
    gateway.accounts["ops"] = ("109", False)
    assert gateway.resolve_account("@ops") == ("109", "ops", False)
    with pytest.raises(PermanentError) as info:
        gateway.resolve_account("nobody")
    assert info.value.status == 404


def test_console_gateway_has_no_mentions(store: Store, clock: Clock) -> None:
    """The console never has mentions; its stream stays idle."""
    import io

    out = io.StringIO()
    console = ConsoleGateway(out)
    intake = Intake(store, console, answer, clock=clock)
    assert intake.start() is PolicyResult.ALREADY
    report = intake.drain()
    assert (report.handled, report.stream) == ((), StreamState.RECEIVING)
    assert console.resolve_account("ops") == ("console:ops", "ops", False)



def test_the_limiter_given_is_the_one_used(store: Store, gateway: RecordingGateway,
                                           clock: Clock) -> None:
    """A custom limiter is used even while it tracks nothing (an empty one is falsy)."""
    limiter = ReplyLimiter(per_account=1)
    intake = make_intake(store, gateway, clock, stream=False, limiter=limiter)
    gateway.mention("alice", "one")
    gateway.mention("alice", "two")
    assert [h.result for h in intake.drain().handled] == [Result.ANSWERED, Result.RATE_LIMITED]
    assert intake.limiter is limiter


def test_store_failure_makes_the_backfill_fetch_it_again(
        store: Store, gateway: RecordingGateway, clock: Clock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A streamed mention whose claim failed is fetched by the next drain's backfill."""
    intake = make_intake(store, gateway, clock)
    intake.start()
    intake.drain()
    real = store.claim_and_enqueue

    def broken(*args: Any, **kwargs: Any) -> bool:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(store, "claim_and_enqueue", broken)
    mention = gateway.mention("alice", "status")
    with pytest.raises(sqlite3.OperationalError):
        intake.drain()
    monkeypatch.setattr(store, "claim_and_enqueue", real)
    report = intake.drain()
    assert [(h.notification_id, h.source) for h in report.handled] == [
        (mention.notification_id, Source.BACKFILL)]


def _raises(*args: Any) -> Any:
    raise RuntimeError("hook bug")


@pytest.mark.parametrize(("exempt", "audit_drop", "results", "audited"), [
    pytest.param(lambda m: True, None, [Result.ANSWERED] * 3, [], id="exempt"),
    pytest.param(lambda m: False, None, [Result.ANSWERED, Result.RATE_LIMITED,
                                         Result.RATE_LIMITED], [], id="not-exempt"),
    pytest.param(lambda m: "yes", None, [Result.ANSWERED, Result.RATE_LIMITED,
                                         Result.RATE_LIMITED], [], id="truthy-is-not-true"),
    pytest.param(_raises, None, [Result.ANSWERED, Result.RATE_LIMITED, Result.RATE_LIMITED],
                 [], id="exempt-raises-limits-apply"),
    pytest.param(None, lambda m, why, now: [AuditEntry(now, m.account_id, m.acct, "status",
                                                       "", f"dropped: {why}")],
                 [Result.ANSWERED, Result.RATE_LIMITED, Result.RATE_LIMITED],
                 [("dropped: rate limited: account", 2)], id="audited"),
    pytest.param(None, _raises, [Result.ANSWERED, Result.RATE_LIMITED, Result.RATE_LIMITED],
                 [("dropped: rate limited: account", 2)], id="audit-hook-raises"),
])
def test_exemption_and_drop_audit_fail_closed(store: Store, gateway: RecordingGateway,
                                              clock: Clock, exempt: Any, audit_drop: Any,
                                              results: list[Result],
                                              audited: list[tuple[str, int]]) -> None:
    """Only a plain True exempts; a broken hook applies the limits and still audits the drops.

    Not an admin's: the two drops are one row with a count, named by the first.
    """
    intake = make_intake(store, gateway, clock, stream=False, limiter=ReplyLimiter(per_account=1),
                         exempt=exempt, audit_drop=audit_drop)
    intake.drain()
    made = [gateway.mention("alice", f"status {i}") for i in range(3)]
    clock.advance(300)
    assert [h.result for h in intake.drain().handled] == results
    entries = store.audit()
    assert [(e.result, e.count) for e in entries] == audited
    assert [e.notification_id for e in entries] == [m.notification_id
                                                    for m in made[1:1 + len(audited)]]


def test_failed_command_is_audited_as_dropped(store: Store, gateway: RecordingGateway,
                                              clock: Clock) -> None:
    """A command whose handler raised changed nothing; the audit says it failed."""
    def describe(m: Mention, why: str, now: float) -> list[AuditEntry]:
        return [AuditEntry(now, m.account_id, m.acct, "incident", "", f"dropped: {why}")]

    intake = make_intake(store, gateway, clock, Recorder(), stream=False, audit_drop=describe)
    intake.drain()
    bad = gateway.mention("ops", "boom")
    clock.advance(300)
    [handled] = intake.drain().handled
    assert handled.result is Result.ERROR
    assert [(e.notification_id, e.result) for e in store.audit()] == [
        (bad.notification_id, "dropped: failed: ValueError")]


@pytest.mark.parametrize(("field", "value", "shown"), [
    pytest.param("args", "\x1b[2J\x1b[31mhi", "\\x1b[2J\\x1b[31mhi", id="escape-sequence"),
    pytest.param("args", "a\n     9  forged line", "a\\n     9  forged line", id="newline"),
    pytest.param("result", "ok\u2028forged", "ok\\u2028forged", id="line-separator"),
    pytest.param("acct", "bob\u202eevil", "bob\\u202eevil", id="bidi-override"),
    pytest.param("args", "caf\u00e9 \u2014 fine", "caf\u00e9 \u2014 fine", id="plain-unicode-kept"),
])
def test_format_audit_neutralises_what_mentions_wrote(field: str, value: str,
                                                      shown: str) -> None:
    """What a sender wrote reaches the terminal escaped: one line per entry, no control codes."""
    entry = AuditEntry(T0, "7", value if field == "acct" else "bob", "status",
                       value if field == "args" else "",
                       value if field == "result" else "dropped")
    text = format_audit([entry])
    assert len(text.splitlines()) == 1 and shown in text


# --- audit bounds: collapse, caps, retention -------------------------------------------


def audit_drop(m: Mention, why: str, now: float) -> list[AuditEntry]:
    """The drop audit of the commands handler, without parsing the mention."""
    return [AuditEntry(now, m.account_id, m.acct, "status", "", f"dropped: {why}")]


class AdminHandler:
    """Answers every mention; an admin's (``ops``) is audited like a command that ran."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def __call__(self, mention: Mention) -> Outcome:
        audit = [AuditEntry(self.clock(), mention.account_id, mention.acct, "ack", "",
                            "acknowledged")] if mention.acct == "ops" else []
        return Outcome(posts=answer(mention), detail="ack", audit=audit)


FLOOD = 50_000


@pytest.mark.parametrize(("senders", "bot", "stale", "per_account", "other_rows", "counts"), [
    pytest.param(1, False, True, 5, 1, {FLOOD}, id="one-account-stale"),
    pytest.param(1, False, False, 1, 1, {FLOOD - 1}, id="one-account-rate-limited"),
    pytest.param(FLOOD, False, True, 5, 2000, {1}, id="distinct-accounts-stale"),
    pytest.param(FLOOD, True, False, 5, 2000, {1}, id="distinct-bot-accounts"),
])
def test_flood_of_dropped_mentions_keeps_the_audit_bounded(
        store: Store, gateway: RecordingGateway, clock: Clock, senders: int, bot: bool,
        stale: bool, per_account: int, other_rows: int, counts: set[int]) -> None:
    """50,000 dropped mentions stay within the caps; every admin action stays, newest last."""
    intake = make_intake(store, gateway, clock, AdminHandler(clock),
                         limiter=ReplyLimiter(per_account=per_account, total=10**6),
                         exempt=lambda m: m.acct == "ops", audit_drop=audit_drop)
    intake.start(ensure_policy=False)
    intake.drain()
    admin_notes = []
    for chunk in range(0, FLOOD, 5000):  # within the stream's queue
        admin_notes.append(gateway.mention("ops", "ack", account_id="1").notification_id)
        for i in range(chunk, chunk + 5000):
            gateway.mention(f"flood{i % senders}", "status", bot=bot,
                            created_at=clock.now - 7200 if stale else None)
        intake.drain()
        clock.advance(30)  # the whole flood within the hour and the limiter's window
    admin_notes.append(gateway.mention("ops", "ack", account_id="1").notification_id)
    intake.drain()
    entries = store.audit(10**9)
    others = [e for e in entries if e.acct != "ops"]
    assert len(entries) <= defaults.AUDIT_MAX_ROWS
    assert len(others) == other_rows and {e.count for e in others} == counts
    assert [e.notification_id for e in entries if e.acct == "ops"] == admin_notes
    assert entries[-1].notification_id == admin_notes[-1]
    assert all(e.admin for e in entries if e.acct == "ops")


@pytest.mark.parametrize(("age", "admin", "kept"), [
    pytest.param(89 * 86400.0, True, True, id="admin-89-days-kept"),
    pytest.param(91 * 86400.0, True, False, id="admin-91-days-gone"),
    pytest.param(91 * 86400.0, False, False, id="other-91-days-gone"),
    pytest.param(3600.0, False, True, id="other-1-hour-kept"),
])
def test_audit_rows_older_than_the_retention_are_pruned_hourly(
        store: Store, gateway: RecordingGateway, clock: Clock, age: float, admin: bool,
        kept: bool) -> None:
    """The intake prunes audit rows beyond AUDIT_RETENTION within the hour, not the day."""
    intake = make_intake(store, gateway, clock, stream=False)
    intake.drain()
    clock.advance(defaults.AUDIT_PRUNE_EVERY)
    store.add_audit(AuditEntry(clock.now - age, "5", "someone", "silence", "", "ok",
                               admin=admin))
    store.add_audit(AuditEntry(clock.now, "1", "ops", "ack", "", "acknowledged"))
    intake.drain()
    assert [e.acct for e in store.audit()] == ["someone", "ops"][0 if kept else 1:]
    assert defaults.AUDIT_RETENTION == 90 * 86400.0


@pytest.mark.parametrize(("entries", "rows"), [
    pytest.param([(0.0, "5", "dropped: bot account", False)] * 3, [3], id="same-hour-one-row"),
    pytest.param([(0.0, "5", "dropped: bot account", False),
                  (3600.0, "5", "dropped: bot account", False)], [1, 1], id="next-hour-new-row"),
    pytest.param([(0.0, "5", "dropped: bot account", False),
                  (10.0, "5", "dropped: older than 3600 s", False)], [1, 1], id="other-result"),
    pytest.param([(0.0, "5", "dropped: bot account", False),
                  (10.0, "6", "dropped: bot account", False)], [1, 1], id="other-account"),
    pytest.param([(0.0, "1", "dropped: older than 3600 s", True)] * 2, [1, 1],
                 id="admin-never-collapsed"),
    pytest.param([(0.0, "5", "dropped: bot account", False),
                  (10.0, "1", "acknowledged", True),
                  (20.0, "5", "dropped: bot account", False)], [2, 1], id="across-an-admin-row"),
])
def test_other_senders_entries_collapse_per_account_and_hour(
        store: Store, entries: list[tuple[float, str, str, bool]], rows: list[int]) -> None:
    """Another sender's same drop within the hour is one row with a count; an admin's never."""
    for offset, account, result, admin in entries:
        store.add_audit(AuditEntry(T0 + offset, account, f"acct{account}", "status", "",
                                   result, admin=admin))
    stored = store.audit()
    assert [e.count for e in stored] == rows
    collapsed = [e for e in stored if e.count > 1]
    assert [e.last_at for e in collapsed] == [T0 + entries[-1][0]] * len(collapsed)


def test_format_audit_says_how_many_mentions_a_collapsed_row_stands_for() -> None:
    """A collapsed row tells the count and the last mention's time on its one line."""
    text = format_audit([AuditEntry(T0, "666", "spam", "status", "", "dropped: bot account",
                                    seq=9, admin=False, count=50000, last_at=T0 + 3599)])
    assert text == ("     9  2026-05-28 20:26:40 UTC  @spam (666)  status  -> dropped: bot "
                    "account  [50000 mentions, the last at 2026-05-28 21:26:39 UTC]")
