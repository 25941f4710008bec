"""Configuration: validation messages, Mastodon's .env.production, secrets."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bot import health
from bot.config import (
    Config,
    ConfigError,
    FallbackConfig,
    RedisConfig,
    Secret,
    load_config,
    parse_duration,
)
from bot.wording import DEFAULT_WORDING

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "messages"),
    [
        pytest.param("[redis]\nurll = 'redis://x'\n", ["redis.urll: unknown key"], id="typo-key"),
        pytest.param("[redsi]\n",
                     ["redsi: unknown section (known: redis, sidekiq, host, bot, mastodon, posts, "
                      "health, wording, commands, reports, page, agent, postgres, [[maintenance]], "
                      "[[silence]], [[fallback]], [[hosts]])"],
                     id="typo-section"),
        pytest.param("redis = 3\n", ["redis: must be a table ([redis])"], id="section-not-table"),
        pytest.param("[redis]\nurl = 5\n", ["redis.url: must be a redis:// URL, got int 5"],
                     id="url-wrong-type"),
        pytest.param("[redis]\nurl = 'http://x'\n",
                     ["redis.url: must start with redis://, rediss:// or unix://, got 'http'"],
                     id="url-wrong-scheme"),
        pytest.param("[redis]\nurl = 'redis://h:99999/0'\n",
                     ["redis.url: not a valid URL: the port is not a number up to 65535 "
                      "(a password with / ? # @ or : must be percent-encoded, e.g. / as %2F)"],
                     id="url-bad-port"),
        pytest.param("[redis]\nurl = 'redis://:pw@h:6379/0'\n",
                     ["redis.url: holds a password; put it in password_file or password_env, "
                      "not in the config file"], id="password-in-toml"),
        pytest.param("[redis]\nsocket_timeout = 0\n",
                     ["redis.socket_timeout: must be from 0.1s to 5m, got 0.0"],
                     id="timeout-zero"),
        pytest.param("[redis]\nsocket_timeout = 'fast'\n",
                     ["redis.socket_timeout: must be a number of seconds, got str 'fast'"],
                     id="timeout-string"),
        pytest.param("[redis]\nsocket_timeout = inf\n",
                     ["redis.socket_timeout: must be from 0.1s to 5m, got inf"],
                     id="timeout-infinite"),
        pytest.param("[redis]\nnamespace = 'mastodon:'\n",
                     ["redis.namespace: give the prefix without the trailing ':'"],
                     id="namespace-colon"),
        pytest.param("[redis]\nmastodon_env_file = 'missing.env'\n",
                     ["redis.mastodon_env_file: no such file: {dir}/missing.env"],
                     id="env-file-missing"),
        pytest.param("[redis]\npassword_file = 'nope'\n",
                     ["redis.password_file: cannot read nope: No such file or directory"],
                     id="password-file-missing"),
        pytest.param("[redis]\npassword_env = 'STATUSBOT_UNSET_FOR_TEST'\n",
                     ["redis.password_env: the environment variable STATUSBOT_UNSET_FOR_TEST "
                      "is not set"], id="password-env-unset"),
        pytest.param("[sidekiq]\nstale_after = -1\n",
                     ["sidekiq.stale_after: must be 0 (automatic) or from 1s to 366d, got -1.0"],
                     id="negative-stale"),
        pytest.param("[sidekiq]\nstale_after = true\n",
                     ["sidekiq.stale_after: must be a number of seconds, got bool True"],
                     id="bool-is-not-a-number"),
        pytest.param("[host]\ndisk_paths = ['relative', 3]\n",
                     ["host.disk_paths: every entry must be an absolute path, got 'relative'",
                      "host.disk_paths: every entry must be an absolute path, got 3"],
                     id="disk-paths"),
        pytest.param("[host]\ndisk_paths = '/'\n",
                     ["host.disk_paths: must be a list of paths, got str '/'"],
                     id="disk-paths-not-list"),
        pytest.param("[redis]\nurl = 1\n[sidekiq]\nextra = 2\n",
                     ["redis.url: must be a redis:// URL, got int 1", "sidekiq.extra: unknown key"],
                     id="all-problems-at-once"),
        pytest.param("[bot]\ninterval = 0\n", ["bot.interval: must be from 0.5s to 1h, got 0"],
                     id="interval-zero"),
        pytest.param("[bot]\ninterval = '5 minutes'\n",
                     ["bot.interval: not a duration: '5 minutes' (write e.g. 30m, 2h, 1d)"],
                     id="interval-prose"),
        pytest.param("[posts]\nmax_reminders = -1\nstatus_every = []\n",
                     ["posts.max_reminders: must be from 0 to 100, got -1",
                      'posts.status_every: must be seconds or a duration like "30m", got list []'],
                     id="posts"),
        pytest.param("[mastodon]\napi_base_url = 'https://example.social'\n",
                     ["mastodon.api_base_url: needs an access token: set access_token_file, or "
                      "the environment variable STATUSBOT_ACCESS_TOKEN"], id="no-token"),
        pytest.param("[mastodon]\napi_base_url = 'example.social'\naccess_token_env = 'T'\n",
                     ["mastodon.api_base_url: must be an https:// URL "
                      "(like https://example.social), got 'example.social'",
                      "mastodon.api_base_url: needs an access token: set access_token_file, or "
                      "the environment variable T"], id="url-without-scheme"),
        pytest.param("[mastodon]\nadmins = ['alice', '@bob@other.example', 'Eve Admin', 3]\n",
                     ['mastodon.admins: every entry must be an account like "alice" or '
                      '"bob@other.example", got \'Eve Admin\'',
                      'mastodon.admins: every entry must be an account like "alice" or '
                      '"bob@other.example", got 3'], id="admins"),
        pytest.param("[mastodon]\nmember_visibility = 'direct'\ntimezone = 'Mars/Olympus'\n",
                     ['mastodon.timezone: unknown time zone \'Mars/Olympus\' '
                      '(e.g. "Europe/Berlin")',
                      "mastodon.member_visibility: must be one of public, unlisted, got 'direct'"],
                     id="visibility-and-timezone"),
        pytest.param("[health.queue_latency.push]\nwarning = 900\ncritical = 600\n",
                     ["health.queue_latency.push: warning (900) must be below critical (600)"],
                     id="health-warning-above-critical"),
        pytest.param("[health]\nflap_windw = 5\n", ["health.flap_windw: unknown key"],
                     id="health-typo"),
        pytest.param("[[maintenance]]\nstart = 2026-12-01T02:00:00\nduration = '1h'\n",
                     ["maintenance[0].start: needs a time zone offset, e.g. "
                      "2026-12-01T02:00:00Z or +01:00"], id="maintenance-naive-time"),
        pytest.param("[[maintenance]]\nstart = 2026-12-01T02:00:00Z\n",
                     ["maintenance[0].duration: is required (or give end)"],
                     id="maintenance-no-duration"),
        pytest.param("[[silence]]\ncomponents = ['queue:pull']\nuntil = 'tomorrow'\n",
                     ["silence[0].until: must be a date and time like 2026-12-01T02:00:00Z, "
                      "got 'tomorrow'"], id="silence-bad-until"),
        pytest.param("maintenance = 3\n", ["maintenance: must be a list of tables "
                                             "([[maintenance]])"], id="maintenance-not-list"),
        pytest.param("[wording]\nnotice_footr = 'x'\nresolution = 'Fixed after {hours}'\n",
                     ["wording.notice_footr: unknown text (see bot/wording.py for the names)",
                      "wording.resolution: unknown placeholder {{hours}} "
                      "(use {{duration}}, {{instance}})"], id="wording"),
        pytest.param("[reports]\nweekly = 'someday 9:00'\nmonthly = '31 09:00'\n",
                     ['reports.weekly: must be a day and time like "mon 09:00", or "off", got '
                      "'someday 9:00'",
                      'reports.monthly: must be a day and time like "1 09:00" (day 1 to 28), '
                      "or \"off\", got '31 09:00'"], id="report-slots"),
        pytest.param("[redis\n", ["not valid TOML: Expected ']' at the end of a table "
                                  "declaration (at line 1, column 7)"], id="bad-toml"),
    ],
)
def test_bad_configs(tmp_path: Path, text: str, messages: list[str]) -> None:
    """Every problem names the file, the key and what is wrong."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    expected = [m.format(dir=tmp_path) for m in messages]
    assert caught.value.problems == expected
    assert str(caught.value).splitlines() == [f"{path}: {m}" for m in expected]


