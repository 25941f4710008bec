"""The status page: HTML, Atom and Statuspage JSON from state and history; atomic files."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import re
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import feedparser
import pytest

from bot import page
from bot.cli import main
from bot.compose import Settings
from bot.config import ConfigError, PageConfig, load_config
from bot.handlers import RuntimeMute
from bot.health import Mute
from bot.history import DAY, History, Sample
from bot.incidents import IncidentState
from bot.loop import INCIDENT_STATE
from bot.model import Affected, Incident, Post, PostKind, Severity
from bot.page import (
    DEGRADED,
    MAINTENANCE,
    MAJOR,
    OPERATIONAL,
    PARTIAL,
    Live,
    Maintenance,
    PageData,
    PagePost,
    Past,
    PastIncident,
    Site,
    WatchedDay,
)
from bot.pagefiles import (
    PageKeeper,
    PageWriteError,
    gather_live,
    page_posts,
    watched_days,
    write_files,
)
from bot.store import ItemState, Store, ThreadRow
from bot.wording import DEFAULT_WORDING

NOW = float(1_780_000_000 // DAY * DAY + 12 * 3600)  # noon UTC
"""The injected clock of every test."""

W, C = Severity.WARNING, Severity.CRITICAL
SETTINGS = Settings(instance="example.social")
SITE = Site(SETTINGS, page_url="https://status.example.org", instance_url="https://example.social",
            since=NOW - 200 * DAY)
INDICATORS = {"none", "minor", "major", "critical"}
COMPONENT_STATUSES = {"operational", "degraded_performance", "partial_outage", "major_outage",
                      "under_maintenance"}


def affected(component: str, severity: Severity, since: float = NOW - 3600) -> Affected:
    return Affected(component, severity, since, severity, "reason", 10.0, 10.0)


def incident(*items: Affected, manual: bool = False, number: int = 1) -> Incident:
    worst = max([W, *(a.severity for a in items)])
    return Incident(id=f"inc-{number}", opened_at=min([NOW - 3600, *(a.since for a in items)]),
                    affected=items, severity=worst, peak=worst, manual=manual)


def posts(prefix: str, count: int, start: float, text: str = "Update {n}: it is slow.",
          ) -> tuple[PagePost, ...]:
    return tuple(PagePost(f"{prefix}:{n}", start + 600 * n, text.format(n=n),
                          f"https://example.social/statuses/{1000 + n}")
                 for n in range(count))


def days(watched: Callable[[int], float] = lambda i: 1.0, now: float = NOW,
         ) -> tuple[WatchedDay, ...]:
    """Ninety days, each watched the share ``watched(index)`` of its span."""
    return tuple(WatchedDay(start, end, (end - start) * watched(i))
                 for i, (start, end) in enumerate(page.day_windows(now, "UTC")))


def data(live: Live | None = None, past: Past | None = None, site: Site = SITE,
         checked_at: float | None = NOW) -> PageData:
    return PageData(site, live or Live(), past or Past(days()), checked_at)


def full_data() -> PageData:
    """The worst case the size bounds are for: 90 days, 30 incidents, an open one."""
    resolved = tuple(
        PastIncident(f"inc-{n}", NOW - n * 3 * DAY, NOW - n * 3 * DAY + 7200, C,
                     ("redis", "queue:push", "queue:default", "memory", "web"),
                     posts(f"inc-{n}", 6, NOW - n * 3 * DAY))
        for n in range(1, 31))
    live = Live(incident(affected("queue:push", C), affected("memory", W), affected("web", C),
                         number=99),
                posts("inc-99", 14, NOW - 3600, "Since 11:00 UTC, parts of example.social are "
                      "not working properly.\nYour posts reach people on other servers late. "
                      "Update {n}."),
                (Maintenance("m1", NOW + DAY, NOW + DAY + 7200, "Database upgrade",
                             posts=posts("maint:m1", 1, NOW - 600)),))
    return data(live, Past(days(lambda i: 0.0 if i % 9 == 0 else 0.97), resolved))


def render_text(value: PageData, now: float = NOW) -> dict[str, str]:
    return page.decode(page.render(value, now))


MAINT_NOW = Maintenance("m2", NOW - 600, NOW + 3000, "Moving to a bigger server",
                        ("queue:mailers",))

SCENARIOS: dict[str, PageData] = {
    "all-normal": data(),
    "warning": data(Live(incident(affected("queue:push", W)), posts("inc-1", 2, NOW - 3000))),
    "critical": data(Live(incident(affected("queue:push", C), affected("queue:default", W)),
                          posts("inc-1", 3, NOW - 3000))),
    "stopped": data(Live(incident(affected("redis", C)), posts("inc-1", 1, NOW - 3000))),
    "website-down": data(Live(incident(affected("web", C), affected("memory", W)))),
    "maintenance": data(Live(maintenance=(MAINT_NOW,))),
    "maintenance-planned": data(Live(maintenance=(dataclasses.replace(
        MAINT_NOW, start=NOW + 600, components=()),))),
    "manual": data(Live(incident(manual=True), posts("inc-1", 1, NOW - 60, "A word from us."))),
    "full": full_data(),
}


# --- Statuspage JSON -----------------------------------------------------------------------


def statuses(**changed: str) -> dict[str, str]:
    return {part: changed.get(part, OPERATIONAL) for part in page.PARTS}


@pytest.mark.parametrize(
    ("scenario", "indicator", "parts"),
    [
        pytest.param("all-normal", "none", statuses(), id="all-normal"),
        pytest.param("warning", "minor", statuses(outgoing=DEGRADED), id="warning"),
        pytest.param("critical", "major", statuses(outgoing=PARTIAL, timelines=DEGRADED),
                     id="critical"),
        pytest.param("stopped", "critical",
                     statuses(timelines=MAJOR, outgoing=MAJOR, incoming=MAJOR, emails=MAJOR,
                              imports=MAJOR), id="stopped"),
        pytest.param("website-down", "critical", statuses(web=MAJOR), id="website-down"),
        pytest.param("maintenance", "none", statuses(emails=MAINTENANCE), id="maintenance"),
        pytest.param("maintenance-planned", "none", statuses(), id="maintenance-planned"),
        pytest.param("manual", "minor", statuses(), id="manual"),
        pytest.param("full", "critical", statuses(outgoing=PARTIAL, web=MAJOR), id="full"),
    ],
)
def test_statuspage_json(scenario: str, indicator: str, parts: dict[str, str]) -> None:
    """Both JSON files have Statuspage's keys and values, and agree with each other."""
    files = render_text(SCENARIOS[scenario])
    status = json.loads(files["api/v2/status.json"])
    summary = json.loads(files["api/v2/summary.json"])
    assert set(status) == {"page", "status"}
    assert set(summary) == {"page", "components", "incidents", "scheduled_maintenances",
                            "status"}
    assert set(status["page"]) == {"id", "name", "url", "time_zone", "updated_at"}
    assert status["status"]["indicator"] == indicator
    assert status["status"] == summary["status"] and status["page"] == summary["page"]
    assert {c["id"].split("-")[-1]: c["status"] for c in summary["components"]} == parts
    for component in summary["components"]:
        assert component["status"] in COMPONENT_STATUSES
        assert {"id", "name", "status", "created_at", "updated_at", "position", "description",
                "page_id", "group", "group_id", "only_show_if_degraded", "showcase",
                "start_date"} <= set(component)
    for item in summary["incidents"]:
        assert item["status"] in {"investigating", "identified", "monitoring"}
        assert item["impact"] in INDICATORS - {"none"}
        assert item["resolved_at"] is None
        assert {"id", "name", "created_at", "updated_at", "shortlink", "page_id",
                "incident_updates", "components"} <= set(item)
        for update in item["incident_updates"]:
            assert {"id", "status", "body", "created_at", "updated_at", "display_at",
                    "incident_id", "affected_components"} <= set(update)
            assert update["incident_id"] == item["id"]
        times = [u["created_at"] for u in item["incident_updates"]]
        assert times == sorted(times, reverse=True)  # Statuspage lists the newest first
    for window in summary["scheduled_maintenances"]:
        assert window["status"] in {"scheduled", "in_progress"}
        assert window["impact"] in INDICATORS  # the npm client's types allow no other
        assert {"scheduled_for", "scheduled_until"} <= set(window)
    assert len(summary["incidents"]) == (0 if indicator == "none" else 1)


