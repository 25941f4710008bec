"""Weekly digests for members and monthly reports for donors: figures from history, then text.

Pure: samples, incidents, job counts, ``covered_s`` and the window are
arguments; nothing reads the clock, the network, the environment or files (the
time zone database is consulted through ``zoneinfo`` to print local dates).
``bot.chart`` draws the donor chart from ``chart_data`` in a child process.

Two steps each. ``weekly_figures`` / ``monthly_figures`` aggregate plain data
into frozen figures (tested as tables); ``digest_text`` / ``report_text`` /
``alt_text`` turn figures into words that fit the instance's limits.

Observed time. ``covered_s`` is how much of the window the bot actually
watched (it was down, or the host was, for the rest). Availability is the
share of *observed* time without an open incident touching an area; the
unobserved share is reported as ``unknown_share`` and said in the text, never
counted as healthy. Incident time is capped at the observed time.

Areas. Members do not know components; availability is given per
member-facing area (``AREAS``, ``area_of``): ``queue:default`` and
``streaming`` are "timelines and notifications"; ``queue:push``,
``queue:ingress`` and ``queue:pull`` are "federation"; ``queue:mailers`` is
"emails"; ``web``, ``memory`` and ``swap`` are "the website and apps";
``redis`` and ``unserved:*`` (all background work stopped) touch every area;
``unserved:<queue>`` touches its queue's area. Other components
(``queue:scheduler``, ``queue:fasp``, ``dead``, unknown queues) touch no area:
their incidents are listed and counted, but no area loses availability.

Hosts. When the instance runs on several hosts (the history holds memory of
two or more in the month), the donor report gives memory used (mean and peak)
against provisioned for all of them together and for each (``HostFigures``),
and the chart a middle panel of it. Host names are the admin's words for the
servers; they may be shown to donors, always through ``neutral``. With one
host the wording is the single server's, as ever. Either way one sentence says
when a smaller server would have been enough (``advice.smaller_server``).

Words. Until ``bot.wording`` carries them, every text of this module is in
``ReportWording`` (``DEFAULT_REPORT_WORDING``); durations, month names and the
thousands separator come from ``Settings.wording``. Member and donor texts
speak of impact: no "Sidekiq", "Redis", "queue", "latency", "RSS" or "swap".
"""

from __future__ import annotations

import enum
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot import defaults
from bot.advice import SmallerServer, smaller_server
from bot.compose import Settings, mastodon_length, truncate
from bot.model import HostPoint, Point, plausible_bytes
from bot.wording import Wording, fill, neutral

AREA_WEB = "the website and apps"
AREA_TIMELINES = "timelines and notifications"
AREA_FEDERATION = "federation"
AREA_EMAILS = "emails"

AREAS = (AREA_WEB, AREA_TIMELINES, AREA_FEDERATION, AREA_EMAILS)
"""Member-facing areas, in the order the digest names them."""

_AREA_OF: Mapping[str, tuple[str, ...]] = {
    "queue:default": (AREA_TIMELINES,),
    "streaming": (AREA_TIMELINES,),
    "queue:push": (AREA_FEDERATION,),
    "queue:ingress": (AREA_FEDERATION,),
    "queue:pull": (AREA_FEDERATION,),
    "queue:mailers": (AREA_EMAILS,),
    "web": (AREA_WEB,),
    "memory": (AREA_WEB,),
    "swap": (AREA_WEB,),
    "redis": AREAS,
    "unserved:*": AREAS,
}


UNWATCHED_WHOLE = 0.999
"""An unknown share at least this large means the bot did not watch the period at all."""


def figures_unwatched(figures: MonthlyFigures) -> bool:
    """Return True when the bot watched none of the month (nothing can be said of it)."""
    return figures.unknown_share >= UNWATCHED_WHOLE


def area_of(component: str) -> tuple[str, ...]:
    """Return the member-facing areas an incident in ``component`` touches (maybe none)."""
    if component in _AREA_OF:
        return _AREA_OF[component]
    if component.startswith("unserved:"):
        return _AREA_OF.get("queue:" + component.removeprefix("unserved:"), ())
    return ()


# --- inputs -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClosedIncident:
    """An incident from history: when it opened and closed, what it touched, its peak (admin text).

    ``resolved_at`` None means it was still open at the end of the window.
    """

    id: str
    opened_at: float
    resolved_at: float | None
    components: tuple[str, ...]
    peak: str = ""


# --- figures ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AreaAvailability:
    """One area over the window: share of observed time working (None: nothing observed)."""

    area: str
    available: float | None
    down_s: float


