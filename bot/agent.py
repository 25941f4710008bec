"""``statusbot agent``: write this host's reading into Redis every interval, for the bot to read.

Every ``[agent] interval`` the agent takes the host reading (``collect/host.py``,
the same ``HostStats`` as the bot's own) and sends, in one pipeline without
MULTI, ``SET statusbot:host:<name> <json> PX <3 intervals>`` and ``SADD
statusbot:hosts <name>``. It logs in as ``[agent] username`` (an ACL user that
may only write ``statusbot:*``). Redis trouble is logged once (and once when it
is over) and tried again next interval; nothing stops the loop but SIGTERM or
SIGINT. The password is never logged.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

import redis

from bot import defaults
from bot.collect import hostwire
from bot.config import HOST_NAME, AgentConfig, Config, RedisConfig
from bot.model import HostStats

log = logging.getLogger("statusbot.agent")


class AgentError(Exception):
    """The agent cannot start (a configuration problem, one line)."""


def agent_name(config: Config, hostname: Callable[[], str] = socket.gethostname) -> str:
    """Return the name this host reports under: ``[agent] name``, else the hostname.

    Raises ``AgentError`` when the hostname is not a usable name (then ``[agent]
    name`` must be set).
    """
    if config.agent.name:
        return config.agent.name
    name = hostname()
    if not HOST_NAME.fullmatch(name):
        raise AgentError(f"the hostname {name[:80]!r} is not 1 to {defaults.HOST_NAME_MAX} "
                         f"letters, digits, '.', '_' or '-': set [agent] name")
    return name


def without_user(url: str) -> str:
    """Return a Redis URL without the user name it may carry (the agent logs in as its own)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit((parts.scheme, parts.netloc.rsplit("@", 1)[1], parts.path, parts.query,
                       parts.fragment))


def agent_client(server: RedisConfig, agent: AgentConfig) -> redis.Redis:
    """Return a redis-py client for the writer: ``[redis]``'s server, ``[agent]``'s login.

    The agent and the standby lease (``bot.lease``) write with it; the URL's
    own user (the bot's read-only one) is dropped. Without an ``[agent]``
    password it connects without logging in (Redis' default user), which a
    deployment should not rely on. Replies that are not UTF-8 are decoded with
    replacement characters (a lease value is text from Redis: untrusted).
    """
    password = agent.password.reveal() if agent.password is not None else None
    return redis.Redis.from_url(
        without_user(server.url),
        username=agent.username if password is not None else None,
        password=password,
        decode_responses=True,
        encoding_errors="replace",
        socket_timeout=server.socket_timeout,
        socket_connect_timeout=server.socket_timeout,
        health_check_interval=0,
    )



class Agent:
    """Write this host's readings to Redis under ``name``, every ``interval`` seconds."""

    def __init__(self, client: redis.Redis, *, name: str, interval: float,
                 read: Callable[[], HostStats], where: str = "Redis",
                 clock: Callable[[], float] = time.time,
                 timer: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.name = name
        self.interval = interval
        self.read = read
        self.where = where
        self._clock = clock
        self._timer = timer
        self._failing: str | None = None
        self.written = 0
        """Readings written so far."""

    @property
    def key(self) -> str:
        """The Redis key of this host's reading."""
        return defaults.HOST_KEY_PREFIX + self.name

    def write_once(self) -> str | None:
        """Take one reading and write it; return None, or what went wrong (logged once)."""
        started = self._timer()
        try:
            stats = self.read()
            took_ms = (self._timer() - started) * 1000.0
            text = hostwire.encode(stats, name=self.name, at=self._clock(),
                                   interval=self.interval, took_ms=took_ms)
            pipe = self.client.pipeline(transaction=False)
            pipe.set(self.key, text,
                     px=max(1, round(defaults.HOST_EXPIRY_INTERVALS * self.interval * 1000)))
            pipe.sadd(defaults.HOSTS_KEY, self.name)
            pipe.execute()
        except redis.RedisError as exc:
            return self._failed(f"cannot write to {self.where}: {hostwire.error_text(exc)}")
        except Exception as exc:  # a host reading must never stop the agent
            log.debug("reading failed", exc_info=True)
            return self._failed(f"cannot read this host: {hostwire.error_text(exc)}")
        self.written += 1
        if self._failing is not None:
            log.info("writing %s again", self.key)
            self._failing = None
        return None

    def retire(self) -> str | None:
        """Remove this host's reading and name from Redis; return None, or what went wrong.

        For a host taken out of service: its name leaves ``statusbot:hosts``, so
        the bot stops expecting it (a stopped agent is "not reporting" until
        then, by design). One pipeline: ``DEL`` the reading, ``SREM`` the name.
        """
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.delete(self.key)
            pipe.srem(defaults.HOSTS_KEY, self.name)
            pipe.execute()
        except redis.RedisError as exc:
            return f"cannot retire {self.name} in {self.where}: {hostwire.error_text(exc)}"
        return None

    def _failed(self, problem: str) -> str:
        if problem != self._failing:
            log.warning("%s; trying again in %s s", problem, f"{self.interval:g}")
        else:
            log.debug("%s (still)", problem)
        self._failing = problem
        return problem

    def run(self, stop: threading.Event, *, max_ticks: int | None = None) -> None:
        """Write a reading every interval until ``stop`` is set (or ``max_ticks`` were taken)."""
        ticks = 0
        while not stop.is_set():
            started = self._timer()
            self.write_once()
            ticks += 1
            if max_ticks is not None and ticks >= max_ticks:
                return
            stop.wait(max(0.0, self.interval - (self._timer() - started)))
