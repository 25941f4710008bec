"""A lost state file: pick up the bot's pinned notice instead of opening a second thread.

The state file remembers which status is the open incident's notice. When it
is lost (deleted, replaced by an empty one) and the bot starts again, the
account still shows that notice pinned; without this module the bot would
open a second thread beside it and leave the first pinned for ever.

A new state file is marked (``bot.store.ADOPT_STATE``). While the mark is
there, each tick (``Adopter.step``, before delivery) looks at the account's
pinned statuses once, keeps the bot's own incident notices that no outbox row
knows (``is_notice``: a top-level, member-visible status whose content warning
is one of the notice CWs, as configured or as shipped), and ``plan`` decides:

- an incident opened since the start (its notice is queued but was never
  tried, or held for confirmation; it may even have resolved since): the
  newest such pinned notice becomes its notice (the outbox row
  ``<incident>:0`` is recorded as published with that status id and
  pinned), so updates and the resolution go into that thread and the
  resolution unpins it; no second notice is posted. Any other one is closed
  as below, as all of them are when the open incident's notice went out already.
- all is well (no component firing or on its way): each gets a short
  resolution reply in its thread and is unpinned (through the outbox, keys
  ``adopt:<status id>`` for the old notice, ``…:resolved`` for the reply).
- something is on its way but no incident is open yet: wait, up to
  ``ADOPT_WAIT`` seconds, so a problem that is still there re-attaches rather
  than being resolved and then announced again.

Admins get a direct message per adopted notice (``adopt:<status id>:admin``).
What was decided, the posts and the removal of the mark are one transaction,
and the keys derive from the pinned status's id: a crash repeats the whole
decision or nothing, and a repeat after another lost file reuses the same
idempotency keys. Listing the pins fails retryably: tried again after
``ADOPT_RETRY`` seconds, and while an incident notice is unsent, delivery
waits (that notice must not go out beside the old one). A permanent refusal
gives up (logged; a second notice may then appear).

``state_lost_notice`` is the admin message sent when the file disappears or
is replaced while the bot runs (``Bot`` checks it every tick).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from bot import compose
from bot.gateway import Gateway, PermanentError, PinnedStatus, RetryableError, id_order
from bot.model import Incident, Post, PostKind
from bot.store import ADOPT_STATE, Store
from bot.wording import DEFAULT_WORDING, fill

log = logging.getLogger(__name__)

ADOPT_WAIT = 900.0
"""Seconds a fresh start waits for a problem on its way to fire before closing old notices."""

ADOPT_RETRY = 60.0
"""Seconds between attempts to read the pinned statuses while the instance cannot be asked
(``RetryableError``; one attempt per tick could cost a request timeout every tick)."""

MEMBER_VISIBILITIES = frozenset({"public", "unlisted"})
"""Visibilities the bot's member posts may have (``member_visibility``)."""