@dataclass(frozen=True, slots=True)
class IncidentSummary:
    """An incident as reports tell it: whole duration, time inside the window, areas touched."""

    id: str
    opened_at: float
    resolved_at: float | None
    duration_s: float
    in_window_s: float
    areas: tuple[str, ...]
    components: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Trend:
    """Compare this week with the previous one (None where either side is unknown)."""

    jobs_change: float | None
    """Relative change of jobs processed: 0.08 is 8 % more; None when last week had none."""
    incident_time_change_s: float
    """Incident time this week minus last week's, in seconds."""
    previous_incident_time_s: float


@dataclass(frozen=True, slots=True)
class WeeklyFigures:
    """Everything the member digest says, as numbers."""

    start: float
    end: float
    covered_s: float
    unknown_share: float
    areas: tuple[AreaAvailability, ...]
    incidents: tuple[IncidentSummary, ...]
    incident_time_s: float
    worst_delay_s: float | None
    jobs_processed: int | None
    trend: Trend | None


class Sizing(enum.Enum):
    """Whether the provisioned memory fits what the month used at its peak."""

    RIGHT = "right size"
    SMALLER = "could be smaller"
    TIGHT = "tight"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class HostFigures:
    """One host's memory over the month (or all hosts together), in bytes.

    ``name`` is as the history keeps it (neutralise before showing; empty for
    the total). ``watched_share`` is the part of the month with readings (0-1).
    ``smaller`` is a smaller server size that would have been enough, if any.
    """

    name: str
    mean_bytes: float
    peak_bytes: float
    total_bytes: float
    watched_share: float
    smaller: SmallerServer | None = None


@dataclass(frozen=True, slots=True)
class MonthlyFigures:
    """Everything the donor report and its chart say, as numbers (series kept for the chart)."""

    start: float
    end: float
    covered_s: float
    unknown_share: float
    memory_mean_bytes: float | None
    memory_peak_bytes: float | None
    memory_total_bytes: int
    sizing: Sizing
    cpu_mean_percent: float | None
    cpu_peak_percent: float | None
    disk_used_percent: float | None
    latency_peak_s: float | None
    latency_peak_at: float | None
    latency_mean_s: float | None
    jobs_processed: int | None
    incidents: tuple[IncidentSummary, ...]
    incident_time_s: float
    available: float | None
    monthly_cost: float | None
    currency: str
    active_members: int | None
    cost_per_member: float | None
    donation_url: str | None
    memory_series: tuple[Point, ...] = ()
    latency_series: tuple[Point, ...] = ()
    longest_incident_s: float = 0.0
    """The longest incident's time inside the month (as ``History.incident_stats`` counts it)."""
    hosts: tuple[HostFigures, ...] = ()
    """Each host's memory, by name, when the month saw two or more hosts (else empty)."""
    hosts_total: HostFigures | None = None
    """All hosts together (means and provisioned summed, the peak of the summed readings)."""
    smaller_server: SmallerServer | None = None
    """With one host: a smaller server size that would have been enough, if any."""

    @property
    def memory_mean_share(self) -> float | None:
        """Mean memory used as a share of provisioned (0-1)."""
        return _share(self.memory_mean_bytes, self.memory_total_bytes)

    @property
    def memory_peak_share(self) -> float | None:
        """Peak memory used as a share of provisioned (0-1)."""
        return _share(self.memory_peak_bytes, self.memory_total_bytes)


# --- aggregation --------------------------------------------------------------------------


def weekly_figures(start: float, end: float, incidents: Iterable[ClosedIncident],
                   covered_s: float, worst_delay_s: float | None,
                   jobs_by_day: Mapping[str, int],
                   previous: WeeklyFigures | None) -> WeeklyFigures:
    """Aggregate one week (``start``-``end``, epoch seconds) for the member digest.

    ``covered_s`` is the observed part of the window; ``jobs_by_day`` maps the
    window's days (YYYY-MM-DD, chosen by the caller) to jobs processed; an
    empty map means unknown. ``previous`` (last week's figures) gives the trend.
    """
    window = max(0.0, end - start)
    covered = min(max(0.0, covered_s), window)
    summaries = _summaries(incidents, start, end)
    areas = tuple(_availability(area, summaries, covered) for area in AREAS)
    incident_time = min(covered, _union(_spans(summaries)))
    jobs = sum(jobs_by_day.values()) if jobs_by_day else None
    trend = None
    if previous is not None:
        change = None
        if jobs is not None and previous.jobs_processed:
            change = jobs / previous.jobs_processed - 1
        trend = Trend(change, incident_time - previous.incident_time_s,
                      previous.incident_time_s)
    return WeeklyFigures(start=start, end=end, covered_s=covered,
                         unknown_share=_unknown(covered, window), areas=areas,
                         incidents=summaries, incident_time_s=incident_time,
                         worst_delay_s=worst_delay_s, jobs_processed=jobs, trend=trend)


