"""The standby lease: which of several ``statusbot run`` sharing one account may post.

With ``[bot] standby = true`` every bot tries, at the start of each tick, to
hold a lease in Redis: ``SET statusbot:leader <id> NX PX <ttl>``. The holder
(the leader) renews it every tick with a script that extends the key only
while it still holds its own id; the others (standbys) collect and keep their
state but do not post. The lease lasts ``LEASE_INTERVALS`` intervals, so when
the leader stops (or its host dies) the key expires at most that long after
its last renewal and the first standby to ask then takes it over. A leader
that comes back starts with a new id and finds the lease held: it stays
standby.

The lease is written with ``[agent]``'s Redis user, which may only touch
``statusbot:*`` keys (README, "Other hosts"): ``SET``, ``GET``, ``PTTL``,
``EVALSHA``/``EVAL`` (the script uses ``GET`` and ``PEXPIRE``). ``SCRIPT LOAD``
is not needed: ``EVAL`` loads the script when ``EVALSHA`` does not know it.

When Redis cannot be asked (down, refused login, a key of the wrong type)
there is no election: a leader keeps leading and a standby stays standby. A
leader cannot learn that someone else leads while Redis is down, and stopping
would silence the instance exactly when its Redis is down, which is itself an
incident members must hear about; a standby that took over blindly would make
two voices. The one case where two bots may post for a while is a split
where each reaches a different Redis; that is beyond a lease in that Redis.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import socket
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

import redis

from bot import defaults
from bot.agent import agent_client
from bot.config import AgentConfig, RedisConfig

log = logging.getLogger(__name__)

LEASE_INTERVALS = 2
"""A lease lasts this many of the bot's intervals: the standby takes over within that long."""

LEASE_TTL_MIN_MS = 100
"""Shortest lease, in milliseconds (an interval of 0.05 s or less is refused)."""

LEASE_TTL_MAX_MS = 2 * 3600 * 1000
"""Longest lease, in milliseconds (twice the longest interval, one hour)."""

ID_MAX = 200
"""Longest lease id (this bot's hostname:pid:random), in characters."""

SHOWN_MAX = 80
"""Characters of another holder's id shown in the log (it is text from Redis)."""

RENEW_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
"""Extend the lease only while it holds our id (GET and PEXPIRE, both in the agent's ACL)."""

HOLDER_SCRIPT = """
local value = redis.call('GET', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if not value then return {'0', '', ttl} end
return {'1', string.sub(value, 1, tonumber(ARGV[1])), ttl}
"""
"""Who holds the lease (at most ``ID_MAX`` + 1 bytes of it: a huge value is never read whole)
and its PTTL, in one round trip."""


class LeaseError(Exception):
    """Redis could not be asked about the lease, or answered what a lease never holds."""


class Lease(Protocol):
    """One bot's handle on the shared lease (``RedisLease``; ``testing.MemoryLease``)."""

    id: str
    """This bot's id, the value the lease holds while it leads."""

    def acquire(self, ttl_ms: int) -> bool:
        """Take the lease for ``ttl_ms`` if nobody holds it; return True when taken."""

    def renew(self, ttl_ms: int) -> bool:
        """Extend the lease to ``ttl_ms`` from now if we hold it; return False otherwise."""

    def holder(self) -> tuple[str | None, int | None]:
        """Return who holds the lease (None: nobody) and for how many ms more (None: unknown)."""


def new_id(hostname: str | None = None, pid: int | None = None) -> str:
    """Return a lease id: ``hostname:pid:random`` (unique even for a restarted process)."""
    host = hostname if hostname is not None else socket.gethostname()
    host = "".join(c for c in host if c.isprintable() and not c.isspace())[:100] or "host"
    return f"{host}:{os.getpid() if pid is None else pid}:{secrets.token_hex(6)}"


