"""Draw the donor report's chart as a PNG in a child process, so the bot's memory does not grow.

``render_chart(data, out)`` writes ``data`` (``bot.report.chart_data``) to a
JSON file and runs ``python -m bot.chart <json> <png>`` with the bot's own
interpreter. Only that child imports matplotlib (the ``chart`` extra,
``pip install 'statusbot[chart]'``) with the Agg backend; the parent never
does, so matplotlib's tens of megabytes are returned to the system when the
child exits (see ``bench/chart_memory.py`` and ``bench/RESULTS.md``).

The picture: ``defaults.CHART_WIDTH_PX`` x ``defaults.CHART_HEIGHT_PX``
(1200 x 1350) pixels at ``defaults.CHART_DPI`` (150), portrait, with large
type so that it reads on a phone. Two stacked panels sharing the time axis:
memory used (mean line, band up to each bucket's peak) against a horizontal
"provisioned" line, in GiB; and how long background work waited (each
bucket's worst), in minutes. A null point breaks the line (the bot was not
watching then). When the month saw several hosts (``hosts`` in the data), a
middle panel shows each host's memory as bars (provisioned, peak, average used;
the name above, "peak of provisioned" on the right) and all hosts together
under its axis; the picture grows by ``HOSTS_PANEL_PX`` plus ``HOST_ROW_PX`` a
host (``chart_height``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot import defaults

if TYPE_CHECKING:  # the parent never imports matplotlib; only the child draws
    from matplotlib.axes import Axes

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
"""The first eight bytes of every PNG file."""

EXIT_NO_MATPLOTLIB = 3
"""The child's exit status when matplotlib cannot be imported."""

FONT_SIZE = 20
"""Base font size in points: about 42 px at 150 dpi, legible when a phone shows the 1200 px
image about 400 px wide."""


class ChartError(Exception):
    """The chart could not be drawn: matplotlib is missing, or the child failed or timed out."""


EDGE_MARGIN_IN = 0.15
"""Inches kept free around the panels and their labels (22 px at the chart's 150 dpi)."""

NO_READINGS = "no readings"
"""What a chart panel without a single reading says."""


def render_chart(figures_json: dict[str, Any], out: Path, *,
                 timeout: float = defaults.CHART_TIMEOUT) -> Path:
    """Draw the chart of ``figures_json`` into the PNG ``out`` in a child process; return ``out``.

    Raises ``ChartError`` when matplotlib is not installed (the ``chart``
    extra), when the child fails or runs longer than ``timeout`` seconds, or
    when it leaves no PNG behind.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="statusbot-chart-") as folder:
        source = Path(folder) / "chart.json"
        source.write_text(json.dumps(figures_json), encoding="utf-8")
        try:
            done = subprocess.run(
                [sys.executable, "-m", "bot.chart", str(source), str(out)],
                capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as error:
            raise ChartError(f"drawing the chart took longer than {timeout:g} s") from error
        except OSError as error:
            raise ChartError(f"could not start the chart process: {error}") from error
    if done.returncode == EXIT_NO_MATPLOTLIB:
        raise ChartError("matplotlib is not installed: install the chart extra "
                         "(pip install 'statusbot[chart]') to attach charts to reports")
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise ChartError(f"the chart process failed (exit {done.returncode}): {last}")
    try:
        with out.open("rb") as png:
            head = png.read(len(PNG_SIGNATURE))
    except OSError as error:
        raise ChartError(f"the chart process wrote no file at {out}") from error
    if head != PNG_SIGNATURE:
        raise ChartError(f"the chart process wrote something that is not a PNG at {out}")
    return out


HOSTS_PANEL_PX = 250
"""Pixels the middle panel (memory per host) adds to the chart's height, before its rows."""

HOST_ROW_PX = 80
"""Pixels each host's row adds to the chart's height."""

HOST_LABEL_CHARS = 32
"""Most characters of a host name on the chart's middle panel (longer ones end in "…")."""


def chart_height(hosts: int) -> int:
    """Return the chart's height in pixels: ``CHART_HEIGHT_PX``, taller by a panel with hosts."""
    if hosts <= 0:
        return defaults.CHART_HEIGHT_PX
    return defaults.CHART_HEIGHT_PX + HOSTS_PANEL_PX + HOST_ROW_PX * hosts


