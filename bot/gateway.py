"""The port to Mastodon: the Gateway protocol, the real client, a console printer and a fake.

This is the only module that imports Mastodon.py. Every failure of a call is
one of two exceptions: ``RetryableError`` (network error, timeout, 5xx, 429:
try again later, with the same idempotency key) or ``PermanentError`` (any
other 4xx: the instance will never accept this request).

Mentions come in two ways: ``mentions_since`` pages through mention
notifications after a ``min_id`` (polling), ``stream_mentions`` follows the
user stream on Mastodon.py's own thread. Both hand out ``Mention`` values.
"""

from __future__ import annotations

import html
import itertools
import logging
import math
import mimetypes
import os
import re
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, ParamSpec, Protocol, TextIO, TypeVar, runtime_checkable

from bot import defaults
from bot.model import Post

T = TypeVar("T")
P = ParamSpec("P")

log = logging.getLogger(__name__)


class RetryableError(Exception):
    """The request may succeed later: network error, timeout, 5xx or 429.

    ``retry_at`` is the epoch time before which retrying is pointless (from
    ``X-RateLimit-Reset`` on a 429), None when the caller's backoff decides.
    ``status`` is the HTTP status, None for network errors and timeouts.
    """

    def __init__(self, message: str, *, retry_at: float | None = None,
                 status: int | None = None) -> None:
        super().__init__(message)
        self.retry_at = retry_at
        self.status = status