def test_missing_file(tmp_path: Path) -> None:
    """A config path that does not exist is an error, not the defaults."""
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.toml", environ={})


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        pytest.param({}, RedisConfig(), id="embedded-default"),
        pytest.param({"REDIS_URL": "redis://redis.internal:6380/2"},
                     RedisConfig(url="redis://redis.internal:6380/2",
                                 source="environment variable REDIS_URL"), id="env-url"),
        pytest.param({"REDIS_URL": "redis://u:p%40ss@h:1/0"},
                     RedisConfig(url="redis://u@h:1/0", password=Secret("p@ss"),
                                 source="environment variable REDIS_URL"),
                     id="env-url-password-split-off"),
    ],
)
def test_no_config_file(environ: dict[str, str], expected: RedisConfig) -> None:
    """Without a file: REDIS_URL from the environment, else the embedded default."""
    assert load_config(None, environ=environ) == Config(redis=expected)


def test_bad_redis_url_in_environment() -> None:
    """A bad REDIS_URL is a configuration error too."""
    with pytest.raises(ConfigError, match="environment: REDIS_URL: must start with redis://"):
        load_config(None, environ={"REDIS_URL": "localhost:6379"})


MASTODON_ENV = [
    pytest.param("REDIS_HOST=localhost\nREDIS_PORT=6379\n",
                 ("redis://localhost:6379/0", None, "", "(REDIS_HOST/PORT)"),
                 id="mastodon-defaults"),
    pytest.param("REDIS_URL=redis://:s3cret@redis:6379/1\nREDIS_NAMESPACE=mastodon\n",
                 ("redis://redis:6379/1", "s3cret", "mastodon", "(REDIS_URL)"),
                 id="redis-url-and-namespace"),
    pytest.param("REDIS_URL=redis://main:6379/0\nSIDEKIQ_REDIS_URL=redis://jobs:6380/3\n",
                 ("redis://jobs:6380/3", None, "", "(SIDEKIQ_REDIS_URL)"),
                 id="sidekiq-url-wins"),
    pytest.param("REDIS_URL=redis://main:6379/0\nSIDEKIQ_REDIS_HOST=jobs\n"
                 "SIDEKIQ_REDIS_PASSWORD='quoted pw'\n",
                 ("redis://jobs:6379/0", "quoted pw", "", "(SIDEKIQ_REDIS_HOST/PASSWORD)"),
                 id="sidekiq-parts-win-over-redis-url"),
    pytest.param("REDIS_HOST=main\nREDIS_PORT=6390\nREDIS_PASSWORD=pw\nSIDEKIQ_REDIS_DB=4\n",
                 ("redis://main:6390/4", "pw", "", "(SIDEKIQ_REDIS_DB)"),
                 id="sidekiq-parts-fall-back-to-redis-parts"),
    pytest.param("REDIS_HOST=main\nREDIS_USER=mastodon\nREDIS_PASSWORD=pw\n",
                 ("redis://mastodon@main:6379/0", "pw", "", "(REDIS_HOST/PASSWORD/USER)"),
                 id="redis-user"),
    pytest.param("# comment\nexport REDIS_HOST=h\nLOCAL_DOMAIN=example.social\n",
                 ("redis://h:6379/0", None, "", "(REDIS_HOST)"), id="export-and-comments"),
    pytest.param("LOCAL_DOMAIN=example.social\n",
                 ("redis://localhost:6379/0", None, "", "(REDIS_defaults)"), id="nothing-set"),
]


