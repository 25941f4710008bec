"""The incident state machine: tables of (state, findings, now) → (state, events)."""

from __future__ import annotations

import dataclasses
import json
import random
from typing import Any

import pytest

from bot.incidents import (
    SIGNIFICANCE,
    IncidentState,
    Policy,
    acknowledge,
    cleared_in,
    close,
    declare,
    describe_duration,
    note,
    step,
)
from bot.model import Affected, Event, EventKind, Finding, Incident, Severity

T = 1_700_000_000.0
ID = "inc-1700000000"
OK, W, C = Severity.OK, Severity.WARNING, Severity.CRITICAL
POLICY = Policy(reminder_every_s=7200.0, max_reminders=3)


def finding(component: str, severity: Severity = W, reason: str = "rule fired",
            value: float | None = None, since: float | None = None,
            muted: str | None = None, eta: float | None = None) -> Finding:
    return Finding(component, severity, reason, value=value, since=since, muted=muted,
                   eta_s=eta)


def aff(component: str, severity: Severity = W, since: float = T, peak: Severity | None = None,
        reason: str = "rule fired", value: float | None = None,
        peak_value: float | None = None, eta: float | None = None) -> Affected:
    return Affected(component, severity, since, severity if peak is None else peak, reason,
                    value=value, peak_value=value if peak_value is None else peak_value,
                    eta_s=eta)


def inc(*affected: Affected, **fields: Any) -> Incident:
    worst = max((a.severity for a in affected), default=W)
    values: dict[str, Any] = {"id": ID, "opened_at": T, "affected": affected,
                              "severity": worst, "peak": worst, "last_announced_at": T}
    values.update(fields)
    return Incident(**values)


def opened(*affected: Affected, history: tuple[Affected, ...] = (),
           **fields: Any) -> IncidentState:
    return IncidentState(open=inc(*affected, **fields), next_number=int(T) + 1,
                         history=history)


IDLE = IncidentState(next_number=int(T) + 1)
"""The state after an incident was resolved."""

PUSH_W = opened(aff("queue:push", value=400.0))
TWO_W = opened(aff("queue:push", value=400.0), aff("queue:mailers", value=320.0))


def ev(kind: EventKind, state: IncidentState, at: float, reason: str,
       *changes: str) -> tuple[Event, ...]:
    assert state.open is not None
    return (Event(kind, state.open, at, reason, changes),)


def resolved_event(incident: Incident, at: float, reason: str, *changes: str) -> Event:
    return Event(EventKind.RESOLVED, incident, at, reason, changes)