def test_json_timestamps_are_statuspage_iso() -> None:
    """Times are ISO 8601 in UTC with milliseconds, as Statuspage writes them."""
    summary = json.loads(render_text(SCENARIOS["critical"])["api/v2/summary.json"])
    stamp = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z")
    found = re.findall(r'"(?:created|updated|display)_at":"([^"]*)"', json.dumps(
        summary, separators=(",", ":")))
    assert found and all(stamp.fullmatch(t) for t in found)


# --- the feed ------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_feed_parses_in_order(scenario: str) -> None:
    """A real feed parser reads the feed without error, newest entry first."""
    value = SCENARIOS[scenario]
    feed = feedparser.parse(page.render(value, NOW)["feed.atom"])
    assert feed.bozo == 0, feed.get("bozo_exception")
    assert feed.version == "atom10"
    expected = [key for _, key in sorted(
        ((p.at, p.key) for p in _all_posts(value)), reverse=True)][:page.FEED_ENTRIES]
    assert [e.id for e in feed.entries] == [page.entry_id(value.site, k) for k in expected]
    stamps = [e.updated_parsed for e in feed.entries]
    assert stamps == sorted(stamps, reverse=True)


def _all_posts(value: PageData) -> list[PagePost]:
    found = list(value.live.posts)
    for past in value.past.incidents:
        found += past.posts
    for window in value.live.maintenance:
        found += window.posts
    return found


def test_feed_ids_and_dates_stable_across_renders() -> None:
    """A later render with one more post keeps every earlier entry's id and date."""
    live = SCENARIOS["critical"].live
    before = feedparser.parse(page.render(SCENARIOS["critical"], NOW)["feed.atom"])
    more = dataclasses.replace(live, posts=(*live.posts, PagePost("inc-1:9", NOW + 60, "New")))
    after = feedparser.parse(page.render(data(more), NOW + 3600)["feed.atom"])
    old = {e.id: e.updated for e in before.entries}
    assert {e.id: e.updated for e in after.entries if e.id in old} == old
    assert after.entries[0].id == page.entry_id(SITE, "inc-1:9")
    again = page.render(SCENARIOS["critical"], NOW + 7200)["feed.atom"]
    assert again == page.render(SCENARIOS["critical"], NOW)["feed.atom"]