@pytest.mark.parametrize(("env_text", "expected"), MASTODON_ENV)
def test_mastodon_env_file(tmp_path: Path,
                           env_text: str, expected: tuple[str, str | None, str, str]) -> None:
    """Mastodon's own precedence: SIDEKIQ_REDIS_URL, SIDEKIQ_REDIS_*, REDIS_URL, REDIS_*."""
    write(tmp_path, env_text, ".env.production")
    path = write(tmp_path, "[redis]\nmastodon_env_file = '.env.production'\n")
    config = load_config(path, environ={"REDIS_URL": "redis://ignored:1/0"})
    url, password, namespace, source = expected
    assert (config.redis.url, config.redis.password, config.redis.namespace) == (
        url, Secret(password) if password else None, namespace)
    assert config.redis.source == f"{tmp_path / '.env.production'} {source}"


def test_explicit_url_and_namespace_win_over_env_file(tmp_path: Path) -> None:
    """An explicit url or namespace in the TOML wins over Mastodon's settings."""
    write(tmp_path, "REDIS_URL=redis://main:6379/0\nREDIS_NAMESPACE=mastodon\n", "m.env")
    path = write(tmp_path, "[redis]\nmastodon_env_file = 'm.env'\nnamespace = ''\n")
    assert load_config(path, environ={}).redis.namespace == ""
    path = write(tmp_path, "[redis]\nmastodon_env_file = 'm.env'\nurl = 'redis://x:1/0'\n")
    config = load_config(path, environ={})
    assert (config.redis.url, config.redis.source) == ("redis://x:1/0", "config")