STEP_CASES = [
    pytest.param(IncidentState(), [], T, IncidentState(), (), id="idle-stays-idle"),
    pytest.param(IncidentState(), [finding("queue:push", OK)], T, IncidentState(), (),
                 id="ok-findings-are-absent"),
    pytest.param(IncidentState(), [finding("redis", C, muted="maintenance")], T,
                 IncidentState(), (), id="muted-finding-does-not-open"),
    pytest.param(IncidentState(), [finding("queue:push", value=400.0)], T, PUSH_W,
                 ev(EventKind.OPENED, PUSH_W, T, "opened: queue:push warning", "+queue:push"),
                 id="opens"),
    pytest.param(
        IncidentState(),
        [finding("queue:mailers"), finding("memory", C), finding("queue:push"),
         finding("streaming", OK)],
        T,
        opened(aff("memory", C), aff("queue:push"), aff("queue:mailers")),
        ev(EventKind.OPENED, opened(aff("memory", C), aff("queue:push"), aff("queue:mailers")),
           T, "opened: memory critical, queue:push warning, queue:mailers warning",
           "+memory", "+queue:push", "+queue:mailers"),
        id="opens-grouping-every-component-root-causes-first"),
    pytest.param(
        IncidentState(), [finding("queue:push", since=T - 300), finding("memory", since=T + 5)],
        T,
        IncidentState(open=inc(aff("memory"), aff("queue:push", since=T - 300),
                               id="inc-1699999700", opened_at=T - 300),
                      next_number=1699999701),
        ev(EventKind.OPENED,
           IncidentState(open=inc(aff("memory"), aff("queue:push", since=T - 300),
                                  id="inc-1699999700", opened_at=T - 300)),
           T, "opened: memory warning, queue:push warning", "+memory", "+queue:push"),
        id="opened-at-is-when-the-trouble-began"),
    pytest.param(
        IncidentState(next_number=int(T) + 7), [finding("queue:push", value=400.0)], T,
        IncidentState(open=inc(aff("queue:push", value=400.0), id="inc-1700000007"),
                      next_number=int(T) + 8),
        ev(EventKind.OPENED, IncidentState(open=inc(aff("queue:push", value=400.0),
                                                    id="inc-1700000007")),
           T, "opened: queue:push warning", "+queue:push"),
        id="id-never-repeats-an-earlier-one"),
    pytest.param(
        IncidentState(), [finding("queue:push", W), finding("queue:push", C, "worse rule")], T,
        opened(aff("queue:push", C, reason="worse rule")),
        ev(EventKind.OPENED, opened(aff("queue:push", C, reason="worse rule")), T,
           "opened: queue:push critical", "+queue:push"),
        id="repeated-component-worst-wins"),
    pytest.param(
        PUSH_W, [finding("queue:push", C, value=1900.0)], T + 60,
        opened(aff("queue:push", C, value=1900.0), sequence=1, last_announced_at=T + 60),
        ev(EventKind.WORSENED,
           opened(aff("queue:push", C, value=1900.0), sequence=1, last_announced_at=T + 60),
           T + 60, "worsened: queue:push warning→critical", "queue:push warning→critical"),
        id="worsened"),
    pytest.param(
        opened(aff("queue:push", C, value=1900.0)), [finding("queue:push", W, value=900.0,
                                                             eta=1200.0)], T + 60,
        opened(aff("queue:push", W, peak=C, value=900.0, peak_value=1900.0, eta=1200.0),
               peak=C, sequence=1, last_announced_at=T + 60),
        ev(EventKind.IMPROVED,
           opened(aff("queue:push", W, peak=C, value=900.0, peak_value=1900.0, eta=1200.0),
                  peak=C, sequence=1, last_announced_at=T + 60),
           T + 60, "improved: queue:push critical→warning", "queue:push critical→warning"),
        id="improved-keeps-peaks"),
    pytest.param(
        PUSH_W, [finding("queue:push", value=400.0), finding("memory", value=8.0)], T + 60,
        opened(aff("memory", since=T + 60, value=8.0), aff("queue:push", value=400.0),
               sequence=1, last_announced_at=T + 60),
        ev(EventKind.COMPONENT_ADDED,
           opened(aff("memory", since=T + 60, value=8.0), aff("queue:push", value=400.0),
                  sequence=1, last_announced_at=T + 60),
           T + 60, "component_added: +memory", "+memory"),
        id="component-added"),
    pytest.param(
        TWO_W, [finding("queue:push", value=400.0), finding("queue:mailers", OK)], T + 60,
        opened(aff("queue:push", value=400.0), cleared=("queue:mailers",), sequence=1,
               last_announced_at=T + 60, history=(aff("queue:mailers", value=320.0),)),
        ev(EventKind.COMPONENT_CLEARED,
           opened(aff("queue:push", value=400.0), cleared=("queue:mailers",), sequence=1,
                  last_announced_at=T + 60),
           T + 60, "component_cleared: -queue:mailers", "-queue:mailers"),
        id="component-cleared-kept-in-history"),
    pytest.param(
        PUSH_W, [finding("redis", C), finding("queue:push", muted="redis unreachable")], T + 60,
        opened(aff("redis", C, since=T + 60), cleared=("queue:push",), sequence=1,
               last_announced_at=T + 60, history=(aff("queue:push", value=400.0),)),
        ev(EventKind.COMPONENT_ADDED,
           opened(aff("redis", C, since=T + 60), cleared=("queue:push",), sequence=1,
                  last_announced_at=T + 60),
           T + 60, "component_added: +redis, -queue:push (muted: redis unreachable)",
           "+redis", "-queue:push (muted: redis unreachable)"),
        id="root-cause-mutes-a-symptom"),
    pytest.param(
        TWO_W, [finding("queue:push", value=400.0), finding("queue:mailers", muted="silenced")],
        T + 60,
        opened(aff("queue:push", value=400.0), cleared=("queue:mailers",),
               history=(aff("queue:mailers", value=320.0),)),
        (), id="muted-component-leaves-silently"),
    pytest.param(
        opened(aff("queue:default", C), aff("queue:push"), aff("queue:mailers")),
        [finding("queue:push", C), finding("memory"), finding("queue:default", W)], T + 60,
        opened(aff("memory", since=T + 60), aff("queue:default", W, peak=C), aff("queue:push", C),
               peak=C, cleared=("queue:mailers",), sequence=1, last_announced_at=T + 60,
               history=(aff("queue:mailers"),)),
        ev(EventKind.WORSENED,
           opened(aff("memory", since=T + 60), aff("queue:default", W, peak=C),
                  aff("queue:push", C), peak=C, cleared=("queue:mailers",), sequence=1,
                  last_announced_at=T + 60),
           T + 60, "worsened: +memory, queue:default critical→warning, "
                   "queue:push warning→critical, -queue:mailers",
           "+memory", "queue:default critical→warning", "queue:push warning→critical",
           "-queue:mailers"),
        id="four-changes-fold-into-one-worsened"),
    pytest.param(
        opened(aff("queue:push", C)), [finding("queue:push", W), finding("memory")], T + 60,
        opened(aff("memory", since=T + 60), aff("queue:push", W, peak=C), peak=C,
               sequence=1, last_announced_at=T + 60),
        ev(EventKind.COMPONENT_ADDED,
           opened(aff("memory", since=T + 60), aff("queue:push", W, peak=C), peak=C,
                  sequence=1, last_announced_at=T + 60),
           T + 60, "component_added: +memory, queue:push critical→warning",
           "+memory", "queue:push critical→warning"),
        id="added-outranks-improved"),
    pytest.param(
        opened(aff("queue:push", C), aff("queue:mailers")), [finding("queue:push", W)], T + 60,
        opened(aff("queue:push", W, peak=C), peak=C, cleared=("queue:mailers",), sequence=1,
               last_announced_at=T + 60, history=(aff("queue:mailers"),)),
        ev(EventKind.IMPROVED,
           opened(aff("queue:push", W, peak=C), peak=C, cleared=("queue:mailers",),
                  sequence=1, last_announced_at=T + 60),
           T + 60, "improved: queue:push critical→warning, -queue:mailers",
           "queue:push critical→warning", "-queue:mailers"),
        id="improved-outranks-cleared"),
    pytest.param(
        PUSH_W, [finding("queue:push", C, "flapping between warning and critical", 1900.0)],
        T + 60,
        opened(aff("queue:push", W, peak=C, reason="flapping between warning and critical",
                   value=1900.0), peak=C),
        (), id="flapping-severity-is-held-not-announced"),
    pytest.param(
        opened(aff("queue:push", W, peak=C, reason="flapping", value=1900.0), peak=C),
        [finding("queue:push", W, "flapping", value=350.0)], T + 9000,
        opened(aff("queue:push", W, peak=C, reason="flapping", value=350.0,
                   peak_value=1900.0), peak=C, sequence=1, reminders=1,
               last_announced_at=T + 9000),
        ev(EventKind.REMINDER,
           opened(aff("queue:push", W, peak=C, reason="flapping", value=350.0,
                      peak_value=1900.0), peak=C, sequence=1, reminders=1,
                  last_announced_at=T + 9000),
           T + 9000, "reminder 1 of 3: nothing announced for 2 h 30 min"),
        id="flapping-keeps-the-incident-open"),
    pytest.param(
        opened(aff("queue:push", W, peak=C, reason="flapping", value=1900.0), peak=C),
        [finding("queue:push", C, value=2000.0)], T + 600,
        opened(aff("queue:push", C, value=2000.0), peak=C, sequence=1, last_announced_at=T + 600),
        ev(EventKind.WORSENED,
           opened(aff("queue:push", C, value=2000.0), peak=C, sequence=1,
                  last_announced_at=T + 600),
           T + 600, "worsened: queue:push warning→critical", "queue:push warning→critical"),
        id="settled-after-flapping-is-announced"),
    pytest.param(
        PUSH_W, [finding("queue:push", W, "new rule text", value=500.0, eta=900.0)], T + 60,
        opened(aff("queue:push", reason="new rule text", value=500.0, eta=900.0)),
        (), id="same-severity-updates-silently"),
    pytest.param(
        opened(aff("memory", value=8.0)), [finding("memory", value=5.0)], T + 60,
        opened(aff("memory", value=5.0, peak_value=5.0)), (),
        id="memory-peak-is-the-lowest-available"),
    pytest.param(
        opened(aff("memory", value=5.0)), [finding("memory", value=9.0)], T + 60,
        opened(aff("memory", value=9.0, peak_value=5.0)), (),
        id="memory-peak-stays-lowest"),
    pytest.param(
        PUSH_W, [finding("queue:push", value=400.0)], T + 7200,
        opened(aff("queue:push", value=400.0), sequence=1, reminders=1,
               last_announced_at=T + 7200),
        ev(EventKind.REMINDER,
           opened(aff("queue:push", value=400.0), sequence=1, reminders=1,
                  last_announced_at=T + 7200),
           T + 7200, "reminder 1 of 3: nothing announced for 2 h"),
        id="reminder-after-two-quiet-hours"),
    pytest.param(PUSH_W, [finding("queue:push", value=400.0)], T + 7199, PUSH_W, (),
                 id="no-reminder-before-two-hours"),
    pytest.param(
        opened(aff("queue:push"), reminders=3, sequence=3, last_announced_at=T + 21600),
        [finding("queue:push")], T + 40000,
        opened(aff("queue:push"), reminders=3, sequence=3, last_announced_at=T + 21600),
        (), id="no-reminder-after-three"),
    pytest.param(
        opened(aff("queue:push"), acknowledged=True), [finding("queue:push")], T + 7200,
        opened(aff("queue:push"), acknowledged=True), (), id="no-reminder-once-acknowledged"),
    pytest.param(
        opened(aff("queue:push", C), last_announced_at=T + 3600, sequence=1),
        [finding("queue:push", C)], T + 7200,
        opened(aff("queue:push", C), last_announced_at=T + 3600, sequence=1),
        (), id="reminder-counts-from-the-last-event"),
    pytest.param(
        opened(aff("queue:push", C), acknowledged=True), [finding("queue:push", W)], T + 60,
        opened(aff("queue:push", W, peak=C), peak=C, acknowledged=True, sequence=1,
               last_announced_at=T + 60),
        ev(EventKind.IMPROVED,
           opened(aff("queue:push", W, peak=C), peak=C, acknowledged=True, sequence=1,
                  last_announced_at=T + 60),
           T + 60, "improved: queue:push critical→warning", "queue:push critical→warning"),
        id="acknowledged-still-announces-changes"),
    pytest.param(
        TWO_W, [finding("queue:push", OK)], T + 4800, IDLE,
        (resolved_event(
            inc(aff("queue:push", OK, peak=W, value=400.0),
                aff("queue:mailers", OK, peak=W, value=320.0),
                severity=OK, peak=W, cleared=("queue:push", "queue:mailers"), sequence=1,
                last_announced_at=T + 4800, resolved_at=T + 4800),
            T + 4800, "resolved: every component is fine after 1 h 20 min",
            "-queue:push", "-queue:mailers"),),
        id="resolved"),
    pytest.param(
        opened(aff("redis", C)), [finding("redis", C, muted="maintenance window")], T + 60,
        IDLE,
        (resolved_event(
            inc(aff("redis", OK, peak=C), severity=OK, peak=C, cleared=("redis",), sequence=1,
                last_announced_at=T + 60, resolved_at=T + 60),
            T + 60, "resolved: every component is fine after 1 min",
            "-redis (muted: maintenance window)"),),
        id="resolved-when-only-muted-findings-remain"),
    pytest.param(
        opened(aff("queue:push"), cleared=("queue:mailers",), sequence=2,
               history=(aff("queue:mailers", C, value=2500.0),)),
        [], T + 600, IDLE,
        (resolved_event(
            inc(aff("queue:push", OK, peak=W), aff("queue:mailers", OK, peak=C, value=2500.0),
                severity=OK, peak=W, cleared=("queue:mailers", "queue:push"), sequence=3,
                last_announced_at=T + 600, resolved_at=T + 600),
            T + 600, "resolved: every component is fine after 10 min", "-queue:push"),),
        id="resolution-lists-earlier-cleared-with-peaks"),
    pytest.param(
        opened(aff("queue:push"), cleared=("queue:mailers",),
               history=(aff("queue:mailers", C, value=2500.0),)),
        [finding("queue:push"), finding("queue:mailers", W, value=400.0)], T + 600,
        opened(aff("queue:push"),
               aff("queue:mailers", W, since=T + 600, peak=C, value=400.0, peak_value=2500.0),
               sequence=1, last_announced_at=T + 600),
        ev(EventKind.COMPONENT_ADDED,
           opened(aff("queue:push"),
                  aff("queue:mailers", W, since=T + 600, peak=C, value=400.0,
                      peak_value=2500.0),
                  sequence=1, last_announced_at=T + 600),
           T + 600, "component_added: +queue:mailers", "+queue:mailers"),
        id="returning-component-keeps-its-peaks"),
]


