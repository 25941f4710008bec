"""Tests for bot.chart: a real PNG of the documented size from the child, clear errors otherwise."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from bot import chart, defaults, report
from bot.model import HostPoint, Point

T0 = 1714521600.0
H = 3600.0


def data() -> dict[str, object]:
    memory = [Point(T0 + i * H, 1e9, 2e9 + (i % 24) * 1e7, 2.5e9, 60) for i in range(720)
              if not 200 <= i < 230]
    latency = [Point(T0 + i * H, 0, 2, 5 + (600 if i == 300 else 0), 60) for i in range(720)]
    figures = report.monthly_figures(T0, T0 + 720 * H, memory, 4 << 30, [], None, latency, [],
                                     {}, None, "EUR", None, None, 690 * H)
    return report.chart_data(figures)


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == chart.PNG_SIGNATURE and head[12:16] == b"IHDR"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def test_chart_is_a_png_of_the_documented_size(tmp_path: Path) -> None:
    """The child draws a PNG of CHART_WIDTH_PX x CHART_HEIGHT_PX."""
    out = chart.render_chart(data(), tmp_path / "month.png")
    assert png_size(out) == (defaults.CHART_WIDTH_PX, defaults.CHART_HEIGHT_PX)


def test_parent_never_imports_matplotlib(tmp_path: Path) -> None:
    """Rendering leaves matplotlib out of the calling process."""
    if "matplotlib" in sys.modules:
        pytest.skip("another test imported matplotlib into this process")
    chart.render_chart(data(), tmp_path / "month.png")
    assert "matplotlib" not in sys.modules


def test_missing_matplotlib_is_a_chart_error(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Without matplotlib the child exits 3 and the caller gets a ChartError naming the extra."""
    shim = tmp_path / "shim" / "matplotlib"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError('simulated: no matplotlib')\n")
    monkeypatch.setenv("PYTHONPATH", str(shim.parent))
    with pytest.raises(chart.ChartError, match=r"statusbot\[chart\]"):
        chart.render_chart(data(), tmp_path / "month.png")
    assert not (tmp_path / "month.png").exists()


def test_child_failure_is_a_chart_error(tmp_path: Path) -> None:
    """Bad data makes the child fail; the error carries its last message."""
    with pytest.raises(chart.ChartError, match="failed"):
        chart.render_chart({"memory": {}}, tmp_path / "month.png")


def test_timeout_is_a_chart_error(tmp_path: Path) -> None:
    """A child that takes too long is killed and reported."""
    with pytest.raises(chart.ChartError, match="longer than"):
        chart.render_chart(data(), tmp_path / "month.png", timeout=0.01)


INSPECT = """
import json, sys
from pathlib import Path
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from bot import chart
figures = []
plt.close = figures.append  # keep the figure to look at it
chart.draw(json.loads(sys.stdin.read()), Path(sys.argv[1]))
(figure,) = figures
renderer = figure.canvas.get_renderer()
width = figure.bbox.width
print(json.dumps({
    "texts": [[t.get_text() for t in ax.texts] for ax in figure.axes],
    "legend": [[t.get_text() for t in ax.get_legend().get_texts()] if ax.get_legend() else []
               for ax in figure.axes],
    "labels": [[label.get_text(), bool(label.get_window_extent(renderer).x0 >= 15),
                bool(label.get_window_extent(renderer).x1 <= width - 15)]
               for label in figure.axes[1].get_xticklabels() if label.get_text()],
}))
"""


def empty_month() -> dict[str, object]:
    start, end = 1793491200.0, 1796083200.0  # November 2026, UTC
    figures = report.monthly_figures(start, end, [], 0, [], None, [], [], {}, None, "EUR",
                                     None, None, 0.0)
    return report.chart_data(figures)


