"""Measure what drawing the donor chart costs the bot's memory: child process vs in-process.

Run: ``.venv/bin/python bench/chart_memory.py [--write]``. Renders 5 charts
through ``bot.chart.render_chart`` (a child process each) and records this
process's RSS before and after; then, in the same process, imports matplotlib
and draws 5 charts in-process to show what the child spares. ``--write``
replaces the section ``## Chart rendering and the bot's memory`` in
bench/RESULTS.md (the other sections are left as they are).
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psutil

from bot import chart, report
from bot.model import Point

HEADING = "## Chart rendering and the bot's memory"
RESULTS = Path(__file__).with_name("RESULTS.md")
CHARTS = 5
MB = 1e6


def month_data() -> dict[str, Any]:
    """Return a month of hourly samples with a gap, as the report would pass them."""
    start = 1714521600.0
    hours = 31 * 24
    memory = [Point(start + i * 3600, 1.8e9, 2.2e9 + (i % 24) * 2e7, 2.6e9 + (i % 24) * 3e7, 60)
              for i in range(hours) if not 200 <= i < 230]
    latency = [Point(start + i * 3600, 0, 2, 5 + (900 if i % 97 == 0 else 0), 60)
               for i in range(hours) if not 200 <= i < 230]
    figures = report.monthly_figures(start, start + hours * 3600, memory, 4 << 30, [], None,
                                     latency, [], {}, None, "EUR", None, None,
                                     (hours - 30) * 3600)
    return report.chart_data(figures)


def rss() -> float:
    """Return the resident set size of this process in MB."""
    return float(psutil.Process().memory_info().rss) / MB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    args = parser.parse_args()
    data = month_data()
    rows: list[tuple[str, float, float, float, float]] = []
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        assert "matplotlib" not in sys.modules
        before = rss()
        began = time.perf_counter()
        for index in range(CHARTS):
            chart.render_chart(data, out / f"child-{index}.png")
        seconds = (time.perf_counter() - began) / CHARTS
        after = rss()
        assert "matplotlib" not in sys.modules
        rows.append((f"`render_chart` (child process), {CHARTS} charts", before, after,
                     after - before, seconds))
        child_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / MB

        before = rss()
        began = time.perf_counter()
        for index in range(CHARTS):
            chart.draw(data, out / f"inline-{index}.png")  # imports matplotlib here
        seconds = (time.perf_counter() - began) / CHARTS
        after = rss()
        rows.append((f"matplotlib in the bot's process (import + draw), {CHARTS} charts",
                     before, after, after - before, seconds))

    table = ["| How | RSS before (MB) | RSS after (MB) | growth (MB) | time per chart (s) |",
             "|---|---:|---:|---:|---:|"]
    table += [f"| {name} | {b:.1f} | {a:.1f} | **{g:+.1f}** | {s:.2f} |"
              for name, b, a, g, s in rows]
    import matplotlib

    section = "\n".join([
        HEADING, "",
        "Command: `.venv/bin/python bench/chart_memory.py --write`", "",
        f"- Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- Python {platform.python_version()}, matplotlib {matplotlib.__version__}, "
        f"{psutil.cpu_count()} CPUs, {platform.system()} {platform.release()}",
        "- Chart: the donor chart of a 31-day month of hourly points with a 30-hour gap, "
        "1200 x 1350 px at 150 dpi", "",
        *table, "",
        f"RSS in MB (10^6 bytes), `psutil.Process().memory_info().rss` of the bench process "
        f"(which imports `bot.report` and `bot.chart` like the bot). The children peaked at "
        f"{child_peak:.0f} MB each (`RUSAGE_CHILDREN` max RSS); that memory is returned when "
        f"each child exits. Requirement: growth below 5 MB with the child process.", ""])
    print(section)
    if args.write:
        text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
        if HEADING in text:
            head, rest = text.split(HEADING, 1)
            cut = rest.find("\n## ")
            tail = "" if cut < 0 else rest[cut + 1:]
            text = head + section + ("\n" + tail if tail else "")
        else:
            text = text.rstrip("\n") + "\n\n" + section
        RESULTS.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
