"""The port to Mastodon: the Gateway protocol, the real client, a console printer and a fake.

This is the only module that imports Mastodon.py. Every failure of a call is
one of two exceptions: ``RetryableError`` (network error, timeout, 5xx, 429:
try again later, with the same idempotency key) or ``PermanentError`` (any
other 4xx: the instance will never accept this request).
"""

from __future__ import annotations

import html
import itertools
import math
import re
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, ParamSpec, Protocol, TextIO, TypeVar, runtime_checkable

from bot import defaults
from bot.model import Post

T = TypeVar("T")
P = ParamSpec("P")


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

    def post(self, post: Post, in_reply_to_id: str | None) -> str:
        """Publish ``post`` (sending ``post.key`` as Idempotency-Key); return its status id."""
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

    def post(self, post: Post, in_reply_to_id: str | None) -> str:
        """Publish ``post`` with ``post.key`` as Idempotency-Key; return the status id."""
        status = self._call(
            "post", self._api.status_post, post.text, in_reply_to_id=in_reply_to_id,
            visibility=post.visibility or None, spoiler_text=post.spoiler_text or None,
            sensitive=bool(post.spoiler_text), language=post.language or None,
            idempotency_key=post.key,
        )
        return str(status["id"])

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
        self._pinned: set[str] = set()
        self._fields: list[tuple[str, str]] = []

    def __repr__(self) -> str:
        return "ConsoleGateway()"

    def post(self, post: Post, in_reply_to_id: str | None) -> str:
        """Print the post; return its (fake) status id."""
        self.calls += 1
        if post.key in self._by_key:
            return self._by_key[post.key]
        status_id = str(next(self._ids))
        self._by_key[post.key] = status_id
        where = f"reply to #{in_reply_to_id}" if in_reply_to_id else "new thread"
        lines = [f"--- #{status_id} {post.kind.value}, {post.visibility}, {where}, "
                 f"{post.language or 'no language'} [{post.key}]"]
        if post.spoiler_text:
            lines.append(f"CW: {post.spoiler_text}")
        lines.append(post.text)
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()
        return status_id

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

    def post(self, post: Post, in_reply_to_id: str | None) -> str:
        """Record the post; return its id (the original one for a repeated key)."""
        lost = self._enter("post", post, in_reply_to_id)
        now = self.clock() if self.clock is not None else 0.0
        known = self._keys.get(post.key)
        if known is not None and (self.idempotency_window is None
                                  or now - known[1] <= self.idempotency_window):
            status_id = known[0]
        else:
            status_id = str(next(self._ids))
            self.statuses[status_id] = RecordedStatus(status_id, post, in_reply_to_id)
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
