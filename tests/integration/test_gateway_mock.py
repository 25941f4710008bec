"""The real gateway and outbox against a real mastodon-mock server: posts, threads, faults, SIGKILL.

Each test posts as its own fresh account, so the server's statuses are the
test's alone; faults are cleared after each test. Final state is always
checked through the API: each expected post exactly once, in thread order.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from bot.gateway import PermanentError, RetryableError
from bot.mastodon_api import MastodonGateway
from bot.model import Post, PostKind
from bot.outbox import GATE_STATE, DeliveryReport, Outbox, Reason
from bot.store import ItemState, StepState, Store
from tests.integration.mastodon_mock import REPO, MastodonMock, post_to_json
from tests.integration.servers import wait_for

pytestmark = pytest.mark.integration

TIMEOUT = 2.0
"""The gateway's request timeout in these tests (seconds)."""


@pytest.fixture
def token(server: MastodonMock, request: pytest.FixtureRequest) -> str:
    """A fresh account of the test's own."""
    name = "b" + str(abs(hash(request.node.nodeid)) % 10**10)
    return server.new_account(name)


@pytest.fixture
def gateway(server: MastodonMock, token: str) -> MastodonGateway:
    return MastodonGateway(server.url, token, request_timeout=TIMEOUT)


@pytest.fixture
def store() -> Iterator[Store]:
    s = Store(":memory:")
    yield s
    s.close()


def make_outbox(store: Store, gateway: MastodonGateway) -> Outbox:
    return Outbox(store, gateway, clock=time.time, backoff_base=0.05, backoff_cap=0.2)


def post(key: str, kind: PostKind = PostKind.NOTICE, *, parent: str | None = None,
         pin: bool = False, unpin: str | None = None, visibility: str = "public",
         spoiler: str = "", language: str = "en", text: str | None = None,
         at: float | None = None) -> Post:
    return Post(key=key, kind=kind, text=text or f"Status {key}: home timelines are delayed.",
                visibility=visibility, created_at=time.time() if at is None else at,
                spoiler_text=spoiler, language=language, parent_key=parent, pin=pin,
                unpin_key=unpin)


def run_until_done(outbox: Outbox, timeout: float = 20.0) -> list[DeliveryReport]:
    """Deliver with the real clock until nothing is pending and no pin is left."""
    reports: list[DeliveryReport] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reports.append(outbox.deliver(time.time()))
        if reports[-1].pending == 0 and not outbox.store.followups():
            return reports
        time.sleep(0.05)
    raise AssertionError(f"not delivered in {timeout} s: {reports[-1]}")


def texts(statuses: list[dict[str, Any]]) -> list[str]:
    return [s["content"] for s in statuses]


def iso(epoch: float) -> str:
    """An X-RateLimit-Reset as real Mastodon writes it."""
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- posting ------------------------------------------------------------------------------


@pytest.mark.parametrize(("visibility", "spoiler", "language"), [
    pytest.param("public", "", "en", id="public"),
    pytest.param("unlisted", "Server trouble", "de", id="unlisted-cw-de"),
    pytest.param("direct", "Technical detail", "en", id="direct-cw"),
])
def test_post_as_members_see_it(server: MastodonMock, token: str, gateway: MastodonGateway,
                                visibility: str, spoiler: str, language: str) -> None:
    """Visibility, content warning and language arrive as composed."""
    text = f"@{server.account(token)['username']} queues are slow" if visibility == "direct" \
        else "Posts reach other servers late."
    status_id = gateway.post(post("p1", visibility=visibility, spoiler=spoiler,
                                  language=language, text=text), None)
    [status] = server.statuses(token)
    assert (status["id"], status["visibility"], status["spoiler_text"], status["language"]) == (
        status_id, visibility, spoiler, language)
    assert status["sensitive"] is bool(spoiler)
    assert text.split()[-1] in status["content"]
    assert gateway.calls == 1


def test_idempotency_key_dedupes(server: MastodonMock, token: str,
                                 gateway: MastodonGateway) -> None:
    """The same key twice is one status with one id."""
    first = gateway.post(post("same-key"), None)
    second = gateway.post(post("same-key", text="a different text, same key"), None)
    assert second == first
    assert len(server.statuses(token)) == 1


