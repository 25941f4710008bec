"""Render the status page: state and history in, ``index.html``, ``feed.atom`` and JSON out.

Pure: ``render(data, now)`` returns the files as bytes and reads no clock,
file, network or environment (``bot.pagefiles`` gathers the data and writes
the files). Every word members read comes from ``bot.wording`` (the
``page_*`` texts, the impacts and the posts as composed), so ``[wording]``
adapts the page like the posts.

What the page shows, and how it is judged:

- The service in the parts members know (``PARTS``, named by the
  ``page_part_*`` texts). A component of the open incident (``parts_of``)
  makes its parts ``degraded_performance`` (warning) or ``partial_outage``
  (critical), or ``major_outage`` when a critical component means the work
  stopped (``STOPPED``: Redis, no process at all, the website, live
  updates). A maintenance window under way makes the parts it covers
  ``under_maintenance``. These are Statuspage's component statuses, so the
  HTML and the JSON say the same.
- The overall indicator: ``none`` without incident, ``minor`` for a
  warning, ``major`` for a critical incident, ``critical`` when a part has
  stopped.
- The last ``DAYS`` local days (``[mastodon] timezone``) as cells: the
  worst incident of the day (its peak), else maintenance, else fine, but
  only when the bot watched at least ``KNOWN_SHARE`` of the day (so far):
  a day it did not watch is unknown, never fine. Availability is the share
  of the watched time without an incident (an incident's time counts at
  most up to the time watched on each day).
- Outside text (post texts, an admin's maintenance text, queue names in
  them, status ids) is cleaned of control characters and escaped for HTML,
  XML and JSON; links must be http(s).
"""

from __future__ import annotations

import functools
import hashlib
import html
import json
import math
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

from bot import defaults
from bot.compose import Settings
from bot.incidents import component_order
from bot.model import Affected, Incident, Severity
from bot.wording import Wording, fill

DAYS = 90
"""Days of history the page shows."""

KNOWN_SHARE = 0.5
"""Share of a day (of its part up to now, for today) the bot must have watched for the day
to show as fine; less is unknown. A day with an incident shows it whatever was watched."""

FEED_ENTRIES = 50
"""Most entries in the feed (the newest)."""

SHOWN_UPDATES = 40
"""Most posts of the open incident the page and the JSON list (the newest; the page counts
the rest)."""

SHOWN_PAST = 30
"""Most resolved incidents the page lists (the newest)."""

SHOWN_MAINTENANCE = 10
"""Most maintenance windows the page and the JSON list (the next ones)."""

FEED_TAG_DATE = "2022"
"""Date part of the feed's ``tag:`` ids; fixed, so that ids never change."""

FILES = ("index.html", "feed.atom", "api/v2/status.json", "api/v2/summary.json")
"""The files ``render`` returns, by their path in the page directory."""

PARTS = ("timelines", "outgoing", "incoming", "emails", "imports", "web", "streaming")
"""The parts of the service members know, in page order (``Wording.page_part_<part>``)."""

_BACKGROUND = ("timelines", "outgoing", "incoming", "emails", "imports")
_QUEUE_PARTS = {"default": ("timelines",), "scheduler": ("timelines",), "push": ("outgoing",),
                "ingress": ("incoming",), "mailers": ("emails",), "pull": ("imports",)}

STOPPED = frozenset({"redis", "unserved", "web", "streaming"})
"""Kinds of component whose critical state means the work stopped (``major_outage``)."""

OPERATIONAL = "operational"
DEGRADED = "degraded_performance"
PARTIAL = "partial_outage"
MAJOR = "major_outage"
MAINTENANCE = "under_maintenance"
COMPONENT_STATUSES = (OPERATIONAL, DEGRADED, PARTIAL, MAJOR, MAINTENANCE)
"""Statuspage's component statuses, best first (maintenance aside)."""

INDICATORS = ("none", "minor", "major", "critical")
"""Statuspage's overall indicators, best first."""


def parts_of(component: str) -> tuple[str, ...]:
    """Return the parts of ``PARTS`` a component's trouble reaches (none for some)."""
    kind, _, name = component.partition(":")
    kind = kind.partition("@")[0]  # another host's memory@db-1 reaches what memory does
    if kind in ("queue", "unserved"):
        if kind == "unserved" and name == "*":
            return _BACKGROUND
        return _QUEUE_PARTS.get(name, ())
    return {"redis": _BACKGROUND, "memory": ("web",), "swap": ("web",), "web": ("web",),
            "streaming": ("streaming",)}.get(kind, ())