@pytest.mark.parametrize(("state", "findings", "now", "expected_state", "expected_events"),
                         STEP_CASES)
def test_step(state: IncidentState, findings: list[Finding], now: float,
              expected_state: IncidentState, expected_events: tuple[Event, ...]) -> None:
    """Each tick gives the documented state and at most one event."""
    assert (expected_state, expected_events) == step(state, findings, now, POLICY)


@pytest.mark.parametrize(
    ("policy", "reminders_at"),
    [
        pytest.param(Policy(), [7200, 14400, 21600], id="every-2h-at-most-3"),
        pytest.param(Policy(reminder_every_s=3600.0, max_reminders=5),
                     [3600, 7200, 10800, 14400, 18000], id="hourly-at-most-5"),
        pytest.param(Policy(max_reminders=0), [], id="never"),
    ],
)
def test_reminders_are_capped(policy: Policy, reminders_at: list[int]) -> None:
    """An unchanging incident is recalled on schedule, then no more, over a whole day."""
    state, _ = step(IncidentState(), [finding("queue:push")], T, policy)
    seen = []
    for offset in range(60, 86400, 60):
        state, events = step(state, [finding("queue:push")], T + offset, policy)
        seen += [(offset, e.kind) for e in events]
    assert [(at, EventKind.REMINDER) for at in reminders_at] == seen


