"""The wall clock is read only where DESIGN.md says: at the edges, through a ``clock``.

Everything else takes ``now`` or a ``clock`` callable, so a test can drive any
date (and `bash scripts/faketime_suite.sh` finds nothing that depends on the
day the suite runs). This walks the source of ``bot/`` and lists every call
that reads the wall clock or the process's time zone outside the places
allowed to.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

BOT = Path(__file__).resolve().parent.parent / "bot"

# Calls that read the wall clock (or, for a one-argument fromtimestamp, the
# process's TZ). The monotonic clocks are fine: they measure waits and
# durations, never dates.
WALL_CLOCK = {
    ("time", "time"), ("time", "time_ns"), ("time", "localtime"), ("time", "gmtime"),
    ("time", "ctime"), ("time", "asctime"), ("time", "strftime"),
    ("datetime", "now"), ("datetime", "utcnow"), ("datetime", "today"), ("date", "today"),
}

# Where reading the machine's clock is the point. Anything else takes a clock.
ALLOWED = {
    # The command line is the outermost edge: each one-shot command
    # (report, outbox, page, healthcheck) reads the clock once; tests
    # monkeypatch time.time for it.
    "cli.py",
    # The demo's stand-in Sidekiq stamps its jobs with the real time.
    "demo.py",
}


def wall_clock_calls(source: str) -> list[tuple[int, str]]:
    """Return (line, call) for each wall-clock read in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        owner = node.func.value
        name = owner.id if isinstance(owner, ast.Name) else (
            owner.attr if isinstance(owner, ast.Attribute) else None)
        call = (name, node.func.attr)
        if call in WALL_CLOCK:
            found.append((node.lineno, f"{name}.{node.func.attr}()"))
        elif call == ("datetime", "fromtimestamp") and len(node.args) + len(node.keywords) < 2:
            found.append((node.lineno, "datetime.fromtimestamp() without a zone"))
    return found


@pytest.mark.parametrize(("source", "expected"), [
    pytest.param("import time\nx = time.time()\n", [(2, "time.time()")], id="call"),
    pytest.param("import time\ndef f(clock=time.time):\n    return clock()\n", [],
                 id="default-clock-is-injectable"),
    pytest.param("import time\nt = time.monotonic()\n", [], id="monotonic"),
    pytest.param("from datetime import datetime\nd = datetime.now()\n",
                 [(2, "datetime.now()")], id="now"),
    pytest.param("import datetime\nd = datetime.date.today()\n", [(2, "date.today()")],
                 id="today"),
    pytest.param("from datetime import datetime\nd = datetime.fromtimestamp(1.0)\n",
                 [(2, "datetime.fromtimestamp() without a zone")], id="naive"),
    pytest.param("from datetime import datetime, timezone\n"
                 "d = datetime.fromtimestamp(1.0, timezone.utc)\n", [], id="zoned"),
])
def test_wall_clock_calls_are_found(source: str, expected: list[tuple[int, str]]) -> None:
    assert wall_clock_calls(source) == expected


def test_only_the_edges_read_the_wall_clock() -> None:
    """Outside cli.py and demo.py no module reads the machine's clock or zone."""
    offenders = [
        f"{path.relative_to(BOT.parent)}:{line}: {call}"
        for path in sorted(BOT.rglob("*.py"))
        if path.relative_to(BOT).as_posix() not in ALLOWED
        for line, call in wall_clock_calls(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
