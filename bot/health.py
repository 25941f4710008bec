"""Detection: judge one Snapshot against the rules, with hysteresis and flap holding.

Pure: ``evaluate`` takes the snapshot, the state it returned last time, the
rules, the mutes and ``now`` as arguments and returns a new state and the
findings; nothing here reads a clock, the network, the environment or a file.
The tick loop persists ``HealthState.to_json()`` and feeds the findings to
``incidents.step``.

Components and their measured values:

- ``queue:<name>``: latency of the queue in seconds (its rule from
  ``Rules.queue_latency``, ``"*"`` for a queue without its own).
- ``unserved:<name>``: seconds the queue has had jobs while no live process
  served it. A paused queue is never unserved (pausing is deliberate).
- Queues beyond ``TRACKED_QUEUES`` (those with a rule of their own first,
  then Mastodon's, then by name) are judged together as ``queue:(others)``
  (the worst latency among them, with the ``"*"`` rule) and
  ``unserved:(others)``, so that state and work per tick stay bounded
  however many queues Redis lists; their reasons name how many and the worst.
- Names and errors from Redis or a probe enter reasons through
  ``wording.neutral`` (no mention, link, escape sequence; capped), so that a
  reason is safe in logs, on a terminal and in admin messages.
- ``unserved:*``: seconds with no live Sidekiq process at all, jobs or not:
  nothing would run the next job, and scheduled jobs and retries are not
  enqueued either. While it fires it mutes every ``unserved:<name>``.
- ``memory``: percent of memory available (lower is worse); ``swap``:
  percent of swap used (0 without swap).
- ``redis``: seconds Redis has been unreachable (or Sidekiq unreadable).
- ``dead``: jobs added to the dead set within the last hour (a shrinking
  dead set adds nothing; Sidekiq trims a full dead set, 10,000 jobs by
  default, as it adds, so growth there is not seen).
- ``web``, ``streaming``: seconds the instance's /health, or the streaming
  health endpoint, has been failing.

Levels: a value at or beyond a rule's ``warning`` (``critical``) is at that
level. A level fires once it has held for ``for_s`` (escalating to critical
too). A firing finding clears once the value has stayed on the good side of
``clear`` for ``clear_for_s``, and steps down from critical to warning once it
has stayed below ``critical`` for ``clear_for_s``. A value that is not known
(latency None, no host reading, a health probe that did not run) changes
nothing: the component keeps its state, and its finding its last reason.

A Finding's ``since`` is when it began firing (the value crossed ``for_s``
earlier), ``value`` the last known reading, ``eta_s`` for a ``queue:`` whose
backlog shrinks the seconds until it is empty at the recent rate.

Flap holding: when a component's severity changed more than
``Rules.flap_changes`` times within ``Rules.flap_window_s``, it is held at the
highest severity of the window, its reason says ``flapping``, and it is
released only once its severity has not changed for a whole window.

Root causes mute their symptoms (``Finding.muted``): while Redis is
unreachable the ``queue:``, ``unserved:`` and ``dead`` components are frozen,
not re-evaluated, and muted ``"redis unreachable"``; ``unserved:*`` firing
mutes every ``unserved:<name>``; ``unserved:<name>`` (or ``unserved:*``)
firing mutes ``queue:<name>``. A maintenance window or silence (``Mute``)
active at ``now`` mutes what it covers and wins over a root cause. Muting
never stops evaluation; it only keeps a finding from being announced.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from types import MappingProxyType
from typing import Any

from bot import defaults
from bot.jsonread import flag as _bool
from bot.jsonread import number as _float
from bot.jsonread import optional_number as _optional_float
from bot.jsonread import text as _str
from bot.jsonread import whole as _int
from bot.model import (
    Finding,
    HostReading,
    HostSource,
    HostStats,
    InstanceHealth,
    QueueStats,
    Severity,
    SidekiqStats,
    Snapshot,
)
from bot.wording import TEXT_LIMIT, neutral

JSON_VERSION = 1
"""Version of ``HealthState.to_json``; ``from_json`` refuses any other."""

ANY_QUEUE = "*"
"""Key of ``Rules.queue_latency`` for a queue without a rule of its own."""

TRACKED_QUEUES = 50
"""Most queues judged one by one; any others are judged together (``OTHER_QUEUES``)."""

OTHER_QUEUES = "(others)"
"""Queue name of the components that judge the queues beyond ``TRACKED_QUEUES`` together:
``queue:(others)`` (the worst latency among them) and ``unserved:(others)``."""

FLAPPING = "flapping"
"""Word in the reason of a finding held because it is flapping."""

REDIS_MUTE = "redis unreachable"
"""``Finding.muted`` of the Sidekiq components while Redis is unreachable."""

NO_PROCESS_MUTE = "no live Sidekiq process"
"""``Finding.muted`` of ``unserved:<name>`` and ``queue:<name>`` while ``unserved:*`` fires."""

NO_SIDEKIQ_MUTE = "no trace of Sidekiq in this Redis: check the URL, database and namespace"
"""``Finding.muted`` of ``unserved:*`` when the Redis read holds nothing Sidekiq ever wrote:
a configuration mistake to tell the admin, not an outage to announce."""

ALL_UNSERVED = "unserved:" + ANY_QUEUE
"""The component for "no live Sidekiq process at all"."""

RULE_KEYS: Mapping[str, str] = MappingProxyType({
    "warning": "warning",
    "critical": "critical",
    "for": "for_s",
    "clear": "clear",
    "clear_for": "clear_for_s",
})
"""Configuration key of each overridable ``Rule`` field → the field's name."""

SINGLE_RULES = ("unserved", "memory_available_percent", "swap_used_percent",
                "dead_growth_per_hour", "redis_unreachable", "web_down", "streaming_down",
                "disk_used_percent", "host_not_reporting")
"""The ``Rules`` fields that hold one ``Rule`` each (``queue_latency`` holds one per queue)."""

SECONDS_RULES = frozenset({"queue_latency", "unserved", "redis_unreachable", "web_down",
                           "streaming_down", "host_not_reporting"})
"""The rules whose thresholds are seconds (a configuration may write them as durations)."""

HOST_RULES = ("memory_available_percent", "swap_used_percent", "disk_used_percent",
              "host_not_reporting")
"""The ``Rules`` fields a ``[[hosts]]`` entry's ``health`` may override for that host."""

ADMIN_ONLY_MUTE = "admins only: members do not hear about this host"
"""``Finding.muted`` of another host's components when its ``member_visible`` is false: the
incident members follow leaves them out; the loop tells the admins (``admin_only``)."""

