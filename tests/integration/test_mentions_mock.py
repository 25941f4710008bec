"""Mention intake against a real mastodon-mock: stream, cut, restart, policy; each answered once.

The bot (real ``MastodonGateway``, ``Intake`` and ``Outbox`` on a SQLite file)
runs on a thread of its own and reaches the mock through a loopback TCP proxy
that the test can cut and block: a real network cut, which Mastodon.py's
reconnect and the intake's backfill have to survive. Another account posts
the mentions straight to the mock. The final check is made through the API:
one reply per mention, each a reply to its status.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.gateway import Mention, StreamHandle
from bot.mastodon_api import MastodonGateway
from bot.mentions import (
    Intake,
    IntakeReport,
    PolicyResult,
    ReplyLimiter,
    Source,
    reply_key,
    reply_parent,
)
from bot.model import Post, PostKind
from bot.outbox import Outbox
from bot.store import Store
from tests.integration.mastodon_mock import BOT_TOKEN, MastodonMock
from tests.integration.servers import wait_for

pytestmark = pytest.mark.integration


class Proxy:
    """A loopback TCP proxy to the mock that can cut every connection and refuse new ones."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.blocked = False
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.blocked:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            self._drop(source, sink)

    def _drop(self, *sockets: socket.socket) -> None:
        for sock in sockets:
            with self._lock:
                self._sockets.discard(sock)
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def cut(self, block: bool = True) -> None:
        """Drop every open connection (the stream included); refuse new ones when ``block``."""
        self.blocked = block
        with self._lock:
            sockets = list(self._sockets)
        self._drop(*sockets)

    def unblock(self) -> None:
        """Accept connections again."""
        self.blocked = False

    def close(self) -> None:
        self.listener.close()
        self.cut()


class FastGateway(MastodonGateway):
    """The real gateway with the stream's timings shortened for tests."""

    def stream_mentions(self, on_mention: Callable[[Mention], None],
                        on_reconnect: Callable[[], None], *, timeout: float = 5.0,
                        reconnect_wait: float = 0.5) -> StreamHandle:
        return super().stream_mentions(on_mention, on_reconnect, timeout=timeout,
                                       reconnect_wait=reconnect_wait)


def reply_to(mention: Mention) -> list[Post]:
    """What the commands handler would queue: one direct reply to the mention's status."""
    return [Post(key=reply_key(mention), kind=PostKind.REPLY,
                 text=f"@{mention.acct} ok ({mention.notification_id})", visibility="direct",
                 created_at=time.time(), parent_key=reply_parent(mention))]


class Bot:
    """One run of the bot's intake and delivery on a thread: started, then stopped."""

    def __init__(self, path: Path, url: str) -> None:
        self.store = Store(path)
        self.gateway = FastGateway(url, BOT_TOKEN, request_timeout=2.0)
        self.intake = Intake(self.store, self.gateway, reply_to, clock=time.time,
                             retry_base=0.2, retry_cap=0.5, restart_base=0.5,
                             limiter=ReplyLimiter(per_account=1000, total=1000))
        self.outbox = Outbox(self.store, self.gateway, clock=time.time, backoff_base=0.1,
                             backoff_cap=0.5)
        self.reports: list[IntakeReport] = []
        self.errors: list[BaseException] = []
        self.stop_event = threading.Event()
        self.policy = self.intake.start()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.reports.append(self.intake.drain(timeout=0.1))
                self.outbox.deliver(time.time())
            except Exception as exc:  # a bug: the test fails on it
                self.errors.append(exc)

    def sources(self) -> dict[str, Source]:
        return {h.notification_id: h.source for r in self.reports for h in r.handled}

    def stop(self) -> None:
        self.stop_event.set()
        self.intake.wake()
        self.thread.join(10)
        self.intake.close()
        self.store.close()
        assert self.errors == []


def post_mention(server: MastodonMock, token: str, text: str,
                 visibility: str = "direct") -> str:
    """Mention the bot as the account of ``token``; return the status id."""
    status, body = server.request("POST", "/api/v1/statuses", token=token,
                                  form=[("status", f"@statusbot {text}"),
                                        ("visibility", visibility)])
    assert status == 200, body
    return str(body["id"])


def replies_by_parent(server: MastodonMock) -> dict[str, list[str]]:
    """The bot's statuses that reply to something: parent status id -> reply ids."""
    found: dict[str, list[str]] = {}
    for status in server.statuses(BOT_TOKEN):
        if status.get("in_reply_to_id"):
            found.setdefault(str(status["in_reply_to_id"]), []).append(str(status["id"]))
    return found


def wait_answered(server: MastodonMock, status_ids: list[str], timeout: float = 15.0) -> None:
    wait_for(lambda: set(status_ids) <= set(replies_by_parent(server)), timeout,
             f"replies to {status_ids}")