def test_thread_with_pin_and_unpin(server: MastodonMock, token: str, gateway: MastodonGateway,
                                   store: Store) -> None:
    """Opening pinned, updates threaded under it, resolution unpins it."""
    outbox = make_outbox(store, gateway)
    outbox.enqueue([post("open", pin=True),
                    post("worse", PostKind.UPDATE, parent="open")])
    run_until_done(outbox)
    opening = store.status_id("open")
    assert [s["id"] for s in server.statuses(token, pinned=True)] == [opening]
    outbox.enqueue([post("resolved", PostKind.RESOLUTION, parent="worse", unpin="open")])
    run_until_done(outbox)
    statuses = server.statuses(token)
    assert [s["id"] for s in statuses] == [store.status_id(k) for k in ("open", "worse",
                                                                         "resolved")]
    assert [s["in_reply_to_id"] for s in statuses] == [None, statuses[0]["id"],
                                                       statuses[1]["id"]]
    assert server.statuses(token, pinned=True) == []
    assert gateway.calls == 5  # 3 posts, 1 pin, 1 unpin


def test_limits_from_the_instance(gateway: MastodonGateway) -> None:
    """Limits come from /api/v2/instance (defaults where the mock says nothing); one call."""
    limits = gateway.limits()
    assert (limits.max_characters, limits.max_pinned, limits.description_limit) == (500, 4, 1500)
    gateway.limits()
    assert gateway.calls == 1


def test_profile_field_keeps_the_others(server: MastodonMock, token: str,
                                        gateway: MastodonGateway) -> None:
    """The status field is set, the admin's fields stay, the account becomes a bot."""
    status, _ = server.request("PATCH", "/api/v1/accounts/update_credentials", token=token, form=[
        ("fields_attributes[0][name]", "Admin"), ("fields_attributes[0][value]", "@ops"),
        ("fields_attributes[1][name]", "Status"), ("fields_attributes[1][value]", "unknown"),
        ("fields_attributes[2][name]", "Donate"), ("fields_attributes[2][value]", "https://x")])
    assert status == 200
    gateway.set_profile_field("Status", "All systems normal")
    account = server.account(token)
    assert [(f["name"], f["value"]) for f in account["source"]["fields"]] == [
        ("Admin", "@ops"), ("Status", "All systems normal"), ("Donate", "https://x")]
    assert account["bot"] is True
    calls = gateway.calls
    gateway.set_profile_field("Status", "All systems normal")
    assert gateway.calls == calls + 1  # read only: nothing to change


# --- failures -------------------------------------------------------------------------------


def test_503_burst_then_success(server: MastodonMock, token: str, gateway: MastodonGateway,
                                store: Store) -> None:
    """Three 503s, then the post goes out once; the pauses grow."""
    server.fault({"match": {"methods": ["POST"], "path": "/api/v1/statuses"},
                  "effect": {"type": "status", "status": 503}, "count": 3})
    outbox = make_outbox(store, gateway)
    outbox.enqueue([post("open")])
    reports = run_until_done(outbox)
    retries = [d for r in reports for d in r.decisions if d.reason is Reason.RETRY]
    assert len(retries) == 3 and all("HTTP 503" in d.detail for d in retries)
    assert gateway.calls == 4
    assert len(server.statuses(token)) == 1
    assert store.get_state(GATE_STATE) is None


def test_timeout_is_retried_without_duplicate(server: MastodonMock, token: str,
                                              gateway: MastodonGateway, store: Store) -> None:
    """A hung request times out after request_timeout, the retry posts it once."""
    server.fault({"match": {"methods": ["POST"], "path": "/api/v1/statuses"},
                  "effect": {"type": "timeout"}, "count": 1})
    outbox = make_outbox(store, gateway)
    outbox.enqueue([post("open")])
    started = time.monotonic()
    report = outbox.deliver(time.time())
    assert TIMEOUT <= time.monotonic() - started < TIMEOUT + 2
    assert report.decisions[-1].reason is Reason.RETRY
    run_until_done(outbox)
    assert len(server.statuses(token)) == 1


