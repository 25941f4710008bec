"""The test servers clean up after themselves, whatever happens."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.integration import servers
from tests.integration.conftest import need

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("extra", [
    pytest.param(["--requirepass", "x"], id="running-but-refusing-pings"),
    pytest.param(["--no-such-option"], id="exits-at-once"),
])
def test_redis_server_stopped_when_start_up_check_fails(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: list[str]) -> None:
    """A redis-server that never answers the start-up ping is not left running."""
    need(None if shutil.which("redis-server") else "redis-server is not installed")
    started: list[subprocess.Popen[Any]] = []
    real_popen = subprocess.Popen

    def recording_popen(*args: Any, **kwargs: Any) -> subprocess.Popen[Any]:
        process = real_popen(*args, **kwargs)
        started.append(process)
        return process

    monkeypatch.setattr(subprocess, "Popen", recording_popen)
    with pytest.raises(TimeoutError):
        servers.RedisServer(tmp_path, extra=extra, start_timeout=1.0)
    assert [p.poll() is None for p in started] == [False]


def proc_mounts(root: Path) -> list[str]:
    """Mount points at or under ``root``/proc in this (the test's) mount namespace."""
    target = str(root / "proc")
    lines = Path("/proc/self/mountinfo").read_text().splitlines()
    return [line.split()[4] for line in lines if line.split()[4].startswith(target)]


@pytest.mark.parametrize("command", [pytest.param(["cat", "/proc/self/status"], id="cat")])
def test_sidekiq7_chroot_has_proc_without_mounting_it_here(command: list[str]) -> None:
    """Commands in the chroot see /proc; the host keeps no mount from them."""
    need(servers.sidekiq7_available())
    root = servers.SIDEKIQ7_ROOT
    before = proc_mounts(root)
    sidekiq = servers.Sidekiq(root, "redis://127.0.0.1:1/0")
    try:
        result = subprocess.run(sidekiq._argv(command), capture_output=True, text=True,
                                check=False)
    finally:
        sidekiq.stop()
    assert (result.returncode, "VmRSS" in result.stdout, proc_mounts(root)) == (0, True, before)
