"""The incident state machine: findings in, the one open incident and its events out.

Pure: ``step`` and ``acknowledge`` take the state, the findings and ``now`` as
arguments and return a new state; nothing here reads a clock, the network, the
environment or a file. The tick loop persists ``IncidentState.to_json()``.

Rules:

- One incident at a time groups every component with an unmuted, non-OK
  finding. A muted finding (root cause, maintenance, silence) and an OK one
  count as absent; when none is left, the incident is resolved. A component
  that leaves the incident only because it is muted now raises no event of
  its own (it is listed when folded with other changes).
- At most one event per step. Every change of the step (a component added,
  cleared, worse or better) is folded into it: its kind is the most
  significant one (``SIGNIFICANCE``) and ``Event.changes`` lists them all in
  words for logs: ``"+memory"``, ``"-swap"``, ``"queue:push warning→critical"``,
  and ``"-queue:push (muted: redis unreachable)"`` for a component that only
  went quiet because it is muted.
- A finding whose reason says "flapping" keeps its component in the incident
  but its severity changes are held: the announced severity stays until the
  finding stops flapping, and only then is a difference announced.
- Updates are spaced: a change seen less than ``Policy.update_spacing_s``
  after the last announcement is held (the incident keeps its announced
  components and severities, only values and peaks move on) and folded into
  the first update once the spacing has passed; a change that is undone
  before then is never announced. After ``Policy.max_updates`` events an
  incident's updates are spaced by ``Policy.reminder_every_s`` instead, so
  that a churning incident (thousands of queues crossing a rule) posts a
  bounded number of times. The resolution is never held; admins' notes are
  not either.
- A reminder comes when nothing was announced for ``Policy.reminder_every_s``,
  at most ``Policy.max_reminders`` times per incident (updates do not reset
  the count), and never once the incident is acknowledged. Acknowledging only
  stops reminders: changes are still announced.

Incident fields: ``opened_at`` is when the trouble began (the earliest
``Finding.since`` at opening, never later than the step that opened it), so
that "since 14:05" and "resolved after 1 h 20 min" tell members the whole
story. ``id`` is ``f"inc-{int(opened_at)}"``, raised by one when that would not
be greater than every earlier id (``IncidentState.next_number``), so that no
two incidents ever share the idempotency keys of their posts. ``sequence`` is
0 for the opening and grows by one with every event; ``last_announced_at`` is
the time of the last event. ``peak`` and ``Affected.peak`` are the worst
severities seen (flapping ones included); ``Affected.peak_value`` is the
worst value seen (the largest, or the smallest for ``LESS_IS_WORSE``), over
the whole incident even when a component cleared and came back.
``cleared`` names, in order, the components that were affected and are fine
now. In the incident of a RESOLVED event ``resolved_at`` is set, ``affected``
lists every component the incident ever had, each with severity OK and its
peaks (for the resolution post), ``severity`` is OK, and ``cleared`` names
them all.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot import defaults, health
from bot.jsonread import flag as _bool
from bot.jsonread import number as _float
from bot.jsonread import optional_number as _optional_float
from bot.jsonread import text as _str
from bot.jsonread import whole as _int
from bot.model import Affected, Event, EventKind, Finding, Incident, Severity

JSON_VERSION = 1
"""Version of ``IncidentState.to_json``; ``from_json`` refuses any other."""

SIGNIFICANCE: tuple[EventKind, ...] = (
    EventKind.RESOLVED,
    EventKind.OPENED,
    EventKind.WORSENED,
    EventKind.COMPONENT_ADDED,
    EventKind.IMPROVED,
    EventKind.COMPONENT_CLEARED,
    EventKind.REMINDER,
)
"""Event kinds, most significant first: several changes in one step fold into the first."""

LESS_IS_WORSE = frozenset({"memory"})
"""Kinds of components (``health.component_kind``: ``memory`` and every host's
``memory@<host>``) whose ``Finding.value`` is worse when smaller (percent available); for
every other component a larger value is worse (latency, percent of swap used, …)."""

FLAPPING = "flapping"
"""A finding whose reason contains this word (any case) has its severity changes held."""


UPDATE_SPACING = 60.0
"""Default ``Policy.update_spacing_s``: a warning that turns critical 15 s after the
notice (Redis down: warning at 15 s, critical at 30 s) is told 60 s after it."""

MAX_UPDATES = 10
"""Default ``Policy.max_updates``."""

LISTED_CHANGES = 10
"""Most changes an event's reason names one by one (the rest are counted)."""