def test_password_sources(tmp_path: Path) -> None:
    """password_file and password_env override a password from the URL's source."""
    (tmp_path / "pw").write_text("from-file\n")
    path = write(tmp_path, "[redis]\nurl = 'redis://h:1/0'\npassword_file = 'pw'\n")
    assert load_config(path, environ={}).redis.password == Secret("from-file")
    path = write(tmp_path, "[redis]\nurl = 'redis://h:1/0'\npassword_env = 'PW'\n")
    assert load_config(path, environ={"PW": "from-env"}).redis.password == Secret("from-env")


def test_secrets_never_show(tmp_path: Path) -> None:
    """The password is not in repr or str of the config, nor in config-check's output."""
    write(tmp_path, "REDIS_URL=redis://:hunter2@redis:6379/1\n", ".env.production")
    path = write(tmp_path, "[redis]\nmastodon_env_file = '.env.production'\n")
    config = load_config(path, environ={})
    assert config.redis.password is not None and config.redis.password.reveal() == "hunter2"
    assert "hunter2" not in repr(config) + str(config)
    assert "<secret>" in repr(config)
    result = subprocess.run([sys.executable, "-m", "bot", "config-check", str(path)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0
    assert "hunter2" not in result.stdout + result.stderr
    assert "redis://redis:6379/1" in result.stdout


def test_config_check_exit_status(tmp_path: Path) -> None:
    """config-check exits 0 for a good file and 2 for a bad one."""
    good = write(tmp_path, "[sidekiq]\nstale_after = 60\n", "good.toml")
    bad = write(tmp_path, "[sidekiq]\nstale_afte = 60\n", "bad.toml")
    run = [sys.executable, "-m", "bot", "config-check"]
    assert subprocess.run([*run, str(good)], capture_output=True, check=False).returncode == 0
    result = subprocess.run([*run, str(bad)], capture_output=True, text=True, check=False)
    assert (result.returncode, result.stderr.strip()) == (
        2, f"{bad}: sidekiq.stale_afte: unknown key")


def test_example_config_is_valid_and_documents_the_defaults(tmp_path: Path) -> None:
    """config.toml.example parses, every key is in it, and its values are the defaults."""
    text = (ROOT / "config.toml.example").read_text()
    key_line = re.compile(r"^# ([a-z_]+ = .*)$")
    uncommented = "\n".join(key_line.sub(r"\1", line) for line in text.splitlines())
    config = load_config(write(tmp_path, uncommented), environ={})
    assert config == Config(path=str(tmp_path / "config.toml"), redis=RedisConfig(source="config"))
    keys = [f.name for section in (config.redis, config.sidekiq, config.host, config.bot,
                                   config.mastodon, config.posts, config.agent)
            for f in dataclasses.fields(section)]
    renamed = {"password": ("password_file", "password_env"), "source": (),
               "access_token": ("access_token_file", "access_token_env")}
    for key in [k for name in keys for k in renamed.get(name, (name,))]:
        assert re.search(rf"^# {key} = ", text, re.MULTILINE), key


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        pytest.param("30s", 30.0, id="seconds"),
        pytest.param("30m", 1800.0, id="minutes"),
        pytest.param("2h", 7200.0, id="hours"),
        pytest.param("1d", 86400.0, id="days"),
        pytest.param("1w", 604800.0, id="weeks"),
        pytest.param("1h30m", 5400.0, id="combined"),
        pytest.param(" 1.5H ", 5400.0, id="fraction-case-space"),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    """Durations read like 30m, 2h, 1d."""
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "30", "m", "2 hours", "-5m", "1h-2m", "\u0662h"])
def test_parse_duration_rejects(text: str) -> None:
    """Anything else is a ValueError with a readable message."""
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_mastodon_section(tmp_path: Path) -> None:
    """Admins are normalised without a leading @; the token comes from a file or the env."""
    (tmp_path / "token").write_text("tok-123\n")
    path = write(tmp_path, "[mastodon]\napi_base_url = 'https://example.social/'\n"
                           "access_token_file = 'token'\n"
                           "admins = ['@alice', 'bob@other.example']\n")
    config = load_config(path, environ={})
    assert config.mastodon.api_base_url == "https://example.social"
    assert config.mastodon.access_token == Secret("tok-123")
    assert config.mastodon.admins == ("alice", "bob@other.example")
    assert "tok-123" not in repr(config)
    path = write(tmp_path, "[mastodon]\napi_base_url = 'https://example.social'\n")
    config = load_config(path, environ={"STATUSBOT_ACCESS_TOKEN": "from-env"})
    assert config.mastodon.access_token == Secret("from-env")


