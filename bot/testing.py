"""Test doubles that implement the Gateway protocol and record what they were asked.

Shipped in the package (as structlog ships ``structlog.testing``) so every
test of the loop, the outbox, mentions and adoption drives the same fake: a
``RecordingGateway`` keeps each call, can fail on request, and hands out a
``FakeStream`` that tests feed mentions into.
"""

from __future__ import annotations

import html
import itertools
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from bot import defaults
from bot.apidata import (
    MEDIA_NOT_PROCESSED,
    POLICY_DEFAULTS,
    check_media_file,
    merge_profile_field,
    page_mentions,
)
from bot.gateway import (
    InstanceLimits,
    Mention,
    MentionedAccount,
    PermanentError,
    PinnedStatus,
    StreamHandle,
    guarded,
    id_order,
)
from bot.model import Post


@dataclass(frozen=True, slots=True)
class Call:
    """One call a ``RecordingGateway`` received."""

    method: str
    args: tuple[object, ...]


@dataclass(frozen=True, slots=True)
class Lost:
    """Scripted outcome: the server does the work, then the client sees ``error``.

    Models a timeout or a crash after the request reached the server: the
    status exists, the caller does not learn its id.
    """

    error: BaseException


@dataclass
class RecordedStatus:
    """A status as the fake instance holds it."""

    id: str
    post: Post
    in_reply_to_id: str | None
    media_ids: tuple[str, ...] = ()


@dataclass
class RecordedMedia:
    """An upload as the fake instance holds it: the first ``polls_left`` polls say "not yet"."""

    id: str
    path: str
    description: str
    polls_left: int = 0
    processed_at_upload: bool = False

    @property
    def ready(self) -> bool:
        """True once processed."""
        return self.polls_left <= 0


class FakeStream:
    """The ``RecordingGateway``'s user stream, driven by the test.

    Connected when opened (``on_reconnect`` is called at once, as Mastodon.py
    calls it on connecting). ``cut()`` drops the connection (events are lost
    until ``reconnect()``); ``die()`` ends its thread, as an exception in a
    handler does in Mastodon.py.
    """

    def __init__(self, on_mention: Callable[[Mention], None],
                 on_reconnect: Callable[[], None]) -> None:
        self.on_mention = on_mention
        self.on_reconnect = on_reconnect
        self.alive = True
        self.connected = False
        self.delivered: list[str] = []

    def close(self) -> None:
        """Stop for good."""
        self.alive = False
        self.connected = False

    def is_alive(self) -> bool:
        """Return True until closed or dead."""
        return self.alive

    def is_receiving(self) -> bool:
        """Return True while alive and connected."""
        return self.alive and self.connected

    def connect(self) -> None:
        """(Re)connect: call ``on_reconnect`` like the real listener does (guarded)."""
        if self.alive:
            self.connected = True
            guarded("on_reconnect", self.on_reconnect)

    def reconnect(self) -> None:
        """Reconnect after a ``cut()``."""
        self.connect()

    def cut(self) -> None:
        """Drop the connection: events are lost until ``reconnect()``."""
        self.connected = False

    def die(self) -> None:
        """End the stream's thread (``is_alive()`` becomes False)."""
        self.alive = False
        self.connected = False

    def deliver(self, mention: Mention) -> bool:
        """Hand ``mention`` to the listener when connected (guarded); return whether it was."""
        if not self.is_receiving():
            return False
        self.delivered.append(mention.notification_id)
        guarded("on_mention", self.on_mention, mention)
        return True