# --- sizes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "limit"),
    [
        pytest.param("index.html", 50_000, id="html"),
        pytest.param("feed.atom", 64_000, id="feed"),
        pytest.param("api/v2/summary.json", 32_000, id="summary"),
        pytest.param("api/v2/status.json", 1_000, id="status"),
    ],
)
def test_sizes_with_90_days_and_30_incidents(name: str, limit: int) -> None:
    """With 90 days, 30 resolved incidents and a busy open one, every file stays small."""
    value = full_data()
    assert len(value.past.days) == 90 and len(value.past.incidents) == 30
    assert len(page.render(value, NOW)[name]) < limit


def test_sizes_stay_bounded_whatever_the_state_holds() -> None:
    """Thousands of posts, components and maintenance windows are capped, not all listed."""
    many = tuple(affected(f"queue:q{n}", C) for n in range(10_000))
    windows = tuple(Maintenance(f"m{n}", NOW + n, NOW + DAY, "planned", (), posts(
        f"maint:m{n}", 1, NOW)) for n in range(1_000))
    live = Live(incident(*many), posts("inc-1", 5_000, NOW - DAY), windows)
    files = page.render(data(live, full_data().past), NOW)
    assert {name: len(content) < 64_000 for name, content in files.items()} == dict.fromkeys(
        page.FILES, True)
    summary = json.loads(files["api/v2/summary.json"])
    assert len(summary["incidents"][0]["incident_updates"]) == page.SHOWN_UPDATES
    assert len(summary["scheduled_maintenances"]) == page.SHOWN_MAINTENANCE
    assert b"4960 earlier updates are not shown here." in files["index.html"]


# --- the HTML ------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_html_tells_what_the_json_tells(scenario: str) -> None:
    """The HTML's top line and part states are those of the JSON, in the page's words."""
    files = render_text(SCENARIOS[scenario])
    summary = json.loads(files["api/v2/summary.json"])
    html_text = files["index.html"]
    assert f'role="status">{summary["status"]["description"]}</p>' in html_text
    for component in summary["components"]:
        assert (f'<span>{component["name"]}</span> <span class="s {component["status"]}">'
                in html_text)
    assert '<html lang="en">' in html_text
    assert "<script" not in html_text and "src=" not in html_text and "@import" not in html_text
    assert "prefers-color-scheme:dark" in html_text
    assert 'name="viewport" content="width=device-width, initial-scale=1"' in html_text


class Nesting(HTMLParser):
    """Records elements closed out of order or never closed."""

    VOID = frozenset({"meta", "link", "br", "img", "input", "hr"})

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.wrong: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open.pop() != tag:
            self.wrong.append(tag)


@pytest.mark.parametrize("scenario", [*SCENARIOS, "hostile"])
def test_html_is_well_nested(scenario: str) -> None:
    """Every element is closed, in order: a browser builds the page we meant."""
    value = _hostile_data("<b>x</b></li></section>") if scenario == "hostile" \
        else SCENARIOS[scenario]
    checker = Nesting()
    checker.feed(render_text(value)["index.html"])
    checker.close()
    assert (checker.open, checker.wrong) == ([], [])


def test_open_incident_lists_every_post_in_order_with_links() -> None:
    """The open incident shows its posts as posted, oldest first, each linking to its post."""
    value = SCENARIOS["critical"]
    html_text = render_text(value)["index.html"]
    shown = re.findall(r"<p>(Update \d: it is slow\.)</p><a href=\"([^\"]+)\">", html_text)
    assert shown == [(p.text, p.url) for p in value.live.posts]


@pytest.mark.parametrize(
    ("zone", "shown"),
    [
        pytest.param("UTC", "28 May 11:10 UTC", id="utc"),
        pytest.param("Europe/Berlin", "28 May 13:10 CEST", id="summer-time"),
        pytest.param("America/Sao_Paulo", "28 May 08:10 UTC-03", id="numeric-zone"),
    ],
)
def test_times_carry_their_date_and_zone(zone: str, shown: str) -> None:
    """A static page is read later: every time says its day, in [mastodon] timezone."""
    site = dataclasses.replace(SITE, settings=Settings(instance="example.social",
                                                       timezone=zone))
    value = data(Live(incident(affected("web", C)),
                      (PagePost("inc-1:0", NOW - 3000, "Down."),)), site=site)
    assert f'<time datetime="2026-05-28T11:10:00Z">{shown}</time>' in render_text(
        value, NOW + 2 * DAY)["index.html"]


def test_unsent_post_says_so_instead_of_linking() -> None:
    """A post the instance has not taken yet is shown, marked as not yet posted."""
    value = data(Live(incident(affected("web", C)), (PagePost("inc-1:0", NOW - 60, "Down."),)))
    assert ("<p>Down.</p><span class=\"mute\">Not yet posted on example.social.</span>"
            in render_text(value)["index.html"])