def ttl_for(interval: float, intervals: int = LEASE_INTERVALS) -> int:
    """Return the lease's time to live in milliseconds for ``interval`` seconds.

    Raises ``ValueError`` for an interval that is not a finite positive number
    or a lease outside ``LEASE_TTL_MIN_MS``..``LEASE_TTL_MAX_MS``.
    """
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) \
            or not interval > 0 or interval == float("inf"):
        raise ValueError(f"the lease needs a positive finite interval, not {interval!r}")
    if isinstance(intervals, bool) or not isinstance(intervals, int) or intervals < 1:
        raise ValueError(f"the lease lasts a whole number of intervals, not {intervals!r}")
    ttl = round(interval * intervals * 1000)
    if not LEASE_TTL_MIN_MS <= ttl <= LEASE_TTL_MAX_MS:
        raise ValueError(f"a lease of {ttl} ms is outside {LEASE_TTL_MIN_MS}.."
                         f"{LEASE_TTL_MAX_MS} ms")
    return ttl


def shown(value: object) -> str:
    """Return a holder's id fit for one log line (it came from Redis: untrusted)."""
    text = str(value)
    clean = "".join(c if c.isprintable() else "?" for c in text[:SHOWN_MAX])
    return clean + ("…" if len(text) > SHOWN_MAX else "")


def _check_id(lease_id: str) -> str:
    if not isinstance(lease_id, str) or not lease_id or len(lease_id) > ID_MAX \
            or not lease_id.isprintable() or any(c.isspace() for c in lease_id):
        raise ValueError(f"a lease id is 1..{ID_MAX} printable characters without spaces")
    return lease_id


class RedisLease:
    """The lease in Redis, under the ``[agent]`` user (write ``statusbot:*`` only)."""

    def __init__(self, client: redis.Redis, lease_id: str, key: str = defaults.LEADER_KEY
                 ) -> None:
        self.client = client
        self.id = _check_id(lease_id)
        self.key = key
        self._loaded: set[str] = set()

    @classmethod
    def connect(cls, config: RedisConfig, agent: AgentConfig, lease_id: str) -> RedisLease:
        """Return a lease on ``config``'s Redis logged in as ``agent``'s user.

        The URL's own user (if any) is replaced by the agent's (``agent_client``,
        as ``statusbot agent`` writes): the bot's read-only login never writes.
        """
        return cls(agent_client(config, agent), lease_id)

    def acquire(self, ttl_ms: int) -> bool:
        """``SET key id NX PX ttl``: True when this bot now holds the lease."""
        try:
            return bool(self.client.set(self.key, self.id, nx=True, px=ttl_ms))
        except redis.RedisError as exc:
            raise LeaseError(_why(exc)) from exc

    def renew(self, ttl_ms: int) -> bool:
        """Extend the lease if it still holds this bot's id (one script, atomic)."""
        return bool(self._script(RENEW_SCRIPT, self.id, ttl_ms))

    def holder(self) -> tuple[str | None, int | None]:
        """Return the lease's holder (its first ``ID_MAX`` + 1 characters) and its PTTL."""
        reply = self._script(HOLDER_SCRIPT, ID_MAX + 1)
        if not isinstance(reply, list) or len(reply) != 3:
            raise LeaseError(f"unexpected answer about the lease: {shown(reply)}")
        present, value, ttl = reply
        remaining = ttl if isinstance(ttl, int) and not isinstance(ttl, bool) and ttl >= 0 \
            else None
        return (str(value) if present == "1" else None), remaining

    def _script(self, script: str, *args: object) -> object:
        """Run ``script`` on the lease key: EVALSHA, or EVAL when Redis does not know it."""
        sha = hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest()
        try:
            if sha in self._loaded:
                try:
                    return self.client.evalsha(sha, 1, self.key, *args)  # type: ignore[arg-type]
                except redis.exceptions.NoScriptError:
                    self._loaded.discard(sha)
            result = self.client.eval(script, 1, self.key, *args)  # type: ignore[arg-type]
            self._loaded.add(sha)
            return result
        except redis.RedisError as exc:
            raise LeaseError(_why(exc)) from exc


def _why(exc: Exception) -> str:
    """One line about a Redis error, never with a password (redis-py never puts one in)."""
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:300]


class Role(Enum):
    """What a bot does this tick."""

    LEADER = "leader"
    STANDBY = "standby"


