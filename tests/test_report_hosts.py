"""The donor report's memory per host and in total, and the "smaller server" sentence."""

from __future__ import annotations

import pytest

from bot import report
from bot.compose import Settings
from bot.model import HostPoint, Point

G = float(1 << 30)
T0 = 1714521600.0  # 1 May 2024, UTC
H = 3600.0
N = 744  # hours in May
END = T0 + N * H
SETTINGS = Settings(max_characters=2000)


def month(used: float, total: float, hours: int = N) -> list[HostPoint]:
    """A host's hourly points for the first ``hours`` hours of May (120 samples an hour)."""
    return [HostPoint(T0 + i * H, used / 2, used * 0.8, used, 120, total) for i in range(hours)]


def figures(hosts: dict[str, list[HostPoint]], peak: float = 5.1 * G,
            total: int = 16 << 30) -> report.MonthlyFigures:
    memory = [Point(T0 + i * H, peak / 2, peak * 0.6, peak, 120) for i in range(N)]
    return report.monthly_figures(T0, END, memory, total, [], None, [], [], {}, None, "EUR",
                                  None, None, N * H, hosts=hosts, interval=30.0)


def memory_lines(text: str) -> list[str]:
    return [line for line in text.splitlines()
            if "emory" in line or line.startswith("•")]