def test_health_mutes_and_rules(tmp_path: Path) -> None:
    """[health] overrides a queue's rule; maintenance windows and silences become mutes."""
    path = write(tmp_path, """
[health.queue_latency.pull]
warning = "1h"
critical = "4h"

[[maintenance]]
start = 2026-12-01T02:00:00Z
duration = "90m"
text = "database upgrade"

[[silence]]
components = ["queue:pull", "unserved:pull"]
until = 2026-12-02T00:00:00+01:00
reason = "imports being reprocessed"
""")
    config = load_config(path, environ={})
    pull = config.health.queue_latency["pull"]
    assert (pull.warning, pull.critical) == (3600.0, 14400.0)
    assert config.health.queue_latency["push"] == health.default_rules().queue_latency["push"]
    start = 1_796_090_400.0  # 2026-12-01T02:00:00Z
    assert config.mutes == (
        health.Mute(start, start + 5400, (), "maintenance: database upgrade"),
        health.Mute(0.0, 1_796_166_000.0, ("queue:pull", "unserved:pull"),
                    "silenced: imports being reprocessed"),
    )


def test_wording_overrides(tmp_path: Path) -> None:
    """An admin adapts texts and member impacts from the config file."""
    path = write(tmp_path, """
[wording]
notice_footer = "Follow #status for news."
[wording.impacts."queue:push"]
sentence = "Deine Beiträge erreichen andere Server verspätet."
""")
    wording = load_config(path, environ={}).wording
    assert wording.notice_footer == "Follow #status for news."
    push = wording.impacts["queue:push"]
    assert push.sentence == "Deine Beiträge erreichen andere Server verspätet."
    assert push.noun == DEFAULT_WORDING.impacts["queue:push"].noun