def test_reminder_cap_spans_updates() -> None:
    """Updates do not reset the reminder count: at most three per incident."""
    state = opened(aff("queue:push"), reminders=2, sequence=2, last_announced_at=T)
    state, events = step(state, [finding("queue:push", C)], T + 60, POLICY)
    assert [e.kind for e in events] == [EventKind.WORSENED]
    state, events = step(state, [finding("queue:push", C)], T + 60 + 7200, POLICY)
    assert [e.kind for e in events] == [EventKind.REMINDER]
    state, events = step(state, [finding("queue:push", C)], T + 60 + 14400, POLICY)
    assert events == ()


@pytest.mark.parametrize(
    ("state", "now", "expected_state", "reason"),
    [
        pytest.param(IncidentState(), T, IncidentState(),
                     "nothing to acknowledge: no incident is open", id="nothing-open"),
        pytest.param(PUSH_W, T + 720, opened(aff("queue:push", value=400.0), acknowledged=True),
                     f"incident {ID} acknowledged after 12 min: no more reminders "
                     "(updates are still posted)", id="acknowledges"),
        pytest.param(opened(aff("queue:push"), acknowledged=True), T + 60,
                     opened(aff("queue:push"), acknowledged=True),
                     f"incident {ID} was already acknowledged", id="already"),
    ],
)
def test_acknowledge(state: IncidentState, now: float, expected_state: IncidentState,
                     reason: str) -> None:
    """Acknowledging marks the open incident and says what it did."""
    assert (expected_state, reason) == acknowledge(state, now)