def monthly_figures(start: float, end: float, memory_used: Sequence[Point],
                    memory_total_bytes: int, cpu: Sequence[Point],
                    disk_used_percent: float | None, latency: Sequence[Point],
                    incidents: Iterable[ClosedIncident], jobs_by_day: Mapping[str, int],
                    monthly_cost: float | None, currency: str, active_members: int | None,
                    donation_url: str | None, covered_s: float,
                    hosts: Mapping[str, Sequence[HostPoint]] | None = None,
                    interval: float = defaults.INTERVAL) -> MonthlyFigures:
    """Aggregate one month for the donor report and its chart.

    Means are weighted by each bucket's sample count; peaks are the largest
    bucket maximum. The sizing verdict compares the peak with
    ``defaults.REPORT_SMALLER_BELOW`` and ``defaults.REPORT_TIGHT_ABOVE``.
    The cost per member needs both the cost and a positive member count.
    ``hosts`` is each host's memory (``History.host_series``; ``interval`` the
    seconds a sample stands for): figures per host and in total when two or
    more hosts have readings in the month (see ``host_figures``).
    """
    window = max(0.0, end - start)
    covered = min(max(0.0, covered_s), window)
    memory = _inside(memory_used, start, end)
    lat = _inside(latency, start, end)
    per_host, total = host_figures(hosts or {}, start, end, interval)
    peak_memory = _peak(memory)
    summaries = _summaries(incidents, start, end)
    incident_time = min(covered, _union(_spans(summaries)))
    worst = max((p for p in lat if p.count > 0), key=lambda p: p.max, default=None)
    cost_per_member = None
    if monthly_cost is not None and active_members:
        cost_per_member = monthly_cost / active_members
    return MonthlyFigures(
        start=start, end=end, covered_s=covered, unknown_share=_unknown(covered, window),
        memory_mean_bytes=_mean(memory), memory_peak_bytes=peak_memory,
        memory_total_bytes=memory_total_bytes,
        sizing=sizing(peak_memory, memory_total_bytes),
        cpu_mean_percent=_mean(_inside(cpu, start, end)),
        cpu_peak_percent=_peak(_inside(cpu, start, end)),
        disk_used_percent=disk_used_percent,
        latency_peak_s=None if worst is None else worst.max,
        latency_peak_at=None if worst is None else worst.at,
        latency_mean_s=_mean(lat),
        jobs_processed=sum(jobs_by_day.values()) if jobs_by_day else None,
        incidents=summaries, incident_time_s=incident_time,
        available=None if covered <= 0 else (covered - incident_time) / covered,
        monthly_cost=monthly_cost, currency=currency, active_members=active_members,
        cost_per_member=cost_per_member, donation_url=donation_url,
        memory_series=memory, latency_series=lat,
        longest_incident_s=max((s.in_window_s for s in summaries), default=0.0),
        hosts=per_host, hosts_total=total,
        smaller_server=None if per_host else smaller_server(peak_memory, memory_total_bytes))


def host_figures(hosts: Mapping[str, Sequence[HostPoint]], start: float, end: float,
                 interval: float = defaults.INTERVAL,
                 ) -> tuple[tuple[HostFigures, ...], HostFigures | None]:
    """Return each host's memory figures (by name) and all hosts' together, for ``start``-``end``.

    Only points inside the window with finite sizes from 0 to ``defaults.HOST_BYTES_MAX``
    count; a host left without any is not listed. At most ``defaults.HOSTS_MAX``
    hosts. The total is None with fewer than two hosts: its mean and
    provisioned are the hosts' summed, its peak the largest sum of the hosts'
    peaks read at the same time.
    """
    window = max(0.0, end - start)
    found: list[HostFigures] = []
    peaks_at: dict[float, float] = {}
    for name in sorted(hosts)[:max(0, 4 * defaults.HOSTS_MAX)]:
        points = [p for p in hosts[name] if start <= p.at < end and p.count > 0
                  and plausible_bytes(p.min, p.mean, p.max, p.total)]
        if not points:
            continue
        weight = sum(p.count for p in points)
        mean = sum(p.mean * p.count for p in points) / weight
        peak = max(p.max for p in points)
        provisioned = max(p.total for p in points)
        watched = 0.0 if window <= 0 else min(1.0, weight * max(0.0, interval) / window)
        found.append(HostFigures(name, mean, peak, provisioned, watched,
                                 smaller_server(peak, provisioned)))
        for p in points:
            peaks_at[p.at] = peaks_at.get(p.at, 0.0) + p.max
        if len(found) >= defaults.HOSTS_MAX:
            break
    if len(found) < 2:
        return (), None
    together = HostFigures("", sum(h.mean_bytes for h in found), max(peaks_at.values()),
                           sum(h.total_bytes for h in found),
                           max(h.watched_share for h in found))
    return tuple(found), together


