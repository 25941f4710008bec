"""Configuration of the instance's other hosts: ``[[hosts]]`` and ``[hosts.health]``."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot import defaults, health
from bot.config import ConfigError, HostEntry, load_config


def load_hosts(tmp_path: Path, text: str) -> tuple[tuple[HostEntry, ...], tuple[str, ...]]:
    path = tmp_path / "config.toml"
    path.write_text(text)
    config = load_config(path, environ={})
    return config.hosts, config.warnings


def problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    return [line.removeprefix(f"{path}: ") for line in caught.value.problems]


def test_no_hosts_by_default(tmp_path: Path) -> None:
    """Without [[hosts]] there are none."""
    assert load_hosts(tmp_path, "") == ((), ())


def test_hosts_are_read(tmp_path: Path) -> None:
    """Every key of an entry is read; defaults fill the rest."""
    hosts, warnings = load_hosts(tmp_path, """
[[hosts]]
name = "db1"
node_exporter = "http://10.0.0.5:9100/metrics"
timeout = "2s"
role = "PostgreSQL"
member_visible = true

[[hosts]]
name = "sidekiq-2.example"
""")
    assert hosts == (
        HostEntry(name="db1", node_exporter="http://10.0.0.5:9100/metrics", timeout=2.0,
                  role="PostgreSQL", member_visible=True, health=None),
        HostEntry(name="sidekiq-2.example", node_exporter="", timeout=defaults.HOST_TIMEOUT,
                  role="", member_visible=False, health=None),
    )
    assert warnings == ()


def test_host_health_starts_from_the_global_rules(tmp_path: Path) -> None:
    """[hosts.health] overrides only what it names, on top of [health]."""
    hosts, _ = load_hosts(tmp_path, """
[health.memory_available_percent]
warning = 12
critical = 6

[[hosts]]
name = "web1"
[hosts.health.memory_available_percent]
warning = 20
[hosts.health.swap_used_percent]
for = "10m"
""")
    rules = hosts[0].health
    assert rules is not None
    memory = rules.memory_available_percent
    assert (memory.warning, memory.critical) == (20.0, 6.0)
    assert rules.swap_used_percent.for_s == 600.0
    base = health.default_rules()
    assert rules.queue_latency == base.queue_latency
    assert rules.swap_used_percent.warning == base.swap_used_percent.warning


def test_host_health_disk_rule(tmp_path: Path) -> None:
    """disk_used_percent may be set per host."""
    hosts, _ = load_hosts(tmp_path, """
[[hosts]]
name = "db1"
[hosts.health.disk_used_percent]
warning = 70
critical = 90
""")
    rules = hosts[0].health
    assert rules is not None
    assert getattr(rules, "disk_used_percent").warning == 70.0  # noqa: B009


def test_plain_http_to_a_public_address_is_a_warning(tmp_path: Path) -> None:
    """An exporter across the internet without TLS is accepted with a warning; private is quiet."""
    hosts, warnings = load_hosts(tmp_path, """
