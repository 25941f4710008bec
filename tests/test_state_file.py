"""The state file seen from the command line: damaged files, a lost file, the healthcheck."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bot import defaults
from bot.loop import heartbeat_age, heartbeat_problem, write_heartbeat
from bot.store import Store
from tests.test_loop import START, make_bot, snapshot


def _garbage(path: Path) -> None:
    path.write_bytes(b"not a state file\n" * 200)


def _damaged_pages(path: Path) -> None:
    with Store(path) as s:
        s.add_samples([(1_780_000_000.0 + i, *([1.0] * 14)) for i in range(2000)])
    data = bytearray(path.read_bytes())
    middle = len(data) // 2 // 4096 * 4096
    data[middle:middle + 4 * 4096] = b"\xff" * (4 * 4096)
    path.write_bytes(bytes(data))


def _directory(path: Path) -> None:
    path.mkdir()


def statusbot(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "c.toml"
    config.write_text(f'[bot]\ninterval = 30\nstate_dir = "{tmp_path / "state"}"\n'
                      '[redis]\nurl = "redis://127.0.0.1:1/0"\nsocket_timeout = 0.2\n')
    return subprocess.run([sys.executable, "-m", "bot", *args, "--config", str(config)],
                          capture_output=True, text=True, check=False, timeout=60)


@pytest.mark.parametrize("damage", [
    pytest.param(_garbage, id="not-sqlite"),
    pytest.param(_damaged_pages, id="garbage-pages"),
    pytest.param(_directory, id="directory"),
])
@pytest.mark.parametrize(("command", "status"), [
    pytest.param(("report", "--dry-run"), 2, id="report-dry-run"),
    pytest.param(("report",), 2, id="report"),
    pytest.param(("run", "--once"), 2, id="run"),
])
def test_unusable_state_file_is_one_line(tmp_path: Path, damage: Callable[[Path], None],
                                         command: tuple[str, ...], status: int) -> None:
    """`report` and `run` on an unusable state file: one line naming it, no traceback."""
    path = tmp_path / "state" / defaults.STATE_FILE
    path.parent.mkdir()
    damage(path)
    result = statusbot(tmp_path, *command)
    assert result.returncode == status, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("statusbot:")]
    assert len(errors) == 1 and str(path) in errors[0], result.stderr


@pytest.mark.parametrize(("problem", "status", "says"), [
    pytest.param(None, 0, "healthy: the last tick completed", id="healthy"),
    pytest.param("state file /x/state.sqlite3 was deleted", 1,
                 "unhealthy: state file /x/state.sqlite3 was deleted", id="state-lost"),
])
def test_healthcheck_reports_the_heartbeats_problem(tmp_path: Path, problem: str | None,
                                                    status: int, says: str) -> None:
    """A fresh heartbeat that carries a problem is unhealthy, and says why."""
    write_heartbeat(tmp_path / "state" / defaults.HEARTBEAT_FILE, time.time(), problem)
    result = statusbot(tmp_path, "healthcheck")
    assert result.returncode == status, result.stdout
    assert result.stdout.startswith(says), result.stdout


@pytest.mark.parametrize(("error", "damaged"), [
    pytest.param(sqlite3.DatabaseError("database disk image is malformed"), True,
                 id="malformed"),
    pytest.param(sqlite3.DatabaseError("file is not a database"), True, id="not-a-database"),
    pytest.param(sqlite3.OperationalError("database is locked"), False, id="locked"),
    pytest.param(RuntimeError("malformed reply"), False, id="not-sqlite"),
])
def test_damage_found_while_running_makes_healthcheck_say_so(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: Exception,
        damaged: bool) -> None:
    """A tick that finds the state file damaged writes that with the heartbeat at once."""
    beat = tmp_path / "state" / defaults.HEARTBEAT_FILE
    bot, store, _ = make_bot([snapshot(START, 0), snapshot(START + 30, 0)])
    bot.heartbeat = beat
    bot.run(0.0, threading.Event(), max_ticks=1)

    def fail(*args: object) -> int:
        raise error

    monkeypatch.setattr(store, "commit_tick", fail)
    bot.run(0.0, threading.Event(), max_ticks=1)
    problem = heartbeat_problem(beat)
    assert (problem is not None and "is damaged" in problem) is damaged, problem
    assert heartbeat_age(beat, START + 5) == pytest.approx(5.0)  # the last completed tick
