"""Config that would fail at run time fails at once: one line naming the key, exit 2."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot import cli
from bot.config import Secret, load_config, redact_url
from bot.demo import free_port

TOKEN = {"STATUSBOT_ACCESS_TOKEN": "t0ken"}
SITE = "[mastodon]\napi_base_url = '{url}'\n"
ENV_FILE = "[redis]\nmastodon_env_file = '.env.production'\n"
TOKEN_FILE = "[mastodon]\napi_base_url = 'https://example.social'\naccess_token_file = 'token'\n"
HUGE = 10**400
"""An integer TOML accepts and no float holds."""


def site(url: str) -> str:
    return SITE.format(url=url)


# (config text, other files, environment, the one problem line after "{path}: ")
BAD = [
    pytest.param("[bot]\ninterval = 1e300\n", {}, {},
                 "bot.interval: must be from 0.5s to 1h, got 1e+300", id="interval-huge"),
    pytest.param(f"[bot]\ninterval = {HUGE}\n", {}, {},
                 f"bot.interval: must be from 0.5s to 1h, got {str(HUGE)[:40]}",
                 id="interval-huge-int"),
    pytest.param("[bot]\ninterval = 1e-6\n", {}, {},
                 "bot.interval: must be from 0.5s to 1h, got 1e-06", id="interval-tiny"),
    pytest.param("[bot]\ninterval = '52w'\n", {}, {},
                 "bot.interval: must be from 0.5s to 1h, got '52w'", id="interval-weeks"),
    pytest.param("[bot]\ninterval = nan\n", {}, {},
                 "bot.interval: must be from 0.5s to 1h, got nan", id="interval-nan"),
    pytest.param("[bot]\ninterval = -inf\n", {}, {},
                 "bot.interval: must be from 0.5s to 1h, got -inf", id="interval-minus-inf"),
    pytest.param("[bot]\ninterval = true\n", {}, {},
                 'bot.interval: must be seconds or a duration like "30m", got bool True',
                 id="interval-bool"),
    pytest.param("[redis]\nsocket_timeout = 1e300\n", {}, {},
                 "redis.socket_timeout: must be from 0.1s to 5m, got 1e+300",
                 id="socket-timeout-huge"),
    pytest.param(f"[redis]\nsocket_timeout = {HUGE}\n", {}, {},
                 "redis.socket_timeout: must be from 0.1s to 5m, got inf",
                 id="socket-timeout-huge-int"),
    pytest.param("[redis]\nsocket_timeout = -1\n", {}, {},
                 "redis.socket_timeout: must be from 0.1s to 5m, got -1.0",
                 id="socket-timeout-negative"),
    pytest.param("[mastodon]\nrequest_timeout = 1e300\n", {}, {},
                 "mastodon.request_timeout: must be from 0.1s to 5m, got 1e+300",
                 id="request-timeout-huge"),
    pytest.param("[mastodon]\nrequest_timeout = '15s'\n", {}, {},
                 "mastodon.request_timeout: must be a number of seconds, got str '15s'",
                 id="request-timeout-string"),
    pytest.param("[sidekiq]\nstale_after = 1e300\n", {}, {},
                 "sidekiq.stale_after: must be 0 (automatic) or from 1s to 366d, got 1e+300",
                 id="stale-after-huge"),
    pytest.param("[posts]\nstatus_every = '1m'\n", {}, {},
                 "posts.status_every: must be 0 (never) or from 1h to 366d, got '1m'",
                 id="status-every-spam"),
    pytest.param("[posts]\nreminder_every = '999999w'\n", {}, {},
                 "posts.reminder_every: must be from 1s to 366d, got '999999w'",
                 id="reminder-every-huge"),
    pytest.param("[posts]\nmax_reminders = 1000000\n", {}, {},
                 "posts.max_reminders: must be from 0 to 100, got 1000000",
                 id="max-reminders-huge"),
    pytest.param("[mastodon]\nretry_max = 1e300\n", {}, {},
                 "mastodon.retry_max: must be from 1s to 366d, got 1e+300", id="retry-max-huge"),
    pytest.param("[mastodon]\nretry_after = 0.001\n", {}, {},
                 "mastodon.retry_after: must be from 1s to 366d, got 0.001",
                 id="retry-after-tiny"),
    pytest.param("[commands]\nconfirm_delay = 1e300\n", {}, {},
                 "commands.confirm_delay: must be from 1s to 366d, got 1e+300",
                 id="confirm-delay-huge"),
    pytest.param("[commands]\nbackfill_every = 0.01\n", {}, {},
                 "commands.backfill_every: must be from 1s to 366d, got 0.01",
                 id="backfill-tiny"),
    pytest.param("[commands]\nreplies_per_hour = 1000000000000\n", {}, {},
                 "commands.replies_per_hour: must be from 1 to 100000, got 1000000000000",
                 id="replies-huge"),
    pytest.param("[commands]\nreplies_per_account = true\n", {}, {},
                 "commands.replies_per_account: must be a whole number, got bool True",
                 id="replies-bool"),
    pytest.param("[commands]\npublic = [{ a = 1 }]\n", {}, {},
                 "commands.public: only help, status can be public, got {'a': 1}",
                 id="public-not-a-string"),
    pytest.param("[commands]\nadmin_visibilities = [[1]]\n", {}, {},
                 "commands.admin_visibilities: unknown visibility [1]",
                 id="visibility-not-a-string"),
    pytest.param("[reports]\nmonthly_cost = inf\n", {}, {},
                 "reports.monthly_cost: must be from 0 to 1e+09 (currency units), got inf",
                 id="monthly-cost-inf"),
    pytest.param(f"[health.redis_unreachable]\nwarning = {HUGE}\n", {}, {},
                 f"health.redis_unreachable.warning: must be at most 31622400, "
                 f"got {str(HUGE)[:40]}", id="health-huge-int"),
    pytest.param("[health]\nflap_window = 1e300\n", {}, {},
                 "health.flap_window: must be at most 31622400, got 1e+300",
                 id="health-huge-float"),
    pytest.param("[[maintenance]]\nstart = 2026-12-01T02:00:00Z\nduration = 1e300\n", {}, {},
                 "maintenance[0].duration: must be from 1s to 366d, got 1e+300",
                 id="maintenance-huge"),
    pytest.param("[bot]\nstate_dir = '{dir}/taken'\n", {"taken": "a file"}, {},
                 "bot.state_dir: {dir}/taken is not a directory", id="state-dir-is-a-file"),
    pytest.param("[bot]\nstate_dir = '{dir}/taken/state'\n", {"taken": "a file"}, {},
                 "bot.state_dir: cannot create {dir}/taken/state: {dir}/taken is not a directory",
                 id="state-dir-under-a-file"),
    pytest.param('[bot]\nstate_dir = "a\\u0000b"\n', {}, {},
                 "bot.state_dir: must not contain a NUL character", id="state-dir-nul"),
    pytest.param("[bot]\nstate_dir = '{dir}/state'\n",
                 {"state/statusbot.sqlite3/x": "a directory where the file goes"}, {},
                 "bot.state_dir: {dir}/state/statusbot.sqlite3 is not a writable file",
                 id="state-file-is-a-directory"),
    pytest.param(b"[bot]\nstate_dir = '\xff'\n", {}, {},
                 "not UTF-8 text (byte 0xff at position 19)", id="toml-not-utf8"),
    pytest.param(TOKEN_FILE, {"token": b"\xfe\xff"}, {},
                 "mastodon.access_token_file: token is not UTF-8 text (byte 0xfe at position 0)",
                 id="token-file-not-utf8"),
    pytest.param(TOKEN_FILE, {"token": "\n"}, {},
                 "mastodon.access_token_file: token is empty", id="token-file-empty"),
    pytest.param(TOKEN_FILE, {"token": "t0ken and more\n"}, {},
                 "mastodon.access_token_file: the token in token must be one word of "
                 "printable characters", id="token-file-two-words"),
    pytest.param(site("https://example.social"), {}, {"STATUSBOT_ACCESS_TOKEN": " "},
                 "mastodon.access_token_env: the environment variable STATUSBOT_ACCESS_TOKEN "
                 "is empty", id="token-env-empty"),
    pytest.param("[redis]\npassword_file = 'pw'\n", {"pw": b"\xc3"}, {},
                 "redis.password_file: pw is not UTF-8 text (byte 0xc3 at position 0)",
                 id="password-file-not-utf8"),
    pytest.param(ENV_FILE, {".env.production": "REDIS_HOST=redis\nREDIS_PORT 6380\n"}, {},
                 "redis.mastodon_env_file: {dir}/.env.production: line 2 does not parse "
                 "(write NAME=value)", id="env-file-bad-line"),
    pytest.param(ENV_FILE, {".env.production": "REDIS_HOST=redis\nREDIS_PORT=${PORT_ALT}\n"}, {},
                 "redis.mastodon_env_file: {dir}/.env.production: line 2: REDIS_PORT uses "
                 "${PORT_ALT}, which neither the file nor the environment sets; write the "
                 "value itself", id="env-file-unset-reference"),
    pytest.param(ENV_FILE, {".env.production": "REDIS_PASSWORD=$(cat /run/secrets/pw)\n"}, {},
                 "redis.mastodon_env_file: {dir}/.env.production: line 1: REDIS_PASSWORD runs "
                 "a command, which statusbot does not; write the value itself",
                 id="env-file-command"),
    pytest.param(ENV_FILE, {".env.production": "REDIS_URL=redis://redis:6379/one\n"}, {},
                 "redis.mastodon_env_file: {dir}/.env.production: REDIS_URL: the database must "
                 "be a number, like redis://host:6379/0", id="env-file-url-db-name"),
    pytest.param("[redis]\nurl = 'redis://127.0.0.1:6379/mastodon'\n", {}, {},
                 "redis.url: the database must be a number, like redis://host:6379/0",
                 id="url-db-name"),
    pytest.param("[redis]\nurl = 'redis://127.0.0.1:6379?db=two'\n", {}, {},
                 "redis.url: the database must be a number, like redis://host:6379/0",
                 id="url-db-query"),
    pytest.param("[bot]\n", {}, {"REDIS_URL": "redis://127.0.0.1:6379/x"},
                 "REDIS_URL: the database must be a number, like redis://host:6379/0",
                 id="env-url-db-name"),
    pytest.param(site("http://example.social"), {}, TOKEN,
                 "mastodon.api_base_url: must start with https:// (http:// only for a loopback "
                 "address), got 'http://example.social'", id="api-http-remote"),
    pytest.param(site("https://example.social/api/v1"), {}, TOKEN,
                 "mastodon.api_base_url: must be the instance's address alone, without a path, "
                 "query or fragment (like https://example.social), got https://example.social/...",
                 id="api-path"),
    pytest.param(site("https://example.social/?x=1"), {}, TOKEN,
                 "mastodon.api_base_url: must be the instance's address alone, without a path, "
                 "query or fragment (like https://example.social), got https://example.social/...",
                 id="api-query"),
    pytest.param(site("https://example.social#top"), {}, TOKEN,
                 "mastodon.api_base_url: must be the instance's address alone, without a path, "
                 "query or fragment (like https://example.social), got https://example.social/...",
                 id="api-fragment"),
    pytest.param(site("https://bot:pw@example.social"), {}, TOKEN,
                 "mastodon.api_base_url: must not hold a user name or password (the token goes "
                 "in access_token_file or access_token_env)", id="api-userinfo"),
    pytest.param(site("https://"), {}, TOKEN,
                 "mastodon.api_base_url: must name a host (like https://example.social)",
                 id="api-no-host"),
    pytest.param(site("https://exa mple.social"), {}, TOKEN,
                 "mastodon.api_base_url: must name a host (like https://example.social)",
                 id="api-space-in-host"),
    pytest.param(site("ftp://example.social"), {}, TOKEN,
                 "mastodon.api_base_url: must be an https:// URL (like https://example.social), "
                 "got 'ftp://example.social'", id="api-ftp"),
    pytest.param("[mastodon]\nstreaming_url = 'wss://u:pw@streaming.example.social'\n", {}, {},
                 "mastodon.streaming_url: must not hold a user name or password",
                 id="streaming-userinfo"),
    pytest.param("[mastodon]\nstreaming_url = 'ws://streaming.example.social'\n", {}, {},
                 "mastodon.streaming_url: must start with wss:// or https:// (ws:// only for a "
                 "loopback address), got 'ws://streaming.example.social'",
                 id="streaming-plain-remote"),
    pytest.param("[mastodon]\nstreaming_url = 'streaming.example.social'\n", {}, {},
                 "mastodon.streaming_url: must be a URL like wss://streaming.example.social, "
                 "got 'streaming.example.social'", id="streaming-no-scheme"),
    pytest.param("[health]\nx = " + "{a = " * 500 + "1" + "}" * 500 + "\n", {}, {},
                 "not valid TOML: nested too deeply", id="toml-nested-too-deeply"),
    pytest.param(site("https://example.social:http"), {}, TOKEN,
                 "mastodon.api_base_url: is not a valid URL (like https://example.social), "
                 "got 'https://example.social:http'", id="api-bad-port"),
]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clean working directory and environment for the command line."""
    for name in ("REDIS_URL", cli.CONFIG_ENV, "STATUSBOT_ACCESS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def setup_files(home: Path, monkeypatch: pytest.MonkeyPatch, text: str | bytes,
                files: dict[str, str | bytes], environ: dict[str, str]) -> Path:
    for name, content in files.items():
        path = home / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    config = home / "config.toml"
    if isinstance(text, bytes):
        config.write_bytes(text)
    else:
        config.write_text(text.replace("{dir}", str(home)))
    return config


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str],
            caplog: pytest.LogCaptureFixture) -> tuple[int, str, str]:
    """Return the exit status, stdout and stderr plus the log of ``statusbot argv``."""
    caplog.clear()
    with caplog.at_level(logging.INFO):
        status = cli.main(argv)
    out, err = capsys.readouterr()
    return status, out, err + caplog.text


