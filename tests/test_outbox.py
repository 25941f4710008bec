"""The outbox with the RecordingGateway: order, threads, retries, catch-up, crashes.

The last section covers the gateway helpers the outbox relies on (reading
X-RateLimit-Reset, mapping Mastodon.py's errors, hiding the token) without a
server; tests/integration/test_gateway_mock.py covers them against one.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from bot.apidata import (
    limits_from_instance,
    merge_profile_field,
    parse_http_time,
    ratelimit_retry_at,
)
from bot.console import ConsoleGateway
from bot.gateway import Gateway, InstanceLimits, PermanentError, RetryableError
from bot.mastodon_api import MastodonGateway
from bot.model import Post, PostKind
from bot.outbox import GATE_STATE, Outbox, Reason, backoff_delay
from bot.store import ItemState, OutboxItem, StepState, Store
from bot.testing import Lost, RecordingGateway

T0 = 1_780_000_000.0  # 2026-05-28T20:26:40Z
WINDOW = 3000.0


class Clock:
    """A settable clock."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


class Crash(BaseException):
    """The process dies (SIGKILL) at this point: nothing after it runs."""


def post(key: str, kind: PostKind = PostKind.NOTICE, *, at: float = T0,
         parent: str | None = None, pin: bool = False, unpin: str | None = None,
         visibility: str = "public") -> Post:
    return Post(key=key, kind=kind, text=f"text of {key}", visibility=visibility,
                created_at=at, parent_key=parent, pin=pin, unpin_key=unpin)


def catchup(posts: Sequence[Post], start: float, end: float) -> Post:
    """A stand-in for compose.catchup: lists what it folds."""
    keys = ",".join(p.key for p in posts)
    return Post(key=f"catchup:{posts[0].key}", kind=PostKind.CATCHUP,
                text=f"between {start:.0f} and {end:.0f} the server could not post: {keys}",
                visibility="public", created_at=end)


def refused(item: OutboxItem) -> Post:
    """A stand-in for the admin failure message."""
    return Post(key=f"refused:{item.key}", kind=PostKind.ADMIN,
                text=f"@admin {item.key} was refused: {item.last_error}",
                visibility="direct", created_at=T0)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store() -> Iterator[Store]:
    s = Store(":memory:")
    yield s
    s.close()


@pytest.fixture
def gateway(clock: Clock) -> RecordingGateway:
    return RecordingGateway(clock=clock, idempotency_window=3600.0)


def make_outbox(store: Store, gateway: RecordingGateway, clock: Clock, **kwargs: Any) -> Outbox:
    options: dict[str, Any] = {"backoff_base": 30.0, "backoff_cap": 900.0, "jitter": 0.0,
                               "idempotency_window_s": WINDOW, "catchup": catchup}
    options.update(kwargs)
    return Outbox(store, gateway, clock=clock, **options)


@pytest.fixture
def outbox(store: Store, gateway: RecordingGateway, clock: Clock) -> Outbox:
    return make_outbox(store, gateway, clock)


def posted(gateway: RecordingGateway) -> list[tuple[str, str | None]]:
    """(key, in_reply_to_id) of every post call, in order."""
    result: list[tuple[str, str | None]] = []
    for call in gateway.calls_to("post"):
        sent, reply_to, *_ = call.args
        assert isinstance(sent, Post)
        assert reply_to is None or isinstance(reply_to, str)
        result.append((sent.key, reply_to))
    return result


def state(store: Store, key: str) -> ItemState:
    item = store.get(key)
    assert item is not None
    return item.state


# --- order, idempotency, threads ------------------------------------------------------


def test_sends_in_creation_order_once(outbox: Outbox, gateway: RecordingGateway,
                                      clock: Clock) -> None:
    """Posts go out in queue order; queueing or delivering again sends nothing more."""
    assert outbox.enqueue([post("a"), post("b"), post("c")]) == 3
    report = outbox.deliver(clock())
    assert report.sent == ("a", "b", "c")
    assert outbox.enqueue([post("a"), post("b")]) == 0
    assert outbox.deliver(clock.advance(30)).sent == ()
    assert posted(gateway) == [("a", None), ("b", None), ("c", None)]
    assert len(gateway.statuses) == 3


def test_reply_waits_for_its_parent(outbox: Outbox, store: Store, gateway: RecordingGateway,
                                    clock: Clock) -> None:
    """A reply is not sent before its parent, then goes under the parent's status id."""
    outbox.enqueue([post("open"), post("update", parent="open")])
    gateway.script("post", RetryableError("HTTP 503", status=503))
    report = outbox.deliver(clock())
    assert report.sent == ()
    assert state(store, "update") == ItemState.PENDING
    report = outbox.deliver(clock.advance(30))
    assert report.sent == ("open", "update")
    parent_id = store.status_id("open")
    assert [("open", None), ("open", None), ("update", parent_id)] == posted(gateway)


def test_reply_waits_while_parent_is_in_backoff(outbox: Outbox, store: Store,
                                                gateway: RecordingGateway, clock: Clock) -> None:
    """A reply queued after its parent, while the parent waits, does not overtake it."""
    outbox.enqueue([post("open")])
    store.mark_retry("open", "HTTP 502", T0 + 100)  # the parent is not due yet
    outbox.enqueue([post("update", parent="open")])
    report = outbox.deliver(clock())
    assert posted(gateway) == []
    assert Reason.WAITING_FOR_PARENT in {d.reason for d in report.decisions}


def test_reply_to_failed_parent_goes_out_as_new_thread(outbox: Outbox, store: Store,
                                                       gateway: RecordingGateway,
                                                       clock: Clock) -> None:
    """When the parent was refused for good, the reply is still published, unthreaded."""
    outbox.enqueue([post("open"), post("update", parent="open")])
    gateway.script("post", PermanentError("HTTP 422: text too long", status=422))
    report = outbox.deliver(clock())
    assert report.sent == ("update",)
    assert posted(gateway) == [("open", None), ("update", None)]
    assert Reason.SENT_WITHOUT_PARENT in {d.reason for d in report.decisions}


def test_reply_to_a_mention_names_the_status(outbox: Outbox, gateway: RecordingGateway,
                                             clock: Clock) -> None:
    """parent_key "status:<id>" replies to a status the bot did not post."""
    outbox.enqueue([post("answer", PostKind.REPLY, parent="status:555", visibility="direct")])
    outbox.deliver(clock())
    assert posted(gateway) == [("answer", "555")]


def test_reply_to_deleted_parent_is_resent_unthreaded(outbox: Outbox, store: Store,
                                                      gateway: RecordingGateway,
                                                      clock: Clock) -> None:
    """A 404 for a reply (the parent was deleted) publishes it as a new thread."""
    outbox.enqueue([post("open"), post("update", parent="open")])
    outbox.deliver(clock())
    outbox.enqueue([post("resolved", PostKind.RESOLUTION, parent="update")])
    gateway.script("post", PermanentError("HTTP 404: Record not found", status=404))
    report = outbox.deliver(clock.advance(60))
    assert report.sent == ("resolved",)
    assert [("resolved", store.status_id("update")), ("resolved", None)] == posted(gateway)[2:]
    assert len(gateway.statuses) == 3


# --- retries and pauses -------------------------------------------------------------------


@pytest.mark.parametrize(("failures", "delay"), [
    pytest.param(0, 0.0, id="none"),
    pytest.param(1, 30.0, id="1st"),
    pytest.param(2, 60.0, id="2nd"),
    pytest.param(3, 120.0, id="3rd"),
    pytest.param(4, 240.0, id="4th"),
    pytest.param(5, 480.0, id="5th"),
    pytest.param(6, 900.0, id="6th-capped"),
    pytest.param(60, 900.0, id="60th-capped"),
    pytest.param(5000, 900.0, id="huge-no-overflow"),
])
def test_backoff_schedule(failures: int, delay: float) -> None:
    """Capped exponential backoff: 30 s doubling up to 15 min."""
    assert delay == backoff_delay(failures, 30.0, 900.0)


def test_retryable_errors_pause_everything_with_backoff(outbox: Outbox, store: Store,
                                                        gateway: RecordingGateway,
                                                        clock: Clock) -> None:
    """5xx, timeouts and network errors pause all delivery; the pauses follow the schedule."""
    outbox.enqueue([post("a"), post("b"), post("c")])
    gateway.script("post", RetryableError("HTTP 503", status=503),
                   RetryableError("read timed out"), RetryableError("HTTP 502", status=502))
    pauses = []
    for _ in range(3):
        report = outbox.deliver(clock())
        assert report.calls == 1  # one call, then everyone waits
        assert report.paused_until is not None
        pauses.append(report.paused_until - clock())
        assert outbox.deliver(clock()).calls == 0  # paused: no call at all
        clock.now = report.paused_until
    assert pauses == [30.0, 60.0, 120.0]
    report = outbox.deliver(clock())
    assert report.sent == ("a", "b", "c") and report.paused_until is None
    assert store.get_state(GATE_STATE) is None
    item = store.get("a")
    assert item is not None and item.attempts == 4


def test_pause_survives_restart(tmp_path: Path, gateway: RecordingGateway, clock: Clock) -> None:
    """A restarted bot honours the pause (a 429's reset) it was in."""
    path = tmp_path / "state.sqlite3"
    first = make_outbox(Store(path), gateway, clock)
    first.enqueue([post("a")])
    gateway.script("post", RetryableError("rate limited", status=429, retry_at=T0 + 200))
    first.deliver(clock())
    second = make_outbox(Store(path), gateway, clock)
    assert second.deliver(clock.advance(100)).calls == 0
    assert second.deliver(clock.advance(100)).sent == ("a",)


