"""Debian's real prometheus-node-exporter on loopback, read alone and by ``check --json``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from bot.collect.node_exporter import ExporterReader
from bot.config import HostEntry
from bot.model import HostSource
from tests.integration.servers import NodeExporter, RedisServer

pytestmark = pytest.mark.integration


def test_memory_matches_psutil(node_exporter: NodeExporter) -> None:
    """The exporter's reading of this machine agrees with psutil's."""
    [reading] = ExporterReader([HostEntry(name="self", node_exporter=node_exporter.url,
                                          timeout=10.0)]).read()
    assert reading.error is None, reading.error
    stats = reading.stats
    assert stats is not None
    memory = psutil.virtual_memory()
    assert abs(stats.memory_total_bytes - memory.total) <= 1024 * 1024
    # available moves a little between the two readings: within 5% of the total
    assert abs(stats.memory_available_bytes - memory.available) <= 0.05 * memory.total
    assert stats.swap_total_bytes == psutil.swap_memory().total
    assert stats.cpu_count == psutil.cpu_count()
    assert stats.load_15m >= 0
    assert "/" in [disk.path for disk in stats.disks] or stats.disks == ()


def test_check_json_lists_the_exporter_host(node_exporter: NodeExporter,
                                            redis_server: RedisServer, tmp_path: Path) -> None:
    """``statusbot check --json`` shows the [[hosts]] entry read from its node_exporter."""
    config = tmp_path / "config.toml"
    config.write_text(f"""
[redis]
url = "{redis_server.url}"

[[hosts]]
name = "db1"
node_exporter = "{node_exporter.url}"
role = "PostgreSQL"

[[hosts]]
name = "wrong-path"
node_exporter = "http://127.0.0.1:{node_exporter.port}/nothing-here"
timeout = "2s"
""")
    result = subprocess.run([sys.executable, "-m", "bot", "check", "--json", "--config",
                             str(config)], capture_output=True, text=True, timeout=60,
                            check=False, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    hosts = json.loads(result.stdout)["hosts"]
    assert [(h["name"], h["source"], h["role"]) for h in hosts] == [
        ("db1", HostSource.NODE_EXPORTER.value, "PostgreSQL"),
        ("wrong-path", HostSource.NODE_EXPORTER.value, "")]
    assert hosts[0]["error"] is None
    assert hosts[0]["stats"]["memory_total_bytes"] == pytest.approx(psutil.virtual_memory().total,
                                                                    abs=1024 * 1024)
    assert hosts[1]["stats"] is None
    # node_exporter answers any other path with its HTML landing page
    assert hosts[1]["error"] == (f"http://127.0.0.1:{node_exporter.port}/nothing-here "
                                 f"answered text/html, not Prometheus metrics (text/plain)")