def test_malformed_answer_is_retried(server: MastodonMock, token: str,
                                     gateway: MastodonGateway, store: Store) -> None:
    """A cut-off JSON answer is retryable; the retry does not duplicate."""
    server.fault({"match": {"methods": ["POST"], "path": "/api/v1/statuses"},
                  "effect": {"type": "malformed"}, "count": 1})
    outbox = make_outbox(store, gateway)
    outbox.enqueue([post("open")])
    run_until_done(outbox)
    assert len(server.statuses(token)) == 1


@pytest.mark.parametrize("kind", ["iso8601", "epoch"])
def test_429_waits_for_reset(server: MastodonMock, token: str, gateway: MastodonGateway,
                             store: Store, kind: str) -> None:
    """X-RateLimit-Reset (ISO 8601 like Mastodon, or the mock's epoch) sets the pause."""
    reset_at = time.time() + (30 if kind == "iso8601" else 300)
    effect: dict[str, Any] = {"type": "ratelimit"}
    if kind == "iso8601":
        effect["headers"] = {"X-RateLimit-Reset": iso(reset_at)}
    server.fault({"match": {"methods": ["POST"], "path": "/api/v1/statuses"},
                  "effect": effect, "count": 1})
    outbox = make_outbox(store, gateway)
    outbox.enqueue([post("open")])
    report = outbox.deliver(time.time())
    assert report.decisions[-1].reason is Reason.RATE_LIMITED
    assert report.paused_until == pytest.approx(reset_at, abs=2.0)
    assert outbox.deliver(reset_at - 5).calls == 0  # still paused
    assert outbox.deliver(reset_at + 2).sent == ("open",)
    assert len(server.statuses(token)) == 1


def test_429_error_carries_retry_at(server: MastodonMock, gateway: MastodonGateway) -> None:
    """The gateway itself turns a 429 into RetryableError(retry_at) from the ISO header."""
    reset_at = time.time() + 42
    server.fault({"match": {"methods": ["POST"], "path": "/api/v1/statuses"},
                  "effect": {"type": "ratelimit", "headers": {"X-RateLimit-Reset": iso(reset_at)}},
                  "count": 1})
    with pytest.raises(RetryableError) as raised:
        gateway.post(post("open"), None)
    assert raised.value.status == 429
    assert raised.value.retry_at == pytest.approx(reset_at, abs=2.0)


@pytest.mark.parametrize("status", [403, 422])
def test_permanent_error_fails_once(server: MastodonMock, token: str, gateway: MastodonGateway,
                                    store: Store, status: int) -> None:
    """An injected 403/422: failed, reported in one report only; the next post goes on."""
    server.fault({"match": {"methods": ["POST"], "path": "/api/v1/statuses"},
                  "effect": {"type": "status", "status": status}, "count": 1})
    outbox = make_outbox(store, gateway)
    outbox.enqueue([post("refused"), post("next")])
    reports = run_until_done(outbox)
    failures = [item for r in reports for item in r.failures]
    assert [(i.key, i.error_status) for i in failures] == [("refused", status)]
    assert [s["id"] for s in server.statuses(token)] == [store.status_id("next")]


def test_too_long_is_refused_by_the_server(server: MastodonMock, token: str,
                                           gateway: MastodonGateway, store: Store) -> None:
    """A genuine 422 (text over max_characters) fails the post for good."""
    outbox = make_outbox(store, gateway)
    outbox.enqueue([post("long", text="x" * 501)])
    report = outbox.deliver(time.time())
    assert [(i.key, i.error_status) for i in report.failures] == [("long", 422)]
    assert "too long" in (report.failures[0].last_error or "")
    assert server.statuses(token) == []


def test_bad_token_is_401_and_never_shown(server: MastodonMock) -> None:
    """A rejected token is a 401 PermanentError whose text and repr do not contain it."""
    gateway = MastodonGateway(server.url, "not-a-valid-token-xyz", request_timeout=TIMEOUT)
    with pytest.raises(PermanentError) as raised:
        gateway.post(post("open"), None)
    assert raised.value.status == 401
    assert "not-a-valid" not in str(raised.value) and "not-a-valid" not in repr(gateway)


