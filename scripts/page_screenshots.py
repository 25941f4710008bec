"""Screenshots of the status page for docs/: three states, a phone and a desktop, one dark.

Renders the page with ``bot.page`` at the fixed clock of
``tests/integration/page_states.py`` (all normal, an open critical
incident, maintenance under way), loads each in headless Debian chromium
through the same driver the browser tests use, and writes the whole page's
height as ``docs/page-{normal,incident,maintenance}-{360,1280}.png`` plus
``docs/page-incident-360-dark.png``.

Usage: ``.venv/bin/python scripts/page_screenshots.py [--out docs]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the driver and the states live in the test package

from tests.integration import browser, page_states  # noqa: E402

SIZES = {360: 800, 1280: 900}
"""Viewport width → height, in CSS pixels."""


def main() -> int:
    """Write the screenshots; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs", help="directory for the PNGs")
    args = parser.parse_args()
    problem = browser.missing()
    if problem is not None:
        print(problem, file=sys.stderr)
        return 1
    shots = [(state, width, "light") for state in page_states.STATES for width in SIZES]
    shots.append(("incident", 360, "dark"))
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work, browser.chromium() as chromium:
        for state, width, scheme in shots:
            index = page_states.write(state, Path(work) / state)
            tab = chromium.tab()
            tab.viewport(width, SIZES[width])
            tab.color_scheme(scheme)
            tab.load(index.as_uri())
            suffix = "-dark" if scheme == "dark" else ""
            target = args.out / f"page-{state}-{width}{suffix}.png"
            tab.screenshot(target)
            tab.close()
            print(target)
        print(chromium.product)
    return 0


if __name__ == "__main__":
    sys.exit(main())
