"""Tests for bot.report: aggregation tables, then texts within limits and free of jargon."""

from __future__ import annotations

import re

import pytest

from bot import report
from bot.compose import Settings, mastodon_length
from bot.model import Point
from bot.report import AREA_EMAILS, AREA_FEDERATION, AREA_TIMELINES, AREA_WEB, Sizing
from bot.report import ClosedIncident as Inc

H = 3600.0
DAY = 86400.0
WEEK = 7 * DAY
T0 = 1714521600.0  # 2024-05-01 00:00 UTC
JARGON = re.compile(r"sidekiq|redis|queue|latency|\brss\b|swap", re.IGNORECASE)


def week(incidents: list[Inc], covered: float = WEEK, jobs: dict[str, int] | None = None,
         previous: report.WeeklyFigures | None = None,
         worst: float | None = None) -> report.WeeklyFigures:
    return report.weekly_figures(T0, T0 + WEEK, incidents, covered, worst,
                                 {"2024-05-01": 700} if jobs is None else jobs, previous)


def availability(figures: report.WeeklyFigures) -> dict[str, float | None]:
    return {a.area: a.available for a in figures.areas}


@pytest.mark.parametrize(("incidents", "covered", "expected"), [
    pytest.param([], WEEK, {AREA_WEB: 1.0, AREA_TIMELINES: 1.0, AREA_FEDERATION: 1.0,
                            AREA_EMAILS: 1.0}, id="quiet"),
    pytest.param([Inc("a", T0 + DAY, T0 + DAY + 7 * H, ("queue:default",))], WEEK,
                 {AREA_WEB: 1.0, AREA_TIMELINES: 1 - 7 * H / WEEK, AREA_FEDERATION: 1.0,
                  AREA_EMAILS: 1.0}, id="one-area"),
    pytest.param([Inc("a", T0 + DAY, T0 + DAY + 4 * H, ("queue:push",)),
                  Inc("b", T0 + DAY + 2 * H, T0 + DAY + 6 * H, ("queue:ingress", "queue:pull"))],
                 WEEK, {AREA_WEB: 1.0, AREA_TIMELINES: 1.0, AREA_FEDERATION: 1 - 6 * H / WEEK,
                        AREA_EMAILS: 1.0}, id="overlapping-counted-once"),
    pytest.param([Inc("a", T0 - 2 * H, T0 + 3 * H, ("queue:mailers",))], WEEK,
                 {AREA_WEB: 1.0, AREA_TIMELINES: 1.0, AREA_FEDERATION: 1.0,
                  AREA_EMAILS: 1 - 3 * H / WEEK}, id="straddles-start"),
    pytest.param([Inc("a", T0 + WEEK - H, None, ("web",))], WEEK,
                 {AREA_WEB: 1 - H / WEEK, AREA_TIMELINES: 1.0, AREA_FEDERATION: 1.0,
                  AREA_EMAILS: 1.0}, id="still-open-at-end"),
    pytest.param([Inc("a", T0 + DAY, T0 + DAY + 7 * H, ("redis",))], WEEK,
                 dict.fromkeys(report.AREAS, 1 - 7 * H / WEEK), id="redis-touches-all"),
    pytest.param([Inc("a", T0 + DAY, T0 + DAY + 7 * H, ("queue:scheduler", "dead"))], WEEK,
                 dict.fromkeys(report.AREAS, 1.0), id="no-member-area"),
    pytest.param([], WEEK / 2, dict.fromkeys(report.AREAS, 1.0), id="gap-not-healthy"),
    pytest.param([Inc("a", T0 + DAY, T0 + DAY + 7 * H, ("memory",))], WEEK / 2,
                 {AREA_WEB: 1 - 7 * H / (WEEK / 2), AREA_TIMELINES: 1.0, AREA_FEDERATION: 1.0,
                  AREA_EMAILS: 1.0}, id="gap-over-observed-time"),
    pytest.param([], 0.0, dict.fromkeys(report.AREAS), id="never-watched-unknown"),
])
def test_weekly_availability(incidents: list[Inc], covered: float,
                             expected: dict[str, float | None]) -> None:
    """Availability is the share of observed time without an incident touching the area."""
    actual = availability(week(incidents, covered))
    assert expected == pytest.approx(actual)