@pytest.mark.parametrize(("reset", "date", "wait"), [
    pytest.param("2026-05-28T20:31:40.400382Z", None, 300.400382, id="iso8601-mastodon"),
    pytest.param("2026-05-28T20:31:40Z", None, 300.0, id="iso8601-no-fraction"),
    pytest.param("2026-05-28T22:31:40+02:00", None, 300.0, id="iso8601-offset"),
    pytest.param("1780000300", None, 300.0, id="epoch-mock"),
    pytest.param("1780000300.5", None, 300.5, id="epoch-float"),
    pytest.param("1780000300000", None, 300.0, id="epoch-milliseconds"),
    pytest.param("2026-05-28T20:31:40Z", "Thu, 28 May 2026 20:30:40 GMT", 60.0,
                 id="server-clock-behind"),
    pytest.param("2026-05-28T20:00:00Z", None, 0.0, id="already-passed"),
    pytest.param("2026-05-30T00:00:00Z", None, 10800.0, id="capped-at-3h"),
])
def test_429_reset_is_read(reset: str, date: str | None, wait: float) -> None:
    """X-RateLimit-Reset: ISO 8601 (real Mastodon) or epoch (mock); measured on the server clock."""
    at = ratelimit_retry_at(reset, T0, date)
    assert at is not None
    assert wait == pytest.approx(at - T0)


@pytest.mark.parametrize("reset", [
    pytest.param(None, id="missing"),
    pytest.param("", id="empty"),
    pytest.param("soon", id="garbage"),
    pytest.param("nan", id="nan"),
])
def test_unusable_429_reset(reset: str | None) -> None:
    """No usable reset: the caller falls back to its own wait."""
    assert ratelimit_retry_at(reset, T0) is None


@pytest.mark.parametrize("reset", [
    pytest.param("2026-05-28T20:31:40.400382Z", id="iso8601"),
    pytest.param("1780000300", id="epoch"),
])
def test_429_waits_until_reset(outbox: Outbox, store: Store, gateway: RecordingGateway,
                               clock: Clock, reset: str) -> None:
    """After a 429 nothing is sent until X-RateLimit-Reset, then delivery resumes in order."""
    outbox.enqueue([post("a"), post("b")])
    retry_at = ratelimit_retry_at(reset, clock())
    gateway.script("post", RetryableError("rate limited", status=429, retry_at=retry_at))
    report = outbox.deliver(clock())
    assert retry_at == report.paused_until
    assert report.decisions[-1].reason == Reason.RATE_LIMITED
    clock.now = T0 + 299
    assert outbox.deliver(clock()).calls == 0
    clock.now = T0 + 301
    assert outbox.deliver(clock()).sent == ("a", "b")


def test_429_without_reset_waits_the_fallback(outbox: Outbox, gateway: RecordingGateway,
                                              clock: Clock) -> None:
    """A 429 without a usable reset pauses for the fallback wait."""
    outbox.enqueue([post("a")])
    gateway.script("post", RetryableError("rate limited", status=429))
    assert outbox.deliver(clock()).paused_until == T0 + 300.0


def test_permanent_failure_is_reported_once(store: Store, gateway: RecordingGateway,
                                            clock: Clock) -> None:
    """A 4xx fails the post, is listed in one report only, and queues one admin message."""
    outbox = make_outbox(store, gateway, clock, failure_notice=refused)
    outbox.enqueue([post("a"), post("b")])
    gateway.script("post", PermanentError("HTTP 422: Text is too long", status=422))
    report = outbox.deliver(clock())
    assert [item.key for item in report.failures] == ["a"]
    assert report.failures[0].error_status == 422
    assert report.sent == ("b",)  # the rest goes on
    assert outbox.deliver(clock.advance(60)).sent == ("refused:a",)  # admins hear of it
    for _ in range(3):
        assert outbox.deliver(clock.advance(60)).failures == ()
    assert state(store, "a") == ItemState.FAILED
    assert len(gateway.statuses) == 2


def test_failed_admin_message_is_not_reported_again(store: Store, gateway: RecordingGateway,
                                                    clock: Clock) -> None:
    """A refused admin message does not cause another admin message (no chain)."""
    outbox = make_outbox(store, gateway, clock, failure_notice=refused)
    outbox.enqueue([post("dm", PostKind.ADMIN, visibility="direct")])
    gateway.script("post", PermanentError("HTTP 403", status=403))
    report = outbox.deliver(clock())
    assert [item.key for item in report.failures] == ["dm"]
    assert store.counts()["pending"] == 0


def test_rejected_token_pauses_instead_of_failing(outbox: Outbox, store: Store,
                                                  gateway: RecordingGateway,
                                                  clock: Clock) -> None:
    """A 401 keeps every post queued: fixing the token must not lose them."""
    outbox.enqueue([post("a"), post("b")])
    gateway.script("post", PermanentError("HTTP 401", status=401))
    report = outbox.deliver(clock())
    assert report.failures == () and report.calls == 1
    assert report.decisions[-1].reason == Reason.CREDENTIALS_REJECTED
    assert outbox.deliver(clock.advance(30)).sent == ("a", "b")


def test_unexpected_gateway_error_is_retried(outbox: Outbox, gateway: RecordingGateway,
                                             clock: Clock) -> None:
    """A bug in the client does not kill the loop; the post is retried later."""
    outbox.enqueue([post("a")])
    gateway.script("post", KeyError("id"))
    report = outbox.deliver(clock())
    assert report.decisions[-1].reason == Reason.RETRY
    assert outbox.deliver(clock.advance(30)).sent == ("a",)


def test_budget_limits_calls_per_pass(outbox: Outbox, gateway: RecordingGateway,
                                      clock: Clock) -> None:
    """At most ``budget`` calls per pass; the rest goes in the next passes, in order."""
    outbox.enqueue([post(f"p{n}", pin=(n == 0)) for n in range(5)])
    first = outbox.deliver(clock(), budget=2)
    assert (first.sent, first.calls) == (("p0",), 2)  # post + pin
    assert outbox.deliver(clock(), budget=2).sent == ("p1", "p2")
    assert outbox.deliver(clock(), budget=2).sent == ("p3", "p4")


# --- pins ------------------------------------------------------------------------------------


def test_pin_and_unpin_follow_their_posts(outbox: Outbox, store: Store,
                                          gateway: RecordingGateway, clock: Clock) -> None:
    """The opening notice is pinned; the resolution unpins it (before pinning anything)."""
    outbox.enqueue([post("open", pin=True)])
    outbox.deliver(clock())
    opening = store.status_id("open")
    assert opening is not None and [opening] == gateway.pinned
    outbox.enqueue([post("next-open", pin=True, unpin="open", at=T0 + 60)])
    outbox.deliver(clock.advance(60))
    new = store.status_id("next-open")
    assert [new] == gateway.pinned
    methods = [call.method for call in gateway.log]
    assert methods == ["post", "pin", "post", "unpin", "pin"]


def test_pin_failure_does_not_fail_the_post(outbox: Outbox, store: Store,
                                            gateway: RecordingGateway, clock: Clock) -> None:
    """Too many pins (422): the post stays sent, the pin is marked failed, once."""
    outbox.enqueue([post("open", pin=True)])
    gateway.script("pin", PermanentError("HTTP 422: maximum pins", status=422))
    report = outbox.deliver(clock())
    assert report.sent == ("open",) and report.failures == ()
    item = store.get("open")
    assert item is not None and item.pin_state == StepState.FAILED
    assert outbox.deliver(clock.advance(60)).calls == 0


def test_pin_is_retried_after_a_crash(tmp_path: Path, gateway: RecordingGateway,
                                      clock: Clock) -> None:
    """Killed after the post was recorded but before the pin: the restart pins it, once."""
    path = tmp_path / "state.sqlite3"
    first = make_outbox(Store(path), gateway, clock)
    first.enqueue([post("open", pin=True)])
    gateway.script("pin", Crash())
    with pytest.raises(Crash):
        first.deliver(clock())
    second = make_outbox(Store(path), gateway, clock)
    report = second.deliver(clock.advance(5))
    assert report.decisions[0].reason == Reason.PINNED
    assert len(gateway.statuses) == 1 and len(gateway.pinned) == 1


def test_unpin_of_unpinned_post_makes_no_call(outbox: Outbox, gateway: RecordingGateway,
                                              clock: Clock) -> None:
    """unpin_key naming a post that was never pinned costs no API call."""
    outbox.enqueue([post("open"), post("resolved", parent="open", unpin="open")])
    report = outbox.deliver(clock())
    assert report.calls == 2
    assert Reason.NOTHING_TO_UNPIN in {d.reason for d in report.decisions}


# --- restarts and SIGKILL ------------------------------------------------------------------


def test_restart_keeps_pending_posts(tmp_path: Path, gateway: RecordingGateway,
                                     clock: Clock) -> None:
    """Queued posts survive a restart and are sent by the next process."""
    path = tmp_path / "state.sqlite3"
    make_outbox(Store(path), gateway, clock).enqueue([post("a"), post("b", parent="a")])
    report = make_outbox(Store(path), gateway, clock).deliver(clock())
    assert report.sent == ("a", "b")


