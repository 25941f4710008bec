"""Host readings: role grouping of processes, and a real reading of this machine."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bot.collect.host import ROLES, HostReader, ProcessSample, classify, disk_usage, group_by_role
from bot.model import RoleMemory


@pytest.mark.parametrize(
    ("name", "cmdline", "role"),
    [
        pytest.param("ruby", ["sidekiq 6.5.12 mastodon [0 of 25 busy]"], "sidekiq",
                     id="sidekiq-retitled"),
        pytest.param("bundle", ["/usr/bin/ruby", "bin/sidekiq", "-c", "25"], "sidekiq",
                     id="sidekiq-starting"),
        pytest.param("ruby", ["puma 6.4.2 (tcp://127.0.0.1:3000) [live]"], "web",
                     id="puma-master"),
        pytest.param("ruby", ["puma: cluster worker 0: 1234 [live]"], "web", id="puma-worker"),
        pytest.param("bundle", ["bundle", "exec", "puma", "-C", "config/puma.rb"], "web",
                     id="puma-via-bundle"),
        pytest.param("node", ["/usr/bin/node", "./streaming/index.js"], "streaming",
                     id="streaming"),
        pytest.param("node", ["/usr/bin/node", "server.js"], "other", id="other-node"),
        pytest.param("postgres", ["postgres: 15/main: mastodon mastodon_production [local] idle"],
                     "postgres", id="postgres-backend"),
        pytest.param("postgres", ["/usr/lib/postgresql/15/bin/postgres", "-D", "/var/lib"],
                     "postgres", id="postmaster"),
        pytest.param("redis-server", ["/usr/bin/redis-server 127.0.0.1:6379"], "redis",
                     id="redis"),
        pytest.param("java", ["/usr/share/elasticsearch/jdk/bin/java", "-Xms1g",
                              "org.elasticsearch.bootstrap.Elasticsearch"], "search",
                     id="elasticsearch"),
        pytest.param("java", ["/usr/bin/java", "-Dopensearch.path.home=/usr/share/opensearch"],
                     "search", id="opensearch"),
        pytest.param("java", ["/usr/bin/java", "-jar", "app.jar"], "other", id="other-java"),
        pytest.param("nginx", ["nginx: worker process"], "other", id="nginx"),
        pytest.param("kworker/0:1", [], "other", id="kernel-thread"),
    ],
)
def test_classify(name: str, cmdline: list[str], role: str) -> None:
    """Processes are grouped by the Mastodon role they play."""
    assert classify(name, cmdline) == role


def test_group_by_role_lists_every_role() -> None:
    """RSS is summed per role; roles with no process are listed with zeros."""
    samples = [
        ProcessSample("ruby", ("sidekiq 7.3.9 mastodon [3 of 25 busy]",), 300),
        ProcessSample("ruby", ("sidekiq 7.3.9 mastodon [0 of 25 busy]",), 200),
        ProcessSample("redis-server", ("redis-server *:6379",), 50),
        ProcessSample("sshd", ("sshd: /usr/sbin/sshd",), 7),
    ]
    assert group_by_role(samples) == (
        RoleMemory("web", 0, 0), RoleMemory("sidekiq", 2, 500), RoleMemory("streaming", 0, 0),
        RoleMemory("postgres", 0, 0), RoleMemory("redis", 1, 50), RoleMemory("search", 0, 0),
        RoleMemory("other", 1, 7),
    )


def test_disk_usage_error_is_reported() -> None:
    """A missing path is reported with its error, not raised."""
    reading = disk_usage("/no/such/statusbot/path")
    assert reading.total_bytes is None
    assert reading.error == "FileNotFoundError: No such file or directory"


def test_real_reading_sees_a_sidekiq_titled_process() -> None:
    """A real reading of this machine counts a process titled like Sidekiq in its role."""
    # argv[0] as Sidekiq retitles itself.
    child = subprocess.Popen(
        ["sidekiq 7.3.9 mastodon [0 of 5 busy]", "-c", "import sys; sys.stdin.read()"],
        executable=sys.executable, stdin=subprocess.PIPE,
    )
    try:
        sleeps: list[float] = []
        reading = HostReader(["/", "/no/such/path"], sleep=sleeps.append).read()
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait()
    roles = {m.role: m for m in reading.roles}
    assert tuple(roles) == ROLES
    assert roles["sidekiq"].processes >= 1 and roles["sidekiq"].rss_bytes > 0
    assert 0 < reading.memory_available_bytes <= reading.memory_total_bytes
    assert 0.0 <= reading.memory_percent <= 100.0
    assert reading.cpu_count == os.cpu_count()
    assert reading.cpu_percent is not None and 0.0 <= reading.cpu_percent <= 100.0
    assert [d.path for d in reading.disks] == ["/", "/no/such/path"]
    assert reading.disks[0].error is None and reading.disks[1].error is not None
    assert len(sleeps) == 1 and 0 < sleeps[0] <= 0.25  # first reading waits for the CPU window