@pytest.mark.parametrize(("text", "files", "environ", "message"), BAD)
@pytest.mark.parametrize("command", ["config-check", "run"])
def test_one_line_naming_the_key_and_exit_2(
        home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture, command: str, text: str | bytes,
        files: dict[str, str | bytes], environ: dict[str, str], message: str) -> None:
    """config-check and run refuse the config with the same single line, exit status 2."""
    path = setup_files(home, monkeypatch, text, files, environ)
    argv = ["config-check", str(path)] if command == "config-check" else [
        "run", "--config", str(path), "--once"]
    prefix = "" if command == "config-check" else "statusbot: configuration error: "
    status, out, err = run_cli(argv, capsys, caplog)
    assert (status, out, err.splitlines()) == (
        2, "", [f"{prefix}{path}: {message.replace('{dir}', str(home))}"])


GOOD = [
    pytest.param("[bot]\ninterval = 0.5\n", {}, {}, ("bot", "interval", 0.5),
                 id="interval-lowest"),
    pytest.param("[bot]\ninterval = '1h'\n", {}, {}, ("bot", "interval", 3600.0),
                 id="interval-highest"),
    pytest.param("[posts]\nstatus_every = 0\n", {}, {}, ("posts", "status_every", 0.0),
                 id="status-never"),
    pytest.param("[sidekiq]\nstale_after = 0\n", {}, {}, ("sidekiq", "stale_after", 0.0),
                 id="stale-automatic"),
    pytest.param(site("https://example.social/"), {}, TOKEN,
                 ("mastodon", "api_base_url", "https://example.social"), id="api-trailing-slash"),
    pytest.param(site("https://example.social:8443"), {}, TOKEN,
                 ("mastodon", "api_base_url", "https://example.social:8443"), id="api-port"),
    pytest.param("[mastodon]\nstreaming_url = 'wss://streaming.example.social/'\n", {}, {},
                 ("mastodon", "streaming_url", "wss://streaming.example.social"),
                 id="streaming-wss"),
    pytest.param(TOKEN_FILE, {"token": "  t0ken\n"}, {},
                 ("mastodon", "access_token", Secret("t0ken")), id="token-file-trimmed"),
    pytest.param(ENV_FILE, {".env.production":
                            "REDIS_HOST=redis\nREDIS_PORT=6380\n"
                            "REDIS_URL=redis://${REDIS_HOST}:$REDIS_PORT/2\n"}, {},
                 ("redis", "url", "redis://redis:6380/2"), id="env-file-reference-in-file"),
    pytest.param(ENV_FILE, {".env.production": "REDIS_HOST=${SIDEKIQ_HOST_ALT}\n"},
                 {"SIDEKIQ_HOST_ALT": "jobs"}, ("redis", "url", "redis://jobs:6379/0"),
                 id="env-file-reference-in-environment"),
    pytest.param(ENV_FILE, {".env.production": "REDIS_PORT=${PORT_ALT:-6390}\n"}, {},
                 ("redis", "url", "redis://localhost:6390/0"), id="env-file-reference-default"),
    pytest.param(ENV_FILE, {".env.production": "REDIS_PASSWORD='pa$word'\n"}, {},
                 ("redis", "password", Secret("pa$word")), id="env-file-single-quotes-literal"),
    pytest.param(ENV_FILE, {".env.production": 'REDIS_PASSWORD="pa\\$word"\n'}, {},
                 ("redis", "password", Secret("pa$word")), id="env-file-escaped-dollar"),
    pytest.param(ENV_FILE, {".env.production": "OTHER=${UNSET_ELSEWHERE}\nREDIS_DB=3\n"}, {},
                 ("redis", "url", "redis://localhost:6379/3"),
                 id="env-file-reference-outside-redis"),
    pytest.param("[redis]\nurl = 'redis://127.0.0.1:6379?db=4'\n", {}, {},
                 ("redis", "url", "redis://127.0.0.1:6379?db=4"), id="url-db-query"),
    pytest.param("[redis]\nurl = 'unix:///run/redis.sock?db=1'\n", {}, {},
                 ("redis", "url", "unix:///run/redis.sock?db=1"), id="url-unix"),
]


