"""The bot account on a real Mastodon instance, through Mastodon.py.

This is the only module that imports Mastodon.py. Every failure of a call
becomes a ``RetryableError`` or a ``PermanentError``; the access token never
leaves the client.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ParamSpec, TypeVar

from bot import defaults
from bot.apidata import (
    POLICY_FIELDS,
    activity_from_api,
    check_media_file,
    limits_from_instance,
    media_type,
    mention_from_notification,
    merge_profile_field,
    page_mentions,
    pinned_from_api,
    plain_text,
    ratelimit_retry_at,
)
from bot.gateway import (
    InstanceLimits,
    Mention,
    PermanentError,
    PinnedStatus,
    RetryableError,
    StreamHandle,
    guarded,
)
from bot.model import Post

T = TypeVar("T")
P = ParamSpec("P")

log = logging.getLogger(__name__)


def _mention_listener(on_mention: Callable[[Mention], None],
                      on_reconnect: Callable[[], None]) -> object:
    """Return a Mastodon.py ``StreamListener`` that hands mentions on and never raises."""
    from mastodon import StreamListener

    class MentionListener(StreamListener):
        def handle_stream(self, response: object) -> None:
            # Called once per (re)connection, before its first event.
            guarded("on_reconnect", on_reconnect)
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
                guarded("on_mention", on_mention, mention)

        def on_abort(self, err: object) -> None:
            log.debug("user stream interrupted: %s", type(err).__name__)

        def on_unknown_event(self, name: object, unknown_event: object = None) -> None:
            log.debug("user stream: unknown event %s ignored", name)

    return MentionListener()


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
            current = [(str(f.get("name", "")), plain_text(str(f.get("value", ""))))
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
        unknown = sorted(set(changes) - POLICY_FIELDS)
        if unknown:
            raise PermanentError(f"notification policy: unknown fields {', '.join(unknown)}")
        policy = self._call("set_notification_policy", self._api.update_notifications_policy,
                            **dict(changes))
        return {str(k): str(v) for k, v in dict(policy).items() if str(k).startswith("for_")}