def test_killed_between_request_and_record_resends_same_key(tmp_path: Path,
                                                            gateway: RecordingGateway,
                                                            clock: Clock) -> None:
    """SIGKILL after the server created the status: the restart re-sends the same key, once."""
    path = tmp_path / "state.sqlite3"
    first = make_outbox(Store(path), gateway, clock)
    first.enqueue([post("open", pin=True), post("update", parent="open")])
    gateway.script("post", Lost(Crash()))  # the server posts it, the process dies
    with pytest.raises(Crash):
        first.deliver(clock())
    store = Store(path)
    item = store.get("open")
    assert item is not None and item.first_attempt_at == T0 and item.status_id is None

    report = make_outbox(store, gateway, clock).deliver(clock.advance(40))
    assert report.sent == ("open", "update")
    keys = [key for key, _ in posted(gateway)]
    assert keys == ["open", "open", "update"]  # the same idempotency key twice
    assert len(gateway.statuses) == 2  # one status each
    opening = store.status_id("open")
    assert [opening] == gateway.pinned
    assert ("update", opening) == posted(gateway)[-1]


def test_lost_answer_is_not_duplicated(outbox: Outbox, gateway: RecordingGateway,
                                       clock: Clock) -> None:
    """A timeout after the server created the status: the retry returns the same status."""
    outbox.enqueue([post("a")])
    gateway.script("post", Lost(RetryableError("read timed out")))
    outbox.deliver(clock())
    outbox.deliver(clock.advance(30))
    assert gateway.texts() == ["text of a"]


def test_killed_and_down_longer_than_the_window_folds(tmp_path: Path,
                                                      gateway: RecordingGateway,
                                                      clock: Clock) -> None:
    """Killed mid-request, back after the key expired: no re-send, a catch-up instead."""
    path = tmp_path / "state.sqlite3"
    first = make_outbox(Store(path), gateway, clock)
    first.enqueue([post("open")])
    gateway.script("post", Lost(Crash()))
    with pytest.raises(Crash):
        first.deliver(clock())
    report = make_outbox(Store(path), gateway, clock).deliver(clock.advance(4000))
    assert report.folded == ("open",)
    assert (report.catchup_key,) == report.sent
    assert [key for key, _ in posted(gateway)] == ["open", "catchup:open"]


# --- stale posts: catch-up and expiry ------------------------------------------------------


def outage(outbox: Outbox, gateway: RecordingGateway, clock: Clock, until: float) -> int:
    """The instance answers 503 to everything until ``until`` (ticks every 30 s); return calls."""
    gateway.down = RetryableError("HTTP 503", status=503)
    calls = 0
    while clock() < until:
        calls += outbox.deliver(clock()).calls
        clock.advance(30)
    gateway.down = None
    return calls


def test_long_outage_folds_notices_into_one_catchup(store: Store, gateway: RecordingGateway,
                                                    clock: Clock) -> None:
    """Notices older than the window become one catch-up; fresh ones stay as they are."""
    outbox = make_outbox(store, gateway, clock)
    outbox.enqueue([post("open", pin=True)])
    outage(outbox, gateway, clock, T0 + 600)
    outbox.enqueue([post("worse", PostKind.UPDATE, parent="open", at=clock())])
    outage(outbox, gateway, clock, T0 + 2000)
    outbox.enqueue([post("better", PostKind.UPDATE, parent="worse", at=clock())])
    calls = outage(outbox, gateway, clock, T0 + 3700)
    assert calls <= 12  # an hour of outage: backoff keeps the retries few
    clock.now = T0 + 3700 + 900  # the instance is back; the last pause has run out
    report = outbox.deliver(clock())
    assert report.folded == ("open", "worse")
    assert report.catchup_key == "catchup:open"
    # The catch-up first, then the fresh update under it (its parent was folded).
    assert report.sent == ("catchup:open", "better")
    catchup_id = store.status_id("catchup:open")
    assert [("catchup:open", None), ("better", catchup_id)] == posted(gateway)[-2:]
    text = gateway.statuses[catchup_id or ""].post.text
    assert f"between {T0:.0f} and {clock():.0f}" in text and "open,worse" in text
    assert gateway.pinned == []  # the folded opening was never published, so never pinned


def test_folded_resolution_still_unpins_after_the_catchup(store: Store,
                                                          gateway: RecordingGateway,
                                                          clock: Clock) -> None:
    """The opening stays pinned until the catch-up is out; the folded resolution then unpins it."""
    outbox = make_outbox(store, gateway, clock)
    outbox.enqueue([post("open", pin=True)])
    outbox.deliver(clock())
    opening = store.status_id("open")
    outbox.enqueue([post("resolved", PostKind.RESOLUTION, parent="open", unpin="open",
                         at=clock.advance(60))])
    outage(outbox, gateway, clock, T0 + 4000)
    assert gateway.pinned == [opening]  # still pinned during the outage
    clock.advance(900)
    report = outbox.deliver(clock())
    assert report.folded == ("resolved",)
    assert report.sent == ("catchup:resolved",)
    assert gateway.pinned == []
    assert [c.method for c in gateway.log][-2:] == ["post", "unpin"]


def test_unsent_catchup_is_merged_not_repeated(store: Store, gateway: RecordingGateway,
                                               clock: Clock) -> None:
    """One outage, one catch-up: a catch-up never attempted is folded into the next."""
    outbox = make_outbox(store, gateway, clock)
    outbox.enqueue([post("open")])
    store.fold(["open"], catchup([post("open")], T0, T0 + 3100), T0 + 3100, "stale")
    store.mark_retry("catchup:open", "HTTP 503", T0 + 99999)  # never attempted, not due
    outbox.enqueue([post("worse", PostKind.UPDATE, at=T0 + 100)])
    report = outbox.deliver(clock.advance(3200))
    assert report.folded == ("catchup:open", "worse")
    assert report.catchup_key is not None and report.catchup_key.startswith("catchup:open~")
    assert (report.catchup_key,) == report.sent
    text = gateway.texts()[0]
    assert "open,worse" in text


def test_stale_admin_messages_expire_only_when_unsafe(store: Store, gateway: RecordingGateway,
                                                      clock: Clock) -> None:
    """Admin DMs: attempted longer ago than the window → expired; never attempted → sent late."""
    outbox = make_outbox(store, gateway, clock)
    outbox.enqueue([post("dm-tried", PostKind.ADMIN, visibility="direct"),
                    post("dm-late", PostKind.ADMIN, visibility="direct")])
    store.mark_attempt("dm-tried", T0)
    report = outbox.deliver(clock.advance(WINDOW + 1))
    assert report.expired == ("dm-tried",)
    assert report.sent == ("dm-late",)
    assert state(store, "dm-tried") == ItemState.FOLDED


def test_without_catchup_composer_stale_notices_expire(store: Store, gateway: RecordingGateway,
                                                       clock: Clock) -> None:
    """No composer: stale notices are dropped rather than published twice."""
    outbox = make_outbox(store, gateway, clock, catchup=None)
    outbox.enqueue([post("open")])
    report = outbox.deliver(clock.advance(WINDOW + 1))
    assert report.expired == ("open",) and report.calls == 0


def test_broken_catchup_composer_holds_stale_notices(store: Store, gateway: RecordingGateway,
                                                     clock: Clock) -> None:
    """The composer raising: stale notices wait (never sent as they are), fresh ones go."""

    def broken(posts: Sequence[Post], start: float, end: float) -> Post:
        raise ValueError("template error")

    outbox = make_outbox(store, gateway, clock, catchup=broken)
    outbox.enqueue([post("old"), post("new", at=T0 + WINDOW)])
    report = outbox.deliver(clock.advance(WINDOW + 1))
    assert report.sent == ("new",)
    assert state(store, "old") == ItemState.PENDING
    assert Reason.WAITING_FOR_CATCHUP in {d.reason for d in report.decisions}


def test_short_outage_resends_with_the_same_keys(store: Store, gateway: RecordingGateway,
                                                 clock: Clock) -> None:
    """Within the window nothing is folded: the queued posts go out as they are."""
    outbox = make_outbox(store, gateway, clock)
    outbox.enqueue([post("open"), post("worse", PostKind.UPDATE, parent="open")])
    outage(outbox, gateway, clock, T0 + 2000)
    clock.now = T0 + 2900
    report = outbox.deliver(clock())
    assert report.sent == ("open", "worse") and report.folded == ()
    assert list(dict.fromkeys(key for key, _ in posted(gateway)[:-1])) == ["open"]


# --- politeness ------------------------------------------------------------------------------


def test_quiet_hour_makes_no_api_call(outbox: Outbox, gateway: RecordingGateway,
                                      clock: Clock) -> None:
    """Healthy steady state: 120 ticks (an hour at 30 s) cost zero API calls."""
    for _ in range(120):
        outbox.deliver(clock.advance(30))
    assert gateway.calls == 0


def test_an_incident_costs_one_call_per_post_and_pin(outbox: Outbox, gateway: RecordingGateway,
                                                     clock: Clock) -> None:
    """Opening (pinned), two updates and a resolution (unpins) over an hour: 6 calls."""
    script = {0: ("open", PostKind.NOTICE, None, True, None),
              20: ("worse", PostKind.UPDATE, "open", False, None),
              60: ("better", PostKind.UPDATE, "worse", False, None),
              100: ("resolved", PostKind.RESOLUTION, "better", False, "open")}
    for tick in range(120):
        now = clock.advance(30)
        if tick in script:
            key, kind, parent, pin, unpin = script[tick]
            outbox.enqueue([post(key, kind, at=now, parent=parent, pin=pin, unpin=unpin)])
        outbox.deliver(now)
    assert gateway.calls == 6
    assert gateway.pinned == []


