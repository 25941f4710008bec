"""A gateway that prints posts instead of sending them, and a stream that never delivers.

Used when no ``[mastodon]`` is configured and by ``--dry-run`` (which still
reads the real instance's limits and hands them to this gateway). Nothing it
does touches the network.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import TextIO

from bot import defaults
from bot.apidata import POLICY_FIELDS, check_media_file, merge_profile_field
from bot.gateway import InstanceLimits, Mention, PinnedStatus, StreamHandle
from bot.model import Post


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
        return dict.fromkeys(sorted(POLICY_FIELDS), "accept")

    def set_notification_policy(self, changes: Mapping[str, str]) -> dict[str, str]:
        """Print the change; return the (unchanged) accept-everything policy."""
        self.calls += 1
        self.out.write("--- notification policy: "
                       + ", ".join(f"{k}={v}" for k, v in sorted(changes.items())) + "\n")
        return {**self.notification_policy(), **changes}