def test_report_slots(tmp_path: Path) -> None:
    """Weekly and monthly report times, or off."""
    path = write(tmp_path, "[reports]\nweekly = 'Friday 17:30'\nmonthly = 'off'\n"
                           "monthly_cost = 42.5\ndonation_url = 'https://example.org/donate'\n")
    reports = load_config(path, environ={}).reports
    assert (reports.weekly, reports.monthly, reports.monthly_cost) == ((4, 17 * 60 + 30), None,
                                                                       42.5)


# --- [[fallback]] ----------------------------------------------------------------------------

INSTANCE = "[mastodon]\napi_base_url = 'https://example.social'\n"
FB_ENV = {"STATUSBOT_ACCESS_TOKEN": "main-token", "FB_TOKEN": "fb-token-1"}


def fallback_config(tmp_path: Path, entries: str, *, instance: str = INSTANCE,
                    environ: dict[str, str] | None = None) -> Config:
    return load_config(write(tmp_path, instance + entries),
                       environ=FB_ENV if environ is None else environ)


def test_fallback_entries_are_read(tmp_path: Path) -> None:
    """Each entry: its server, its token (file or env), visibility and after, with defaults."""
    (tmp_path / "fb.token").write_text("fb-token-2\n")
    config = fallback_config(tmp_path, """
[[fallback]]
api_base_url = "https://mastodon.online/"
access_token_env = "FB_TOKEN"

[[fallback]]
api_base_url = "https://Backup.Example:8443"
access_token_file = "fb.token"
visibility = "unlisted"
after = "10m"
""")
    assert config.fallbacks == (
        FallbackConfig("https://mastodon.online", Secret("fb-token-1")),
        FallbackConfig("https://Backup.Example:8443", Secret("fb-token-2"), "unlisted", 600.0))
    assert [f.destination for f in config.fallbacks] == [
        "fallback:mastodon.online", "fallback:backup.example:8443"]
    assert config.fallbacks[0].after == 300.0
    assert "fb-token" not in repr(config) + str(config)


HUGE = "9" * 400