@dataclass
class RecordingGateway:
    """An in-memory Mastodon account that records every call and can be scripted to fail.

    It behaves like the instance where it matters: a repeated idempotency key
    returns the original status (forever, unless ``idempotency_window`` and a
    ``clock`` are given), pinning twice is fine. ``script("post", err, None,
    Lost(err))`` makes the next calls of ``post`` raise, succeed, and succeed
    on the server but raise to the caller. While ``down`` is set, every call
    raises it (an outage).
    """

    limits_value: InstanceLimits = field(default_factory=InstanceLimits)
    clock: Callable[[], float] | None = None
    idempotency_window: float | None = None
    calls: int = 0
    log: list[Call] = field(default_factory=list)
    statuses: dict[str, RecordedStatus] = field(default_factory=dict)
    pinned: list[str] = field(default_factory=list)
    fields: list[tuple[str, str]] = field(default_factory=list)
    bot: bool = False
    down: BaseException | None = None
    _script: dict[str, deque[BaseException | Lost | None]] = field(default_factory=dict)
    _keys: dict[str, tuple[str, float]] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(100))
    inbox: list[Mention] = field(default_factory=list)
    page_size: int = 40
    accounts: dict[str, tuple[str, bool]] = field(default_factory=dict)
    policy: dict[str, str] = field(default_factory=lambda: dict(POLICY_DEFAULTS))
    streams: list[FakeStream] = field(default_factory=list)
    _notification_ids: itertools.count[int] = field(
        default_factory=lambda: itertools.count(1000))
    media: dict[str, RecordedMedia] = field(default_factory=dict)
    media_polls: dict[str, int] = field(default_factory=dict)
    """Path → how many ``media_ready`` polls its upload stays unprocessed (0: ready at once)."""
    activity: list[dict[str, int]] = field(default_factory=list)
    _media_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(500))

    def script(self, method: str, *outcomes: BaseException | Lost | None) -> None:
        """Queue outcomes for the next calls of ``method`` (None: succeed)."""
        self._script.setdefault(method, deque()).extend(outcomes)

    def _enter(self, method: str, *args: object) -> Lost | None:
        self.calls += 1
        self.log.append(Call(method, args))
        if self.down is not None:
            raise self.down
        queue = self._script.get(method)
        outcome = queue.popleft() if queue else None
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def calls_to(self, method: str) -> list[Call]:
        """Return the recorded calls of ``method``, in order."""
        return [call for call in self.log if call.method == method]

    def post(self, post: Post, in_reply_to_id: str | None,
             media_ids: Sequence[str] = ()) -> str:
        """Record the post; return its id (the original one for a repeated key).

        Like Mastodon, an attachment still processing is a 422, an unknown one a 404-ish 422.
        """
        lost = self._enter("post", post, in_reply_to_id, tuple(media_ids))
        now = self.clock() if self.clock is not None else 0.0
        known = self._keys.get(post.key)
        if known is not None and (self.idempotency_window is None
                                  or now - known[1] <= self.idempotency_window):
            status_id = known[0]
        else:
            for media_id in media_ids:
                media = self.media.get(media_id)
                if media is None:
                    raise PermanentError(f"post: HTTP 422: Media {media_id} could not be found",
                                         status=422)
                if not media.ready:
                    raise PermanentError(f"post: HTTP 422: {MEDIA_NOT_PROCESSED}", status=422)
            status_id = str(next(self._ids))
            self.statuses[status_id] = RecordedStatus(status_id, post, in_reply_to_id,
                                                      tuple(media_ids))
            self._keys[post.key] = (status_id, now)
        if lost is not None:
            raise lost.error
        return status_id

    def pin(self, status_id: str) -> None:
        """Record the pin."""
        lost = self._enter("pin", status_id)
        if status_id not in self.pinned:
            self.pinned.append(status_id)
        if lost is not None:
            raise lost.error

    def unpin(self, status_id: str) -> None:
        """Record the unpin."""
        lost = self._enter("unpin", status_id)
        if status_id in self.pinned:
            self.pinned.remove(status_id)
        if lost is not None:
            raise lost.error

    def limits(self) -> InstanceLimits:
        """Return ``limits_value``."""
        self._enter("limits")
        return self.limits_value

    def probe(self) -> None:
        """Record the probe."""
        lost = self._enter("probe")
        if lost is not None:
            raise lost.error

    def set_profile_field(self, name: str, value: str) -> None:
        """Record the profile field and the bot flag."""
        lost = self._enter("set_profile_field", name, value)
        self.fields = merge_profile_field(self.fields, name, value,
                                          self.limits_value.max_profile_fields)
        self.bot = True
        if lost is not None:
            raise lost.error

    def texts(self) -> list[str]:
        """Return the text of every status on the fake instance, in posting order."""
        return [status.post.text for status in self.statuses.values()]

    def upload_media(self, path: str, description: str) -> str:
        """Record the upload (the file must exist); unprocessed for ``media_polls[path]`` polls."""
        check_media_file(path)  # before any request, like the real gateway
        lost = self._enter("upload_media", path, description)
        media_id = str(next(self._media_ids))
        polls = self.media_polls.get(path, 0)
        self.media[media_id] = RecordedMedia(media_id, path, description, polls, polls <= 0)
        if lost is not None:
            raise lost.error
        return media_id

    def media_ready(self, media_id: str) -> bool:
        """Poll the upload: each call brings it one step closer to processed.

        An upload that was processed at once costs no call (like the real gateway).
        """
        media = self.media.get(media_id)
        if media is not None and media.processed_at_upload:
            return True
        lost = self._enter("media_ready", media_id)
        if media is None:
            raise PermanentError(f"media: HTTP 404: {media_id} not found", status=404)
        ready = media.ready
        media.polls_left -= 1
        if lost is not None:
            raise lost.error
        return ready

    def instance_activity(self) -> list[dict[str, int]]:
        """Return ``activity`` (newest week first)."""
        self._enter("instance_activity")
        return sorted(self.activity, key=lambda w: w["week"], reverse=True)

    # --- mentions ---------------------------------------------------------------

    def mention(self, acct: str, text: str, *, visibility: str = "public",
                account_id: str | None = None, bot: bool = False,
                created_at: float | None = None, notification_id: str | None = None,
                deliver: bool = True) -> Mention:
        """Make ``acct`` mention the bot; return the notification (streamed when ``deliver``)."""
        number = next(self._notification_ids)
        mention = Mention(
            notification_id=notification_id or str(number),
            status_id=str(next(self._ids)),
            account_id=account_id or self.accounts.get(acct, (f"a-{acct}", bot))[0],
            acct=acct, bot=bot, visibility=visibility,
            content=f"<p>{html.escape(text)}</p>", spoiler_text="",
            mentions=(MentionedAccount("bot", "statusbot"),),
            created_at=created_at if created_at is not None
            else (self.clock() if self.clock is not None else 0.0))
        self.inbox.append(mention)
        if deliver:
            for stream in self.streams:
                stream.deliver(mention)
        return mention

    def _mentions_page(self, min_id: str | None, limit: int,
                       ) -> list[tuple[str, Mention | None]]:
        lost = self._enter("notifications", min_id, limit)
        size = max(1, min(limit, self.page_size))
        ordered = sorted(self.inbox, key=lambda m: id_order(m.notification_id))
        if min_id is None:
            page = ordered[-size:]
        else:
            page = [m for m in ordered if id_order(m.notification_id) > id_order(min_id)][:size]
        if lost is not None:
            raise lost.error
        return [(m.notification_id, m) for m in reversed(page)]  # newest first, as Mastodon

    def mentions_since(self, min_id: str | None, limit: int = defaults.MENTIONS_PAGE_LIMIT,
                       max_pages: int | None = None) -> list[Mention]:
        """Page through ``inbox`` like Mastodon (each page is a recorded ``notifications`` call)."""
        return page_mentions(self._mentions_page, min_id, limit, max_pages)

    def stream_mentions(self, on_mention: Callable[[Mention], None],
                        on_reconnect: Callable[[], None]) -> StreamHandle:
        """Open a ``FakeStream`` (connected at once); it is appended to ``streams``."""
        self._enter("stream_mentions")
        stream = FakeStream(on_mention, on_reconnect)
        self.streams.append(stream)
        stream.connect()
        return stream

    @property
    def stream(self) -> FakeStream | None:
        """The newest stream opened, or None."""
        return self.streams[-1] if self.streams else None

    def resolve_account(self, acct: str) -> tuple[str, str, bool]:
        """Return the account from ``accounts``; a 404 ``PermanentError`` when unknown."""
        self._enter("resolve_account", acct)
        name = acct.lstrip("@")
        if name not in self.accounts:
            raise PermanentError(f"account_lookup: HTTP 404: {name} not found", status=404)
        account_id, bot = self.accounts[name]
        return account_id, name, bot

    def pinned_statuses(self) -> list[PinnedStatus]:
        """Return the pinned statuses (``pinned``), newest pin first like Mastodon."""
        lost = self._enter("pinned_statuses")
        found = [PinnedStatus(status.id, status.post.created_at, status.post.visibility,
                              status.post.spoiler_text, status.post.text,
                              status.in_reply_to_id)
                 for status in map(self.statuses.get, reversed(self.pinned))
                 if status is not None]
        if lost is not None:
            raise lost.error
        return found

    def notification_policy(self) -> dict[str, str]:
        """Return ``policy``."""
        self._enter("notification_policy")
        return dict(self.policy)

    def set_notification_policy(self, changes: Mapping[str, str]) -> dict[str, str]:
        """Update ``policy``."""
        self._enter("set_notification_policy", dict(changes))
        self.policy.update(changes)
        return dict(self.policy)