def test_acknowledge_stops_reminders() -> None:
    """After an acknowledgement the incident stays quiet until something changes."""
    state, _ = step(IncidentState(), [finding("queue:push")], T, POLICY)
    state, _ = acknowledge(state, T + 60)
    kinds = []
    for offset in range(600, 30000, 600):
        state, events = step(state, [finding("queue:push")], T + offset, POLICY)
        kinds += [e.kind for e in events]
    state, events = step(state, [finding("queue:push", C)], T + 30000, POLICY)
    assert (kinds, [e.kind for e in events]) == ([], [EventKind.WORSENED])


def test_ids_are_unique_when_reopening_within_a_second() -> None:
    """Two incidents in the same second get different ids, hence different post keys."""
    state, (first,) = step(IncidentState(), [finding("web", C)], T + 0.1, POLICY)
    state, (end,) = step(state, [], T + 0.4, POLICY)
    state, (second,) = step(state, [finding("web", C)], T + 0.7, POLICY)
    assert (first.incident.id, end.kind, second.incident.id) == (
        ID, EventKind.RESOLVED, "inc-1700000001")


def test_significance_order() -> None:
    """Folded changes take the most significant kind, in the documented order."""
    assert SIGNIFICANCE == (EventKind.RESOLVED, EventKind.OPENED, EventKind.WORSENED,
                            EventKind.COMPONENT_ADDED, EventKind.IMPROVED,
                            EventKind.COMPONENT_CLEARED, EventKind.REMINDER)