@pytest.mark.parametrize(("covered", "unknown"), [
    pytest.param(WEEK, 0.0, id="all-watched"),
    pytest.param(WEEK * 0.75, 0.25, id="quarter-unknown"),
    pytest.param(0.0, 1.0, id="nothing-watched"),
    pytest.param(WEEK * 2, 0.0, id="over-covered-capped"),
])
def test_weekly_unknown_share(covered: float, unknown: float) -> None:
    """The unobserved share is reported as unknown, not folded into availability."""
    assert unknown == pytest.approx(week([], covered).unknown_share)


def test_weekly_incidents_and_totals() -> None:
    """Incidents keep their whole duration; incident time is clipped and counted once."""
    figures = week([Inc("b", T0 + DAY, T0 + DAY + 2 * H, ("queue:push",)),
                    Inc("a", T0 - H, T0 + H, ("queue:default", "queue:mailers")),
                    Inc("c", T0 + DAY + H, T0 + DAY + 3 * H, ("memory",)),
                    Inc("z", T0 + WEEK, T0 + WEEK + H, ("web",))],
                   jobs={"2024-05-01": 10, "2024-05-02": 32}, worst=900.0)
    expected = [("a", 2 * H, H, (AREA_TIMELINES, AREA_EMAILS)),
                ("b", 2 * H, 2 * H, (AREA_FEDERATION,)),
                ("c", 2 * H, 2 * H, (AREA_WEB,))]
    assert expected == [(i.id, i.duration_s, i.in_window_s, i.areas) for i in figures.incidents]
    assert (figures.incident_time_s, figures.jobs_processed,
                                  figures.worst_delay_s) == (4 * H, 42, 900.0)


@pytest.mark.parametrize(("before", "now", "expected"), [
    pytest.param(({"d": 100}, []), ({"d": 110}, []), (0.1, 0.0), id="more-jobs"),
    pytest.param(({"d": 100}, [Inc("a", T0 - WEEK + H, T0 - WEEK + 3 * H, ("web",))]),
                 ({"d": 50}, [Inc("b", T0 + H, T0 + 2 * H, ("web",))]), (-0.5, -H),
                 id="fewer-jobs-less-trouble"),
    pytest.param(({}, []), ({"d": 5}, []), (None, 0.0), id="unknown-before"),
])
def test_weekly_trend(before: tuple[dict[str, int], list[Inc]],
                      now: tuple[dict[str, int], list[Inc]],
                      expected: tuple[float | None, float]) -> None:
    """The trend compares jobs processed and incident time with the previous week."""
    previous = report.weekly_figures(T0 - WEEK, T0, before[1], WEEK, None, before[0], None)
    trend = week(now[1], jobs=now[0], previous=previous).trend
    assert trend is not None
    assert expected == pytest.approx((trend.jobs_change, trend.incident_time_change_s))


def points(values: list[tuple[float, float, float, int]], step: float = H) -> list[Point]:
    return [Point(T0 + i * step, low, mean, high, count)
            for i, (low, mean, high, count) in enumerate(values)]


GIB = 1 << 30


def month(memory: list[Point], total: int = 4 * GIB, cost: float | None = 40.0,
          members: int | None = 160, covered: float = 30 * DAY,
          latency: list[Point] | None = None,
          incidents: list[Inc] | None = None) -> report.MonthlyFigures:
    return report.monthly_figures(
        T0, T0 + 30 * DAY, memory, total, points([(5, 10, 50, 60), (5, 30, 90, 20)]), 63.5,
        latency if latency is not None else points([(0, 2, 5, 60), (0, 10, 600, 60)]),
        [Inc("a", T0 + DAY, T0 + DAY + 3 * H, ("queue:default",))] if incidents is None
        else incidents,
        {"2024-05-01": 1000, "2024-05-02": 2500}, cost, "EUR", members,
        "https://example.social/donate", covered)