class PermanentError(Exception):
    """The instance refused the request for good (a 4xx other than 408 and 429).

    ``status`` is the HTTP status, None when the request could not even be
    built (an invalid visibility, for instance).
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class InstanceLimits:
    """What the instance allows, from ``/api/v2/instance`` ``configuration``."""

    max_characters: int = defaults.INSTANCE_MAX_CHARACTERS
    description_limit: int = defaults.INSTANCE_DESCRIPTION_LIMIT
    max_pinned: int = defaults.INSTANCE_MAX_PINNED
    max_profile_fields: int = defaults.INSTANCE_MAX_PROFILE_FIELDS
    characters_reserved_per_url: int = defaults.INSTANCE_CHARACTERS_PER_URL


@runtime_checkable
class Gateway(Protocol):
    """What the outbox and the loop need from a Mastodon account.

    ``calls`` counts the API calls made so far (the politeness figure).
    """

    calls: int

    def post(self, post: Post, in_reply_to_id: str | None,
             media_ids: Sequence[str] = ()) -> str:
        """Publish ``post`` (sending ``post.key`` as Idempotency-Key); return its status id.

        ``media_ids`` are uploaded, processed attachments (``upload_media``).
        A 422 while one is still processing is a ``PermanentError`` with
        status 422: the caller decides (the outbox checks ``media_ready``).
        """
        ...

    def upload_media(self, path: str, description: str) -> str:
        """Upload the local file ``path`` with its alt text; return the media id.

        Never waits for processing: ``media_ready`` says when it is done. A
        missing or unreadable file is a ``PermanentError`` (status None).
        """
        ...

    def media_ready(self, media_id: str) -> bool:
        """Return True once the instance has processed the upload ``media_id``.

        A 404 (``PermanentError``) means the instance no longer has it.
        """
        ...

    def instance_activity(self) -> list[dict[str, int]]:
        """Return the instance's weekly activity, newest week first; [] when it is not public.

        Each entry: ``week`` (epoch seconds of the week's start), ``statuses``,
        ``logins``, ``registrations``.
        """
        ...

    def pin(self, status_id: str) -> None:
        """Pin a status to the profile; already pinned counts as done."""
        ...

    def unpin(self, status_id: str) -> None:
        """Unpin a status; not pinned counts as done."""
        ...

    def limits(self) -> InstanceLimits:
        """Return the instance's limits (defaults for whatever it does not say)."""
        ...

    def probe(self) -> None:
        """Make one cheap authenticated call; raise like any call when the instance is unusable."""
        ...

    def set_profile_field(self, name: str, value: str) -> None:
        """Set one profile field, keeping the others, and mark the account as a bot."""
        ...

    def mentions_since(self, min_id: str | None, limit: int = defaults.MENTIONS_PAGE_LIMIT,
                       max_pages: int | None = None) -> list[Mention]:
        """Return the mention notifications after ``min_id``, oldest first.

        Pages with ``min_id`` until a page comes back empty (or ``max_pages``
        pages were read); each page is one paginated request. ``min_id`` None
        starts from the newest page.
        """
        ...

    def stream_mentions(self, on_mention: Callable[[Mention], None],
                        on_reconnect: Callable[[], None]) -> StreamHandle:
        """Follow the user stream on a thread of its own; return its handle.

        ``on_mention`` gets each mention notification, ``on_reconnect`` is
        called each time the stream (re)connects, before any event of that
        connection: events sent while it was down are lost, so that is the
        moment to backfill. Both run on the stream's thread; what they raise is
        logged, never allowed to kill the stream.
        """
        ...

    def resolve_account(self, acct: str) -> tuple[str, str, bool]:
        """Return (account id, acct, bot flag) of the account the instance knows as ``acct``."""
        ...

    def pinned_statuses(self) -> list[PinnedStatus]:
        """Return the statuses pinned to the bot account's profile (``bot/adopt.py``)."""
        ...

    def notification_policy(self) -> dict[str, str]:
        """Return the bot's notification policy (``for_*`` fields); empty before Mastodon 4.3."""
        ...

    def set_notification_policy(self, changes: Mapping[str, str]) -> dict[str, str]:
        """Change the named ``for_*`` fields of the notification policy; return the new policy."""
        ...


# --- mentions ---------------------------------------------------------------------


@runtime_checkable
class StreamHandle(Protocol):
    """A running stream: Mastodon.py's handle, or a fake's."""

    def close(self) -> None:
        """Stop the stream for good."""
        ...

    def is_alive(self) -> bool:
        """Return True while the stream's thread runs (connected or reconnecting)."""
        ...

    def is_receiving(self) -> bool:
        """Return True while the stream is connected and receiving events."""
        ...


@dataclass(frozen=True, slots=True)
class MentionedAccount:
    """An account mentioned in a status (``status.mentions``)."""

    id: str
    acct: str


@dataclass(frozen=True, slots=True)
class Mention:
    """One mention notification: who wrote what, where, and how visibly.

    ``acct`` is ``username`` for a local account and ``username@domain`` for
    a remote one; ``content`` is the status HTML as the instance sent it
    (mentions are links in it); ``mentions`` lists every account the status
    mentions, the bot included. ``created_at`` is the status's creation time
    (epoch seconds, the instance's clock).
    """

    notification_id: str
    status_id: str
    account_id: str
    acct: str
    bot: bool
    visibility: str
    content: str
    spoiler_text: str
    mentions: tuple[MentionedAccount, ...]
    created_at: float
    in_reply_to_id: str | None = None


def id_order(value: str | None) -> int:
    """Return a notification or status id as an int for ordering (-1 for None or junk).

    Mastodon's ids are decimal strings of bigints: ``"10"`` is after ``"9"``,
    and an id above 2**53 must not pass through a float.
    """
    if value is None:
        return -1
    text = str(value).strip()
    return int(text) if text.isdigit() else -1


@dataclass(frozen=True, slots=True)
class PinnedStatus:
    """A status pinned to the bot account's profile, as far as adoption needs it.

    ``text`` is the content as plain text (tags stripped, entities decoded,
    whitespace folded, at most ``PINNED_TEXT_LIMIT`` characters).
    """

    id: str
    created_at: float
    visibility: str
    spoiler_text: str
    text: str
    in_reply_to_id: str | None = None


PINNED_TEXT_LIMIT = 5000
"""Characters of a pinned status's text kept (an instance may allow long posts)."""


def pinned_from_api(status: object) -> PinnedStatus | None:
    """Return the ``PinnedStatus`` of one API status, or None when it is not a usable one."""
    if not isinstance(status, Mapping):
        return None
    status_id = str(status.get("id", "")).strip()
    if not status_id.isdigit():
        return None
    reply = status.get("in_reply_to_id")

    def plain(value: object) -> str:
        text = _plain(re.sub(r"<br\s*/?>|</p>", "\n", str(value or "")))
        return " ".join(text.split())[:PINNED_TEXT_LIMIT]

    return PinnedStatus(id=status_id, created_at=_epoch(status.get("created_at")),
                        visibility=str(status.get("visibility") or ""),
                        spoiler_text=plain(status.get("spoiler_text")),
                        text=plain(status.get("content")),
                        in_reply_to_id=None if reply in (None, "") else str(reply))


def _epoch(value: object) -> float:
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
        return moment.timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        parsed = parse_http_time(value)
        if parsed is not None:
            return parsed
    return 0.0


def mention_from_notification(notification: Mapping[str, Any]) -> Mention | None:
    """Return the ``Mention`` in a notification object, or None when it is not a usable one.

    Not a mention, no status (deleted), or no author: None. Works on the JSON
    of ``/api/v1/notifications`` and of the stream, and on Mastodon.py's
    parsed objects (ids as str or int, ``created_at`` as datetime or text).
    """
    if notification.get("type") != "mention":
        return None
    status = notification.get("status")
    account = notification.get("account") or (status or {}).get("account")
    if not isinstance(status, Mapping) or not isinstance(account, Mapping):
        return None
    notification_id = notification.get("id")
    status_id = status.get("id")
    account_id = account.get("id")
    if notification_id is None or status_id is None or account_id is None:
        return None
    mentioned = tuple(
        MentionedAccount(str(m.get("id", "")), str(m.get("acct", "")))
        for m in status.get("mentions") or () if isinstance(m, Mapping))
    reply_to = status.get("in_reply_to_id")
    return Mention(
        notification_id=str(notification_id),
        status_id=str(status_id),
        account_id=str(account_id),
        acct=str(account.get("acct") or account.get("username") or ""),
        bot=bool(account.get("bot")),
        visibility=str(status.get("visibility") or "public"),
        content=str(status.get("content") or ""),
        spoiler_text=str(status.get("spoiler_text") or ""),
        mentions=mentioned,
        created_at=_epoch(status.get("created_at") or notification.get("created_at")),
        in_reply_to_id=None if reply_to is None else str(reply_to),
    )


PageFetch = Callable[[str | None, int], list[tuple[str, "Mention | None"]]]
"""Fetch one page after ``min_id``: (notification id, mention or None) pairs, any order."""


def page_mentions(fetch: PageFetch, min_id: str | None, limit: int,
                  max_pages: int | None) -> list[Mention]:
    """Page with ``min_id`` until a page is empty (or ``max_pages``); return mentions oldest first.

    The next page starts after the highest id of the last one (unusable
    notifications included, so they are not fetched again). A server that
    ignores ``min_id`` and answers with nothing newer ends the paging instead
    of looping.
    """
    found: dict[str, Mention] = {}
    cursor = min_id
    pages = 0
    while max_pages is None or pages < max_pages:
        page = fetch(cursor, limit)
        pages += 1
        if not page:
            break
        for _, mention in page:
            if mention is not None:
                found[mention.notification_id] = mention
        newest = max((notification_id for notification_id, _ in page), key=id_order)
        if id_order(newest) <= id_order(cursor):
            break
        cursor = newest
    return sorted(found.values(), key=lambda m: id_order(m.notification_id))


def _guarded(what: str, callback: Callable[..., None], *args: object) -> None:
    """Call a stream callback; log what it raises (it must never kill the stream's thread)."""
    try:
        callback(*args)
    except Exception:
        log.exception("%s raised; the stream goes on", what)


def _mention_listener(on_mention: Callable[[Mention], None],
                      on_reconnect: Callable[[], None]) -> object:
    """Return a Mastodon.py ``StreamListener`` that hands mentions on and never raises."""
    from mastodon import StreamListener

    class MentionListener(StreamListener):
        def handle_stream(self, response: object) -> None:
            # Called once per (re)connection, before its first event.
            _guarded("on_reconnect", on_reconnect)
            super().handle_stream(response)  # type: ignore[no-untyped-call]

        def on_notification(self, notification: object) -> None:
            if not isinstance(notification, Mapping):
                return
            try:
                mention = mention_from_notification(notification)
            except Exception:
                log.exception("unreadable notification on the stream (skipped)")
                return
            if mention is not None:
                _guarded("on_mention", on_mention, mention)

        def on_abort(self, err: object) -> None:
            log.debug("user stream interrupted: %s", type(err).__name__)

        def on_unknown_event(self, name: object, unknown_event: object = None) -> None:
            log.debug("user stream: unknown event %s ignored", name)

    return MentionListener()


class IdleStream:
    """A stream that never delivers anything: the console gateway's."""

    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        """Stop it."""
        self.closed = True

    def is_alive(self) -> bool:
        """Return True until closed."""
        return not self.closed

    def is_receiving(self) -> bool:
        """Return True until closed."""
        return not self.closed


# --- X-RateLimit-Reset ------------------------------------------------------

_FRACTION = re.compile(r"(\.\d+)")


def parse_http_time(value: str) -> float | None:
    """Return an ISO 8601 or RFC 1123 time (or an epoch number) as epoch seconds, or None.

    ISO 8601 is what real Mastodon sends in ``X-RateLimit-Reset``
    (``2026-08-01T13:50:00.400382Z``); an epoch number is what mastodon-mock and
    GoToSocial send; RFC 1123 is the ``Date`` header. A naive time is UTC.
    """
    text = value.strip()
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(number):
            return None
        return number / 1000.0 if number > defaults.MILLISECONDS_THRESHOLD else number
    iso = text.replace(" ", "T", 1) if re.match(r"^\d{4}-\d\d-\d\d \d", text) else text
    if iso.endswith(("Z", "z")):
        iso = iso[:-1] + "+00:00"
    # Python 3.10's fromisoformat wants exactly 3 or 6 fraction digits.
    iso = _FRACTION.sub(lambda m: (m.group(1) + "000000")[:7], iso, count=1)
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def ratelimit_retry_at(reset: str | None, now: float, server_date: str | None = None,
                       ) -> float | None:
    """Return the local epoch time a 429 allows retrying at, or None when ``reset`` is unusable.

    ``reset`` is the ``X-RateLimit-Reset`` header: ISO 8601 on real Mastodon,
    epoch seconds elsewhere. When the response's ``Date`` header is given, the
    wait is measured on the server's clock (reset minus server time) and added
    to ``now``, so a skewed local clock does not matter. Never earlier than
    ``now``, never later than ``now + RATELIMIT_MAX_WAIT``.
    """
    if reset is None:
        return None
    at = parse_http_time(reset)
    if at is None:
        return None
    served = parse_http_time(server_date) if server_date else None
    wait = at - (served if served is not None else now)
    return now + min(max(wait, 0.0), defaults.RATELIMIT_MAX_WAIT)


# --- media and activity helpers ------------------------------------------------------

MEDIA_NOT_PROCESSED = ("Cannot attach files that have not finished processing. "
                       "Try again in a moment!")
"""Mastodon's (English) 422 text for a status whose attachment is still processing."""


def truncate_description(description: str, limit: int) -> str:
    """Return ``description`` cut to ``limit`` characters (ending with "…" when cut)."""
    if limit <= 0 or len(description) <= limit:
        return description if limit > 0 else ""
    return description[:limit - 1].rstrip() + "…"


def media_type(path: str) -> str:
    """Return the MIME type of a media file from its name; PermanentError when unknown."""
    guessed, _ = mimetypes.guess_type(path)
    if guessed is None or guessed.split("/")[0] not in ("image", "video", "audio"):
        raise PermanentError(f"upload_media: {os.path.basename(path)}: not an image, video or "
                             f"audio file name ({guessed or 'unknown type'})")
    return guessed


def check_media_file(path: str) -> None:
    """Raise ``PermanentError`` when ``path`` is not a readable regular file."""
    if not os.path.isfile(path):
        raise PermanentError(f"upload_media: {path}: no such file")
    if not os.access(path, os.R_OK):
        raise PermanentError(f"upload_media: {path}: not readable")


def _count(value: object) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return int(value)
    text = str(value or "").strip()
    return int(text) if text.isdigit() else 0


def activity_from_api(weeks: object) -> list[dict[str, int]]:
    """Return ``/api/v1/instance/activity`` entries as plain ints, newest week first.

    Mastodon sends every value as a string (``"week": "1574553600"``);
    Mastodon.py turns ``week`` into a datetime. Entries without a week are skipped.
    """
    result: list[dict[str, int]] = []
    for week in weeks if isinstance(weeks, list) else []:
        if not isinstance(week, Mapping):
            continue
        start = week.get("week")
        at = int(_epoch(float(start) if isinstance(start, str) and start.strip().isdigit()
                        else start))
        if at <= 0:
            continue
        result.append({"week": at, "statuses": _count(week.get("statuses")),
                       "logins": _count(week.get("logins")),
                       "registrations": _count(week.get("registrations"))})
    return sorted(result, key=lambda w: w["week"], reverse=True)


# --- the real client ------------------------------------------------------------


class MastodonGateway:
    """The bot account on a real Mastodon instance, through Mastodon.py.

    Mastodon.py runs with ``ratelimit_method="throw"`` (never sleeps inside a
    call) and ``request_timeout``. The access token lives only inside the
    Mastodon.py client: it is never logged, never part of an error message,
    and ``repr`` leaves it out.
    """

    def __init__(self, api_base_url: str, access_token: str, *,
                 request_timeout: float = defaults.REQUEST_TIMEOUT,
                 user_agent: str = defaults.USER_AGENT,
                 clock: Callable[[], float] = time.time) -> None:
        from mastodon import Mastodon

        self.api_base_url = api_base_url
        self.request_timeout = float(request_timeout)
        self.user_agent = user_agent
        self.calls = 0
        self._clock = clock
        self._last_headers: Mapping[str, str] | None = None
        self._limits: InstanceLimits | None = None
        self._version_known = False
        self._processed: set[str] = set()
        self._api: Any = Mastodon(
            api_base_url=api_base_url, access_token=access_token,
            ratelimit_method="throw", request_timeout=self.request_timeout,
            user_agent=user_agent, version_check_mode="none",
        )
        # Keep the headers of the last response: a 429's X-RateLimit-Reset and Date.
        self._api.session.hooks["response"].append(self._remember_response)

    def __repr__(self) -> str:
        return (f"MastodonGateway(api_base_url={self.api_base_url!r}, "
                f"request_timeout={self.request_timeout!r}, user_agent={self.user_agent!r})")

    def _remember_response(self, response: object, *args: object, **kwargs: object) -> None:
        self._last_headers = getattr(response, "headers", None)

    def _scrub(self, text: str) -> str:
        secret = getattr(self._api, "access_token", None)
        return text.replace(secret, "<secret>") if isinstance(secret, str) and secret else text

    def _call(self, what: str, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs,
              ) -> T:
        """Make one API call, mapping Mastodon.py's errors to Retryable/Permanent."""
        from mastodon.errors import (
            MastodonAPIError,
            MastodonError,
            MastodonNetworkError,
            MastodonRatelimitError,
        )

        self.calls += 1
        self._last_headers = None
        try:
            return function(*args, **kwargs)
        except MastodonRatelimitError as exc:
            retry_at = self._retry_at()
            raise RetryableError(f"{what}: rate limited ({self._scrub(str(exc))})",
                                 retry_at=retry_at, status=429) from None
        except MastodonNetworkError as exc:
            raise RetryableError(f"{what}: {self._scrub(str(exc))}") from None
        except MastodonAPIError as exc:
            status = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else None
            detail = self._scrub(" ".join(str(a) for a in exc.args[2:] if a) or str(exc))
            if status is None or status >= 500 or status in (408, 429):
                # No status: the body was not JSON (a proxy page, a cut-off answer).
                raise RetryableError(f"{what}: HTTP {status}: {detail}", status=status) from None
            raise PermanentError(f"{what}: HTTP {status}: {detail}", status=status) from None
        except (MastodonError, ValueError) as exc:
            raise PermanentError(f"{what}: {self._scrub(str(exc))}") from None

    def _retry_at(self) -> float | None:
        now = self._clock()
        headers = self._last_headers
        if headers is not None and headers.get("X-RateLimit-Reset"):
            return ratelimit_retry_at(headers.get("X-RateLimit-Reset"), now,
                                      headers.get("Date"))
        reset = getattr(self._api, "ratelimit_reset", None)
        if isinstance(reset, (int, float)) and reset > now:
            return min(float(reset), now + defaults.RATELIMIT_MAX_WAIT)
        return None

    def post(self, post: Post, in_reply_to_id: str | None,
             media_ids: Sequence[str] = ()) -> str:
        """Publish ``post`` with ``post.key`` as Idempotency-Key; return the status id."""
        status = self._call(
            "post", self._api.status_post, post.text, in_reply_to_id=in_reply_to_id,
            media_ids=list(media_ids) or None,
            visibility=post.visibility or None, spoiler_text=post.spoiler_text or None,
            sensitive=bool(post.spoiler_text), language=post.language or None,
            idempotency_key=post.key,
        )
        return str(status["id"])

    def _learn_version(self) -> None:
        """Read the instance's version once (counted), so ``media_post`` picks /api/v2/media.

        Mastodon.py would otherwise read it silently inside ``media_post`` and,
        if that read failed (an outage), fall back to /api/v1/media for good.
        """
        if self._version_known:
            return
        from mastodon.errors import MastodonVersionError

        self.calls += 1
        try:
            self._api.retrieve_mastodon_version(fail_hard=True)
        except MastodonVersionError as exc:
            # v1 answered but v2 did not (a server before 4.0): the version is known.
            if int(getattr(self._api, "mastodon_major", 1)) <= 1:
                cause = exc.__cause__ if exc.__cause__ is not None else exc
                raise RetryableError(f"instance version: {self._scrub(str(cause))}") from None
        self._version_known = True

    def upload_media(self, path: str, description: str) -> str:
        """Upload ``path`` (``media_post``, not synchronous); return the media id.

        Images usually come back processed (200); video, gifv and audio come
        back 202 with ``url`` null and are processed later (``media_ready``).
        The file is read here and closed after the request; ``description``
        should already fit the instance's ``description_limit``.
        """
        check_media_file(path)
        mime = media_type(path)
        self._learn_version()
        try:
            with open(path, "rb") as handle:
                media = self._call("upload_media", self._api.media_post, handle,
                                   mime_type=mime, description=description or None,
                                   file_name=os.path.basename(path), synchronous=False)
        except OSError as exc:
            raise PermanentError(f"upload_media: {path}: {exc.strerror or exc}") from None
        media_id = str(media["id"])
        if media.get("url"):
            self._processed.add(media_id)
        return media_id

    def media_ready(self, media_id: str) -> bool:
        """Return True once ``media_id`` is processed (GET /api/v1/media/:id; 206 = not yet).

        An upload that came back processed costs no call.
        """
        if media_id in self._processed:
            return True
        media = self._call("media", self._api.media, media_id)
        if media.get("url"):
            self._processed.add(media_id)
            return True
        return False

    def instance_activity(self) -> list[dict[str, int]]:
        """Return GET /api/v1/instance/activity (12 weeks, newest first); [] when disabled.

        Admins can turn the activity API off (404); a server in limited
        federation mode may refuse it to others (403). Both give [].
        """
        try:
            weeks = self._call("instance_activity", self._api.instance_activity)
        except PermanentError as exc:
            if exc.status in (403, 404, 410):
                return []
            raise
        return activity_from_api(list(weeks or []))

    def _pinned(self, status_id: str) -> bool:
        status = self._call("status", self._api.status, status_id)
        return bool(status.get("pinned"))

    def pin(self, status_id: str) -> None:
        """Pin a status; a 422 for a status that turns out to be pinned counts as done.

        Mastodon's 422 texts are translated into the account's locale, so the
        status is fetched to tell "already pinned" from "too many pins".
        """
        try:
            self._call("pin", self._api.status_pin, status_id)
        except PermanentError as exc:
            if exc.status == 422 and self._pinned(status_id):
                return
            raise

    def unpin(self, status_id: str) -> None:
        """Unpin a status; not pinned (a 422, or 404 for a deleted status) counts as done."""
        try:
            self._call("unpin", self._api.status_unpin, status_id)
        except PermanentError as exc:
            if exc.status == 404:
                return
            if exc.status == 422 and not self._pinned(status_id):
                return
            raise

    def limits(self) -> InstanceLimits:
        """Return the limits from ``/api/v2/instance`` (one call, then cached).

        Mastodon's defaults for whatever the instance does not say, and for
        servers older than 4.0 that have no v2 endpoint (404). A retryable error
        is raised, so the caller can try again later.
        """
        if self._limits is None:
            try:
                instance = self._call("instance", self._api.instance_v2)
            except PermanentError as exc:
                if exc.status != 404:
                    raise
                instance = {}
            self._limits = limits_from_instance(instance)
        return self._limits

    def probe(self) -> None:
        """Read the bot's own account (one call): the instance answers and takes the token."""
        self._call("verify_credentials", self._api.account_verify_credentials)

    def own_account(self) -> tuple[str, str]:
        """Return the bot account's (id, acct) (one call)."""
        account = self._call("verify_credentials", self._api.account_verify_credentials)
        return str(account["id"]), str(account.get("acct") or account.get("username"))

    def set_profile_field(self, name: str, value: str) -> None:
        """Set the profile field ``name`` to ``value``; keep the other fields; bot flag on.

        Reads the account first (one call) and skips the update when nothing
        would change. A new field replaces the last one when all are taken.
        """
        account = self._call("verify_credentials", self._api.account_verify_credentials)
        source = account.get("source") or {}
        if "fields" in source:  # the values as typed
            current = [(str(f.get("name", "")), str(f.get("value", "")))
                       for f in source.get("fields") or []]
        else:  # the rendered values: strip the links Mastodon added
            current = [(str(f.get("name", "")), _plain(str(f.get("value", ""))))
                       for f in account.get("fields") or []]
        fields = merge_profile_field(current, name, value,
                                     (self._limits or InstanceLimits()).max_profile_fields)
        if fields == current and account.get("bot"):
            return
        self._call("update_credentials", self._api.account_update_credentials,
                   fields=fields, bot=True)


    # --- mentions ---------------------------------------------------------------

    def _mentions_page(self, min_id: str | None, limit: int,
                       ) -> list[tuple[str, Mention | None]]:
        page = self._call("notifications", self._api.notifications, types=["mention"],
                          min_id=min_id, limit=limit)
        return [(str(item.get("id")), mention_from_notification(item)) for item in page or ()]

    def mentions_since(self, min_id: str | None, limit: int = defaults.MENTIONS_PAGE_LIMIT,
                       max_pages: int | None = None) -> list[Mention]:
        """Return the mention notifications after ``min_id``, oldest first (one call per page).

        ``GET /api/v1/notifications?types[]=mention&min_id=…``; Mastodon answers
        newest first, the pages are put in order here.
        """
        return page_mentions(self._mentions_page, min_id, limit, max_pages)

    def stream_mentions(self, on_mention: Callable[[Mention], None],
                        on_reconnect: Callable[[], None], *,
                        timeout: float = defaults.MENTIONS_STREAM_TIMEOUT,
                        reconnect_wait: float = defaults.MENTIONS_STREAM_RECONNECT_WAIT,
                        ) -> StreamHandle:
        """Follow ``/api/v1/streaming/user`` on Mastodon.py's thread; return its handle.

        ``stream_user(run_async=True, reconnect_async=True)``: the first
        connection and every reconnection are retried every ``reconnect_wait``
        seconds; ``timeout`` seconds without a byte (heartbeats included) count
        as a dead connection. Callbacks are wrapped so that nothing they raise
        reaches Mastodon.py (an exception there ends the thread for good);
        the caller still supervises ``is_alive()``. Needs ``read:statuses``
        and ``read:notifications``.
        """
        listener = _mention_listener(on_mention, on_reconnect)
        handle: StreamHandle = self._call(
            "stream_user", self._api.stream_user, listener, run_async=True, timeout=timeout,
            reconnect_async=True, reconnect_async_wait_sec=reconnect_wait)
        return handle

    def resolve_account(self, acct: str) -> tuple[str, str, bool]:
        """Return (id, acct, bot) of ``acct`` via ``/api/v1/accounts/lookup`` (``read:accounts``).

        Only accounts the instance already knows are found; a 404 raises
        ``PermanentError``.
        """
        account = self._call("account_lookup", self._api.account_lookup, acct.lstrip("@"))
        return str(account["id"]), str(account.get("acct") or acct), bool(account.get("bot"))

    def pinned_statuses(self) -> list[PinnedStatus]:
        """Return ``GET /api/v1/accounts/:id/statuses?pinned=true`` of the bot (two calls).

        One page: an account has at most a few pins (``max_pinned``, 5 by default).
        """
        account_id, _ = self.own_account()
        page = self._call("pinned_statuses", self._api.account_statuses, account_id,
                          pinned=True, limit=40)
        return [pinned for pinned in map(pinned_from_api, page or ()) if pinned is not None]

    def notification_policy(self) -> dict[str, str]:
        """Return the ``for_*`` fields of ``/api/v2/notifications/policy``; empty on a 404.

        Needs ``read:notifications``. Servers before Mastodon 4.3 have no
        policy (404), and filter nothing.
        """
        try:
            policy = self._call("notification_policy", self._api.notifications_policy)
        except PermanentError as exc:
            if exc.status == 404:
                return {}
            raise
        return {str(k): str(v) for k, v in dict(policy).items() if str(k).startswith("for_")}

    def set_notification_policy(self, changes: Mapping[str, str]) -> dict[str, str]:
        """PATCH the named ``for_*`` policy fields (``write:notifications``); return the policy."""
        unknown = sorted(set(changes) - _POLICY_FIELDS)
        if unknown:
            raise PermanentError(f"notification policy: unknown fields {', '.join(unknown)}")
        policy = self._call("set_notification_policy", self._api.update_notifications_policy,
                            **dict(changes))
        return {str(k): str(v) for k, v in dict(policy).items() if str(k).startswith("for_")}


_POLICY_FIELDS = frozenset({"for_not_following", "for_not_followers", "for_new_accounts",
                            "for_private_mentions", "for_limited_accounts"})

POLICY_DEFAULTS = {"for_not_following": "accept", "for_not_followers": "accept",
                   "for_new_accounts": "accept", "for_private_mentions": "filter",
                   "for_limited_accounts": "filter"}
"""Mastodon 4.3+'s notification policy for a new account (private mentions filtered)."""


def _plain(value: str) -> str:
    return html.unescape(re.sub(r"<[^>]*>", "", value))


def merge_profile_field(fields: list[tuple[str, str]], name: str, value: str,
                        max_fields: int) -> list[tuple[str, str]]:
    """Return ``fields`` with ``name`` set to ``value``, every other field as it was."""
    merged = [(n, value) if n == name else (n, v) for n, v in fields]
    if all(n != name for n, _ in fields):
        merged.append((name, value))
        if len(merged) > max_fields >= 1:
            merged = [*merged[:max_fields - 1], (name, value)]
    return merged


def limits_from_instance(instance: Mapping[str, Any]) -> InstanceLimits:
    """Read ``InstanceLimits`` from an instance v2 object; defaults for what is missing."""
    config = instance.get("configuration") or {}

    def number(section: str, key: str, default: int) -> int:
        value = (config.get(section) or {}).get(key)
        return value if isinstance(value, int) and value > 0 else default

    return InstanceLimits(
        max_characters=number("statuses", "max_characters", defaults.INSTANCE_MAX_CHARACTERS),
        description_limit=number("media_attachments", "description_limit",
                                 defaults.INSTANCE_DESCRIPTION_LIMIT),
        max_pinned=number("accounts", "max_pinned_statuses", defaults.INSTANCE_MAX_PINNED),
        max_profile_fields=number("accounts", "max_profile_fields",
                                  defaults.INSTANCE_MAX_PROFILE_FIELDS),
        characters_reserved_per_url=number("statuses", "characters_reserved_per_url",
                                           defaults.INSTANCE_CHARACTERS_PER_URL),
    )


# --- console ---------------------------------------------------------------------


class ConsoleGateway:
    """Prints each post as members would see it, instead of sending it.

    Used when no ``[mastodon]`` is configured and by ``--dry-run``. Status ids
    are increasing numbers; a repeated idempotency key returns the same id, as
    Mastodon does.
    """

    def __init__(self, out: TextIO, limits: InstanceLimits | None = None) -> None:
        self.out = out
        self.calls = 0
        self._limits = limits or InstanceLimits()
        self._ids = itertools.count(1)
        self._by_key: dict[str, str] = {}
        self._posts: dict[str, Post] = {}
        self._pinned: set[str] = set()
        self._fields: list[tuple[str, str]] = []
        self._media: dict[str, tuple[str, str]] = {}
        self._media_ids = itertools.count(1)

    def __repr__(self) -> str:
        return "ConsoleGateway()"

    def post(self, post: Post, in_reply_to_id: str | None,
             media_ids: Sequence[str] = ()) -> str:
        """Print the post and its attachments; return its (fake) status id."""
        self.calls += 1
        if post.key in self._by_key:
            return self._by_key[post.key]
        status_id = str(next(self._ids))
        self._by_key[post.key] = status_id
        self._posts[status_id] = post
        where = f"reply to #{in_reply_to_id}" if in_reply_to_id else "new thread"
        lines = [f"--- #{status_id} {post.kind.value}, {post.visibility}, {where}, "
                 f"{post.language or 'no language'} [{post.key}]"]
        if post.spoiler_text:
            lines.append(f"CW: {post.spoiler_text}")
        lines.append(post.text)
        for media_id in media_ids:
            path, description = self._media.get(media_id, (media_id, ""))
            lines.append(f"[image: {path}, alt: {description}]")
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()
        return status_id

    def upload_media(self, path: str, description: str) -> str:
        """Check the file and remember it; it is printed with the post that attaches it."""
        check_media_file(path)
        self.calls += 1
        media_id = f"media-{next(self._media_ids)}"
        self._media[media_id] = (path, description)
        return media_id

    def media_ready(self, media_id: str) -> bool:
        """Return True: the console processes nothing."""
        return True

    def instance_activity(self) -> list[dict[str, int]]:
        """Return []: the console has no activity to report."""
        return []

    def pin(self, status_id: str) -> None:
        """Print that the status is pinned."""
        self.calls += 1
        self._pinned.add(status_id)
        self.out.write(f"--- #{status_id} pinned to the profile\n")

    def unpin(self, status_id: str) -> None:
        """Print that the status is unpinned."""
        self.calls += 1
        self._pinned.discard(status_id)
        self.out.write(f"--- #{status_id} unpinned\n")

    def limits(self) -> InstanceLimits:
        """Return the limits given at construction (Mastodon's defaults otherwise)."""
        return self._limits

    def probe(self) -> None:
        """Count the call; the console is always there."""
        self.calls += 1

    def set_profile_field(self, name: str, value: str) -> None:
        """Print the profile field as it would be set."""
        self.calls += 1
        self._fields = merge_profile_field(self._fields, name, value,
                                           self._limits.max_profile_fields)
        self.out.write(f"--- profile field {name}: {value} (bot account)\n")

    def mentions_since(self, min_id: str | None, limit: int = defaults.MENTIONS_PAGE_LIMIT,
                       max_pages: int | None = None) -> list[Mention]:
        """Return nothing: nobody can mention the console."""
        return []

    def stream_mentions(self, on_mention: Callable[[Mention], None],
                        on_reconnect: Callable[[], None]) -> StreamHandle:
        """Return a stream that never delivers anything."""
        return IdleStream()

    def resolve_account(self, acct: str) -> tuple[str, str, bool]:
        """Return a placeholder id (``console:<acct>``) that no instance would use."""
        name = acct.lstrip("@")
        return f"console:{name}", name, False

    def pinned_statuses(self) -> list[PinnedStatus]:
        """Return the statuses pinned since the console started (it remembers no more)."""
        self.calls += 1
        return [PinnedStatus(status_id, post.created_at, post.visibility, post.spoiler_text,
                             post.text, None if post.parent_key is None else "?")
                for status_id, post in self._posts.items() if status_id in self._pinned]

    def notification_policy(self) -> dict[str, str]:
        """Return a policy that accepts everything."""
        return dict.fromkeys(sorted(_POLICY_FIELDS), "accept")

    def set_notification_policy(self, changes: Mapping[str, str]) -> dict[str, str]:
        """Print the change; return the (unchanged) accept-everything policy."""
        self.calls += 1
        self.out.write("--- notification policy: "
                       + ", ".join(f"{k}={v}" for k, v in sorted(changes.items())) + "\n")
        return {**self.notification_policy(), **changes}


# --- in-memory fake ------------------------------------------------------------------


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
            _guarded("on_reconnect", self.on_reconnect)

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
        _guarded("on_mention", self.on_mention, mention)
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
