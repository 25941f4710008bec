"""Gather the reports' inputs (history, Sidekiq's daily counters) and say when one is due.

``bot.report`` computes figures and texts from plain data; this module fetches
that data and turns it into posts. The weekly digest's key names its ISO week
(``digest:2026-W48``), the monthly report's its month (``report:2026-11``),
so each is published once whoever asks and however often.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from bot import compose, defaults, report
from bot.config import ReportsConfig
from bot.history import History
from bot.model import Incident, Point, Post, PostKind

log = logging.getLogger(__name__)

WEEK = 7 * 86400.0
DailyCounters = Callable[[int, date], Mapping[str, tuple[int, int]]]
"""``SidekiqReader.daily_counters``: (days, today) → {day: (processed, failed)}."""


@dataclass(frozen=True, slots=True)
class Due:
    """A report that is due: its window (epoch seconds) and its stable key."""

    kind: str  # "weekly" or "monthly"
    start: float
    end: float
    key: str


def last_weekly(now: float, slot: tuple[int, int], tz: str) -> Due:
    """Return the latest weekly slot at or before ``now``: the 7 days before it."""
    zone = ZoneInfo(tz)
    local = datetime.fromtimestamp(now, zone)
    weekday, minutes = slot
    candidate = local.replace(hour=minutes // 60, minute=minutes % 60, second=0, microsecond=0)
    candidate -= timedelta(days=(local.weekday() - weekday) % 7)
    if candidate > local:
        candidate -= timedelta(days=7)
    end = candidate.timestamp()
    year, week, _ = datetime.fromtimestamp(end - WEEK, zone).isocalendar()
    return Due("weekly", end - WEEK, end, f"digest:{year}-W{week:02d}")


def last_monthly(now: float, slot: tuple[int, int], tz: str) -> Due:
    """Return the latest monthly slot at or before ``now``: the previous calendar month."""
    zone = ZoneInfo(tz)
    local = datetime.fromtimestamp(now, zone)
    day, minutes = slot
    candidate = local.replace(day=day, hour=minutes // 60, minute=minutes % 60, second=0,
                              microsecond=0)
    if candidate > local:
        candidate = (candidate.replace(day=1) - timedelta(days=1)).replace(day=day)
    month_end = candidate.replace(day=1, hour=0, minute=0)
    month_start = (month_end - timedelta(days=1)).replace(day=1)
    return Due("monthly", month_start.timestamp(), month_end.timestamp(),
               f"report:{month_start:%Y-%m}")


def skip_reason(due: Due, first_start: float | None, covered_s: float,
                min_watched: float = defaults.REPORT_MIN_WATCHED) -> str | None:
    """Return why ``due`` must not be posted, or None when it may be.

    Not posted: a period that ended before the bot's first start
    (``first_start``, None when unknown), or one of which the bot watched less
    than ``min_watched`` (``covered_s`` seconds of it were watched).
    """
    window = due.end - due.start
    if first_start is not None and due.end <= first_start:
        return "its period ended before the bot first started"
    watched = covered_s if math.isfinite(covered_s) else 0.0
    share = 0.0 if window <= 0 else min(1.0, max(0.0, watched) / window)
    if share < min_watched:
        return (f"the bot watched {share:.0%} of its period "
                f"(at least {min_watched:.0%} is needed)")
    return None


def chart_file(directory: Path, due: Due) -> Path:
    """Return where the chart of ``due`` is drawn (kept next to the state)."""
    return directory / f"{due.key.replace(':', '-')}.png"


def _days(start: float, end: float) -> list[str]:
    """Return the UTC days (Sidekiq's counter keys) that fall in ``start``-``end``."""
    first = datetime.fromtimestamp(start, ZoneInfo("UTC")).date()
    last = datetime.fromtimestamp(end - 1, ZoneInfo("UTC")).date()
    return [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]


def _points(history: History, metric: str, start: float, end: float) -> list[Point]:
    return history.series(metric, start, end)


def _incidents(history: History, open_incident: Incident | None, start: float,
               end: float) -> list[report.ClosedIncident]:
    closed = [report.ClosedIncident(i.id, i.opened_at, i.resolved_at, i.components,
                                    i.peak.name.lower())
              for i in history.incidents_between(start, end)]
    if open_incident is not None and open_incident.opened_at < end:
        closed.append(report.ClosedIncident(
            open_incident.id, open_incident.opened_at, None,
            tuple(a.component for a in open_incident.affected),
            open_incident.peak.name.lower()))
    return closed


def _jobs(daily: DailyCounters, start: float, end: float,
          now: float) -> dict[str, int]:
    days = _days(start, end)
    today = datetime.fromtimestamp(now, ZoneInfo("UTC")).date()
    wanted = (today - date.fromisoformat(days[0])).days + 1
    counters = daily(max(1, wanted), today)
    return {day: counters[day][0] for day in days if day in counters}


def weekly_figures(history: History, daily: DailyCounters, due: Due, now: float,
                   open_incident: Incident | None) -> report.WeeklyFigures:
    """Return the digest's figures for ``due``'s week, with the week before for the trend."""

    def week(start: float, end: float, previous: report.WeeklyFigures | None,
             ) -> report.WeeklyFigures:
        latency = _points(history, "queue_latency_s", start, end)
        worst = max((p.max for p in latency if p.max is not None), default=None)
        return report.weekly_figures(
            start, end, _incidents(history, open_incident, start, end),
            history.coverage(start, end), worst, _jobs(daily, start, end, now), previous)

    before = week(due.start - WEEK, due.start, None)
    return week(due.start, due.end, before)


def monthly_figures(history: History, daily: DailyCounters, due: Due, now: float,
                    config: ReportsConfig, open_incident: Incident | None,
                    active_members: int | None) -> report.MonthlyFigures:
    """Return the donor report's figures for ``due``'s month."""
    start, end = due.start, due.end
    totals = [p.max for p in _points(history, "memory_total_bytes", start, end)
              if p.max is not None]
    disk = [p.mean for p in _points(history, "disk_used_percent", start, end)
            if p.mean is not None]
    return report.monthly_figures(
        start, end, _points(history, "memory_used_bytes", start, end),
        int(max(totals, default=0)), _points(history, "cpu_percent", start, end),
        disk[-1] if disk else None, _points(history, "queue_latency_s", start, end),
        _incidents(history, open_incident, start, end), _jobs(daily, start, end, now),
        config.monthly_cost or None, config.currency, active_members,
        config.donation_url or None, history.coverage(start, end),
        hosts=history.host_series(start, end), interval=history.interval)


def active_members(activity: Sequence[Mapping[str, object]]) -> int | None:
    """Return the most logins in a recent week from ``/api/v1/instance/activity`` (None: unknown).

    Mastodon reports distinct logins per week; the busiest of the last four
    weeks stands for the active members of the month.
    """
    logins: list[int] = []
    for week in list(activity)[:4]:
        value = week.get("logins")
        try:
            logins.append(int(str(value)))
        except ValueError:
            continue
    return max(logins) if logins else None


def digest_post(figures: report.WeeklyFigures, due: Due, now: float,
                settings: compose.Settings) -> Post:
    """Return the weekly digest as a post (member visibility, the configured language)."""
    return Post(key=due.key, kind=PostKind.STATUS, text=report.digest_text(figures, settings),
                visibility=settings.member_visibility, created_at=now,
                language=settings.language)


def report_post(figures: report.MonthlyFigures, due: Due, now: float,
                settings: compose.Settings, chart: Path | None,
                description_limit: int) -> Post:
    """Return the monthly donor report as a post, with its chart when one was drawn."""
    media = ((str(chart), report.alt_text(figures, description_limit, settings)),) \
        if chart is not None else ()
    return Post(key=due.key, kind=PostKind.STATUS, text=report.report_text(figures, settings),
                visibility=settings.member_visibility, created_at=now,
                language=settings.language, media=media)