def test_language_and_wording_come_from_the_config() -> None:
    """``lang`` is [mastodon] language, and [wording] texts replace the shipped ones."""
    words = dataclasses.replace(DEFAULT_WORDING, page_overall_ok="Alles normal auf {instance}.",
                                page_part_emails="E-Mails")
    site = dataclasses.replace(SITE, settings=Settings(instance="example.social",
                                                       language="de", wording=words))
    files = render_text(data(site=site))
    assert '<html lang="de">' in files["index.html"]
    assert "Alles normal auf example.social." in files["index.html"]
    assert json.loads(files["api/v2/status.json"])["status"]["description"] == (
        "Alles normal auf example.social.")
    assert "<span>E-Mails</span>" in files["index.html"]


# --- days and availability -----------------------------------------------------------------

TODAY = page.day_windows(NOW, "UTC")[-1][0]


@pytest.mark.parametrize(
    ("watched", "spans", "maintenance", "state"),
    [
        pytest.param(0.0, (), False, "unknown", id="not-watched"),
        pytest.param(0.4, (), False, "unknown", id="hardly-watched"),
        pytest.param(0.5, (), False, "ok", id="half-watched"),
        pytest.param(1.0, (), False, "ok", id="watched"),
        pytest.param(0.0, ((W, 600),), False, "minor", id="incident-while-not-watched"),
        pytest.param(1.0, ((W, 600), (C, 60)), False, "major", id="worst-of-two"),
        pytest.param(1.0, (), True, "maintenance", id="maintenance"),
        pytest.param(1.0, ((W, 600),), True, "minor", id="incident-beats-maintenance"),
    ],
)
def test_day_cell_state(watched: float, spans: tuple[tuple[Severity, float], ...],
                        maintenance: bool, state: str) -> None:
    """A day shows its worst incident; a day not watched (enough) is unknown, never fine."""
    start = TODAY - 10 * DAY
    incidents = tuple(PastIncident(f"inc-{n}", start + 3600 * (n + 1),
                                   start + 3600 * (n + 1) + length, peak, ("queue:push",))
                      for n, (peak, length) in enumerate(spans))
    windows = (Maintenance("m", start + 7200, start + 9000, "x"),) if maintenance else ()
    value = data(Live(maintenance=windows),
                 Past((WatchedDay(start, start + DAY, DAY * watched),), incidents))
    cells, _ = page.day_cells(value, NOW)
    assert [c.state for c in cells] == [state]


def test_today_counts_only_up_to_now() -> None:
    """Today is judged on its part so far: watched since midnight is fully watched."""
    value = data(past=Past(days(lambda i: 1.0)))
    cells, availability = page.day_cells(value, NOW)
    assert (cells[-1].state, cells[-1].watched_share, availability) == ("ok", 1.0, 100.0)
    assert page.day_windows(NOW, "UTC")[-1] == (TODAY, NOW)


@pytest.mark.parametrize(
    ("watched", "down", "expected"),
    [
        pytest.param(DAY, 0.0, "100", id="no-incident"),
        pytest.param(DAY, 864.0, "99", id="one-percent-down"),
        pytest.param(DAY / 2, 864.0, "98", id="only-watched-time-counts"),
        pytest.param(DAY, 8.64, "99.99", id="never-rounds-up"),
        pytest.param(DAY, 0.864, "99.99", id="cut-not-rounded"),
        pytest.param(600.0, 3600.0, "0", id="down-beyond-watched"),
    ],
)
def test_availability(watched: float, down: float, expected: str) -> None:
    """Availability is the share of the watched time without an incident, cut not rounded."""
    start = TODAY - 5 * DAY
    incidents = (PastIncident("inc-1", start + 100, start + 100 + down, W, ("web",)),) \
        if down else ()
    value = data(past=Past((WatchedDay(start, start + DAY, watched),), incidents))
    _, availability = page.day_cells(value, NOW)
    assert availability is not None and page.percent(availability) == expected
    assert f"Available {expected}% of the time watched." in render_text(value)["index.html"]


def test_never_watched_claims_nothing() -> None:
    """With no watched time the page says so; no day is shown as fine."""
    value = data(past=Past(days(lambda i: 0.0)))
    html_text = render_text(value)["index.html"]
    assert "Not watched yet." in html_text
    assert html_text.count('<li class="unknown"') == 90
    assert 'class="ok"' not in html_text


@pytest.mark.parametrize(
    ("zone", "hours"),
    [
        pytest.param("UTC", {24}, id="utc"),
        pytest.param("Europe/Berlin", {23, 24, 25}, id="dst-zone"),
        pytest.param("No/Such_Zone", {24}, id="unknown-zone-is-utc"),
    ],
)
def test_day_windows_are_local_days(zone: str, hours: set[int]) -> None:
    """Ninety consecutive local days, oldest first; today ends at now."""
    windows = page.day_windows(NOW, zone)
    assert len(windows) == 90 and windows[-1][1] == NOW
    assert all(a[1] == b[0] for a, b in itertools.pairwise(windows))
    assert {round((e - s) / 3600) for s, e in windows[:-1]} <= hours


# --- hostile text --------------------------------------------------------------------------