@pytest.mark.parametrize(
    ("name", "expected_texts", "expected_legend"),
    [
        pytest.param("empty", [[chart.NO_READINGS], [chart.NO_READINGS]], [[], []],
                     id="no-readings"),
        pytest.param("full", [[], []], [["peak", "used (average)", "provisioned"], []],
                     id="a-month-of-readings"),
    ],
)
def test_chart_panels_and_date_labels(tmp_path: Path, name: str,
                                      expected_texts: list[list[str]],
                                      expected_legend: list[list[str]]) -> None:
    """An empty panel says "no readings" (no 0 GiB line); every date label fits the image."""
    source = empty_month() if name == "empty" else data()
    result = subprocess.run([sys.executable, "-c", INSPECT, str(tmp_path / "m.png")],
                            input=json.dumps(source), capture_output=True, text=True,
                            check=True, timeout=120)
    seen = json.loads(result.stdout)
    assert (seen["texts"], seen["legend"]) == (expected_texts, expected_legend)
    assert seen["labels"] and all(inside_left and inside_right
                                  for _, inside_left, inside_right in seen["labels"])


HOSTS_INSPECT = """
import json, sys
from pathlib import Path
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from bot import chart
figures = []
plt.close = figures.append
chart.draw(json.loads(sys.stdin.read()), Path(sys.argv[1]))
(figure,) = figures
middle = figure.axes[1]
print(json.dumps({"axes": len(figure.axes), "bars": len(middle.patches),
                  "texts": [t.get_text() for t in middle.texts],
                  "widths": [round(ax.get_position().width, 3) for ax in figure.axes]}))
"""


def hosts_data(count: int) -> dict[str, object]:
    names = ["web-1", "postgresql-primary-database-server.example.org", "@evil\u202e"]
    names += [f"sidekiq-{i}" for i in range(count)]
    hosts = {names[k]: [HostPoint(T0 + i * H, 1e9, 2e9, 3e9, 60, 8 << 30) for i in range(720)]
             for k in range(count)}
    memory = [Point(T0 + i * H, 1e9, 2e9, 2.5e9, 60) for i in range(720)]
    figures = report.monthly_figures(T0, T0 + 720 * H, memory, 4 << 30, [], None, [], [], {},
                                     None, "EUR", None, None, 720 * H, hosts=hosts)
    return report.chart_data(figures)


@pytest.mark.parametrize("count", [pytest.param(3, id="3-hosts"),
                                   pytest.param(12, id="12-hosts")])
def test_hosts_panel(tmp_path: Path, count: int) -> None:
    """Several hosts add a middle panel (3 bars a host, names, figures) and grow the picture.

    Every panel keeps the full width: long names do not narrow the layout.
    """
    out = chart.render_chart(hosts_data(count), tmp_path / "month.png")
    assert png_size(out) == (defaults.CHART_WIDTH_PX, chart.chart_height(count))
    result = subprocess.run([sys.executable, "-c", HOSTS_INSPECT, str(tmp_path / "m.png")],
                            input=json.dumps(hosts_data(count)), capture_output=True, text=True,
                            check=True, timeout=120)
    seen = json.loads(result.stdout)
    assert (seen["axes"], seen["bars"]) == (3, 3 * count)
    names = seen["texts"][0::2]
    assert "@evil" in names and "postgresql-primary-database-ser\N{HORIZONTAL ELLIPSIS}" in names
    assert set(seen["texts"][1::2]) == {"2.8 of 8.0"}
    assert min(seen["widths"]) > 0.8


def test_one_host_keeps_the_two_panels(tmp_path: Path) -> None:
    """Without several hosts the chart is as before: two panels, the documented size."""
    assert report.chart_data(report.monthly_figures(
        T0, T0 + H, [], 0, [], None, [], [], {}, None, "EUR", None, None, H,
        hosts={"web-1": [HostPoint(T0, 1.0, 1.0, 1.0, 1, 2.0)]}))["hosts"] == []
    assert chart.chart_height(0) == defaults.CHART_HEIGHT_PX
