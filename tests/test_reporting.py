"""Report scheduling and gathering: slots, keys, active members, figures from history."""

from __future__ import annotations

import time
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from bot import compose, reporting
from bot.cli import main
from bot.config import ReportsConfig
from bot.history import History, Sample
from bot.model import Affected, Incident, Severity
from bot.store import Store


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


@pytest.mark.parametrize(
    ("now", "slot", "expected"),
    [
        pytest.param("2026-12-02T10:00", (0, 540), ("2026-11-23T09:00", "2026-11-30T09:00",
                                                    "digest:2026-W48"), id="two-days-after"),
        pytest.param("2026-11-30T09:00", (0, 540), ("2026-11-23T09:00", "2026-11-30T09:00",
                                                    "digest:2026-W48"), id="on-the-slot"),
        pytest.param("2026-11-30T08:59", (0, 540), ("2026-11-16T09:00", "2026-11-23T09:00",
                                                    "digest:2026-W47"), id="just-before"),
        pytest.param("2026-12-04T18:00", (4, 17 * 60 + 30),
                     ("2026-11-27T17:30", "2026-12-04T17:30", "digest:2026-W48"), id="friday"),
    ],
)
def test_last_weekly(now: str, slot: tuple[int, int], expected: tuple[str, str, str]) -> None:
    """The digest covers the 7 days up to the latest slot; its key names the week."""
    due = reporting.last_weekly(ts(now), slot, "UTC")
    assert (due.start, due.end, due.key) == (ts(expected[0]), ts(expected[1]), expected[2])


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        pytest.param("2026-12-01T10:00", ("2026-11-01T00:00", "2026-12-01T00:00",
                                          "report:2026-11"), id="after-the-slot"),
        pytest.param("2026-12-01T08:00", ("2026-10-01T00:00", "2026-11-01T00:00",
                                          "report:2026-10"), id="before-the-slot"),
        pytest.param("2027-01-15T00:00", ("2026-12-01T00:00", "2027-01-01T00:00",
                                          "report:2026-12"), id="new-year"),
    ],
)
def test_last_monthly(now: str, expected: tuple[str, str, str]) -> None:
    """The donor report covers the previous calendar month."""
    due = reporting.last_monthly(ts(now), (1, 540), "UTC")
    assert (due.start, due.end, due.key) == (ts(expected[0]), ts(expected[1]), expected[2])


@pytest.mark.parametrize(
    ("activity", "expected"),
    [
        pytest.param([{"week": "1", "logins": "120"}, {"week": "0", "logins": "95"}], 120,
                     id="busiest-week"),
        pytest.param([], None, id="disabled"),
        pytest.param([{"logins": "x"}], None, id="junk"),
        pytest.param([{"logins": str(n)} for n in (1, 2, 3, 4, 500)], 4, id="four-weeks-only"),
    ],
)
def test_active_members(activity: list[dict[str, object]], expected: int | None) -> None:
    """Active members: the most logins in a week of the last four."""
    assert reporting.active_members(activity) == expected


START = ts("2026-11-23T09:00")
END = ts("2026-11-30T09:00")


def filled_history(gap: tuple[float, float] | None = None) -> History:
    """A week and a half of 5-minute samples, with an optional gap."""
    history = History(Store(":memory:"), interval=300)
    at = START - 4 * 86400
    samples = []
    while at < END:
        if gap is None or not gap[0] <= at < gap[1]:
            samples.append(Sample(at=at, memory_used_percent=50.0, memory_used_bytes=4 << 30,
                                  memory_total_bytes=8 << 30, cpu_percent=10.0,
                                  disk_used_percent=40.0, queue_latency_s=2.0, enqueued=0,
                                  busy=1, concurrency=5, live_processes=1, redis_ok=True))
        at += 300
    history.record_many(samples)
    return history


def daily(days: int, today: date) -> dict[str, tuple[int, int]]:
    """Sidekiq's counters: 1,000 jobs a day."""
    return {date.fromordinal(today.toordinal() - n).isoformat(): (1000, 3) for n in range(days)}


def test_weekly_figures_from_history() -> None:
    """A quiet, fully watched week: everything available, 7,000 jobs, a two-line digest."""
    due = reporting.Due("weekly", START, END, "digest:2026-W48")
    figures = reporting.weekly_figures(filled_history(), daily, due, END + 60, None)
    assert figures.unknown_share == pytest.approx(0.0, abs=0.01)
    assert figures.incidents == ()
    assert figures.jobs_processed == 8000  # the window touches 8 UTC days
    post = reporting.digest_post(figures, due, END, compose.Settings(instance="example.social"))
    assert post.key == "digest:2026-W48"
    assert len(post.text.splitlines()) <= 2


def test_a_gap_is_unknown_not_healthy() -> None:
    """A day the bot was down is reported as unknown."""
    due = reporting.Due("weekly", START, END, "digest:2026-W48")
    figures = reporting.weekly_figures(filled_history(gap=(START, START + 86400)), daily, due,
                                       END, None)
    assert figures.unknown_share == pytest.approx(1 / 7, abs=0.01)