def _hosts_ratio(hosts: int) -> float:
    """Return the middle panel's height against one of the other panels' (250 px: titles)."""
    other = (defaults.CHART_HEIGHT_PX - 250) / 2
    return (HOSTS_PANEL_PX + HOST_ROW_PX * hosts) / other


_PLAIN = str.maketrans({"\N{FULLWIDTH COMMERCIAL AT}": "@", "\N{ONE DOT LEADER}": ".",
                        "\N{RATIO}": ":", "\N{MUSIC SHARP SIGN}": "#"})
"""``neutral``'s look-alikes back to plain characters: a picture forms no mention or link, and
the chart's font lacks some of them."""


def _label(name: str) -> str:
    """Return a host name as the middle panel shows it: plain characters, not too long."""
    name = name.translate(_PLAIN)
    if len(name) <= HOST_LABEL_CHARS:
        return name
    return name[:HOST_LABEL_CHARS - 1] + "\N{HORIZONTAL ELLIPSIS}"


def hosts_panel(panel: Axes, hosts: list[dict[str, Any]], total: dict[str, Any] | None) -> None:
    """Draw each host's memory as bars: provisioned (pale), peak used, average used.

    Each row has the host's name above its bars on the left and "peak / provisioned"
    on the right, inside the panel: names as tick labels would widen the left margin
    of every panel, and the layout would then narrow them all.
    """
    gib = float(1 << 30)
    rows = list(range(len(hosts)))[::-1]  # the first host on top

    def values(key: str) -> list[float]:
        return [max(0.0, float(h.get(key) or 0.0)) / gib for h in hosts]

    provisioned, peak, mean = values("provisioned"), values("peak"), values("mean")
    panel.barh(rows, provisioned, height=0.5, color="#d9d9e3", label="provisioned")
    panel.barh(rows, peak, height=0.32, color="#f4a259", label="peak")
    panel.barh(rows, mean, height=0.16, color="#c8553d", label="used (average)")
    widest = max(provisioned + peak, default=0.0)
    panel.set_xlim(0, widest * 1.03 if widest > 0 else 1.0)
    panel.set_ylim(-0.4, len(hosts) - 0.1)
    panel.set_yticks([])
    for row, host, used, whole in zip(rows, hosts, peak, provisioned, strict=True):
        for text in (
                panel.text(0.01, row + 0.27, _label(str(host.get("name", "?"))), va="bottom",
                           ha="left", fontsize=FONT_SIZE - 3,
                           transform=panel.get_yaxis_transform()),
                panel.text(0.99, row + 0.27, f"{used:.1f} of {whole:.1f}", va="bottom",
                           ha="right", fontsize=FONT_SIZE - 3,
                           transform=panel.get_yaxis_transform())):
            text.set_in_layout(False)
    # a short title: a left-aligned title wider than the panel makes the layout narrow
    # every panel to fit it
    panel.set_title("Memory per server (GiB)", loc="left")
    if total is not None:
        panel.set_xlabel(f"all together: {float(total.get('peak') or 0) / gib:.1f} of "
                         f"{float(total.get('provisioned') or 0) / gib:.1f} at peak",
                         fontsize=FONT_SIZE - 2)
    # below the tick labels (and the total): the pad is in the legend's font size, so the
    # gap is the same whatever the panel's height
    panel.legend(loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3,
                 borderaxespad=2.6 if total is None else 4.6, fontsize=FONT_SIZE - 6,
                 frameon=False)
    panel.grid(axis="x", alpha=0.3)