# --- the standby lease (bot/lease.py) -------------------------------------------------------


class LeaseBoard:
    """An in-memory ``statusbot:leader`` key with an injected clock (seconds).

    Behaves as Redis does for the lease: ``SET NX PX`` takes a free key, the
    key is gone once its time is up (at ``expires_at`` exactly), and
    ``down`` makes every call fail like an unreachable Redis. ``value`` may be
    set to anything (a foreign or garbage holder); ``wrong_type`` makes the
    key answer like a key of another type (every call fails).
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.value: str | None = None
        self.expires_at: float | None = None
        self.down = False
        self.wrong_type = False
        self.calls: list[tuple[str, str]] = []

    def current(self) -> str | None:
        """Return the holder now (clearing an expired key)."""
        if self.expires_at is not None and self.clock() >= self.expires_at:
            self.value = self.expires_at = None
        return self.value

    def hold(self, value: str, ttl_ms: int | None = None) -> None:
        """Put ``value`` in the key as someone else would (no expiry without ``ttl_ms``)."""
        self.value = value
        self.expires_at = None if ttl_ms is None else self.clock() + ttl_ms / 1000

    def lease(self, lease_id: str) -> MemoryLease:
        """Return one bot's handle on this board."""
        return MemoryLease(self, lease_id)