def test_random_ticks_keep_the_invariants() -> None:
    """Over random ticks: one event at most, sequence +1 per event, open iff something is wrong."""
    rng = random.Random(20231114)
    components = ["queue:push", "queue:default", "memory", "swap", "redis", "unserved:push"]
    state = IncidentState()
    ids: list[str] = []
    for tick in range(3000):
        now = T + tick * 30.0
        findings = [finding(c, rng.choice([OK, OK, OK, W, C]),
                            rng.choice(["rule", "rule", "flapping"]),
                            value=rng.random() * 100,
                            muted=rng.choice([None, None, None, "silenced"]))
                    for c in rng.sample(components, rng.randint(0, 4))]
        before = state.open
        state, events = step(state, findings, now, POLICY)
        active = any(f.severity > OK and f.muted is None for f in findings)
        assert len(events) <= 1
        assert (state.open is not None) == active
        if events:
            (event,) = events
            assert event.at == now
            if event.kind is EventKind.OPENED:
                ids.append(event.incident.id)
                assert event.incident.sequence == 0
            else:
                assert before is not None
                assert event.incident.sequence == before.sequence + 1
        elif state.open is not None and before is not None:
            assert state.open.sequence == before.sequence
        if state.open is not None:
            assert state.open.reminders <= POLICY.max_reminders
            assert all(a.peak >= a.severity for a in state.open.affected)
    assert len(ids) == len(set(ids)) > 10


STATES = [
    pytest.param(IncidentState(), id="empty"),
    pytest.param(IDLE, id="after-an-incident"),
    pytest.param(opened(aff("queue:push", C, since=T - 12.5, peak=C, value=1900.25,
                            peak_value=2000.0, eta=600.0),
                        aff("memory", W, value=None), cleared=("swap",), reminders=2,
                        sequence=5, acknowledged=True, last_announced_at=T + 0.125,
                        history=(aff("swap", C, value=90.0),)),
                 id="open-with-everything"),
]


@pytest.mark.parametrize("state", STATES)
def test_json_round_trip(state: IncidentState) -> None:
    """The state survives JSON text unchanged (the loop stores it in SQLite)."""
    assert state == IncidentState.from_json(json.loads(json.dumps(state.to_json())))


def _broken(**changes: Any) -> dict[str, Any]:
    data = opened(aff("queue:push"), history=(aff("swap"),)).to_json()
    data.update(changes)
    return data


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        pytest.param({"version": 2, "open": None, "next_number": 0, "history": []},
                     "unsupported version 2", id="version"),
        pytest.param({"version": 1, "open": None}, "KeyError", id="missing-key"),
        pytest.param(_broken(next_number="7"), "expected a whole number", id="string-number"),
        pytest.param(_broken(open={**_broken()["open"], "severity": "BAD"}),
                     "unknown severity 'BAD'", id="bad-severity"),
        pytest.param(_broken(open={**_broken()["open"], "acknowledged": "yes"}),
                     "expected true or false", id="bad-flag"),
        pytest.param(_broken(history=[{"component": "swap"}]), "KeyError", id="bad-history"),
        pytest.param(_broken(open=[]), "malformed", id="wrong-type"),
    ],
)
def test_from_json_rejects_malformed_data(data: dict[str, Any], problem: str) -> None:
    """Malformed stored state is a ValueError that says what is wrong."""
    with pytest.raises(ValueError, match="malformed incident state") as info:
        IncidentState.from_json(data)
    assert problem in str(info.value)