HOST_SEPARATOR = "@"
"""Joins a kind and another host's name in a component: ``memory@db-1``, ``host@worker-2``,
``disk@db-1:/var/lib/postgresql``. Queue components start ``queue:``/``unserved:``, so a
queue name with an ``@`` never reads as a host."""

LOCAL_HOST_KINDS = ("memory", "swap", "disk")
"""Kinds judged for the local host (``disk:<path>``) and, with ``@<host>``, for every other."""

_HOUR = 3600.0
_COMPONENT_RANKS = {"redis": 0, "web": 1, "memory": 2, "swap": 3, "disk": 4, "host": 5,
                    "unserved": 6, "queue": 7, "streaming": 8, "dead": 9}


# --- Rules ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rule:
    """Thresholds for one measured value.

    A value at or beyond ``warning`` (``critical``) is at that level; it must
    stay at a level for ``for_s`` seconds before the finding fires at it. A
    firing finding clears once the value has been on the good side of
    ``clear`` (default: ``warning``) for ``clear_for_s`` seconds, and steps
    down from critical to warning once it has been on the good side of
    ``critical`` that long. ``higher_is_worse`` False turns every comparison
    round (memory available: less is worse).
    """

    warning: float
    critical: float
    for_s: float = 0.0
    clear: float | None = None
    clear_for_s: float = 0.0
    higher_is_worse: bool = True

    @property
    def clear_level(self) -> float:
        """The level the value must get past to clear: ``clear``, else ``warning``."""
        return self.warning if self.clear is None else self.clear

    def at_or_beyond(self, value: float, threshold: float) -> bool:
        """Return True when ``value`` is at ``threshold`` or on its bad side."""
        return value >= threshold if self.higher_is_worse else value <= threshold

    def level(self, value: float) -> Severity:
        """Return the severity of ``value`` before any hysteresis."""
        if self.at_or_beyond(value, self.critical):
            return Severity.CRITICAL
        if self.at_or_beyond(value, self.warning):
            return Severity.WARNING
        return Severity.OK

    def clears(self, value: float) -> bool:
        """Return True when ``value`` is on the good side of the clear level."""
        return not self.at_or_beyond(value, self.clear_level)

    def validate(self) -> list[str]:
        """Return what is wrong with these thresholds, in configuration words; empty if fine."""
        problems: list[str] = []
        numbers = {"warning": self.warning, "critical": self.critical, "for": self.for_s,
                   "clear_for": self.clear_for_s}
        if self.clear is not None:
            numbers["clear"] = self.clear
        for key, number in numbers.items():
            if not math.isfinite(number):
                problems.append(f"{key} must be a finite number, got {number!r}")
        for key in ("for", "clear_for"):
            if numbers[key] < 0:
                problems.append(f"{key} must be at least 0 seconds, got {numbers[key]:g}")
        if problems:
            return problems
        if self.higher_is_worse:
            if self.warning >= self.critical:
                problems.append(f"warning ({self.warning:g}) must be below critical "
                                f"({self.critical:g})")
            if self.clear is not None and self.clear > self.warning:
                problems.append(f"clear ({self.clear:g}) must be at most warning "
                                f"({self.warning:g})")
        else:
            if self.warning <= self.critical:
                problems.append(f"warning ({self.warning:g}) must be above critical "
                                f"({self.critical:g}): lower is worse here")
            if self.clear is not None and self.clear < self.warning:
                problems.append(f"clear ({self.clear:g}) must be at least warning "
                                f"({self.warning:g}): lower is worse here")
        return problems


@dataclass(frozen=True, slots=True)
class Rules:
    """Every rule ``evaluate`` applies, plus flap holding.

    ``queue_latency`` maps a queue name to its rule; ``"*"`` is any other
    queue (without it, such a queue has no latency finding). ``unserved``
    applies to ``unserved:*`` and to every ``unserved:<name>`` without an
    entry of its own in ``unserved_queue``.
    ``flap_window_s`` 0 turns flap holding off. ``disk_used_percent``
    applies to every disk of every host; ``host_not_reporting`` (seconds)
    to another host whose reading is missing.
    """

    queue_latency: Mapping[str, Rule]
    unserved: Rule
    memory_available_percent: Rule
    swap_used_percent: Rule
    dead_growth_per_hour: Rule
    redis_unreachable: Rule
    web_down: Rule
    streaming_down: Rule
    flap_window_s: float
    flap_changes: int
    unserved_queue: Mapping[str, Rule] = field(default_factory=lambda: MappingProxyType({}))
    disk_used_percent: Rule = field(default_factory=lambda: _default_disk_rule())
    host_not_reporting: Rule = field(default_factory=lambda: _default_host_rule())

    def unserved_rule(self, queue: str) -> Rule:
        """Return the unserved rule of ``queue``: its own, else the common one."""
        return self.unserved_queue.get(queue, self.unserved)

    def latency_rule(self, queue: str) -> Rule | None:
        """Return the latency rule of ``queue``: its own, else ``"*"``'s, else None."""
        rule = self.queue_latency.get(queue)
        return self.queue_latency.get(ANY_QUEUE) if rule is None else rule

    def validate(self) -> list[str]:
        """Return every problem, each prefixed with its key (``queue_latency.push: ...``)."""
        problems: list[str] = []
        for queue, rule in sorted(self.queue_latency.items()):
            problems += [f"queue_latency.{queue}: {p}" for p in rule.validate()]
            if not rule.higher_is_worse:
                problems.append(f"queue_latency.{queue}: higher latency must be worse")
        for queue, rule in sorted(self.unserved_queue.items()):
            problems += [f"unserved_queue.{queue}: {p}" for p in rule.validate()]
        for name in SINGLE_RULES:
            rule = getattr(self, name)
            problems += [f"{name}: {p}" for p in rule.validate()]
            if rule.higher_is_worse != (name != "memory_available_percent"):
                worse = "lower" if name == "memory_available_percent" else "higher"
                problems.append(f"{name}: a {worse} value must be worse")
        if not math.isfinite(self.flap_window_s) or self.flap_window_s < 0:
            problems.append(f"flap_window: must be at least 0 seconds, got {self.flap_window_s!r}")
        if self.flap_changes < 1:
            problems.append(f"flap_changes: must be at least 1, got {self.flap_changes!r}")
        return problems


