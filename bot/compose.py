"""Turn incident events and readings into posts: member language for members, numbers for admins.

Pure: every input, ``now`` included, is an argument; the only thing consulted
is the time zone database (through ``zoneinfo``) to print local times. Every
word comes from ``bot.wording`` (``Settings.wording``).

Threads and keys. An incident is one thread. The opening notice has the key
``f"{incident.id}:0"`` and is pinned. Every later member post (updates,
reminders, the resolution) has the key ``f"{incident.id}:{sequence}"`` and
replies to the notice itself, not to the previous update: the thread stays
flat, the pinned notice shows every reply in order, and an update that could
not be sent never strands the ones after it. The resolution unpins the notice
(``unpin_key``). Admins get a direct message per event, keyed
``f"{incident.id}:{sequence}:admin"``, outside the thread (each one stands
alone); none when ``Settings.admin_accts`` is empty.

Content warnings. Incident posts carry a short CW ("Service notice: some
delays", "Service update", "Service notice: resolved") so that people can fold
the thread away, and the body starts with a sentence that makes sense on its
own. The all-is-well status post, admin messages and the profile field carry none.

Length. Every post fits ``Settings.max_characters`` counted the way Mastodon
counts: the CW and the text together, any URL as ``Settings.characters_per_url``
(23), a mention as its ``@user`` part only. Characters are counted as code points minus those that
never start a grapheme (variation selectors, joiners, combining marks, skin
tones), so the count is never below Mastodon's. Optional closing lines go
first; then the text is cut at a word boundary and ends with "…". Mentions of
admin messages are never cut. Profile field values stay within 255 characters.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone, tzinfo
from zoneinfo import ZoneInfo

from bot import defaults
from bot.health import host_of
from bot.incidents import cleared_in, component_order, describe_duration
from bot.model import (
    Affected,
    Event,
    EventKind,
    HostReading,
    Incident,
    Post,
    PostKind,
    QueueStats,
    Severity,
    Snapshot,
)
from bot.wording import DEFAULT_WORDING, TEXT_LIMIT, Wording, fill, neutral

ELLIPSIS = "…"
"""Ends every text that had to be shortened."""

URL_PATTERN = re.compile(r"https?://[^\s]*[^\s.,;:!?)\]'\"…]", re.IGNORECASE)
"""A URL as Mastodon sees one (with its scheme; trailing punctuation is not part of it)."""

MENTION_PATTERN = re.compile(
    r"(?<![=/\w])@([a-z0-9_]+(?:[a-z0-9_.-]+[a-z0-9_]+)?)(?:@[\w.-]+\w)?", re.IGNORECASE)
"""A mention, ``@user`` or ``@user@domain``; Mastodon counts only ``@user``."""

MEMBER_KINDS = frozenset({PostKind.NOTICE, PostKind.UPDATE, PostKind.RESOLUTION,
                          PostKind.CATCHUP})
"""Member posts about incidents: the kinds ``catchup`` folds (never admin messages)."""

ADMIN_LIST_MAX = 10
"""Most components, queues or processes an admin message lists one by one (worst first)."""

ADMIN_HELP_MAX = 360
"""Most characters of the "What would help" paragraph in an admin message (cut with "…")."""


@dataclass(frozen=True, slots=True)
class Settings:
    """What the composer needs to know about the instance and its people.

    ``admin_accts`` are accounts as Mastodon writes them (``alice`` for a local
    account, ``bob@other.example`` for a remote one); admin messages mention
    them and are direct. ``timezone`` is a zoneinfo name (an unknown one falls
    back to UTC). ``wording`` holds every text (see ``bot.wording``).
    ``max_characters`` and ``characters_per_url`` come from the instance
    (``configuration.statuses``) at start-up.
    """

    instance: str = defaults.INSTANCE_NAME
    max_characters: int = defaults.INSTANCE_MAX_CHARACTERS
    language: str = defaults.LANGUAGE
    member_visibility: str = defaults.MEMBER_VISIBILITY
    admin_accts: tuple[str, ...] = ()
    timezone: str = defaults.TIMEZONE
    status_visibility: str = defaults.STATUS_VISIBILITY
    wording: Wording = DEFAULT_WORDING
    characters_per_url: int = defaults.INSTANCE_CHARACTERS_PER_URL


def compose_event(event: Event, snapshot: Snapshot | None, settings: Settings,
                  advice: str | None = None) -> tuple[Post, ...]:
    """Return the posts for one incident event: the member post, then the admin message.

    ``snapshot`` is the reading of the tick that raised the event (None when it
    is not at hand); its numbers go into the admin message only. ``advice``
    (``advice.summary``) becomes the admin message's "What would help"
    paragraph, at most ``ADMIN_HELP_MAX`` characters, when the event opens an
    incident with a queue in it; it never reaches a member post.
    """
    member = _member_post(event, settings, several_hosts(snapshot))
    admin = _admin_post(event, snapshot, settings, advice)
    return (member,) if admin is None else (member, admin)


def compose_status(snapshot: Snapshot, now: float, settings: Settings) -> Post:
    """Return the periodic all-is-well post: one line, and one line of a few numbers.

    Post it only while no incident is open. Its key names the local day
    (``status:2024-05-01``): at most one status post per day, so a restart
    never posts it twice (and a ``status_every`` below a day still gives one a day).
    """
    words = settings.wording
    numbers: list[str] = []
    sidekiq = snapshot.sidekiq
    if sidekiq is not None:
        numbers.append(fill(words.status_processed,
                            count=_count(sidekiq.processed_today, words)))
        waits = [q.latency_s for q in sidekiq.queues if q.latency_s is not None]
        numbers.append(fill(words.status_wait, duration=_duration(max(waits, default=0.0),
                                                                  words)))
    if snapshot.host is not None:
        numbers.append(fill(words.status_memory,
                            percent=str(round(snapshot.host.memory_percent))))
    text = _fit([fill(words.status, instance=settings.instance),
                 words.status_separator.join(numbers)], settings.max_characters,
                _measure(settings))
    day = datetime.fromtimestamp(now, _zone(settings.timezone)).date().isoformat()
    return Post(key=f"status:{day}", kind=PostKind.STATUS, text=text,
                visibility=settings.status_visibility, created_at=now,
                language=settings.language)


def profile_field(open_incident: Incident | None, now: float,
                  settings: Settings) -> tuple[str, str]:
    """Return the profile field (name, value) that tells visitors the state at a glance.

    ``("Status", "✅ All normal · 14:05 UTC")`` with the time it was checked, or
    ``("Status", "⚠️ Posts to other servers delayed · since 14:05 UTC")``.
    Both stay within Mastodon's 255 characters per field.
    """
    words = settings.wording
    if open_incident is None:
        value = fill(words.profile_ok, time=_when(now, now, settings))
    else:
        shorts = _unique(words.impact(a.component).short
                         for a in _by_importance(open_incident.affected))
        summary = shorts[0] if shorts else words.impact("*").short
        if len(shorts) > 1:
            summary = fill(words.profile_more, summary=summary, count=str(len(shorts) - 1))
        value = fill(words.profile_trouble, summary=summary,
                     time=_when(open_incident.opened_at, now, settings))
    limit = defaults.PROFILE_FIELD_MAX
    return truncate(words.profile_name, limit, len), truncate(value, limit, len)


def member_status(open_incident: Incident | None, snapshot: Snapshot | None, now: float,
                  settings: Settings) -> str:
    """Return the answer to a member's ``status``: all normal, or what is affected since when."""
    words = settings.wording
    if open_incident is None:
        if snapshot is None:
            return fill(words.status, instance=settings.instance)
        return compose_status(snapshot, now, settings).text
    critical = open_incident.severity >= Severity.CRITICAL
    lead = words.notice_lead_critical if critical else words.notice_lead_warning
    lines = [fill(lead, time=_when(open_incident.opened_at, now, settings),
                  instance=settings.instance),
             *_impact_lines(open_incident.affected, words, several_hosts(snapshot))]
    return _fit(lines, settings.max_characters, _measure(settings))


