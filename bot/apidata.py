"""Read what the Mastodon API answers into the bot's values, trusting none of it.

Mention notifications (REST and stream), pinned statuses, rate-limit reset
times, instance activity and limits, the notification policy's fields, profile
fields, media checks and description truncation. Plain functions of their
arguments (only ``check_media_file`` looks at the disk), with no client and no
logging, shared by the real client, the console and recording gateways and
the outbox. A missing or ill-typed field reads as None, a default or a
skipped entry; ``media_type`` and ``check_media_file`` refuse with
``PermanentError``.
"""

from __future__ import annotations

import html
import math
import mimetypes
import os
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

from bot import defaults
from bot.gateway import (
    InstanceLimits,
    Mention,
    MentionedAccount,
    PermanentError,
    PinnedStatus,
    id_order,
)

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
        text = plain_text(re.sub(r"<br\s*/?>|</p>", "\n", str(value or "")))
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


POLICY_FIELDS = frozenset({"for_not_following", "for_not_followers", "for_new_accounts",
                            "for_private_mentions", "for_limited_accounts"})
"""The fields of Mastodon's notification policy (``/api/v2/notifications/policy``)."""

POLICY_DEFAULTS = {"for_not_following": "accept", "for_not_followers": "accept",
                   "for_new_accounts": "accept", "for_private_mentions": "filter",
                   "for_limited_accounts": "filter"}
"""Mastodon 4.3+'s notification policy for a new account (private mentions filtered)."""


def plain_text(value: str) -> str:
    """Return an HTML fragment as text: tags dropped, entities decoded."""
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