@pytest.mark.parametrize(
    ("changes", "cleared"),
    [
        pytest.param(("+memory", "-swap", "queue:push warning→critical"), ("swap",),
                     id="plain"),
        pytest.param(("-queue:push (muted: redis unreachable)", "-web"), ("web",),
                     id="muted-is-not-back-to-normal"),
        pytest.param((), (), id="none"),
    ],
)
def test_cleared_in(changes: tuple[str, ...], cleared: tuple[str, ...]) -> None:
    """Only components that are really fine again count as cleared."""
    event = Event(EventKind.COMPONENT_CLEARED, inc(aff("memory")), T, "", changes)
    assert cleared_in(event) == cleared


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 s"), (44.6, "45 s"), (60, "1 min"), (4800, "1 h 20 min"), (7200, "2 h"),
     (86400, "1 d"), (97200, "1 d 3 h"), (-5, "0 s")],
)
def test_describe_duration(seconds: float, text: str) -> None:
    """Durations in reasons read like 1 h 20 min."""
    assert describe_duration(seconds) == text


def test_policy_defaults() -> None:
    """The default policy reminds every 2 h, at most 3 times; updates are a minute apart."""
    assert dataclasses.astuple(Policy()) == (7200.0, 3, 60.0, 10)


# --- manual incidents (admin commands) --------------------------------------------------


def test_declare_opens_a_manual_incident_that_only_an_admin_resolves() -> None:
    """`incident <text>` opens an incident no rule can resolve; `resolve` ends it."""
    policy = Policy()
    state, event = declare(IncidentState(), "Uploads fail; we are on it.", 1000.0)
    assert (event.kind, event.note, event.incident.manual) == (
        EventKind.OPENED, "Uploads fail; we are on it.", True)
    state, events = step(state, [], 1030.0, policy)
    assert events == () and state.open is not None  # nothing firing, still open
    state, event = note(state, "Fixed the disk; watching.", 1100.0)
    assert (event.kind, event.note, event.incident.sequence) == (
        EventKind.NOTE, "Fixed the disk; watching.", 1)
    state, event = close(state, "All good now.", 1200.0)
    assert (event.kind, event.note, event.incident.resolved_at) == (
        EventKind.RESOLVED, "All good now.", 1200.0)
    assert state.open is None


def test_declare_takes_over_an_open_incident() -> None:
    """An admin's words on an automatic incident make it manual, in the same thread."""
    state, _ = step(IncidentState(), [finding("queue:push", Severity.CRITICAL)], 1000.0,
                    Policy())
    assert state.open is not None
    state, event = declare(state, "We know, a relay floods us.", 1010.0)
    assert (event.kind, event.incident.id, event.incident.manual) == (
        EventKind.NOTE, state.open.id if state.open else "", True)
    state, events = step(state, [], 1070.0, Policy())  # the rule is fine again
    assert [e.kind for e in events] == [EventKind.COMPONENT_CLEARED]
    assert state.open is not None and state.open.manual


def test_admin_resolve_holds_what_still_fires() -> None:
    """Components still firing at an admin's resolve cannot reopen until seen fine."""
    push = finding("queue:push", Severity.CRITICAL)
    state, _ = step(IncidentState(), [push], 1000.0, Policy())
    state, _ = close(state, "", 1010.0)
    assert state.held == ("queue:push",)
    state, events = step(state, [push], 1040.0, Policy())
    assert events == () and state.open is None
    state, events = step(state, [], 1070.0, Policy())
    assert state.held == ()
    state, events = step(state, [push], 1100.0, Policy())
    assert [e.kind for e in events] == [EventKind.OPENED]


def test_note_and_close_need_an_open_incident() -> None:
    """Updating or resolving nothing is an error the admin is told about."""
    with pytest.raises(ValueError, match="no incident is open"):
        note(IncidentState(), "x", 1.0)
    with pytest.raises(ValueError, match="no incident is open"):
        close(IncidentState(), "x", 1.0)


def test_manual_state_round_trips_json() -> None:
    """The manual flag and held components survive a restart."""
    state, _ = declare(IncidentState(held=("memory",)), "text", 5.0)
    assert IncidentState.from_json(state.to_json()) == state


# --- update spacing and caps -------------------------------------------------------------

R, PUSH = "redis", "queue:push"