HOSTILE = [
    pytest.param("<script>alert(1)</script>", id="script"),
    pytest.param("x ]]> <![CDATA[ y", id="cdata-end"),
    pytest.param("@someone@evil.example #tag", id="mention"),
    pytest.param("bell\x07 nul\x00 esc\x1b[31m red \x9b c1", id="control"),
    pytest.param("bidi \u202eevil\u202c zero\u200bwidth", id="format-chars"),
    pytest.param("\"quoted' & <tag attr=\"x\">", id="quotes"),
    pytest.param("lone \ud800 surrogate \ufffe", id="surrogate"),
]


def _hostile_data(text: str) -> PageData:
    live = Live(incident(affected(f"queue:{text}", C), affected("unserved:" + text, C)),
                (PagePost(f"inc-1:{text}", NOW - 60, f"Notice {text}\nline 2",
                          page.post_url("https://example.social", text)),),
                (Maintenance(text, NOW - 60, NOW + 60, text, (text,),
                             (PagePost(f"maint:{text}:announce", NOW - 120, text),)),))
    site = Site(Settings(instance=text, language=text, timezone=text), page_url=text,
                instance_url=text, since=NOW)
    past = Past(days(), (PastIncident(text, NOW - DAY, NOW - DAY + 60, C, (text,),
                                      (PagePost(text, NOW - DAY, text),)),))
    return PageData(site, live, past, NOW)


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_is_escaped_everywhere(text: str) -> None:
    """Outside text cannot inject markup, break the feed or the JSON, nor carry controls."""
    files = page.render(_hostile_data(text), NOW)
    html_text = files["index.html"].decode("utf-8")
    assert "<script" not in html_text and "<tag" not in html_text
    assert not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202e\u200b]", html_text)
    assert len(re.findall("<li[ >]", html_text)) == html_text.count("</li>")
    feed = feedparser.parse(files["feed.atom"])
    assert feed.bozo == 0, feed.get("bozo_exception")
    contents = [e.content[0].value for e in feed.entries]
    assert page.clean(f"Notice {text}\nline 2") in contents
    summary = json.loads(files["api/v2/summary.json"])
    bodies = [u["body"] for i in summary["incidents"] for u in i["incident_updates"]]
    assert bodies == [page.clean(f"Notice {text}\nline 2")]
    assert summary["page"]["url"] == ""  # not an http(s) URL: no link at all
    for content in files.values():
        assert not re.search(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]", content)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("plain text", "plain text", id="ascii"),
        pytest.param("été… 日本 😀 ½", "été… 日本 😀 ½", id="letters-and-symbols-kept"),
        pytest.param("a\tb\nc\r\nd\re", "a\tb\nc\nd\ne", id="line-breaks-kept"),
        pytest.param("soft\xadhyphen", "softhyphen", id="soft-hyphen"),
        pytest.param("\u2066isolate\u2069 \u202eoverride", "isolate override", id="bidi"),
        pytest.param("\ufeffbom \u200dzwj \U000e0041tag", "bom zwj tag", id="invisible"),
        pytest.param("\x00\x07\x1b\x7f\x85\x9f", "", id="c0-c1-controls"),
        pytest.param("\ud800\udfff\ufffe\uffff", "", id="not-xml-characters"),
    ],
)
def test_clean(text: str, expected: str) -> None:
    """Control, format and non-XML characters go; everything readable stays."""
    assert page.clean(text) == expected


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 1e300, -1e300])
def test_impossible_times_do_not_break_the_page(value: float) -> None:
    """Non-finite or absurd times from a damaged state file still give a whole page."""
    live = Live(Incident("inc-1", value, (affected("web", C, since=value),), severity=C, peak=C),
                (PagePost("inc-1:0", value, "Down."),),
                (Maintenance("m", value, value, "x"),))
    past = Past(days(), (PastIncident("inc-0", value, value, C, ("web",),
                                      (PagePost("inc-0:0", value, "Old."),)),
                         PastIncident("inc-2", NOW - DAY, value, W, ("web",))))
    files = page.render(data(live, past, checked_at=value), NOW)
    assert feedparser.parse(files["feed.atom"]).bozo == 0
    assert json.loads(files["api/v2/summary.json"])["status"]["indicator"] == "critical"
    assert files["index.html"].endswith(b"</html>\n")


@pytest.mark.parametrize(
    ("url", "safe"),
    [
        pytest.param("https://example.social/statuses/1", True, id="https"),
        pytest.param("http://127.0.0.1:3000/statuses/1", True, id="http"),
        pytest.param("javascript:alert(1)", False, id="javascript"),
        pytest.param("data:text/html,<script>", False, id="data"),
        pytest.param("https://x/\"><script>", False, id="quote-breakout"),
        pytest.param("//example.social/x", False, id="no-scheme"),
        pytest.param("https://[::1", False, id="unparsable"),
        pytest.param("", False, id="empty"),
    ],
)
def test_only_http_links(url: str, safe: bool) -> None:
    """Only plain http(s) addresses become links."""
    assert (page.safe_url(url) == url) is safe


def test_status_id_cannot_leave_the_path() -> None:
    """A status id from the API is one path segment, whatever it holds."""
    assert page.post_url("https://example.social", "../../x?y#z") == (
        "https://example.social/statuses/..%2F..%2Fx%3Fy%23z")
    assert page.post_url("javascript:alert(1)", "1") is None


# --- writing files -------------------------------------------------------------------------

