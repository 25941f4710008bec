"""The port to Mastodon: the Gateway protocol, its errors and the values it hands out.

Every failure of a call is one of two exceptions: ``RetryableError`` (network
error, timeout, 5xx, 429: try again later, with the same idempotency key) or
``PermanentError`` (any other 4xx: the instance will never accept this
request). The implementations live beside it: ``mastodon_api`` (the real
client, the only module that imports Mastodon.py), ``console`` (prints) and
``testing`` (the recording fake).

Mentions come in two ways: ``mentions_since`` pages through mention
notifications after a ``min_id`` (polling), ``stream_mentions`` follows the
user stream. Both hand out ``Mention`` values.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from bot import defaults
from bot.model import Post

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
    whitespace folded, at most ``apidata.PINNED_TEXT_LIMIT`` characters).
    """

    id: str
    created_at: float
    visibility: str
    spoiler_text: str
    text: str
    in_reply_to_id: str | None = None


def guarded(what: str, callback: Callable[..., None], *args: object) -> None:
    """Call a stream callback; log what it raises (it must never kill the stream's thread)."""
    try:
        callback(*args)
    except Exception:
        log.exception("%s raised; the stream goes on", what)