class MemoryLease:
    """A ``bot.lease.Lease`` on a ``LeaseBoard``: records each call as (what, id)."""

    def __init__(self, board: LeaseBoard, lease_id: str) -> None:
        self.board = board
        self.id = lease_id

    def _check(self, what: str) -> None:
        from bot.lease import LeaseError

        self.board.calls.append((what, self.id))
        if self.board.down:
            raise LeaseError("ConnectionError: Connection refused")
        if self.board.wrong_type:
            raise LeaseError("ResponseError: WRONGTYPE Operation against a key holding the "
                             "wrong kind of value")

    def acquire(self, ttl_ms: int) -> bool:
        """``SET NX PX``."""
        self._check("acquire")
        if self.board.current() is not None:
            return False
        self.board.hold(self.id, ttl_ms)
        return True

    def renew(self, ttl_ms: int) -> bool:
        """Extend the key's time while it holds this id."""
        self._check("renew")
        if self.board.current() != self.id:
            return False
        self.board.hold(self.id, ttl_ms)
        return True

    def holder(self) -> tuple[str | None, int | None]:
        """Return the holder and its remaining milliseconds (None: no expiry)."""
        self._check("holder")
        value = self.board.current()
        expires = self.board.expires_at
        remaining = None if expires is None else round((expires - self.board.clock()) * 1000)
        return value, remaining