# --- gateway helpers the outbox relies on -------------------------------------------------------


@pytest.mark.parametrize(("text", "epoch"), [
    pytest.param("2026-05-28T20:26:40.123456Z", T0 + 0.123456, id="iso-micro-z"),
    pytest.param("2026-05-28T20:26:40.1Z", T0 + 0.1, id="iso-one-digit-fraction"),
    pytest.param("2026-05-28T20:26:40.123456789Z", T0 + 0.123456, id="iso-nano-truncated"),
    pytest.param("2026-05-28 20:26:40", T0, id="iso-space-naive-utc"),
    pytest.param("Thu, 28 May 2026 20:26:40 GMT", T0, id="rfc1123"),
    pytest.param(" 1780000000 ", T0, id="epoch-spaces"),
])
def test_http_times(text: str, epoch: float) -> None:
    """Times in headers: ISO 8601 in its variants, RFC 1123, epoch numbers."""
    assert epoch == pytest.approx(parse_http_time(text))


def test_mastodon_gateway_repr_hides_the_token() -> None:
    """The token appears in neither repr nor str (no request is made)."""
    gateway = MastodonGateway("http://127.0.0.1:9", "s3cr3t-t0ken", request_timeout=2.0)
    assert "s3cr3t" not in repr(gateway) and "s3cr3t" not in str(gateway)
    assert "127.0.0.1:9" in repr(gateway)


def _mastodon_error(name: str, *args: Any) -> Exception:
    from mastodon import errors

    error: Exception = getattr(errors, name)(*args)
    return error


@pytest.mark.parametrize(("error", "kind", "status"), [
    pytest.param(("MastodonNetworkError", "Could not complete request: timed out"),
                 RetryableError, None, id="network-timeout"),
    pytest.param(("MastodonServiceUnavailableError", "Mastodon API returned error", 503,
                  "Service Unavailable", None), RetryableError, 503, id="503"),
    pytest.param(("MastodonServerError", "Mastodon API returned error", 507, "x", None),
                 RetryableError, 507, id="507"),
    pytest.param(("MastodonRatelimitError", "Hit rate limit."), RetryableError, 429, id="429"),
    pytest.param(("MastodonAPIError", "Could not parse response as JSON", "Exception was: x"),
                 RetryableError, None, id="malformed-json"),
    pytest.param(("MastodonAPIError", "Mastodon API returned error", 422, "Unprocessable",
                  "Text is too long"), PermanentError, 422, id="422"),
    pytest.param(("MastodonAPIError", "Mastodon API returned error", 403, "Forbidden", None),
                 PermanentError, 403, id="403"),
    pytest.param(("MastodonUnauthorizedError", "Mastodon API returned error", 401, "x", "x"),
                 PermanentError, 401, id="401"),
    pytest.param(("MastodonNotFoundError", "Mastodon API returned error", 404, "x", "x"),
                 PermanentError, 404, id="404"),
    pytest.param(("MastodonIllegalArgumentError", "bad visibility"), PermanentError, None,
                 id="illegal-argument"),
])
def test_mastodon_errors_are_classified(error: tuple[Any, ...], kind: type[Exception],
                                        status: int | None) -> None:
    """Mastodon.py's exceptions become Retryable or Permanent, with the HTTP status."""
    gateway = MastodonGateway("http://127.0.0.1:9", "s3cr3t-t0ken")
    exc = _mastodon_error(*error)

    def fail(*args: Any, **kwargs: Any) -> None:
        raise exc

    gateway._api.status_post = fail
    with pytest.raises(kind) as raised:
        gateway.post(post("a"), None)
    assert status == raised.value.status  # type: ignore[attr-defined]
    assert gateway.calls == 1


@pytest.mark.parametrize(("pinned", "raises"), [
    pytest.param(True, False, id="already-pinned-is-done"),
    pytest.param(False, True, id="too-many-pins-is-permanent"),
])
def test_pin_422_is_checked_against_the_status(pinned: bool, raises: bool) -> None:
    """Mastodon's 422 texts are translated, so a 422 on pin is checked by reading the status."""
    gateway = MastodonGateway("http://127.0.0.1:9", "t")
    exc = _mastodon_error("MastodonAPIError", "Mastodon API returned error", 422, "x",
                          "Validierung fehlgeschlagen")

    def fail(*args: Any, **kwargs: Any) -> None:
        raise exc

    gateway._api.status_pin = fail
    gateway._api.status = lambda status_id: {"id": status_id, "pinned": pinned}
    if raises:
        with pytest.raises(PermanentError):
            gateway.pin("7")
    else:
        gateway.pin("7")
    assert gateway.calls == 2


def test_unpin_of_deleted_status_is_done() -> None:
    """Unpinning a status that is gone (404) leaves nothing to do."""
    gateway = MastodonGateway("http://127.0.0.1:9", "t")
    exc = _mastodon_error("MastodonNotFoundError", "Mastodon API returned error", 404, "x", "x")

    def fail(*args: Any, **kwargs: Any) -> None:
        raise exc

    gateway._api.status_unpin = fail
    gateway.unpin("7")
    assert gateway.calls == 1


def test_error_messages_never_carry_the_token() -> None:
    """Even an error text that quotes the token is scrubbed."""
    gateway = MastodonGateway("http://127.0.0.1:9", "s3cr3t-t0ken")
    exc = _mastodon_error("MastodonNetworkError", "header Bearer s3cr3t-t0ken rejected")

    def fail(*args: Any, **kwargs: Any) -> None:
        raise exc

    gateway._api.status_post = fail
    with pytest.raises(RetryableError) as raised:
        gateway.post(post("a"), None)
    assert "s3cr3t" not in str(raised.value) and "<secret>" in str(raised.value)


def test_limits_from_instance_with_defaults() -> None:
    """Instance limits come from configuration; what is missing gets Mastodon's defaults."""
    full = {"configuration": {
        "statuses": {"max_characters": 11000, "characters_reserved_per_url": 23},
        "media_attachments": {"description_limit": 10000},
        "accounts": {"max_pinned_statuses": 4, "max_profile_fields": 6}}}
    assert InstanceLimits(11000, 10000, 4, 6, 23) == limits_from_instance(full)
    assert InstanceLimits() == limits_from_instance({})
    assert InstanceLimits().max_characters == 500


@pytest.mark.parametrize(("fields", "expected"), [
    pytest.param([], [("Status", "ok")], id="empty"),
    pytest.param([("Admin", "@ops"), ("Status", "down")], [("Admin", "@ops"), ("Status", "ok")],
                 id="replace-in-place"),
    pytest.param([("a", "1"), ("b", "2")], [("a", "1"), ("b", "2"), ("Status", "ok")],
                 id="append"),
    pytest.param([("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")],
                 [("a", "1"), ("b", "2"), ("c", "3"), ("Status", "ok")], id="full-replaces-last"),
])
def test_profile_field_merge(fields: list[tuple[str, str]],
                             expected: list[tuple[str, str]]) -> None:
    """Setting the status field keeps every other field."""
    assert expected == merge_profile_field(fields, "Status", "ok", 4)


def test_console_gateway_prints_what_members_see() -> None:
    """The console shows visibility, CW, thread and pin; a repeated key is one post."""
    out = io.StringIO()
    console = ConsoleGateway(out)
    gateways: list[Gateway] = [console, RecordingGateway()]  # both implement the port
    assert all(isinstance(g, Gateway) for g in gateways)
    first = console.post(Post(key="k1", kind=PostKind.NOTICE, text="Timelines are late.",
                              visibility="public", created_at=T0, spoiler_text="Server trouble"),
                         None)
    second = console.post(post("k2", PostKind.UPDATE), first)
    console.pin(first)
    assert first == console.post(post("k1"), None)
    text = out.getvalue()
    assert "public" in text and "CW: Server trouble" in text and "Timelines are late." in text
    assert f"reply to #{first}" in text and f"#{first} pinned" in text
    assert int(second) > int(first)
    assert text.count("[k1]") == 1


# --- media ------------------------------------------------------------------------------------


def image(tmp_path: Path, name: str = "chart.png") -> str:
    """A file the bot wrote before queueing the post (content does not matter to the fake)."""
    path = tmp_path / name
    path.write_bytes(b"\x89PNG\r\n\x1a\n")
    return str(path)


def with_media(key: str, *media: tuple[str, str], kind: PostKind = PostKind.STATUS) -> Post:
    return Post(key=key, kind=kind, text=f"text of {key}", visibility="public", created_at=T0,
                media=media)


def uploads(gateway: RecordingGateway) -> list[tuple[object, ...]]:
    return [call.args for call in gateway.calls_to("upload_media")]


def test_media_is_uploaded_once_across_retries_and_a_restart(
        tmp_path: Path, gateway: RecordingGateway, clock: Clock) -> None:
    """Uploaded ids are committed at once: a 503 on the post, then a crash, upload nothing again."""
    path = tmp_path / "state.sqlite3"
    chart = image(tmp_path)
    gateway.media_polls[chart] = 1
    gateway.script("post", RetryableError("post: HTTP 503", status=503))
    with Store(path) as store:
        outbox = make_outbox(store, gateway, clock)
        outbox.enqueue([with_media("report", (chart, "memory chart"))])
        report = outbox.deliver(clock.now)
        assert [d.reason for d in report.decisions] == [Reason.MEDIA_UPLOADED,
                                                        Reason.MEDIA_PROCESSING]
        clock.advance(5)
        report = outbox.deliver(clock.now)  # processed now; the post gets a 503
        assert report.decisions[-1].reason is Reason.RETRY
        gateway.script("media_ready", Crash())
        store.mark_media_ready("report", False)  # make the next pass poll, and die there
        clock.advance(60)
        with pytest.raises(Crash):
            outbox.deliver(clock.now)
    with Store(path) as store:  # the restart
        item = store.get("report")
        assert item is not None and len(item.media_ids) == 1
        assert make_outbox(store, gateway, clock).deliver(clock.now).sent == ("report",)
        assert state(store, "report") is ItemState.SENT
    assert uploads(gateway) == [(chart, "memory chart")]
    [status] = gateway.statuses.values()
    assert status.media_ids == item.media_ids