def sizing(peak_bytes: float | None, total_bytes: int) -> Sizing:
    """Return the sizing verdict for a memory peak against what is provisioned."""
    share = _share(peak_bytes, total_bytes)
    if share is None:
        return Sizing.UNKNOWN
    if share > defaults.REPORT_TIGHT_ABOVE:
        return Sizing.TIGHT
    if share < defaults.REPORT_SMALLER_BELOW:
        return Sizing.SMALLER
    return Sizing.RIGHT


def _summaries(incidents: Iterable[ClosedIncident], start: float,
               end: float) -> tuple[IncidentSummary, ...]:
    """Incidents overlapping the window, oldest first, with their time inside it."""
    found: list[IncidentSummary] = []
    for item in incidents:
        closed = end if item.resolved_at is None else item.resolved_at
        inside = min(closed, end) - max(item.opened_at, start)
        if inside <= 0 and not (start <= item.opened_at < end):
            continue
        areas = tuple(area for area in AREAS
                      if any(area in area_of(c) for c in item.components))
        found.append(IncidentSummary(
            id=item.id, opened_at=item.opened_at, resolved_at=item.resolved_at,
            duration_s=max(0.0, closed - item.opened_at), in_window_s=max(0.0, inside),
            areas=areas, components=item.components))
    return tuple(sorted(found, key=lambda s: (s.opened_at, s.id)))


def _spans(summaries: Iterable[IncidentSummary], area: str | None = None,
           ) -> list[tuple[float, float]]:
    """Each incident's stretch inside the window (only those touching ``area`` if given)."""
    spans = []
    for item in summaries:
        if area is not None and area not in item.areas:
            continue
        closed = item.opened_at + item.duration_s
        spans.append((max(item.opened_at, closed - item.in_window_s), closed))
    return spans


def _union(spans: Iterable[tuple[float, float]]) -> float:
    """Total length covered by possibly overlapping spans."""
    total = 0.0
    reach = -math.inf
    for begin, finish in sorted(spans):
        begin = max(begin, reach)
        if finish > begin:
            total += finish - begin
            reach = finish
    return total


def _availability(area: str, summaries: Sequence[IncidentSummary],
                  covered: float) -> AreaAvailability:
    down = min(covered, _union(_spans(summaries, area)))
    return AreaAvailability(area, None if covered <= 0 else (covered - down) / covered, down)


def _unknown(covered: float, window: float) -> float:
    return 0.0 if window <= 0 else 1 - covered / window


def _inside(points: Sequence[Point], start: float, end: float) -> tuple[Point, ...]:
    return tuple(sorted((p for p in points if start <= p.at < end), key=lambda p: p.at))


def _mean(points: Iterable[Point]) -> float | None:
    weight = 0
    total = 0.0
    for point in points:
        if point.count > 0:
            weight += point.count
            total += point.mean * point.count
    return None if weight == 0 else total / weight


def _peak(points: Iterable[Point]) -> float | None:
    return max((p.max for p in points if p.count > 0), default=None)


def _share(part: float | None, whole: float) -> float | None:
    return None if part is None or whole <= 0 else part / whole