def default_rules() -> Rules:
    """Return the built-in rules (``bot.defaults``, section "Detection rules")."""
    queues = {
        name: Rule(warning=warning, critical=critical, for_s=defaults.QUEUE_LATENCY_FOR,
                   clear=warning * defaults.QUEUE_LATENCY_CLEAR_FRACTION,
                   clear_for_s=defaults.QUEUE_LATENCY_CLEAR_FOR)
        for name, warning, critical in defaults.QUEUE_LATENCY
    }
    return Rules(
        queue_latency=MappingProxyType(queues),
        unserved=Rule(defaults.UNSERVED_WARNING, defaults.UNSERVED_CRITICAL,
                      clear_for_s=defaults.UNSERVED_CLEAR_FOR),
        memory_available_percent=Rule(
            defaults.MEMORY_AVAILABLE_WARNING, defaults.MEMORY_AVAILABLE_CRITICAL,
            for_s=defaults.MEMORY_AVAILABLE_FOR, clear=defaults.MEMORY_AVAILABLE_CLEAR,
            clear_for_s=defaults.MEMORY_AVAILABLE_CLEAR_FOR, higher_is_worse=False),
        swap_used_percent=Rule(
            defaults.SWAP_USED_WARNING, defaults.SWAP_USED_CRITICAL,
            for_s=defaults.SWAP_USED_FOR, clear=defaults.SWAP_USED_CLEAR,
            clear_for_s=defaults.SWAP_USED_CLEAR_FOR),
        dead_growth_per_hour=Rule(
            defaults.DEAD_GROWTH_WARNING, defaults.DEAD_GROWTH_CRITICAL,
            clear=defaults.DEAD_GROWTH_CLEAR, clear_for_s=defaults.DEAD_GROWTH_CLEAR_FOR),
        redis_unreachable=Rule(defaults.REDIS_UNREACHABLE_WARNING,
                               defaults.REDIS_UNREACHABLE_CRITICAL,
                               clear_for_s=defaults.REDIS_UNREACHABLE_CLEAR_FOR),
        web_down=Rule(defaults.WEB_DOWN_WARNING, defaults.WEB_DOWN_CRITICAL,
                      clear_for_s=defaults.WEB_DOWN_CLEAR_FOR),
        streaming_down=Rule(defaults.STREAMING_DOWN_WARNING, defaults.STREAMING_DOWN_CRITICAL,
                            clear_for_s=defaults.STREAMING_DOWN_CLEAR_FOR),
        flap_window_s=defaults.FLAP_WINDOW,
        flap_changes=defaults.FLAP_CHANGES,
        disk_used_percent=_default_disk_rule(),
        host_not_reporting=_default_host_rule(),
    )


def _default_disk_rule() -> Rule:
    return Rule(defaults.DISK_USED_WARNING, defaults.DISK_USED_CRITICAL,
                for_s=defaults.DISK_USED_FOR, clear=defaults.DISK_USED_CLEAR,
                clear_for_s=defaults.DISK_USED_CLEAR_FOR)


def _default_host_rule() -> Rule:
    return Rule(defaults.HOST_NOT_REPORTING_WARNING, defaults.HOST_NOT_REPORTING_CRITICAL,
                clear_for_s=defaults.HOST_NOT_REPORTING_CLEAR_FOR)


def override_rule(base: Rule, overrides: Mapping[str, float]) -> Rule:
    """Return ``base`` with the configuration keys in ``overrides`` replaced.

    Keys are those of ``RULE_KEYS`` (``warning``, ``critical``, ``for``,
    ``clear``, ``clear_for``). When ``warning`` changes and ``clear`` is not
    given, an explicit ``clear`` of ``base`` keeps its proportion to the
    warning (a queue clearing at half its warning still does), so that
    raising a warning alone never makes the rule invalid.
    """
    changes: dict[str, Any] = {RULE_KEYS[key]: value for key, value in overrides.items()}
    if ("warning" in overrides and "clear" not in overrides and base.clear is not None
            and base.warning != 0):
        changes["clear"] = overrides["warning"] * (base.clear / base.warning)
    return dataclasses.replace(base, **changes)


def rules_from_config(table: Mapping[str, Any], base: Rules | None = None,
                      duration: Callable[[str], float] | None = None,
                      ) -> tuple[Rules, list[str]]:
    """Build ``Rules`` from a configuration table; return them and every problem found.

    ``table`` is shaped like the TOML table (e.g. ``[health]``)::

        flap_window = 3600          # seconds
        flap_changes = 4
        [health.queue_latency.push] # any queue name, or "*" for the others
        warning = 600               # keys: warning critical for clear clear_for
        [health.memory_available_percent]
        critical = 3

    Every key not given keeps its value in ``base`` (default:
    ``default_rules()``); a queue without a rule of its own starts from
    ``"*"``'s (as overridden in the same table). Numbers may be ints or
    floats; where a value is seconds, a string is passed to ``duration``
    (e.g. ``config.parse_duration``, which raises ``ValueError``) when one
    is given. Problems name the key relative
    to ``table`` (``queue_latency.push.warning: ...``): unknown keys, wrong
    types (the key then keeps its base value), and what ``Rules.validate``
    finds, all at once. With problems, the returned rules are not to be used.
    """
    rules = default_rules() if base is None else base
    problems: list[str] = []
    known = {"flap_window", "flap_changes", "queue_latency", "unserved_queue", *SINGLE_RULES}
    problems += [f"{key}: unknown key" for key in sorted(set(table) - known)]

    def number(where: str, value: object, seconds: bool) -> float | None:
        if isinstance(value, str) and seconds and duration is not None:
            try:
                return duration(value)
            except ValueError as exc:
                problems.append(f"{where}: {exc}")
                return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            what = ("seconds or a duration like \"30m\"" if seconds and duration is not None
                    else "a number")
            problems.append(f"{where}: must be {what}, got {type(value).__name__} {value!r:.60}")
            return None
        return float(value)

    def rule(where: str, old: Rule, data: object, seconds: bool) -> Rule:
        if not isinstance(data, Mapping):
            problems.append(f"{where}: must be a table of {', '.join(RULE_KEYS)}")
            return old
        overrides: dict[str, float] = {}
        for key, value in data.items():
            if key not in RULE_KEYS:
                problems.append(f"{where}.{key}: unknown key (known: {', '.join(RULE_KEYS)})")
                continue
            parsed = number(f"{where}.{key}", value, seconds or key in {"for", "clear_for"})
            if parsed is not None:
                overrides[key] = parsed
        return override_rule(old, overrides)

    changes: dict[str, Any] = {}
    for name in SINGLE_RULES:
        if name in table:
            changes[name] = rule(name, getattr(rules, name), table[name], name in SECONDS_RULES)
    queues = table.get("queue_latency", {})
    if not isinstance(queues, Mapping):
        problems.append("queue_latency: must be a table of queue names")
    elif queues:
        latency = dict(rules.queue_latency)
        for queue in sorted(queues, key=lambda name: name != ANY_QUEUE):  # "*" first
            data = queues[queue]
            old = latency.get(queue, latency.get(ANY_QUEUE))
            if old is None:
                problems.append(f"queue_latency.{queue}: no rule to start from; "
                                "give warning and critical in queue_latency.\"*\" first")
                continue
            latency[queue] = rule(f"queue_latency.{queue}", old, data, seconds=True)
        changes["queue_latency"] = MappingProxyType(latency)
    per_queue = table.get("unserved_queue", {})
    if not isinstance(per_queue, Mapping):
        problems.append("unserved_queue: must be a table of queue names")
    elif per_queue:
        base_unserved = changes.get("unserved", rules.unserved)
        changes["unserved_queue"] = MappingProxyType({
            queue: rule(f"unserved_queue.{queue}", rules.unserved_queue.get(queue, base_unserved),
                        data, seconds=True)
            for queue, data in per_queue.items()})
    if "flap_window" in table:
        window = number("flap_window", table["flap_window"], seconds=True)
        if window is not None:
            changes["flap_window_s"] = window
    if "flap_changes" in table:
        count = table["flap_changes"]
        if isinstance(count, bool) or not isinstance(count, int):
            problems.append(f"flap_changes: must be a whole number, got {count!r:.60}")
        else:
            changes["flap_changes"] = count
    rules = dataclasses.replace(rules, **changes)
    return rules, problems + rules.validate()


