"""The status page in the states the browser tests and the screenshots show, at a fixed clock.

Each state is a ``bot.page.PageData`` as ``bot.pagefiles`` would gather it:
90 days of history (one day the bot did not watch, two resolved incidents),
and, by state, nothing open (``normal``), an open critical incident whose
thread holds the posts ``bot.compose`` writes for it (``incident``), or a
maintenance window under way announced by ``bot.compose.maintenance_post``
(``maintenance``). ``hostile`` is the incident state with outside text that
must stay text: a queue named ``@someone``, another named with a script tag,
and posts carrying markup. ``write`` renders a state with ``bot.page`` and
writes it with ``bot.pagefiles.write_files``, as ``statusbot page`` does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from bot import page
from bot.compose import Settings, compose_event, maintenance_post
from bot.history import DAY
from bot.model import Affected, Event, EventKind, Incident, Post, PostKind, Severity
from bot.pagefiles import write_files

NOW = float(1_780_000_000 // DAY * DAY + 14 * 3600 + 20 * 60)
"""The fixed clock: 14:20 UTC on 28 May 2026."""

INSTANCE = "example.social"
INSTANCE_URL = "https://example.social"
SETTINGS = Settings(instance=INSTANCE)
SITE = page.Site(SETTINGS, page_url="https://status.example.org", instance_url=INSTANCE_URL,
                 since=NOW - 400 * DAY)

STATES = ("normal", "incident", "maintenance")
"""The states the issue asks for: all normal, an open critical incident, maintenance."""

HOSTILE_QUEUES = ("@someone", "<script>window.__owned = 1</script>")
"""Queue names a Sidekiq installation could have that must never become markup."""

HOSTILE_TEXT = ('<script>window.__owned = 1</script><img src=x onerror="window.__owned = 2">'
                " @someone@evil.example")
"""An admin's note with markup and a mention: shown as these very characters."""


def _page_post(post: Post, status_id: int | None) -> page.PagePost:
    """A composed post as the page shows it, published (with a link) or not yet."""
    return page.PagePost(post.key, post.created_at, post.text,
                         page.post_url(INSTANCE_URL, str(status_id)) if status_id else None)


def _past() -> page.Past:
    """90 days watched but one (day 40), with two resolved incidents and their threads."""
    windows = page.day_windows(NOW, SETTINGS.timezone)
    days = tuple(page.WatchedDay(start, end, 0.0 if index == 40 else end - start)
                 for index, (start, end) in enumerate(windows))
    incidents = []
    for number, (back, hours, peak, components) in enumerate((
            (61, 1.5, Severity.WARNING, ("queue:pull",)),
            (12, 0.75, Severity.CRITICAL, ("queue:push", "queue:ingress"))), start=1):
        opened = NOW - back * DAY - 5 * 3600
        affected = tuple(Affected(c, peak, opened, peak, "latency", 900.0, 900.0)
                         for c in components)
        incident = Incident(f"inc-{number}", opened, affected, severity=peak, peak=peak)
        notice = compose_event(Event(EventKind.OPENED, incident, opened, "opened"), None,
                               SETTINGS)[0]
        incidents.append(page.PastIncident(
            incident.id, opened, opened + hours * 3600, peak, components,
            (_page_post(notice, 110_000 + number),)))
    return page.Past(days, tuple(incidents))


def _incident(queues: tuple[str, str] = ("push", "default"), note: str = "",
              ) -> tuple[Incident, tuple[page.PagePost, ...]]:
    """An incident opened at 13:05: the first queue critical, the second a warning."""
    opened = NOW - 75 * 60
    first = Affected(f"queue:{queues[0]}", Severity.WARNING, opened, Severity.WARNING,
                     "latency", 420.0, 420.0, eta_s=1800.0)
    incident = Incident("inc-3", opened, (first,), severity=Severity.WARNING,
                        peak=Severity.WARNING)
    notice = compose_event(Event(EventKind.OPENED, incident, opened, "opened"), None,
                           SETTINGS)[0]
    worse_at = NOW - 40 * 60
    worse = dataclasses.replace(first, severity=Severity.CRITICAL, peak=Severity.CRITICAL,
                                value=2400.0, peak_value=2400.0, eta_s=2700.0)
    second = Affected(f"queue:{queues[1]}", Severity.WARNING, worse_at, Severity.WARNING,
                      "latency", 95.0, 95.0)
    incident = dataclasses.replace(incident, affected=(worse, second),
                                   severity=Severity.CRITICAL, peak=Severity.CRITICAL,
                                   sequence=1, last_announced_at=worse_at)
    update = compose_event(Event(EventKind.WORSENED, incident, worse_at, "worsened"), None,
                           SETTINGS)[0]
    posts = [_page_post(notice, 112_233_445_566), _page_post(update, 112_233_455_677)]
    if note:
        incident = dataclasses.replace(incident, sequence=2)
        noted = compose_event(Event(EventKind.NOTE, incident, NOW - 5 * 60, "note", note=note),
                              None, SETTINGS)[0]
        posts.append(_page_post(noted, None))  # not yet published on the instance
    return incident, tuple(posts)


def _maintenance() -> page.Maintenance:
    """A window from 14:00 to 15:30 over the background work, announced the day before."""
    start, end = NOW - 20 * 60, NOW + 70 * 60
    text = "Moving the database to a bigger server."
    announce = maintenance_post("m1", "announce", start, end, text, NOW - DAY, SETTINGS)
    begun = maintenance_post("m1", "start", start, end, text, start, SETTINGS)
    assert announce.kind is PostKind.NOTICE
    return page.Maintenance("m1", start, end, text, ("queue:*", "unserved:*"),
                            (_page_post(announce, 112_200_000_001),
                             _page_post(begun, 112_233_400_002)))


BUILDERS: dict[str, Callable[[], page.Live]] = {
    "normal": page.Live,
    "incident": lambda: page.Live(*_incident()),
    "maintenance": lambda: page.Live(maintenance=(_maintenance(),)),
    "hostile": lambda: page.Live(*_incident(HOSTILE_QUEUES, HOSTILE_TEXT)),
}


def data(state: str) -> page.PageData:
    """Return the page data of ``state`` (one of ``STATES`` or "hostile")."""
    return page.PageData(SITE, BUILDERS[state](), _past(), checked_at=NOW - 30)


def write(state: str, directory: Path) -> Path:
    """Render ``state`` at ``NOW`` into ``directory``; return its ``index.html``."""
    write_files(directory, page.render(data(state), NOW))
    return directory / "index.html"