@pytest.mark.parametrize(("hosts", "expected"), [
    pytest.param({}, [
        "Memory: 3.1 GiB used on average, 5.1 GiB at most, of 16.0 GiB (the server could be "
        "smaller).",
        "Peak memory use was 5.1 GiB of 16.0 GiB: a server with 8 GiB would have been enough, "
        "leaving 2.9 GiB."], id="one-host-as-today-plus-the-smaller-sentence"),
    pytest.param({"web-1": month(5.1 * G, 16 * G)}, [
        "Memory: 3.1 GiB used on average, 5.1 GiB at most, of 16.0 GiB (the server could be "
        "smaller).",
        "Peak memory use was 5.1 GiB of 16.0 GiB: a server with 8 GiB would have been enough, "
        "leaving 2.9 GiB."], id="one-host-in-the-host-history-too"),
    pytest.param({"web-1": month(5 * G, 8 * G), "db-1": month(10 * G, 12 * G)}, [
        "Memory of our 2 servers together: 12.0 GiB used on average, 15.0 GiB at most, of "
        "20.0 GiB.",
        "• db-1: 8.0 GiB on average, 10.0 GiB at most, of 12.0 GiB.",
        "• web-1: 4.0 GiB on average, 5.0 GiB at most, of 8.0 GiB."], id="two-hosts"),
    pytest.param({"web-1": month(2 * G, 16 * G), "db-1": month(10 * G, 12 * G, N // 2)}, [
        "Memory of our 2 servers together: 9.6 GiB used on average, 12.0 GiB at most, of "
        "28.0 GiB.",
        "• db-1: 8.0 GiB on average, 10.0 GiB at most, of 12.0 GiB (readings for 50% of the "
        "month).",
        "• web-1: 1.6 GiB on average, 2.0 GiB at most, of 16.0 GiB.",
        "Peak memory use on web-1 was 2.0 GiB of 16.0 GiB: a server with 4 GiB would have "
        "been enough, leaving 2.0 GiB."], id="a-host-missing-half-the-month"),
    pytest.param({"@admin@evil.example": month(1 * G, 2 * G),
                  "db\u202e\n#tag https://x.example": month(1 * G, 2 * G)}, [
        "Memory of our 2 servers together: 1.6 GiB used on average, 2.0 GiB at most, of "
        "4.0 GiB.",
        "• \uff20admin\uff20evil\u2024example: 819 MiB on average, 1.0 GiB at most, of "
        "2.0 GiB.",
        "• db \u266ftag https\u2236//x\u2024example: 819 MiB on average, 1.0 GiB at most, of "
        "2.0 GiB."], id="hostile-names-neutralised"),
    pytest.param({"web-1": month(5 * G, 8 * G),
                  "bad": [HostPoint(T0, float("nan"), float("inf"), 1e300, 1, 1e300)],
                  "db-1": month(10 * G, 12 * G)}, [
        "Memory of our 2 servers together: 12.0 GiB used on average, 15.0 GiB at most, of "
        "20.0 GiB.",
        "• db-1: 8.0 GiB on average, 10.0 GiB at most, of 12.0 GiB.",
        "• web-1: 4.0 GiB on average, 5.0 GiB at most, of 8.0 GiB."],
        id="nan-and-huge-never-reach-the-text"),
])
def test_memory_lines_of_the_donor_report(hosts: dict[str, list[HostPoint]],
                                          expected: list[str]) -> None:
    """One host keeps today's wording; several get a total and a line each, names neutral."""
    assert expected == memory_lines(report.report_text(figures(hosts), SETTINGS))


@pytest.mark.parametrize(("peak", "total", "sentence"), [
    pytest.param(5.1 * G, 16 << 30, True, id="fits-in-8"),
    pytest.param(14 * G, 16 << 30, False, id="nothing-smaller-fits"),
    pytest.param(0.5 * G, 1 << 30, False, id="already-the-smallest"),
])
def test_smaller_server_sentence_only_when_a_size_fits(peak: float, total: int,
                                                       sentence: bool) -> None:
    """The issue-10 sentence appears only when a smaller size keeps the headroom."""
    text = report.report_text(figures({}, peak, total), SETTINGS)
    assert sentence == ("would have been enough" in text)


def test_host_lines_go_first_when_the_limit_is_short() -> None:
    """Within 500 characters the total stays; host lines are dropped, the last first."""
    hosts = {f"host-{i:02d}": month(2 * G, 8 * G) for i in range(12)}
    text = report.report_text(figures(hosts), Settings(max_characters=500))
    lines = memory_lines(text)
    assert lines[0].startswith("Memory of our 12 servers together: 19.2 GiB used on average")
    assert len(text) <= 500 and 1 < len(lines) < 13
    assert [line[2:9] for line in lines[1:]] == [f"host-{i:02d}" for i in range(len(lines) - 1)]


def test_total_peak_is_the_largest_sum_at_one_time() -> None:
    """Peaks at different times do not add up: the total's peak is of readings together."""
    first = [HostPoint(T0, 1 * G, 1 * G, 4 * G, 1, 8 * G), HostPoint(T0 + H, 1 * G, 1 * G, 1 * G,
                                                                      1, 8 * G)]
    second = [HostPoint(T0, 1 * G, 1 * G, 1 * G, 1, 8 * G), HostPoint(T0 + H, 1 * G, 1 * G,
                                                                       4 * G, 1, 8 * G)]
    hosts, total = report.host_figures({"a": first, "b": second}, T0, END)
    assert [h.peak_bytes for h in hosts] == [4 * G, 4 * G]
    assert total is not None and (total.peak_bytes, total.total_bytes) == (5 * G, 16 * G)


def test_alt_text_and_chart_data_name_every_host() -> None:
    """The chart's description says three panels; its data carry neutral names and the total."""
    hosts = {"web-1": month(5 * G, 8 * G), "@db": month(10 * G, 12 * G)}
    f = figures(hosts)
    alt = report.alt_text(f, 1500, SETTINGS)
    assert "in three panels" in alt and "Middle: memory of each server" in alt
    assert "\uff20db 10.0 GiB at most" in alt and "@" not in alt
    data = report.chart_data(f)
    assert [h["name"] for h in data["hosts"]] == ["\uff20db", "web-1"]
    assert data["hosts_total"] == {"mean": pytest.approx(12 * G), "peak": 15 * G,
                                   "provisioned": 20 * G}
    assert report.chart_data(figures({}))["hosts"] == []