def _part_components() -> dict[str, tuple[str, ...]]:
    """Every component that reaches each part (to match maintenance patterns against)."""
    names = [f"{kind}:{queue}" for queue in defaults.MASTODON_QUEUES
             for kind in ("queue", "unserved")]
    names += ["unserved:*", "redis", "memory", "swap", "web", "streaming", "dead"]
    return {part: tuple(n for n in names if part in parts_of(n)) for part in PARTS}


_PART_COMPONENTS = _part_components()


# --- the data ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PagePost:
    """One member post of an incident or maintenance thread, as composed.

    ``key`` is its idempotency key (the feed entry's id); ``url`` the post on
    the instance, None until it was published there.
    """

    key: str
    at: float
    text: str
    url: str | None = None


@dataclass(frozen=True, slots=True)
class Maintenance:
    """A planned maintenance window; ``components`` are patterns (empty: everything)."""

    id: str
    start: float
    end: float
    text: str
    components: tuple[str, ...] = ()
    posts: tuple[PagePost, ...] = ()

    def covers(self, part: str) -> bool:
        """Return True when the window reaches ``part``."""
        if not self.components:
            return True
        return any(fnmatchcase(c, p) for c in _PART_COMPONENTS.get(part, ())
                   for p in self.components)


@dataclass(frozen=True, slots=True)
class PastIncident:
    """A resolved incident, with the posts of its thread still known."""

    id: str
    opened_at: float
    resolved_at: float
    peak: Severity
    components: tuple[str, ...]
    posts: tuple[PagePost, ...] = ()


@dataclass(frozen=True, slots=True)
class WatchedDay:
    """One local day ``[start, end)`` (today: up to now) and the seconds the bot watched of it."""

    start: float
    end: float
    watched_s: float


@dataclass(frozen=True, slots=True)
class Live:
    """What the page shows that changes with ticks: compared to decide on a rewrite."""

    open_incident: Incident | None = None
    posts: tuple[PagePost, ...] = ()
    maintenance: tuple[Maintenance, ...] = ()


@dataclass(frozen=True, slots=True)
class Past:
    """The history the page shows: the days (oldest first) and resolved incidents."""

    days: tuple[WatchedDay, ...] = ()
    incidents: tuple[PastIncident, ...] = ()


@dataclass(frozen=True, slots=True)
class Site:
    """What does not change while the bot runs: names, addresses, wording.

    ``settings`` gives the instance's name, language, time zone and wording;
    ``page_url`` is where the page is served (``[page] url``, may be empty);
    ``instance_url`` the instance (``[mastodon] api_base_url``, may be empty);
    ``since`` when the bot's state began (the components' ``created_at``).
    """

    settings: Settings = field(default_factory=Settings)
    page_url: str = ""
    instance_url: str = ""
    since: float = 0.0


@dataclass(frozen=True, slots=True)
class PageData:
    """Everything ``render`` needs; ``checked_at`` is the bot's last look (None: never)."""

    site: Site
    live: Live
    past: Past
    checked_at: float | None = None


# --- judging -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Overview:
    """The state now, as both the HTML and the JSON tell it."""

    indicator: str
    description: str
    parts: tuple[tuple[str, str], ...]
    """(part, Statuspage component status) in ``PARTS`` order."""
    maintenance_now: tuple[Maintenance, ...]


def _component_status(component: str, severity: Severity) -> str:
    if severity <= Severity.OK:
        return OPERATIONAL
    if severity == Severity.WARNING:
        return DEGRADED
    return MAJOR if component.partition(":")[0] in STOPPED else PARTIAL


def overview(data: PageData, now: float) -> Overview:
    """Return the overall indicator, its line and each part's status at ``now``."""
    words = data.site.settings.wording
    instance = data.site.settings.instance
    worst = dict.fromkeys(PARTS, OPERATIONAL)
    incident = data.live.open_incident
    for affected in incident.affected if incident is not None else ():
        status = _component_status(affected.component, affected.severity)
        for part in parts_of(affected.component):
            if COMPONENT_STATUSES.index(status) > COMPONENT_STATUSES.index(worst[part]):
                worst[part] = status
    under_way = tuple(m for m in data.live.maintenance if m.start <= now < m.end)
    for part in PARTS:
        if worst[part] == OPERATIONAL and any(m.covers(part) for m in under_way):
            worst[part] = MAINTENANCE
    if incident is None:
        indicator = "none"
        line = words.page_overall_maintenance if under_way else words.page_overall_ok
    elif MAJOR in worst.values():
        indicator, line = "critical", words.page_overall_critical
    elif incident.severity >= Severity.CRITICAL:
        indicator, line = "major", words.page_overall_major
    else:
        indicator, line = "minor", words.page_overall_minor
    return Overview(indicator, fill(line, instance=instance),
                    tuple((p, worst[p]) for p in PARTS), under_way)


