"""Delivery of queued posts: in order, exactly once, politely, whatever fails and whenever we die.

Every post is in the outbox (``Store``) before any network call. One delivery
pass (``Outbox.deliver``, once per tick) does, in this order:

1. Nothing at all while delivery is paused (after a retryable error, until
   its backoff or the 429's ``X-RateLimit-Reset`` has passed).
2. Drop queued updates that a later post of the same thread supersedes
   (marked folded into it), then fold stale member notices into one
   catch-up post and expire unsafe others (see ``Outbox``).
3. Finish the pins and unpins of posts already sent (after a crash, or when
   the budget ran out).
4. Send due posts in creation order; a reply waits for its parent. A post
   with media first uploads each file once (the media id is committed right
   after the answer), then waits, across passes, until the instance has
   processed them: such an item is retried ``media_poll_s`` later without
   pausing the others.

Exactly once: ``first_attempt_at`` is committed before a request leaves and
the status id right after the answer, and Mastodon returns the original
status for a repeated ``Idempotency-Key`` (the post's key) for an hour. A post
whose answer was lost (timeout, SIGKILL) is re-sent with the same key, which
is safe while its first attempt is younger than ``idempotency_window_s``.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from bot import defaults
from bot.apidata import truncate_description
from bot.gateway import Gateway, PermanentError, RetryableError
from bot.model import INSTANCE, Post, PostKind
from bot.store import ItemState, OutboxItem, StepState, Store

log = logging.getLogger(__name__)

GATE_STATE = "outbox.gate"
"""Name of the store state that pauses delivery: ``{"until", "failures", "reason", "since"}``."""

DESTINATION_STATE = "outbox.destination"
"""Name of the store state naming the instance URL of the last start: ``{"url"}``, no secrets."""



def gate_state(route: str = INSTANCE) -> str:
    """Return the name of the store state that pauses delivery to ``route`` (a destination).

    The instance's is ``GATE_STATE`` itself; a fallback's is ``GATE_STATE:<destination>``,
    so a pause of one destination never holds up another.
    """
    return GATE_STATE if route == INSTANCE else f"{GATE_STATE}:{route}"


def destination_state(route: str = INSTANCE) -> str:
    """Return the name of the store state holding the URL ``route`` was last delivered to."""
    return DESTINATION_STATE if route == INSTANCE else f"{DESTINATION_STATE}:{route}"


REQUEUE_AFTER_MOVE_S = 86400.0
"""Seconds back to look for failed posts to re-queue when the instance URL changed."""

EXTERNAL_PARENT = "status:"
"""A ``parent_key`` with this prefix names a status id directly (a reply to a mention)."""

_SWEEPS = 3
_DUE_LIMIT = 1000

REPEAT_WINDOW_S = 3600.0
"""An update repeating the thread's previous post word for word within this many seconds
(composed) is dropped; a reminder repeated hours later still says "still ongoing"."""

MEDIA_POLL_S = 5.0
"""Seconds before an item whose media is still processing is looked at again."""

MEDIA_TIMEOUT_S = 3600.0
"""Seconds after the first upload after which media still unprocessed fail the post."""

FOLDABLE = frozenset({PostKind.NOTICE, PostKind.UPDATE, PostKind.RESOLUTION, PostKind.CATCHUP})
"""Member notices: folded into a catch-up post when stale."""

Catchup = Callable[[Sequence[Post], float, float], Post]
"""Compose one catch-up post from the stale posts, the start and the end of the gap."""

FailureNotice = Callable[[OutboxItem], Post | None]
"""Compose the admin message about a post the instance refused (None: none)."""


class Reason(enum.Enum):
    """Why delivery did what it did with one item (logged, and shown by ``--dry-run``)."""

    SENT = "sent"
    SENT_WITHOUT_PARENT = "sent_without_parent"
    PINNED = "pinned"
    UNPINNED = "unpinned"
    NOTHING_TO_UNPIN = "nothing_to_unpin"
    WAITING_FOR_PARENT = "waiting_for_parent"
    WAITING_FOR_CATCHUP = "waiting_for_catchup"
    RETRY = "retry"
    RATE_LIMITED = "rate_limited"
    CREDENTIALS_REJECTED = "credentials_rejected"
    FAILED = "failed"
    PIN_FAILED = "pin_failed"
    UNPIN_FAILED = "unpin_failed"
    FOLDED = "folded"
    EXPIRED = "expired"
    PAUSED = "paused"
    OUT_OF_BUDGET = "out_of_budget"
    MEDIA_UPLOADED = "media_uploaded"
    MEDIA_PROCESSING = "media_processing"
    ENDPOINT_MISSING = "endpoint_missing"
    SUPERSEDED = "superseded"


@dataclass(frozen=True, slots=True)
class Decision:
    """What happened to one item in one pass, and why."""

    key: str
    reason: Reason
    detail: str = ""


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """The outcome of one delivery pass.

    ``failures`` lists the items the instance refused for good *in this pass*
    (each appears in exactly one report), so the loop can tell admins once.
    ``expired`` lists non-member posts dropped unsent because re-sending them
    could publish them twice. ``superseded`` lists queued updates dropped
    because a later post of their thread says more. ``paused_until`` is set
    while delivery waits for a backoff or a rate-limit reset.
    """

    decisions: tuple[Decision, ...] = ()
    sent: tuple[str, ...] = ()
    failures: tuple[OutboxItem, ...] = ()
    folded: tuple[str, ...] = ()
    catchup_key: str | None = None
    expired: tuple[str, ...] = ()
    superseded: tuple[str, ...] = ()
    calls: int = 0
    paused_until: float | None = None
    pending: int = 0


@dataclass(frozen=True, slots=True)
class _Parent:
    status_id: str | None = None
    wait: bool = False
    note: str = ""


@dataclass(frozen=True, slots=True)
class _Gate:
    until: float = 0.0
    failures: int = 0
    reason: str = ""
    since: float | None = None


def safe_url(url: str) -> str:
    """Return ``url`` without credentials, query or fragment, and no trailing slash.

    What is stored and logged as the instance delivered to: never a password.
    """
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        return "<unparsable URL>"
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{port}{parts.path}".rstrip("/")


def backoff_delay(failures: int, base: float, cap: float) -> float:
    """Return the wait after ``failures`` consecutive retryable failures: base·2^(n-1), capped."""
    if failures <= 0:
        return 0.0
    return float(min(cap, base * 2.0 ** min(failures - 1, 62)))


class _Pass:
    """The mutable bookkeeping of one ``deliver`` call."""

    def __init__(self, gateway: Gateway, budget: int) -> None:
        self.gateway = gateway
        self.start_calls = gateway.calls
        self.budget = budget
        self.decisions: list[Decision] = []
        self.sent: list[str] = []
        self.failures: list[OutboxItem] = []
        self.folded: list[str] = []
        self.expired: list[str] = []
        self.superseded: list[str] = []
        self.catchup_key: str | None = None
        self.held: set[str] = set()
        self.stopped = False

    def decide(self, key: str, reason: Reason, detail: str = "") -> None:
        self.decisions.append(Decision(key, reason, detail))
        log.debug("outbox %s: %s %s", key, reason.value, detail)

    def halted(self) -> bool:
        return self.stopped

    def can_call(self) -> bool:
        return self.gateway.calls - self.start_calls < self.budget


class Outbox:
    """Sends what the store holds through a gateway, with retries, backoff and catch-up.

    Decisions, documented:

    * **Retryable errors** (network, timeout, 5xx) pause *all* delivery with a
      capped exponential backoff (``backoff_base`` · 2^(n-1), at most
      ``backoff_cap``; optional ``jitter`` fraction). A 429 pauses until its
      ``X-RateLimit-Reset``. The pause is kept in the store, so a restart
      honours it, and order is kept: the oldest due post goes first again.
    * **401** pauses delivery like a retryable error (the token was revoked or
      mistyped; failing every queued post would lose them all) and is logged
      as an error once.
    * **404 on posting** is a configuration error unless proven otherwise: a
      post that names no other status cannot be "not found", so the endpoint
      is missing (an ``api_base_url`` with a path, a proxy sending elsewhere).
      Delivery pauses with the backoff and the log says so once. A 404 on a
      *reply* may mean its parent was deleted: the bot's own account is read
      (``probe``); when that works the API is there, and the post is sent
      again as a new thread; when that 404s too, delivery pauses as above.
    * **Other 4xx**: the post is marked failed, logged once and listed once in
      ``DeliveryReport.failures``; with ``failure_notice`` the admin message
      is enqueued in the same transaction (crash-safe). ``Store.requeue_failed``
      (``statusbot outbox retry``) makes failed posts pending again, and so
      does a start with another ``destination`` (instance URL) than the last
      start's, for posts failed in the last ``REQUEUE_AFTER_MOVE_S``; such a
      start also lifts a pause earned at the old URL.
    * **Superseded updates**: a queued update (kind UPDATE: reminders, "worse",
      "better") never attempted is dropped when a later update or resolution
      of the same thread (same parent) is queued, and so is one whose text
      and CW repeat the post before it in the thread, composed less than
      ``repeat_window_s`` earlier (a burst, not a reminder hours later). It
      is marked folded into the post that supersedes it (``Reason.SUPERSEDED``),
      so nothing vanishes silently; an item ever attempted is never dropped
      (it may be on the server already). The outbox cannot tell an admin's
      ``note`` from an automatic update (both are UPDATE): a queued note is
      superseded too.
    * **Replies** wait for their parent. When the parent failed for good or
      expired, the reply is sent as a new thread (better late context than no
      notice); when it was folded, the reply goes under the catch-up post.
    * **Stale member notices** (notice, update, resolution, catch-up) older
      than ``idempotency_window_s`` (since created or first attempted) are
      folded into one catch-up post made by ``catchup``. An unsent catch-up
      that was never attempted is merged into the next one, so an outage
      yields one catch-up, not several.
    * **Admin messages, status posts and command replies** are never folded
      into the public catch-up: they are sent late when that is safe, and
      expired (dropped, listed in ``DeliveryReport.expired``) only when their
      first attempt is older than the window, because a re-send could then
      publish them twice.
    * **One destination per outbox**: ``route`` names the ``Post.destination``
      this outbox delivers (empty: the instance). It reads, sends, folds and
      pauses only that destination's rows, with a gate of its own
      (``gate_state``), so a fallback server that fails never holds up the
      instance's queue, nor the other way round. A catch-up post it composes
      goes to the same destination.
    * Pins follow their post; the unpin named by ``unpin_key`` runs before the
      pin, so a full set of pins never blocks a new one.
    """

    def __init__(self, store: Store, gateway: Gateway, *,
                 clock: Callable[[], float],
                 backoff_base: float = defaults.BACKOFF_BASE,
                 backoff_cap: float = defaults.BACKOFF_CAP,
                 jitter: float = defaults.BACKOFF_JITTER,
                 rng: random.Random | None = None,
                 idempotency_window_s: float = defaults.IDEMPOTENCY_WINDOW,
                 ratelimit_fallback_s: float = defaults.RATELIMIT_FALLBACK_WAIT,
                 catchup: Catchup | None = None,
                 failure_notice: FailureNotice | None = None,
                 media_poll_s: float = MEDIA_POLL_S,
                 media_timeout_s: float = MEDIA_TIMEOUT_S,
                 destination: str | None = None,
                 repeat_window_s: float = REPEAT_WINDOW_S,
                 route: str = INSTANCE) -> None:
        if backoff_base <= 0 or backoff_cap < backoff_base:
            raise ValueError("need 0 < backoff_base <= backoff_cap")
        self.store = store
        self.gateway = gateway
        self.clock = clock
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.jitter = jitter
        self.rng = rng or random.Random()
        self.idempotency_window_s = idempotency_window_s
        self.ratelimit_fallback_s = ratelimit_fallback_s
        self.catchup = catchup
        self.failure_notice = failure_notice
        self.media_poll_s = media_poll_s
        self.media_timeout_s = media_timeout_s
        self.repeat_window_s = repeat_window_s
        self.route = route
        self.gate_name = gate_state(route)
        self.destination = safe_url(destination) if destination else None
        if self.destination is not None:
            self.requeued_on_start = self._check_destination(self.destination)
        else:
            self.requeued_on_start = []

    def enqueue(self, posts: Iterable[Post]) -> int:
        """Queue posts (idempotent by key); return how many were new."""
        return self.store.enqueue(posts)

    # --- the pass -----------------------------------------------------------------

    def deliver(self, now: float, budget: int = defaults.DELIVERY_BUDGET) -> DeliveryReport:
        """Send what is due at ``now``, making at most ``budget`` API calls."""
        run = _Pass(self.gateway, budget)
        gate = self._gate()
        if gate.until > now:
            run.decide("*", Reason.PAUSED, f"until {gate.until:.0f} ({gate.reason})")
            return self._report(run, gate.until)
        self._supersede(now, run)
        self._fold_stale(now, run, gate)
        for item in self.store.followups(self.route):
            if run.halted():
                break
            self._followups(item, run)
        waiting: set[str] = set()
        for _ in range(_SWEEPS):
            # Another sweep only when a reply waited and its parent may have gone out since
            # (a catch-up is queued after the replies that will hang under it).
            sent_before = len(run.sent)
            for item in self.store.due(now, limit=_DUE_LIMIT, destination=self.route):
                if run.halted():
                    break
                if item.key in run.held:
                    if item.key not in waiting:
                        run.decide(item.key, Reason.WAITING_FOR_CATCHUP)
                    waiting.add(item.key)
                elif not self._send(item, run, quiet=item.key in waiting):
                    waiting.add(item.key)
            if run.halted() or not waiting or len(run.sent) == sent_before:
                break
        gate = self._gate()
        return self._report(run, gate.until if gate.until > now else None)

    def _report(self, run: _Pass, paused_until: float | None) -> DeliveryReport:
        return DeliveryReport(
            decisions=tuple(run.decisions), sent=tuple(run.sent), failures=tuple(run.failures),
            folded=tuple(run.folded), catchup_key=run.catchup_key, expired=tuple(run.expired),
            superseded=tuple(run.superseded), calls=self.gateway.calls - run.start_calls,
            paused_until=paused_until,
            pending=self.store.counts(self.route)[ItemState.PENDING.value],
        )

    # --- sending ------------------------------------------------------------------

    def _send(self, item: OutboxItem, run: _Pass, quiet: bool = False) -> bool:
        """Try to publish ``item``; return False when it waits for its parent."""
        parent = self._parent(item)
        if parent.wait:
            if not quiet:
                run.decide(item.key, Reason.WAITING_FOR_PARENT, item.post.parent_key or "")
            return False
        if item.post.media and not item.media_ready:
            ready = self._prepare_media(item, run)
            if ready is None:
                return True  # still processing, paused or failed: decided already
            item = ready
        if not run.can_call():
            run.decide(item.key, Reason.OUT_OF_BUDGET)
            run.stopped = True
            return True
        in_reply_to = parent.status_id
        media_ids = item.media_ids if item.post.media else ()
        self.store.mark_attempt(item.key, self.clock())
        try:
            try:
                status_id = self._post(item.post, in_reply_to, media_ids)
            except PermanentError as exc:
                if exc.status != 404 or in_reply_to is None:
                    raise
                if not self._api_present(item, exc, run):
                    self._not_created(item, exc)
                    return True  # the endpoint is missing (or the probe failed): paused
                # The API is there, so the parent status was deleted: publish as a new thread.
                log.warning("outbox %s: parent %s is gone (%s); sending as a new thread",
                            item.key, in_reply_to, exc)
                in_reply_to = None
                parent = _Parent(note=f"parent status {parent.status_id} was deleted")
                status_id = self._post(item.post, None, media_ids)
        except RetryableError as exc:
            self._pause(item, exc, run)
            self._not_created(item, exc)
            return True
        except PermanentError as exc:
            if exc.status in (401, 404):  # 404 on a post naming no status: the endpoint
                self._pause(item, exc, run)
                self._not_created(item, exc)
                return True
            if exc.status == 422 and media_ids and self._media_unprocessed(item, exc, run):
                return True
            self._fail(item, exc, run)
            return True
        except Exception as exc:  # a bug or a surprise in the client: retry, never crash
            log.exception("outbox %s: unexpected error from the gateway", item.key)
            self._pause(item, RetryableError(f"unexpected: {exc!r}"), run)
            return True
        self.store.mark_sent(item.key, status_id, self.clock(), in_reply_to)
        self._recovered()
        run.sent.append(item.key)
        if parent.note:
            run.decide(item.key, Reason.SENT_WITHOUT_PARENT, parent.note)
            log.warning("outbox %s: sent as a new thread: %s", item.key, parent.note)
        else:
            run.decide(item.key, Reason.SENT, f"status {status_id}")
        log.info("outbox %s: sent as status %s", item.key, status_id)
        sent = self.store.get(item.key)
        if sent is not None:
            self._followups(sent, run)
        if item.post.kind is PostKind.CATCHUP:
            for folded in self._folded_unpins(item.key):
                if not run.halted():
                    self._followups(folded, run)
        return True

    def _not_created(self, item: OutboxItem, exc: RetryableError | PermanentError) -> None:
        """Forget the first attempt of ``item`` when its answer proves nothing was created.

        A 401, 404 or 429 is refused before anything is stored; a 5xx or a
        timeout may come after the status was created, so those count.
        ``item`` is as it was before this attempt.
        """
        if item.first_attempt_at is None and exc.status in (401, 404, 429):
            self.store.forget_attempt(item.key)

    def _api_present(self, item: OutboxItem, exc: PermanentError, run: _Pass,
                     what: str = "post") -> bool:
        """After a 404 on ``item``: True when the API answers at this URL (the 404 is the record's).

        Reads the bot's own account (one call). When that fails too, delivery
        is paused (a 404 there: the endpoint is missing, a configuration
        error) and False is returned; the item stays queued.
        """
        if not run.can_call():
            run.decide(item.key, Reason.OUT_OF_BUDGET, "probe after a 404")
            run.stopped = True
            return False
        try:
            self.gateway.probe()
        except RetryableError as probe_exc:
            self._pause(item, probe_exc, run, what)
            return False
        except PermanentError as probe_exc:
            if probe_exc.status == 401:
                self._pause(item, probe_exc, run, what)
                return False
            if probe_exc.status == 404:
                self._pause(item, exc, run, what)
                return False
            return True  # it answered, whatever it thinks of this call
        except Exception as probe_exc:
            log.exception("outbox %s: unexpected error from the gateway (probe)", item.key)
            self._pause(item, RetryableError(f"unexpected: {probe_exc!r}"), run, what)
            return False
        return True

    def _post(self, post: Post, in_reply_to: str | None, media_ids: Sequence[str]) -> str:
        """Publish ``post``; a post without media is sent exactly as before media existed."""
        if media_ids:
            return self.gateway.post(post, in_reply_to, media_ids=media_ids)
        return self.gateway.post(post, in_reply_to)

    # --- media ---------------------------------------------------------------------

    def _prepare_media(self, item: OutboxItem, run: _Pass) -> OutboxItem | None:
        """Upload the files of ``item`` not uploaded yet, then check they are processed.

        Returns the item as stored once every file is processed (the post may
        go out now); None when it cannot yet (rescheduled ``media_poll_s``
        later, or delivery paused, or the item failed), the decision made.
        """
        key = item.key
        ids = item.media_ids
        now = self.clock()
        if (item.media_since is not None and ids
                and now - item.media_since > self.media_timeout_s):
            self._fail(item, PermanentError(
                f"media not processed {now - item.media_since:.0f} s after the upload"), run)
            return None
        try:
            if len(ids) < len(item.post.media):
                limit = self.gateway.limits().description_limit
                for path, description in item.post.media[len(ids):]:
                    if not run.can_call():
                        run.decide(key, Reason.OUT_OF_BUDGET, "upload")
                        run.stopped = True
                        return None
                    media_id = self.gateway.upload_media(
                        path, truncate_description(description, limit))
                    ids = self.store.add_media_id(key, media_id, self.clock())
                    run.decide(key, Reason.MEDIA_UPLOADED, f"{path} as media {media_id}")
                    log.info("outbox %s: uploaded %s as media %s", key, path, media_id)
            for media_id in ids:
                if not run.can_call():
                    run.decide(key, Reason.OUT_OF_BUDGET, "media")
                    run.stopped = True
                    return None
                if not self.gateway.media_ready(media_id):
                    self._media_later(item, f"media {media_id} is still processing", run)
                    return None
        except RetryableError as exc:
            self._pause(item, exc, run, "media")
            return None
        except PermanentError as exc:
            if exc.status == 401:
                self._pause(item, exc, run, "media")
            elif exc.status == 404 and not self._api_present(item, exc, run, "media"):
                pass  # the endpoint is missing (or the probe failed): paused
            elif exc.status == 404 and ids:
                # The instance lost an upload (unattached media are cleaned up): upload again.
                self.store.reset_media(key)
                self._media_later(item, f"uploads lost ({exc}); uploading again", run)
            else:
                self._fail(item, exc, run)
            return None
        except Exception as exc:
            log.exception("outbox %s: unexpected error from the gateway (media)", key)
            self._pause(item, RetryableError(f"unexpected: {exc!r}"), run, "media")
            return None
        self.store.mark_media_ready(key)
        return self.store.get(key)

    def _media_unprocessed(self, item: OutboxItem, exc: PermanentError, run: _Pass) -> bool:
        """After a 422 on a post with media: True when it is "not finished processing".

        Mastodon translates its texts, so unless the English text says so the
        attachments are polled: one not ready means the 422 was about it, and
        the post is retried later; all ready means the 422 is the post's own.
        """
        self.store.mark_media_ready(item.key, False)
        if "processing" in str(exc).lower():
            self._media_later(item, str(exc), run)
            return True
        try:
            for media_id in item.media_ids:
                if not run.can_call():
                    run.decide(item.key, Reason.OUT_OF_BUDGET, "media")
                    run.stopped = True
                    return True
                if not self.gateway.media_ready(media_id):
                    self._media_later(item, f"{exc} (media {media_id} processing)", run)
                    return True
        except (RetryableError, PermanentError):
            pass  # the 422 stands; the attachment check is only a hint
        except Exception:
            log.exception("outbox %s: unexpected error from the gateway (media)", item.key)
        self.store.mark_media_ready(item.key, True)
        return False

    def _media_later(self, item: OutboxItem, detail: str, run: _Pass) -> None:
        """Look at ``item`` again ``media_poll_s`` from now; every other item goes on."""
        until = self.clock() + self.media_poll_s
        self.store.mark_retry(item.key, detail, until)
        run.decide(item.key, Reason.MEDIA_PROCESSING, f"{detail}; again at {until:.0f}")
        log.debug("outbox %s: %s", item.key, detail)

    def _folded_unpins(self, key: str) -> list[OutboxItem]:
        """Return the items folded into catch-up ``key`` (at any depth) that owe an unpin."""
        owed: list[OutboxItem] = []
        for folded in self.store.folded_into(key):
            if folded.unpin_state is StepState.PENDING:
                owed.append(folded)
            if folded.post.kind is PostKind.CATCHUP:
                owed.extend(self._folded_unpins(folded.key))
        return owed

    def _parent(self, item: OutboxItem) -> _Parent:
        key = item.post.parent_key
        if key is None:
            return _Parent()
        if key.startswith(EXTERNAL_PARENT):
            return _Parent(status_id=key[len(EXTERNAL_PARENT):])
        seen: set[str] = set()
        while True:
            parent = self.store.get(key)
            if parent is None:
                return _Parent(note=f"parent {key} is not in the outbox")
            if parent.state is ItemState.SENT:
                return _Parent(status_id=parent.status_id)
            if parent.state is ItemState.PENDING:
                return _Parent(wait=True)
            if parent.state is ItemState.FAILED:
                return _Parent(note=f"parent {key} was refused by the instance")
            seen.add(key)
            if parent.folded_into is None or parent.folded_into in seen:
                return _Parent(note=f"parent {key} expired unsent")
            key = parent.folded_into

    def _followups(self, item: OutboxItem, run: _Pass) -> None:
        """Unpin what ``item`` replaces, then pin ``item``.

        A folded item's unpin runs once its catch-up post is out, so the
        incident keeps its pinned post until the summary is there.
        """
        if item.state is ItemState.FOLDED and item.folded_into is not None:
            catchup = self._final(item.folded_into)
            if catchup is not None and catchup.state is ItemState.PENDING:
                return
        if item.unpin_state is StepState.PENDING and item.post.unpin_key is not None:
            target = self._unpin_target(item.post.unpin_key)
            if target is None:
                self.store.mark_unpin(item.key, StepState.DONE)
                run.decide(item.key, Reason.NOTHING_TO_UNPIN, item.post.unpin_key)
            elif target.state is ItemState.PENDING or target.pin_state is StepState.PENDING:
                return  # its own pin or post is still to come; unpin afterwards
            elif not self._step(item, run, "unpin", target.status_id or ""):
                return
        if item.pin_state is StepState.PENDING and item.status_id is not None:
            self._step(item, run, "pin", item.status_id)

    def _final(self, key: str) -> OutboxItem | None:
        """Return the item ``key`` stands for now: itself, or the catch-up it was folded into."""
        seen: set[str] = set()
        item = self.store.get(key)
        while (item is not None and item.state is ItemState.FOLDED
               and item.folded_into is not None and item.key not in seen):
            seen.add(item.key)
            item = self.store.get(item.folded_into)
        return item

    def _unpin_target(self, key: str) -> OutboxItem | None:
        """Return the item whose status to unpin (following catch-ups), None if nothing is."""
        target = self._final(key)
        if target is None or target.state is ItemState.PENDING:
            return target
        if (target.state is not ItemState.SENT or not target.post.pin
                or target.pin_state is StepState.FAILED):
            return None
        return target

    def _step(self, item: OutboxItem, run: _Pass, what: str, status_id: str) -> bool:
        """Pin or unpin ``status_id`` for ``item``; return False when the pass must stop."""
        mark = self.store.mark_pin if what == "pin" else self.store.mark_unpin
        if not run.can_call():
            run.decide(item.key, Reason.OUT_OF_BUDGET, what)
            run.stopped = True
            return False
        try:
            if what == "pin":
                self.gateway.pin(status_id)
            else:
                self.gateway.unpin(status_id)
        except RetryableError as exc:
            self._pause(item, exc, run, what)
            return False
        except PermanentError as exc:
            if exc.status == 401:
                self._pause(item, exc, run, what)
                return False
            if exc.status == 404 and not self._api_present(item, exc, run, what):
                return False  # the endpoint is missing (or the probe failed): paused
            mark(item.key, StepState.FAILED, str(exc))
            reason = Reason.PIN_FAILED if what == "pin" else Reason.UNPIN_FAILED
            run.decide(item.key, reason, str(exc))
            log.warning("outbox %s: could not %s status %s: %s", item.key, what, status_id, exc)
            return True
        except Exception as exc:
            log.exception("outbox %s: unexpected error from the gateway (%s)", item.key, what)
            self._pause(item, RetryableError(f"unexpected: {exc!r}"), run, what)
            return False
        mark(item.key, StepState.DONE)
        self._recovered()
        run.decide(item.key, Reason.PINNED if what == "pin" else Reason.UNPINNED,
                   f"status {status_id}")
        return True

    def _fail(self, item: OutboxItem, exc: PermanentError, run: _Pass) -> None:
        notices: list[Post] = []
        if self.failure_notice is not None and item.post.kind is not PostKind.ADMIN:
            failed = replace(item, state=ItemState.FAILED, last_error=str(exc),
                             error_status=exc.status)
            try:
                notice = self.failure_notice(failed)
            except Exception:
                log.exception("outbox %s: composing the failure notice failed", item.key)
                notice = None
            if notice is not None:
                notices.append(notice)
        if self.store.mark_failed(item.key, str(exc), exc.status, self.clock(), notices):
            log.error("outbox %s: the instance refused this %s post for good: %s",
                      item.key, item.post.kind.value, exc)
            after = self.store.get(item.key)
            run.failures.append(after if after is not None else item)
        self._recovered()  # the instance answered: it is up
        run.decide(item.key, Reason.FAILED, str(exc))

    # --- where we deliver -------------------------------------------------------------

    def _check_destination(self, url: str) -> list[str]:
        """At start: remember ``url``; when it is not the last one, start afresh there.

        Posts refused in the last ``REQUEUE_AFTER_MOVE_S`` (every post 404s
        while the URL is wrong, with a bot that failed them) are queued again,
        and a pause earned at the old URL is lifted. Returns the keys re-queued.
        """
        name = destination_state(self.route)
        value = self.store.get_state(name)
        last = value.get("url") if isinstance(value, dict) else None
        if last == url:
            return []
        keys: list[str] = []
        if isinstance(last, str):
            # The new URL is recorded last: killed before, a restart does all this again.
            keys = self.store.requeue_failed(failed_since=self.clock() - REQUEUE_AFTER_MOVE_S,
                                             destination=self.route)
            self.store.delete_state(self.gate_name)
            self.store.make_due(self.route)
        self.store.put_state(name, {"url": url})
        if not isinstance(last, str):
            return []
        log.warning("outbox: the instance URL changed from %s to %s; %d failed post(s) "
                    "queued again, delivery starts afresh", last, url, len(keys))
        return keys

    # --- superseded updates -----------------------------------------------------------

    def _supersede(self, now: float, run: _Pass) -> None:
        """Drop queued updates a later post of their thread supersedes, or that repeat the last.

        Per thread (same ``parent_key``), every update but the newest queued
        post is superseded by that newest one; then a remaining update whose
        text and CW equal the post before it in the thread (sent or queued),
        composed less than ``repeat_window_s`` before it, is superseded by that
        one. Only items never attempted, that nothing replies to, are dropped
        (``Store.supersede`` checks again, atomically).
        """
        pending = self.store.pending(self.route)
        replied_to = {i.post.parent_key for i in pending if i.post.parent_key is not None}
        threads: dict[str, list[OutboxItem]] = {}
        for item in pending:
            parent = item.post.parent_key
            if (parent is not None and not parent.startswith(EXTERNAL_PARENT)
                    and item.post.kind in (PostKind.UPDATE, PostKind.RESOLUTION)):
                threads.setdefault(parent, []).append(item)

        def droppable(item: OutboxItem) -> bool:
            return (item.post.kind is PostKind.UPDATE and item.first_attempt_at is None
                    and item.key not in replied_to and not item.post.pin
                    and item.post.unpin_key is None and not item.post.media)

        pairs: list[tuple[str, str]] = []
        for parent, items in threads.items():
            newest = items[-1]
            standing = [item for item in items[:-1] if not droppable(item)]
            pairs += [(item.key, newest.key) for item in items[:-1] if droppable(item)]
            before = self.store.last_sent_in_thread(parent)
            for item in [*standing, newest]:
                if (before is not None and droppable(item) and item.post.text == before.post.text
                        and item.post.spoiler_text == before.post.spoiler_text
                        and item.post.created_at - before.post.created_at < self.repeat_window_s):
                    pairs.append((item.key, before.key))
                    continue
                before = item
        if not pairs:
            return
        by = dict(pairs)
        for key in self.store.supersede(pairs, now):
            run.superseded.append(key)
            run.decide(key, Reason.SUPERSEDED, by[key])
            log.info("outbox %s: superseded by %s (not sent)", key, by[key])

    # --- pausing ----------------------------------------------------------------------

    def _gate(self) -> _Gate:
        value = self.store.get_state(self.gate_name)
        if not value:
            return _Gate()
        return _Gate(until=float(value.get("until", 0.0)), failures=int(value.get("failures", 0)),
                     reason=str(value.get("reason", "")), since=value.get("since"))

    def _pause(self, item: OutboxItem | None, exc: RetryableError | PermanentError, run: _Pass,
               what: str = "post") -> None:
        """Pause all delivery after a retryable error (or a 401) and reschedule ``item``."""
        at = self.clock()
        gate = self._gate()
        failures = gate.failures + 1
        if isinstance(exc, RetryableError) and exc.status == 429:
            reason = Reason.RATE_LIMITED
            until = exc.retry_at if exc.retry_at is not None else at + self.ratelimit_fallback_s
            until = max(until, at)
        else:
            reason = Reason.RETRY
            if isinstance(exc, PermanentError):
                reason = (Reason.ENDPOINT_MISSING if exc.status == 404
                          else Reason.CREDENTIALS_REJECTED)
            delay = backoff_delay(failures, self.backoff_base, self.backoff_cap)
            if self.jitter > 0:
                delay = min(self.backoff_cap, delay * (1.0 + self.jitter * self.rng.random()))
            until = at + delay
        self.store.put_state(self.gate_name, {
            "until": until, "failures": failures, "reason": f"{reason.value}: {exc}",
            "since": gate.since if gate.since is not None else at,
        })
        key = item.key if item is not None else "*"
        if item is not None and what in ("post", "media"):
            self.store.mark_retry(item.key, str(exc), until, exc.status)
        run.decide(key, reason, f"{what}: {exc}; paused until {until:.0f}")
        run.stopped = True
        message = "outbox %s: %s failed (%s); delivery paused for %.0f s"
        args = (key, what, exc, until - at)
        if reason is Reason.CREDENTIALS_REJECTED and not gate.reason.startswith(reason.value):
            log.error(message + "; check the access token", *args)
        elif reason is Reason.ENDPOINT_MISSING and not gate.reason.startswith(reason.value):
            log.error(message + "; the instance has no such API endpoint: check "
                      "[mastodon] api_base_url (scheme and host only, no path)", *args)
        elif failures == 1:
            log.warning(message, *args)
        else:
            log.debug(message, *args)

    def _recovered(self) -> None:
        gate = self._gate()
        if gate.failures == 0 and gate.until == 0.0:
            return
        since = gate.since if gate.since is not None else self.clock()
        log.warning("outbox: delivery works again after %d failed attempts over %.0f s",
                    gate.failures, self.clock() - since)
        self.store.delete_state(self.gate_name)

    # --- stale posts ------------------------------------------------------------------

    def _probe(self, run: _Pass) -> bool:
        """Check that the instance is back before summing an outage up; False: it is not."""
        if not run.can_call():
            run.decide("*", Reason.OUT_OF_BUDGET, "probe")
            run.stopped = True
            return False
        try:
            self.gateway.probe()
        except (RetryableError, PermanentError) as exc:
            if isinstance(exc, PermanentError) and exc.status not in (401, 404):
                return True  # it answered: it is up, whatever it thinks of this call
            self._pause(None, exc, run, "probe")
            return False
        except Exception as exc:
            log.exception("outbox: unexpected error from the gateway (probe)")
            self._pause(None, RetryableError(f"unexpected: {exc!r}"), run, "probe")
            return False
        self._recovered()
        return True

    def _fold_stale(self, now: float, run: _Pass, gate: _Gate) -> None:
        window = self.idempotency_window_s
        stale: list[OutboxItem] = []
        unsafe: list[OutboxItem] = []
        fresh_catchups: list[OutboxItem] = []
        for item in self.store.pending(self.route):
            attempted = item.first_attempt_at
            anchor = item.post.created_at if attempted is None else min(attempted,
                                                                        item.post.created_at)
            if item.post.kind in FOLDABLE:
                if now - anchor > window:
                    stale.append(item)
                elif item.post.kind is PostKind.CATCHUP and attempted is None:
                    fresh_catchups.append(item)
            elif attempted is not None and now - attempted > window:
                unsafe.append(item)
        if unsafe:
            self._expire(unsafe, now, run)
        if not stale:
            return
        if gate.failures > 0 and not self._probe(run):
            # Still down: sum up later, when the catch-up can say when the gap ended.
            run.held.update(item.key for item in stale)
            return
        group = sorted([*stale, *fresh_catchups], key=lambda i: i.seq)
        if self.catchup is None:
            log.warning("outbox: %d stale member notices and no catch-up composer; expiring them",
                        len(group))
            self._expire(group, now, run)
            return
        posts = self._constituents(group)
        start = min(post.created_at for post in posts)
        try:
            catchup = self.catchup(posts, start, now)
        except Exception:
            log.exception("outbox: composing the catch-up post failed; holding %d stale notices",
                          len(group))
            run.held.update(item.key for item in group)
            return
        keys = [item.key for item in group]
        catchup = self._unique(catchup, keys)
        folded = self.store.fold(keys, catchup, now, f"folded into catch-up {catchup.key}")
        log.warning("outbox: %d stale notices (from %.0f) folded into catch-up %s",
                    folded, start, catchup.key)
        run.catchup_key = catchup.key
        for key in keys:
            run.folded.append(key)
            run.decide(key, Reason.FOLDED, catchup.key)

    def _constituents(self, group: Sequence[OutboxItem]) -> list[Post]:
        """Return the posts behind ``group``: a catch-up stands for what it folded."""
        posts: list[Post] = []
        for item in group:
            if item.post.kind is PostKind.CATCHUP:
                inner = self.store.folded_into(item.key)
                if inner:
                    posts.extend(self._constituents(inner))
                    continue
            posts.append(item.post)
        return sorted(posts, key=lambda post: post.created_at)

    def _unique(self, catchup: Post, folded: Sequence[str]) -> Post:
        """Make the catch-up post safe to insert: a new key, no parent among what it folds."""
        changes: dict[str, Any] = {}
        if catchup.destination != self.route:
            changes["destination"] = self.route
        if catchup.parent_key in folded:
            changes["parent_key"] = None
        if catchup.unpin_key in folded:
            changes["unpin_key"] = None
        if self.store.get(catchup.key) is not None:
            digest = hashlib.sha256("\n".join(folded).encode()).hexdigest()[:12]
            changes["key"] = f"{catchup.key}~{digest}"
        return replace(catchup, **changes) if changes else catchup

    def _expire(self, items: Sequence[OutboxItem], now: float, run: _Pass) -> None:
        keys = [item.key for item in items]
        self.store.fold(keys, None, now, "expired: unsent after the idempotency window")
        for item in items:
            log.warning("outbox %s: %s post expired unsent (first attempt %s, created %.0f)",
                        item.key, item.post.kind.value, item.first_attempt_at,
                        item.post.created_at)
            run.expired.append(item.key)
            run.decide(item.key, Reason.EXPIRED, "older than the idempotency window")