# --- words --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReportWording:
    """Templates of the weekly digest, the monthly report and the chart's alt text.

    Placeholders are ``{name}``; see each default for the ones it uses.
    """

    digest_quiet: str = "{week} on {instance}: everything worked normally{unwatched}."
    digest_unwatched: str = "{week} on {instance}: I was not watching, so I cannot say how it went."
    digest_trouble: str = ("{week} on {instance}: {count} {disruptions}, "
                           "{duration} in total{unwatched}.")
    disruption_one: str = "disruption"
    disruption_many: str = "disruptions"
    unwatched: str = " (not watched for {duration}, {percent} of the time: unknown)"
    availability: str = "Working normally, of the time watched: {areas}."
    availability_area: str = "{area} {percent}"
    incident_line: str = "• {time}, {duration}: {areas}"
    incident_other: str = "other background work"
    incidents_omitted: str = "• and {count} more"
    worst_delay: str = "At worst, things ran about {duration} late."
    jobs: str = "{count} background tasks done{trend}."
    jobs_trend_more: str = " ({percent} more than last week)"
    jobs_trend_fewer: str = " ({percent} fewer than last week)"
    jobs_trend_same: str = " (as many as last week)"
    trend_less: str = "Less disruption than last week ({duration} then)."
    trend_more: str = "More disruption than last week ({duration} then)."
    trend_none_then: str = "Last week had no disruption."
    report_lead: str = "{month} on {instance}: what your support runs."
    report_memory: str = ("Memory: {mean} used on average, {peak} at most, of {total} "
                          "({sizing}).")
    sizing_right: str = "the server is the right size"
    sizing_smaller: str = "the server could be smaller"
    sizing_tight: str = "the server is tight on memory"
    report_memory_hosts: str = ("Memory of our {count} servers together: {mean} used on "
                                "average, {peak} at most, of {total}.")
    report_memory_host: str = "• {host}: {mean} on average, {peak} at most, of {total}{watched}."
    report_host_watched: str = " (readings for {percent} of the month)"
    report_smaller: str = ("Peak memory use was {peak} of {total}: a server with {size} would "
                           "have been enough, leaving {left}.")
    report_smaller_host: str = ("Peak memory use on {host} was {peak} of {total}: a server with "
                                "{size} would have been enough, leaving {left}.")
    report_server_size: str = "{amount} GiB"
    report_cpu: str = "Processor: {mean} busy on average, {peak} at most."
    report_disk: str = "Disk: {percent} full."
    report_work: str = "{count} background tasks done."
    report_quiet: str = "No disruptions{unwatched}."
    report_unwatched: str = ("I was not watching this month, so I cannot say whether it "
                             "was disrupted.")
    report_trouble: str = ("{count} {disruptions}, {duration} in total{longest}; working "
                           "normally {percent} of the time watched{unwatched}.")
    report_longest: str = " (the longest {duration})"
    report_cost: str = "Running costs: {cost} a month, {per_member} per active member ({members})."
    report_cost_only: str = "Running costs: {cost} a month."
    report_donate: str = "Support us: {url}"
    alt_lead: str = "Chart of {month} on {instance}, in two panels."
    alt_memory: str = ("Top: memory used over the month, average {mean}, peak {peak}, against "
                       "{total} provisioned (the horizontal line); {sizing}.")
    alt_memory_none: str = "Top: memory used; no readings this month."
    alt_lead_hosts: str = "Chart of {month} on {instance}, in three panels."
    alt_memory_local: str = ("Top: memory used on the server the bot runs on, average {mean}, "
                             "peak {peak}, against {total} provisioned (the horizontal line).")
    alt_hosts: str = ("Middle: memory of each server, used at most and on average against "
                      "provisioned: {hosts}; all together {peak} at most of {total}.")
    alt_host: str = "{host} {peak} at most, {mean} on average, of {total}"

    alt_wait: str = ("Bottom: how long background work waited, at worst {peak} on {when}, "
                     "{mean} on average.")
    alt_wait_none: str = "Bottom: how long background work waited; no readings this month."
    alt_gap: str = "Gaps in the lines are times the bot was not watching ({percent} of the month)."


DEFAULT_REPORT_WORDING = ReportWording()
"""The English texts of reports."""

MAX_INCIDENT_LINES = 5
"""Incidents listed one per line in the digest; the rest are counted."""


def digest_text(figures: WeeklyFigures, settings: Settings,
                words: ReportWording = DEFAULT_REPORT_WORDING) -> str:
    """Return the weekly member digest, within ``settings.max_characters``.

    A week without incidents is one or two lines: that all worked (and how
    much of the week the bot did not watch), then tasks done with the trend.
    """
    common = settings.wording
    zone = _zone(settings.timezone)
    week = _span_label(figures.start, figures.end, zone, common)
    unwatched = _unwatched(figures.unknown_share, figures.end - figures.start, words, common)
    trend = figures.trend
    jobs_line = ""
    if figures.jobs_processed is not None:
        trend_words = ""
        if trend is not None and trend.jobs_change is not None:
            percent = _percent(abs(trend.jobs_change), whole=True)
            trend_words = (words.jobs_trend_same if percent == "0%" else fill(
                words.jobs_trend_more if trend.jobs_change > 0 else words.jobs_trend_fewer,
                percent=percent))
        jobs_line = fill(words.jobs, count=_count(figures.jobs_processed, common),
                         trend=trend_words)
    delay_line = ""
    if figures.worst_delay_s is not None and figures.worst_delay_s >= 60:
        delay_line = fill(words.worst_delay, duration=_duration(figures.worst_delay_s, common))
    if not figures.incidents:
        second = " ".join(filter(None, [jobs_line, delay_line]))
        quiet = (words.digest_unwatched if figures.unknown_share >= UNWATCHED_WHOLE
                 else words.digest_quiet)
        lines = [fill(quiet, week=week, instance=settings.instance, unwatched=unwatched), second]
        return _fit([(line, True) for line in lines], settings)
    count = len(figures.incidents)
    head = fill(words.digest_trouble, week=week, instance=settings.instance, count=str(count),
                disruptions=words.disruption_one if count == 1 else words.disruption_many,
                duration=_duration(figures.incident_time_s, common), unwatched=unwatched)
    areas = words.availability_area
    shown = [fill(areas, area=a.area, percent=_percent(a.available))
             for a in figures.areas if a.available is not None]
    availability = fill(words.availability, areas=", ".join(shown)) if shown else ""
    listed = [fill(words.incident_line, time=_day_time(i.opened_at, zone, common),
                   duration=_duration(i.duration_s, common),
                   areas=", ".join(i.areas) or words.incident_other)
              for i in figures.incidents[:MAX_INCIDENT_LINES]]
    if count > MAX_INCIDENT_LINES:
        listed.append(fill(words.incidents_omitted, count=str(count - MAX_INCIDENT_LINES)))
    trend_line = ""
    if trend is not None:
        if trend.previous_incident_time_s <= 0:
            trend_line = words.trend_none_then
        elif trend.incident_time_change_s != 0:
            trend_line = fill(words.trend_less if trend.incident_time_change_s < 0
                              else words.trend_more,
                              duration=_duration(trend.previous_incident_time_s, common))
    return _fit([(head, True), (availability, True), *((line, False) for line in listed),
                 (delay_line, True), (jobs_line, True), (trend_line, False)], settings)