ADMIN_DETAILS = ("status", "queues", "memory", "processes")
"""What an admin can ask for: the whole picture, or one part of it."""


def admin_details(what: str, snapshot: Snapshot | None, open_incident: Incident | None,
                  now: float, settings: Settings) -> str:
    """Return the numbers an admin asked for (``status``, ``queues``, ``memory``, ``processes``).

    Lists stop after ``ADMIN_LIST_MAX`` entries (the worst first) and say how many
    more there are; every name from Redis or the host goes through ``neutral``.
    """
    words = settings.wording
    if snapshot is None:
        return "No reading yet: the first tick has not run."
    if open_incident is None:
        head = "All normal: no incident open."
    else:
        names = [neutral(a.component) for a in _by_importance(open_incident.affected)]
        more = len(names) - ADMIN_LIST_MAX
        head = (f"Incident {open_incident.id} open since "
                f"{_when(open_incident.opened_at, now, settings)}, "
                f"{open_incident.severity.name.lower()}"
                + (" (acknowledged)" if open_incident.acknowledged else "") + ": "
                + ", ".join(names[:ADMIN_LIST_MAX])
                + (f" (+{_count(more, words)} more)" if more > 0 else ""))
    empty = Incident(id="", opened_at=now, affected=())
    lines = _admin_snapshot(snapshot, open_incident or empty, words)
    if what == "queues" and snapshot.sidekiq is not None:
        queues = sorted(snapshot.sidekiq.queues,
                        key=lambda q: (-(q.latency_s or 0.0), -q.size, q.name))
        lines = [fill(words.admin_queues, queues=_queue_list(queues, words) or "none")]
    elif what == "memory":
        lines = [line for line in lines if line.startswith(words.admin_memory.split("{")[0])]
        if snapshot.host is not None:
            lines.append("By role: " + ", ".join(
                f"{neutral(m.role)} {_bytes(m.rss_bytes)}"
                for m in snapshot.host.roles[:4 * ADMIN_LIST_MAX] if m.processes))
        if snapshot.hosts:
            lines.append(_hosts_line(snapshot.hosts, words))
    elif what == "processes" and snapshot.sidekiq is not None:
        processes = snapshot.sidekiq.processes
        lines = [f"{neutral(p.identity)}: {'live' if p.alive else 'STALE'}"
                 + (f" {p.busy}/{p.concurrency} busy" if p.alive
                    else f" ({neutral(p.stale_reason, TEXT_LIMIT)})")
                 + (f", {_bytes(p.rss_kb * 1024)}" if p.rss_kb else "")
                 for p in processes[:ADMIN_LIST_MAX]] or ["No Sidekiq process registered."]
        if len(processes) > ADMIN_LIST_MAX:
            lines.append(fill(words.admin_processes_more,
                              count=_count(len(processes) - ADMIN_LIST_MAX, words)))
    return _fit([head, *lines], settings.max_characters, _measure(settings))