def is_notice(status: PinnedStatus, settings: compose.Settings) -> bool:
    """Return True when ``status`` is one of the bot's incident notices.

    Recognised by its place (top level, member-visible) and its content warning:
    one of the notice CWs of the configured wording or of the shipped one (the
    wording may have changed since it was posted). A status an admin pinned
    by hand (an introduction, a rules post) has neither.
    """
    if status.in_reply_to_id is not None or status.visibility not in MEMBER_VISIBILITIES:
        return False
    words = settings.wording
    cws = {words.cw_notice_warning, words.cw_notice_critical,
           DEFAULT_WORDING.cw_notice_warning, DEFAULT_WORDING.cw_notice_critical}
    measure = compose.mastodon_length
    cws |= {compose.truncate(cw, 100, measure) for cw in cws}
    return " ".join(status.spoiler_text.split()) in {" ".join(cw.split()) for cw in cws}


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do with the orphaned notices: attach one, close the others, or wait."""

    attach: PinnedStatus | None
    close: tuple[PinnedStatus, ...]
    wait: bool
    reason: str
    notice_key: str | None = None
    """The outbox key of the notice ``attach`` stands for (``<incident>:0``)."""


def plan(orphans: Sequence[PinnedStatus], notice_key: str | None, incident_open: bool,
         quiet: bool, waited: float) -> Plan:
    """Decide, from this tick's state, what happens to ``orphans`` (pure).

    ``notice_key`` is the key of an incident notice that was never sent (the
    incident opened since the start; it may have resolved since), None when
    there is none; ``incident_open`` says an incident is open (with a notice of
    its own when ``notice_key`` is None); ``quiet`` says no component is firing
    or on its way; ``waited`` is how long adoption has been deciding.
    """
    newest = sorted(orphans, key=lambda s: id_order(s.id), reverse=True)
    if not newest:
        return Plan(None, (), False, "no pinned notice to pick up")
    if notice_key is not None:
        return Plan(newest[0], tuple(newest[1:]), False,
                    f"{notice_key} continues in {newest[0].id}", notice_key)
    if incident_open:
        return Plan(None, tuple(newest), False, "the open incident has a notice of its own")
    if not quiet and waited < ADOPT_WAIT:
        return Plan(None, (), True, "something is on its way: waiting for it to fire or clear")
    return Plan(None, tuple(newest), False,
                "all is well" if quiet else f"nothing fired within {ADOPT_WAIT:.0f} s")


def _as_post(status: PinnedStatus, key: str, settings: compose.Settings) -> Post:
    """Return the outbox row standing for a status published before the state was lost."""
    return Post(key=key, kind=PostKind.NOTICE, text=status.text or "(pinned notice)",
                visibility=status.visibility, created_at=status.created_at,
                spoiler_text=status.spoiler_text, language=settings.language, pin=True)


def posts_for(chosen: Plan, now: float, settings: compose.Settings, takeover: bool = False,
              ) -> tuple[list[tuple[Post, str]], list[Post]]:
    """Return the rows to record as published (with their status ids) and the posts to queue.

    ``takeover``: a standby became leader (the admin messages say so), not a lost state file.
    """
    words = settings.wording
    attached = words.admin_takeover_attached if takeover else words.admin_adopted_attached
    resolved = words.admin_takeover_resolved if takeover else words.admin_adopted_resolved
    published: list[tuple[Post, str]] = []
    queued: list[Post] = []
    if chosen.attach is not None and chosen.notice_key is not None:
        status = chosen.attach
        published.append((_as_post(status, chosen.notice_key, settings), status.id))
        incident = chosen.notice_key.rsplit(":", 1)[0]
        admin = compose.admin_message(f"adopt:{status.id}:admin",
                       fill(attached, instance=settings.instance,
                            status=status.id, id=incident), now, settings)
        queued += [admin] if admin is not None else []
    for status in chosen.close:
        notice = f"adopt:{status.id}"
        published.append((_as_post(status, notice, settings), status.id))
        measure = compose.mastodon_length
        cw = compose.truncate(words.cw_resolution, 100, measure)
        text = compose.truncate(fill(words.adopted_resolution, instance=settings.instance),
                                settings.max_characters - measure(cw), measure)
        queued.append(Post(key=f"{notice}:resolved", kind=PostKind.RESOLUTION, text=text,
                           visibility=settings.member_visibility, created_at=now,
                           spoiler_text=cw, language=settings.language, parent_key=notice,
                           unpin_key=notice))
        admin = compose.admin_message(f"{notice}:admin", fill(resolved,
                                               instance=settings.instance, status=status.id),
                       now, settings)
        queued += [admin] if admin is not None else []
    return published, queued


def state_lost_notice(problem: str, now: float, settings: compose.Settings) -> Post | None:
    """Return the admin message about a state file lost while running (None: no admins)."""
    digest = hashlib.sha256(problem.encode()).hexdigest()[:12]
    return compose.admin_message(f"state-lost:{int(now)}:{digest}",
                  fill(settings.wording.admin_state_lost, instance=settings.instance,
                       problem=problem), now, settings)


class Adopter:
    """Runs the adoption on a fresh state file, one step per tick, until it is done.

    The edge of this module: it asks the gateway (once, the answer is kept
    while waiting) and writes to the store.
    """

    def __init__(self, store: Store, gateway: Gateway, settings: compose.Settings,
                 takeover: bool = False) -> None:
        self.takeover = takeover
        """A standby took over (the admin messages say so rather than "empty state file")."""
        self.store = store
        self.gateway = gateway
        self.settings = settings
        self.done = store.get_state(ADOPT_STATE) is None
        self._pinned: list[PinnedStatus] | None = None
        self._started: float | None = None
        self._retry_at = 0.0

    def step(self, open_incident: Incident | None, quiet: bool, now: float) -> bool:
        """Do what this tick allows; return False when delivery must wait (see the module)."""
        if self.done:
            return True
        if self._started is None:
            self._started = now
        if self._pinned is None:
            if now < self._retry_at:
                return self._unsent_notice(open_incident) is None
            try:
                self._pinned = self.gateway.pinned_statuses()
            except RetryableError as exc:
                self._retry_at = now + ADOPT_RETRY
                log.warning("pinned notices not read yet (tried again in %.0f s): %s",
                            ADOPT_RETRY, exc)
                return self._unsent_notice(open_incident) is None
            except PermanentError as exc:
                log.error("cannot read the account's pinned notices, none picked up "
                          "(a second notice may appear): %s", exc)
                self.store.record_published([], [], now, {ADOPT_STATE: None})
                self.done = True
                return True
        notices = [s for s in self._pinned if is_notice(s, self.settings)]
        known = self.store.known_status_ids(s.id for s in notices)
        orphans = [s for s in notices if s.id not in known]
        chosen = plan(orphans, self._unsent_notice(open_incident), open_incident is not None,
                      quiet, now - self._started)
        if chosen.wait:
            log.info("adopting pinned notices: %s", chosen.reason)
            return True
        published, queued = posts_for(chosen, now, self.settings, self.takeover)
        recorded = self.store.record_published(published, queued, now, {ADOPT_STATE: None})
        self.done = True
        for post, status_id in published:
            log.warning("pinned notice %s picked up as %s (%s)%s", status_id, post.key,
                        chosen.reason, "" if post.key in recorded else ": NOT recorded")
        if not published:
            log.info("adoption done: %s", chosen.reason)
        return True

    def _unsent_notice(self, open_incident: Incident | None) -> str | None:
        """Return the key of the newest incident notice never tried, or None.

        Queued since the start (delivery waited for this decision), or held
        for an admin's confirmation (not queued yet: the open incident's key).
        """
        unsent = [item.key for item in self.store.pending()
                  if item.post.kind is PostKind.NOTICE and item.post.pin
                  and item.first_attempt_at is None]
        if unsent:
            return unsent[-1]
        if open_incident is not None and self.store.get(f"{open_incident.id}:0") is None:
            return f"{open_incident.id}:0"
        return None