def report_text(figures: MonthlyFigures, settings: Settings,
                words: ReportWording = DEFAULT_REPORT_WORDING) -> str:
    """Return the monthly donor report, within ``settings.max_characters``.

    The donation link (when configured) always stays as the last line; the
    rest is cut first when the instance's limit is small.
    """
    common = settings.wording
    zone = _zone(settings.timezone)
    month = _month_label(figures.start, zone, common)
    unwatched = _unwatched(figures.unknown_share, figures.end - figures.start, words, common)
    lines = [fill(words.report_lead, month=month, instance=settings.instance)]
    optional: list[str] = []
    total = figures.hosts_total
    if figures.hosts and total is not None:
        lines.append(fill(words.report_memory_hosts, count=str(len(figures.hosts)),
                          mean=_bytes(total.mean_bytes), peak=_bytes(total.peak_bytes),
                          total=_bytes(total.total_bytes)))
        for host in figures.hosts:
            watched = ("" if host.watched_share >= HOST_WATCHED_WHOLE else
                       fill(words.report_host_watched,
                            percent=_percent(host.watched_share, whole=True)))
            optional.append(fill(words.report_memory_host, host=_host_name(host.name),
                                 mean=_bytes(host.mean_bytes), peak=_bytes(host.peak_bytes),
                                 total=_bytes(host.total_bytes), watched=watched))
        optional += [_smaller_text(host.smaller, words, host=_host_name(host.name))
                     for host in figures.hosts if host.smaller is not None]
    elif figures.memory_mean_bytes is not None and figures.memory_peak_bytes is not None:
        lines.append(fill(words.report_memory, mean=_bytes(figures.memory_mean_bytes),
                          peak=_bytes(figures.memory_peak_bytes),
                          total=_bytes(figures.memory_total_bytes),
                          sizing=_sizing_words(figures.sizing, words)))
        if figures.smaller_server is not None:
            optional.append(_smaller_text(figures.smaller_server, words))
    if figures.cpu_mean_percent is not None and figures.cpu_peak_percent is not None:
        lines.append(fill(words.report_cpu, mean=_percent(figures.cpu_mean_percent / 100, True),
                          peak=_percent(figures.cpu_peak_percent / 100, True)))
    if figures.disk_used_percent is not None:
        lines.append(fill(words.report_disk,
                          percent=_percent(figures.disk_used_percent / 100, True)))
    if figures.jobs_processed is not None:
        lines.append(fill(words.report_work, count=_count(figures.jobs_processed, common)))
    count = len(figures.incidents)
    if count:
        lines.append(fill(words.report_trouble, count=str(count),
                          disruptions=words.disruption_one if count == 1
                          else words.disruption_many,
                          duration=_duration(figures.incident_time_s, common),
                          longest="" if count < 2 else fill(
                              words.report_longest,
                              duration=_duration(figures.longest_incident_s, common)),
                          percent=_percent(figures.available), unwatched=unwatched))
    else:
        lines.append(words.report_unwatched if figures_unwatched(figures)
                     else fill(words.report_quiet, unwatched=unwatched))
    if figures.monthly_cost is not None:
        cost = _money(figures.monthly_cost, figures.currency)
        if figures.cost_per_member is not None and figures.active_members is not None:
            lines.append(fill(words.report_cost, cost=cost,
                              per_member=_money(figures.cost_per_member, figures.currency),
                              members=_count(figures.active_members, common)))
        else:
            lines.append(fill(words.report_cost_only, cost=cost))
    tail = fill(words.report_donate, url=figures.donation_url) if figures.donation_url else ""
    # the memory detail goes right after the memory line; when the limit is short it is
    # what goes first (the last of it first), the required lines stay
    return _fit([(line, True) for line in lines[:2]] + [(line, False) for line in optional]
                + [(line, True) for line in lines[2:]], settings, tail=tail)