# --- Mutes ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Mute:
    """A maintenance window or a silence.

    Active from ``start`` (included) to ``end`` (excluded). ``components`` are
    ``fnmatch`` patterns over component names (``queue:*``, ``memory``);
    empty covers everything. ``reason`` becomes ``Finding.muted``.
    """

    start: float
    end: float
    components: tuple[str, ...]
    reason: str

    def active(self, now: float) -> bool:
        """Return True when the mute applies at ``now``."""
        return self.start <= now < self.end

    def covers(self, component: str) -> bool:
        """Return True when the mute applies to ``component``."""
        return not self.components or any(fnmatchcase(component, p) for p in self.components)

    def validate(self) -> list[str]:
        """Return what is wrong with this mute; empty if fine."""
        problems = []
        if not self.end > self.start:
            problems.append("the end must be after the start")
        if not self.reason.strip():
            problems.append("a reason is needed (it is shown instead of the announcement)")
        return problems


# --- State ---------------------------------------------------------------------------------

Sample = tuple[float, int]
"""A (time, count) pair: a queue's size, or the dead set's running total of additions."""


@dataclass(frozen=True, slots=True)
class ComponentState:
    """What ``evaluate`` remembers of one component between ticks.

    ``level`` is the severity after hysteresis, ``shown`` after flap holding
    (the one announced); ``since`` is when ``shown`` last left OK. The
    ``*_since`` times start the stretches during which the value was at or
    beyond warning, at or beyond critical, on the good side of clear, and
    below critical. ``onset`` is when a duration's condition (Redis
    unreachable, /health failing, queue unserved) began. ``changes`` are the
    recent changes of ``level`` (time, new level), at most
    ``Rules.flap_changes + 1``, none older than the flap window. ``value``
    and ``reason`` are from the last evaluation.
    """

    level: Severity = Severity.OK
    shown: Severity = Severity.OK
    since: float | None = None
    warning_since: float | None = None
    critical_since: float | None = None
    clear_since: float | None = None
    below_critical_since: float | None = None
    onset: float | None = None
    flapping: bool = False
    changes: tuple[tuple[float, Severity], ...] = ()
    value: float | None = None
    reason: str = ""

    def idle(self) -> bool:
        """Return True when nothing about this component needs remembering."""
        return (self.shown == Severity.OK and self.level == Severity.OK and not self.flapping
                and not self.changes and self.onset is None and self.warning_since is None
                and self.critical_since is None)

    def to_json(self) -> dict[str, Any]:
        """Return plain JSON-ready data; ``from_json`` reads it back."""
        return {
            "level": int(self.level), "shown": int(self.shown), "since": self.since,
            "warning_since": self.warning_since, "critical_since": self.critical_since,
            "clear_since": self.clear_since, "below_critical_since": self.below_critical_since,
            "onset": self.onset, "flapping": self.flapping,
            "changes": [[t, int(level)] for t, level in self.changes],
            "value": self.value, "reason": self.reason,
        }

    @classmethod
    def from_json(cls, data: object) -> ComponentState:
        """Read ``to_json``'s output; raise ``ValueError`` when it is not that."""
        fields = _object(data, {f.name for f in dataclasses.fields(cls)})
        return cls(
            level=_severity(fields["level"]), shown=_severity(fields["shown"]),
            since=_optional_float(fields["since"]),
            warning_since=_optional_float(fields["warning_since"]),
            critical_since=_optional_float(fields["critical_since"]),
            clear_since=_optional_float(fields["clear_since"]),
            below_critical_since=_optional_float(fields["below_critical_since"]),
            onset=_optional_float(fields["onset"]), flapping=_bool(fields["flapping"]),
            changes=tuple((_float(t), _severity(s)) for t, s in _pairs(fields["changes"])),
            value=_optional_float(fields["value"]), reason=_str(fields["reason"]),
        )