@dataclass(frozen=True, slots=True)
class DayCell:
    """One day of the history row: ``state`` is ok, minor, major, maintenance or unknown."""

    start: float
    state: str
    watched_share: float


def day_windows(now: float, zone: str, days: int = DAYS) -> list[tuple[float, float]]:
    """Return the last ``days`` local days as ``[start, end)``, oldest first; today ends at now."""
    tz = _zone(zone)
    today = datetime.fromtimestamp(now, tz).date()
    windows = []
    for back in range(days - 1, -1, -1):
        day = today - timedelta(days=back)
        start = _midnight(day, tz)
        end = min(now, _midnight(day + timedelta(days=1), tz))
        windows.append((start, end))
    return windows


def _midnight(day: date, tz: tzinfo) -> float:
    return datetime.combine(day, time(), tz).timestamp()


def _incident_spans(data: PageData, now: float) -> list[tuple[float, float, Severity]]:
    spans = [(i.opened_at, i.resolved_at, i.peak) for i in data.past.incidents]
    incident = data.live.open_incident
    if incident is not None:
        spans.append((incident.opened_at, now, max(incident.peak, Severity.WARNING)))
    return spans


def day_cells(data: PageData, now: float) -> tuple[list[DayCell], float | None]:
    """Return the day cells and the availability in percent (None when nothing was watched)."""
    spans = _incident_spans(data, now)
    windows = [(m.start, m.end) for m in data.live.maintenance]
    cells: list[DayCell] = []
    watched_total = 0.0
    down_total = 0.0
    for day in data.past.days:
        span = max(0.0, day.end - day.start)
        watched = min(max(0.0, day.watched_s), span)
        worst = Severity.OK
        down = 0.0
        for opened, resolved, peak in spans:
            inside = min(resolved, day.end) - max(opened, day.start)
            if inside > 0:
                worst = max(worst, peak)
                down += inside
        share = watched / span if span > 0 else 0.0
        if worst >= Severity.CRITICAL:
            state = "major"
        elif worst >= Severity.WARNING:
            state = "minor"
        elif any(start < day.end and end > day.start for start, end in windows):
            state = "maintenance"
        else:
            state = "ok" if span > 0 and share >= KNOWN_SHARE else "unknown"
        cells.append(DayCell(day.start, state, share))
        watched_total += watched
        down_total += min(down, watched)
    if watched_total <= 0:
        return cells, None
    return cells, 100.0 * (1.0 - down_total / watched_total)


def incident_name(components: Iterable[str], words: Wording) -> str:
    """Return an incident's short name: what members notice most, and how many more.

    ``components`` come most important first (``by_importance``).
    """
    shorts = list(dict.fromkeys(words.impact(c).short for c in components))
    if not shorts:
        return words.impact("*").short
    if len(shorts) == 1:
        return shorts[0]
    return fill(words.profile_more, summary=shorts[0], count=str(len(shorts) - 1))


def by_importance(affected: Iterable[Affected]) -> list[str]:
    """Return the components of ``affected``, the worst first, then in the usual order."""
    return [a.component for a in sorted(affected, key=lambda a: (-a.severity,
                                                                 component_order(a.component)))]


def signature(live: Live, now: float, refresh: float) -> tuple[object, ...]:
    """Return what decides whether the page must be written again at ``now``.

    The page changes when what it shows changes: the open incident's
    components, severities and state (not its values, which move every tick),
    its posts and their links, the maintenance windows and whether each is
    under way. Otherwise it changes only by the passing of time (last
    checked, today's cell, availability), which is refreshed once per
    ``refresh`` seconds, never on every tick.
    """
    incident = live.open_incident
    shown = None if incident is None else (
        incident.id, incident.opened_at, incident.severity, incident.peak,
        incident.acknowledged, incident.manual,
        tuple((a.component, a.severity, a.since) for a in incident.affected))
    windows = tuple((m, m.start <= now, m.end <= now) for m in live.maintenance)
    return shown, live.posts, windows, int(now // refresh) if refresh > 0 else 0


# --- cleaning ------------------------------------------------------------------------------

_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffe\uffff\ud800-\udfff]")


def clean(text: object, limit: int = 5000) -> str:
    """Return outside text fit for HTML, XML and JSON: no control or format characters.

    Line breaks stay; bidi overrides and zero-width characters (format
    characters) go; at most ``limit`` characters are kept.
    """
    raw = _XML_BAD.sub("", str(text)[:limit].replace("\r\n", "\n").replace("\r", "\n"))
    return _MAYBE_FORMAT.sub(_drop_format, raw)


_MAYBE_FORMAT = re.compile("[\xad\u0600-\U0010ffff]")
"""Where format characters can be (the first is U+00AD); each match is looked up."""