def alt_text(figures: MonthlyFigures, limit: int = defaults.INSTANCE_DESCRIPTION_LIMIT,
             settings: Settings | None = None,
             words: ReportWording = DEFAULT_REPORT_WORDING) -> str:
    """Return the chart's description: the same facts as the chart, in words, within ``limit``.

    ``limit`` is the instance's ``description_limit`` (plain characters).
    """
    settings = settings or Settings()
    common = settings.wording
    zone = _zone(settings.timezone)
    month = _month_label(figures.start, zone, common)
    several = bool(figures.hosts) and figures.hosts_total is not None
    lines = [fill(words.alt_lead_hosts if several else words.alt_lead, month=month,
                  instance=settings.instance)]
    if figures.memory_mean_bytes is not None and figures.memory_peak_bytes is not None:
        lines.append(fill(words.alt_memory_local if several else words.alt_memory,
                          mean=_bytes(figures.memory_mean_bytes),
                          peak=_bytes(figures.memory_peak_bytes),
                          total=_bytes(figures.memory_total_bytes),
                          sizing=_sizing_words(figures.sizing, words)))
    else:
        lines.append(words.alt_memory_none)
    if several and figures.hosts_total is not None:
        lines.append(fill(words.alt_hosts, hosts="; ".join(
            fill(words.alt_host, host=_host_name(h.name), peak=_bytes(h.peak_bytes),
                 mean=_bytes(h.mean_bytes), total=_bytes(h.total_bytes))
            for h in figures.hosts), peak=_bytes(figures.hosts_total.peak_bytes),
            total=_bytes(figures.hosts_total.total_bytes)))
    if figures.latency_peak_s is not None and figures.latency_peak_at is not None:
        lines.append(fill(words.alt_wait, peak=_duration(figures.latency_peak_s, common),
                          when=_day_time(figures.latency_peak_at, zone, common),
                          mean=_duration(figures.latency_mean_s or 0.0, common)))
    else:
        lines.append(words.alt_wait_none)
    if figures.unknown_share > 0:
        lines.append(fill(words.alt_gap, percent=_percent(figures.unknown_share, whole=True)))
    return truncate(" ".join(lines), limit, len)


def chart_data(figures: MonthlyFigures, settings: Settings | None = None) -> dict[str, Any]:
    """Return what ``bot.chart`` draws, as JSON-ready data (a gap becomes a null point).

    Keys: ``title``, ``timezone``, ``memory`` (``at``, ``mean``, ``max`` in
    bytes), ``provisioned_bytes``, ``latency`` (``at``, ``max`` in seconds),
    ``start`` and ``end`` (epoch seconds), ``hosts`` (a list, empty with one
    host: ``name`` neutralised, ``mean``, ``peak``, ``provisioned`` in bytes)
    and ``hosts_total`` (``mean``, ``peak``, ``provisioned``; None with one host).
    """
    settings = settings or Settings()
    zone = _zone(settings.timezone)
    memory = _with_gaps(figures.memory_series)
    latency = _with_gaps(figures.latency_series)
    return {
        "title": f"{_month_label(figures.start, zone, settings.wording)} · {settings.instance}",
        "timezone": settings.timezone,
        "start": figures.start,
        "end": figures.end,
        "provisioned_bytes": figures.memory_total_bytes,
        "memory": {"at": [at for at, _ in memory],
                   "mean": [None if p is None else p.mean for _, p in memory],
                   "max": [None if p is None else p.max for _, p in memory]},
        "latency": {"at": [at for at, _ in latency],
                    "max": [None if p is None else p.max for _, p in latency]},
        "hosts": [{"name": _host_name(h.name), "mean": h.mean_bytes, "peak": h.peak_bytes,
                   "provisioned": h.total_bytes} for h in figures.hosts],
        "hosts_total": None if not figures.hosts or figures.hosts_total is None else {
            "mean": figures.hosts_total.mean_bytes, "peak": figures.hosts_total.peak_bytes,
            "provisioned": figures.hosts_total.total_bytes},
    }


def _with_gaps(points: Sequence[Point]) -> list[tuple[float, Point | None]]:
    """Return the points with a None after each step longer than the gap factor times usual."""
    kept = [p for p in points if p.count > 0]
    if len(kept) < 2:
        return [(p.at, p) for p in kept]
    steps = sorted(b.at - a.at for a, b in itertools.pairwise(kept))
    usual = steps[len(steps) // 2]
    out: list[tuple[float, Point | None]] = [(kept[0].at, kept[0])]
    for before, point in itertools.pairwise(kept):
        if point.at - before.at > usual * defaults.REPORT_GAP_FACTOR:
            out.append((before.at + usual, None))
        out.append((point.at, point))
    return out


# --- formatting ---------------------------------------------------------------------------


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ValueError, OSError, KeyError):
        return ZoneInfo("UTC")


def _month_name(month: int, words: Wording) -> str:
    return words.months[month - 1] if len(words.months) == 12 else str(month)