@dataclass(frozen=True, slots=True)
class HealthState:
    """Everything ``evaluate`` must remember between ticks; bounded, and JSON round-trips.

    ``components`` holds only components that are firing or on their way
    (idle ones are dropped). ``queue_samples`` holds the last
    ``defaults.QUEUE_RATE_SAMPLES`` (time, size) of each queue Sidekiq lists.
    ``dead_last`` is the dead set's size at the last reading, ``dead_added``
    a running total of jobs added to it (a shrinking dead set adds nothing),
    ``dead_samples`` that total at most every ``defaults.DEAD_SAMPLE_SPACING``
    seconds over the last hour. ``no_sidekiq`` is True while "no live process
    at all" fires and began in a Redis with no trace of Sidekiq: it stays muted
    until it clears, so fixing the URL never announces the clearing hold.
    """

    components: Mapping[str, ComponentState] = field(default_factory=dict)
    queue_samples: Mapping[str, tuple[Sample, ...]] = field(default_factory=dict)
    dead_last: int | None = None
    dead_added: int = 0
    dead_samples: tuple[Sample, ...] = ()
    no_sidekiq: bool = False

    @classmethod
    def initial(cls) -> HealthState:
        """Return the state of a bot that has seen nothing yet."""
        return cls()

    def to_json(self) -> dict[str, Any]:
        """Return plain JSON-ready data; ``from_json`` reads it back to an equal state."""
        return {
            "version": JSON_VERSION,
            "components": {name: self.components[name].to_json()
                           for name in sorted(self.components)},
            "queue_samples": {name: [[t, n] for t, n in self.queue_samples[name]]
                              for name in sorted(self.queue_samples)},
            "dead_last": self.dead_last,
            "dead_added": self.dead_added,
            "dead_samples": [[t, n] for t, n in self.dead_samples],
            "no_sidekiq": self.no_sidekiq,
        }

    @classmethod
    def from_json(cls, data: object) -> HealthState:
        """Read ``to_json``'s output; raise ``ValueError`` for another version or shape.

        The loop should log the error and start from ``initial()``: the worst
        that loses is the hysteresis of the findings firing at that moment.
        """
        keys = {"version", "components", "queue_samples", "dead_last", "dead_added",
                "dead_samples"}
        if isinstance(data, dict) and "no_sidekiq" in data:  # absent in states before 0.2
            keys.add("no_sidekiq")
        fields = _object(data, keys)
        if fields["version"] != JSON_VERSION:
            raise ValueError(f"health state version {fields['version']!r:.20}, "
                             f"expected {JSON_VERSION}")
        components = _object(fields["components"], None)
        samples = _object(fields["queue_samples"], None)
        dead_last = fields["dead_last"]
        return cls(
            components={name: ComponentState.from_json(value)
                        for name, value in components.items()},
            queue_samples={name: tuple((_float(t), _int(n)) for t, n in _pairs(value))
                           for name, value in samples.items()},
            dead_last=None if dead_last is None else _int(dead_last),
            dead_added=_int(fields["dead_added"]),
            dead_samples=tuple((_float(t), _int(n)) for t, n in _pairs(fields["dead_samples"])),
            no_sidekiq=_bool(fields.get("no_sidekiq", False)),
        )


def _object(data: object, keys: set[str] | None) -> dict[str, Any]:
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise ValueError(f"expected a JSON object, got {data!r:.40}")
    if keys is not None and set(data) != keys:
        raise ValueError(f"expected the keys {sorted(keys)}, got {sorted(data)}")
    return data


def _pairs(data: object) -> list[tuple[object, object]]:
    if not isinstance(data, list) or not all(isinstance(p, list) and len(p) == 2 for p in data):
        raise ValueError(f"expected a list of pairs, got {data!r:.40}")
    return [(p[0], p[1]) for p in data]


def _severity(value: object) -> Severity:
    try:
        return Severity(_int(value))
    except ValueError:
        raise ValueError(f"expected a severity (0, 1 or 2), got {value!r:.40}") from None


# --- Evaluation ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Reading:
    """One known value of one component at this tick, and how to describe it."""

    component: str
    rule: Rule
    value: float
    text: str
    """The value in words, e.g. ``push latency 312 s``."""
    unit: Callable[[float], str]
    """Formats a threshold of this rule."""
    extra: str = ""
    """Appended after the thresholds, e.g. ``, 5,234 jobs``."""
    onset: float | None = None