def test_waits_for_processing_without_holding_other_posts(
        tmp_path: Path, outbox: Outbox, store: Store, gateway: RecordingGateway,
        clock: Clock) -> None:
    """A 202 upload is polled on later passes, 5 s apart; the next post goes out meanwhile."""
    video = image(tmp_path, "clip.mp4")
    gateway.media_polls[video] = 2
    outbox.enqueue([with_media("report", (video, "a clip")), post("after")])
    first = outbox.deliver(clock.now)
    assert first.sent == ("after",)
    assert first.paused_until is None and store.get_state(GATE_STATE) is None
    item = store.get("report")
    assert item is not None and item.next_attempt_at == clock.now + 5
    assert outbox.deliver(clock.advance(1)).calls == 0  # not due yet
    assert outbox.deliver(clock.advance(4)).sent == ()
    assert outbox.deliver(clock.advance(5)).sent == ("report",)
    assert len(gateway.calls_to("media_ready")) == 3
    assert posted(gateway) == [("after", None), ("report", None)]
    assert len(uploads(gateway)) == 1
    assert gateway.calls_to("post")[-1].args[2] == item.media_ids


def test_processed_upload_costs_no_poll(tmp_path: Path, outbox: Outbox,
                                        gateway: RecordingGateway, clock: Clock) -> None:
    """An image processed at once: limits, upload, post; nothing else."""
    outbox.enqueue([with_media("report", (image(tmp_path), "chart"))])
    report = outbox.deliver(clock.now)
    assert report.sent == ("report",)
    assert [c.method for c in gateway.log] == ["limits", "upload_media", "post"]


def test_422_not_processed_is_retried_not_failed(tmp_path: Path, outbox: Outbox, store: Store,
                                                 gateway: RecordingGateway,
                                                 clock: Clock) -> None:
    """Posting too early gets a 422: the post is retried shortly, with the same upload."""
    gateway.script("post", PermanentError(
        "post: HTTP 422: Cannot attach files that have not finished processing. "
        "Try again in a moment!", status=422))
    outbox.enqueue([with_media("report", (image(tmp_path), "chart"))])
    first = outbox.deliver(clock.now)
    assert first.failures == () and first.decisions[-1].reason is Reason.MEDIA_PROCESSING
    assert store.get_state(GATE_STATE) is None
    assert outbox.deliver(clock.advance(5)).sent == ("report",)
    assert len(uploads(gateway)) == 1 and len(gateway.calls_to("post")) == 2


def test_422_in_another_language_polls_the_media(tmp_path: Path, outbox: Outbox,
                                                 gateway: RecordingGateway,
                                                 clock: Clock) -> None:
    """A translated 422 is about processing when an attachment turns out not ready."""
    chart = image(tmp_path)
    outbox.enqueue([with_media("report", (chart, "chart"))])
    gateway.media_polls[chart] = 0
    gateway.script("post", PermanentError("post: HTTP 422: Fichiers en cours", status=422))
    gateway.script("media_ready", None)
    outbox.deliver(clock.now)  # upload (ready), 422, poll says ready: a genuine refusal
    assert [i.key for i in outbox.store.items([ItemState.FAILED])] == ["report"]


def test_genuine_422_with_media_fails_once(tmp_path: Path, store: Store,
                                           gateway: RecordingGateway, clock: Clock) -> None:
    """A 422 that is not about processing (all media ready) fails the post for good."""
    outbox = make_outbox(store, gateway, clock, failure_notice=refused)
    gateway.script("post", PermanentError("post: HTTP 422: Text is too long", status=422))
    outbox.enqueue([with_media("report", (image(tmp_path), "chart"))])
    report = outbox.deliver(clock.now)
    assert [(i.key, i.error_status) for i in report.failures] == [("report", 422)]


def test_missing_file_fails_for_good(tmp_path: Path, store: Store, gateway: RecordingGateway,
                                     clock: Clock) -> None:
    """A file that is not there: no request, the post fails once, admins are told."""
    outbox = make_outbox(store, gateway, clock, failure_notice=refused)
    outbox.enqueue([with_media("report", (str(tmp_path / "gone.png"), "chart")),
                    post("after")])
    report = outbox.deliver(clock.now)
    assert [i.key for i in report.failures] == ["report"]
    assert "no such file" in (report.failures[0].last_error or "")
    assert uploads(gateway) == [] and "after" in report.sent
    assert store.get("refused:report") is not None  # the admin message, queued with it
    assert outbox.deliver(clock.advance(60)).failures == ()


def test_description_is_cut_to_the_instance_limit(tmp_path: Path, store: Store,
                                                  clock: Clock) -> None:
    """Alt text longer than description_limit is cut (ending with an ellipsis)."""
    gateway = RecordingGateway(clock=clock, limits_value=InstanceLimits(description_limit=10))
    outbox = make_outbox(store, gateway, clock)
    outbox.enqueue([with_media("report", (image(tmp_path), "Memory use stayed below half"))])
    outbox.deliver(clock.now)
    [(_, description)] = uploads(gateway)
    assert description == "Memory us…" and len(str(description)) == 10
    item = store.get("report")
    assert item is not None and item.post.media[0][1] == "Memory use stayed below half"


def test_lost_upload_is_uploaded_again(tmp_path: Path, outbox: Outbox, store: Store,
                                       gateway: RecordingGateway, clock: Clock) -> None:
    """A 404 on the poll (the instance cleaned the upload up): upload again, then post."""
    chart = image(tmp_path)
    gateway.media_polls[chart] = 1
    gateway.script("media_ready", PermanentError("media: HTTP 404: not found", status=404))
    outbox.enqueue([with_media("report", (chart, "chart"))])
    assert outbox.deliver(clock.now).decisions[-1].reason is Reason.MEDIA_PROCESSING
    assert store.get("report") is not None and store.get("report").media_ids == ()  # type: ignore[union-attr]
    gateway.media_polls[chart] = 0
    assert outbox.deliver(clock.advance(5)).sent == ("report",)
    assert len(uploads(gateway)) == 2


def test_media_never_processed_fails_after_the_timeout(tmp_path: Path, store: Store,
                                                       gateway: RecordingGateway,
                                                       clock: Clock) -> None:
    """Processing that never ends does not hold the post forever."""
    outbox = make_outbox(store, gateway, clock, media_timeout_s=60.0)
    chart = image(tmp_path)
    gateway.media_polls[chart] = 10**6
    outbox.enqueue([with_media("report", (chart, "chart"))])
    for _ in range(14):
        outbox.deliver(clock.advance(5))
    assert state(store, "report") is ItemState.FAILED


def test_schema_3_file_is_migrated_with_its_rows(tmp_path: Path) -> None:
    """A version 3 file gets the media columns; its queued post survives without media."""
    import sqlite3

    from bot import store as store_module

    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(store_module._SCHEMA + store_module._MIGRATIONS[2]
                         + store_module._MIGRATIONS[3])
        db.execute("INSERT INTO schema_version (version) VALUES (3)")
        db.execute("INSERT INTO outbox (key, kind, text, visibility, created_at) "
                   "VALUES ('old', 'notice', 'queued before the upgrade', 'public', ?)", (T0,))
    with Store(path) as store:
        item = store.get("old")
        assert item is not None
        assert (item.post.text, item.post.media, item.media_ids) == (
            "queued before the upgrade", (), ())
        store.enqueue([with_media("new", ("/tmp/x.png", "alt"))])
        new = store.get("new")
        assert new is not None and new.post.media == (("/tmp/x.png", "alt"),)
    with sqlite3.connect(path) as db:
        version = db.execute("SELECT max(version) FROM schema_version").fetchone()[0]
    assert version == store_module.SCHEMA_VERSION


def test_console_and_fake_show_media_and_activity(tmp_path: Path) -> None:
    """The console prints the attachment; activity is [] there, scripted in the fake."""
    out = io.StringIO()
    console = ConsoleGateway(out)
    chart = image(tmp_path)
    media_id = console.upload_media(chart, "memory chart")
    assert console.media_ready(media_id)
    console.post(with_media("k", (chart, "memory chart")), None, media_ids=[media_id])
    assert f"[image: {chart}, alt: memory chart]" in out.getvalue()
    assert console.instance_activity() == []
    with pytest.raises(PermanentError):
        console.upload_media(str(tmp_path / "gone.png"), "x")
    fake = RecordingGateway(activity=[{"week": 1, "statuses": 2, "logins": 3,
                                       "registrations": 0},
                                      {"week": 8, "statuses": 5, "logins": 6,
                                       "registrations": 1}])
    assert [w["week"] for w in fake.instance_activity()] == [8, 1]