def _queue_list(queues: Sequence[QueueStats], words: Wording) -> str:
    """Return the first ``ADMIN_LIST_MAX`` queues with their numbers and how many more."""
    shown = ", ".join(
        f"{neutral(q.name)} {_count(q.size, words)}"
        + ("" if q.latency_s is None else f" ({describe_duration(q.latency_s)})")
        + (" paused" if q.paused else "") + ("" if q.served else " unserved")
        for q in queues[:ADMIN_LIST_MAX])
    more = len(queues) - ADMIN_LIST_MAX
    if more > 0:
        shown += ", " + fill(words.admin_queues_more, count=_count(more, words))
    return shown


def local_time(moment: float, now: float, settings: Settings) -> str:
    """Return ``moment`` as members read times ("14:05 UTC", "yesterday 23:10 CET")."""
    return _when(moment, now, settings)


def member_duration(seconds: float, settings: Settings) -> str:
    """Return a duration as members read it ("45 min", "1 h 20 min", "2 d 3 h")."""
    return _duration(seconds, settings.wording)


MAINTENANCE_PHASES = ("announce", "start", "end")


def maintenance_post(window_id: str, phase: str, start: float, end: float, text: str,
                     now: float, settings: Settings) -> Post:
    """Return a maintenance post: the announcement, or its start or end reply.

    Keys are ``maint:<id>:<phase>``, so each is published once whoever asks.
    """
    words = settings.wording
    templates = {"announce": words.maintenance_announce, "start": words.maintenance_start,
                 "end": words.maintenance_end}
    body = fill(templates[phase], start=_when(start, now, settings), end=_when(end, now, settings),
                text=text, instance=settings.instance)
    measure = _measure(settings)
    cw = truncate(words.cw_maintenance, _cw_limit(settings), measure)
    announce = f"maint:{window_id}:announce"
    return Post(key=f"maint:{window_id}:{phase}", kind=PostKind.UPDATE if phase != "announce"
                else PostKind.NOTICE,
                text=_fit(body.splitlines(), settings.max_characters - measure(cw), measure),
                visibility=settings.member_visibility, created_at=now, spoiler_text=cw,
                language=settings.language,
                parent_key=None if phase == "announce" else announce)


def reply(key: str, acct: str, text: str, *, status_id: str, visibility: str, now: float,
          settings: Settings) -> Post:
    """Return a reply to a mention: it mentions the sender and fits the instance's limit.

    ``status_id`` is the mentioning status (the reply threads under it);
    ``key`` makes the reply idempotent (one per notification).
    """
    mention = f"@{acct.lstrip('@')} "
    measure = _measure(settings)
    body = _fit(text.splitlines() or [""], settings.max_characters - measure(mention), measure)
    return Post(key=key, kind=PostKind.REPLY, text=mention + body, visibility=visibility,
                created_at=now, language=settings.language, parent_key=f"status:{status_id}")


REPLY_THREAD_MAX = 4
"""Most posts a long answer to a mention is split into (``reply_thread``)."""


def reply_thread(key: str, acct: str, text: str, *, status_id: str, visibility: str,
                 now: float, settings: Settings,
                 max_posts: int = REPLY_THREAD_MAX) -> tuple[Post, ...]:
    """Return a long answer to a mention as a thread of replies, each within the limit.

    The text is split at line ends into at most ``max_posts`` posts; each
    mentions the sender (a direct message reaches only who it mentions) and,
    when there are several, ends with its place ("1/3"). The first replies to
    the mention (key ``key``), each next one to the one before it
    (``key:2``, ``key:3``, …). A line too long for a post is cut with "…";
    what does not fit in ``max_posts`` posts is cut from the last one.
    One post is exactly what ``reply`` gives.
    """
    mention = f"@{acct.lstrip('@')} "
    measure = _measure(settings)
    lines = [line for line in text.splitlines() if line] or [""]
    marker = " 9/9"
    room = settings.max_characters - measure(mention) - measure(marker)
    if measure("\n".join(lines)) <= settings.max_characters - measure(mention):
        return (reply(key, acct, text, status_id=status_id, visibility=visibility, now=now,
                      settings=settings),)
    parts: list[list[str]] = [[]]
    for line in lines:
        line = truncate(line, room, measure)
        if parts[-1] and measure("\n".join([*parts[-1], line])) > room:
            parts.append([])
        parts[-1].append(line)
    if len(parts) == 1:  # one line too long for a post: cut as ``reply`` cuts it
        return (reply(key, acct, text, status_id=status_id, visibility=visibility, now=now,
                      settings=settings),)
    if len(parts) > max_posts:
        kept, rest = parts[:max_posts - 1], parts[max_posts - 1:]
        parts = [*kept, [truncate("\n".join(line for part in rest for line in part), room,
                                  measure)]]
    posts: list[Post] = []
    for index, part in enumerate(parts, start=1):
        part_key = key if index == 1 else f"{key}:{index}"
        parent = f"status:{status_id}" if index == 1 else posts[-1].key
        body = "\n".join(part) + f" {index}/{len(parts)}"
        posts.append(Post(key=part_key, kind=PostKind.REPLY, text=mention + body,
                          visibility=visibility, created_at=now, language=settings.language,
                          parent_key=parent))
    return tuple(posts)