def draw(data: dict[str, Any], out: Path) -> None:
    """Draw the chart in this process (the child's work; the bot calls ``render_chart``)."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    try:
        zone: Any = ZoneInfo(str(data.get("timezone") or "UTC"))
    except (ValueError, OSError, KeyError):
        zone = ZoneInfo("UTC")
    nan = float("nan")

    def times(values: list[float]) -> list[datetime]:
        return [datetime.fromtimestamp(value, zone) for value in values]

    def numbers(values: list[float | None], scale: float) -> list[float]:
        return [nan if value is None else value / scale for value in values]

    gib = float(1 << 30)
    memory = data["memory"]
    latency = data["latency"]
    hosts = list(data.get("hosts") or [])
    plt.rcParams.update({"font.size": FONT_SIZE, "axes.titlesize": FONT_SIZE + 2,
                         "axes.titleweight": "bold", "lines.linewidth": 3})
    height = chart_height(len(hosts))
    if hosts:
        figure, (top, middle, bottom) = plt.subplots(
            3, 1, figsize=(defaults.CHART_WIDTH_PX / defaults.CHART_DPI,
                           height / defaults.CHART_DPI),
            dpi=defaults.CHART_DPI, layout="constrained",
            gridspec_kw={"height_ratios": [1.0, _hosts_ratio(len(hosts)), 1.0]})
        top.sharex(bottom)
        top.tick_params(labelbottom=False)
        hosts_panel(middle, hosts, data.get("hosts_total"))
    else:
        figure, (top, bottom) = plt.subplots(
            2, 1, sharex=True, figsize=(defaults.CHART_WIDTH_PX / defaults.CHART_DPI,
                                        height / defaults.CHART_DPI),
            dpi=defaults.CHART_DPI, layout="constrained")
    figure.suptitle(str(data.get("title", "")), fontsize=FONT_SIZE + 4)
    # a margin, so the outermost labels do not touch (and seem cut at) the image's edge
    figure.get_layout_engine().set(w_pad=EDGE_MARGIN_IN, h_pad=EDGE_MARGIN_IN)  # type: ignore[union-attr, call-arg]

    at = times(memory["at"])
    mean = numbers(memory["mean"], gib)
    peak = numbers(memory["max"], gib)

    def empty(panel: Axes) -> None:
        # an empty panel says so instead of drawing a scale (and a 0 GiB line) over nothing
        panel.set_yticks([])
        panel.text(0.5, 0.5, NO_READINGS, transform=panel.transAxes, ha="center",
                   va="center", fontsize=FONT_SIZE + 2, color="#555555")

    top.set_title("Memory (GiB)", loc="left")
    if any(value == value for value in mean):  # some reading that is not a gap (NaN)
        top.fill_between(at, mean, peak, color="#f4a259", alpha=0.45, label="peak",
                         linewidth=0)
        top.plot(at, mean, color="#c8553d", label="used (average)")
        provisioned = float(data["provisioned_bytes"]) / gib
        if provisioned > 0:
            top.axhline(provisioned, color="#2d3047", linestyle="--", linewidth=3,
                        label="provisioned")
            top.set_ylim(0, provisioned * 1.12)
        top.legend(loc="lower left", fontsize=FONT_SIZE - 4, ncol=3, frameon=False)
        top.grid(axis="y", alpha=0.3)
    else:
        empty(top)

    waits = numbers(latency["max"], 60.0)
    bottom.set_title("Longest wait for background work (min)", loc="left")
    if any(value == value for value in waits):
        bottom.plot(times(latency["at"]), waits, color="#1b998b")
        bottom.set_ylim(bottom=0)
        bottom.grid(axis="y", alpha=0.3)
    else:
        empty(bottom)
    start, end = data.get("start"), data.get("end")
    if start is not None and end is not None:
        bottom.set_xlim(datetime.fromtimestamp(start, zone), datetime.fromtimestamp(end, zone))
    bottom.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=3, maxticks=5, tz=zone))  # type: ignore[no-untyped-call]
    bottom.xaxis.set_major_formatter(mdates.DateFormatter("%d %b", tz=zone))  # type: ignore[no-untyped-call]
    # the labels at the axis' ends would overhang the figure's edge: align them inwards
    figure.canvas.draw()
    bottom.set_xticks(bottom.get_xticks())
    low, high = bottom.get_xlim()
    for tick, label in zip(bottom.get_xticks(), bottom.get_xticklabels(), strict=True):
        if tick <= low:
            label.set_horizontalalignment("left")
        elif tick >= high:
            label.set_horizontalalignment("right")
    figure.savefig(out, format="png", dpi=defaults.CHART_DPI)
    plt.close(figure)


def main(argv: list[str]) -> int:
    """Child entry point: ``python -m bot.chart <json> <png>``; 3 when matplotlib is missing."""
    if len(argv) != 2:
        print("usage: python -m bot.chart <data.json> <out.png>", file=sys.stderr)
        return 2
    try:
        import matplotlib  # noqa: F401
    except ImportError as error:
        print(f"matplotlib is not installed: {error}", file=sys.stderr)
        return EXIT_NO_MATPLOTLIB
    data = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    draw(data, Path(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