def test_activity_from_the_api() -> None:
    """Mastodon's strings (or Mastodon.py's datetimes) become ints, newest week first."""
    from datetime import datetime, timezone

    from bot.apidata import activity_from_api

    weeks = [{"week": "1574553600", "statuses": "37", "logins": "12", "registrations": "1"},
             {"week": datetime(2019, 12, 1, tzinfo=timezone.utc), "statuses": 5, "logins": 2,
              "registrations": 0},
             {"statuses": "1"}]
    assert activity_from_api(weeks) == [
        {"week": 1575158400, "statuses": 5, "logins": 2, "registrations": 0},
        {"week": 1574553600, "statuses": 37, "logins": 12, "registrations": 1}]
    assert activity_from_api(None) == []


def test_real_gateway_maps_media_calls() -> None:
    """upload_media refuses a missing file before any request; 206/url None is not ready."""
    gateway = MastodonGateway("http://127.0.0.1:9", "t")
    with pytest.raises(PermanentError) as raised:
        gateway.upload_media("/nonexistent/chart.png", "x")
    assert raised.value.status is None and gateway.calls == 0
    gateway._api.media = lambda media_id: {"id": media_id, "url": None}
    assert gateway.media_ready("7") is False
    gateway._api.media = lambda media_id: {"id": media_id, "url": "https://x/y.png"}
    assert gateway.media_ready("7") is True
    assert gateway.media_ready("7") is True and gateway.calls == 2  # remembered
    exc = _mastodon_error("MastodonNotFoundError", "Mastodon API returned error", 404,
                          "Not Found", None)

    def not_found() -> None:
        raise exc

    gateway._api.instance_activity = not_found
    assert gateway.instance_activity() == []


# --- a missing endpoint (api_base_url with a path) is a configuration error ------------------

NOT_FOUND = PermanentError("post: HTTP 404: Not Found Endpoint not found.", status=404)
RECORD_GONE = PermanentError("post: HTTP 404: Not Found Record not found", status=404)


@pytest.mark.parametrize(("reply", "probe", "sent", "reason"), [
    pytest.param(False, None, (), Reason.ENDPOINT_MISSING, id="top-level-post-404"),
    pytest.param(True, PermanentError("verify_credentials: HTTP 404", status=404), (),
                 Reason.ENDPOINT_MISSING, id="reply-404-and-account-404"),
    pytest.param(True, RetryableError("verify_credentials: HTTP 503", status=503), (),
                 Reason.RETRY, id="reply-404-and-instance-down"),
    pytest.param(True, PermanentError("verify_credentials: HTTP 401", status=401), (),
                 Reason.CREDENTIALS_REJECTED, id="reply-404-and-token-rejected"),
    pytest.param(True, None, ("update",), Reason.SENT_WITHOUT_PARENT,
                 id="reply-404-and-account-ok-parent-deleted"),
])
def test_404_on_posting_pauses_unless_the_parent_is_gone(
        outbox: Outbox, store: Store, gateway: RecordingGateway, clock: Clock, reply: bool,
        probe: BaseException | None, sent: tuple[str, ...], reason: Reason) -> None:
    """A 404 pauses delivery (the endpoint is missing) unless the account reads fine."""
    if reply:
        outbox.enqueue([post("open")])
        outbox.deliver(clock())
    outbox.enqueue([post("update", PostKind.UPDATE, parent="open" if reply else None)])
    gateway.script("post", RECORD_GONE if reply else NOT_FOUND)
    if probe is not None:
        gateway.script("probe", probe)
    report = outbox.deliver(clock.advance(60))
    assert report.sent == sent and report.failures == ()
    assert reason in {d.reason for d in report.decisions}
    assert len(gateway.calls_to("probe")) == (1 if reply else 0)
    if not sent:
        assert state(store, "update") == ItemState.PENDING
        assert report.paused_until == clock() + 30.0
        item = store.get("update")
        assert item is not None and item.first_attempt_at is None  # 404: nothing was created
        clock.now = report.paused_until  # the URL is fixed: the post goes out, once
        assert outbox.deliver(clock()).sent == ("update",)
    assert [p.text for p in (s.post for s in gateway.statuses.values())].count(
        "text of update") == 1


def test_missing_endpoint_backs_off_and_is_logged_once(
        outbox: Outbox, store: Store, gateway: RecordingGateway, clock: Clock,
        caplog: pytest.LogCaptureFixture) -> None:
    """Every post 404s for an hour: backoff, one error in the log, no post failed."""
    outbox.enqueue([post("open", pin=True), post("dm", PostKind.ADMIN, visibility="direct")])
    gateway.script("post", *[NOT_FOUND] * 20)
    waits = []
    with caplog.at_level("WARNING", logger="bot.outbox"):
        for _ in range(6):
            report = outbox.deliver(clock())
            assert report.failures == () and report.calls == 1
            assert report.paused_until is not None
            waits.append(report.paused_until - clock())
            clock.now = report.paused_until
    assert waits == [30.0, 60.0, 120.0, 240.0, 480.0, 900.0]
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "api_base_url" in errors[0].getMessage()
    assert store.counts()["failed"] == 0
    gate = store.get_state(GATE_STATE)
    assert gate is not None and gate["reason"].startswith("endpoint_missing")


def test_missing_endpoint_for_media_pauses(tmp_path: Path, outbox: Outbox, store: Store,
                                           gateway: RecordingGateway, clock: Clock) -> None:
    """An upload that 404s while the account 404s too pauses; the post is not failed."""
    outbox.enqueue([with_media("report", (image(tmp_path), "chart"))])
    gateway.script("upload_media", PermanentError("upload: HTTP 404", status=404))
    gateway.script("probe", PermanentError("verify_credentials: HTTP 404", status=404))
    report = outbox.deliver(clock())
    assert report.failures == () and report.decisions[-1].reason == Reason.ENDPOINT_MISSING
    clock.now = report.paused_until or 0.0
    assert outbox.deliver(clock()).sent == ("report",)


def test_stale_probe_404_is_not_taken_for_up(store: Store, gateway: RecordingGateway,
                                             clock: Clock) -> None:
    """Before summing an outage up, a 404 probe means the URL is wrong: nothing is folded."""
    outbox = make_outbox(store, gateway, clock)
    outbox.enqueue([post("open")])
    gateway.script("post", RetryableError("HTTP 503", status=503))
    outbox.deliver(clock())
    gateway.script("probe", PermanentError("verify_credentials: HTTP 404", status=404))
    report = outbox.deliver(clock.advance(WINDOW + 1))
    assert report.folded == () and report.sent == ()
    assert Reason.ENDPOINT_MISSING in {d.reason for d in report.decisions}


# --- re-queueing failed posts -------------------------------------------------------------------


def failed_by_old_bot(store: Store, *keys: str, at: float = T0) -> None:
    """Queue ``keys`` and fail them with a 404, as a bot before the 404 pause did."""
    store.enqueue([post(key, pin=key == keys[0]) for key in keys])
    for key in keys:
        store.mark_attempt(key, at)
        assert store.mark_failed(key, "post: HTTP 404: Endpoint not found.", 404, at)


@pytest.mark.parametrize(("before", "after", "requeued"), [
    pytest.param(None, "https://social.example", (), id="first-start-nothing-known"),
    pytest.param("https://social.example", "https://social.example/", (),
                 id="same-url-trailing-slash"),
    pytest.param("https://social.example/mastodon", "https://social.example", ("open", "dm"),
                 id="path-removed"),
    pytest.param("https://old.example", "https://social.example", ("open", "dm"),
                 id="moved"),
])
def test_start_with_another_url_requeues_failed_posts(
        tmp_path: Path, gateway: RecordingGateway, clock: Clock, before: str | None,
        after: str, requeued: tuple[str, ...]) -> None:
    """Failed posts are queued again when the bot starts with another instance URL."""
    path = tmp_path / "state.sqlite3"
    store = Store(path)
    failed_by_old_bot(store, "open", "dm")
    if before is not None:
        store.put_state("outbox.destination", {"url": before})
    outbox = make_outbox(store, gateway, clock, destination=after)
    assert tuple(outbox.requeued_on_start) == requeued
    report = outbox.deliver(clock.advance(60))
    assert report.sent == requeued
    if requeued:
        assert gateway.pinned == [store.status_id("open")]  # its pin is due again
        again = make_outbox(Store(path), gateway, clock, destination=after)
        assert again.requeued_on_start == []  # remembered: once only
        assert store.get_state("outbox.destination") == {"url": after.rstrip("/")}


def test_old_failures_are_not_requeued_on_a_url_change(
        gateway: RecordingGateway, clock: Clock, store: Store) -> None:
    """Only posts failed in the last day come back; older ones stay failed."""
    failed_by_old_bot(store, "old", at=T0 - 2 * 86400)
    failed_by_old_bot(store, "recent", at=T0 - 3600)
    store.put_state("outbox.destination", {"url": "https://old.example"})
    outbox = make_outbox(store, gateway, clock, destination="https://social.example")
    assert outbox.requeued_on_start == ["recent"]


@pytest.mark.parametrize(("url", "stored"), [
    pytest.param("https://bot:hunter2@social.example:8443/x/?token=abc#f",
                 "https://social.example:8443/x", id="credentials-and-query-dropped"),
    pytest.param("http://[::1]:3000", "http://[::1]:3000", id="ipv6"),
    pytest.param("https://social.example:99999", "<unparsable URL>", id="bad-port"),
])
def test_destination_is_stored_without_secrets(store: Store, gateway: RecordingGateway,
                                               clock: Clock, url: str, stored: str) -> None:
    """The URL remembered (and logged) never carries a password or a query."""
    outbox = make_outbox(store, gateway, clock, destination=url)
    outbox.enqueue([post("a")])
    outbox.deliver(clock())
    assert store.get_state("outbox.destination") == {"url": stored}