def catchup(posts: Sequence[Post], start: float, end: float, settings: Settings) -> Post:
    """Fold member notices that went stale while the instance was unreachable into one post.

    ``posts`` are the queued posts that were not sent between ``start`` and
    ``end``; only member incident posts (``MEMBER_KINDS``) are folded, oldest
    first, as "14:05: <text>"; admin messages and status posts are
    left out. Each appears as its first line, the newest in full (up to half
    the room); an earlier catch-up that was never sent gives its entries.
    When not all fit, the newest are kept. The key is
    ``f"catchup:{int(start)}-{int(end)}"``; it is a new top-level post, so
    queued replies whose parent was folded have no parent to wait for.
    """
    words = settings.wording
    folded = sorted((p for p in posts if p.kind in MEMBER_KINDS), key=lambda p: p.created_at)
    lead = fill(words.catchup_lead, start=_when(start, end, settings),
                end=_when(end, end, settings))
    entries: list[str] = []
    for index, post in enumerate(folded):
        said = [line.strip() for line in post.text.splitlines() if line.strip()]
        if post.kind is PostKind.CATCHUP:  # an unsent catch-up: its entries, not its lead
            entries += said[1:]
            continue
        newest = index == len(folded) - 1
        entries.append(fill(words.catchup_entry,
                            time=_when(post.created_at, end, settings, zone=False),
                            text=" ".join(said if newest else said[:1])))
    measure = _measure(settings)
    cw = truncate(words.cw_catchup, _cw_limit(settings), measure)
    budget = settings.max_characters - measure(cw)
    if len(entries) > 1:  # the newest in full, but leaving room for the story before it
        entries[-1] = truncate(entries[-1], budget // 2, measure)

    def lines(kept: int) -> list[str]:
        left_out = len(entries) - kept
        return [lead, fill(words.catchup_omitted, count=str(left_out)) if left_out else "",
                *entries[left_out:]]

    if entries:
        fitting = (kept for kept in range(len(entries), 0, -1)
                   if measure("\n".join(filter(None, lines(kept)))) <= budget)
        text = _fit(lines(next(fitting, 1)), budget, measure)
    else:
        text = _fit([lead, words.catchup_nothing], budget, measure)
    return Post(key=f"catchup:{int(start)}-{int(end)}", kind=PostKind.CATCHUP, text=text,
                visibility=settings.member_visibility, created_at=end, spoiler_text=cw,
                language=settings.language)


def mastodon_length(text: str, url_length: int = defaults.INSTANCE_CHARACTERS_PER_URL) -> int:
    """Return how many characters Mastodon counts for ``text`` (never fewer than it does).

    ``url_length`` is what any URL counts for (the instance's
    ``configuration.statuses.characters_reserved_per_url``).
    """
    text = URL_PATTERN.sub("x" * url_length, text)
    text = MENTION_PATTERN.sub(lambda match: "@" + match.group(1), text)
    return sum(1 for char in text if not _extends(char))


def _extends(char: str) -> bool:
    """Whether ``char`` continues a grapheme rather than starting one."""
    code = ord(char)
    return (0xFE00 <= code <= 0xFE0F or code == 0x200D or 0x1F3FB <= code <= 0x1F3FF
            or 0xE0020 <= code <= 0xE007F or unicodedata.combining(char) != 0)


# --- member posts -------------------------------------------------------------------------


def several_hosts(snapshot: Snapshot | None) -> bool:
    """Whether members should read "one of our servers": the instance has other hosts."""
    return snapshot is not None and bool(snapshot.hosts)


def _member_post(event: Event, settings: Settings, several: bool = False) -> Post:
    words = settings.wording
    incident = event.incident
    notice_key = f"{incident.id}:0"
    kind = event.kind
    optional: list[str] = []
    if kind is EventKind.OPENED and event.note:
        post_kind = PostKind.NOTICE
        cw = words.cw_notice_warning
        lines = [event.note]
        optional = [words.notice_footer]
    elif kind is EventKind.OPENED:
        post_kind = PostKind.NOTICE
        critical = incident.severity >= Severity.CRITICAL
        cw = words.cw_notice_critical if critical else words.cw_notice_warning
        lead = words.notice_lead_critical if critical else words.notice_lead_warning
        lines = [fill(lead, time=_when(incident.opened_at, event.at, settings),
                      instance=settings.instance),
                 *_impact_lines(incident.affected, words, several)]
        optional = [words.notice_footer]
    elif kind is EventKind.RESOLVED:
        post_kind = PostKind.RESOLUTION
        cw = words.cw_resolution_muted if _only_muted(event) else words.cw_resolution
        lines, optional = _resolution_lines(event, settings, several)
        if event.note:
            lines = [lines[0], event.note, *lines[1:]]
    elif kind is EventKind.NOTE:
        post_kind = PostKind.UPDATE
        cw = words.cw_update
        lines = [event.note]
    else:
        post_kind = PostKind.UPDATE
        cw = words.cw_reminder if kind is EventKind.REMINDER else words.cw_update
        lines = _update_lines(event, settings, several)
    measure = _measure(settings)
    cw = truncate(cw, _cw_limit(settings), measure)
    text = _fit(lines, settings.max_characters - measure(cw), measure, optional)
    opening = post_kind is PostKind.NOTICE
    return Post(
        key=notice_key if opening else f"{incident.id}:{incident.sequence}",
        kind=post_kind, text=text, visibility=settings.member_visibility, created_at=event.at,
        spoiler_text=cw, language=settings.language,
        parent_key=None if opening else notice_key, pin=opening,
        unpin_key=notice_key if post_kind is PostKind.RESOLUTION else None,
    )


def _update_lines(event: Event, settings: Settings, several: bool) -> list[str]:
    words = settings.wording
    incident = event.incident
    headlines = {
        EventKind.WORSENED: words.update_worsened,
        EventKind.IMPROVED: words.update_improved,
        EventKind.COMPONENT_ADDED: words.update_added,
        EventKind.COMPONENT_CLEARED: words.update_cleared,
    }
    if event.kind is EventKind.REMINDER:
        headline = fill(words.reminder, time=_when(incident.opened_at, event.at, settings))
    else:
        headline = headlines.get(event.kind, words.update_worsened)
    lines = [headline]
    still = {words.impact(a.component, several).noun for a in incident.affected}
    recovered = [noun for noun in _unique(words.impact(c, several).noun
                                          for c in cleared_in(event))
                 if noun not in still]  # swap fine, memory still low: not "back to normal"
    if recovered:
        lines.append(fill(words.back_to_normal, nouns=words.noun_separator.join(recovered)))
    return lines + _impact_lines(incident.affected, words, several)


def _only_muted(event: Event) -> bool:
    """Whether the event ends the incident only because what was left is muted now."""
    return bool(event.changes) and not cleared_in(event)


def _resolution_lines(event: Event, settings: Settings,
                      several: bool) -> tuple[list[str], list[str]]:
    words = settings.wording
    incident = event.incident
    resolved_at = event.at if incident.resolved_at is None else incident.resolved_at
    first = words.resolution_muted if _only_muted(event) else words.resolution
    lines = [fill(first, duration=_duration(resolved_at - incident.opened_at, words),
                  instance=settings.instance)]
    names = {*incident.cleared, *(a.component for a in incident.affected)}
    nouns = _unique(words.impact(c, several).noun for c in sorted(names, key=component_order))
    if nouns:
        lines.append(fill(words.resolution_affected, nouns=words.noun_separator.join(nouns)))
    delays = [a.peak_value for a in incident.affected
              if a.component.startswith("queue:") and a.peak_value is not None]
    if delays and max(delays) >= 60:
        lines.append(fill(words.resolution_worst_delay, duration=_about(max(delays), words)))
    return lines, [words.resolution_footer]


def _impact_lines(affected: Iterable[Affected], words: Wording,
                  several: bool = False) -> list[str]:
    """Return one sentence per distinct impact, worst first, with an estimate where known."""
    lines: list[str] = []
    seen: set[str] = set()
    for item in _by_importance(affected):
        sentence = words.impact(item.component, several).sentence
        if sentence in seen:
            continue
        seen.add(sentence)
        if item.eta_s is not None and item.eta_s > 0:
            sentence = fill(words.with_eta, sentence=sentence,
                            duration=_about(item.eta_s, words))
        lines.append(sentence)
    return lines


def _by_importance(affected: Iterable[Affected]) -> list[Affected]:
    return sorted(affected, key=lambda a: (-a.severity, component_order(a.component)))


# --- admin messages -----------------------------------------------------------------------


def admin_message(key: str, text: str, now: float, settings: Settings) -> Post | None:
    """Return ``text`` as a direct message to the admins, within limits (None: no admins)."""
    if not settings.admin_accts:
        return None
    mentions = _mentions(settings)
    measure = _measure(settings)
    return Post(key=key, kind=PostKind.ADMIN,
                text=mentions + _fit([text], settings.max_characters - measure(mentions), measure),
                visibility="direct", created_at=now, language=settings.language)


def no_sidekiq_notice(redis: str, since: float, now: float, settings: Settings) -> Post | None:
    """Return the admin message about a Redis with no trace of Sidekiq, keyed by ``since``."""
    text = fill(settings.wording.admin_no_sidekiq, instance=settings.instance,
                redis=neutral(redis, TEXT_LIMIT))
    return admin_message(f"no-sidekiq:{int(since)}", text, now, settings)


def failure_notice(post: Post, error: str, now: float, settings: Settings) -> Post | None:
    """Return the admin message about a post the instance refused for good (None: no admins).

    Its key derives from the refused post's, so it is queued once however often
    the outbox reports the failure.
    """
    if not settings.admin_accts or post.kind is PostKind.ADMIN:
        return None  # an admin message about a refused admin message could loop
    text = fill(settings.wording.admin_delivery_failed, instance=settings.instance,
                error=neutral(error, TEXT_LIMIT), key=post.key,
                text=neutral(post.text, settings.max_characters))
    return admin_message(f"{post.key}:refused", text, now, settings)


def _mentions(settings: Settings) -> str:
    return " ".join("@" + acct.lstrip("@") for acct in settings.admin_accts) + " "


def wants_advice(event: Event) -> bool:
    """Whether the admin message of ``event`` has room for "What would help" (a queue opens)."""
    return event.kind is EventKind.OPENED and any(
        a.component.startswith("queue:") for a in event.incident.affected)


def _admin_post(event: Event, snapshot: Snapshot | None, settings: Settings,
                advice: str | None = None) -> Post | None:
    if not settings.admin_accts:
        return None
    words = settings.wording
    incident = event.incident
    mentions = _mentions(settings)
    if event.kind is EventKind.RESOLVED:
        resolved_at = event.at if incident.resolved_at is None else incident.resolved_at
        header = fill(words.admin_resolved, instance=settings.instance, id=incident.id,
                      duration=describe_duration(resolved_at - incident.opened_at),
                      peak=incident.peak.name.lower())
    else:
        header = fill(words.admin_header, instance=settings.instance, id=incident.id,
                      kind=event.kind.value.replace("_", " "),
                      severity=incident.severity.name.lower(), peak=incident.peak.name.lower())
    lines = [header]
    if event.kind is not EventKind.OPENED:  # an opening's reason repeats the lines below
        lines.append(fill(words.admin_reason, reason=neutral(event.reason, TEXT_LIMIT)))
    if event.kind is EventKind.REMINDER:
        lines.append(words.admin_reminder)
    affected = _by_importance(incident.affected)
    if len(affected) > ADMIN_LIST_MAX:
        lines.append(fill(words.admin_components_more, total=_count(len(affected), words),
                          count=_count(len(affected) - ADMIN_LIST_MAX, words)))
    lines += [_admin_component(a, event.at, settings) for a in affected[:ADMIN_LIST_MAX]]
    measure = _measure(settings)
    if advice and wants_advice(event):
        lines.append(truncate(fill(words.admin_what_would_help, advice=advice),
                              min(ADMIN_HELP_MAX, settings.max_characters // 2), measure))
    if snapshot is not None:
        lines += _admin_snapshot(snapshot, incident, words)
    text = mentions + _fit(lines, settings.max_characters - measure(mentions), measure)
    return Post(key=f"{incident.id}:{incident.sequence}:admin", kind=PostKind.ADMIN,
                text=text, visibility="direct", created_at=event.at,
                language=settings.language)


def _admin_component(item: Affected, at: float, settings: Settings) -> str:
    words = settings.wording
    details = []
    if item.peak_value is not None and item.peak_value != item.value:
        details.append(f"peak value {_number(item.peak_value, words)}")
    if item.peak != item.severity and item.severity is not Severity.OK:
        details.append(f"peak {item.peak.name.lower()}")
    if item.eta_s is not None:
        details.append(f"catches up in ~{describe_duration(item.eta_s)}")
    template = (words.admin_component_cleared if item.severity is Severity.OK
                else words.admin_component)
    return fill(template, component=neutral(item.component),
                severity=item.severity.name.lower(),
                peak=item.peak.name.lower(), time=_when(item.since, at, settings, zone=False),
                reason=neutral(item.reason, TEXT_LIMIT),
                details=f" ({'; '.join(details)})" if details else "")


def _admin_snapshot(snapshot: Snapshot, incident: Incident, words: Wording) -> list[str]:
    """Redis, memory, processes, then queues: the long queue line is the first to be cut."""
    redis = snapshot.redis
    if redis.reachable:
        rtt = "" if redis.rtt_ms is None else f", {redis.rtt_ms:.1f} ms"
        lines = [fill(words.admin_redis_up, rtt=rtt)]
    else:
        lines = [fill(words.admin_redis_down,
                      error=neutral(redis.error or "no reason given", TEXT_LIMIT))]
    host = snapshot.host
    if host is not None:
        total = host.memory_total_bytes
        available = 100.0 * host.memory_available_bytes / total if total else 0.0
        swap = ("none" if not host.swap_total_bytes else
                f"{_bytes(host.swap_used_bytes)} of {_bytes(host.swap_total_bytes)} used "
                f"({round(host.swap_percent)}%)")
        lines.append(fill(words.admin_memory, available=str(round(available)),
                          free=_bytes(host.memory_available_bytes), total=_bytes(total),
                          swap=swap))
    elif snapshot.host_error:
        lines.append(fill(words.admin_host_error, error=neutral(snapshot.host_error, TEXT_LIMIT)))
    if snapshot.hosts:
        lines.append(_hosts_line(snapshot.hosts, words))
    sidekiq = snapshot.sidekiq
    if sidekiq is not None:
        lines.append(fill(words.admin_processes, live=str(sidekiq.live_processes),
                          stale=str(sidekiq.stale_processes), busy=str(sidekiq.busy),
                          concurrency=str(sidekiq.concurrency),
                          enqueued=_count(sidekiq.enqueued, words),
                          retries=_count(sidekiq.retries, words),
                          dead=_count(sidekiq.dead, words)))
        involved = {a.component.partition(":")[2] for a in incident.affected}
        shown = sorted((q for q in sidekiq.queues
                        if q.size or q.latency_s or q.paused or not q.served
                        or q.name in involved),
                       key=lambda q: (-(q.latency_s or 0.0), -q.size, q.name))
        lines.append(fill(words.admin_queues, queues=_queue_list(shown, words) or "all empty"))
    return lines


def _hosts_line(hosts: Sequence[HostReading], words: Wording) -> str:
    """Every other host's memory (those not reporting and the shortest first), names neutral."""
    def order(host: HostReading) -> tuple[float, str]:
        stats = host.stats
        if stats is None:
            return -1.0, host.name
        total = stats.memory_total_bytes
        return (100.0 * stats.memory_available_bytes / total if total else 0.0), host.name

    entries = []
    ordered = sorted(hosts, key=order)
    for host in ordered[:ADMIN_LIST_MAX]:
        name = neutral(host.name)
        stats = host.stats
        if stats is None:
            entries.append(fill(words.admin_hosts_silent, host=name))
            continue
        total = stats.memory_total_bytes
        available = 100.0 * stats.memory_available_bytes / total if total else 0.0
        entries.append(fill(words.admin_hosts_entry, host=name, available=str(round(available)),
                            free=_bytes(stats.memory_available_bytes), total=_bytes(total)))
    if len(ordered) > ADMIN_LIST_MAX:
        entries.append(fill(words.admin_hosts_more,
                            count=_count(len(ordered) - ADMIN_LIST_MAX, words)))
    return fill(words.admin_hosts, hosts=", ".join(entries))


# --- what only the admins hear of ---------------------------------------------------------

ADMIN_ONLY_PREFIX = "admins-only"
"""Key prefix of the admin messages about hosts members do not hear about."""


def admin_only_event(event: Event, snapshot: Snapshot | None, settings: Settings) -> Post | None:
    """Return the admin message of an event about hosts members do not hear about (None: no admins).

    The loop steps an incident of its own (``incidents.step``, no reminders)
    over the findings ``health`` muted with ``ADMIN_ONLY_MUTE`` (a host whose
    ``member_visible`` is false), so that admins are told once when such a
    host gets into trouble or stops reporting, on each change, and once when
    it is over; members are never told. Keyed
    ``f"admins-only:{incident.id}:{incident.sequence}"``. Host names and
    errors pass through ``neutral``.
    """
    if not settings.admin_accts:
        return None
    words = settings.wording
    incident = event.incident
    errors = {h.name: h.error for h in snapshot.hosts if h.stats is None} if snapshot else {}
    fine = set(cleared_in(event))
    if event.kind is EventKind.RESOLVED and _only_muted(event):
        lines = [fill(words.admin_only_closed, instance=settings.instance)]
    elif event.kind is EventKind.RESOLVED:
        resolved_at = event.at if incident.resolved_at is None else incident.resolved_at
        lines = [fill(words.admin_only_resolved, instance=settings.instance,
                      duration=describe_duration(resolved_at - incident.opened_at))]
    elif event.kind is EventKind.OPENED:
        lines = [fill(words.admin_only_opened, instance=settings.instance)]
    else:
        lines = [fill(words.admin_only_changed, instance=settings.instance)]
    affected = _by_importance(incident.affected)
    for item in affected[:ADMIN_LIST_MAX]:
        host = host_of(item.component)
        if item.component.startswith("host@") and host is not None:
            if item.severity is Severity.OK and item.component in fine:
                lines.append(fill(words.admin_host_back, host=neutral(host)))
            elif item.severity is Severity.OK:
                lines.append(_admin_component(item, event.at, settings))
            else:
                error = errors.get(host) or item.reason
                lines.append(fill(words.admin_host_down, host=neutral(host),
                                  error=neutral(error, TEXT_LIMIT)))
        else:
            lines.append(_admin_component(item, event.at, settings))
    if len(affected) > ADMIN_LIST_MAX:
        lines.append(fill(words.admin_components_more, total=_count(len(affected), words),
                          count=_count(len(affected) - ADMIN_LIST_MAX, words)))
    if event.kind is not EventKind.RESOLVED:
        for component in cleared_in(event):
            host = host_of(component)
            if component.startswith("host@") and host is not None:
                lines.append(fill(words.admin_host_back, host=neutral(host)))
            else:
                lines.append(fill(words.admin_component_fine, component=neutral(component)))
    return admin_message(f"{ADMIN_ONLY_PREFIX}:{incident.id}:{incident.sequence}",
                         "\n".join(lines), event.at, settings)


# --- times, durations, numbers ------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError):  # ZoneInfoNotFoundError is a KeyError
        return timezone.utc


def _when(moment: float, reference: float, settings: Settings, *, zone: bool = True) -> str:
    """``moment`` as a local time, with the day when it is not ``reference``'s day."""
    words = settings.wording
    tz = _zone(settings.timezone)
    local = datetime.fromtimestamp(moment, tz)
    days = (datetime.fromtimestamp(reference, tz).date() - local.date()).days
    name = local.tzname() or settings.timezone
    if name[:1] in "+-":
        name = "UTC" + name
    values = {"clock": f"{local:%H:%M}", "zone": name if zone else ""}
    if days <= 0:
        text = fill(words.time_today, **values)
    elif days == 1:
        text = fill(words.time_yesterday, **values)
    else:
        month = words.months[local.month - 1] if len(words.months) == 12 else str(local.month)
        text = fill(words.time_other_day, day=str(local.day), month=month, **values)
    return text.strip()


def _duration(seconds: float, words: Wording) -> str:
    """Return a duration in whole minutes for members: "45 min", "1 h 20 min", "2 d 3 h".

    Minutes are counted the way ``describe_duration`` counts them for admins
    (whole seconds, then whole minutes down), so that 38 s is "less than a
    minute" here and "38 s" there, and 90 s is "1 min" in both.
    """
    minutes = round(max(0.0, seconds)) // 60
    if minutes < 1:
        return words.under_a_minute
    days, rest = divmod(minutes, 1440)
    hours, minutes = divmod(rest, 60)
    parts = [(days, words.unit_day), (hours, words.unit_hour), (minutes, words.unit_minute)]
    shown = [f"{amount} {unit}" for amount, unit in parts if amount]
    return " ".join(shown[:2])


def _about(seconds: float, words: Wording) -> str:
    """Return a rounded estimate: exact minutes up to 10, then steps of 5, 10 and 60 min."""
    minutes = seconds / 60
    step = 1 if minutes <= 10 else 5 if minutes <= 60 else 10 if minutes <= 180 else 60
    return _duration(max(1, round(minutes / step)) * step * 60, words)


def _count(number: int, words: Wording) -> str:
    return f"{number:,}".replace(",", words.thousands_separator)


def _number(value: float, words: Wording) -> str:
    if value == int(value) and abs(value) < 1e15:
        return _count(int(value), words)
    return f"{value:.1f}"


def _bytes(amount: int) -> str:
    if amount >= 1 << 30:
        return f"{amount / (1 << 30):.1f} GiB"
    return f"{amount / (1 << 20):.0f} MiB"


# --- fitting texts ------------------------------------------------------------------------


def _cw_limit(settings: Settings) -> int:
    """Return the most a content warning may take: a third of the room."""
    return max(1, settings.max_characters // 3)


def _measure(settings: Settings) -> Callable[[str], int]:
    """Mastodon's count with the instance's URL length."""
    return functools.partial(mastodon_length, url_length=settings.characters_per_url)


def _fit(lines: Sequence[str], budget: int, measure: Callable[[str], int],
         optional: Sequence[str] = ()) -> str:
    """Join ``lines``; add ``optional`` lines if they fit; else cut the text with "…"."""
    kept = [line for line in lines if line]
    complete = "\n".join([*kept, *(line for line in optional if line)])
    if measure(complete) <= budget:
        return complete
    return truncate("\n".join(kept), budget, measure)


_TRIM = " \t\n,;:.·-(/\N{EN DASH}"


def truncate(text: str, budget: int, measure: Callable[[str], int]) -> str:
    """Cut ``text`` at a word boundary so that it, with "…", measures at most ``budget``.

    ``measure`` sees the whole text once, then only prefixes of a window that
    doubles until it no longer fits (a measure grows with its text), chosen by
    binary search: linear in the text, and otherwise bound by the budget
    rather than by the text's length.
    """
    if measure(text) <= budget:
        return text
    if budget < 1:
        return ""
    room = budget - measure(ELLIPSIS)

    def fits(cut: int) -> bool:
        head = text[:cut].rstrip(_TRIM)
        return bool(head) and measure(head) <= room

    start = len(text) - len(text.lstrip(_TRIM))  # a cut before it leaves nothing
    window = start + max(16, 2 * room)
    while window < len(text) and fits(window):
        window *= 2
    window = min(window, len(text))
    spaces = [i for i in range(start + 1, window + 1) if text[i:i + 1].isspace()]
    best = _last_fitting(spaces, fits)
    if best is None:
        best = _last_fitting(range(start + 1, window), fits)
    return ELLIPSIS if best is None else text[:best].rstrip(_TRIM) + ELLIPSIS


def _last_fitting(cuts: Sequence[int], fits: Callable[[int], bool]) -> int | None:
    """Return the last of the ascending ``cuts`` that fits, by binary search (None: none)."""
    low, high = 0, len(cuts)  # cuts[:low] may fit; cuts[high:] do not
    found: int | None = None
    while low < high:
        middle = (low + high) // 2
        if fits(cuts[middle]):
            found = cuts[middle]
            low = middle + 1
        else:
            high = middle
    return found


def _unique(items: Iterable[str]) -> list[str]:
    seen: list[str] = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen
