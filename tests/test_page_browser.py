"""The status page in a real browser: headless Debian chromium, checked with axe-core.

The page is rendered by ``bot.page`` at a fixed clock for all normal, an
open critical incident and planned maintenance under way (see
``tests/integration/page_states.py``), written as ``statusbot page`` writes
it, and loaded from ``file://`` at 360 by 800 (a phone) and 1280 by 900.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration import browser as driver
from tests.integration import npm, page_states
from tests.integration.browser import Chromium, Tab
from tests.integration.conftest import need

pytestmark = pytest.mark.integration

SIZES = [pytest.param((360, 800), id="360x800"), pytest.param((1280, 900), id="1280x900")]
STATES = [pytest.param(state, id=state) for state in page_states.STATES]
SCHEMES = [pytest.param("light", id="light"), pytest.param("dark", id="dark")]

BLOCKING = ("serious", "critical")
"""axe-core impacts the page must not have."""


@pytest.fixture(scope="module")
def browser() -> Iterator[Chromium]:
    """One headless chromium for the module; each test opens its own tab."""
    need(driver.missing())
    with driver.chromium() as running:
        yield running


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every state rendered into a directory of its own: state → its index.html."""
    root = tmp_path_factory.mktemp("page")
    return {state: page_states.write(state, root / state)
            for state in (*page_states.STATES, "hostile")}


@pytest.fixture(scope="module")
def axe_source() -> str:
    """axe-core's browser build, as installed by scripts/test.sh."""
    need(npm.missing("axe-core"))
    return (npm.package_dir("axe-core") / "axe.min.js").read_text(encoding="utf-8")


@pytest.fixture
def tab(browser: Chromium) -> Iterator[Tab]:
    """A fresh tab (its own viewport, media and script settings)."""
    opened = browser.tab()
    yield opened
    opened.close()


def show(tab: Tab, index: Path, size: tuple[int, int], *, scheme: str = "light",
         javascript: bool = True) -> None:
    """Load ``index`` in ``tab`` at ``size``, in a colour scheme, with or without scripts."""
    tab.viewport(*size)
    tab.color_scheme(scheme)
    tab.javascript(javascript)
    tab.load(index.as_uri())


def summary_of(index: Path) -> dict[str, Any]:
    """The summary.json rendered beside ``index``: what the HTML must show too."""
    loaded: dict[str, Any] = json.loads(
        (index.parent / "api" / "v2" / "summary.json").read_text(encoding="utf-8"))
    return loaded


LAYOUT = """(() => {
  const box = (el) => { const r = el.getBoundingClientRect();
    return {top: r.top, bottom: r.bottom, left: r.left, right: r.right, width: r.width,
            height: r.height, visibility: getComputedStyle(el).visibility,
            display: getComputedStyle(el).display, text: el.innerText.trim(),
            onTop: el.contains(document.elementFromPoint(r.left + r.width / 2,
                                                         r.top + r.height / 2))}; };
  const right = Math.max(...[...document.body.querySelectorAll('*')]
                             .map(el => el.getBoundingClientRect().right));
  return {width: innerWidth, height: innerHeight,
          scrollWidth: document.documentElement.scrollWidth, widest: right,
          overall: box(document.querySelector('.overall')),
          parts: [...document.querySelectorAll('.parts li')].map(li => ({
            row: box(li), name: li.children[0].innerText.trim(),
            state: li.children[1].innerText.trim()}))};
})()"""


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("state", STATES)
def test_the_state_and_the_parts_are_seen_at_once_without_javascript(
        tab: Tab, pages: dict[str, Path], state: str, size: tuple[int, int]) -> None:
    """Scripts off: nothing wider than the screen; the top line and every part on screen one."""
    index = pages[state]
    show(tab, index, size, javascript=False)
    layout = tab.evaluate(LAYOUT)
    assert layout["width"] == size[0] and layout["height"] == size[1]
    assert layout["scrollWidth"] <= size[0], "the page scrolls sideways"
    assert layout["widest"] <= size[0] + 0.5, "an element reaches past the screen's edge"
    summary = summary_of(index)
    overall = layout["overall"]
    assert overall["text"] == summary["status"]["description"]
    parts = layout["parts"]
    names = {c["name"]: c["status"] for c in summary["components"]}
    assert [p["name"] for p in parts] == list(names)
    for boxed in (overall, *(p["row"] for p in parts)):
        assert boxed["width"] > 0 and boxed["height"] > 0, boxed
        assert boxed["visibility"] == "visible" and boxed["display"] != "none", boxed
        assert boxed["top"] >= 0 and boxed["bottom"] <= size[1], f"below the first screen: {boxed}"
        assert boxed["left"] >= 0 and boxed["right"] <= size[0], boxed
        assert boxed["onTop"], f"covered by something else: {boxed}"
    words = {"operational": "Normal", "degraded_performance": "Slow",
             "partial_outage": "Disrupted", "major_outage": "Stopped",
             "under_maintenance": "Maintenance"}
    assert {p["name"]: p["state"] for p in parts} == {n: words[s] for n, s in names.items()}