def test_unreachable_is_retryable() -> None:
    """Nothing listening: a network error, retryable, quickly."""
    from bot.demo import free_port

    gateway = MastodonGateway(f"http://127.0.0.1:{free_port()}", "t", request_timeout=TIMEOUT)
    with pytest.raises(RetryableError) as raised:
        gateway.post(post("open"), None)
    assert raised.value.status is None


def test_long_outage_ends_in_one_catchup(server: MastodonMock, token: str,
                                         gateway: MastodonGateway, store: Store) -> None:
    """Notices older than the window are not re-sent: one catch-up post replaces them."""
    now = time.time()
    outbox = Outbox(store, gateway, clock=time.time, idempotency_window_s=3000.0,
                    catchup=lambda posts, start, end: Post(
                        key="catchup:1", kind=PostKind.CATCHUP, visibility="public",
                        created_at=end, text=f"Between {start:.0f} and {end:.0f} the server "
                        f"could not post: {len(posts)} notices."))
    outbox.enqueue([post("open", at=now - 4000), post("worse", PostKind.UPDATE,
                                                      parent="open", at=now - 3500)])
    store.mark_attempt("open", now - 4000)
    store.put_state(GATE_STATE, {"until": now - 1, "failures": 9, "reason": "retry: 503",
                                 "since": now - 4000})
    report = outbox.deliver(now)
    assert (report.folded, report.sent) == (("open", "worse"), ("catchup:1",))
    assert report.calls == 2  # the probe (the instance is back), then the catch-up
    assert texts(server.statuses(token)) == [
        f"<p>Between {now - 4000:.0f} and {now:.0f} the server could not post: 2 notices.</p>"]


def test_quiet_hour_costs_nothing(gateway: MastodonGateway, store: Store) -> None:
    """An hour of ticks every 30 s with nothing to say: zero API calls."""
    outbox = make_outbox(store, gateway)
    now = time.time()
    for tick in range(120):
        outbox.deliver(now + 30 * tick)
    assert gateway.calls == 0


# --- SIGKILL --------------------------------------------------------------------------------


def attempted(path: Path, key: str) -> bool:
    try:
        with sqlite3.connect(path) as db:
            row = db.execute("SELECT first_attempt_at FROM outbox WHERE key = ?",
                             (key,)).fetchone()
    except sqlite3.OperationalError:  # the child has created the file, not its tables yet
        return False
    return row is not None and row[0] is not None


def start_child(path: Path, server: MastodonMock, token: str, posts: list[Post],
                stall: float = 0.0) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.integration.mastodon_mock", "deliver", str(path),
         server.url, token, json.dumps([post_to_json(p) for p in posts]), str(stall)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def kill(child: subprocess.Popen[str]) -> None:
    os.kill(child.pid, signal.SIGKILL)
    child.wait(10)
    assert child.returncode == -signal.SIGKILL


@pytest.mark.parametrize("moment", ["in-flight", "answered"])
def test_sigkill_loses_nothing_and_duplicates_nothing(server: MastodonMock, token: str,
                                                      tmp_path: Path, moment: str) -> None:
    """SIGKILL during the first POST; a second process on the same file finishes the thread.

    in-flight: killed while a latency fault holds the request (the mock then
    drops it). answered: killed after the server created the status but before
    the outbox recorded it; the restart re-sends the same Idempotency-Key and
    gets the same status back. Either way every post appears exactly once, in
    thread order, and the opening was pinned and then unpinned.
    """
    path = tmp_path / "state.sqlite3"
    now = time.time()
    posts = [post("open", pin=True, at=now),
             post("worse", PostKind.UPDATE, parent="open", at=now),
             post("resolved", PostKind.RESOLUTION, parent="worse", unpin="open", at=now)]
    if moment == "in-flight":
        server.fault({"match": {"methods": ["POST"], "path": "/api/v1/statuses"},
                      "effect": {"type": "latency", "delay_ms": 3000}, "count": 1})
    child = start_child(path, server, token, posts, stall=30.0 if moment == "answered" else 0.0)
    try:
        wait_for(lambda: path.exists() and attempted(path, "open"), 20, "the first attempt")
        if moment == "in-flight":
            time.sleep(0.5)  # the request is on the wire, held by the latency fault
        else:
            wait_for(lambda: len(server.statuses(token)) == 1, 20, "the server's answer")
        kill(child)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
    with Store(path) as store:
        item = store.get("open")
        assert item is not None
        assert (item.state, item.status_id, item.attempts) == (ItemState.PENDING, None, 1)
    created = len(server.statuses(token))
    assert created == (1 if moment == "answered" else 0)

    second = start_child(path, server, token, [])
    _, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    with Store(path) as store:
        ids = [store.status_id(p.key) for p in posts]
        items = [store.get(p.key) for p in posts]
        assert [(i.attempts, i.pin_state, i.unpin_state) for i in items if i is not None] == [
            (2, StepState.DONE, None), (1, None, None), (1, None, StepState.DONE)]
    statuses = server.statuses(token)
    assert [s["id"] for s in statuses] == ids
    assert [s["in_reply_to_id"] for s in statuses] == [None, ids[0], ids[1]]
    assert server.statuses(token, pinned=True) == []  # pinned, then unpinned by the resolution
    assert len({s["content"] for s in statuses}) == 3