FILES = {"index.html": b"<p>new</p>", "api/v2/status.json": b"{}"}


def test_writer_writes_then_skips_unchanged(tmp_path: Path) -> None:
    """Changed files are written; a second write of the same bytes touches nothing."""
    assert write_files(tmp_path, FILES) == ["index.html", "api/v2/status.json"]
    stamps = {n: (tmp_path / n).stat().st_mtime_ns for n in FILES}
    inode = (tmp_path / "index.html").stat().st_ino
    assert write_files(tmp_path, FILES) == []
    assert {n: (tmp_path / n).stat().st_mtime_ns for n in FILES} == stamps
    assert write_files(tmp_path, {**FILES, "index.html": b"<p>newer</p>"}) == ["index.html"]
    assert (tmp_path / "index.html").read_bytes() == b"<p>newer</p>"
    assert (tmp_path / "index.html").stat().st_ino != inode  # replaced, not rewritten in place
    assert (tmp_path / "index.html").stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.rglob("*.tmp")) == []


@pytest.mark.parametrize("fails", ["fsync", "replace", "chmod", "write"])
def test_failed_write_leaves_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          fails: str) -> None:
    """Whatever step fails, the old file stays whole and no temporary file is left."""
    (tmp_path / "index.html").write_bytes(b"<p>old</p>")

    def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    if fails == "write":
        real = os.fdopen

        class Full:
            def __init__(self, handle: int, mode: str) -> None:
                self.file = real(handle, mode)

            def __enter__(self) -> Full:
                return self

            def __exit__(self, *exc: object) -> None:
                self.file.close()

            def write(self, content: bytes) -> int:
                self.file.write(content[:3])
                raise OSError(28, "No space left on device")

        monkeypatch.setattr("bot.pagefiles.os.fdopen", Full)
    else:
        monkeypatch.setattr(f"bot.pagefiles.os.{fails}", broken)
    with pytest.raises(PageWriteError, match=r"index\.html: No space left on device"):
        write_files(tmp_path, {"index.html": b"<p>new</p>"})
    assert (tmp_path / "index.html").read_bytes() == b"<p>old</p>"
    assert [p.name for p in tmp_path.iterdir()] == ["index.html"]


@pytest.mark.parametrize("name", ["../escape.html", "/etc/passwd", "a/../../b", "", "a/.."])
def test_writer_refuses_names_outside_the_directory(tmp_path: Path, name: str) -> None:
    """A file name can never point outside the page directory."""
    with pytest.raises(ValueError, match="not a page file name"):
        write_files(tmp_path / "page", {name: b"x"})


def test_writer_on_a_file_instead_of_a_directory(tmp_path: Path) -> None:
    """A page dir that is a file is a clear error naming the path."""
    (tmp_path / "page").write_text("not a dir")
    with pytest.raises(PageWriteError, match="cannot write"):
        write_files(tmp_path / "page", FILES)


# --- the seam for the loop -----------------------------------------------------------------


@pytest.fixture
def keeper(tmp_path: Path) -> PageKeeper:
    return PageKeeper(tmp_path, SITE, refresh=300.0)


class PastCalls:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> Past:
        self.calls += 1
        return Past(days())


LIVE = SCENARIOS["critical"].live


@pytest.mark.parametrize(
    ("second", "at", "changed", "rendered"),
    [
        pytest.param(LIVE, NOW + 30, False, False, id="same-tick-nothing-new"),
        pytest.param(dataclasses.replace(LIVE, open_incident=dataclasses.replace(
            LIVE.open_incident, affected=tuple(dataclasses.replace(a, value=99.0)
                                               for a in LIVE.open_incident.affected),
            last_announced_at=NOW)) if LIVE.open_incident else LIVE,
            NOW + 30, False, False, id="only-values-moved"),
        pytest.param(dataclasses.replace(LIVE, posts=(*LIVE.posts,
                                                      PagePost("inc-1:7", NOW + 20, "More"))),
                     NOW + 30, True, True, id="new-post"),
        pytest.param(dataclasses.replace(LIVE, posts=tuple(
            dataclasses.replace(p, url=None) for p in LIVE.posts)), NOW + 30, True, True,
            id="link-changed"),
        pytest.param(Live(), NOW + 30, True, True, id="resolved"),
        pytest.param(LIVE, NOW + 400, True, True, id="refresh-due"),
    ],
)
def test_keeper_renders_only_when_the_page_changes(keeper: PageKeeper, second: Live, at: float,
                                                   changed: bool, rendered: bool) -> None:
    """An unchanged tick renders nothing; a change or the refresh period renders and writes."""
    past = PastCalls()
    assert keeper.update(LIVE, past, NOW) is True
    assert past.calls == 1
    assert keeper.update(second, past, at) is changed
    assert past.calls == (2 if rendered else 1)