def test_scripts_are_really_off_and_the_page_reads_the_same(
        tab: Tab, pages: dict[str, Path], tmp_path: Path) -> None:
    """The switch works (a script of our own does not run), and the page is the same text."""
    control = tmp_path / "control.html"
    control.write_text("<!DOCTYPE html><title>before</title>"
                       "<script>document.title = 'script ran'</script>", encoding="utf-8")
    show(tab, control, (360, 800), javascript=False)
    assert tab.evaluate("document.title") == "before"
    show(tab, control, (360, 800), javascript=True)
    assert tab.evaluate("document.title") == "script ran"
    index = pages["incident"]
    read = "document.body.innerText"
    show(tab, index, (360, 800), javascript=True)
    with_scripts = tab.evaluate(read)
    show(tab, index, (360, 800), javascript=False)
    assert tab.evaluate(read) == with_scripts
    assert tab.evaluate("document.scripts.length") == 0


@pytest.mark.parametrize("state", STATES)
def test_nothing_is_loaded_from_elsewhere(tab: Tab, pages: dict[str, Path], state: str) -> None:
    """The only request is the page itself: no font, style, image or script from anywhere."""
    index = pages[state]
    show(tab, index, (1280, 900))
    assert tab.requested() == [index.as_uri()]
    entries = tab.evaluate("['navigation', 'resource'].map("
                           "t => performance.getEntriesByType(t).map(e => e.name))")
    assert entries == [[index.as_uri()], []]
    assert tab.evaluate("document.fonts.size") == 0
    assert tab.evaluate("[...document.styleSheets].map(s => s.href)") == [None]
    css = tab.evaluate("[...document.styleSheets[0].cssRules].map(r => r.cssText).join('\\n')")
    assert not re.search(r"url\(|@import|@font-face", css)


def luminance(rgb: str) -> float:
    """Relative luminance (WCAG) of a computed ``rgb(r, g, b)`` colour."""
    values = [int(v) / 255 for v in re.findall(r"\d+", rgb)[:3]]
    linear = [v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4 for v in values]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


@pytest.mark.parametrize("state", STATES)
def test_dark_mode_darkens_the_page(tab: Tab, pages: dict[str, Path], state: str) -> None:
    """prefers-color-scheme: dark gives a dark background with light text, light the reverse."""
    colours = "(s => [s.backgroundColor, s.color])(getComputedStyle(document.body))"
    show(tab, pages[state], (360, 800), scheme="light")
    light_bg, light_fg = tab.evaluate(colours)
    show(tab, pages[state], (360, 800), scheme="dark")
    dark_bg, dark_fg = tab.evaluate(colours)
    assert light_bg != dark_bg
    assert luminance(light_bg) > 0.9 and luminance(light_fg) < 0.1, (light_bg, light_fg)
    assert luminance(dark_bg) < 0.1 and luminance(dark_fg) > 0.5, (dark_bg, dark_fg)


AXE_RUN = """axe.run(document).then(r => r.violations.map(v => ({
  id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(' '))})))"""


def axe_violations(tab: Tab, axe_source: str) -> list[dict[str, Any]]:
    """Inject axe-core into the loaded page and return what it finds."""
    tab.evaluate(axe_source)
    found: list[dict[str, Any]] = tab.evaluate(AXE_RUN)
    return found


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("state", [*STATES, pytest.param("hostile", id="hostile")])
def test_axe_finds_nothing_serious(tab: Tab, pages: dict[str, Path], axe_source: str,
                                   state: str, size: tuple[int, int], scheme: str) -> None:
    """axe-core (WCAG 2 A/AA and best practices) reports no serious or critical violation."""
    show(tab, pages[state], size, scheme=scheme)
    violations = axe_violations(tab, axe_source)
    assert [v for v in violations if v["impact"] in BLOCKING] == []


def test_axe_sees_a_planted_violation(tab: Tab, pages: dict[str, Path], axe_source: str,
                                      tmp_path: Path) -> None:
    """The check can fail: grey on white and an unnamed link are found as serious."""
    html = pages["normal"].read_text(encoding="utf-8").replace(
        "</main>", '<p style="color:#bbb">faint</p><a href="#x"></a></main>')
    spoiled = tmp_path / "index.html"
    spoiled.write_text(html, encoding="utf-8")
    show(tab, spoiled, (360, 800))
    found = {v["id"]: v["impact"] for v in axe_violations(tab, axe_source)}
    assert found == {"color-contrast": "serious", "link-name": "serious"}


def test_hostile_text_stays_text(tab: Tab, pages: dict[str, Path]) -> None:
    """Queue names like @someone or a script tag, and markup in a note, never run or link."""
    index = pages["hostile"]
    show(tab, index, (360, 800), javascript=True)
    found = tab.evaluate("""({
      owned: typeof window.__owned,
      scripts: document.scripts.length, images: document.images.length,
      handlers: [...document.querySelectorAll('*')].filter(
          el => [...el.attributes].some(a => a.name.startsWith('on'))).length,
      links: [...document.links].map(a => a.getAttribute('href')),
      text: document.body.innerText,
      overall: document.querySelector('.overall').innerText})""")
    assert found["overall"] == summary_of(index)["status"]["description"]
    assert found["owned"] == "undefined"
    assert (found["scripts"], found["images"], found["handlers"]) == (0, 0, 0)
    assert page_states.HOSTILE_TEXT in found["text"]
    for link in found["links"]:
        assert link in ("feed.atom", "api/v2/summary.json") \
            or link.startswith("https://example.social/statuses/"), link