# --- media ----------------------------------------------------------------------------------


def write_png(path: Path, width: int = 4, height: int = 2) -> Path:
    """Write a small valid RGB PNG with zlib and struct only."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    rows = b"".join(b"\x00" + b"\x20\x80\xc0" * width for _ in range(height))
    path.write_bytes(b"\x89PNG\r\n\x1a\n"
                     + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    return path


def test_report_with_its_image_is_posted_once(server: MastodonMock, token: str,
                                              gateway: MastodonGateway, store: Store,
                                              tmp_path: Path) -> None:
    """A post with a PNG goes out once, with its attachment and alt text.

    The same key again (re-queued, or a second outbox on the same server) does
    not duplicate it.
    """
    chart = write_png(tmp_path / "chart.png")
    description = "Memory stayed below half of the server's 8 GB all month."
    report = Post(key="report:2026-05", kind=PostKind.STATUS, text="Monthly report.",
                  visibility="public", created_at=time.time(),
                  media=((str(chart), description),))
    outbox = make_outbox(store, gateway)
    assert outbox.enqueue([report]) == 1
    run_until_done(outbox)
    assert outbox.enqueue([report]) == 0
    run_until_done(outbox)
    [status] = server.statuses(token)
    assert status["id"] == store.status_id("report:2026-05")
    [attachment] = status["media_attachments"]
    assert attachment["description"] == description and attachment["type"] == "image"
    item = store.get("report:2026-05")
    assert item is not None and item.media_ids == (str(attachment["id"]),)
    # Another process with its own outbox posting the same key: the instance dedupes it.
    with Store(":memory:") as other:
        again = make_outbox(other, MastodonGateway(server.url, token, request_timeout=TIMEOUT))
        again.enqueue([report])
        run_until_done(again)
        assert other.status_id("report:2026-05") == status["id"]
    assert len(server.statuses(token)) == 1


def test_upload_errors_map_like_other_calls(server: MastodonMock, gateway: MastodonGateway,
                                            tmp_path: Path) -> None:
    """A 503 on the upload is retryable, a 422 permanent; a processed image is ready at once."""
    chart = str(write_png(tmp_path / "chart.png"))
    server.fault({"match": {"methods": ["POST"], "path": "/api/v2/media"},
                  "effect": {"type": "status", "status": 503}, "count": 1})
    with pytest.raises(RetryableError):
        gateway.upload_media(chart, "alt")
    server.fault({"match": {"methods": ["POST"], "path": "/api/v2/media"},
                  "effect": {"type": "status", "status": 422}, "count": 1})
    with pytest.raises(PermanentError) as raised:
        gateway.upload_media(chart, "alt")
    assert raised.value.status == 422
    media_id = gateway.upload_media(chart, "alt")
    calls = gateway.calls
    assert gateway.media_ready(media_id) and gateway.calls == calls


def test_instance_activity(server: MastodonMock, gateway: MastodonGateway) -> None:
    """Weekly activity as ints, newest first; a 404 (disabled) is []."""
    weeks = gateway.instance_activity()
    assert weeks and set(weeks[0]) == {"week", "statuses", "logins", "registrations"}
    assert [w["week"] for w in weeks] == sorted((w["week"] for w in weeks), reverse=True)
    server.fault({"match": {"methods": ["GET"], "path": "/api/v1/instance/activity"},
                  "effect": {"type": "status", "status": 404}, "count": 1})
    assert gateway.instance_activity() == []


# --- a wrong instance URL, a deleted parent --------------------------------------------------


def outbox_at(store: Store, url: str, token: str) -> Outbox:
    """An outbox delivering to ``url`` (remembered as its destination)."""
    gateway = MastodonGateway(url, token, request_timeout=TIMEOUT)
    return Outbox(store, gateway, clock=time.time, backoff_base=0.05, backoff_cap=0.2,
                  destination=url)


@pytest.mark.parametrize("reply", [False, True], ids=["new-thread", "reply"])
def test_url_with_a_path_pauses_then_publishes_once(server: MastodonMock, token: str,
                                                    store: Store, reply: bool) -> None:
    """api_base_url with a path 404s everywhere: nothing fails; fixed, the post goes out once."""
    if reply:
        outbox_at(store, server.url, token).enqueue([post("open")])
        run_until_done(outbox_at(store, server.url, token))
    wrong = outbox_at(store, server.url + "/mastodon", token)
    wrong.enqueue([post("notice", PostKind.UPDATE, parent="open" if reply else None)])
    reports = []
    for _ in range(4):
        reports.append(wrong.deliver(time.time()))
        time.sleep(0.25)
    assert all(r.failures == () for r in reports)
    assert Reason.ENDPOINT_MISSING in {d.reason for r in reports for d in r.decisions}
    item = store.get("notice")
    assert item is not None and item.state is ItemState.PENDING
    assert len(server.statuses(token)) == (1 if reply else 0)
    run_until_done(outbox_at(store, server.url, token))  # the URL is fixed
    published = [s for s in server.statuses(token) if "Status notice" in s["content"]]
    assert [s["id"] for s in published] == [store.status_id("notice")]
    assert published[0]["in_reply_to_id"] == (store.status_id("open") if reply else None)


def test_reply_to_deleted_parent_is_told_from_a_missing_endpoint(
        server: MastodonMock, token: str, gateway: MastodonGateway, store: Store) -> None:
    """A reply 404s like a wrong URL would, but the account reads fine: sent as a new thread."""
    outbox = make_outbox(store, gateway)
    outbox.enqueue([post("open")])
    run_until_done(outbox)
    server.fault({"match": {"methods": ["POST"], "path": "/api/v1/statuses"},
                  "effect": {"type": "status", "status": 404,
                             "body": {"error": "Record not found"}}, "count": 1})
    outbox.enqueue([post("update", PostKind.UPDATE, parent="open")])
    report = outbox.deliver(time.time())
    assert report.sent == ("update",) and report.paused_until is None
    assert Reason.SENT_WITHOUT_PARENT in {d.reason for d in report.decisions}
    statuses = server.statuses(token)
    assert [(s["id"], s["in_reply_to_id"]) for s in statuses] == [
        (store.status_id("open"), None), (store.status_id("update"), None)]


def test_posts_failed_at_a_wrong_url_are_sent_after_the_move(server: MastodonMock, token: str,
                                                            store: Store) -> None:
    """Posts an older bot failed at a wrong URL go out once when it starts at the right one."""
    store.put_state("outbox.destination", {"url": server.url + "/mastodon"})
    store.enqueue([post("open", pin=True), post("update", PostKind.UPDATE, parent="open")])
    for key in ("open", "update"):
        store.mark_attempt(key, time.time())
        store.mark_failed(key, "post: HTTP 404: Record not found", 404, time.time())
    outbox = outbox_at(store, server.url, token)
    assert outbox.requeued_on_start == ["open", "update"]
    run_until_done(outbox)
    statuses = server.statuses(token)
    assert [s["id"] for s in statuses] == [store.status_id("open"), store.status_id("update")]
    assert [s["id"] for s in server.statuses(token, pinned=True)] == [store.status_id("open")]
