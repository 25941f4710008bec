"""`statusbot audit` and `healthcheck`: bounded -n, and no access token needed to read the state."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bot import defaults
from bot.cli import AUDIT_MAX, EXIT_CONFIG, EXIT_OK, EXIT_UNREACHABLE, main
from bot.store import AuditEntry, Store

NOW = 1_796_090_400.0  # 2026-12-01T02:00:00Z


def write_config(tmp_path: Path, token: str | None) -> Path:
    """A config for an instance whose token file is ``token`` (None: a file that is missing)."""
    token_file = tmp_path / "token"
    if token is not None:
        token_file.write_text(token)
    config = tmp_path / "statusbot.toml"
    config.write_text(f"""
[bot]
state_dir = "{tmp_path / 'state'}"

[mastodon]
api_base_url = "https://example.social"
access_token_file = "{token_file}"
""")
    (tmp_path / "state").mkdir()
    return config


def add_audit(tmp_path: Path, count: int) -> None:
    with Store(tmp_path / "state" / defaults.STATE_FILE) as store:
        for i in range(count):
            store.add_audit(AuditEntry(NOW + i, "10", "alice", "incident", f"text {i}",
                                       "declared"))


@pytest.mark.parametrize(("limit", "shown"), [
    pytest.param("1", 1, id="one"),
    pytest.param("3", 3, id="all"),
    pytest.param("99999999999999999999", 3, id="beyond-sqlite"),
    pytest.param("9" * 5000, 3, id="beyond-python-int-parsing"),
    pytest.param(str(AUDIT_MAX + 1), 3, id="just-above-the-bound"),
])
def test_audit_limit_is_bounded(tmp_path: Path, limit: str, shown: int,
                                capsys: pytest.CaptureFixture[str]) -> None:
    """A huge -n shows everything instead of an OverflowError."""
    config = write_config(tmp_path, "secret-token")
    add_audit(tmp_path, 3)
    assert main(["audit", "--config", str(config), "-n", limit]) == EXIT_OK
    out = capsys.readouterr().out
    assert [line.split()[-1] for line in out.splitlines()] == ["declared"] * shown


@pytest.mark.parametrize("limit", [
    pytest.param("0", id="zero"),
    pytest.param("-5", id="negative"),
    pytest.param("ten", id="not-a-number"),
    pytest.param("1e9", id="float-notation"),
])
def test_audit_limit_refuses_nonsense_in_one_line(tmp_path: Path, limit: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """-n below 1 or not a number is a usage error naming -n, no traceback."""
    config = write_config(tmp_path, "secret-token")
    with pytest.raises(SystemExit) as exit_info:
        main(["audit", "--config", str(config), "-n", limit])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    [message] = [line for line in err.splitlines() if "error" in line]
    assert "-n/--limit" in message and "Traceback" not in err


@pytest.mark.parametrize(("token", "argv", "status", "says"), [
    pytest.param(None, ["audit"], EXIT_OK, "incident text 0", id="audit-token-missing"),
    pytest.param("", ["audit"], EXIT_OK, "incident text 0", id="audit-token-empty"),
    pytest.param(None, ["healthcheck"], EXIT_OK, "healthy", id="healthcheck-token-missing"),
    pytest.param(None, ["check"], EXIT_CONFIG, "access_token_file", id="check-needs-it"),
])
def test_state_readers_need_no_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str], token: str | None,
                                     argv: list[str], status: int, says: str) -> None:
    """`audit` and `healthcheck` only read the state directory: no token file, no problem."""
    config = write_config(tmp_path, token)
    add_audit(tmp_path, 1)
    (tmp_path / "state" / defaults.HEARTBEAT_FILE).write_text(f"{NOW - 5}")
    monkeypatch.setattr(time, "time", lambda: NOW)
    assert main([*argv, "--config", str(config)]) == status
    captured = capsys.readouterr()
    assert says in captured.out + captured.err
    assert "secret" not in captured.out + captured.err


def test_healthcheck_without_token_still_says_unhealthy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Without the token the verdict is still about the last tick (exit 1), not the config."""
    config = write_config(tmp_path, None)
    (tmp_path / "state" / defaults.HEARTBEAT_FILE).write_text(f"{NOW - 3600}")
    monkeypatch.setattr(time, "time", lambda: NOW)
    assert main(["healthcheck", "--config", str(config)]) == EXIT_UNREACHABLE
    assert capsys.readouterr().out.startswith("unhealthy: the last tick completed")


@pytest.mark.parametrize(("senders", "limit", "shown"), [
    pytest.param(1, "2", ["[50000 mentions, the last", "text after"], id="one-account-n2"),
    pytest.param(1, "50", ["text before", "[50000 mentions", "text after"], id="one-account-all"),
    pytest.param(50_000, "2", ["dropped: bot account", "text after"], id="accounts-n2"),
    pytest.param(50_000, "9999", ["text before"] + ["dropped: bot account"] * 2000
                 + ["text after"], id="accounts-all"),
])
def test_audit_after_a_flood_shows_the_newest_entries(
        tmp_path: Path, senders: int, limit: str, shown: list[str],
        capsys: pytest.CaptureFixture[str]) -> None:
    """After 50,000 dropped mentions and a prune, -n shows the newest rows, admins' kept."""
    config = write_config(tmp_path, "secret-token")
    flood = [AuditEntry(NOW + 1 + i / 100, f"s{i % senders}", f"spam{i % senders}", "status",
                        "", "dropped: bot account", admin=False) for i in range(50_000)]
    with Store(tmp_path / "state" / defaults.STATE_FILE) as store:
        store.add_audit(AuditEntry(NOW, "10", "alice", "incident", "text before", "declared"))
        store.claim_and_enqueue("1", [], at=NOW, result="stale", audit=flood)
        store.add_audit(AuditEntry(NOW + 600, "10", "alice", "incident", "text after", "ok"))
        store.prune_audit(NOW - defaults.AUDIT_RETENTION)
    assert main(["audit", "--config", str(config), "-n", limit]) == EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(shown) and all(s in line for s, line in zip(shown, lines, strict=True))