@pytest.mark.parametrize(("text", "files", "environ", "expected"), GOOD)
def test_sound_values_still_load(home: Path, monkeypatch: pytest.MonkeyPatch,
                                 text: str, files: dict[str, str | bytes],
                                 environ: dict[str, str],
                                 expected: tuple[str, str, object]) -> None:
    """Values at the bounds, and references the file or environment resolves, are fine."""
    path = setup_files(home, monkeypatch, text, files, environ)
    section, key, value = expected
    config = load_config(path)
    assert getattr(getattr(config, section), key) == value


@pytest.mark.parametrize(("url", "host"), [
    pytest.param("http://127.0.0.1:3000/", "127.0.0.1", id="ipv4"),
    pytest.param("http://[::1]:3000", "::1", id="ipv6"),
    pytest.param("http://localhost:3000", "localhost", id="localhost"),
])
def test_http_to_loopback_is_a_warning(home: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str],
                                       caplog: pytest.LogCaptureFixture,
                                       url: str, host: str) -> None:
    """Plain http:// is accepted for a loopback instance, with a warning, exit 0."""
    path = setup_files(home, monkeypatch, site(url), {}, TOKEN)
    status, out, err = run_cli(["config-check", str(path)], capsys, caplog)
    assert (status, err.splitlines()) == (0, [
        f"{path}: warning: mastodon.api_base_url: plain http:// (no TLS); accepted because "
        f"{host} is a loopback address"])
    assert out.startswith(f"{path}: OK")


