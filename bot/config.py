"""Load the TOML configuration into frozen, typed, validated objects.

Unknown keys, wrong types and impossible values are errors that name the
file, the key and the problem; all of them are reported at once. Secrets come
from the environment or from a file the configuration names, never from the
TOML itself, and their ``repr`` is ``<secret>``.

Where Sidekiq's Redis is, in order: ``[redis] url``; else Mastodon's own
settings from ``[redis] mastodon_env_file`` (``SIDEKIQ_REDIS_URL``, then
``SIDEKIQ_REDIS_HOST/PORT/PASSWORD/DB``, then ``REDIS_URL``, then
``REDIS_HOST/PORT/PASSWORD/DB``, with ``REDIS_NAMESPACE`` as the key prefix);
else the ``REDIS_URL`` environment variable; else ``defaults.REDIS_URL``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import re
import sys
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, quote, unquote, urlsplit, urlunsplit

from bot import defaults
from bot.health import HOST_RULES, Mute, Rules, default_rules, rules_from_config
from bot.wording import DEFAULT_WORDING, Impact, Wording

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

T = TypeVar("T")


class ConfigError(Exception):
    """The configuration cannot be used; ``problems`` lists every reason."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {problem}" for problem in problems))


class Secret:
    """A secret string that never shows itself in ``repr``, ``str`` or logs."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the secret itself, for the one place that must send it."""
        return self._value

    def __repr__(self) -> str:
        return "<secret>"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, slots=True)
class RedisConfig:
    """How to reach Sidekiq's Redis.

    ``url`` never holds a password (it is shown in output); the password, from
    the URL's source, ``password_file`` or ``password_env``, is in ``password``.
    ``source`` says where the URL came from.
    """

    url: str = defaults.REDIS_URL
    namespace: str = defaults.REDIS_NAMESPACE
    password: Secret | None = None
    socket_timeout: float = defaults.REDIS_SOCKET_TIMEOUT
    source: str = "default"


@dataclass(frozen=True, slots=True)
class SidekiqConfig:
    """How to judge what is read from Sidekiq."""

    stale_after: float = defaults.PROCESS_STALE_AFTER


@dataclass(frozen=True, slots=True)
class HostConfig:
    """What to read of the host the bot runs on."""

    disk_paths: tuple[str, ...] = defaults.DISK_PATHS


@dataclass(frozen=True, slots=True)
class HostEntry:
    """One ``[[hosts]]`` entry: another host of the instance.

    With ``node_exporter`` (a ``http(s)://…/metrics`` URL) the bot reads the
    host from Prometheus' node_exporter each tick, waiting at most
    ``timeout`` seconds. Without it, the entry describes a host whose
    ``statusbot agent`` reports through Redis under the same ``name``.
    ``role`` is the admins' word for what runs there ("web", "sidekiq",
    "db", ...); ``member_visible`` says whether members hear about this host
    (short on memory, not reporting). ``health`` holds this host's memory,
    swap and disk rules where the entry overrides them (``[hosts.health]``,
    starting from ``[health]``); None to use ``[health]``'s.
    """

    name: str
    node_exporter: str = ""
    timeout: float = defaults.HOST_TIMEOUT
    role: str = ""
    member_visible: bool = False
    health: Rules | None = None


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """``[agent]``: ``statusbot agent`` and the standby lease's Redis writer.

    ``name`` is the host's name in ``statusbot:host:<name>`` (default: the
    hostname). The writer logs in to Redis as ``username`` (an ACL user that
    may only write ``statusbot:*`` keys); the bot's own ``[redis]`` user stays
    read-only.
    """

    name: str = ""
    interval: float = defaults.INTERVAL
    username: str = defaults.AGENT_REDIS_USER
    password: Secret | None = None


@dataclass(frozen=True, slots=True)
class PostgresConfig:
    """How to reach PostgreSQL for the capacity advice's connection figures (read-only).

    ``host`` is a name, an address or a Unix socket directory (starting with
    ``/``). ``password`` comes from ``password_file``/``password_env`` or, with
    Mastodon's own user, from ``DB_PASS``/``DATABASE_URL``; it never prints.
    ``timeout`` bounds a whole reading (connecting and the queries).
    ``pgbouncer``: the connection goes through PgBouncer (port 6432 unless said
    otherwise). ``source`` says where the connection came from.
    """

    host: str
    port: int = defaults.POSTGRES_PORT
    dbname: str = "mastodon_production"
    user: str = "mastodon"
    password: Secret | None = None
    timeout: float = defaults.POSTGRES_TIMEOUT
    pgbouncer: bool = False
    source: str = "config"


@dataclass(frozen=True, slots=True)
class BotConfig:
    """The tick loop and where state lives.

    ``standby``: several ``statusbot run`` share one account; a lease in Redis
    (``statusbot:leader``, written with ``[agent]``'s user) picks the one that
    posts.
    """

    interval: float = defaults.INTERVAL
    state_dir: str = defaults.STATE_DIR
    standby: bool = False


@dataclass(frozen=True, slots=True)
class MastodonConfig:
    """The instance the bot posts to. ``api_base_url`` empty: print posts instead."""

    api_base_url: str = ""
    access_token: Secret | None = None
    request_timeout: float = defaults.REQUEST_TIMEOUT
    admins: tuple[str, ...] = ()
    language: str = defaults.LANGUAGE
    timezone: str = defaults.TIMEZONE
    member_visibility: str = defaults.MEMBER_VISIBILITY
    status_visibility: str = defaults.STATUS_VISIBILITY
    streaming_url: str = ""
    probe_health: bool = True
    retry_after: float = defaults.BACKOFF_BASE
    retry_max: float = defaults.BACKOFF_CAP


@dataclass(frozen=True, slots=True)
class PostsConfig:
    """What the bot posts besides incidents, and how often it reminds."""

    status_every: float = defaults.STATUS_EVERY
    reminder_every: float = defaults.REMINDER_EVERY
    max_reminders: int = defaults.MAX_REMINDERS
    profile_field: bool = True


@dataclass(frozen=True, slots=True)
class CommandsConfig:
    """Commands by mention: who may ask what, and how new incidents are published."""

    enabled: bool = True
    public: tuple[str, ...] = defaults.PUBLIC_COMMANDS
    admin_visibilities: tuple[str, ...] = defaults.ADMIN_VISIBILITIES
    incident_mode: str = "auto"
    confirm_delay: float = defaults.CONFIRM_DELAY
    stream: bool = True
    backfill_every: float = defaults.MENTIONS_BACKFILL_EVERY
    ensure_policy: bool = True
    replies_per_account: int = defaults.REPLIES_PER_ACCOUNT
    replies_per_hour: int = defaults.REPLIES_GLOBAL


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class ReportsConfig:
    """When the weekly digest and the monthly donor report go out, and what they cite.

    ``weekly`` is (weekday 0-6, minutes after local midnight) or None for off;
    ``monthly`` is (day of month 1-28, minutes) or None.
    """

    weekly: tuple[int, int] | None = (0, 9 * 60)
    monthly: tuple[int, int] | None = (1, 9 * 60)
    monthly_cost: float = 0.0
    currency: str = "EUR"
    donation_url: str = ""
    chart: bool = True


@dataclass(frozen=True, slots=True)
class PageConfig:
    """The static status page (``bot/page.py``) and how it is published.

    ``dir`` empty: no page. ``url`` is where members find it (links in the
    feed and the JSON; may be empty). ``publish_command`` (empty: none) runs
    after each change, split like a shell would but never run by one; its
    ``{dir}`` is replaced by ``dir``. It is killed after ``publish_timeout``.
    """

    dir: str = ""
    url: str = ""
    publish_command: tuple[str, ...] = ()
    publish_timeout: float = defaults.PAGE_PUBLISH_TIMEOUT