@pytest.mark.parametrize(("entries", "messages"), [
    pytest.param("[[fallback]]\naccess_token_env = 'FB_TOKEN'\n",
                 ["fallback[0].api_base_url: is required (the server of the fallback account, "
                  "like https://mastodon.online)"], id="no-url"),
    pytest.param("[[fallback]]\napi_base_url = ''\naccess_token_env = 'FB_TOKEN'\n",
                 ["fallback[0].api_base_url: is required (the server of the fallback account, "
                  "like https://mastodon.online)"], id="empty-url"),
    pytest.param("[[fallback]]\napi_base_url = 'https://mastodon.online/api/v1'\n"
                 "access_token_env = 'FB_TOKEN'\n",
                 ["fallback[0].api_base_url: must be the instance's address alone, without a "
                  "path, query or fragment (like https://example.social), got "
                  "https://mastodon.online/..."], id="url-with-path"),
    pytest.param("[[fallback]]\napi_base_url = 'http://mastodon.online'\n"
                 "access_token_env = 'FB_TOKEN'\n",
                 ["fallback[0].api_base_url: must start with https:// (http:// only for a "
                  "loopback address), got 'http://mastodon.online'"], id="plain-http"),
    pytest.param("[[fallback]]\napi_base_url = 'https://bob:pw@mastodon.online'\n"
                 "access_token_env = 'FB_TOKEN'\n",
                 ["fallback[0].api_base_url: must not hold a user name or password (the token "
                  "goes in access_token_file or access_token_env)"], id="password-in-url"),
    pytest.param("[[fallback]]\napi_base_url = 42\naccess_token_env = 'FB_TOKEN'\n",
                 ["fallback[0].api_base_url: must be an https:// URL like https://example.social,"
                  " got int 42"], id="url-wrong-type"),
    pytest.param("[[fallback]]\napi_base_url = 'https://mastodon.online'\n",
                 ["fallback[0].access_token_file: a fallback account needs its own token: set "
                  "access_token_file or access_token_env"], id="no-token"),
    pytest.param("[[fallback]]\napi_base_url = 'https://mastodon.online'\n"
                 "access_token_env = 'UNSET'\n",
                 ["fallback[0].api_base_url: needs an access token: set access_token_file, or "
                  "the environment variable UNSET"], id="token-env-unset"),
    pytest.param("[[fallback]]\napi_base_url = 'https://mastodon.online'\n"
                 "access_token_env = 'EMPTY'\n",
                 ["fallback[0].access_token_env: the environment variable EMPTY is empty"],
                 id="token-env-empty"),
    pytest.param("[[fallback]]\napi_base_url = 'https://mastodon.online'\n"
                 "access_token_env = 'FB TOKEN'\n",
                 ["fallback[0].access_token_env: must be a variable name like "
                  "STATUSBOT_FALLBACK_TOKEN, got 'FB TOKEN'"], id="token-env-not-a-name"),
    pytest.param("[[fallback]]\napi_base_url = 'https://mastodon.online'\n"
                 "access_token_file = 'missing'\n",
                 ["fallback[0].access_token_file: cannot read missing: No such file or "
                  "directory"], id="token-file-missing"),
    pytest.param("[[fallback]]\napi_base_url = 'https://mastodon.online'\n"
                 "access_token_env = 'FB_TOKEN'\nafter = 0\n",
                 ["fallback[0].after: must be from 1s to 1d, got 0"], id="after-zero"),
    pytest.param("[[fallback]]\napi_base_url = 'https://mastodon.online'\n"
                 "access_token_env = 'FB_TOKEN'\nafter = -5\n",
                 ["fallback[0].after: must be from 1s to 1d, got -5"], id="after-negative"),
    pytest.param("[[fallback]]\napi_base_url = 'https://mastodon.online'\n"
                 "access_token_env = 'FB_TOKEN'\nafter = nan\n",
                 ["fallback[0].after: must be from 1s to 1d, got nan"], id="after-nan"),
    pytest.param("[[fallback]]\napi_base_url = 'https://mastodon.online'\n"
                 "access_token_env = 'FB_TOKEN'\nafter = inf\n",
                 ["fallback[0].after: must be from 1s to 1d, got inf"], id="after-inf"),
    pytest.param("[[fallback]]\napi_base_url = 'https://mastodon.online'\n"
                 f"access_token_env = 'FB_TOKEN'\nafter = {HUGE}\n",
                 [f"fallback[0].after: must be from 1s to 1d, got {int(HUGE)!r:.40}"],
                 id="after-huge-int"),
    pytest.param("[[fallback]]\napi_base_url = 'https://mastodon.online'\n"
                 "access_token_env = 'FB_TOKEN'\nafter = '2d'\n",
                 ["fallback[0].after: must be from 1s to 1d, got '2d'"], id="after-too-long"),
    pytest.param("[[fallback]]\napi_base_url = 'https://mastodon.online'\n"
                 "access_token_env = 'FB_TOKEN'\nafter = 'soon'\n",
                 ["fallback[0].after: not a duration: 'soon' (write e.g. 30m, 2h, 1d)"],
                 id="after-words"),
    pytest.param("[[fallback]]\napi_base_url = 'https://mastodon.online'\n"
                 "access_token_env = 'FB_TOKEN'\nvisibility = 'direct'\n",
                 ["fallback[0].visibility: must be one of public, unlisted, private, got "
                  "'direct'"], id="visibility-direct"),
    pytest.param("[[fallback]]\napi_base_url = 'https://mastodon.online'\n"
                 "access_token_env = 'FB_TOKEN'\nafterr = '5m'\n",
                 ["fallback[0].afterr: unknown key"], id="typo-key"),
    pytest.param("[[fallback]]\napi_base_url = 'https://example.social'\n"
                 "access_token_env = 'FB_TOKEN'\n",
                 ["fallback[0].api_base_url: is the instance itself, which cannot speak while "
                  "it is down: name an account on another server"], id="the-instance-itself"),
    pytest.param("[[fallback]]\napi_base_url = 'https://mastodon.online'\n"
                 "access_token_env = 'FB_TOKEN'\n"
                 "[[fallback]]\napi_base_url = 'https://MASTODON.online/'\n"
                 "access_token_env = 'FB_TOKEN'\n",
                 ["fallback[1].api_base_url: the same server as fallback[0] (one account per "
                  "server)"], id="same-server-twice"),
    pytest.param("".join(f"[[fallback]]\napi_base_url = 'https://s{i}.example'\n"
                         "access_token_env = 'FB_TOKEN'\n" for i in range(5)),
                 ["fallback: at most 4 [[fallback]] entries, got 5"], id="too-many"),
    pytest.param("[fallback]\napi_base_url = 'https://mastodon.online'\n",
                 ["fallback: must be a list of tables ([[fallback]])"], id="a-table-not-a-list"),
])
def test_bad_fallbacks(tmp_path: Path, entries: str, messages: list[str]) -> None:
    """Every problem of a [[fallback]] entry names the entry, the key and what is wrong."""
    with pytest.raises(ConfigError) as caught:
        fallback_config(tmp_path, entries, environ={**FB_ENV, "EMPTY": ""})
    assert caught.value.problems == messages