@pytest.mark.parametrize(("url", "shown"), [
    pytest.param("https://bot:s3cret@example.social", "https://***@example.social", id="both"),
    pytest.param("https://:s3/cr@et@example.social/x", "https://***@example.social/x",
                 id="unencoded"),
    pytest.param("redis://:s3#cret@h:1/0", "redis://***@h:1/0", id="hash"),
    pytest.param("https://example.social", "https://example.social", id="none"),
])
def test_redact_url(url: str, shown: str) -> None:
    """Everything up to the last @ after the scheme is hidden."""
    assert redact_url(url) == shown


PASSWORD = "hunter"
"""Must never appear in any output; each case below puts it somewhere."""

LEAKS = [
    pytest.param("[bot]\n", {}, {"REDIS_URL": f"redis://:{PASSWORD}/2@127.0.0.1:6379/0"},
                 (2, 2, 2), id="env-url-slash-in-password"),
    pytest.param("[bot]\n", {}, {"REDIS_URL": f"redis://:{PASSWORD}?x@127.0.0.1:6379/0"},
                 (2, 2, 2), id="env-url-question-mark-in-password"),
    pytest.param("[bot]\n", {}, {"REDIS_URL": f"redis://u:{PASSWORD}@/0"},
                 (2, 2, 2), id="env-url-no-host"),
    pytest.param("[bot]\n", {}, {"REDIS_URL": f"{PASSWORD}:x@127.0.0.1:6379"},
                 (2, 2, 2), id="env-url-no-scheme"),
    pytest.param(ENV_FILE, {".env.production": f"REDIS_URL=redis://:{PASSWORD}/2@redis:6379/0\n"},
                 {}, (2, 2, 2), id="env-file-slash-in-password"),
    pytest.param(ENV_FILE, {".env.production": f"REDIS_PASSWORD={PASSWORD}\nREDIS_PORT 1\n"},
                 {}, (2, 2, 2), id="env-file-bad-line-beside-password"),
    pytest.param(site(f"https://bot:{PASSWORD}@127.0.0.1:{{port}}"), {}, TOKEN, (2, 2, 2),
                 id="api-base-url-userinfo"),
    pytest.param("[redis]\nsocket_timeout = 0.5\n", {},
                 {"REDIS_URL": f"redis://:{PASSWORD}%2F2@127.0.0.1:{{port}}/0"}, (0, 1, 0),
                 id="valid-password-redis-down"),
    pytest.param(site("http://127.0.0.1:{port}") + "request_timeout = 1\n", {},
                 {"STATUSBOT_ACCESS_TOKEN": PASSWORD}, (0, 1, 0), id="token-instance-down"),
]