def evaluate(snapshot: Snapshot, state: HealthState, rules: Rules, now: float,
             mutes: Sequence[Mute] = (), *, instance: InstanceHealth | None = None,
             host_rules: Mapping[str, Rules] | None = None,
             ) -> tuple[HealthState, tuple[Finding, ...]]:
    """Return the new state and one Finding per component that is not OK (firing), muted or not.

    ``instance`` is the probe of the instance's health endpoints, None when
    not probed (``web`` and ``streaming`` then keep their state). Findings are
    sorted root causes first (``redis``, ``web``, ``memory``, ``swap``, ``disk``,
    ``host``, ``unserved``, ``queue``, ``streaming``, ``dead``; the local
    host before the others), queues in Mastodon's order.

    ``host_rules`` maps another host's name to its own rules (its
    ``[[hosts]]`` entry's ``health``); its memory, swap, disk and
    not-reporting rules then apply to that host instead of ``rules``'
    (flap holding stays ``rules``'). See ``_other_host_readings`` for the
    components of other hosts and when they are muted.
    """
    old = state.components
    readings: list[_Reading] = []
    sidekiq = snapshot.sidekiq if snapshot.redis.reachable else None

    readings.append(_down_reading("redis", old, sidekiq is None, now, rules.redis_unreachable,
                                  "Redis unreachable for", "Redis reachable again",
                                  _error(snapshot.redis.error)))
    queue_samples: Mapping[str, tuple[Sample, ...]] = state.queue_samples
    dead_last, dead_added, dead_samples = state.dead_last, state.dead_added, state.dead_samples
    etas: dict[str, float] = {}
    tracked: tuple[QueueStats, ...] = ()
    if sidekiq is not None:
        tracked, others = _split_queues(sidekiq.queues, rules)
        queue_samples = {q.name: _add_sample(state.queue_samples.get(q.name, ()), now, q.size,
                                             defaults.QUEUE_RATE_SPACING,
                                             defaults.QUEUE_RATE_SAMPLES)
                         for q in tracked}
        for q in tracked:
            eta = _eta(queue_samples[q.name], now, q.size)
            if eta is not None:
                etas[f"queue:{q.name}"] = eta
        readings += _sidekiq_readings(sidekiq, tracked, others, old, rules, now)
        dead_added += 0 if dead_last is None else max(0, sidekiq.dead - dead_last)
        dead_last = sidekiq.dead
        dead_samples = _add_sample(tuple(s for s in dead_samples if now - _HOUR <= s[0]), now,
                                   dead_added, defaults.DEAD_SAMPLE_SPACING, 1 + int(
                                       _HOUR // defaults.DEAD_SAMPLE_SPACING))
        growth, span = dead_added - dead_samples[0][1], now - dead_samples[0][0]
        readings.append(_Reading(
            "dead", rules.dead_growth_per_hour, float(growth),
            f"dead set grew by {growth:,} jobs in {_seconds(span)}", _count,
            f", {sidekiq.dead:,} dead in all"))
    if snapshot.host is not None:
        readings += _host_readings(snapshot.host, rules)
    host_mutes: dict[str, str] = {}
    for other in snapshot.hosts:
        own = rules if host_rules is None else host_rules.get(other.name, rules)
        readings += _other_host_readings(other, own, old, now)
    if instance is not None:
        if instance.web_ok is not None:
            readings.append(_down_reading("web", old, not instance.web_ok, now, rules.web_down,
                                          "/health failing for", "/health answering again",
                                          _error(instance.web_error)))
        if instance.streaming_ok is not None:
            readings.append(_down_reading(
                "streaming", old, not instance.streaming_ok, now, rules.streaming_down,
                "streaming health failing for", "streaming health answering again",
                _error(instance.streaming_error)))

    components = dict(old)
    for reading in readings:
        components[reading.component] = _step(components.get(reading.component, _IDLE),
                                               reading, now, rules)
    _mute_other_hosts(snapshot, components, host_mutes)
    if sidekiq is not None:
        listed = {q.name for q in tracked} | {ANY_QUEUE, OTHER_QUEUES}
        for name in list(components):
            # A queue that left Sidekiq's list holds no jobs, and its rule may be gone.
            kind, _, queue = name.partition(":")
            if kind not in {"queue", "unserved"} or queue in listed:
                continue
            rule = rules.latency_rule(queue) if kind == "queue" else rules.unserved_rule(queue)
            if rule is None:
                del components[name]
            else:
                gone = _Reading(name, rule, 0.0, f"{neutral(queue)} queue no longer listed",
                                _seconds)
                components[name] = _step(components[name], gone, now, rules)

    unserved = components.get(ALL_UNSERVED, _IDLE).shown > Severity.OK
    no_sidekiq = unserved and (state.no_sidekiq or (sidekiq is not None and _no_trace(sidekiq)))
    findings = tuple(
        _finding(name, components[name], now, mutes, sidekiq, components, rules, etas,
                 no_sidekiq, host_mutes)
        for name in sorted(components, key=component_order)
        if components[name].shown > Severity.OK
    )
    new_state = HealthState(
        components={n: c for n, c in components.items() if not c.idle()},
        queue_samples=queue_samples, dead_last=dead_last, dead_added=dead_added,
        dead_samples=dead_samples, no_sidekiq=no_sidekiq,
    )
    return new_state, findings


def component_kind(component: str) -> str:
    """Return a component's kind (the key of its rank and of its member wording).

    ``queue`` of ``queue:push``, ``memory`` of ``memory@db-1``, ``disk`` of
    ``disk:/var`` and of ``disk@db-1:/var``, ``host`` of ``host@worker-2``.
    """
    return component.partition(":")[0].partition(HOST_SEPARATOR)[0]


def host_of(component: str, known: Container[str] = ()) -> str | None:
    """Return the other host a component is about (``db-1`` of ``memory@db-1``), else None.

    The local host's components (``memory``, ``disk:/var``) and queues give None.
    In ``disk@<host>:<path>`` a host name may hold a ``:`` too: the host is the
    longest part before a ``:`` that is in ``known``, else the part before the
    first ``:``. Use it to look a host up, not to show it (show it through ``neutral``).
    """
    kind, separator, rest = component.partition(HOST_SEPARATOR)
    if not separator or kind not in (*LOCAL_HOST_KINDS, "host"):
        return None
    if kind != "disk":
        return rest
    cuts = [i for i, char in enumerate(rest) if char == ":"]
    for cut in reversed(cuts):
        if rest[:cut] in known:
            return rest[:cut]
    return rest[:cuts[0]] if cuts else rest


def host_component(kind: str, host: str, detail: str = "") -> str:
    """Return the component of ``kind`` on another host: ``memory@db-1``, ``disk@db-1:/var``."""
    return f"{kind}{HOST_SEPARATOR}{host}" + (f":{detail}" if detail else "")


def component_order(component: str) -> tuple[int, int, str]:
    """Sort key of components: root causes first, then queues in Mastodon's order.

    Another host's components rank with their kind, after the local host's.
    """
    kind, _, name = component.partition(":")
    kind = kind.partition(HOST_SEPARATOR)[0]
    queues = defaults.MASTODON_QUEUES
    within = queues.index(name) if name in queues else len(queues)
    return _COMPONENT_RANKS.get(kind, len(_COMPONENT_RANKS)), within, component


def is_flapping(finding: Finding) -> bool:
    """Return True when ``finding`` is held because its component is flapping."""
    return FLAPPING in finding.reason


_IDLE = ComponentState()


def _split_queues(queues: Sequence[QueueStats],
                  rules: Rules) -> tuple[tuple[QueueStats, ...], tuple[QueueStats, ...]]:
    """Return the queues judged one by one (at most ``TRACKED_QUEUES``) and the others."""
    known = defaults.MASTODON_QUEUES
    if len(queues) <= TRACKED_QUEUES:
        return tuple(queues), ()
    ordered = sorted(queues, key=lambda q: (q.name not in rules.queue_latency,
                                            q.name not in known, q.name))
    return tuple(ordered[:TRACKED_QUEUES]), tuple(ordered[TRACKED_QUEUES:])


def _sidekiq_readings(sidekiq: SidekiqStats, tracked: Sequence[QueueStats],
                      others: Sequence[QueueStats], old: Mapping[str, ComponentState],
                      rules: Rules, now: float) -> list[_Reading]:
    readings = [_down_reading(
        ALL_UNSERVED, old, sidekiq.live_processes == 0, now, rules.unserved,
        "no live Sidekiq process for", "Sidekiq processes alive again",
        f", {sidekiq.stale_processes} stale, {sidekiq.enqueued:,} jobs waiting")]
    if others:
        readings += _other_readings(others, old, rules, now)
    for queue in tracked:
        rule = rules.latency_rule(queue.name)
        if rule is not None and queue.latency_s is not None:
            extra = f", {queue.size:,} jobs" + (", paused" if queue.paused else "")
            readings.append(_Reading(f"queue:{queue.name}", rule, queue.latency_s,
                                     f"{neutral(queue.name)} latency "
                                     f"{_seconds(queue.latency_s)}",
                                     _seconds, extra))
        waiting = queue.size > 0 and not queue.served and not queue.paused
        readings.append(_down_reading(
            f"unserved:{queue.name}", old, waiting, now, rules.unserved_rule(queue.name),
            f"no live process serves {neutral(queue.name)} for",
            f"{neutral(queue.name)} served again or empty",
            f", {queue.size:,} jobs waiting"))
    return readings


def _other_readings(others: Sequence[QueueStats], old: Mapping[str, ComponentState],
                    rules: Rules, now: float) -> list[_Reading]:
    """Judge the queues beyond ``TRACKED_QUEUES`` together: the worst latency, any unserved."""
    readings = []
    rule = rules.queue_latency.get(ANY_QUEUE)
    timed = [q for q in others if q.latency_s is not None]
    if rule is not None and timed:
        worst = max(timed, key=lambda q: q.latency_s or 0.0)
        latency = worst.latency_s or 0.0
        readings.append(_Reading(
            f"queue:{OTHER_QUEUES}", rule, latency,
            f"{len(others):,} other queues, worst {neutral(worst.name)} latency "
            f"{_seconds(latency)}",
            _seconds, f", {worst.size:,} jobs"))
    waiting = [q for q in others if q.size > 0 and not q.served and not q.paused]
    example = f" (e.g. {neutral(waiting[0].name)})" if waiting else ""
    readings.append(_down_reading(
        f"unserved:{OTHER_QUEUES}", old, bool(waiting), now, rules.unserved_rule(ANY_QUEUE),
        f"no live process serves {len(waiting):,} other queues{example} for",
        "other queues served again or empty", ""))
    return readings


def _host_readings(host: HostStats, rules: Rules) -> list[_Reading]:
    """Return the local host's readings: ``memory``, ``swap``, ``disk:<path>``."""
    readings = []
    if host.memory_total_bytes > 0:
        available = host.memory_available_bytes * 100 / host.memory_total_bytes
        readings.append(_Reading(
            "memory", rules.memory_available_percent, available,
            f"memory available {_percent(available)}", _percent,
            f", {_gib(host.memory_available_bytes)} of {_gib(host.memory_total_bytes)}"))
    swap = host.swap_percent if host.swap_total_bytes > 0 else 0.0
    readings.append(_Reading(
        "swap", rules.swap_used_percent, swap, f"swap used {_percent(swap)}", _percent,
        f", {_gib(host.swap_used_bytes)} of {_gib(host.swap_total_bytes)}"
        if host.swap_total_bytes > 0 else ", no swap"))
    readings += _disk_readings(host, rules, "disk:", "")
    return readings


MAX_DISKS = 32
"""Most disks judged per host (the first ones listed); more would only grow the state."""


def _disk_readings(host: HostStats, rules: Rules, prefix: str, where: str) -> list[_Reading]:
    """One ``disk_used_percent`` reading per disk with a known use (an unread disk is unknown)."""
    readings = []
    for disk in host.disks[:MAX_DISKS]:
        if disk.percent is None or not math.isfinite(disk.percent):
            continue
        extra = (f", {_size(disk.free_bytes)} free of {_size(disk.total_bytes)}"
                 if disk.free_bytes is not None and disk.total_bytes else "")
        readings.append(_Reading(
            prefix + disk.path, rules.disk_used_percent, disk.percent,
            f"disk {neutral(disk.path)}{where} {_percent(disk.percent)} used", _percent, extra))
    return readings


def _other_host_readings(other: HostReading, rules: Rules, old: Mapping[str, ComponentState],
                         now: float) -> list[_Reading]:
    """Return another host's readings: ``host@<name>``, ``memory@``, ``swap@``, ``disk@``.

    ``host@<name>`` is the seconds it has not reported; disks are
    ``disk@<name>:<path>``.

    A host that does not report has no memory, swap or disk values: those
    components keep their state (like any unknown value) while ``host@<name>``
    counts the seconds. Names enter reasons through ``neutral``.
    """
    name, shown = other.name, neutral(other.name)
    readings = [_down_reading(
        host_component("host", name), old, other.stats is None, now, rules.host_not_reporting,
        f"host {shown} not reporting for", f"host {shown} reporting again",
        _error(other.error or "no reason given") if other.stats is None else "")]
    stats = other.stats
    if stats is None:
        return readings
    if stats.memory_total_bytes > 0:
        available = stats.memory_available_bytes * 100 / stats.memory_total_bytes
        readings.append(_Reading(
            host_component("memory", name), rules.memory_available_percent, available,
            f"memory on {shown}: {_percent(available)} available", _percent,
            f", {_size(stats.memory_available_bytes)} of {_size(stats.memory_total_bytes)}"))
    swap = stats.swap_percent if stats.swap_total_bytes > 0 else 0.0
    readings.append(_Reading(
        host_component("swap", name), rules.swap_used_percent, swap,
        f"swap on {shown}: {_percent(swap)} used", _percent,
        f", {_size(stats.swap_used_bytes)} of {_size(stats.swap_total_bytes)}"
        if stats.swap_total_bytes > 0 else ", no swap"))
    readings += _disk_readings(stats, rules, host_component("disk", name) + ":", f" on {shown}:")
    return readings


def _mute_other_hosts(snapshot: Snapshot, components: dict[str, ComponentState],
                      host_mutes: dict[str, str]) -> None:
    """Fill ``host_mutes`` for other hosts' components; forget hosts no longer listed.

    While Redis is unreachable, agents cannot be read: their hosts' components
    are muted ``REDIS_MUTE`` (the root cause is announced), and a host missing
    from the list is kept as it was. Otherwise a host that is not member-visible
    is muted ``ADMIN_ONLY_MUTE``, and the components of a host no longer
    listed (removed from ``[[hosts]]`` or from the agents' set) are dropped.
    """
    hosts = {h.name: h for h in snapshot.hosts}
    redis_down = not snapshot.redis.reachable
    for name in list(components):
        host = host_of(name, hosts)
        if host is None:
            continue
        reading = hosts.get(host)
        if reading is None:
            if redis_down:
                host_mutes[name] = REDIS_MUTE
            else:
                del components[name]
        elif redis_down and reading.source is HostSource.AGENT:
            host_mutes[name] = REDIS_MUTE
        elif not reading.member_visible:
            host_mutes[name] = ADMIN_ONLY_MUTE


def _down_reading(component: str, old: Mapping[str, ComponentState], down: bool, now: float,
                  rule: Rule, failing: str, recovered: str, extra: str) -> _Reading:
    """Return a reading whose value is how long ``down`` has been true (0 when it is not)."""
    if not down:
        return _Reading(component, rule, 0.0, recovered, _seconds)
    onset = _since(old.get(component, _IDLE).onset, True, now)
    value = now - onset if onset is not None else 0.0
    return _Reading(component, rule, value, f"{failing} {_seconds(value)}", _seconds, extra,
                    onset)


def _error(error: str | None) -> str:
    return f": {neutral(error, TEXT_LIMIT)}" if error else ""


def _since(start: float | None, holds: bool, now: float) -> float | None:
    """Return when a stretch during which ``holds`` began: ``start``, now, or None."""
    if not holds:
        return None
    return now if start is None or start > now else start


def _held(start: float | None, duration: float, now: float) -> bool:
    return start is not None and now - start >= duration


def _step(old: ComponentState, reading: _Reading, now: float, rules: Rules) -> ComponentState:
    """Advance one component by one known value: hysteresis, then flap holding."""
    rule, value = reading.rule, reading.value
    raw = rule.level(value)
    warning_since = _since(old.warning_since, raw >= Severity.WARNING, now)
    critical_since = _since(old.critical_since, raw >= Severity.CRITICAL, now)
    clear_since = _since(old.clear_since, rule.clears(value), now)
    below_since = _since(old.below_critical_since, raw < Severity.CRITICAL, now)

    level = old.level
    reached = (Severity.CRITICAL if _held(critical_since, rule.for_s, now)
               else Severity.WARNING if _held(warning_since, rule.for_s, now)
               else Severity.OK)
    if reached > level:
        level = reached
    elif level > Severity.OK and _held(clear_since, rule.clear_for_s, now):
        level = Severity.OK
    elif level == Severity.CRITICAL and _held(below_since, rule.clear_for_s, now):
        level = Severity.WARNING

    window = rules.flap_window_s
    changes = old.changes + (((now, level),) if level != old.level else ())
    changes = tuple(c for c in changes if now - c[0] < window)[-(rules.flap_changes + 1):]
    flapping = window > 0 and (len(changes) > rules.flap_changes
                               or (old.flapping and bool(changes)))
    shown = max((old.shown, level, *(s for _, s in changes))) if flapping else level
    if shown == Severity.OK:
        since = None
    elif old.shown == Severity.OK or old.since is None:
        since = now
    else:
        since = old.since
    return ComponentState(
        level=level, shown=shown, since=since, warning_since=warning_since,
        critical_since=critical_since, clear_since=clear_since,
        below_critical_since=below_since, onset=reading.onset, flapping=flapping,
        changes=changes, value=value, reason=_reason(reading, shown, level),
    )


def _reason(reading: _Reading, shown: Severity, level: Severity) -> str:
    """``push latency 312 s (critical at 300 s), 5,234 jobs``, with why it is held if it is.

    Also says when a warning is about to become critical.

    A severity held only by flap holding (``shown`` above ``level``) gets no
    hysteresis clause: the flapping note added to the finding explains it.
    """
    rule, value, unit = reading.rule, reading.value, reading.unit
    if shown == Severity.OK:
        return reading.text + reading.extra
    threshold = rule.critical if shown == Severity.CRITICAL else rule.warning
    clause = f"{shown.name.lower()} at {unit(threshold)}"
    if not rule.at_or_beyond(value, threshold) and shown == level:
        side = "below" if rule.higher_is_worse else "above"
        hold = _seconds(rule.clear_for_s)
        if rule.clears(value):
            clause += f", held: clears after {hold} {side} {unit(rule.clear_level)}"
        elif shown == Severity.CRITICAL:
            clause += f", held: steps down after {hold} {side} {unit(rule.critical)}"
        else:
            clause += f", held until {side} {unit(rule.clear_level)}"
    elif shown == Severity.WARNING and rule.level(value) == Severity.CRITICAL:
        clause += f"; critical at {unit(rule.critical)} if it lasts {_seconds(rule.for_s)}"
    return f"{reading.text} ({clause}){reading.extra}"


def _finding(name: str, component: ComponentState, now: float, mutes: Sequence[Mute],
             sidekiq: SidekiqStats | None, components: Mapping[str, ComponentState],
             rules: Rules, etas: Mapping[str, float], no_sidekiq: bool,
             host_mutes: Mapping[str, str]) -> Finding:
    reason = component.reason
    if component.flapping:
        reason += (f"; {FLAPPING}: held at {component.shown.name.lower()} until stable "
                   f"for {_seconds(rules.flap_window_s)}")
    return Finding(component=name, severity=component.shown, reason=reason,
                   value=component.value, since=component.since,
                   muted=_muted(name, now, mutes, sidekiq, components, no_sidekiq, host_mutes),
                   eta_s=etas.get(name))


def _no_trace(sidekiq: SidekiqStats) -> bool:
    """Return True when the Redis read holds nothing Sidekiq ever wrote."""
    return not sidekiq.queues and not sidekiq.processes_registered and not sidekiq.processed


def _muted(name: str, now: float, mutes: Sequence[Mute], sidekiq: SidekiqStats | None,
           components: Mapping[str, ComponentState], no_sidekiq: bool,
           host_mutes: Mapping[str, str]) -> str | None:
    """Why ``name`` is not to be announced: a mute, then a root cause; None if it is."""
    for mute in mutes:
        if mute.active(now) and mute.covers(name):
            return mute.reason
    if name in host_mutes:
        return host_mutes[name]
    kind, _, queue = name.partition(":")
    if kind not in {"queue", "unserved", "dead"}:
        return None
    if sidekiq is None:
        return REDIS_MUTE
    if name == ALL_UNSERVED:
        return NO_SIDEKIQ_MUTE if no_sidekiq else None

    def firing(component: str) -> bool:
        return components.get(component, _IDLE).shown > Severity.OK

    if kind in {"queue", "unserved"} and firing(ALL_UNSERVED):
        return NO_PROCESS_MUTE
    if kind == "queue" and firing(f"unserved:{queue}"):
        return f"no live process serves {queue}"
    return None


def _add_sample(samples: tuple[Sample, ...], now: float, count: int, spacing: float,
                keep: int) -> tuple[Sample, ...]:
    """Append (now, count) when the last sample is ``spacing`` old; keep the last ``keep``."""
    samples = tuple(s for s in samples if s[0] <= now)  # a clock that went back
    if not samples or now - samples[-1][0] >= spacing:
        samples += ((now, count),)
    return samples[-keep:]


def _eta(samples: tuple[Sample, ...], now: float, size: int) -> float | None:
    """Seconds until a queue of ``size`` is empty at the rate it shrank since the oldest sample."""
    first_time, first_size = samples[0]
    drop = first_size - size
    if now <= first_time or drop <= 0:
        return None
    return size * (now - first_time) / drop


def _seconds(seconds: float) -> str:
    if seconds < 600:
        return f"{seconds:.0f} s"
    if seconds < 3 * _HOUR:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / _HOUR:.1f} h"


def _percent(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".") + "%"


def _count(value: float) -> str:
    return f"{value:,.0f}"


def _gib(size: int) -> str:
    return f"{size / 2**30:.1f} GiB"


def _size(size: int) -> str:
    """``410 MiB`` below a GiB, ``16.0 GiB`` from there on."""
    return f"{size / 2**20:.0f} MiB" if size < 2**30 else _gib(size)