[[hosts]]
name = "far"
node_exporter = "http://8.8.8.8:9100/metrics"
[[hosts]]
name = "near"
node_exporter = "http://192.168.1.4:9100/metrics"
[[hosts]]
name = "named"
node_exporter = "http://db1.internal:9100/metrics?collect[]=meminfo"
[[hosts]]
name = "tls"
node_exporter = "https://8.8.8.8:9100/metrics"
""")
    assert [h.name for h in hosts] == ["far", "near", "named", "tls"]
    assert warnings == ("hosts[0].node_exporter: plain http:// to the public address 8.8.8.8 "
                        "(no TLS); anyone on the way can read or change the readings",)


HOST = '[[hosts]]\nname = "db1"\n'


@pytest.mark.parametrize(("text", "messages"), [
    pytest.param("hosts = 3\n", ["hosts: must be a list of tables ([[hosts]])"], id="not-a-list"),
    pytest.param("[hosts]\nname = 'x'\n", ["hosts: must be a list of tables ([[hosts]])"],
                 id="table-not-list"),
    pytest.param("[[hosts]]\nrole = 'web'\n", ["hosts[0].name: is required (the host's name, "
                                              "like \"db1\")"], id="no-name"),
    pytest.param("[[hosts]]\nname = ''\n",
                 ["hosts[0].name: must be 1 to 64 letters, digits, '.', '_' or '-', got ''"],
                 id="empty-name"),
    pytest.param("[[hosts]]\nname = '@someone'\n",
                 ["hosts[0].name: must be 1 to 64 letters, digits, '.', '_' or '-', "
                  "got '@someone'"], id="mention-name"),
    pytest.param("[[hosts]]\nname = 'db 1'\n",
                 ["hosts[0].name: must be 1 to 64 letters, digits, '.', '_' or '-', "
                  "got 'db 1'"], id="blank-in-name"),
    pytest.param(f"[[hosts]]\nname = '{'a' * 65}'\n",
                 [f"hosts[0].name: must be 1 to 64 letters, digits, '.', '_' or '-', "
                  f"got '{'a' * 65}'"[:len("hosts[0].name: ") + 125]], id="long-name"),
    pytest.param("[[hosts]]\nname = 5\n", ["hosts[0].name: must be a host name, got int 5",
                                          "hosts[0].name: must be 1 to 64 letters, digits, '.', "
                                          "'_' or '-', got ''"], id="name-not-text"),
    pytest.param(HOST + HOST.replace("db1", "DB1"),
                 ["hosts[1].name: 'DB1' is already the name of hosts[0]"], id="duplicate"),
    pytest.param(HOST + "node_exporter = 'ftp://x/metrics'\n",
                 ["hosts[0].node_exporter: must be an http:// or https:// URL with a host (like "
                  "http://10.0.0.5:9100/metrics), got 'ftp://x/metrics'"], id="scheme"),
    pytest.param(HOST + "node_exporter = '10.0.0.5:9100/metrics'\n",
                 ["hosts[0].node_exporter: must be an http:// or https:// URL with a host (like "
                  "http://10.0.0.5:9100/metrics), got '10.0.0.5:9100/metrics'"], id="no-scheme"),
    pytest.param(HOST + "node_exporter = 'http:///metrics'\n",
                 ["hosts[0].node_exporter: must be an http:// or https:// URL with a host (like "
                  "http://10.0.0.5:9100/metrics), got 'http:///metrics'"], id="no-host"),
    pytest.param(HOST + "node_exporter = 'http://10.0.0.5:99999/metrics'\n",
                 ["hosts[0].node_exporter: not a URL (like http://10.0.0.5:9100/metrics): "
                  "Port out of range 0-65535"], id="bad-port"),
    pytest.param(HOST + "node_exporter = 'http://u:pw@10.0.0.5:9100/metrics'\n",
                 ["hosts[0].node_exporter: must not contain a user name or password"],
                 id="credentials"),
    pytest.param(HOST + "node_exporter = 'http://10.0.0.5:9100/metrics#x'\n",
                 ["hosts[0].node_exporter: must not have a #fragment, "
                  "got 'http://10.0.0.5:9100/metrics#x'"], id="fragment"),
    pytest.param(HOST + "node_exporter = 'http://10.0.0.5:9100/me trics'\n",
                 ["hosts[0].node_exporter: must be a URL without blanks or control characters "
                  "(like http://10.0.0.5:9100/metrics)"], id="blank-in-url"),
    pytest.param(HOST + "node_exporter = ['http://x']\n",
                 ["hosts[0].node_exporter: must be an http:// or https:// URL, "
                  "got list ['http://x']"], id="url-not-text"),
    pytest.param(HOST + "timeout = 0.05\n",
                 ["hosts[0].timeout: must be from 0.1s to 1m, got 0.05"], id="timeout-short"),
    pytest.param(HOST + "timeout = '2m'\n",
                 ["hosts[0].timeout: must be from 0.1s to 1m, got '2m'"], id="timeout-long"),
    pytest.param(HOST + "timeout = 'soon'\n",
                 ["hosts[0].timeout: not a duration: 'soon' (write e.g. 30m, 2h, 1d)"],
                 id="timeout-words"),
    pytest.param(HOST + f"role = '{'r' * 33}'\n",
                 [f"hosts[0].role: must be at most 32 printable characters, got '{'r' * 33}'"],
                 id="role-long"),
    pytest.param(HOST + "role = \"web\\u0007\"\n",
                 ["hosts[0].role: must be at most 32 printable characters, got 'web\\x07'"],
                 id="role-control"),
    pytest.param(HOST + "member_visible = 'yes'\n",
                 ["hosts[0].member_visible: must be true or false, got str 'yes'"],
                 id="visible-not-bool"),
    pytest.param(HOST + "port = 9100\n", ["hosts[0].port: unknown key"], id="unknown-key"),
    pytest.param(HOST + "health = 3\n", ["hosts[0].health: must be a table ([hosts.health])"],
                 id="health-not-table"),
    pytest.param(HOST + "[hosts.health.queue_latency.push]\nwarning = 60\n",
                 ["hosts[0].health.queue_latency: only memory_available_percent, "
                  "swap_used_percent, disk_used_percent, host_not_reporting can be set per host"],
                 id="health-other-rule"),
    pytest.param(HOST + "[hosts.health.memory_available_percent]\nwarning = 2\ncritical = 5\n",
                 ["hosts[0].health.memory_available_percent: warning (2) must be above "
                  "critical (5): lower is worse here"], id="health-inverted"),
    pytest.param(HOST + "[hosts.health.swap_used_percent]\nwarnin = 2\n",
                 ["hosts[0].health.swap_used_percent.warnin: unknown key (known: warning, "
                  "critical, for, clear, clear_for)"], id="health-typo"),
    pytest.param(HOST + "[hosts.health.swap_used_percent]\nwarning = 1e300\n",
                 ["hosts[0].health.swap_used_percent.warning: must be at most 31622400, "
                  "got 1e+300"], id="health-huge"),
    pytest.param("[[hosts]]\nname = '@x'\ntimeout = 0\nrole = 1\n",
                 ["hosts[0].name: must be 1 to 64 letters, digits, '.', '_' or '-', got '@x'",
                  "hosts[0].timeout: must be from 0.1s to 1m, got 0",
                  "hosts[0].role: must be a short text, got int 1"], id="all-at-once"),
    pytest.param("".join(f"[[hosts]]\nname = 'h{i}'\n" for i in range(65)),
                 ["hosts: at most 64 [[hosts]] entries, got 65"], id="too-many"),
])
def test_bad_hosts(tmp_path: Path, text: str, messages: list[str]) -> None:
    """Every problem of [[hosts]] is named, each with its entry and key."""
    assert problems(tmp_path, text) == messages


def test_sixty_four_hosts_are_fine(tmp_path: Path) -> None:
    """The bound itself is allowed."""
    hosts, _ = load_hosts(tmp_path, "".join(f"[[hosts]]\nname = 'h{i}'\n" for i in range(64)))
    assert len(hosts) == defaults.HOSTS_MAX == 64


def test_the_example_entry_parses(tmp_path: Path) -> None:
    """The commented [[hosts]] example in config.toml.example is a valid entry."""
    example = (Path(__file__).resolve().parent.parent / "config.toml.example").read_text()
    block = example[example.index("#   [[hosts]]"):].splitlines()
    text = "\n".join(line.removeprefix("#   ") for line in block if line.startswith("#   "))
    hosts, _ = load_hosts(tmp_path, text)
    assert [(h.name, h.node_exporter, h.timeout, h.role) for h in hosts] == [
        ("db1", "http://10.0.0.5:9100/metrics", 5.0, "PostgreSQL")]
    assert hosts[0].health is not None
    assert hosts[0].health.memory_available_percent.warning == 15.0