@dataclass(frozen=True, slots=True)
class Policy:
    """How often an incident is recalled and updated.

    Reminders: at most every ``reminder_every_s`` seconds of silence, and at
    most ``max_reminders`` times per incident (0: never). Updates: at least
    ``update_spacing_s`` apart; after ``max_updates`` events (the opening not
    counted, reminders not counted), at least ``reminder_every_s`` apart.
    """

    reminder_every_s: float = defaults.REMINDER_EVERY
    max_reminders: int = defaults.MAX_REMINDERS
    update_spacing_s: float = UPDATE_SPACING
    max_updates: int = MAX_UPDATES


@dataclass(frozen=True, slots=True)
class IncidentState:
    """What the state machine remembers between ticks.

    ``open`` is the open incident, None when all is well. ``next_number`` is the
    smallest number the next incident's id may use, so that ids never repeat,
    not even for two incidents opened within one second. ``history`` keeps the
    components of the open incident that cleared, as last seen with their
    peaks: they come back with their peaks if they are affected again, and
    appear in the resolution.
    """

    open: Incident | None = None
    next_number: int = 0
    history: tuple[Affected, ...] = ()
    held: tuple[str, ...] = ()
    """Components an admin resolved while still firing: ignored until they are seen OK."""

    def to_json(self) -> dict[str, Any]:
        """Return the state as JSON-ready data; ``from_json`` reads it back unchanged."""
        return {
            "version": JSON_VERSION,
            "next_number": self.next_number,
            "open": None if self.open is None else _incident_to_json(self.open),
            "history": [_affected_to_json(a) for a in self.history],
            "held": list(self.held),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> IncidentState:
        """Read what ``to_json`` wrote. Raises ``ValueError`` naming what is wrong."""
        try:
            if data.get("version") != JSON_VERSION:
                raise ValueError(f"unsupported version {data.get('version')!r}")
            raw = data["open"]
            return cls(open=None if raw is None else _incident_from_json(raw),
                       next_number=_int(data["next_number"]),
                       history=tuple(_affected_from_json(a) for a in data["history"]),
                       held=tuple(_str(c) for c in data.get("held", ())))
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed incident state: {type(exc).__name__}: {exc}") from exc
        except ValueError as exc:
            raise ValueError(f"malformed incident state: {exc}") from exc


def step(state: IncidentState, findings: Sequence[Finding], now: float,
         policy: Policy) -> tuple[IncidentState, tuple[Event, ...]]:
    """Advance the incident by one tick: return the new state and at most one event.

    ``findings`` are this tick's findings (all components, OK ones included or
    not); ``now`` is the tick's time in epoch seconds.
    """
    active = _active(findings)
    if state.held:
        state = dataclasses.replace(state, held=tuple(c for c in state.held if c in active))
        active = {c: f for c, f in active.items() if c not in state.held}
    incident = state.open
    if incident is None:
        if not active:
            return state, ()
        return _open(state, active, now)
    if not active and not incident.manual:
        return _resolve(state, incident, now, _muted(findings))
    return _update(state, incident, active, _muted(findings), now, policy)


def declare(state: IncidentState, text: str, now: float) -> tuple[IncidentState, Event]:
    """Open a manual incident with an admin's words, or add them to the open one.

    Either way the incident becomes manual: it no longer resolves by itself when
    the rules see nothing wrong, only by ``close``.
    """
    incident = state.open
    if incident is None:
        number = max(int(now), state.next_number)
        incident = Incident(id=f"inc-{number}", opened_at=now, affected=(),
                            severity=Severity.WARNING, peak=Severity.WARNING, sequence=0,
                            last_announced_at=now, manual=True)
        event = Event(kind=EventKind.OPENED, incident=incident, at=now,
                      reason="opened by an admin", note=text)
        return IncidentState(open=incident, next_number=number + 1, held=state.held), event
    taken = dataclasses.replace(incident, manual=True)
    new_state, events = _announce(state, taken, EventKind.NOTE, now,
                                  "an admin took the incident over", ())
    return new_state, dataclasses.replace(events[0], note=text)


def note(state: IncidentState, text: str, now: float) -> tuple[IncidentState, Event]:
    """Post an admin's update in the open incident's thread; ValueError when none is open."""
    if state.open is None:
        raise ValueError("no incident is open")
    new_state, events = _announce(state, state.open, EventKind.NOTE, now,
                                  "update from an admin", ())
    return new_state, dataclasses.replace(events[0], note=text)


def close(state: IncidentState, text: str, now: float) -> tuple[IncidentState, Event]:
    """Resolve the open incident on an admin's word; ValueError when none is open.

    Components still firing are held: they cannot reopen an incident until they
    have been seen fine once.
    """
    incident = state.open
    if incident is None:
        raise ValueError("no incident is open")
    firing = tuple(a.component for a in incident.affected)
    new_state, events = _resolve(state, incident, now, {})
    event = dataclasses.replace(events[0], reason="resolved by an admin", note=text)
    return dataclasses.replace(new_state, held=(*state.held, *firing)), event


def acknowledge(state: IncidentState, now: float) -> tuple[IncidentState, str]:
    """Stop the reminders of the open incident; return the new state and what was done."""
    incident = state.open
    if incident is None:
        return state, "nothing to acknowledge: no incident is open"
    if incident.acknowledged:
        return state, f"incident {incident.id} was already acknowledged"
    opened_for = describe_duration(now - incident.opened_at)
    return (dataclasses.replace(state, open=dataclasses.replace(incident, acknowledged=True)),
            f"incident {incident.id} acknowledged after {opened_for}: no more reminders "
            f"(updates are still posted)")


def cleared_in(event: Event) -> tuple[str, ...]:
    """Return the components this event reports as fine again (not the merely muted ones)."""
    return tuple(change[1:] for change in event.changes
                 if change.startswith("-") and not _is_muted_change(change))


def component_order(component: str) -> tuple[int, int, str]:
    """Sort key of components: root causes first, then queues in Mastodon's order.

    The same order as ``health.component_order`` (another host's ``memory@db-1``
    ranks with ``memory``, after the local host's).
    """
    return health.component_order(component)


def describe_duration(seconds: float) -> str:
    """Return a duration for logs: ``"45 s"``, ``"12 min"``, ``"2 h 5 min"``, ``"3 d 4 h"``."""
    whole = max(0, round(seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min"
    return f"{secs} s"


def _active(findings: Iterable[Finding]) -> dict[str, Finding]:
    """Unmuted, non-OK findings by component; the worst wins when one repeats."""
    active: dict[str, Finding] = {}
    for finding in findings:
        if finding.muted is not None or finding.severity <= Severity.OK:
            continue
        known = active.get(finding.component)
        if known is None or finding.severity > known.severity:
            active[finding.component] = finding
    return active


def _muted(findings: Iterable[Finding]) -> dict[str, str]:
    """Why each muted, non-OK component is muted."""
    return {f.component: f.muted for f in findings
            if f.muted is not None and f.severity > Severity.OK}


def _flapping(finding: Finding) -> bool:
    return FLAPPING in finding.reason.lower()


def _sorted(affected: Iterable[Affected]) -> tuple[Affected, ...]:
    return tuple(sorted(affected, key=lambda a: component_order(a.component)))


def _worst(severities: Iterable[Severity], floor: Severity = Severity.OK) -> Severity:
    return max([floor, *severities])


def _worse_value(old: float | None, new: float | None, component: str) -> float | None:
    """Return the worse of two values: the larger, or the smaller where less is worse."""
    if old is None:
        return new
    if new is None:
        return old
    return min(old, new) if health.component_kind(component) in LESS_IS_WORSE else max(old, new)


def _new_affected(finding: Finding, now: float, earlier: Affected | None = None) -> Affected:
    """Return the entry of a component joining; ``earlier`` is its entry before it cleared."""
    since = now if finding.since is None else min(finding.since, now)
    peak, peak_value = finding.severity, finding.value
    if earlier is not None:
        peak = max(peak, earlier.peak)
        peak_value = _worse_value(earlier.peak_value, peak_value, finding.component)
    return Affected(component=finding.component, severity=finding.severity, since=since,
                    peak=peak, reason=finding.reason, value=finding.value,
                    peak_value=peak_value, eta_s=finding.eta_s)


def _open(state: IncidentState, active: Mapping[str, Finding],
          now: float) -> tuple[IncidentState, tuple[Event, ...]]:
    affected = _sorted(_new_affected(f, now) for f in active.values())
    opened_at = min(a.since for a in affected)
    number = max(int(opened_at), state.next_number)
    severity = _worst(a.severity for a in affected)
    incident = Incident(id=f"inc-{number}", opened_at=opened_at, affected=affected,
                        severity=severity, peak=severity, sequence=0, last_announced_at=now)
    event = Event(kind=EventKind.OPENED, incident=incident, at=now,
                  reason="opened: " + _listing(
                      [f"{a.component} {a.severity.name.lower()}" for a in affected]),
                  changes=tuple(f"+{a.component}" for a in affected))
    return IncidentState(open=incident, next_number=number + 1), (event,)


def _resolve(state: IncidentState, incident: Incident, now: float,
             muted: Mapping[str, str]) -> tuple[IncidentState, tuple[Event, ...]]:
    remaining = [a.component for a in incident.affected]
    resolved = dataclasses.replace(
        incident,
        affected=_sorted(dataclasses.replace(a, severity=Severity.OK, eta_s=None)
                         for a in (*state.history, *incident.affected)),
        cleared=_append(incident.cleared, remaining),
        severity=Severity.OK,
        sequence=incident.sequence + 1,
        last_announced_at=now,
        resolved_at=now,
    )
    event = Event(kind=EventKind.RESOLVED, incident=resolved, at=now,
                  reason=f"resolved: every component is fine after "
                         f"{describe_duration(now - incident.opened_at)}",
                  changes=tuple(_cleared_change(c, muted) for c in remaining))
    return dataclasses.replace(state, open=None, history=()), (event,)


def _update(state: IncidentState, incident: Incident, active: Mapping[str, Finding],
            muted: Mapping[str, str], now: float,
            policy: Policy) -> tuple[IncidentState, tuple[Event, ...]]:
    before = {a.component: a for a in incident.affected}
    history = {a.component: a for a in state.history}
    changes: list[tuple[EventKind, str]] = []
    affected: list[Affected] = []
    for component, finding in active.items():
        old = before.get(component)
        if old is None:
            changes.append((EventKind.COMPONENT_ADDED, f"+{component}"))
            affected.append(_new_affected(finding, now, history.pop(component, None)))
            continue
        severity = old.severity
        if finding.severity != old.severity and not _flapping(finding):
            kind = EventKind.WORSENED if finding.severity > old.severity else EventKind.IMPROVED
            changes.append((kind, f"{component} {old.severity.name.lower()}→"
                                  f"{finding.severity.name.lower()}"))
            severity = finding.severity
        affected.append(dataclasses.replace(
            old, severity=severity, peak=max(old.peak, finding.severity), reason=finding.reason,
            value=finding.value, peak_value=_worse_value(old.peak_value, finding.value, component),
            eta_s=finding.eta_s))
    gone = [c for c in before if c not in active]
    history.update((c, before[c]) for c in gone)
    state = dataclasses.replace(state, history=_sorted(history.values()))
    changes += [(EventKind.COMPONENT_CLEARED, _cleared_change(c, muted)) for c in gone]
    ordered = _sorted(affected)
    changed = dataclasses.replace(
        incident,
        affected=ordered,
        cleared=_append(tuple(c for c in incident.cleared if c not in active), gone),
        severity=_worst(a.severity for a in ordered),
        peak=_worst((f.severity for f in active.values()), incident.peak),
    )
    news = [kind for kind, text in changes if not _is_muted_change(text)]
    quiet_for = now - incident.last_announced_at
    if news and quiet_for < _spacing(incident, policy):  # folded into a later update
        return dataclasses.replace(state, open=_held(incident, active)), ()
    if news:  # a component that is only muted now is no news of its own
        kind = min(news, key=SIGNIFICANCE.index)
        texts = tuple(text for _, text in sorted(
            changes, key=lambda change: component_order(_component_of(change[1]))))
        return _announce(state, changed, kind, now, f"{kind.value}: {_listing(texts)}", texts)
    if (not incident.acknowledged and incident.reminders < policy.max_reminders
            and quiet_for >= policy.reminder_every_s):
        number = incident.reminders + 1
        return _announce(state, dataclasses.replace(changed, reminders=number),
                         EventKind.REMINDER, now,
                         f"reminder {number} of {policy.max_reminders}: nothing announced "
                         f"for {describe_duration(quiet_for)}", ())
    return dataclasses.replace(state, open=changed), ()


def _spacing(incident: Incident, policy: Policy) -> float:
    """Return the least time between this incident's last announcement and its next update."""
    updates = incident.sequence - incident.reminders
    return policy.update_spacing_s if updates < policy.max_updates else max(
        policy.update_spacing_s, policy.reminder_every_s)


def _held(incident: Incident, active: Mapping[str, Finding]) -> Incident:
    """Return the incident as announced, with this step's values and peaks.

    Components keep their announced severities, new ones are not added yet and
    gone ones stay: the next update finds the changes still there, or not.
    """
    affected = []
    for item in incident.affected:
        finding = active.get(item.component)
        if finding is None:
            affected.append(item)
            continue
        affected.append(dataclasses.replace(
            item, peak=max(item.peak, finding.severity), reason=finding.reason,
            value=finding.value, eta_s=finding.eta_s,
            peak_value=_worse_value(item.peak_value, finding.value, item.component)))
    return dataclasses.replace(incident, affected=tuple(affected),
                               peak=_worst((f.severity for f in active.values()), incident.peak))


def _listing(texts: Sequence[str]) -> str:
    """Return the first ``LISTED_CHANGES`` texts joined, and how many more there are."""
    shown = ", ".join(texts[:LISTED_CHANGES])
    more = len(texts) - LISTED_CHANGES
    return shown if more <= 0 else f"{shown} and {more:,} more"


def _announce(state: IncidentState, incident: Incident, kind: EventKind, now: float,
              reason: str, changes: tuple[str, ...]) -> tuple[IncidentState, tuple[Event, ...]]:
    announced = dataclasses.replace(incident, sequence=incident.sequence + 1,
                                    last_announced_at=now)
    return (dataclasses.replace(state, open=announced),
            (Event(kind=kind, incident=announced, at=now, reason=reason, changes=changes),))


def _cleared_change(component: str, muted: Mapping[str, str]) -> str:
    why = muted.get(component)
    return f"-{component}" if why is None else f"-{component} (muted: {why})"


def _is_muted_change(change: str) -> bool:
    return change.startswith("-") and " " in change


def _component_of(change: str) -> str:
    return change.lstrip("+-").split(" ", 1)[0]


def _append(names: tuple[str, ...], more: Iterable[str]) -> tuple[str, ...]:
    result = list(names)
    result += [name for name in more if name not in result]
    return tuple(result)


def _affected_to_json(affected: Affected) -> dict[str, Any]:
    return {
        "component": affected.component,
        "severity": affected.severity.name,
        "since": affected.since,
        "peak": affected.peak.name,
        "reason": affected.reason,
        "value": affected.value,
        "peak_value": affected.peak_value,
        "eta_s": affected.eta_s,
    }


def _incident_to_json(incident: Incident) -> dict[str, Any]:
    return {
        "id": incident.id,
        "opened_at": incident.opened_at,
        "affected": [_affected_to_json(a) for a in incident.affected],
        "cleared": list(incident.cleared),
        "severity": incident.severity.name,
        "peak": incident.peak.name,
        "sequence": incident.sequence,
        "reminders": incident.reminders,
        "last_announced_at": incident.last_announced_at,
        "acknowledged": incident.acknowledged,
        "resolved_at": incident.resolved_at,
        "manual": incident.manual,
    }


def _severity(name: object) -> Severity:
    if not isinstance(name, str) or name not in Severity.__members__:
        raise ValueError(f"unknown severity {name!r:.40}")
    return Severity[name]


def _affected_from_json(data: Mapping[str, Any]) -> Affected:
    return Affected(
        component=_str(data["component"]),
        severity=_severity(data["severity"]),
        since=_float(data["since"]),
        peak=_severity(data["peak"]),
        reason=_str(data["reason"]),
        value=_optional_float(data["value"]),
        peak_value=_optional_float(data["peak_value"]),
        eta_s=_optional_float(data["eta_s"]),
    )


def _incident_from_json(data: Mapping[str, Any]) -> Incident:
    return Incident(
        id=_str(data["id"]),
        opened_at=_float(data["opened_at"]),
        affected=tuple(_affected_from_json(a) for a in data["affected"]),
        cleared=tuple(_str(c) for c in data["cleared"]),
        severity=_severity(data["severity"]),
        peak=_severity(data["peak"]),
        sequence=_int(data["sequence"]),
        reminders=_int(data["reminders"]),
        last_announced_at=_float(data["last_announced_at"]),
        acknowledged=_bool(data["acknowledged"]),
        resolved_at=_optional_float(data["resolved_at"]),
        manual=_bool(data.get("manual", False)),
    )