@pytest.mark.parametrize("value", [
    pytest.param({"url": 42}, id="not-a-string"),
    pytest.param({}, id="empty"),
    pytest.param({"url": "x" * 100_000}, id="huge"),
])
def test_odd_stored_destination_is_harmless(store: Store, gateway: RecordingGateway,
                                            clock: Clock, value: dict[str, Any]) -> None:
    """A stored destination that is not a URL string re-queues nothing unless it differs."""
    failed_by_old_bot(store, "a")
    store.put_state("outbox.destination", value)
    outbox = make_outbox(store, gateway, clock, destination="https://social.example")
    expected = ["a"] if isinstance(value.get("url"), str) else []
    assert outbox.requeued_on_start == expected


# --- superseded updates after an outage -----------------------------------------------------------


REMINDER = "Still ongoing since 14:05: your posts reach people on other servers late."


def said(key: str, text: str, kind: PostKind = PostKind.UPDATE, *, at: float,
         parent: str | None = "inc:0", unpin: str | None = None) -> Post:
    return Post(key=key, kind=kind, text=text, visibility="public", created_at=at,
                spoiler_text="Service update", parent_key=parent, unpin_key=unpin)


def test_burst_after_a_short_outage_is_folded(store: Store, gateway: RecordingGateway,
                                              clock: Clock) -> None:
    """135 s down, five queued replies: the one tried and the newest go out, the rest fold."""
    outbox = make_outbox(store, gateway, clock)
    outbox.enqueue([post("inc:0", pin=True)])
    outbox.deliver(clock())
    gateway.down = RetryableError("HTTP 503", status=503)
    queued = [said("inc:1", REMINDER, at=clock.advance(15)),
              said("inc:2", REMINDER, at=clock.advance(30)),
              said("inc:3", "Worse: home timelines are delayed too.", at=clock.advance(30)),
              said("inc:4", REMINDER, at=clock.advance(30)),
              said("inc:5", "Better: home timelines are back to normal.", at=clock.advance(30))]
    for item in queued:
        outbox.enqueue([item])
        outbox.deliver(item.created_at)
    gateway.down = None  # back at T0 + 150; the backoff runs out a little later
    gate = store.get_state(GATE_STATE)
    assert gate is not None
    clock.now = gate["until"]
    report = outbox.deliver(clock())
    # inc:1 was tried during the outage (a 503 may come after the status was created),
    # so it is sent with its key; everything between it and the newest is superseded.
    assert report.sent == ("inc:1", "inc:5")
    assert report.superseded == ("inc:2", "inc:3", "inc:4")
    for key in report.superseded:
        dropped = store.get(key)
        assert dropped is not None and dropped.state is ItemState.FOLDED
        assert dropped.folded_into == "inc:5" and dropped.last_error == "superseded by inc:5"
    texts = gateway.texts()
    assert texts.count(REMINDER) == 1 and len(texts) == 3


@pytest.mark.parametrize(("queue", "sent", "superseded"), [
    pytest.param([("inc:1", REMINDER, PostKind.UPDATE, "inc:0"),
                  ("inc:2", REMINDER, PostKind.UPDATE, "inc:0")],
                 ("inc:2",), ("inc:1",), id="reminder-superseded-by-reminder"),
    pytest.param([("inc:1", "Worse.", PostKind.UPDATE, "inc:0"),
                  ("inc:2", "Better.", PostKind.UPDATE, "inc:0"),
                  ("inc:3", "Resolved.", PostKind.RESOLUTION, "inc:0")],
                 ("inc:3",), ("inc:1", "inc:2"), id="resolution-supersedes-updates"),
    pytest.param([("inc:1", "Worse.", PostKind.UPDATE, "inc:0"),
                  ("other:1", "Other thread.", PostKind.UPDATE, "other:0")],
                 ("inc:1", "other:1"), (), id="other-thread-untouched"),
    pytest.param([("inc:1", "Worse.", PostKind.UPDATE, "inc:0"),
                  ("inc:2", "Better.", PostKind.UPDATE, "inc:1")],
                 ("inc:1", "inc:2"), (), id="a-parent-is-never-dropped"),
    pytest.param([("inc:1", "Worse.", PostKind.UPDATE, "inc:0"),
                  ("dm", "@admin worse", PostKind.ADMIN, None)],
                 ("inc:1", "dm"), (), id="admin-message-untouched"),
    pytest.param([("inc:1", "Worse.", PostKind.UPDATE, "inc:0"),
                  ("ans", "@x fine", PostKind.REPLY, "status:9"),
                  ("ans2", "@x fine", PostKind.REPLY, "status:9")],
                 ("inc:1", "ans", "ans2"), (), id="replies-to-mentions-untouched"),
])
def test_superseded_updates_are_folded(store: Store, gateway: RecordingGateway, clock: Clock,
                                       queue: list[tuple[str, str, PostKind, str | None]],
                                       sent: tuple[str, ...],
                                       superseded: tuple[str, ...]) -> None:
    """Queued updates of a thread: only the newest goes out, marked; other posts are kept."""
    outbox = make_outbox(store, gateway, clock)
    outbox.enqueue([post("inc:0"), post("other:0")])
    outbox.deliver(clock())
    outbox.enqueue([said(key, text, kind, at=clock(), parent=parent)
                    for key, text, kind, parent in queue])
    report = outbox.deliver(clock.advance(30))
    assert report.sent == sent and report.superseded == superseded
    assert {d.key for d in report.decisions if d.reason is Reason.SUPERSEDED} == set(superseded)


@pytest.mark.parametrize(("queued", "later", "superseded"), [
    pytest.param(REMINDER, 60.0, ("inc:2",), id="identical-a-minute-later"),
    pytest.param(REMINDER, 3599.0, ("inc:2",), id="identical-within-the-window"),
    pytest.param(REMINDER, 7200.0, (), id="identical-reminder-hours-later-goes-out"),
    pytest.param("Better.", 60.0, (), id="different-text-goes-out"),
])
def test_identical_text_never_twice_in_a_row(store: Store, gateway: RecordingGateway,
                                             clock: Clock, queued: str, later: float,
                                             superseded: tuple[str, ...]) -> None:
    """An update repeating the thread's last post word for word soon after is not sent."""
    outbox = make_outbox(store, gateway, clock)
    outbox.enqueue([post("inc:0"), said("inc:1", REMINDER, at=clock())])
    outbox.deliver(clock())
    outbox.enqueue([said("inc:2", queued, at=clock.advance(later))])
    report = outbox.deliver(clock())
    assert report.superseded == superseded
    assert len(gateway.texts()) == 3 - len(superseded)
    if superseded:
        item = store.get("inc:2")
        assert item is not None and item.folded_into == "inc:1"


def test_attempted_update_is_never_superseded(store: Store, gateway: RecordingGateway,
                                              clock: Clock) -> None:
    """An update whose answer was lost may exist: it is re-sent with its key, not dropped."""
    outbox = make_outbox(store, gateway, clock)
    outbox.enqueue([post("inc:0")])
    outbox.deliver(clock())
    outbox.enqueue([said("inc:1", "Worse.", at=clock())])
    gateway.script("post", Lost(RetryableError("read timed out")))
    outbox.deliver(clock())
    outbox.enqueue([said("inc:2", "Better.", at=clock.advance(10))])
    report = outbox.deliver(clock.advance(30))
    assert report.sent == ("inc:1", "inc:2") and report.superseded == ()
    assert gateway.texts().count("Worse.") == 1


@pytest.mark.parametrize("crash", [
    pytest.param(Crash(), id="killed-before-the-request"),
    pytest.param(Lost(Crash()), id="killed-after-the-server-posted"),
])
def test_sigkill_after_superseding_loses_nothing_twice(tmp_path: Path, gateway: RecordingGateway,
                                                       clock: Clock,
                                                       crash: BaseException | Lost) -> None:
    """Killed while the newest update is in flight: the restart sends it once, folds stay."""
    path = tmp_path / "state.sqlite3"
    first = make_outbox(Store(path), gateway, clock)
    first.enqueue([post("inc:0")])
    first.deliver(clock())
    first.enqueue([said("inc:1", REMINDER, at=clock()), said("inc:2", "Worse.", at=clock()),
                   said("inc:3", "Better.", at=clock())])
    gateway.script("post", crash)
    with pytest.raises(Crash):
        first.deliver(clock.advance(30))
    store = Store(path)
    report = make_outbox(store, gateway, clock).deliver(clock.advance(30))
    assert report.sent == ("inc:3",) and report.superseded == ()
    assert gateway.texts() == ["text of inc:0", "Better."]
    assert [i.key for i in store.items([ItemState.FOLDED])] == ["inc:1", "inc:2"]


@pytest.mark.parametrize(("url", "paused"), [
    pytest.param("https://social.example/mastodon", True, id="same-url-still-paused"),
    pytest.param("https://social.example", False, id="fixed-url-starts-afresh"),
])
def test_fixed_url_lifts_the_pause(tmp_path: Path, gateway: RecordingGateway, clock: Clock,
                                   url: str, paused: bool) -> None:
    """A pause earned by 404s at the old URL does not hold the fixed one back."""
    path = tmp_path / "state.sqlite3"
    first = make_outbox(Store(path), gateway, clock, destination="https://social.example/mastodon")
    first.enqueue([post("open")])
    gateway.script("post", *[NOT_FOUND] * 3)
    for _ in range(2):
        clock.now = first.deliver(clock()).paused_until or clock()
    assert first.deliver(clock()).paused_until == clock() + 120.0
    report = make_outbox(Store(path), gateway, clock, destination=url).deliver(clock.advance(1))
    assert (report.sent == ()) is paused