def _drop_format(match: re.Match[str]) -> str:
    char = match.group()
    return "" if unicodedata.category(char) == "Cf" else char


def safe_url(url: str | None) -> str | None:
    """Return ``url`` when it is an http(s) URL with a host and no blanks, else None."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc or re.search(r"[\s<>\"']", url):
        return None
    return clean(url, 2000)


def post_url(instance_url: str, status_id: str | None) -> str | None:
    """Return the address of a published status on the instance (the web app's own route)."""
    if not status_id:
        return None
    base = _statuses_base(instance_url)
    if base is None:
        return None
    return base + quote(clean(status_id, 64), safe="")


@functools.lru_cache(maxsize=8)
def _statuses_base(instance_url: str) -> str | None:
    """``safe_url`` of the instance plus ``/statuses/``, once per URL (each tick asks per post)."""
    base = safe_url(instance_url)
    return None if base is None else f"{base.rstrip('/')}/statuses/"


def _e(text: object) -> str:
    return html.escape(clean(text), quote=True)


# --- times ---------------------------------------------------------------------------------


def iso(moment: float) -> str:
    """Return ``moment`` as RFC 3339 in UTC, seconds precision: ``2026-12-01T14:05:00Z``."""
    try:
        return datetime.fromtimestamp(moment, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return "1970-01-01T00:00:00Z"


def _iso_ms(moment: float) -> str:
    """Statuspage's timestamps carry milliseconds: ``2026-12-01T14:05:00.000Z``."""
    return iso(moment)[:-1] + ".000Z"


def _date(moment: float, settings: Settings) -> str:
    words = settings.wording
    try:
        local = datetime.fromtimestamp(moment, _zone(settings.timezone))
    except (OverflowError, OSError, ValueError):
        return "?"
    month = words.months[local.month - 1] if len(words.months) == 12 else str(local.month)
    return fill(words.page_date, day=str(local.day), month=month, year=str(local.year))


def _when(moment: float, settings: Settings) -> str:
    """Return ``moment`` as a local time with its date ("28 May 11:10 UTC").

    A static page is read long after it was written: "today" or "yesterday"
    could be wrong by then.
    """
    words = settings.wording
    try:
        local = datetime.fromtimestamp(moment, _zone(settings.timezone))
    except (OverflowError, OSError, ValueError):
        return "?"
    name = local.tzname() or settings.timezone
    if name[:1] in "+-":
        name = "UTC" + name
    month = words.months[local.month - 1] if len(words.months) == 12 else str(local.month)
    return fill(words.time_other_day, day=str(local.day), month=month,
                clock=f"{local:%H:%M}", zone=clean(name, 40)).strip()


@functools.lru_cache(maxsize=16)
def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError):  # ZoneInfoNotFoundError is a KeyError
        return timezone.utc


def _duration(seconds: float, words: Wording) -> str:
    """Whole minutes for people, as the posts say them: "45 min", "1 h 20 min", "2 d 3 h"."""
    if not math.isfinite(seconds):
        return "?"
    minutes = round(max(0.0, seconds)) // 60
    if minutes < 1:
        return words.under_a_minute
    days, rest = divmod(minutes, 1440)
    hours, minutes = divmod(rest, 60)
    parts = [(days, words.unit_day), (hours, words.unit_hour), (minutes, words.unit_minute)]
    return " ".join([f"{amount} {unit}" for amount, unit in parts if amount][:2])


def percent(share: float) -> str:
    """Return a percentage cut (never rounded up) to two decimals: 99.999 is "99.99"."""
    cut = math.floor(round(max(0.0, min(100.0, share)) * 100, 6)) / 100  # 99.99 is 99.989…
    return f"{cut:.2f}".rstrip("0").rstrip(".")


# --- render --------------------------------------------------------------------------------


def render(data: PageData, now: float) -> dict[str, bytes]:
    """Return every file of the page (``FILES``) as UTF-8 bytes, for ``now``."""
    view = overview(data, now)
    return {
        "index.html": render_html(data, now, view).encode("utf-8"),
        "feed.atom": render_atom(data).encode("utf-8"),
        "api/v2/status.json": _json({"page": _page_json(data),
                                     "status": _status_json(view)}),
        "api/v2/summary.json": _json(summary(data, now, view)),
    }


def _json(value: object) -> bytes:
    return (json.dumps(value, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


_CSS = """
:root{color-scheme:light dark;--bg:#fff;--fg:#1f2328;--mute:#59636e;--line:#d1d9e0;
--ok:#1a7f37;--minor:#9a6700;--major:#cf222e;--crit:#a40e26;--maint:#0969da;--unk:#818b98}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--fg:#e6edf3;--mute:#9198a1;
--line:#3d444d;--ok:#3fb950;--minor:#d29922;--major:#f85149;--crit:#ff7b72;--maint:#4493f8;
--unk:#656c76}}
*{box-sizing:border-box}
body{margin:0 auto;max-width:46rem;padding:1rem;background:var(--bg);color:var(--fg);
font:1rem/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;overflow-wrap:anywhere}
h1{font-size:1.5rem;margin:.5rem 0}h2{font-size:1.2rem;margin:1.5rem 0 .5rem}
a{color:var(--maint)}
.overall{--tone:var(--ok);font-size:1.15rem;font-weight:600;padding:.75rem 1rem;
border-radius:.4rem;border-left:.4rem solid var(--tone);
background:color-mix(in srgb,var(--tone) 12%,transparent)}
.i-minor{--tone:var(--minor)}.i-major{--tone:var(--major)}
.i-critical{--tone:var(--crit)}.i-maint{--tone:var(--maint)}
ul,ol{padding:0;margin:0;list-style:none}
.parts li{display:flex;justify-content:space-between;gap:1rem;padding:.4rem 0;
border-bottom:1px solid var(--line)}
.s{font-weight:600;white-space:nowrap}
.operational{color:var(--ok)}.degraded_performance{color:var(--minor)}
.partial_outage{color:var(--major)}.major_outage{color:var(--crit)}
.under_maintenance{color:var(--maint)}
.updates li{border-left:2px solid var(--line);padding:0 0 .75rem .75rem}
.updates p{margin:.25rem 0;white-space:pre-line}
time,.mute{color:var(--mute);font-size:.9rem}
.days{display:grid;grid-template-columns:repeat(30,1fr);gap:3px;margin:.5rem 0}
.days li{height:1.5rem;border-radius:2px;background:var(--ok)}
@media (min-width:40rem){.days{grid-template-columns:repeat(90,1fr);gap:2px}
.days li{height:2.25rem}}
.days .minor{background:var(--minor)}.days .major{background:var(--major)}
.days .maintenance{background:var(--maint)}
.days .unknown{background:repeating-linear-gradient(45deg,var(--unk) 0 2px,transparent 2px 4px);
outline:1px solid var(--unk);outline-offset:-1px}
.vh{position:absolute;width:1px;height:1px;overflow:hidden;clip-path:inset(50%);
white-space:nowrap}
.past li{padding:.25rem 0;border-bottom:1px solid var(--line)}
.past li:last-child{border-bottom:0}
footer{margin-top:2rem;border-top:1px solid var(--line);padding-top:.5rem}
"""
_CSS = "".join(line.strip() for line in _CSS.splitlines())

_INDICATOR_CLASS = {"none": "", "minor": " i-minor", "major": " i-major",
                    "critical": " i-critical"}


def _coming(windows: Iterable[Maintenance], now: float) -> list[Maintenance]:
    """Return the windows that have not ended, the first ``SHOWN_MAINTENANCE`` to begin."""
    return sorted((m for m in windows if m.end > now),
                  key=lambda m: (m.start, m.id))[:SHOWN_MAINTENANCE]


def _state_word(status: str, words: Wording) -> str:
    return {OPERATIONAL: words.page_state_operational, DEGRADED: words.page_state_degraded,
            PARTIAL: words.page_state_partial, MAJOR: words.page_state_major,
            MAINTENANCE: words.page_state_maintenance}[status]


def _part_name(part: str, words: Wording) -> str:
    return str(getattr(words, f"page_part_{part}"))


def _post_html(post: PagePost, settings: Settings) -> str:
    words = settings.wording
    link = safe_url(post.url)
    tail = (f'<a href="{_e(link)}">{_e(fill(words.page_post_link, instance=settings.instance))}'
            f"</a>" if link is not None else
            f'<span class="mute">{_e(fill(words.page_not_posted, instance=settings.instance))}'
            f"</span>")
    return (f'<li><time datetime="{iso(post.at)}">{_e(_when(post.at, settings))}</time>'
            f"<p>{_e(post.text.strip())}</p>{tail}</li>")


def render_html(data: PageData, now: float, view: Overview | None = None) -> str:
    """Return ``index.html``: semantic HTML with inline CSS, no script, nothing loaded."""
    view = view or overview(data, now)
    settings = data.site.settings
    words = settings.wording
    instance = settings.instance
    title = fill(words.page_title, instance=instance)
    lang = re.sub(r"[^A-Za-z0-9-]", "", settings.language)[:35] or "en"
    kind = _INDICATOR_CLASS[view.indicator]
    if view.indicator == "none" and view.maintenance_now:
        kind = " i-maint"
    out = [
        f'<!DOCTYPE html>\n<html lang="{lang}">\n<head>\n<meta charset="utf-8">\n'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n"
        f'<link rel="alternate" type="application/atom+xml" href="feed.atom" '
        f'title="{_e(title)}">\n<style>{_CSS}</style>\n</head>\n<body>\n<header>\n'
        f"<h1>{_e(title)}</h1>\n"
        f'<p class="overall{kind}" role="status">{_e(view.description)}</p>\n</header>\n'
        f"<main>\n",
        f'<section aria-labelledby="now">\n<h2 id="now">{_e(words.page_heading_parts)}</h2>\n'
        f'<ul class="parts">\n',
    ]
    out += [f'<li><span>{_e(_part_name(part, words))}</span> '
            f'<span class="s {status}">{_e(_state_word(status, words))}</span></li>\n'
            for part, status in view.parts]
    out.append("</ul>\n</section>\n")
    incident = data.live.open_incident
    if incident is not None:
        out.append(_incident_html(incident, data.live.posts, settings))
    coming = _coming(data.live.maintenance, now)
    if coming:
        out.append(f'<section aria-labelledby="maint">\n<h2 id="maint">'
                   f"{_e(words.page_heading_maintenance)}</h2>\n<ul>\n")
        for window in coming:
            line = fill(words.page_maintenance_window, start=_when(window.start, settings),
                        end=_when(window.end, settings), text=clean(window.text, 500))
            out.append(f"<li>{_e(line)}</li>\n")
        out.append("</ul>\n</section>\n")
    out.append(_history_html(data, now))
    checked = (fill(words.page_checked, time=_when(data.checked_at, settings))
               if data.checked_at is not None else words.page_never_checked)
    when = (f'<time datetime="{iso(data.checked_at)}">{_e(checked)}</time>'
            if data.checked_at is not None else _e(checked))
    out.append(f"</main>\n<footer>\n<p>{when}</p>\n<p>{_e(words.page_feeds)} "
               f'<a href="feed.atom" type="application/atom+xml">{_e(words.page_feed_link)}</a>'
               f' · <a href="api/v2/summary.json" type="application/json">'
               f"{_e(words.page_json_link)}</a></p>\n</footer>\n</body>\n</html>\n")
    return "".join(out)


def _incident_html(incident: Incident, posts: Sequence[PagePost], settings: Settings) -> str:
    words = settings.wording
    out = [f'<section aria-labelledby="incident">\n<h2 id="incident">'
           f"{_e(words.page_heading_incident)}</h2>\n"
           f"<p><strong>{_e(incident_name(by_importance(incident.affected), words))}"
           f"</strong> {_e(fill(words.page_since, time=_when(incident.opened_at, settings)))}"
           f"</p>\n"]
    sentences = list(dict.fromkeys(words.impact(c).sentence
                                   for c in by_importance(incident.affected)))
    if sentences:
        out.append("<ul>\n" + "".join(f"<li>{_e(s)}</li>\n" for s in sentences) + "</ul>\n")
    if posts:
        shown = sorted(posts, key=lambda p: (p.at, p.key))
        hidden = max(0, len(shown) - SHOWN_UPDATES)
        out.append(f"<h3>{_e(words.page_heading_updates)}</h3>\n")
        if hidden:
            out.append(f'<p class="mute">{_e(fill(words.page_more_updates, count=str(hidden)))}'
                       f"</p>\n")
        out.append('<ol class="updates">\n')
        out += [_post_html(p, settings) + "\n" for p in shown[hidden:]]
        out.append("</ol>\n")
    out.append("</section>\n")
    return "".join(out)


def _history_html(data: PageData, now: float) -> str:
    settings = data.site.settings
    words = settings.wording
    cells, availability = day_cells(data, now)
    states = {"ok": words.page_day_ok, "minor": words.page_day_minor,
              "major": words.page_day_major, "maintenance": words.page_day_maintenance,
              "unknown": words.page_day_unknown}
    if availability is None:
        summary_line = words.page_never_watched
    else:
        summary_line = fill(words.page_availability, percent=percent(availability))
    out = [f'<section aria-labelledby="history">\n<h2 id="history">'
           f"{_e(fill(words.page_heading_history, days=str(len(cells))))}</h2>\n"
           f"<p>{_e(summary_line)}</p>\n"
           f'<ol class="days" aria-label="{_e(words.page_legend)}">']
    for cell in cells:
        label = _e(fill(words.page_day, date=_date(cell.start, settings),
                        state=states[cell.state]))
        out.append(f'<li class="{cell.state}" title="{label}"><span class="vh">{label}</span>'
                   f"</li>")
    out.append(f'</ol>\n<p class="mute">{_e(words.page_legend)}</p>\n'
               f'<h3>{_e(words.page_heading_past)}</h3>\n')
    past = sorted(data.past.incidents, key=lambda i: (i.opened_at, i.id), reverse=True)
    if not past:
        out.append(f"<p>{_e(words.page_no_past)}</p>\n")
    else:
        out.append('<ul class="past">\n')
        for incident in past[:SHOWN_PAST]:
            nouns = words.noun_separator.join(dict.fromkeys(
                words.impact(c).noun for c in sorted(incident.components, key=component_order)))
            text = fill(words.page_past_incident, date=_date(incident.opened_at, settings),
                        duration=_duration(incident.resolved_at - incident.opened_at,
                                                   words),
                        nouns=nouns or words.impact("*").noun)
            out.append(f"<li>{_e(text)}</li>\n")
        out.append("</ul>\n")
    out.append("</section>\n")
    return "".join(out)


# --- Atom ----------------------------------------------------------------------------------


def _x(text: object) -> str:
    return html.escape(clean(text), quote=True)


def _authority(site: Site) -> str:
    host = ""
    for url in (site.instance_url, site.page_url):
        try:
            host = urlsplit(url).hostname or ""
        except ValueError:
            host = ""
        if host:
            break
    host = re.sub(r"[^a-z0-9.-]", "", host.lower())
    return host or "statusbot.invalid"


def entry_id(site: Site, key: str) -> str:
    """Return the feed id of the post ``key``: a ``tag:`` URI that never changes."""
    return f"tag:{_authority(site)},{FEED_TAG_DATE}:{quote(clean(key, 200), safe=':-._~/')}"


def _entries(data: PageData) -> list[tuple[PagePost, str]]:
    """Every post the feed may carry with the title of its thread, newest first."""
    words = data.site.settings.wording
    found: dict[str, tuple[PagePost, str]] = {}
    incident = data.live.open_incident
    if incident is not None:
        name = incident_name(by_importance(incident.affected), words)
        found.update((p.key, (p, name)) for p in data.live.posts)
    for past in data.past.incidents:
        name = incident_name(sorted(past.components, key=component_order), words)
        found.update((p.key, (p, name)) for p in past.posts)
    for window in data.live.maintenance:
        found.update((p.key, (p, words.page_heading_maintenance)) for p in window.posts)
    return sorted(found.values(), key=lambda pair: (pair[0].at, pair[0].key), reverse=True)


def render_atom(data: PageData) -> str:
    """Return ``feed.atom`` (RFC 4287): one entry per post, newest first, ids stable.

    ``updated`` of the feed is that of its newest entry, so an unchanged feed
    has unchanged bytes.
    """
    site = data.site
    settings = site.settings
    title = fill(settings.wording.page_title, instance=settings.instance)
    entries = _entries(data)[:FEED_ENTRIES]
    updated = max((post.at for post, _ in entries), default=0.0)
    page = safe_url(site.page_url)
    out = ['<?xml version="1.0" encoding="utf-8"?>\n'
           f'<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="{_x(settings.language)}">\n'
           f"<id>{_x(entry_id(site, 'feed'))}</id>\n<title>{_x(title)}</title>\n"
           f"<updated>{iso(updated)}</updated>\n"
           f"<author><name>{_x(settings.instance)}</name></author>\n"]
    if page is not None:
        base = page.rstrip("/")
        out.append(f'<link rel="alternate" type="text/html" href="{_x(base)}/"/>\n'
                   f'<link rel="self" type="application/atom+xml" href="{_x(base)}/feed.atom"/>\n')
    for post, thread in entries:
        link = safe_url(post.url) or page
        first = clean(post.text).strip().split("\n", 1)[0]
        out.append(f"<entry>\n<id>{_x(entry_id(site, post.key))}</id>\n"
                   f"<title>{_x(thread)}: {_x(first[:120])}</title>\n"
                   f"<updated>{iso(post.at)}</updated>\n<published>{iso(post.at)}</published>\n"
                   + (f'<link rel="alternate" type="text/html" href="{_x(link)}"/>\n'
                      if link is not None else "")
                   + f'<content type="text">{_x(post.text.strip())}</content>\n</entry>\n')
    out.append("</feed>\n")
    return "".join(out)


# --- Statuspage API v2 ---------------------------------------------------------------------


def page_id(site: Site) -> str:
    """Return the page's stable id: 12 hex digits of its instance's host."""
    return hashlib.sha256(_authority(site).encode()).hexdigest()[:12]


def _page_json(data: PageData) -> dict[str, Any]:
    site = data.site
    settings = site.settings
    return {"id": page_id(site),
            "name": clean(fill(settings.wording.page_title, instance=settings.instance), 200),
            "url": safe_url(site.page_url) or safe_url(site.instance_url) or "",
            "time_zone": clean(settings.timezone, 64),
            "updated_at": _iso_ms(data.checked_at if data.checked_at is not None
                                  else site.since)}


def _status_json(view: Overview) -> dict[str, str]:
    return {"indicator": view.indicator, "description": clean(view.description, 300)}


def _part_changed(part: str, data: PageData) -> float:
    """When a part's status last changed, as far as the bot knows."""
    latest = data.site.since
    incident = data.live.open_incident
    if incident is not None:
        touching = [a.since for a in incident.affected if part in parts_of(a.component)]
        if touching:
            return max(touching)
    for past in data.past.incidents:
        if any(part in parts_of(c) for c in past.components):
            latest = max(latest, past.resolved_at)
    return latest


def _components_json(data: PageData, view: Overview) -> list[dict[str, Any]]:
    words = data.site.settings.wording
    pid = page_id(data.site)
    return [{"id": f"{pid}-{part}", "name": clean(_part_name(part, words), 200),
             "status": status, "created_at": _iso_ms(data.site.since),
             "updated_at": _iso_ms(_part_changed(part, data)), "position": index + 1,
             "description": None, "showcase": False, "start_date": None, "group_id": None,
             "page_id": pid, "group": False, "only_show_if_degraded": False}
            for index, (part, status) in enumerate(view.parts)]


def _update_json(post: PagePost, status: str, incident_id: str) -> dict[str, Any]:
    # affected_components would list each part's old and new status per update,
    # which the bot does not keep per post: null, as Statuspage allows
    return {"id": clean(post.key, 200), "status": status, "body": clean(post.text.strip()),
            "incident_id": incident_id, "created_at": _iso_ms(post.at),
            "updated_at": _iso_ms(post.at), "display_at": _iso_ms(post.at),
            "affected_components": None, "deliver_notifications": True,
            "custom_tweet": None, "tweet_id": None}


def summary(data: PageData, now: float, view: Overview | None = None) -> dict[str, Any]:
    """Return ``summary.json``: page, components, unresolved incidents, maintenance, status."""
    view = view or overview(data, now)
    site = data.site
    words = site.settings.wording
    pid = page_id(site)
    components = _components_json(data, view)
    by_part = {c["id"].removeprefix(f"{pid}-"): c for c in components}
    link = safe_url(site.page_url) or ""
    incidents: list[dict[str, Any]] = []
    incident = data.live.open_incident
    if incident is not None:
        touched = sorted({p for a in incident.affected for p in parts_of(a.component)},
                         key=PARTS.index)
        affected = [by_part[p] for p in touched]
        posts = sorted(data.live.posts, key=lambda p: (p.at, p.key),
                       reverse=True)[:SHOWN_UPDATES]
        status = "identified" if incident.acknowledged or incident.manual else "investigating"
        impact = {"critical": "critical", "major": "major"}.get(view.indicator, "minor")
        incident_id = clean(incident.id, 200)
        incidents.append({
            "id": incident_id,
            "name": clean(incident_name(by_importance(incident.affected), words), 300),
            "status": status, "impact": impact, "created_at": _iso_ms(incident.opened_at),
            "updated_at": _iso_ms(max([incident.opened_at, *(p.at for p in posts)])),
            "monitoring_at": None, "resolved_at": None, "started_at": _iso_ms(incident.opened_at),
            "shortlink": (safe_url(posts[-1].url) if posts else None) or link,
            "page_id": pid,
            "incident_updates": [_update_json(p, status, incident_id) for p in posts],
            "components": affected})
    maintenances: list[dict[str, Any]] = []
    for window in _coming(data.live.maintenance, now):
        status = "in_progress" if window.start <= now else "scheduled"
        covered = [by_part[p] for p in PARTS if window.covers(p)]
        window_id = clean(window.id, 200)
        posts = sorted(window.posts, key=lambda p: (p.at, p.key), reverse=True)
        maintenances.append({
            "id": window_id, "name": clean(window.text, 300) or words.page_heading_maintenance,
            "status": status, "impact": "none",
            "created_at": _iso_ms(min([window.start, *(p.at for p in posts)])),
            "updated_at": _iso_ms(max([window.start, *(p.at for p in posts)])),
            "monitoring_at": None, "resolved_at": None, "shortlink": link, "page_id": pid,
            "scheduled_for": _iso_ms(window.start), "scheduled_until": _iso_ms(window.end),
            "started_at": _iso_ms(window.start),
            "incident_updates": [_update_json(p, status, window_id) for p in posts],
            "components": covered})
    return {"page": _page_json(data), "components": components, "incidents": incidents,
            "scheduled_maintenances": maintenances, "status": _status_json(view)}


def decode(files: Mapping[str, bytes]) -> dict[str, str]:
    """Return rendered files as text (for tests and tools)."""
    return {name: content.decode("utf-8") for name, content in files.items()}
