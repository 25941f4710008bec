"""Configuration of ``statusbot agent`` and the standby lease's writer: ``[agent]``."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from bot import defaults
from bot.config import AgentConfig, ConfigError, load_config


def load_agent(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> AgentConfig:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return load_config(path, environ=environ or {}).agent


def problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    return [line.removeprefix(f"{path}: ") for line in caught.value.problems]


def test_defaults(tmp_path: Path) -> None:
    """Without [agent]: no name (the hostname is used), the bot's interval, the default user."""
    agent = load_agent(tmp_path, "")
    assert agent == AgentConfig(name="", interval=defaults.INTERVAL,
                                username=defaults.AGENT_REDIS_USER, password=None)
    assert socket.gethostname()  # the agent's fallback name exists on this machine


def test_everything_is_read(tmp_path: Path) -> None:
    """Name, interval, user and a password from a file (newline stripped)."""
    (tmp_path / "agent.pw").write_text("s3cret\n")
    agent = load_agent(tmp_path, "[agent]\nname = 'sidekiq-2'\ninterval = '15s'\n"
                                 "username = 'writer'\npassword_file = 'agent.pw'\n")
    assert (agent.name, agent.interval, agent.username) == ("sidekiq-2", 15.0, "writer")
    assert agent.password is not None and agent.password.reveal() == "s3cret"
    assert "s3cret" not in repr(agent)


def test_password_from_the_environment(tmp_path: Path) -> None:
    """password_env names the variable that holds the password."""
    agent = load_agent(tmp_path, "[agent]\npassword_env = 'AGENT_PW'\n", {"AGENT_PW": "pw"})
    assert agent.password is not None and agent.password.reveal() == "pw"


@pytest.mark.parametrize(("text", "messages"), [
    pytest.param("[agent]\nname = '@someone'\n",
                 ["agent.name: must be 1 to 64 letters, digits, '.', '_' or '-', "
                  "got '@someone'"], id="injected-name"),
    pytest.param("[agent]\nname = 'a b'\n",
                 ["agent.name: must be 1 to 64 letters, digits, '.', '_' or '-', got 'a b'"],
                 id="space"),
    pytest.param(f"[agent]\nname = '{'x' * 65}'\n",
                 [f"agent.name: must be 1 to 64 letters, digits, '.', '_' or '-', "
                  f"got '{'x' * 65}'"], id="too-long"),
    pytest.param("[agent]\nname = 3\n",
                 ["agent.name: must be a host name like \"sidekiq-2\", got int 3"], id="number"),
    pytest.param("[agent]\nusername = \"a\\nb\"\n",
                 ["agent.username: must be 1 to 64 letters, digits, '.', '_' or '-', "
                  "got 'a\\nb'"], id="newline-user"),
    pytest.param("[agent]\ninterval = 'nan'\n",
                 ["agent.interval: not a duration: 'nan' (write e.g. 30m, 2h, 1d)"], id="nan"),
    pytest.param("[agent]\ninterval = 0\n",
                 ["agent.interval: must be from 0.5s to 1h, got 0"], id="zero"),
    pytest.param("[agent]\npassword_file = 'missing.pw'\n",
                 ["agent.password_file: cannot read missing.pw: No such file or directory"],
                 id="missing-file"),
    pytest.param("[agent]\npassword_env = 'NOPE'\n",
                 ["agent.password_env: the environment variable NOPE is not set"], id="unset-env"),
    pytest.param("[agent]\ncolour = 'red'\n", ["agent.colour: unknown key"], id="unknown-key"),
    pytest.param("agent = []\n", ["agent: must be a table ([agent])"], id="not-a-table"),
])
def test_bad_agent(tmp_path: Path, text: str, messages: list[str]) -> None:
    """Every problem of [agent] is named with its key."""
    assert problems(tmp_path, text) == messages