# --- statusbot outbox -------------------------------------------------------------------------


@pytest.mark.parametrize(("argv", "status", "shown", "failed_after"), [
    pytest.param(["outbox"], 0, ["pending  a  notice", "failed   b  notice",
                                 "last error: post: HTTP 404 \\x1b[31mred",
                                 "1 failed: 'statusbot outbox retry'"], 1, id="list"),
    pytest.param(["outbox", "retry"], 0, ["queued again: 1 failed post(s)", "  b"], 0,
                 id="retry-all"),
    pytest.param(["outbox", "retry", "b"], 0, ["queued again: 1"], 0, id="retry-one"),
    pytest.param(["outbox", "retry", "a", "@someone"], 1,
                 ["queued again: 0", "not failed posts, left as they are: a, @someone"], 1,
                 id="retry-not-failed"),
    pytest.param(["outbox", "list", "b"], 2, ["KEYs go with 'retry'"], 1, id="keys-without-retry"),
])
def test_outbox_command(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
                        status: int, shown: list[str], failed_after: int) -> None:
    """`statusbot outbox` lists queued and failed posts; `retry` queues failed ones again."""
    from bot.cli import main

    config = tmp_path / "statusbot.toml"
    config.write_text(f'[bot]\nstate_dir = "{tmp_path / "state"}"\n')
    store = Store(tmp_path / "state" / "statusbot.sqlite3")
    store.enqueue([post("a"), post("b")])
    store.mark_failed("b", "post: HTTP 404 \x1b[31mred", 404, T0)
    store.close()
    assert main([*argv, "--config", str(config)]) == status
    out = capsys.readouterr()
    for text in shown:
        assert text in out.out + out.err
    assert "\x1b" not in out.out + out.err
    store = Store(tmp_path / "state" / "statusbot.sqlite3")
    assert store.counts()["failed"] == failed_after


def test_outbox_command_without_state(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No state file yet: said plainly, nothing created."""
    from bot.cli import main

    config = tmp_path / "statusbot.toml"
    config.write_text(f'[bot]\nstate_dir = "{tmp_path / "state"}"\n')
    assert main(["outbox", "--config", str(config)]) == 0
    assert "has not run here yet" in capsys.readouterr().out
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize(("probe", "pinned"), [
    pytest.param(PermanentError("verify_credentials: HTTP 404", status=404), True,
                 id="endpoint-missing-pin-waits"),
    pytest.param(None, False, id="status-gone-pin-failed"),
])
def test_pin_404_waits_when_the_endpoint_is_missing(outbox: Outbox, store: Store,
                                                    gateway: RecordingGateway, clock: Clock,
                                                    probe: BaseException | None,
                                                    pinned: bool) -> None:
    """A pin that 404s is retried later when the account 404s too, else it failed."""
    outbox.enqueue([post("open", pin=True)])
    gateway.script("pin", PermanentError("pin: HTTP 404", status=404))
    if probe is not None:
        gateway.script("probe", probe)
    report = outbox.deliver(clock())
    item = store.get("open")
    assert item is not None and item.state is ItemState.SENT
    assert item.pin_state is (StepState.PENDING if pinned else StepState.FAILED)
    clock.now = report.paused_until or clock.advance(30)
    outbox.deliver(clock())
    assert (gateway.pinned == [store.status_id("open")]) is pinned


# --- destinations: the instance and fallback accounts -------------------------------------

FB = "fallback:backup.example"


def fb_post(key: str, kind: PostKind = PostKind.NOTICE, *, at: float = T0,
            parent: str | None = None) -> Post:
    return Post(key=key, kind=kind, text=f"text of {key}", visibility="public", created_at=at,
                parent_key=parent, destination=FB)


@pytest.mark.parametrize("error", [
    pytest.param(RetryableError("HTTP 503", status=503), id="503"),
    pytest.param(RetryableError("rate limited", status=429, retry_at=T0 + 600), id="429"),
    pytest.param(RetryableError("connection refused"), id="refused"),
    pytest.param(PermanentError("HTTP 401", status=401), id="401"),
])
def test_a_failing_fallback_never_holds_up_the_instance(store: Store, gateway: RecordingGateway,
                                                        clock: Clock, error: Exception) -> None:
    """The fallback server failing pauses only its own queue; the instance's goes out meanwhile."""
    other = RecordingGateway(clock=clock)
    other.down = error
    instance = make_outbox(store, gateway, clock)
    fallback = make_outbox(store, other, clock, route=FB)
    instance.enqueue([post("a"), fb_post("fb:1"), post("b")])
    for _ in range(3):
        assert fallback.deliver(clock()).sent == ()
        report = instance.deliver(clock.advance(10))
    assert [key for key, _ in posted(gateway)] == ["a", "b"]
    assert report.pending == 0 and instance.deliver(clock()).paused_until is None
    assert store.get_state(GATE_STATE) is None
    assert store.get_state(f"{GATE_STATE}:{FB}") is not None
    assert state(store, "fb:1") is ItemState.PENDING
    other.down = None
    clock.advance(1000)  # past any pause, within the idempotency window
    assert fallback.deliver(clock()).sent == ("fb:1",)
    assert [s.post.key for s in other.statuses.values()] == ["fb:1"]


def test_a_failing_instance_never_holds_up_the_fallback(store: Store, gateway: RecordingGateway,
                                                        clock: Clock) -> None:
    """The instance down (its queue paused) leaves the fallback's queue alone, and in order."""
    other = RecordingGateway(clock=clock)
    gateway.down = RetryableError("HTTP 502", status=502)
    instance = make_outbox(store, gateway, clock)
    fallback = make_outbox(store, other, clock, route=FB)
    instance.enqueue([post("a"), fb_post("fb:1"), fb_post("fb:2", PostKind.UPDATE,
                                                          parent="fb:1")])
    assert instance.deliver(clock()).paused_until is not None
    report = fallback.deliver(clock())
    assert report.sent == ("fb:1", "fb:2")
    first, second = other.statuses.values()
    assert second.in_reply_to_id == first.id  # threaded on the fallback server
    assert gateway.statuses == {} and state(store, "a") is ItemState.PENDING


def test_exactly_once_per_destination_across_a_restart(tmp_path: Path, clock: Clock) -> None:
    """An answer lost before the store recorded it: after a restart, the same key, one status."""
    path = tmp_path / "state.sqlite3"
    home, away = RecordingGateway(clock=clock), RecordingGateway(clock=clock)
    store = Store(path)
    make_outbox(store, home, clock).enqueue([post("inc:1:notice"), fb_post("fb:1:notice")])
    away.script("post", Lost(RetryableError("read timed out")))
    home.script("post", Lost(RetryableError("read timed out")))
    make_outbox(store, home, clock).deliver(clock())
    make_outbox(store, away, clock, route=FB).deliver(clock())
    store.close()  # the bot dies here
    store = Store(path)
    clock.advance(120)
    make_outbox(store, home, clock).deliver(clock())
    make_outbox(store, away, clock, route=FB).deliver(clock())
    assert [s.post.key for s in home.statuses.values()] == ["inc:1:notice"]
    assert [s.post.key for s in away.statuses.values()] == ["fb:1:notice"]
    assert len(home.calls_to("post")) == 2 and len(away.calls_to("post")) == 2  # resent, once
    assert {i.key: i.state for i in store.items()} == {
        "inc:1:notice": ItemState.SENT, "fb:1:notice": ItemState.SENT}
    store.close()


def test_a_fallback_catchup_stays_on_the_fallback(store: Store, gateway: RecordingGateway,
                                                 clock: Clock) -> None:
    """Stale fallback posts are folded into a catch-up for the same fallback, not the instance."""
    other = RecordingGateway(clock=clock)
    fallback = make_outbox(store, other, clock, route=FB)
    instance = make_outbox(store, gateway, clock)
    fallback.enqueue([fb_post("fb:1")])
    other.down = RetryableError("HTTP 503", status=503)
    fallback.deliver(clock())
    other.down = None
    clock.advance(WINDOW + 100)
    fallback.enqueue([post("a", at=clock())])
    report = fallback.deliver(clock())
    assert report.folded == ("fb:1",) and report.catchup_key is not None
    catchup_item = store.get(report.catchup_key)
    assert catchup_item is not None and catchup_item.post.destination == FB
    assert [s.post.key for s in other.statuses.values()] == [report.catchup_key]
    assert state(store, "a") is ItemState.PENDING  # the instance's own post: not touched
    assert instance.deliver(clock()).sent == ("a",)


def test_a_moved_fallback_requeues_only_its_own_failures(store: Store, clock: Clock) -> None:
    """A fallback URL changed since the last start re-queues that fallback's refused posts only."""
    other = RecordingGateway(clock=clock)
    make_outbox(store, other, clock, route=FB, destination="https://old.example")
    store.enqueue([fb_post("fb:1"), post("a")])
    store.mark_failed("fb:1", "HTTP 404", 404, clock())
    store.mark_failed("a", "HTTP 422", 422, clock())
    moved = make_outbox(store, other, clock, route=FB, destination="https://backup.example")
    assert moved.requeued_on_start == ["fb:1"]
    assert state(store, "a") is ItemState.FAILED
    assert store.get_state(f"outbox.destination:{FB}") == {"url": "https://backup.example"}
    assert store.get_state("outbox.destination") is None
