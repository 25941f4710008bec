"""Turn what Redis holds of ``statusbot agent`` readings into ``HostReading``s.

Pure of Redis: ``collect/sidekiq.py`` reads the agents' set in its second
round trip and, for the names ``AgentReader.select`` returns, each reading and
its time to live in its third; this module judges the replies. A name whose
reading is there and sound gives a fresh reading (its age from the time to
live: the agent set it to ``HOST_EXPIRY_INTERVALS`` intervals, so no clock of
another host is trusted); a name whose reading expired (or never came, for a
``[[hosts]]`` entry without ``node_exporter``) is not reporting; a reading that
cannot be used (another schema, garbage) is an anomaly and the host's error.
Never raises.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from bot import defaults
from bot.collect import hostwire
from bot.config import HOST_NAME, HostEntry
from bot.model import Anomaly, HostReading, HostSource, HostStats

EXPIRED = "reading expired"
"""The error of a host whose agent's reading is gone from Redis."""

NEVER = "no reading in Redis (is its statusbot agent running?)"
"""The error of a configured agent host never seen since the bot started."""


@dataclass(frozen=True, slots=True)
class _Seen:
    """When (bot clock) a host's last sound reading was read, and how old it was then."""

    at: float
    age_s: float


class AgentReader:
    """Judge agents' readings snapshot after snapshot (remembering when each was last seen).

    ``entries`` are the ``[[hosts]]`` entries: one without ``node_exporter`` is
    an agent host expected even before its first reading; one with it is read
    from its exporter, so an agent reading under its name is ignored.
    ``most`` caps the names read per snapshot (``HOSTS_MAX``).
    """

    def __init__(self, entries: Iterable[HostEntry] = (), *, most: int = defaults.HOSTS_MAX,
                 clock: Callable[[], float] = time.time) -> None:
        self.entries = {e.name: e for e in entries}
        self._expected = tuple(e.name for e in self.entries.values() if not e.node_exporter)
        self._exporters = frozenset(e.name for e in self.entries.values() if e.node_exporter)
        self._most = most
        self._clock = clock
        self._seen: dict[str, _Seen] = {}
        self._pending: list[Anomaly] = []
        self.readings: tuple[HostReading, ...] = ()
        """The agents' readings of the last snapshot, sorted by name (none while Redis is down)."""
        self.anomalies: tuple[Anomaly, ...] = ()
        """The last snapshot's agent readings and names that could not be used."""

    def select(self, members: object) -> list[str]:
        """Return the names whose readings to read, from the reply to SMEMBERS of the agents' set.

        The configured agent hosts first, then the set's other names in order, at
        most ``most`` in all; a name that is not a plain host name, one read from a
        node_exporter and the names beyond the cap are anomalies.
        """
        self._pending = anomalies = []
        names = list(self._expected)
        if isinstance(members, Exception):
            anomalies.append(Anomaly(defaults.HOSTS_KEY, hostwire.error_text(members)))
            members = ()
        elif not isinstance(members, (set, list, tuple)):
            anomalies.append(Anomaly(defaults.HOSTS_KEY, f"not a set: {type(members).__name__}"))
            members = ()
        listed = set(names)
        bad = 0
        for member in sorted(str(m) for m in members):
            if member in listed:
                continue
            if not HOST_NAME.fullmatch(member):
                bad += 1
                if bad == 1:
                    anomalies.append(Anomaly(defaults.HOSTS_KEY,
                                             f"holds a name that is not a host name: "
                                             f"{member[:40]!r}"))
                continue
            if member in self._exporters:
                anomalies.append(Anomaly(defaults.HOST_KEY_PREFIX + member,
                                         "is also a [[hosts]] node_exporter: its agent's "
                                         "reading is ignored"))
                continue
            listed.add(member)
            names.append(member)
        if bad > 1:
            anomalies.append(Anomaly(defaults.HOSTS_KEY,
                                     f"holds {bad} names that are not host names"))
        if len(names) > self._most:
            anomalies.append(Anomaly(defaults.HOSTS_KEY,
                                     f"names {len(names)} hosts: only the first {self._most} "
                                     f"are read (the [[hosts]] ones, then by name)"))
            names = names[:self._most]
        return names

    def build(self, names: Sequence[str], replies: Sequence[Any]) -> tuple[HostReading, ...]:
        """Judge the GET and PTTL replies (two per name, in order) of ``select``'s names.

        Sets and returns ``readings``; sets ``anomalies``.
        """
        now = self._clock()
        anomalies = self._pending
        readings: list[HostReading] = []
        for index, name in enumerate(names):
            raw, ttl = replies[2 * index], replies[2 * index + 1]
            readings.append(self._one(name, raw, ttl, now, anomalies))
        for name in [n for n in self._seen if n not in names]:
            del self._seen[name]  # left the set: forgotten
        self.readings = tuple(sorted(readings, key=lambda r: r.name))
        self.anomalies = tuple(anomalies)
        self._pending = []
        return self.readings

    def unread(self) -> None:
        """Note a snapshot whose Redis could not be read: no agent readings at all."""
        self.readings = ()
        self.anomalies = ()
        self._pending = []

    def _reading(self, name: str, *, stats: HostStats | None, error: str | None = None,
                 age_s: float | None = None) -> HostReading:
        entry = self.entries.get(name)
        return HostReading(name=name, source=HostSource.AGENT, stats=stats, error=error,
                           age_s=age_s, role=entry.role if entry else "",
                           member_visible=entry.member_visible if entry else False)

    def _one(self, name: str, raw: object, ttl: object, now: float,
             anomalies: list[Anomaly]) -> HostReading:
        key = defaults.HOST_KEY_PREFIX + name
        if isinstance(raw, Exception):
            anomalies.append(Anomaly(key, hostwire.error_text(raw)))
            return self._reading(name, stats=None, error=hostwire.error_text(raw))
        if raw is None:
            seen = self._seen.get(name)
            if seen is None:
                return self._reading(name, stats=None, error=NEVER)
            return self._reading(name, stats=None, error=EXPIRED,
                                 age_s=round(seen.age_s + max(0.0, now - seen.at), 3))
        wire, problem = hostwire.decode(raw, name)
        if wire is None:
            problem = f"reading {problem}"
            anomalies.append(Anomaly(key, problem))
            return self._reading(name, stats=None, error=problem)
        age: float | None = None
        if type(ttl) is int and ttl >= 0:
            lifetime = defaults.HOST_EXPIRY_INTERVALS * wire.interval
            age = round(max(0.0, lifetime - ttl / 1000.0), 3)
        elif type(ttl) is int and ttl == -1:
            anomalies.append(Anomaly(key, "has no expiry: it would never show the host "
                                          "as not reporting"))
        self._seen[name] = _Seen(now, age or 0.0)
        return self._reading(name, stats=wire.stats, age_s=age)