@dataclass(frozen=True, slots=True)
class Decision:
    """One tick's election: the role, why, and whether it changed since the last tick."""

    role: Role
    reason: str
    changed: bool
    retry_in: float | None = None
    """Seconds until the lease held by another bot expires (a standby may ask then)."""
    held_elsewhere: bool = False
    """Another bot holds the lease (a live leader speaks for the account), as Redis said."""


class Election:
    """Decide each tick whether this bot leads (see the module's docstring).

    The first decision is standby until Redis answers: a bot that cannot ask
    must not start posting beside a leader it cannot see.
    """

    def __init__(self, lease: Lease, interval: float, intervals: int = LEASE_INTERVALS) -> None:
        self.lease = lease
        self.ttl_ms = ttl_for(interval, intervals)
        self.role = Role.STANDBY
        self._error: str | None = None
        self._told: tuple[Role, str] | None = None

    @property
    def leading(self) -> bool:
        """True while this bot is the leader."""
        return self.role is Role.LEADER

    def step(self) -> Decision:
        """Renew or try to take the lease; never raises (Redis errors keep the role)."""
        before = self.role
        retry_in: float | None = None
        elsewhere = False
        try:
            if self.role is Role.LEADER and self.lease.renew(self.ttl_ms):
                reason = "lease renewed"
            elif self.lease.acquire(self.ttl_ms):
                reason = ("the lease had lapsed: taken again" if before is Role.LEADER
                          else "the lease was free: taken")
                self.role = Role.LEADER
            else:
                holder, remaining = self.lease.holder()
                self.role = Role.STANDBY
                if holder == self.lease.id:  # set between our two calls: ours after all
                    self.role = Role.LEADER
                    reason = "the lease holds our id"
                else:
                    who = "nobody (expired meanwhile)" if holder is None else shown(holder)
                    remaining = 0 if holder is None else remaining
                    reason = (f"lease lost to {who}" if before is Role.LEADER
                              else f"the lease is held by {who}")
                    retry_in = None if remaining is None else remaining / 1000
                    elsewhere = holder is not None
        except LeaseError as exc:
            if self._error is None:
                log.warning("standby lease: Redis cannot be asked (%s); no election: staying "
                            "%s until it answers", exc, self.role.value)
            self._error = str(exc)
            return Decision(self.role, f"no election (Redis: {exc}); staying {self.role.value}",
                            False)
        if self._error is not None:
            log.warning("standby lease: Redis answers again")
            self._error = None
        decision = Decision(self.role, reason, self.role is not before, retry_in, elsewhere)
        if decision.changed or self._told is None:
            log.warning("standby lease: %s as %s (id %s): %s",
                        "now" if decision.changed else "starting", self.role.value,
                        self.lease.id, reason)
        self._told = (self.role, reason)
        return decision

    def still_leading(self) -> bool:
        """Renew the lease just before delivering; False when another bot took it meanwhile.

        A tick slower than the lease (a hung Redis read, a slow instance) may
        have let the lease lapse and a standby take it: the posts of that tick
        must then not go out beside the new leader's. On a Redis error there is
        no election (see the module): the leader keeps leading.
        """
        if self.role is not Role.LEADER:
            return False
        try:
            if self.lease.renew(self.ttl_ms) or self.lease.acquire(self.ttl_ms):
                return True
        except LeaseError:
            return True
        self.role = Role.STANDBY
        self._told = (self.role, "lease lost during a slow tick")
        log.warning("standby lease: now as standby (id %s): lost during a slow tick; this "
                    "tick's posts are left to the new leader", self.lease.id)
        return False

    def release(self) -> None:
        """Let the lease go at a polite stop (a standby takes over at its next tick); never raises.

        The renew script with a 1 ms lifetime: only our own lease is touched,
        and no command beyond the agent's ACL is needed.
        """
        if self.role is not Role.LEADER:
            return
        try:
            self.lease.renew(1)
        except LeaseError as exc:
            log.warning("standby lease not released (it expires by itself): %s", exc)
            return
        self.role = Role.STANDBY
        log.info("standby lease released")