@pytest.mark.parametrize(("memory", "expected"), [
    pytest.param(points([(1 * GIB, 2 * GIB, 3 * GIB, 60)]), (2 * GIB, 3 * GIB), id="one"),
    pytest.param(points([(0, 1 * GIB, 2 * GIB, 30), (0, 3 * GIB, 3.5 * GIB, 10)]),
                 (1.5 * GIB, 3.5 * GIB), id="weighted-by-count"),
    pytest.param(points([(0, 1 * GIB, 2 * GIB, 30), (0, 9 * GIB, 9 * GIB, 0)]),
                 (1 * GIB, 2 * GIB), id="empty-bucket-ignored"),
    pytest.param([Point(T0 - H, 0, 9 * GIB, 9 * GIB, 60), *points([(0, GIB, GIB, 1)])],
                 (GIB, GIB), id="outside-window-ignored"),
    pytest.param([], (None, None), id="no-readings"),
])
def test_monthly_memory(memory: list[Point], expected: tuple[float | None, float | None]) -> None:
    """Mean memory is weighted by sample count; the peak is the largest bucket maximum."""
    figures = month(memory)
    assert expected == (figures.memory_mean_bytes, figures.memory_peak_bytes)


@pytest.mark.parametrize(("peak_share", "expected"), [
    pytest.param(0.3, Sizing.SMALLER, id="small"),
    pytest.param(0.4999, Sizing.SMALLER, id="just-below-half"),
    pytest.param(0.5, Sizing.RIGHT, id="half"),
    pytest.param(0.9, Sizing.RIGHT, id="ninety"),
    pytest.param(0.9001, Sizing.TIGHT, id="above-ninety"),
    pytest.param(1.2, Sizing.TIGHT, id="over"),
])
def test_sizing_verdict(peak_share: float, expected: Sizing) -> None:
    """The verdict compares the peak with 50 % and 90 % of what is provisioned."""
    assert expected == report.sizing(peak_share * 1000, 1000)
    assert Sizing.UNKNOWN == report.sizing(None, 1000) == report.sizing(5, 0)


@pytest.mark.parametrize(("cost", "members", "expected"), [
    pytest.param(40.0, 160, 0.25, id="both"),
    pytest.param(40.0, None, None, id="no-activity-figures"),
    pytest.param(40.0, 0, None, id="no-members"),
    pytest.param(None, 160, None, id="no-cost"),
])
def test_cost_per_member(cost: float | None, members: int | None,
                         expected: float | None) -> None:
    """The cost per member needs the cost and a positive number of active members."""
    assert expected == month([], cost=cost, members=members).cost_per_member


def test_monthly_other_figures() -> None:
    """CPU, waits, jobs, incidents and availability over observed time."""
    figures = month([], covered=15 * DAY)
    actual = (figures.cpu_mean_percent, figures.cpu_peak_percent, figures.latency_peak_s,
              figures.latency_peak_at, figures.latency_mean_s, figures.jobs_processed,
              figures.incident_time_s, figures.unknown_share)
    assert pytest.approx(actual) == (15.0, 90.0, 600.0, T0 + H, 6.0, 3500, 3 * H, 0.5)
    assert figures.available == pytest.approx(1 - 3 * H / (15 * DAY))


SMALL = Settings(instance="example.social", max_characters=200)
NORMAL = Settings(instance="example.social")


@pytest.mark.parametrize("settings", [
    pytest.param(NORMAL, id="500"), pytest.param(SMALL, id="200"),
    pytest.param(Settings(instance="x", max_characters=120), id="120")])
@pytest.mark.parametrize("figures", [
    pytest.param(week([]), id="quiet"),
    pytest.param(week([], covered=WEEK - DAY, worst=400), id="quiet-gap"),
    pytest.param(week([Inc(str(i), T0 + i * H * 9, T0 + i * H * 9 + H, ("queue:push", "web"))
                       for i in range(9)], worst=1800, previous=week([])), id="many"),
])
def test_digest_fits_and_speaks_plainly(figures: report.WeeklyFigures,
                                        settings: Settings) -> None:
    """The digest fits the instance's limit and uses no internal words."""
    text = report.digest_text(figures, settings)
    assert mastodon_length(text) <= settings.max_characters
    assert not JARGON.search(text)


def test_quiet_week_is_one_or_two_lines() -> None:
    """An incident-free week is told in at most two lines, with the trend."""
    text = report.digest_text(week([], jobs={"d": 1100}, previous=week([], jobs={"d": 1000})),
                              NORMAL)
    assert text.splitlines() == ["1\N{EN DASH}7 May on example.social: everything worked normally.",
            "1,100 background tasks done (10% more than last week)."]


def test_gap_is_said_not_hidden() -> None:
    """A week the bot did not fully watch says so."""
    text = report.digest_text(week([], covered=WEEK - 6 * H), NORMAL)
    assert "not watched for 6 h" in text and len(text.splitlines()) <= 2