def _span_label(start: float, end: float, zone: ZoneInfo, words: Wording) -> str:
    """Return the days of a window, "4-10 May" or "28 Apr-4 May" (its end is exclusive)."""
    first = datetime.fromtimestamp(start, zone)
    last = datetime.fromtimestamp(max(start, end - 1), zone)
    if (first.year, first.month) == (last.year, last.month):
        return f"{first.day}\N{EN DASH}{last.day} {_month_name(last.month, words)}"
    return (f"{first.day} {_month_name(first.month, words)}\N{EN DASH}"
            f"{last.day} {_month_name(last.month, words)}")


def _month_label(start: float, zone: ZoneInfo, words: Wording) -> str:
    # the middle of the first day names the month even if the window starts at a zone edge
    moment = datetime.fromtimestamp(start, zone) + timedelta(hours=12)
    return f"{_month_name(moment.month, words)} {moment.year}"


def _day_time(moment: float, zone: ZoneInfo, words: Wording) -> str:
    local = datetime.fromtimestamp(moment, zone)
    name = local.tzname() or "UTC"
    if name[:1] in "+-":
        name = "UTC" + name
    return f"{local.day} {_month_name(local.month, words)} {local:%H:%M} {name}"


def _duration(seconds: float, words: Wording) -> str:
    """Whole minutes for people: "45 min", "1 h 20 min", "2 d 3 h"."""
    minutes = round(max(0.0, seconds) / 60)
    if minutes < 1:
        return words.under_a_minute
    days, rest = divmod(minutes, 1440)
    hours, minutes = divmod(rest, 60)
    parts = [(days, words.unit_day), (hours, words.unit_hour), (minutes, words.unit_minute)]
    return " ".join([f"{amount} {unit}" for amount, unit in parts if amount][:2])


def _percent(share: float | None, whole: bool = False) -> str:
    """Return a share as people read it; never rounds up to 100 % (99.96 % is "99.9%")."""
    if share is None:
        return "unknown"
    if whole:
        value = round(share * 100)
        if value == 100 and share < 1:
            value = 99
        return f"{value}%"
    tenths = math.floor(share * 1000 + 1e-9) / 10
    return f"{tenths:.0f}%" if tenths == int(tenths) else f"{tenths:.1f}%"


def _count(number: int, words: Wording) -> str:
    return f"{number:,}".replace(",", words.thousands_separator)


def _bytes(amount: float) -> str:
    if amount >= 1 << 30:
        return f"{amount / (1 << 30):.1f} GiB"
    return f"{amount / (1 << 20):.0f} MiB"


HOST_WATCHED_WHOLE = 0.95
"""A host with readings for at least this share of the month is not said to be partly read."""

HOST_NAME_SHOWN = 32
"""Most characters of a host name shown in a report or on the chart."""


def _host_name(name: str) -> str:
    """Return a host name as donors see it: neutral (no mention, link, control character)."""
    return neutral(name, HOST_NAME_SHOWN) or "?"


def _smaller_text(server: SmallerServer, words: ReportWording, host: str = "") -> str:
    return fill(words.report_smaller_host if host else words.report_smaller, host=host,
                peak=_bytes(server.peak_bytes), total=_bytes(server.total_bytes),
                size=fill(words.report_server_size, amount=str(server.size_gb)),
                left=_bytes(server.left_bytes))


def _money(amount: float, currency: str) -> str:
    return f"{amount:.2f} {currency}".strip()


def _sizing_words(verdict: Sizing, words: ReportWording) -> str:
    return {Sizing.RIGHT: words.sizing_right, Sizing.SMALLER: words.sizing_smaller,
            Sizing.TIGHT: words.sizing_tight, Sizing.UNKNOWN: ""}[verdict]


def _unwatched(unknown_share: float, window: float, words: ReportWording,
               common: Wording) -> str:
    if unknown_share * window < 60:
        return ""
    return fill(words.unwatched, duration=_duration(unknown_share * window, common),
                percent=_percent(unknown_share, whole=True))


def _fit(lines: Sequence[tuple[str, bool]], settings: Settings, tail: str = "") -> str:
    """Join the (text, required) ``lines`` in order and keep ``tail`` last, within the limit.

    Optional lines are dropped, the last first, until the text fits; when even
    the required ones do not, they are cut at a word boundary with "…". The
    tail (a link) is never cut.
    """
    def measure(text: str) -> int:
        return mastodon_length(text, settings.characters_per_url)

    budget = settings.max_characters - (measure("\n" + tail) if tail else 0)
    kept = [(text, required) for text, required in lines if text]
    while measure("\n".join(text for text, _ in kept)) > budget:
        optional = [i for i, (_, required) in enumerate(kept) if not required]
        if not optional:
            break
        del kept[optional[-1]]
    body = truncate("\n".join(text for text, _ in kept), budget, measure)
    return "\n".join(filter(None, [body, tail]))