def test_open_incident_counts_until_the_end_of_the_window() -> None:
    """An incident still open when the week ends is in the digest."""
    due = reporting.Due("weekly", START, END, "digest:2026-W48")
    incident = Incident(id="inc-1", opened_at=END - 3600, severity=Severity.CRITICAL,
                        affected=(Affected("queue:push", Severity.CRITICAL, END - 3600,
                                           Severity.CRITICAL, "slow"),))
    figures = reporting.weekly_figures(filled_history(), daily, due, END, incident)
    assert [i.id for i in figures.incidents] == ["inc-1"]
    assert figures.incident_time_s == pytest.approx(3600.0)


def test_monthly_figures_from_history() -> None:
    """Memory mean and peak against what is provisioned, with the cost per member."""
    due = reporting.Due("monthly", START - 20 * 86400, END, "report:2026-11")
    config = ReportsConfig(monthly_cost=60.0, donation_url="https://example.org/donate")
    figures = reporting.monthly_figures(filled_history(), daily, due, END, config, None, 120)
    assert figures.memory_total_bytes == 8 << 30
    assert figures.memory_peak_bytes == pytest.approx(4 << 30)
    assert figures.cost_per_member == pytest.approx(0.5)
    post = reporting.report_post(figures, due, END, compose.Settings(), None, 1500)
    assert post.text.splitlines()[-1].endswith("https://example.org/donate")


@pytest.mark.parametrize(
    ("first_start", "covered_days", "expected"),
    [
        pytest.param(None, 7.0, None, id="watched-whole"),
        pytest.param(ts("2026-11-20T00:00"), 3.5, None, id="exactly-half"),
        pytest.param(ts("2026-11-20T00:00"), 3.4, "the bot watched 49% of its period "
                     "(at least 50% is needed)", id="under-half"),
        pytest.param(None, 0.0, "the bot watched 0% of its period (at least 50% is needed)",
                     id="never-watched"),
        pytest.param(ts("2026-11-30T09:00"), 7.0,
                     "its period ended before the bot first started", id="ended-at-first-start"),
        pytest.param(ts("2026-12-01T05:30"), 7.0,
                     "its period ended before the bot first started", id="imported-history"),
        pytest.param(ts("2026-11-30T08:59"), 7.0, None, id="started-before-the-end"),
        pytest.param(None, -5.0, "the bot watched 0% of its period (at least 50% is needed)",
                     id="negative-coverage"),
        pytest.param(None, float("nan"), "the bot watched 0% of its period "
                     "(at least 50% is needed)", id="nan-coverage"),
    ],
)
def test_skip_reason(first_start: float | None, covered_days: float,
                     expected: str | None) -> None:
    """A report is posted only for a period mostly watched and not ended before the first start."""
    due = reporting.Due("weekly", START, END, "digest:2026-W48")
    assert reporting.skip_reason(due, first_start, covered_days * 86400) == expected


@pytest.mark.parametrize(
    ("args", "watched", "says"),
    [
        pytest.param(["--dry-run"], False, "digest:2026-W48 would not be posted: the bot watched "
                     "0% of its period (at least 50% is needed)", id="dry-run-unwatched"),
        pytest.param([], False, "digest:2026-W48 would not be posted: the bot watched 0%",
                     id="unwatched"),
        pytest.param([], True, "queued as digest:2026-W48", id="watched"),
    ],
)
def test_report_command_posts_only_a_watched_period(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        args: list[str], watched: bool, says: str) -> None:
    """`statusbot report` says why a report would not be posted, and then does not post it."""
    state = tmp_path / "state"
    state.mkdir()
    if watched:
        history = filled_history()
        rows = History(Store(state / "statusbot.sqlite3"), interval=300)
        rows.record_many(Sample(at=p.at, memory_used_percent=50.0, memory_used_bytes=None,
                                memory_total_bytes=None, cpu_percent=None,
                                disk_used_percent=None, queue_latency_s=None, enqueued=0,
                                busy=1, concurrency=5, live_processes=1, redis_ok=True)
                         for p in history.series("enqueued", START - 86400, END))
        rows.store.close()
    config = tmp_path / "c.toml"
    config.write_text(f'[redis]\nurl = "redis://127.0.0.1:1/0"\nsocket_timeout = 0.2\n'
                      f'[bot]\ninterval = 300\nstate_dir = "{state}"\n')
    monkeypatch.setattr(time, "time", lambda: END + 3600)  # the command's clock
    assert main(["report", "weekly", "--config", str(config), *args]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("23\N{EN DASH}30 Nov on ")
    assert says in err
    if not args:
        store = Store(state / "statusbot.sqlite3")
        assert (store.get("digest:2026-W48") is not None) == watched
        store.close()