def test_digest_with_incidents_names_figures() -> None:
    """A troubled week gives availability per area, each incident and the worst delay."""
    text = report.digest_text(week([Inc("a", T0 + DAY, T0 + DAY + 7 * H, ("queue:default",))],
                                   worst=1500), NORMAL)
    assert "1 disruption, 7 h in total" in text
    assert "timelines and notifications 95.8%" in text and "emails 100%" in text
    assert "2 May 00:00 UTC, 7 h: timelines and notifications" in text
    assert "about 25 min late" in text


@pytest.mark.parametrize("settings", [
    pytest.param(NORMAL, id="500"), pytest.param(SMALL, id="200")])
def test_report_fits_and_keeps_the_link(settings: Settings) -> None:
    """The donor report fits, speaks plainly and always ends with the donation link."""
    text = report.report_text(month(points([(GIB, 2 * GIB, 3 * GIB, 60)])), settings)
    assert mastodon_length(text) <= settings.max_characters
    assert not JARGON.search(text)
    assert text.endswith("Support us: https://example.social/donate")


def test_report_states_the_figures() -> None:
    """Memory against provisioned with the verdict, cost per member, jobs and incidents."""
    text = report.report_text(month(points([(GIB, 1 * GIB, 1.5 * GIB, 60)])), NORMAL)
    for fact in ("1.0 GiB used on average, 1.5 GiB at most, of 4.0 GiB",
                 "could be smaller", "40.00 EUR a month, 0.25 EUR per active member (160)",
                 "3,500 background tasks", "1 disruption, 3 h in total", "Disk: 64% full"):
        assert fact in text


@pytest.mark.parametrize(("incidents", "says"), [
    pytest.param([Inc("a", T0 + DAY, T0 + DAY + 3 * H, ("web",))],
                 "1 disruption, 3 h in total; working", id="one"),
    pytest.param([Inc("a", T0 + DAY, T0 + DAY + H, ("web",)),
                  Inc("b", T0 + 2 * DAY, T0 + 2 * DAY + 5 * H, ("web",)),
                  Inc("c", T0 + 3 * DAY, T0 + 3 * DAY + 2 * H, ("web",))],
                 "3 disruptions, 8 h in total (the longest 5 h); working", id="three"),
    pytest.param([Inc("a", T0 - 10 * H, T0 + 2 * H, ("web",)),
                  Inc("b", T0 + 2 * DAY, T0 + 2 * DAY + 3 * H, ("web",))],
                 "2 disruptions, 5 h in total (the longest 3 h); working",
                 id="clipped-at-the-month-start"),
])
def test_report_names_the_longest_incident(incidents: list[Inc], says: str) -> None:
    """The donor report gives the longest disruption (its time in the month) beside the total."""
    text = report.report_text(month([], incidents=incidents), NORMAL)
    assert says in text


@pytest.mark.parametrize("limit", [1500, 420, 100])
def test_alt_text_states_the_chart_within_the_limit(limit: int) -> None:
    """The alt text carries the chart's figures and fits the description limit."""
    text = report.alt_text(month(points([(GIB, 2 * GIB, 3 * GIB, 60)]), covered=27 * DAY),
                           limit)
    assert len(text) <= limit
    assert not JARGON.search(text)
    if limit == 1500:
        for fact in ("average 2.0 GiB", "peak 3.0 GiB", "4.0 GiB provisioned",
                     "at worst 10 min on 1 May 01:00 UTC", "10% of the month"):
            assert fact in text


def test_chart_data_breaks_lines_at_gaps() -> None:
    """A missing stretch of readings becomes a null point, so the chart does not bridge it."""
    memory = [Point(T0 + i * H, 1, 2, 3, 1) for i in (0, 1, 2, 6, 7)]
    data = report.chart_data(month(memory))
    assert data["memory"]["mean"] == [2, 2, 2, None, 2, 2]
    assert data["provisioned_bytes"] == 4 * GIB



def test_a_week_not_watched_at_all_says_so() -> None:
    """With no observation at all, the digest does not claim all was well."""
    from bot import report
    from bot.compose import Settings

    figures = report.weekly_figures(0.0, 7 * 86400.0, [], 0.0, None, {}, None)
    text = report.digest_text(figures, Settings(instance="example.social"))
    assert "I was not watching" in text
    assert "worked normally" not in text
