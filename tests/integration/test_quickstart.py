"""scripts/quickstart.sh stops cleanly on Ctrl-C: exit 0, says so, leaves no redis-server."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bot.demo import free_port
from tests.integration.conftest import need

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


def sandbox(tmp_path: Path, port: int) -> Path:
    """A copy of the script beside stand-ins for its venv; the real bot and redis-server.

    The stand-ins install nothing, find no Redis at first (so the script starts
    its throwaway redis-server), and move that server and the bot from 6379 to
    ``port``, which nothing else on this machine uses.
    """
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts/quickstart.sh", tmp_path / "scripts")
    venv = tmp_path / ".venv/bin"
    venv.mkdir(parents=True)
    fake = tmp_path / "fakebin"
    fake.mkdir()
    executable(venv / "pip", "#!/bin/sh\nexit 0\n")
    executable(venv / "python",
               f'#!/bin/sh\n[ "$1" = - ] && exit 1\nexec {sys.executable} -c '
               f'"import redis; redis.Redis(port={port}, socket_timeout=0.2).ping()"\n')
    executable(venv / "statusbot",
               f"#!/bin/sh\nREDIS_URL=redis://127.0.0.1:{port}/0 exec {sys.executable} "
               f'-m bot "$@"\n')
    executable(fake / "redis-server",
               f'#!/bin/sh\nexec {shutil.which("redis-server")} "$@" --port {port}\n')
    return fake


def answers(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("args", [pytest.param([], id="run-until-ctrl-c")])
def test_ctrl_c_stops_bot_and_redis_with_exit_0(tmp_path: Path, args: list[str]) -> None:
    """Ctrl-C (SIGINT to the process group) ends with exit 0, a last line, no server left."""
    need(None if shutil.which("redis-server") else "redis-server is not installed")
    port = free_port()
    fake = sandbox(tmp_path, port)
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}",
           "PYTHONPATH": str(ROOT)}
    env.pop("REDIS_URL", None)
    env.pop("STATUSBOT_CONFIG", None)
    script = subprocess.Popen(["bash", "scripts/quickstart.sh", *args], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True)
    assert script.stdout is not None
    seen: list[str] = []
    try:
        for line in script.stdout:
            seen.append(line)
            if "tick: Redis ok" in line:  # the bot has read the throwaway server
                break
        assert answers(port), "".join(seen)
        os.killpg(script.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        seen += script.stdout.readlines()
        status = script.wait(60)
    finally:
        if script.poll() is None:
            os.killpg(script.pid, signal.SIGKILL)
            script.wait()
    output = "".join(seen)
    assert (status, "statusbot stopped\n" in output, answers(port)) == (0, True, False), output