@pytest.mark.parametrize(("text", "files", "environ", "statuses"), LEAKS)
def test_secrets_never_in_output(home: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str],
                                 caplog: pytest.LogCaptureFixture, text: str,
                                 files: dict[str, str | bytes], environ: dict[str, str],
                                 statuses: tuple[int, int, int]) -> None:
    """config-check, check and run never print a password or token, whatever fails."""
    port = str(free_port())  # nothing listens there
    environ = {k: v.replace("{port}", port) for k, v in environ.items()}
    path = setup_files(home, monkeypatch, text.replace("{port}", port), files, environ)
    seen: list[int] = []
    output = ""
    for argv in (["config-check", str(path)], ["check", "--config", str(path)],
                 ["run", "--config", str(path), "--once"]):
        status, out, err = run_cli(argv, capsys, caplog)
        seen.append(status)
        output += out + err
    assert (tuple(seen), PASSWORD in output) == (statuses, False)


@pytest.mark.parametrize("target", [
    pytest.param("missing-dir/state.sqlite3", id="dangling-symlink"),
])
def test_run_state_file_unopenable_is_a_config_error(
        home: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
        target: str) -> None:
    """A state file SQLite cannot open (past config-check's look) is one line, exit 2."""
    state = home / "state"
    state.mkdir()
    (state / "statusbot.sqlite3").symlink_to(home / target)
    path = home / "config.toml"
    path.write_text(f"[bot]\nstate_dir = '{state}'\n")
    status, _out, err = run_cli(["run", "--config", str(path), "--once"], capsys, caplog)
    assert (status, [line for line in err.splitlines() if "state_dir" in line]) == (2, [
        f"statusbot: configuration error: {path}: bot.state_dir: "
        f"{state / 'statusbot.sqlite3'}: cannot open it: unable to open database file"])