def test_every_mention_answered_once_across_cut_and_restart(server: MastodonMock,
                                                            tmp_path: Path) -> None:
    """The stream is cut while mentions keep arriving, the bot restarts: one reply each."""
    poster = server.new_account("alice")
    proxy = Proxy(server.port)
    path = tmp_path / "state.sqlite3"
    posted: list[str] = []
    try:
        bot = Bot(path, proxy.url)
        assert bot.policy in (PolicyResult.ALREADY, PolicyResult.CHANGED)
        wait_for(lambda: bot.intake.stream_state.value == "receiving", 10, "stream")

        # 1. Over the stream.
        streamed = [post_mention(server, poster, f"status {i}") for i in range(3)]
        posted += streamed
        wait_answered(server, streamed)
        assert set(bot.sources().values()) == {Source.STREAM}

        # 2. The network is cut (stream and API) while mentions keep arriving.
        proxy.cut(block=True)
        during_cut = [post_mention(server, poster, f"queues {i}") for i in range(3)]
        posted += during_cut
        time.sleep(1.0)
        assert not set(during_cut) & set(replies_by_parent(server))
        proxy.unblock()  # Mastodon.py reconnects; the reconnect makes a backfill due
        wait_answered(server, during_cut)
        backfilled = [s for s in bot.sources().values() if s is Source.BACKFILL]
        assert len(backfilled) == 3

        # 3. Mentions arrive while the bot restarts, and while it is down.
        racing = [post_mention(server, poster, f"memory {i}") for i in range(2)]
        bot.stop()
        while_down = [post_mention(server, poster, f"help {i}") for i in range(3)]
        posted += racing + while_down
        bot = Bot(path, proxy.url)
        wait_answered(server, racing + while_down)

        # 4. And over the new stream.
        wait_for(lambda: bot.intake.stream_state.value == "receiving", 10, "stream")
        after = [post_mention(server, poster, f"status again {i}") for i in range(2)]
        posted += after
        wait_answered(server, after)
        time.sleep(0.5)  # a duplicate reply would show up by now
        bot.stop()
    finally:
        proxy.close()

    replies = replies_by_parent(server)
    assert {parent: len(replies[parent]) for parent in posted} == dict.fromkeys(posted, 1)
    with Store(path) as store:
        assert store.counts()["sent"] == len(posted)
        assert store.counts()["pending"] == 0


def test_a_raising_callback_does_not_kill_the_real_stream(server: MastodonMock) -> None:
    """Mastodon.py's thread survives an exception in the mention callback."""
    poster = server.new_account("carol")
    gateway = FastGateway(server.url, BOT_TOKEN, request_timeout=2.0)
    seen: list[str] = []
    connected = threading.Event()

    def on_mention(mention: Mention) -> None:
        seen.append(mention.status_id)
        if len(seen) == 1:
            raise RuntimeError("handler bug")

    handle = gateway.stream_mentions(on_mention, connected.set)
    try:
        assert connected.wait(10)
        first = post_mention(server, poster, "one")
        second = post_mention(server, poster, "two")
        wait_for(lambda: len(seen) == 2, 10, "both mentions")
        assert seen == [first, second] and handle.is_alive()
    finally:
        handle.close()


def test_policy_lets_direct_commands_through(server: MastodonMock, tmp_path: Path) -> None:
    """With private mentions filtered (Mastodon's default), start() accepts them."""
    poster = server.new_account("dave")
    status, body = server.request("PATCH", "/api/v2/notifications/policy", token=BOT_TOKEN,
                                  json_body={"for_private_mentions": "filter"})
    assert status == 200, body
    gateway = MastodonGateway(server.url, BOT_TOKEN, request_timeout=2.0)
    filtered = post_mention(server, poster, "status (filtered)")
    assert all(m.status_id != filtered for m in gateway.mentions_since(None, 40))
    with Store(tmp_path / "s.sqlite3") as store:
        intake = Intake(store, gateway, reply_to, clock=time.time, stream=False)
        assert intake.start() is PolicyResult.CHANGED
        accepted = post_mention(server, poster, "status")
        report = intake.drain()
        [notification] = [m.notification_id for m in gateway.mentions_since(None, 40)
                          if m.status_id == accepted]
        assert notification in {h.notification_id for h in report.handled}
        assert gateway.notification_policy()["for_private_mentions"] == "accept"


def test_rate_limited_backfill_waits_for_the_reset(server: MastodonMock,
                                                  tmp_path: Path) -> None:
    """A 429 on the notifications pauses the backfill until X-RateLimit-Reset."""
    gateway = MastodonGateway(server.url, BOT_TOKEN, request_timeout=2.0)
    reset = time.time() + 60
    server.fault({"match": {"methods": ["GET"], "path": "/api/v1/notifications"},
                  "effect": {"type": "ratelimit", "headers": {"X-RateLimit-Reset": str(reset)}},
                  "count": 1})
    with Store(tmp_path / "s.sqlite3") as store:
        intake = Intake(store, gateway, reply_to, clock=time.time, stream=False)
        first = intake.drain()
        second = intake.drain()
    assert (first.backfill.value, second.backfill.value) == ("failed", "paused")
    assert intake.backfill_paused_until == pytest.approx(reset, abs=2)