@dataclass(frozen=True, slots=True)
class FallbackConfig:
    """An account on another server that speaks only while the instance cannot be reached.

    One ``[[fallback]]`` entry (``bot/fallback.py``): ``api_base_url`` is that
    server (checked like ``[mastodon] api_base_url``), ``access_token`` the
    account's token (from ``access_token_file`` or ``access_token_env``; None
    when not read), ``after`` how long the instance must have been unreachable
    before the notice, ``visibility`` of its posts.
    """

    api_base_url: str
    access_token: Secret | None = None
    visibility: str = defaults.FALLBACK_VISIBILITY
    after: float = defaults.FALLBACK_AFTER

    @property
    def destination(self) -> str:
        """The ``Post.destination`` of this account's posts: ``fallback:<host[:port]>``."""
        return fallback_destination(self.api_base_url)


def fallback_destination(api_base_url: str) -> str:
    """Return the destination name of a fallback server: ``fallback:<host[:port]>``."""
    parts = urlsplit(api_base_url)
    try:
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        port = ""
    return f"fallback:{(parts.hostname or '').lower()}{port}"


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration. ``path`` is None for the embedded defaults.

    ``warnings`` are accepted oddities to show at start-up and by ``config-check``
    (e.g. plain http:// to a loopback instance).
    """

    redis: RedisConfig = field(default_factory=RedisConfig)
    sidekiq: SidekiqConfig = field(default_factory=SidekiqConfig)
    host: HostConfig = field(default_factory=HostConfig)
    bot: BotConfig = field(default_factory=BotConfig)
    mastodon: MastodonConfig = field(default_factory=MastodonConfig)
    posts: PostsConfig = field(default_factory=PostsConfig)
    health: Rules = field(default_factory=default_rules)
    mutes: tuple[Mute, ...] = ()
    wording: Wording = field(default_factory=Wording)
    commands: CommandsConfig = field(default_factory=CommandsConfig)
    reports: ReportsConfig = field(default_factory=ReportsConfig)
    page: PageConfig = field(default_factory=PageConfig)
    fallbacks: tuple[FallbackConfig, ...] = ()
    hosts: tuple[HostEntry, ...] = ()
    agent: AgentConfig = field(default_factory=AgentConfig)
    postgres: PostgresConfig | None = None
    path: str | None = None
    warnings: tuple[str, ...] = ()


DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """Return the seconds in ``30s``, ``30m``, ``2h``, ``1d``, ``1w`` or ``1h30m``.

    Raises ``ValueError`` with a message fit to show a person.
    """
    match = re.fullmatch(r"\s*((?:[0-9]+(?:\.[0-9]+)?\s*[smhdw]\s*)+)", text.lower())
    if not match:
        raise ValueError(f"not a duration: {text!r} (write e.g. 30m, 2h, 1d)")
    parts = re.findall(r"([0-9]+(?:\.[0-9]+)?)\s*([smhdw])", match.group(1))
    return sum(float(n) * DURATION_UNITS[unit] for n, unit in parts)


class _Table:
    """Typed access to one TOML table that records problems instead of raising."""

    def __init__(self, name: str, data: Mapping[str, Any], problems: list[str]) -> None:
        self.name = name
        self.data = data
        self.problems = problems
        self.used: set[str] = set()

    def problem(self, key: str, text: str) -> None:
        self.problems.append(f"{self.name}.{key}: {text}" if self.name else f"{key}: {text}")

    def get(self, key: str, kind: type[T], default: T, what: str) -> T:
        self.used.add(key)
        if key not in self.data:
            return default
        value = self.data[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = _to_float(value)
        if not isinstance(value, kind) or isinstance(value, bool) != (kind is bool):
            self.problem(key, f"must be {what}, got {type(value).__name__} {value!r:.60}")
            return default
        return value

    def number(self, key: str, default: float, *, minimum: float, maximum: float,
               unit: str = "seconds", zero: str = "") -> float:
        """Read a number from ``minimum`` to ``maximum``; ``zero`` names what 0 means."""
        value = self.get(key, float, default, f"a number of {unit}")
        return self.bounded(key, value, value, default, minimum, maximum, unit, zero)

    def duration(self, key: str, default: float, *, minimum: float,
                 maximum: float = defaults.PERIOD_MAX, zero: str = "") -> float:
        """Read a duration: a number of seconds or a string such as ``30m`` or ``2h``.

        It must lie from ``minimum`` to ``maximum``; ``zero`` names what 0 means, if allowed.
        """
        self.used.add(key)
        value = self.data.get(key, default)
        if isinstance(value, str):
            try:
                seconds = parse_duration(value)
            except ValueError as exc:
                self.problem(key, str(exc))
                return default
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            seconds = _to_float(value)
        else:
            self.problem(key, f"must be seconds or a duration like \"30m\", got "
                              f"{type(value).__name__} {value!r:.60}")
            return default
        return self.bounded(key, seconds, value, default, minimum, maximum, "seconds", zero)

    def bounded(self, key: str, value: float, shown: object, default: float, minimum: float,
                maximum: float, unit: str, zero: str) -> float:
        """Return ``value`` when it is 0 (and ``zero`` allowed) or in range, else ``default``."""
        if zero and value == 0:
            return value
        if math.isfinite(value) and minimum <= value <= maximum:
            return value
        if unit == "seconds":
            span = f"from {_seconds_text(minimum)} to {_seconds_text(maximum)}"
        else:
            span = f"from {minimum:g} to {maximum:g} {unit}"
        self.problem(key, f"must be {f'0 ({zero}) or ' if zero else ''}{span}, "
                          f"got {shown!r:.40}")
        return default

    def path(self, key: str, default: str) -> str:
        """Read a file or directory path (no NUL character, which no system accepts)."""
        value = self.get(key, str, default, "a path")
        if "\x00" in value:
            self.problem(key, "must not contain a NUL character")
            return default
        return value

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.get(key, str, default, f"one of {', '.join(choices)}")
        if value not in choices:
            self.problem(key, f"must be one of {', '.join(choices)}, got {value!r}")
            return default
        return value

    def finish(self) -> None:
        for key in sorted(set(self.data) - self.used):
            self.problem(key, "unknown key")


def load_config(path: str | os.PathLike[str] | None,
                environ: Mapping[str, str] | None = None, *, need_token: bool = True) -> Config:
    """Load ``path``, or the embedded defaults when it is None.

    ``environ`` (default ``os.environ``) supplies ``REDIS_URL`` and the
    variables a ``password_env`` names. With ``need_token=False`` the Mastodon
    access token is neither read nor required (``audit`` and ``healthcheck``
    never talk to Mastodon). Raises ``ConfigError`` listing every problem, each
    prefixed with the file name.
    """
    env = os.environ if environ is None else environ
    if path is None:
        env_problems: list[str] = []
        redis_config = _redis_from_environment(env, env_problems)
        if env_problems:
            raise ConfigError("environment", env_problems)
        return Config(redis=redis_config)
    source = str(path)
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(source, ["no such file"]) from None
    except OSError as exc:
        raise ConfigError(source, [f"cannot read: {exc.strerror or exc}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [f"not valid TOML: {exc}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(source, [f"not UTF-8 text ({_decode_error(exc)})"]) from None
    except RecursionError:
        raise ConfigError(source, ["not valid TOML: nested too deeply"]) from None
    problems: list[str] = []
    warnings: list[str] = []
    config = _parse(data, Path(source).parent, env, problems, warnings, need_token)
    if problems:
        raise ConfigError(source, problems)
    return dataclasses.replace(config, path=source, warnings=tuple(warnings))


def _decode_error(exc: UnicodeDecodeError) -> str:
    """Say where a file stops being UTF-8, without quoting it (it may hold a secret)."""
    return f"byte 0x{exc.object[exc.start]:02x} at position {exc.start}"


def state_dir_problem(state_dir: str) -> str | None:
    """Return why ``state_dir`` cannot hold the state file, or None when it can.

    Run by ``config-check`` and at the start of ``run`` (not by ``load_config``:
    ``check`` needs no state directory, and ``audit`` only reads it).
    """
    path = Path(state_dir)
    try:
        existing = path
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            return (f"{path} is not a directory" if existing == path
                    else f"cannot create {path}: {existing} is not a directory")
        if not os.access(existing, os.W_OK | os.X_OK):
            return f"{existing} is not writable by this user"
        state_file = path / defaults.STATE_FILE
        if state_file.exists() and (state_file.is_dir() or not os.access(state_file, os.W_OK)):
            return f"{state_file} is not a writable file"
    except (OSError, ValueError) as exc:
        return f"cannot use {path}: {getattr(exc, 'strerror', None) or exc}"
    return None


def _parse(data: Mapping[str, Any], base: Path, env: Mapping[str, str],
           problems: list[str], warnings: list[str], need_token: bool = True) -> Config:
    sections: dict[str, Callable[[_Table], Any]] = {
        "redis": lambda t: _redis(t, base, env),
        "sidekiq": _sidekiq,
        "host": _host,
        "bot": _bot,
        "mastodon": lambda t: _mastodon(t, base, env, warnings, need_token),
        "posts": _posts,
        "health": _health,
        "wording": _wording,
        "commands": _commands,
        "reports": _reports,
        "page": _page,
        "agent": lambda t: _agent(t, base, env),
        "postgres": lambda t: _postgres(t, base, env, data.get("redis"), warnings),
    }
    lists = ("maintenance", "silence", "fallback", "hosts")
    built: dict[str, Any] = {}
    for name, value in data.items():
        if name not in sections and name not in lists:
            known = ", ".join((*sections, *(f"[[{n}]]" for n in lists)))
            problems.append(f"{name}: unknown section (known: {known})")
        elif name in sections and not isinstance(value, dict):
            problems.append(f"{name}: must be a table ([{name}])")
        elif name in lists and not (isinstance(value, list)
                                    and all(isinstance(v, dict) for v in value)):
            problems.append(f"{name}: must be a list of tables ([[{name}]])")
    for name, build in sections.items():
        value = data.get(name, {})
        table = _Table(name, value if isinstance(value, dict) else {}, problems)
        built[name] = build(table)
        table.finish()
    mutes: list[Mute] = []
    for name in ("maintenance", "silence"):
        entries = data.get(name, [])
        for index, entry in enumerate(entries if isinstance(entries, list) else []):
            if isinstance(entry, dict):
                table = _Table(f"{name}[{index}]", entry, problems)
                mute = _mute(table, maintenance=name == "maintenance")
                table.finish()
                if mute is not None:
                    mutes.append(mute)
    fallbacks = _fallbacks(data.get("fallback", []), built["mastodon"], base, env, problems,
                           warnings, need_token)
    hosts = _hosts(data.get("hosts", []), built["health"], problems, warnings)
    return Config(**built, mutes=tuple(mutes), fallbacks=fallbacks, hosts=hosts)


# --- [[hosts]]: the instance's other hosts (issue 11) ---

HOST_NAME = re.compile(rf"[A-Za-z0-9._-]{{1,{defaults.HOST_NAME_MAX}}}")
"""A ``[[hosts]] name``: also the ``<name>`` of an agent's ``statusbot:host:<name>`` key."""

HOST_HEALTH_KEYS = HOST_RULES
"""The rules a ``[hosts.health]`` table may override; the others are the instance's."""


def _hosts(entries: object, health: Rules, problems: list[str],
           warnings: list[str]) -> tuple[HostEntry, ...]:
    """Read the ``[[hosts]]`` entries (a list of tables was checked by the caller)."""
    if not isinstance(entries, list) or not entries:
        return ()
    if len(entries) > defaults.HOSTS_MAX:
        problems.append(f"hosts: at most {defaults.HOSTS_MAX} [[hosts]] entries, "
                        f"got {len(entries)}")
        return ()
    found: list[HostEntry] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            continue
        table = _Table(f"hosts[{index}]", entry, problems)
        host = _host_entry(table, health, warnings)
        table.finish()
        if host is None:
            continue
        if host.name.lower() in seen:
            table.problem("name", f"{host.name!r} is already the name of "
                                  f"hosts[{seen[host.name.lower()]}]")
            continue
        seen[host.name.lower()] = index
        found.append(host)
    return tuple(found)


def _host_entry(table: _Table, health: Rules, warnings: list[str]) -> HostEntry | None:
    """Read one ``[[hosts]]``: name, node_exporter, timeout, role, member_visible, health."""
    before = len(table.problems)
    name = table.get("name", str, "", "a host name")
    if "name" not in table.data:
        table.problem("name", "is required (the host's name, like \"db1\")")
    elif not HOST_NAME.fullmatch(name):
        table.problem("name", f"must be 1 to {defaults.HOST_NAME_MAX} letters, digits, "
                              f"'.', '_' or '-', got {name!r:.80}")
    url = table.get("node_exporter", str, "", "an http:// or https:// URL")
    if url:
        problem = _exporter_url_problem(url)
        if problem:
            table.problem("node_exporter", problem)
        else:
            host = urlsplit(url).hostname or ""
            if urlsplit(url).scheme == "http" and _public_address(host):
                warnings.append(f"{table.name}.node_exporter: plain http:// to the public "
                                f"address {host} (no TLS); anyone on the way can read or "
                                f"change the readings")
    timeout = table.duration("timeout", defaults.HOST_TIMEOUT, minimum=defaults.HOST_TIMEOUT_MIN,
                             maximum=defaults.HOST_TIMEOUT_MAX)
    role = table.get("role", str, "", "a short text")
    if len(role) > defaults.HOST_ROLE_MAX or not role.isprintable():
        table.problem("role", f"must be at most {defaults.HOST_ROLE_MAX} printable characters, "
                              f"got {role!r:.60}")
    member_visible = table.get("member_visible", bool, False, "true or false")
    rules = _host_health(table, health)
    if len(table.problems) != before:
        return None
    return HostEntry(name=name, node_exporter=url, timeout=timeout, role=role,
                     member_visible=member_visible, health=rules)


def _exporter_url_problem(url: str) -> str:
    """Say why ``url`` cannot be a node_exporter's address (empty when it can)."""
    example = "like http://10.0.0.5:9100/metrics"
    if re.search(r"[\s\x00-\x1f\x7f]", url):
        return f"must be a URL without blanks or control characters ({example})"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as exc:
        return f"not a URL ({example}): {exc}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"must be an http:// or https:// URL with a host ({example}), " \
               f"got {redact_url(url)!r:.80}"
    if "@" in parts.netloc:
        return "must not contain a user name or password"
    if parts.fragment or url.endswith("#"):
        return f"must not have a #fragment, got {url!r:.80}"
    return ""


def _public_address(host: str) -> bool:
    """Whether ``host`` is an IP address reachable across the internet (names: unknown, no)."""
    try:
        return ipaddress.ip_address(host).is_global
    except ValueError:
        return False


def _host_health(table: _Table, health: Rules) -> Rules | None:
    """Read ``[hosts.health]``: this host's memory, swap and disk rules over ``[health]``'s."""
    table.used.add("health")
    if "health" not in table.data:
        return None
    data = table.data["health"]
    if not isinstance(data, dict):
        table.problem("health", "must be a table ([hosts.health])")
        return None
    problems = [f"{key}: only {', '.join(HOST_HEALTH_KEYS)} can be set per host"
                for key in sorted(set(data) - set(HOST_HEALTH_KEYS))]
    wanted = {k: v for k, v in data.items() if k in HOST_HEALTH_KEYS}
    problems += _huge_numbers(wanted, "")  # they overflow float arithmetic
    rules: Rules | None = None
    if not problems:
        rules, problems = rules_from_config(wanted, base=health, duration=parse_duration)
    for problem in problems:
        key, colon, text = problem.partition(": ")
        table.problem(f"health.{key}" if colon else "health", text if colon else problem)
    return None if problems else rules


def _fallbacks(entries: object, mastodon: MastodonConfig, base: Path, env: Mapping[str, str],
               problems: list[str], warnings: list[str],
               need_token: bool) -> tuple[FallbackConfig, ...]:
    """Read the ``[[fallback]]`` entries (a list of tables was checked by the caller)."""
    if not isinstance(entries, list) or not entries:
        return ()
    if len(entries) > defaults.FALLBACK_MAX:
        problems.append(f"fallback: at most {defaults.FALLBACK_MAX} [[fallback]] entries, "
                        f"got {len(entries)}")
        return ()
    if not mastodon.api_base_url:
        problems.append("fallback: needs mastodon.api_base_url (the instance whose outages "
                        "the fallback accounts tell about)")
    found: list[FallbackConfig] = []
    seen: dict[str, int] = {}
    own = fallback_destination(mastodon.api_base_url) if mastodon.api_base_url else None
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            continue
        table = _Table(f"fallback[{index}]", entry, problems)
        fallback = _fallback(table, base, env, warnings, need_token)
        table.finish()
        if fallback is None:
            continue
        destination = fallback.destination
        if destination == own:
            table.problem("api_base_url", "is the instance itself, which cannot speak while "
                                          "it is down: name an account on another server")
        elif destination in seen:
            table.problem("api_base_url", f"the same server as fallback[{seen[destination]}] "
                                          f"(one account per server)")
        else:
            seen[destination] = index
            found.append(fallback)
    return tuple(found)


def _fallback(table: _Table, base: Path, env: Mapping[str, str], warnings: list[str],
              need_token: bool) -> FallbackConfig | None:
    """Read one ``[[fallback]]``: api_base_url, the token's file or variable, visibility, after."""
    before = len(table.problems)
    url = _api_base_url(table, warnings)
    if not url and len(table.problems) == before:
        table.problem("api_base_url", "is required (the server of the fallback account, like "
                                      "https://mastodon.online)")
    token_file = table.path("access_token_file", "")
    token_env = table.get("access_token_env", str, "", "an environment variable name")
    if token_env and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", token_env):
        table.problem("access_token_env", f"must be a variable name like STATUSBOT_FALLBACK_TOKEN, "
                                          f"got {token_env!r:.60}")
        token_env = ""
    visibility = table.choice("visibility", defaults.FALLBACK_VISIBILITY,
                              ("public", "unlisted", "private"))
    after = table.duration("after", defaults.FALLBACK_AFTER, minimum=defaults.PERIOD_MIN,
                           maximum=defaults.FALLBACK_AFTER_MAX)
    token: Secret | None = None
    if url and need_token and len(table.problems) == before:
        if not token_file and not token_env:
            table.problem("access_token_file", "a fallback account needs its own token: set "
                                               "access_token_file or access_token_env")
        else:
            token = _token(table, base, env, token_file, token_env)
    if len(table.problems) != before or not url:
        return None
    return FallbackConfig(api_base_url=url, access_token=token, visibility=visibility,
                          after=after)


def _commands(table: _Table) -> CommandsConfig:
    public = table.get("public", list, list(defaults.PUBLIC_COMMANDS), "a list of commands")
    known_public = set(defaults.PUBLIC_COMMANDS)
    for name in public:
        if not isinstance(name, str) or name not in known_public:
            table.problem("public", f"only {', '.join(sorted(known_public))} can be public, "
                                    f"got {name!r:.40}")
    visibilities = table.get("admin_visibilities", list, list(defaults.ADMIN_VISIBILITIES),
                             "a list of visibilities")
    for name in visibilities:
        if not isinstance(name, str) or name not in {"direct", "private", "unlisted", "public"}:
            table.problem("admin_visibilities", f"unknown visibility {name!r:.40}")
    return CommandsConfig(
        enabled=table.get("enabled", bool, True, "true or false"),
        public=tuple(n for n in public if isinstance(n, str) and n in known_public),
        admin_visibilities=tuple(str(v) for v in visibilities),
        incident_mode=table.choice("incident_mode", "auto", ("auto", "confirm")),
        confirm_delay=table.duration("confirm_delay", defaults.CONFIRM_DELAY,
                                     minimum=defaults.PERIOD_MIN),
        stream=table.get("stream", bool, True, "true or false"),
        backfill_every=table.duration("backfill_every", defaults.MENTIONS_BACKFILL_EVERY,
                                      minimum=defaults.PERIOD_MIN),
        ensure_policy=table.get("ensure_policy", bool, True, "true or false"),
        replies_per_account=_whole(table, "replies_per_account", defaults.REPLIES_PER_ACCOUNT,
                                   1, defaults.REPLIES_MAX),
        replies_per_hour=_whole(table, "replies_per_hour", defaults.REPLIES_GLOBAL,
                                1, defaults.REPLIES_MAX),
    )


def _slot(table: _Table, key: str, default: tuple[int, int] | None,
          weekly: bool) -> tuple[int, int] | None:
    """Read ``"mon 09:00"`` (weekly) or ``"1 09:00"`` (monthly), or ``"off"``."""
    example = '"mon 09:00"' if weekly else '"1 09:00" (day 1 to 28)'
    value = table.get(key, str, "", f"a day and time like {example}, or \"off\"")
    if not value:
        return default
    if value.strip().lower() == "off":
        return None
    match = re.fullmatch(r"\s*(\w+)\s+([01]?[0-9]|2[0-3]):([0-5][0-9])\s*", value.lower())
    day: int | None = None
    if match:
        word = match.group(1)
        if weekly and word[:3] in WEEKDAYS:
            day = WEEKDAYS.index(word[:3])
        elif not weekly and word.isdigit() and 1 <= int(word) <= 28:
            day = int(word)
    if match is None or day is None:
        table.problem(key, f"must be a day and time like {example}, or \"off\", got {value!r}")
        return default
    return day, int(match.group(2)) * 60 + int(match.group(3))


def _reports(table: _Table) -> ReportsConfig:
    defaults_ = ReportsConfig()
    url = table.get("donation_url", str, "", "a URL")
    if url and urlsplit(url).scheme not in {"http", "https"}:
        table.problem("donation_url", f"must be an https:// URL, got {url!r}")
        url = ""
    return ReportsConfig(
        weekly=_slot(table, "weekly", defaults_.weekly, weekly=True),
        monthly=_slot(table, "monthly", defaults_.monthly, weekly=False),
        monthly_cost=table.number("monthly_cost", 0.0, minimum=0,
                                  maximum=defaults.MONTHLY_COST_MAX, unit="(currency units)"),
        currency=table.get("currency", str, "EUR", "a currency code or sign"),
        donation_url=url,
        chart=table.get("chart", bool, True, "true or false"),
    )


def _page(table: _Table) -> PageConfig:
    directory = table.path("dir", "")
    if directory.strip() != directory:
        table.problem("dir", f"must not start or end with blanks, got {directory!r:.80}")
        directory = ""
    url = table.get("url", str, "", "an https:// URL")
    if url:
        problem = _page_url_problem(url)
        if problem:
            table.problem("url", problem)
            url = ""
    command = table.get("publish_command", str, "", "a command line")
    argv: tuple[str, ...] = ()
    if command.strip():
        argv = _publish_argv(table, command)
        if argv and not directory:
            table.problem("publish_command", "needs page.dir (the directory it publishes)")
    return PageConfig(
        dir=directory,
        url=url.rstrip("/"),
        publish_command=argv,
        publish_timeout=table.duration("publish_timeout", defaults.PAGE_PUBLISH_TIMEOUT,
                                       minimum=defaults.PERIOD_MIN,
                                       maximum=defaults.PAGE_PUBLISH_TIMEOUT_MAX),
    )


def _page_url_problem(url: str) -> str:
    """Say why ``url`` cannot be the page's address (empty when it can)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as exc:
        return f"not a URL: {exc}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"must be an http:// or https:// URL with a host, got {url!r:.80}"
    if parts.username or parts.password:
        return "must not contain a user name or password"
    if parts.query or parts.fragment or re.search(r"[\s<>\"'\\]", url):
        return f"must be a plain address (no query, fragment, blanks or quotes), got {url!r:.80}"
    return ""


def _publish_argv(table: _Table, command: str) -> tuple[str, ...]:
    """Split ``publish_command`` into arguments; ``{dir}`` is the only placeholder."""
    import shlex
    import string

    try:
        argv = shlex.split(command)
    except ValueError as exc:
        table.problem("publish_command", f"cannot be split into arguments: {exc}")
        return ()
    if any("\x00" in arg for arg in argv):
        table.problem("publish_command", "must not contain a NUL character")
        return ()
    for arg in argv:
        try:
            names = [p[1] for p in string.Formatter().parse(arg) if p[1] is not None]
        except ValueError as exc:
            table.problem("publish_command", f"{exc} in {arg!r:.60} (write {{{{ and }}}} "
                                             f"for braces)")
            return ()
        unknown = [n for n in names if n != "dir"]
        if unknown:
            table.problem("publish_command", f"unknown placeholder {{{unknown[0]}}} "
                                             f"(only {{dir}} is filled in)")
            return ()
    return tuple(argv)


def _whole(table: _Table, key: str, default: int, minimum: int, maximum: int) -> int:
    value = table.get(key, int, default, "a whole number")
    if not minimum <= value <= maximum:
        table.problem(key, f"must be from {minimum} to {maximum}, got {value!r:.40}")
        return default
    return value


def _to_float(value: float) -> float:
    """Return ``value`` as a float; an int too large for one becomes infinity (caught later)."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _seconds_text(seconds: float) -> str:
    """Format a bound for people: ``0.5s``, ``5m``, ``1h``, ``366d``."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _wording(table: _Table) -> Wording:
    """Read text overrides: any string field of ``bot.wording.Wording`` by name.

    Member impacts go in ``[wording.impacts."queue:push"]`` with ``sentence``,
    ``noun`` and ``short``.
    """
    texts = {f.name for f in dataclasses.fields(Wording) if f.type in ("str", str)}
    changes: dict[str, Any] = {}
    for key, value in table.data.items():
        if key == "impacts":
            continue
        table.used.add(key)
        if key not in texts:
            table.problem(key, "unknown text (see bot/wording.py for the names)")
        elif not isinstance(value, str):
            table.problem(key, f"must be a string, got {type(value).__name__}")
        else:
            changes[key] = value
    impacts = dict(DEFAULT_WORDING.impacts)
    raw_impacts = table.get("impacts", dict, {}, "a table of components")
    for component, parts in raw_impacts.items():
        if not isinstance(parts, dict):
            table.problem(f"impacts.{component}", "must be a table (sentence, noun, short)")
            continue
        base = impacts.get(component, Impact("", "", ""))
        unknown = sorted(set(parts) - {"sentence", "noun", "short"})
        for key in unknown:
            table.problem(f"impacts.{component}.{key}", "unknown key")
        if any(not isinstance(v, str) for v in parts.values()):
            table.problem(f"impacts.{component}", "every text must be a string")
            continue
        impacts[component] = Impact(parts.get("sentence", base.sentence),
                                    parts.get("noun", base.noun), parts.get("short", base.short))
    wording = dataclasses.replace(DEFAULT_WORDING, impacts=impacts, **changes)
    for problem in wording.problems():
        table.problems.append(f"wording.{problem}")
    return wording


def _huge_numbers(data: Mapping[str, Any], where: str) -> list[str]:
    """Name every number in ``data`` (nested) beyond ``defaults.PERIOD_MAX`` in size."""
    found: list[str] = []
    for key, value in data.items():
        if isinstance(value, Mapping):
            found += _huge_numbers(value, f"{where}{key}.")
        elif (isinstance(value, (int, float)) and not isinstance(value, bool)
              and abs(_to_float(value)) > defaults.PERIOD_MAX):  # nan: health says so
            found.append(f"{where}{key}: must be at most {defaults.PERIOD_MAX:.0f}, "
                         f"got {value!r:.40}")
    return found


def _health(table: _Table) -> Rules:
    huge = _huge_numbers(table.data, "health.")
    if huge:  # no rule needs them, and they overflow float arithmetic
        table.used.update(table.data)
        table.problems.extend(huge)
        return default_rules()
    rules, problems = rules_from_config(table.data, duration=parse_duration)
    table.used.update(table.data)  # rules_from_config reports unknown keys itself
    for problem in problems:
        table.problems.append(f"health.{problem}")
    return rules if not problems else default_rules()


def _moment(table: _Table, key: str) -> float | None:
    """Read a TOML date-time with its offset (``2026-12-01T02:00:00Z``) as epoch seconds."""
    table.used.add(key)
    value = table.data.get(key)
    if value is None:
        table.problem(key, "is required")
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            table.problem(key, f"must be a date and time like 2026-12-01T02:00:00Z, got {value!r}")
            return None
    if not isinstance(value, datetime):
        table.problem(key, f"must be a date and time like 2026-12-01T02:00:00Z, "
                           f"got {type(value).__name__} {value!r:.60}")
        return None
    if value.tzinfo is None:
        table.problem(key, f"needs a time zone offset, e.g. {value.isoformat()}Z or +01:00")
        return None
    return value.timestamp()


def _mute(table: _Table, *, maintenance: bool) -> Mute | None:
    """Read a ``[[maintenance]]`` window (start, duration or end, text) or a ``[[silence]]``."""
    components = table.get("components", list, [], "a list of component patterns")
    patterns = tuple(c for c in components if isinstance(c, str))
    if len(patterns) != len(components):
        table.problem("components", "every entry must be a pattern like \"queue:*\"")
    if maintenance:
        start = _moment(table, "start")
        if "end" in table.data:
            end = _moment(table, "end")
            if "duration" in table.data:
                table.problem("duration", "give duration or end, not both")
        else:
            end = None
            if "duration" not in table.data:
                table.problem("duration", "is required (or give end)")
            else:
                length = table.duration("duration", 0.0, minimum=defaults.PERIOD_MIN)
                end = None if start is None or length <= 0 else start + length
        text = table.get("text", str, "", "the text members see")
        reason = f"maintenance: {text}" if text else "maintenance"
    else:
        start = _moment(table, "start") if "start" in table.data else 0.0
        end = _moment(table, "until")
        reason = table.get("reason", str, "", "a reason")
        reason = f"silenced: {reason}" if reason else "silenced"
    if start is None or end is None:
        return None
    mute = Mute(start=start, end=end, components=patterns, reason=reason)
    for problem in mute.validate():
        table.problem("end" if maintenance else "until", problem)
    return mute


def _bot(table: _Table) -> BotConfig:
    return BotConfig(
        interval=table.duration("interval", defaults.INTERVAL, minimum=defaults.INTERVAL_MIN,
                                maximum=defaults.INTERVAL_MAX),
        state_dir=table.path("state_dir", defaults.STATE_DIR) or defaults.STATE_DIR,
        standby=table.get("standby", bool, False, "true or false"),
    )


def _posts(table: _Table) -> PostsConfig:
    reminders = _whole(table, "max_reminders", defaults.MAX_REMINDERS, 0,
                       defaults.MAX_REMINDERS_MAX)
    return PostsConfig(
        status_every=table.duration("status_every", defaults.STATUS_EVERY,
                                    minimum=defaults.STATUS_EVERY_MIN, zero="never"),
        reminder_every=table.duration("reminder_every", defaults.REMINDER_EVERY,
                                      minimum=defaults.PERIOD_MIN),
        max_reminders=reminders,
        profile_field=table.get("profile_field", bool, True, "true or false"),
    )


ACCT = re.compile(r"@?([A-Za-z0-9_]+)(@[A-Za-z0-9.-]+\.[A-Za-z]{2,})?")


def redact_url(url: str) -> str:
    """Return ``url`` with any user name and password (up to the last ``@``) as ``***``."""
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://)?.*@", lambda m: f"{m.group(1) or ''}***@",
                  url, count=1, flags=re.DOTALL)


def _api_base_url(table: _Table, warnings: list[str]) -> str:
    """Read ``api_base_url``: https://host[:port], or http:// to a loopback address."""
    key = "api_base_url"
    url = table.get(key, str, "", "an https:// URL like https://example.social")
    if not url:
        return ""
    example = "like https://example.social"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        table.problem(key, f"is not a valid URL ({example}), got {redact_url(url)!r}")
        return url
    if parts.scheme not in {"http", "https"}:
        table.problem(key, f"must be an https:// URL ({example}), got {redact_url(url)!r}")
    elif "@" in parts.netloc:
        table.problem(key, "must not hold a user name or password (the token goes in "
                           "access_token_file or access_token_env)")
    elif not parts.hostname or not re.fullmatch(r"[^\s\x00-\x1f\x7f]+", parts.hostname):
        table.problem(key, f"must name a host ({example})")
    elif parts.path not in {"", "/"} or parts.query or parts.fragment or url.endswith(("?", "#")):
        table.problem(key, f"must be the instance's address alone, without a path, query or "
                           f"fragment ({example}), got {parts.scheme}://{parts.netloc}/...")
    elif parts.scheme == "http":
        if not _loopback(parts.hostname):
            table.problem(key, f"must start with https:// (http:// only for a loopback "
                               f"address), got {redact_url(url)!r}")
        else:
            warnings.append(f"{table.name}.{key}: plain http:// (no TLS); accepted because "
                            f"{parts.hostname} is a loopback address")
    return url.rstrip("/")


def _streaming_url(table: _Table) -> str:
    """Read ``streaming_url``: where the streaming server is, when not on the web host."""
    key = "streaming_url"
    url = table.get(key, str, "", "a URL like wss://streaming.example.social")
    if not url:
        return ""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        table.problem(key, f"is not a valid URL, got {redact_url(url)!r}")
        return ""
    if parts.scheme not in {"https", "wss", "http", "ws"} or not parts.hostname:
        table.problem(key, f"must be a URL like wss://streaming.example.social, "
                           f"got {redact_url(url)!r}")
    elif "@" in parts.netloc:
        table.problem(key, "must not hold a user name or password")
    elif parts.scheme in {"http", "ws"} and not _loopback(parts.hostname):
        table.problem(key, f"must start with wss:// or https:// ({parts.scheme}:// only for a "
                           f"loopback address), got {redact_url(url)!r}")
    return url.rstrip("/")


def _loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _token(table: _Table, base: Path, env: Mapping[str, str], token_file: str,
           token_env: str) -> Secret | None:
    """Read the access token from ``token_file``, else from the variable ``token_env``."""
    if token_file:
        key, where = "access_token_file", token_file
        try:
            text = _resolve(base, token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            table.problem(key, f"cannot read {token_file}: {exc.strerror or exc}")
            return None
        except UnicodeDecodeError as exc:
            table.problem(key, f"{token_file} is not UTF-8 text ({_decode_error(exc)})")
            return None
    elif token_env in env:
        key, where, text = "access_token_env", f"the environment variable {token_env}", \
            env[token_env].strip()
    else:
        table.problem("api_base_url", f"needs an access token: set access_token_file, or "
                                      f"the environment variable {token_env}")
        return None
    if not text:
        table.problem(key, f"{where} is empty")
        return None
    if not text.isprintable() or any(c.isspace() for c in text):
        table.problem(key, f"the token in {where} must be one word of printable characters")
        return None
    return Secret(text)


def _mastodon(table: _Table, base: Path, env: Mapping[str, str],
              warnings: list[str], need_token: bool = True) -> MastodonConfig:
    url = _api_base_url(table, warnings)
    token_file = table.path("access_token_file", "")
    token_env = table.get("access_token_env", str, defaults.ACCESS_TOKEN_ENV,
                          "an environment variable name")
    streaming = _streaming_url(table)
    admins_raw = table.get("admins", list, [], "a list of accounts")
    admins: list[str] = []
    for item in admins_raw:
        match = ACCT.fullmatch(item) if isinstance(item, str) else None
        if match is None:
            table.problem("admins", f"every entry must be an account like \"alice\" or "
                                    f"\"bob@other.example\", got {item!r:.60}")
        else:
            admins.append(match.group(1) + (match.group(2) or ""))
    # audit and healthcheck do not read the token at all
    token = _token(table, base, env, token_file, token_env) if url and need_token else None
    retry_after = table.duration("retry_after", defaults.BACKOFF_BASE,
                                 minimum=defaults.PERIOD_MIN)
    retry_max = table.duration("retry_max", defaults.BACKOFF_CAP, minimum=defaults.PERIOD_MIN)
    if retry_max < retry_after:
        table.problem("retry_max", f"must be at least retry_after ({retry_after:g} s), "
                                   f"got {retry_max:g} s")
        retry_after, retry_max = defaults.BACKOFF_BASE, defaults.BACKOFF_CAP
    timezone_name = table.get("timezone", str, defaults.TIMEZONE, "a time zone name")
    try:
        zoneinfo.ZoneInfo(timezone_name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        table.problem("timezone", f"unknown time zone {timezone_name!r} (e.g. \"Europe/Berlin\")")
        timezone_name = defaults.TIMEZONE
    return MastodonConfig(
        api_base_url=url,
        access_token=token,
        request_timeout=table.number("request_timeout", defaults.REQUEST_TIMEOUT,
                                     minimum=defaults.TIMEOUT_MIN,
                                     maximum=defaults.TIMEOUT_MAX),
        admins=tuple(admins),
        language=table.get("language", str, defaults.LANGUAGE, "a language code"),
        timezone=timezone_name,
        member_visibility=table.choice("member_visibility", defaults.MEMBER_VISIBILITY,
                                       ("public", "unlisted")),
        status_visibility=table.choice("status_visibility", defaults.STATUS_VISIBILITY,
                                       ("public", "unlisted", "private")),
        streaming_url=streaming,
        probe_health=table.get("probe_health", bool, True, "true or false"),
        retry_after=retry_after,
        retry_max=retry_max,
    )


def _sidekiq(table: _Table) -> SidekiqConfig:
    return SidekiqConfig(
        stale_after=table.number("stale_after", defaults.PROCESS_STALE_AFTER,
                                 minimum=defaults.PERIOD_MIN, maximum=defaults.PERIOD_MAX,
                                 zero="automatic"),
    )


def _host(table: _Table) -> HostConfig:
    paths = table.get("disk_paths", list, list(defaults.DISK_PATHS), "a list of paths")
    good: list[str] = []
    for item in paths:
        if not isinstance(item, str) or not item.startswith("/") or "\x00" in item:
            table.problem("disk_paths", f"every entry must be an absolute path, got {item!r:.60}")
        else:
            good.append(item)
    return HostConfig(disk_paths=tuple(good))


def _redis(table: _Table, base: Path, env: Mapping[str, str]) -> RedisConfig:
    url = table.get("url", str, "", "a redis:// URL")
    namespace = table.get("namespace", str, "", "a string")
    has_namespace = "namespace" in table.data
    env_file = table.path("mastodon_env_file", "")
    password_file = table.path("password_file", "")
    password_env = table.get("password_env", str, "", "an environment variable name")
    timeout = table.number("socket_timeout", defaults.REDIS_SOCKET_TIMEOUT,
                           minimum=defaults.TIMEOUT_MIN, maximum=defaults.TIMEOUT_MAX)
    if namespace.endswith(":"):
        table.problem("namespace", "give the prefix without the trailing ':'")

    if url:
        if _split_password(url)[1] is not None:
            table.problem("url", "holds a password; put it in password_file or password_env, "
                          "not in the config file")
        resolved = _checked_url(table, "url", url, "config")
    elif env_file:
        resolved = _redis_from_mastodon_env(table, _resolve(base, env_file), env)
        if resolved.namespace and not has_namespace:
            namespace = resolved.namespace
    else:
        resolved = _redis_from_environment(env, table.problems)

    password = _password(table, base, env, password_file, password_env, resolved.password)
    return RedisConfig(url=resolved.url, namespace=namespace, password=password,
                       socket_timeout=timeout, source=resolved.source)


def _password(table: _Table, base: Path, env: Mapping[str, str], password_file: str,
              password_env: str, default: Secret | None) -> Secret | None:
    """Read a password from ``password_file`` or ``password_env`` (not both), else ``default``."""
    password = default
    if password_file:
        try:
            text = _resolve(base, password_file).read_text(encoding="utf-8")
        except OSError as exc:
            table.problem("password_file", f"cannot read {password_file}: {exc.strerror or exc}")
        except UnicodeDecodeError as exc:
            table.problem("password_file",
                          f"{password_file} is not UTF-8 text ({_decode_error(exc)})")
        else:
            password = Secret(text.rstrip("\r\n"))
    if password_env:
        if password_file:
            table.problem("password_env", "give password_file or password_env, not both")
        elif password_env not in env:
            table.problem("password_env", f"the environment variable {password_env} is not set")
        else:
            password = Secret(env[password_env])
    return password


AGENT_USER = re.compile(r"[A-Za-z0-9._-]{1,64}")
"""An ``[agent] username``: a Redis ACL user name (no spaces, no control characters)."""


def _agent(table: _Table, base: Path, env: Mapping[str, str]) -> AgentConfig:
    """Read ``[agent]``: this host's name, the interval and the writer's Redis login."""
    name = table.get("name", str, "", "a host name like \"sidekiq-2\"")
    if name and not HOST_NAME.fullmatch(name):
        table.problem("name", f"must be 1 to {defaults.HOST_NAME_MAX} letters, digits, '.', "
                              f"'_' or '-', got {name!r:.80}")
        name = ""
    username = table.get("username", str, defaults.AGENT_REDIS_USER, "a Redis user name")
    if not AGENT_USER.fullmatch(username):
        table.problem("username", f"must be 1 to 64 letters, digits, '.', '_' or '-', "
                                  f"got {username!r:.80}")
        username = defaults.AGENT_REDIS_USER
    password_file = table.path("password_file", "")
    password_env = table.get("password_env", str, "", "an environment variable name")
    return AgentConfig(
        name=name,
        interval=table.duration("interval", defaults.INTERVAL, minimum=defaults.INTERVAL_MIN,
                                maximum=defaults.INTERVAL_MAX),
        username=username,
        password=_password(table, base, env, password_file, password_env, None),
    )


PG_HOST = re.compile(r"[A-Za-z0-9._-]{1,253}|\[?[0-9A-Fa-f:.]{2,45}\]?")
"""A ``[postgres] host`` that is a name or an address (a socket directory starts with ``/``)."""

PG_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.$-]{0,62}")
"""A ``[postgres] dbname`` or ``user``: no blanks, quotes, ``=`` or control characters, so
nothing can be slipped into the connection string."""

MASTODON_DB_DEFAULTS = {"DB_HOST": "localhost", "DB_PORT": str(defaults.POSTGRES_PORT),
                        "DB_NAME": "mastodon_production", "DB_USER": "mastodon"}
"""What Mastodon's config/database.yml uses in production for a ``DB_*`` left unset."""


def _postgres(table: _Table, base: Path, env: Mapping[str, str], redis: object,
              warnings: list[str]) -> PostgresConfig | None:
    """Read ``[postgres]``: its own keys over Mastodon's ``DB_*`` (or ``DATABASE_URL``).

    The env file is ``[postgres] mastodon_env_file``, else ``[redis]``'s. None when
    neither gives a connection, or ``enabled = false``.
    """
    enabled = table.get("enabled", bool, True, "true or false")
    own_file = table.path("mastodon_env_file", "")
    redis_file = ""
    if isinstance(redis, dict) and isinstance(redis.get("mastodon_env_file"), str):
        redis_file = redis["mastodon_env_file"]
    keys = {key: table.get(key, str, "", what) for key, what in (
        ("host", "a host name, address or socket directory"), ("dbname", "a database name"),
        ("user", "a user name"))}
    port = table.get("port", int, 0, "a whole number from 1 to 65535")
    if "port" in table.data and not 1 <= port <= 65535:
        table.problem("port", f"must be from 1 to 65535, got {port!r:.40}")
        port = 0
    password_file = table.path("password_file", "")
    password_env = table.get("password_env", str, "", "an environment variable name")
    timeout = table.number("connect_timeout", defaults.POSTGRES_TIMEOUT,
                           minimum=defaults.POSTGRES_TIMEOUT_MIN,
                           maximum=defaults.POSTGRES_TIMEOUT_MAX)
    pgbouncer_set = "pgbouncer" in table.data
    pgbouncer = table.get("pgbouncer", bool, False, "true or false")
    if not enabled:
        return None
    before = len(table.problems)
    found: dict[str, str] = {}
    source = "config"
    if own_file or redis_file:
        path = _resolve(base, own_file or redis_file)
        found = _postgres_from_mastodon_env(table, path, env, quiet=not own_file)
        if found:
            source = f"{path}"
    if not found and not any(keys.values()) and not port:
        if set(table.data) - {"enabled"}:
            table.problem("host", "is required (or DB_* in mastodon_env_file)")
        return None
    env_user = found.get("DB_USER", "")
    settings = {"host": keys["host"] or found.get("DB_HOST", "") or "localhost",
                "dbname": keys["dbname"] or found.get("DB_NAME", "") or "mastodon_production",
                "user": keys["user"] or env_user or "mastodon"}
    port = port or int(found.get("DB_PORT", "") or defaults.POSTGRES_PORT)
    host = settings["host"]
    if host.startswith("/"):
        if "\x00" in host or not host.isprintable() or len(host) > 255:
            table.problem("host", "a socket directory must be a printable path")
    elif not PG_HOST.fullmatch(host):
        table.problem("host", f"must be a host name, an address or a socket directory "
                              f"(starting with /), got {host!r:.80}")
    for key in ("dbname", "user"):
        if not PG_NAME.fullmatch(settings[key]):
            table.problem(key, f"must be 1 to 63 letters, digits, '_', '.', '$' or '-', "
                               f"got {settings[key]!r:.80}")
    # Mastodon's password belongs to Mastodon's user: never send it for another role.
    own_user = not keys["user"] or keys["user"] == env_user
    env_password = found.get("DB_PASS", "") if found and own_user else ""
    if password_env and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", password_env):
        table.problem("password_env", f"must be a variable name like STATUSBOT_PG_PASSWORD, "
                                      f"got {password_env!r:.60}")
        password_env = ""
    password = _password(table, base, env, password_file, password_env,
                         Secret(env_password) if env_password else None)
    if len(table.problems) != before:
        return None
    if found and own_user and not password_file and not password_env:
        warnings.append(f"postgres: reading as Mastodon's own database user "
                        f"{settings['user']!r} from {source}; a read-only role is safer "
                        f"(README: \"Database connections\")")
    return PostgresConfig(host=host, port=port, dbname=settings["dbname"],
                          user=settings["user"], password=password, timeout=timeout,
                          pgbouncer=pgbouncer if pgbouncer_set
                          else port == defaults.PGBOUNCER_PORT, source=source)


def _postgres_from_mastodon_env(table: _Table, path: Path, env: Mapping[str, str], *,
                                quiet: bool) -> dict[str, str]:
    """Return Mastodon's ``DB_*`` settings from its env file (``DATABASE_URL`` first).

    Empty when the file sets none. ``quiet``: the file is ``[redis]``'s, which
    reports a missing or unreadable file itself.
    """
    key = "mastodon_env_file"
    text = _env_text(table, path, quiet=quiet)
    if text is None:
        return {}
    scratch = _Table(table.name, {}, [])
    values = _env_values(scratch, path, text, env, wanted=_database_variable)
    for problem in scratch.problems:
        if not quiet or "DB_" in problem or "DATABASE_URL" in problem:
            table.problems.append(problem)
    if values is None:
        return {}
    url = values.get("DATABASE_URL", "")
    if url:
        return _database_url(table, path, url)
    found = {name: values[name] for name in (*MASTODON_DB_DEFAULTS, "DB_PASS")
             if values.get(name)}
    if not found:
        return {}
    port = found.get("DB_PORT", MASTODON_DB_DEFAULTS["DB_PORT"])
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        table.problem(key, f"{path}: DB_PORT must be a port number from 1 to 65535, "
                           f"got {port!r:.40}")
        return {}
    return {**MASTODON_DB_DEFAULTS, **found}


def _env_text(table: _Table, path: Path, *, quiet: bool = False) -> str | None:
    """Return the env file's text, or None (a problem unless ``quiet``) when unreadable."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        problem = f"cannot read {path}: {exc.strerror or exc}"
    except UnicodeDecodeError as exc:
        problem = f"{path} is not UTF-8 text ({_decode_error(exc)})"
    if not quiet:
        table.problem("mastodon_env_file", problem)
    return None


def _database_variable(name: str) -> bool:
    return name.startswith("DB_") or name == "DATABASE_URL"


def _database_url(table: _Table, path: Path, url: str) -> dict[str, str]:
    """Return ``DB_*`` from a ``postgres://user:pass@host:port/db`` URL; never quote it."""
    where = f"{path}: DATABASE_URL"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        table.problem("mastodon_env_file", f"{where}: not a valid URL (the port is not a "
                                           f"number up to 65535; {ENCODE_HINT})")
        return {}
    if parts.scheme not in ("postgres", "postgresql"):
        table.problem("mastodon_env_file", f"{where}: must start with postgres:// or "
                                           f"postgresql://")
        return {}
    found = {"DB_HOST": unquote(parts.hostname or ""), "DB_NAME": unquote(parts.path.lstrip("/")),
             "DB_USER": unquote(parts.username or ""), "DB_PASS": unquote(parts.password or ""),
             "DB_PORT": str(port or "")}
    return {**MASTODON_DB_DEFAULTS, **{k: v for k, v in found.items() if v}}


def _resolve(base: Path, path: str) -> Path:
    candidate = Path(path)
    return candidate if candidate.is_absolute() else base / candidate


def _split_password(url: str) -> tuple[str, Secret | None]:
    """Return ``url`` without its password, and the password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url, None
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port is not None else "")
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    stripped = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return stripped, Secret(unquote(parts.password))


ENCODE_HINT = "a password with / ? # @ or : must be percent-encoded, e.g. / as %2F"


def _checked_url(table: _Table, key: str, url: str, source: str, label: str = "") -> RedisConfig:
    """Check a Redis URL; no message quotes more of it than the scheme (it may hold a password).

    ``label`` prefixes each message (which variable of which file).
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        table.problem(key, f"{label}not a valid URL: the port is not a number up to 65535 "
                           f"({ENCODE_HINT})")
        return RedisConfig(source=source)
    if parts.scheme not in {"redis", "rediss", "unix"}:
        # "user:secret@host" parses as scheme "user": quote a scheme only when it is one.
        plain = "@" not in url or url.startswith(f"{parts.scheme}://")
        scheme = parts.scheme if plain else "something else"
        table.problem(key, f"{label}must start with redis://, rediss:// or unix://, "
                           f"got {scheme!r}")
        return RedisConfig(source=source)
    db_in_query = parse_qs(parts.query).get("db", [])
    if parts.scheme == "unix":
        db_in_path = ""
        if not parts.path:
            table.problem(key, f"{label}must name the socket, like unix:///run/redis.sock")
            return RedisConfig(source=source)
    else:
        db_in_path = parts.path.strip("/")
        if not parts.hostname or "@" in parts.path + parts.query + parts.fragment:
            table.problem(key, f"{label}not a valid URL: no host before the path ({ENCODE_HINT})")
            return RedisConfig(source=source)
    if any(not db.isdigit() for db in ([db_in_path] if db_in_path else []) + db_in_query):
        table.problem(key, f"{label}the database must be a number, like redis://host:6379/0")
        return RedisConfig(source=source)
    stripped, password = _split_password(url)
    return RedisConfig(url=stripped, password=password, source=source)


def _redis_from_environment(env: Mapping[str, str], problems: list[str]) -> RedisConfig:
    url = env.get("REDIS_URL", "")
    if not url:
        return RedisConfig()
    return _checked_url(_Table("", {}, problems), "REDIS_URL", url,
                        "environment variable REDIS_URL")


def _redis_from_mastodon_env(table: _Table, path: Path, env: Mapping[str, str]) -> RedisConfig:
    """Resolve Sidekiq's Redis as Mastodon does from its ``.env.production``."""
    if not path.is_file():
        table.problem("mastodon_env_file", f"no such file: {path}")
        return RedisConfig()
    text = _env_text(table, path)
    if text is None:
        return RedisConfig()
    values = _env_values(table, path, text, env)
    if values is None:
        return RedisConfig()
    namespace = values.get("REDIS_NAMESPACE", "")
    origin = f"{path}"
    for prefix in ("SIDEKIQ_", ""):
        if values.get(f"{prefix}REDIS_URL"):
            resolved = _checked_url(table, "mastodon_env_file",
                                    values[f"{prefix}REDIS_URL"], f"{origin} ({prefix}REDIS_URL)",
                                    f"{path}: {prefix}REDIS_URL: ")
            return _with_namespace(resolved, namespace)
        parts = ("HOST", "PORT", "PASSWORD", "DB", "USER")
        if prefix and not any(values.get(f"{prefix}REDIS_{p}") for p in parts):
            continue

        def part(name: str, fallback: str, prefix: str = prefix) -> str:
            return values.get(f"{prefix}REDIS_{name}") or values.get(f"REDIS_{name}") or fallback

        host, port, db = part("HOST", "localhost"), part("PORT", "6379"), part("DB", "0")
        user, password = part("USER", ""), part("PASSWORD", "")
        if not port.isdigit() or not db.isdigit():
            table.problem("mastodon_env_file", f"{path}: {prefix}REDIS_PORT and REDIS_DB "
                          f"must be numbers, got {port!r} and {db!r}")
            return RedisConfig()
        netloc = f"{quote(user, safe='')}@" if user else ""
        netloc += f"[{host}]" if ":" in host else host
        url = f"redis://{netloc}:{port}/{db}"
        names = "/".join(p for p in parts if values.get(f"{prefix}REDIS_{p}"))
        resolved = RedisConfig(url=url, password=Secret(password) if password else None,
                               source=f"{origin} ({prefix}REDIS_{names or 'defaults'})")
        return _with_namespace(resolved, namespace)
    raise AssertionError("unreachable: the unprefixed round always returns")


REFERENCE = re.compile(
    r"(?<!\\)\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*)|\()")
"""``${NAME}``, ``${NAME:-default}``, ``$NAME`` or the start of ``$(command)``; not ``\\$``."""


def _env_values(table: _Table, path: Path, text: str, env: Mapping[str, str],
                wanted: Callable[[str], bool] = lambda name: "REDIS" in name,
                ) -> dict[str, str] | None:
    """Return the variables of a dotenv file, or None (and a problem) when it is unsound.

    A line that does not parse would be skipped silently by dotenv, and its
    variable fall back to a default (port 6379, database 0): it is an error
    here, named by line number (never quoted: it may hold a password). As
    Mastodon's Ruby dotenv does, ``$VAR`` and ``${VAR}`` in unquoted and
    double-quoted values are replaced by a variable set earlier in the file or
    in the environment; one set in neither, or a ``$(command)``, is an error for
    the variables ``wanted`` (Redis's by default).
    """
    import io

    from dotenv.parser import parse_stream

    values: dict[str, str] = {}
    problems = 0
    for binding in parse_stream(io.StringIO(text)):
        line = binding.original.line
        if binding.error:
            table.problem("mastodon_env_file", f"{path}: line {line} does not parse "
                                               f"(write NAME=value)")
            problems += 1
            continue
        if binding.key is None or binding.value is None:
            continue
        value = binding.value
        raw = binding.original.string.split("=", 1)[-1].lstrip()
        if not raw.startswith("'") and "$" in value:
            missing: list[str] = []

            def substitute(match: re.Match[str], missing: list[str] = missing) -> str:
                name = match.group(1) or match.group(3)
                if name is None:
                    missing.append("$(...)")
                    return ""
                found = values.get(name, env.get(name, ""))
                if found:
                    return found
                if match.group(2) is not None:
                    return match.group(2)
                missing.append(f"${{{name}}}")
                return ""

            value = REFERENCE.sub(substitute, value).replace("\\$", "$")
            if missing and wanted(binding.key):
                why = ("runs a command, which statusbot does not" if missing[0] == "$(...)"
                       else f"uses {missing[0]}, which neither the file nor the environment sets")
                table.problem("mastodon_env_file", f"{path}: line {line}: {binding.key} {why}; "
                                                   f"write the value itself")
                problems += 1
        values[binding.key] = value
    return None if problems else values


def _with_namespace(config: RedisConfig, namespace: str) -> RedisConfig:
    return dataclasses.replace(config, namespace=namespace)