def run(ticks: list[tuple[float, list[Finding]]],
        policy: Policy | None = None) -> list[tuple[float, EventKind]]:
    """Step through ``ticks``; return when each event came and its kind."""
    state, seen = IncidentState(), []
    for at, findings in ticks:
        state, events = step(state, findings, at, policy or Policy())
        seen += [(at, e.kind) for e in events]
    return seen


@pytest.mark.parametrize(
    ("ticks", "expected"),
    [
        pytest.param(
            [(15.0, [finding(R, W)]), (30.0, [finding(R, C)]), (45.0, [finding(R, C)]),
             (60.0, [finding(R, C)]), (75.0, [finding(R, C)]), (90.0, [finding(R, C)])],
            [(15.0, EventKind.OPENED), (75.0, EventKind.WORSENED)],
            id="redis-warning-then-critical-a-minute-apart"),
        pytest.param(
            [(0.0, [finding(PUSH, W)]), (20.0, [finding(PUSH, C)]), (40.0, [finding(PUSH, W)]),
             (60.0, [finding(PUSH, W)]), (80.0, [finding(PUSH, W)])],
            [(0.0, EventKind.OPENED)],
            id="undone-before-the-spacing-never-told"),
        pytest.param(
            [(0.0, [finding(PUSH, W)]), (20.0, [finding(PUSH, W), finding("memory", W)]),
             (60.0, [finding(PUSH, C), finding("memory", W)])],
            [(0.0, EventKind.OPENED), (60.0, EventKind.WORSENED)],
            id="changes-folded-into-one-update"),
        pytest.param(
            [(0.0, [finding(PUSH, W)]), (20.0, [])],
            [(0.0, EventKind.OPENED), (20.0, EventKind.RESOLVED)],
            id="resolution-never-held"),
        pytest.param(
            [(0.0, [finding(PUSH, W)]), (60.0, [finding(PUSH, C)])],
            [(0.0, EventKind.OPENED), (60.0, EventKind.WORSENED)],
            id="at-the-spacing-told"),
    ],
)
def test_updates_are_spaced(ticks: list[tuple[float, list[Finding]]],
                            expected: list[tuple[float, EventKind]]) -> None:
    """Member updates of one incident are at least a minute apart; changes fold into the next."""
    assert run(ticks) == expected


def test_held_change_keeps_the_announced_severity_but_moves_values() -> None:
    """While a change is held, the incident shows what was announced, with fresh values."""
    state, _ = step(IncidentState(), [finding(PUSH, W, value=100.0)], 0.0, Policy())
    state, events = step(state, [finding(PUSH, C, value=900.0), finding("memory", W)], 20.0,
                         Policy())
    assert state.open is not None
    (push,) = state.open.affected
    assert (events, push.severity, push.peak, push.value, push.peak_value,
            state.open.peak) == ((), W, C, 900.0, 900.0, C)


def churn(queues: int, ticks: int) -> list[tuple[float, list[Finding]]]:
    """Every tick (15 s apart) every queue flips between warning and critical."""
    return [(15.0 * tick, [finding(f"queue:q{i}", C if (i + tick) % 2 else W)
                           for i in range(queues)]) for tick in range(ticks)]


@pytest.mark.parametrize(
    ("policy", "limit"),
    [
        pytest.param(Policy(), 1 + 10, id="defaults-10-updates-then-2h-apart"),
        pytest.param(Policy(max_updates=3), 1 + 3, id="3-updates-then-2h-apart"),
        pytest.param(Policy(update_spacing_s=0, max_updates=0, reminder_every_s=3600), 1 + 2,
                     id="hourly-from-the-start"),
    ],
)
def test_churning_incident_posts_a_bounded_number_of_times(policy: Policy, limit: int) -> None:
    """Hundreds of queues changing every tick for 2 h give a handful of events, not 480."""
    events = run(churn(200, 481), policy)
    assert (len(events), events[0][1]) == (limit, EventKind.OPENED)


def test_reasons_list_a_few_changes_and_count_the_rest() -> None:
    """An event's reason (logged every time) names ten changes and counts the others."""
    (_, event), = [(0, e) for e in step(IncidentState(),
                                        [finding(f"queue:q{i:04d}") for i in range(5000)],
                                        0.0, Policy())[1]]
    assert (event.reason.endswith(" and 4,990 more"), len(event.reason) < 400,
            len(event.changes)) == (True, True, 5000)