def test_fallback_not_a_list(tmp_path: Path) -> None:
    """A plain value where the list of tables belongs is named as such."""
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, "fallback = 'https://mastodon.online'\n" + INSTANCE),
                    environ=FB_ENV)
    assert caught.value.problems == ["fallback: must be a list of tables ([[fallback]])"]


def test_fallback_needs_the_instance(tmp_path: Path) -> None:
    """Fallback accounts tell about an instance: none without [mastodon] api_base_url."""
    with pytest.raises(ConfigError) as caught:
        fallback_config(tmp_path, "[[fallback]]\napi_base_url = 'https://mastodon.online'\n"
                                  "access_token_env = 'FB_TOKEN'\n", instance="")
    assert caught.value.problems == [
        "fallback: needs mastodon.api_base_url (the instance whose outages the fallback "
        "accounts tell about)"]


def test_fallback_on_loopback_is_a_warning(tmp_path: Path) -> None:
    """http:// to a loopback fallback (a test server) is accepted with a warning naming it."""
    config = fallback_config(tmp_path, "[[fallback]]\napi_base_url = 'http://127.0.0.1:3001'\n"
                                       "access_token_env = 'FB_TOKEN'\n")
    assert config.fallbacks[0].destination == "fallback:127.0.0.1:3001"
    assert any(w.startswith("fallback[0].api_base_url: plain http://") for w in config.warnings)


def test_fallback_token_is_not_read_when_not_needed(tmp_path: Path) -> None:
    """The audit and healthcheck commands read no token, the fallbacks' included."""
    config = load_config(write(tmp_path, INSTANCE + "[[fallback]]\n"
                               "api_base_url = 'https://mastodon.online'\n"),
                         environ={}, need_token=False)
    assert config.fallbacks == (FallbackConfig("https://mastodon.online", None),)