def test_keeper_retries_after_a_failed_write(keeper: PageKeeper,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A write that fails is tried again on the next tick, not forgotten."""
    def broken(*args: Any) -> None:
        raise OSError(13, "Permission denied")

    monkeypatch.setattr("bot.pagefiles.os.replace", broken)
    with pytest.raises(PageWriteError):
        keeper.update(LIVE, PastCalls(), NOW)
    monkeypatch.undo()
    assert keeper.update(LIVE, PastCalls(), NOW + 30) is True
    assert (keeper.directory / "feed.atom").exists()


# --- gathering from the state file ---------------------------------------------------------


def item(key: str, kind: PostKind, state: ItemState, *, status_id: str | None = None,
         folded_into: str | None = None, at: float = NOW) -> ThreadRow:
    return (key, kind.value, f"text of {key}", at, state.value, status_id, folded_into)


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        pytest.param(item("inc-1:0", PostKind.NOTICE, ItemState.SENT, status_id="110"),
                     ("inc-1:0", "https://example.social/statuses/110"), id="sent-links"),
        pytest.param(item("inc-1:1", PostKind.UPDATE, ItemState.PENDING),
                     ("inc-1:1", None), id="pending-shown-unlinked"),
        pytest.param(item("inc-1:2", PostKind.UPDATE, ItemState.FAILED, status_id="9"),
                     ("inc-1:2", None), id="refused-shown-unlinked"),
        pytest.param(item("inc-1:3", PostKind.UPDATE, ItemState.FOLDED,
                          folded_into="catchup:1-2"), ("inc-1:3", None), id="told-in-catchup"),
        pytest.param(item("inc-1:4", PostKind.UPDATE, ItemState.FOLDED, folded_into="inc-1:5"),
                     None, id="superseded-hidden"),
        pytest.param(item("inc-1:0:admin", PostKind.ADMIN, ItemState.SENT, status_id="111"),
                     None, id="admin-hidden"),
        pytest.param(item("inc-10:0", PostKind.NOTICE, ItemState.SENT), None,
                     id="other-thread"),
    ],
)
def test_page_posts(given: ThreadRow, shown: tuple[str, str | None] | None) -> None:
    """The page shows members' posts of the thread as composed, linking to sent ones."""
    posts_ = page_posts([given], "inc-1:", "https://example.social")
    assert [(p.key, p.url) for p in posts_] == ([shown] if shown else [])
    assert all(p.text == given[2] for p in posts_)


@pytest.fixture
def store() -> Iterator[Store]:
    s = Store(":memory:")
    yield s
    s.close()


def test_gather_live_reads_threads_and_maintenance(store: Store) -> None:
    """The open incident's thread and maintenance windows (not silences) come from the store."""
    store.enqueue([Post(key=k, kind=kind, text=k, visibility="public", created_at=NOW + n)
                   for n, (k, kind) in enumerate([
                       ("inc-1:0", PostKind.NOTICE), ("inc-1:0:admin", PostKind.ADMIN),
                       ("inc-1:1", PostKind.UPDATE), ("inc-2:0", PostKind.NOTICE),
                       ("maint:ab:announce", PostKind.NOTICE), ("status:x", PostKind.STATUS)])])
    mutes: list[Mute | RuntimeMute] = [
        RuntimeMute("ab", "maintenance", NOW, NOW + 60, (), "upgrade", "alice"),
        RuntimeMute("cd", "silence", NOW, NOW + 60, (), "", "alice"),
        Mute(NOW + 100, NOW + 200, ("web",), "maintenance: new disks"),
        Mute(NOW + 100, NOW + 200, (), "silenced by bob")]
    live = gather_live(store, incident(affected("web", C)), mutes, "https://example.social")
    assert [p.key for p in live.posts] == ["inc-1:0", "inc-1:1"]
    assert [(m.id, m.text, m.components, [p.key for p in m.posts])
            for m in live.maintenance] == [
        ("ab", "upgrade", (), ["maint:ab:announce"]),
        (f"config-{int(NOW + 100)}-{int(NOW + 200)}", "new disks", ("web",), [])]


def test_watched_days_from_history(store: Store) -> None:
    """Each day's watched time comes from the samples kept: gaps are not watched."""
    history = History(store, interval=30.0)
    windows = page.day_windows(NOW, "UTC", 3)
    first = windows[0][0]
    history.record_many(Sample(at=first + 30 * n) for n in range(DAY // 60))  # half of day 1
    history.record_many(Sample(at=NOW - 3600 + 30 * n) for n in range(120))  # today's last hour
    watched = [round(d.watched_s) for d in watched_days(history, windows)]
    assert watched == [DAY // 2, 0, 3600]


# --- config and command line ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("", PageConfig(), id="absent"),
        pytest.param('dir = "/srv/status"\nurl = "https://status.example.org/"\n'
                     'publish_command = "rsync -a {dir}/ \'status@host:/var/www/st atus/\'"\n'
                     'publish_timeout = "2m"\n',
                     PageConfig("/srv/status", "https://status.example.org",
                                ("rsync", "-a", "{dir}/", "status@host:/var/www/st atus/"),
                                120.0), id="full"),
    ],
)
def test_page_config(tmp_path: Path, text: str, expected: PageConfig) -> None:
    """[page] reads its directory, address, publish command (split) and timeout."""
    path = tmp_path / "config.toml"
    path.write_text("[page]\n" + text)
    assert load_config(path, environ={}).page == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param('url = "javascript:alert(1)"',
                     "page.url: must be an http:// or https:// URL with a host", id="bad-url"),
        pytest.param('url = "https://u:pw@status.example.org"',
                     "page.url: must not contain a user name or password", id="credentials"),
        pytest.param('url = "https://status.example.org/?a=b"',
                     "page.url: must be a plain address", id="query"),
        pytest.param('dir = "/srv/x"\npublish_command = "rsync \'unclosed"',
                     "page.publish_command: cannot be split into arguments", id="quotes"),
        pytest.param('dir = "/srv/x"\npublish_command = "rsync {out}"',
                     "page.publish_command: unknown placeholder {out}", id="placeholder"),
        pytest.param('dir = "/srv/x"\npublish_command = "rsync {"',
                     "page.publish_command: Single '{' encountered", id="brace"),
        pytest.param('publish_command = "rsync -a {dir} host:"',
                     "page.publish_command: needs page.dir", id="no-dir"),
        pytest.param('dir = "/srv/x"\npublish_timeout = 0',
                     "page.publish_timeout: must be from 1s to 1h", id="timeout"),
        pytest.param('dir = 5', "page.dir: must be a path", id="dir-type"),
        pytest.param('dir = " /srv"', "page.dir: must not start or end with blanks",
                     id="dir-blanks"),
        pytest.param('publish = "x"', "page.publish: unknown key", id="unknown-key"),
    ],
)
def test_page_config_errors(tmp_path: Path, text: str, problem: str) -> None:
    """A bad [page] value is an error that names the key."""
    path = tmp_path / "config.toml"
    path.write_text("[page]\n" + text + "\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems


def test_page_command_writes_the_files(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       ) -> None:
    """`statusbot page --out DIR` renders once from the state file and the config."""
    config = tmp_path / "config.toml"
    config.write_text(f'[bot]\nstate_dir = "{tmp_path / "state"}"\n'
                      f'[page]\nurl = "https://status.example.org"\n')
    out = tmp_path / "site"
    assert main(["page", "--config", str(config), "--out", str(out)]) == 0
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == sorted(
        page.FILES)
    assert feedparser.parse((out / "feed.atom").read_bytes()).bozo == 0
    summary = json.loads((out / "api/v2/summary.json").read_text())
    assert summary["status"]["indicator"] == "none"
    assert summary["page"]["url"] == "https://status.example.org"
    assert "wrote index.html" in capsys.readouterr().out


def test_page_command_shows_the_stored_incident(tmp_path: Path) -> None:
    """The open incident and its posts come from the state file, linked to the instance."""
    state = tmp_path / "state"
    state.mkdir()
    store = Store(state / "statusbot.sqlite3")
    store.put_state(INCIDENT_STATE, IncidentState(open=incident(affected("redis", C)),
                                                  next_number=2).to_json())
    store.enqueue([Post("inc-1:0", PostKind.NOTICE, "Background work has stopped.", "public",
                        NOW - 60),
                   Post("inc-1:0:admin", PostKind.ADMIN, "@alice redis down", "direct", NOW)])
    store.mark_sent("inc-1:0", "110", NOW)
    store.close()
    config = tmp_path / "config.toml"
    config.write_text(f'[bot]\nstate_dir = "{state}"\n'
                      '[mastodon]\napi_base_url = "https://example.social"\n')
    out = tmp_path / "site"
    assert main(["page", "--config", str(config), "--out", str(out)]) == 0
    summary = json.loads((out / "api/v2/summary.json").read_text())
    assert summary["status"]["indicator"] == "critical"
    assert [u["body"] for u in summary["incidents"][0]["incident_updates"]] == [
        "Background work has stopped."]
    assert ('<a href="https://example.social/statuses/110">View this post on example.social</a>'
            in (out / "index.html").read_text())
    assert "redis down" not in (out / "index.html").read_text()


@pytest.mark.parametrize(
    ("args", "page_text", "message"),
    [
        pytest.param([], "", "no directory: give --out DIR or set [page] dir", id="no-dir"),
        pytest.param(["--out", "{tmp}/file/sub"], "", "is not a directory", id="file-in-path"),
    ],
)
def test_page_command_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                             args: list[str], page_text: str, message: str) -> None:
    """Without a usable directory the command says why and exits 2."""
    (tmp_path / "file").write_text("x")
    config = tmp_path / "config.toml"
    config.write_text(f'[bot]\nstate_dir = "{tmp_path / "state"}"\n[page]\n{page_text}')
    argv = ["page", "--config", str(config), *(a.format(tmp=tmp_path) for a in args)]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("directory", "status", "message"),
    [
        pytest.param("{tmp}/site", 0, "", id="creatable"),
        pytest.param("{tmp}/file/site", 2, "page.dir: cannot create {tmp}/file/site: "
                     "{tmp}/file is not a directory", id="below-a-file"),
        pytest.param("{tmp}/file", 2, "page.dir: {tmp}/file is not a directory", id="a-file"),
    ],
)
def test_config_check_looks_at_the_page_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            directory: str, status: int, message: str) -> None:
    """config-check says at start-up when the page cannot be written where configured."""
    (tmp_path / "file").write_text("x")
    config = tmp_path / "config.toml"
    config.write_text(f'[bot]\nstate_dir = "{tmp_path / "state"}"\n'
                      f'[page]\ndir = "{directory.format(tmp=tmp_path)}"\n')
    assert main(["config-check", str(config)]) == status
    assert message.format(tmp=tmp_path) in capsys.readouterr().err
